//! The SDP parser: strict about the lines vmail uses, tolerant about the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::crypto::{parse_crypto, CryptoAttr};
use super::model::{is_plain_rtp, AudioOffer, Codec, Direction, Format, MediaLine, Offer, Origin};

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Most `m=` lines accepted in one body.
const MAX_MEDIA_LINES: usize = 32;

/// Why an SDP body was rejected. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body has no lines.
    #[error("SDP body is empty")]
    Empty,
    /// The body exceeds [`MAX_SDP_LEN`].
    #[error("SDP body is larger than {MAX_SDP_LEN} bytes")]
    TooLarge,
    /// A line is not of the form `<letter>=<value>`.
    #[error("line {line}: not a `<type>=<value>` line")]
    BadLine {
        /// Line number.
        line: usize,
    },
    /// The first line is not `v=0`, or a second `v=` follows.
    #[error("line {line}: expected a single `v=0` as the first line")]
    BadVersion {
        /// Line number.
        line: usize,
    },
    /// No `o=` line.
    #[error("no `o=` line")]
    MissingOrigin,
    /// A malformed `o=` line.
    #[error("line {line}: malformed `o=` line")]
    BadOrigin {
        /// Line number.
        line: usize,
    },
    /// A malformed `c=` line, or one with a host name instead of an address.
    #[error("line {line}: malformed or unsupported `c=` line")]
    BadConnection {
        /// Line number.
        line: usize,
    },
    /// A malformed `m=` line (missing fields, bad payload type).
    #[error("line {line}: malformed `m=` line")]
    BadMedia {
        /// Line number.
        line: usize,
    },
    /// An `m=` port that is not a number in 0..=65535.
    #[error("line {line}: `m=` port out of range")]
    BadPort {
        /// Line number.
        line: usize,
    },
    /// A malformed `a=rtpmap` in an audio section.
    #[error("line {line}: malformed `a=rtpmap`")]
    BadRtpmap {
        /// Line number.
        line: usize,
    },
    /// No `m=` line at all.
    #[error("no `m=` line")]
    NoMedia,
    /// More `m=` lines than vmail accepts.
    #[error("more than {MAX_MEDIA_LINES} `m=` lines")]
    TooManyMedia,
    /// The audio stream has no `c=` at media or session level.
    #[error("the audio stream has no `c=` address")]
    MissingConnection,
}

/// Parse an SDP offer (or answer) body.
pub fn parse(body: &[u8]) -> Result<Offer, SdpError> {
    if body.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge);
    }
    // Non-UTF-8 bytes can only matter in free-text lines (s=, i=), which
    // vmail ignores; replacing them keeps the rest parseable.
    let text = String::from_utf8_lossy(body);

    let mut seen_version = false;
    let mut origin: Option<Origin> = None;
    let mut session = SessionLevel::default();
    let mut sections: Vec<Section> = Vec::new();

    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let content = raw.trim_end_matches(['\r', ' ', '\t']);
        if content.is_empty() {
            continue;
        }
        let (key, value) = match content.as_bytes() {
            [k, b'=', ..] if k.is_ascii_alphabetic() => {
                (*k, content.get(2..).ok_or(SdpError::BadLine { line })?)
            }
            _ => return Err(SdpError::BadLine { line }),
        };
        if !seen_version {
            if key != b'v' || value.trim() != "0" {
                return Err(SdpError::BadVersion { line });
            }
            seen_version = true;
            continue;
        }
        match key {
            b'v' => return Err(SdpError::BadVersion { line }),
            // A second `o=` is ignored.
            b'o' if origin.is_none() => {
                origin = Some(parse_origin(value).ok_or(SdpError::BadOrigin { line })?);
            }
            b'c' => {
                let addr = parse_connection(value).ok_or(SdpError::BadConnection { line })?;
                match sections.last_mut() {
                    Some(s) => s.connection = Some(addr),
                    None => session.connection = Some(addr),
                }
            }
            b'm' => {
                if sections.len() >= MAX_MEDIA_LINES {
                    return Err(SdpError::TooManyMedia);
                }
                sections.push(Section::parse(value, line)?);
            }
            b'a' => match sections.last_mut() {
                Some(s) => s.attribute(value, line)?,
                None => session.attribute(value),
            },
            // s, i, u, e, p, b, t, r, z, k and unknown types: not used.
            _ => {}
        }
    }

    if !seen_version {
        return Err(SdpError::Empty);
    }
    let origin = origin.ok_or(SdpError::MissingOrigin)?;
    if sections.is_empty() {
        return Err(SdpError::NoMedia);
    }

    let candidate = |plain: bool| {
        sections.iter().position(|s| {
            s.audio && s.rtp && s.media.port != 0 && (!plain || is_plain_rtp(&s.media.proto))
        })
    };
    let audio = match candidate(true).or_else(|| candidate(false)) {
        Some(index) => {
            let section = sections.get(index).ok_or(SdpError::NoMedia)?;
            if section.connection.is_none() && session.connection.is_none() {
                return Err(SdpError::MissingConnection);
            }
            Some(section.audio_offer(index, &session))
        }
        None => None,
    };

    Ok(Offer {
        origin,
        connection: session.connection,
        media: sections.into_iter().map(|s| s.media).collect(),
        audio,
    })
}

/// Session-level values that apply to media sections lacking their own.
#[derive(Default)]
struct SessionLevel {
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    ptime: Option<u32>,
}

impl SessionLevel {
    fn attribute(&mut self, value: &str) {
        let (name, arg) = split_attribute(value);
        if let Some(d) = Direction::from_attribute(name) {
            self.direction = Some(d);
        } else if name.eq_ignore_ascii_case("ptime") {
            self.ptime = arg.and_then(parse_ptime);
        }
    }
}

/// One `m=` section while parsing.
struct Section {
    media: MediaLine,
    /// `m=audio`.
    audio: bool,
    /// An RTP profile (payload types are numbers).
    rtp: bool,
    /// Payload types in offer order (RTP audio sections only).
    pts: Vec<u8>,
    connection: Option<IpAddr>,
    rtpmaps: Vec<(u8, String, u32, u8)>,
    fmtps: Vec<(u8, String)>,
    ptime: Option<u32>,
    direction: Option<Direction>,
    rtcp_mux: bool,
    crypto: Vec<CryptoAttr>,
}

/// `a=crypto` lines kept per stream at most (more are ignored).
const MAX_CRYPTO_LINES: usize = 16;

impl Section {
    fn parse(value: &str, line: usize) -> Result<Section, SdpError> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(media), Some(port), Some(proto), Some(first)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(SdpError::BadMedia { line });
        };
        // `<port>/<number of ports>`: the first port is the RTP port.
        let port = port.split('/').next().unwrap_or(port);
        let port = parse_port(port).ok_or(SdpError::BadPort { line })?;
        let audio = media.eq_ignore_ascii_case("audio");
        let rtp = proto.to_ascii_uppercase().contains("RTP/");

        let mut pts = Vec::new();
        if audio && rtp {
            for token in std::iter::once(first).chain(fields) {
                let pt = parse_pt(token).ok_or(SdpError::BadMedia { line })?;
                if !pts.contains(&pt) {
                    pts.push(pt);
                }
            }
        }
        Ok(Section {
            media: MediaLine {
                media: media.to_owned(),
                port,
                proto: proto.to_owned(),
                first_format: first.to_owned(),
            },
            audio,
            rtp,
            pts,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
            rtcp_mux: false,
            crypto: Vec::new(),
        })
    }

    fn attribute(&mut self, value: &str, line: usize) -> Result<(), SdpError> {
        if !(self.audio && self.rtp) {
            return Ok(());
        }
        let (name, arg) = split_attribute(value);
        if name.eq_ignore_ascii_case("rtpmap") {
            let entry = arg
                .and_then(parse_rtpmap)
                .ok_or(SdpError::BadRtpmap { line })?;
            if !self.rtpmaps.iter().any(|r| r.0 == entry.0) {
                self.rtpmaps.push(entry);
            }
        } else if name.eq_ignore_ascii_case("fmtp") {
            // A malformed fmtp only loses its parameters.
            if let Some((pt, params)) = arg.and_then(|a| a.split_once(' ')) {
                if let Some(pt) = parse_pt(pt) {
                    if !self.fmtps.iter().any(|f| f.0 == pt) {
                        self.fmtps.push((pt, params.trim().to_owned()));
                    }
                }
            }
        } else if name.eq_ignore_ascii_case("ptime") {
            self.ptime = arg.and_then(parse_ptime);
        } else if name.eq_ignore_ascii_case("rtcp-mux") {
            self.rtcp_mux = true;
        } else if name.eq_ignore_ascii_case("crypto") {
            // A malformed crypto line is ignored (another may be usable).
            if let Some(c) = arg.and_then(parse_crypto) {
                if self.crypto.len() < MAX_CRYPTO_LINES {
                    self.crypto.push(c);
                }
            }
        } else if let Some(d) = Direction::from_attribute(name) {
            self.direction = Some(d);
        }
        Ok(())
    }

    fn audio_offer(&self, index: usize, session: &SessionLevel) -> AudioOffer {
        let formats: Vec<Format> = self.pts.iter().map(|&pt| self.format(pt)).collect();
        let telephone_event = formats
            .iter()
            .find(|f| f.encoding.eq_ignore_ascii_case("telephone-event") && f.clock == 8000)
            .map(|f| f.pt);
        AudioOffer {
            index,
            port: self.media.port,
            proto: self.media.proto.clone(),
            connection: self.connection,
            formats,
            telephone_event,
            ptime_ms: self.ptime.or(session.ptime),
            direction: self.direction.or(session.direction).unwrap_or_default(),
            rtcp_mux: self.rtcp_mux,
            crypto: self.crypto.clone(),
        }
    }

    fn format(&self, pt: u8) -> Format {
        let fmtp = self.fmtps.iter().find(|f| f.0 == pt).map(|f| f.1.clone());
        let (encoding, clock, channels) = match self.rtpmaps.iter().find(|r| r.0 == pt) {
            Some((_, name, clock, channels)) => (name.clone(), *clock, *channels),
            None => match static_payload(pt) {
                Some((name, clock, channels)) => (name.to_owned(), clock, channels),
                None => (String::new(), 0, 1),
            },
        };
        Format {
            pt,
            codec: Codec::from_rtpmap(&encoding, clock, channels),
            encoding,
            clock,
            channels,
            fmtp,
        }
    }
}

/// The static audio payload types of RFC 3551 table 4.
fn static_payload(pt: u8) -> Option<(&'static str, u32, u8)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    })
}

/// `name[:value]`.
fn split_attribute(value: &str) -> (&str, Option<&str>) {
    match value.split_once(':') {
        Some((name, arg)) => (name.trim(), Some(arg.trim())),
        None => (value.trim(), None),
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut f = value.split_ascii_whitespace();
    let (username, session_id, session_version) = (f.next()?, f.next()?, f.next()?);
    let (_nettype, _addrtype, address) = (f.next()?, f.next()?, f.next()?);
    Some(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: session_version.to_owned(),
        address: address.to_owned(),
    })
}

/// `IN IP4 <addr>[/ttl[/n]]` or `IN IP6 <addr>[/n]`. Host names are not
/// accepted (resolving them would be I/O, and SIP peers send addresses).
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut f = value.split_ascii_whitespace();
    let (nettype, addrtype, address) = (f.next()?, f.next()?, f.next()?);
    if !nettype.eq_ignore_ascii_case("IN") {
        return None;
    }
    let address = address.split('/').next()?;
    if addrtype.eq_ignore_ascii_case("IP4") {
        address.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if addrtype.eq_ignore_ascii_case("IP6") {
        address.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RTP payload type, 0..=127.
fn parse_pt(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|&pt| pt <= 127)
}

/// `<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(arg: &str) -> Option<(u8, String, u32, u8)> {
    let (pt, rest) = arg.split_once(|c: char| c.is_ascii_whitespace())?;
    let pt = parse_pt(pt)?;
    let mut parts = rest.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let clock = parts.next()?.trim();
    if clock.is_empty() || !clock.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let clock: u32 = clock.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => c.trim().parse::<u8>().ok().filter(|&c| c >= 1)?,
        None => 1,
    };
    Some((pt, name.to_owned(), clock, channels))
}

/// `a=ptime:<ms>`, also accepting a fractional form like `20.0`.
fn parse_ptime(arg: &str) -> Option<u32> {
    let whole = arg.split('.').next()?.trim();
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}
