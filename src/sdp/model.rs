//! The parsed form of an SDP offer: only what an audio media server uses.

use std::net::IpAddr;

/// An audio codec vmail knows by name.
///
/// Whether vmail answers with one depends on the preference list the
/// caller passes to [`super::negotiate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722 (16 kHz audio, 8000 Hz RTP clock), static payload type 9.
    G722,
    /// G.729 (annex B unless `annexb=no`), static payload type 18.
    G729,
    /// Opus (RFC 7587: `opus/48000/2`, dynamic payload type).
    Opus,
}

impl Codec {
    /// The static RTP payload type of RFC 3551 (Opus has none: `None`).
    pub const fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::G729 => Some(18),
            Codec::Opus => None,
        }
    }

    /// The media layer's codec.
    pub const fn media(self) -> crate::media::Codec {
        match self {
            Codec::Pcmu => crate::media::Codec::Pcmu,
            Codec::Pcma => crate::media::Codec::Pcma,
            Codec::G722 => crate::media::Codec::G722,
            Codec::G729 => crate::media::Codec::G729,
            Codec::Opus => crate::media::Codec::Opus,
        }
    }

    /// The SDP codec of a media-layer codec.
    pub const fn from_media(c: crate::media::Codec) -> Codec {
        match c {
            crate::media::Codec::Pcmu => Codec::Pcmu,
            crate::media::Codec::Pcma => Codec::Pcma,
            crate::media::Codec::G722 => Codec::G722,
            crate::media::Codec::G729 => Codec::G729,
            crate::media::Codec::Opus => Codec::Opus,
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::G729 => "G729",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock rate written in SDP. G.722 says 8000 although it
    /// samples at 16 kHz (RFC 3551 §4.5.2); Opus always says 48000.
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// The `a=rtpmap` encoding parameters after the clock (`/2` for Opus,
    /// RFC 7587 §7).
    pub const fn rtpmap_channels(self) -> &'static str {
        match self {
            Codec::Opus => "/2",
            _ => "",
        }
    }

    /// The audio sample rate of the decoded signal.
    pub const fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G729 => 8000,
            Codec::G722 | Codec::Opus => 16000,
        }
    }

    /// Recognise a codec from an rtpmap entry (name compared
    /// case-insensitively). Only mono is accepted, but Opus, which is
    /// always written `opus/48000/2`. G.722 is also accepted with the
    /// (wrong but common) clock rate 16000.
    pub(crate) fn from_rtpmap(name: &str, clock: u32, channels: u8) -> Option<Codec> {
        if name.eq_ignore_ascii_case("opus") {
            return (clock == 48000 && (channels == 2 || channels == 1)).then_some(Codec::Opus);
        }
        if channels != 1 {
            return None;
        }
        if name.eq_ignore_ascii_case("PCMU") && clock == 8000 {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") && clock == 8000 {
            Some(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("G722") && (clock == 8000 || clock == 16000) {
            Some(Codec::G722)
        } else if name.eq_ignore_ascii_case("G729") && clock == 8000 {
            Some(Codec::G729)
        } else {
            None
        }
    }
}

/// Media direction (RFC 3264 §5.1), from the point of view of the party
/// that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Sends and receives (the default when no attribute is given).
    #[default]
    SendRecv,
    /// Only sends (the writer holds the other side).
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither (full hold).
    Inactive,
}

impl Direction {
    /// Build from "sends" and "receives" flags.
    pub const fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction the other party answers with: `sendonly` ↔ `recvonly`.
    pub const fn mirrored(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The SDP attribute name (`sendrecv`, `sendonly`, …).
    pub const fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub(crate) fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.attribute()))
    }
}

/// The `o=` line: who made the session description and which version it is
/// (a re-INVITE with the same id and version carries no change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>` (often `-`).
    pub username: String,
    /// `<sess-id>`, kept as text (some peers exceed 64 bits).
    pub session_id: String,
    /// `<sess-version>`, kept as text.
    pub session_version: String,
    /// `<unicast-address>` as written (IP address or name).
    pub address: String,
}

impl Origin {
    /// The session version as a number, when it is one.
    pub fn version(&self) -> Option<u64> {
        self.session_version.parse().ok()
    }
}

/// One payload format offered on the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// RTP payload type, 0..=127.
    pub pt: u8,
    /// The codec, when vmail knows it.
    pub codec: Option<Codec>,
    /// Encoding name from `a=rtpmap` (or the RFC 3551 name of a static
    /// payload type); empty when a dynamic type has no rtpmap.
    pub encoding: String,
    /// RTP clock rate; 0 when unknown.
    pub clock: u32,
    /// Channel count (1 when not given).
    pub channels: u8,
    /// The `a=fmtp` parameters, when given.
    pub fmtp: Option<String>,
}

impl Format {
    /// The value of an `a=fmtp` parameter (`name=value`, separated by `;`,
    /// names compared case-insensitively).
    pub fn fmtp_param(&self, name: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// What an Opus format's fmtp asks of the stream vmail sends (RFC 7587
    /// §6.1); absent or unreadable values keep their defaults.
    pub fn opus_params(&self) -> crate::media::OpusParams {
        let mut p = crate::media::OpusParams::default();
        if let Some(r) = self
            .fmtp_param("maxplaybackrate")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&r| r >= 8000)
        {
            p.max_playback_rate = r;
        }
        p.peer_uses_fec = self.fmtp_param("useinbandfec") == Some("1");
        p.stereo = self.fmtp_param("stereo") == Some("1");
        p
    }

    /// G.729: annex B unless the fmtp says `annexb=no` (RFC 4856 §2.1.9).
    pub fn annexb(&self) -> bool {
        !self
            .fmtp_param("annexb")
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
    }
}

/// One `m=` line of the offer, as much as the answer needs to echo it
/// (RFC 3264 §6: the answer has as many `m=` lines as the offer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// Media type (`audio`, `video`, …).
    pub media: String,
    /// Port (0 = stream rejected or removed).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
    /// The first format token.
    pub first_format: String,
}

/// The audio stream vmail will use: the first `m=audio` with a port other
/// than 0 (a plain RTP one preferred over an SRTP one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOffer {
    /// Position among the offer's `m=` lines.
    pub index: usize,
    /// RTP port of the peer.
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, …).
    pub proto: String,
    /// Media-level `c=` address, when given.
    pub connection: Option<IpAddr>,
    /// Formats in the offer's order of preference.
    pub formats: Vec<Format>,
    /// Payload type of `telephone-event/8000`, when offered.
    pub telephone_event: Option<u8>,
    /// `a=ptime` (media level, else session level).
    pub ptime_ms: Option<u32>,
    /// Direction (media level, else session level, else `sendrecv`).
    pub direction: Direction,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// The `a=crypto` lines (RFC 4568), in the offer's order.
    pub crypto: Vec<super::crypto::CryptoAttr>,
}

impl AudioOffer {
    /// Whether the profile is plain RTP (`RTP/AVP` or `RTP/AVPF`), which is
    /// what vmail can answer; SRTP and DTLS profiles are not.
    pub fn is_plain_rtp(&self) -> bool {
        is_plain_rtp(&self.proto)
    }
}

/// Whether `proto` is SRTP keyed in the SDP (`RTP/SAVP`, `RTP/SAVPF`):
/// what SDES applies to (not the DTLS-SRTP profiles).
pub(crate) fn is_sdes_srtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

pub(crate) fn is_plain_rtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// A parsed SDP offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The `o=` line.
    pub origin: Origin,
    /// Session-level `c=` address, when given.
    pub connection: Option<IpAddr>,
    /// Every `m=` line, in order.
    pub media: Vec<MediaLine>,
    /// The audio stream to use, if any.
    pub audio: Option<AudioOffer>,
}

impl Offer {
    /// The address the audio stream is sent to: media-level `c=`, else
    /// session-level.
    pub fn audio_connection(&self) -> Option<IpAddr> {
        self.audio
            .as_ref()
            .and_then(|a| a.connection)
            .or(self.connection)
    }
}
