//! Writing vmail's SDP answer.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::crypto::{format_crypto, SrtpKey};
use super::model::Codec;
use super::negotiate::Negotiated;

/// Our side of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerParams<'a> {
    /// Address we receive RTP on (written in `o=` and `c=`).
    pub local_ip: IpAddr,
    /// Port we receive RTP on.
    pub local_port: u16,
    /// `o=` session id, fixed for the call.
    pub session_id: u64,
    /// `o=` session version, incremented whenever our SDP changes.
    pub session_version: u64,
    /// `o=` user name; characters other than visible ASCII become `-`.
    pub username: &'a str,
    /// Our SRTP key, written in the `a=crypto` answer line when the
    /// negotiation chose SDES (`Negotiated::srtp`).
    pub srtp_key: Option<&'a SrtpKey>,
}

/// Write the answer for a negotiation: one active audio stream with the
/// chosen codec (at the offer's payload type), `telephone-event` with
/// events 0-16 when the offer had it, `a=ptime` and our direction. Every
/// other `m=` line of the offer is rejected with port 0 (RFC 3264 §6).
/// `a=rtcp-mux` is not answered: vmail neither sends nor needs RTCP.
pub fn answer(neg: &Negotiated, p: &AnswerParams<'_>) -> String {
    let ip_type = match p.local_ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let username: String = if p.username.is_empty() {
        "-".to_owned()
    } else {
        p.username
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '-' })
            .collect()
    };

    let mut s = String::with_capacity(320);
    // Writing into a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\no={username} {} {} IN {ip_type} {ip}\r\ns=vmail\r\nc=IN {ip_type} {ip}\r\nt=0 0\r\n",
        p.session_id,
        p.session_version,
        ip = p.local_ip,
    );
    let mut wrote_audio = false;
    for (i, m) in neg.media.iter().enumerate() {
        if i == neg.audio_index {
            write_audio(&mut s, neg, p);
            wrote_audio = true;
        } else {
            let _ = write!(s, "m={} 0 {} {}\r\n", m.media, m.proto, m.first_format);
        }
    }
    if !wrote_audio {
        write_audio(&mut s, neg, p);
    }
    s
}

fn write_audio(s: &mut String, neg: &Negotiated, p: &AnswerParams<'_>) {
    let _ = write!(s, "m=audio {} {} {}", p.local_port, neg.proto, neg.pt);
    if let Some(dtmf) = neg.dtmf_pt {
        let _ = write!(s, " {dtmf}");
    }
    let _ = write!(
        s,
        "\r\na=rtpmap:{} {}/{}{}\r\n",
        neg.pt,
        neg.codec.encoding_name(),
        neg.codec.rtp_clock_rate(),
        neg.codec.rtpmap_channels()
    );
    match neg.codec {
        Codec::Opus => {
            let _ = write!(
                s,
                "a=fmtp:{} {}\r\n",
                neg.pt,
                crate::media::opus_answer_fmtp(&neg.params.opus)
            );
        }
        Codec::G729 if !neg.params.annexb => {
            let _ = write!(s, "a=fmtp:{} annexb=no\r\n", neg.pt);
        }
        _ => {}
    }
    if let Some(dtmf) = neg.dtmf_pt {
        let _ = write!(
            s,
            "a=rtpmap:{dtmf} telephone-event/{}\r\na=fmtp:{dtmf} 0-16\r\n",
            neg.dtmf_clock
        );
    }
    let _ = write!(
        s,
        "a=ptime:{}\r\na={}\r\n",
        neg.ptime_ms,
        neg.direction.attribute()
    );
    write_crypto(s, neg, p);
}

/// The `a=crypto` line of an SDES answer: the offer's tag and suite, our
/// own key (RFC 4568 §7.1.2: each direction has its key).
fn write_crypto(s: &mut String, neg: &Negotiated, p: &AnswerParams<'_>) {
    if let (Some(choice), Some(key)) = (&neg.srtp, p.srtp_key) {
        let _ = write!(
            s,
            "a=crypto:{}\r\n",
            format_crypto(choice.tag, choice.suite, key)
        );
    }
}
