//! Choosing the stream, codec, DTMF payload type, packet time and direction.

use std::net::{IpAddr, SocketAddr};

use super::crypto::{choose, SdesChoice};
use super::model::{is_sdes_srtp, Codec, Direction, MediaLine, Offer};

/// Why no answer can be made; the caller answers `488 Not Acceptable Here`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateError {
    /// The offer has no usable audio stream (none, or all with port 0).
    #[error("the offer has no audio stream")]
    NoAudio,
    /// The audio stream offers none of the codecs vmail prefers.
    #[error("no codec in common with the offer")]
    NoCommonCodec,
    /// The audio stream is `RTP/SAVP` but none of its `a=crypto` lines is
    /// usable (suite, key parameters).
    #[error("RTP/SAVP without a usable a=crypto line")]
    NoUsableCrypto,
    /// The audio stream needs a profile vmail does not do (DTLS-SRTP…).
    #[error("unsupported media profile {proto}")]
    UnsupportedProfile {
        /// The offered transport protocol.
        proto: String,
    },
    /// The connection address is multicast, broadcast or reserved: vmail
    /// sends only to one unicast peer (and is no reflector).
    #[error("unusable connection address {addr}")]
    UnusableAddress {
        /// The offered address.
        addr: IpAddr,
    },
    /// An initial offer without an address (`c=0.0.0.0`): there is no one
    /// to talk to.
    #[error("the initial offer names no connection address")]
    NoAddress,
}

/// The outcome of a negotiation: what the media path uses and what the
/// answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides use.
    pub codec: Codec,
    /// Its payload type, as the offer numbered it.
    pub pt: u8,
    /// The codec's `a=fmtp` parameters that vmail follows.
    pub params: CodecParams,
    /// The payload type of `telephone-event`, when offered: at 48000 for
    /// Opus when the offer has it (the clock of the audio), else at 8000.
    pub dtmf_pt: Option<u8>,
    /// The clock of `dtmf_pt` (8000 or 48000).
    pub dtmf_clock: u32,
    /// Packet time in ms: 20 or 30 as offered, else 20.
    pub ptime_ms: u32,
    /// Where to send RTP; `None` while the peer holds with `c=0.0.0.0`.
    pub remote: Option<SocketAddr>,
    /// Our direction, the mirror of the peer's (peer `sendonly` → we
    /// `recvonly`).
    pub direction: Direction,
    /// The offered transport protocol, echoed in the answer.
    pub proto: String,
    /// Every `m=` line of the offer (the answer rejects all but the audio).
    pub media: Vec<MediaLine>,
    /// Which of `media` is the audio stream.
    pub audio_index: usize,
    /// SRTP keyed by SDES (`RTP/SAVP`): the offered line answered.
    pub srtp: Option<SdesChoice>,
}

/// What the offer's `a=fmtp` of the chosen codec says that vmail follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecParams {
    /// Opus: what the peer wants to receive.
    pub opus: crate::media::OpusParams,
    /// G.729: annex B (SID frames) in use (`annexb=no` turns it off).
    pub annexb: bool,
}

impl Default for CodecParams {
    fn default() -> Self {
        CodecParams {
            opus: crate::media::OpusParams::default(),
            annexb: true,
        }
    }
}

impl Negotiated {
    /// Whether the peer holds the call (we must not, or cannot, send).
    pub fn on_hold(&self) -> bool {
        !self.direction.sends()
    }
}

/// Negotiate the offer's audio stream against `prefer`, our codecs in order
/// of preference: the first of them that the offer carries wins (at the
/// first payload type the offer lists for it). To keep the codec of a call
/// on a re-INVITE, put the current codec first.
pub fn negotiate(offer: &Offer, prefer: &[Codec]) -> Result<Negotiated, NegotiateError> {
    let audio = offer.audio.as_ref().ok_or(NegotiateError::NoAudio)?;
    let srtp = if audio.is_plain_rtp() {
        None
    } else if is_sdes_srtp(&audio.proto) {
        Some(choose(&audio.crypto).ok_or(NegotiateError::NoUsableCrypto)?)
    } else {
        return Err(NegotiateError::UnsupportedProfile {
            proto: audio.proto.clone(),
        });
    };
    let (codec, format) = prefer
        .iter()
        .find_map(|&c| {
            audio
                .formats
                .iter()
                .find(|f| f.codec == Some(c))
                .map(|f| (c, f))
        })
        .ok_or(NegotiateError::NoCommonCodec)?;
    let pt = format.pt;
    let wide_dtmf = audio
        .formats
        .iter()
        .find(|f| f.encoding.eq_ignore_ascii_case("telephone-event") && f.clock == 48000)
        .map(|f| f.pt)
        .filter(|_| codec == Codec::Opus);
    let (dtmf_pt, dtmf_clock) = match wide_dtmf {
        Some(pt) => (Some(pt), 48000),
        None => (audio.telephone_event, 8000),
    };
    let params = CodecParams {
        opus: format.opus_params(),
        annexb: format.annexb(),
    };

    // Opus frames are 10, 20, 40 or 60 ms (it may say `ptime` in its
    // fmtp too); the others take 20 or 30.
    let offered = audio.ptime_ms.or_else(|| {
        (codec == Codec::Opus)
            .then(|| format.fmtp_param("ptime")?.parse().ok())
            .flatten()
    });
    let ptime_ms = match (codec, offered) {
        (Codec::Opus, Some(p @ (40 | 60))) => p,
        (Codec::Opus, _) => 20,
        (_, Some(30)) => 30,
        _ => 20,
    };

    // `c=0.0.0.0` (RFC 2543 hold) means the peer does not want media.
    let addr = offer.audio_connection();
    if let Some(a) = addr.filter(|a| !a.is_unspecified() && !crate::media::usable_media_ip(*a)) {
        return Err(NegotiateError::UnusableAddress { addr: a });
    }
    let peer_receives = addr.is_some_and(|a| !a.is_unspecified());
    let peer = Direction::from_flags(
        audio.direction.sends(),
        audio.direction.receives() && peer_receives,
    );
    let remote = addr
        .filter(|a| !a.is_unspecified())
        .map(|a| SocketAddr::new(a, audio.port));

    Ok(Negotiated {
        codec,
        pt,
        params,
        dtmf_pt,
        dtmf_clock,
        ptime_ms,
        remote,
        direction: peer.mirrored(),
        proto: audio.proto.clone(),
        media: offer.media.clone(),
        audio_index: audio.index,
        srtp,
    })
}

/// [`negotiate`] for the offer of an initial INVITE, which must also name
/// an address (`c=0.0.0.0` is hold, which only a re-INVITE can ask for).
pub fn negotiate_initial(offer: &Offer, prefer: &[Codec]) -> Result<Negotiated, NegotiateError> {
    let n = negotiate(offer, prefer)?;
    if n.remote.is_none() {
        return Err(NegotiateError::NoAddress);
    }
    Ok(n)
}
