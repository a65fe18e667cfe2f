//! Enough of a request that rsip cannot parse to answer it (`400`, `413`,
//! `501`): the request line's method and the headers a response copies.

use rsipstack::sip::headers::untyped::{CSeq, CallId, ContentLength, From, Server, To, Via};
use rsipstack::sip::{Header, Headers, Response, Version};

use super::message::{is_token, status_code};

/// At most this many Via headers are copied into a salvage response.
const MAX_VIAS: usize = 32;

/// The parts of an unparsable request that a response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Salvaged {
    /// The request line's method token (maybe unknown to vmail).
    pub method: String,
    /// The Via values, top first.
    pub vias: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
}

/// Offset of the first `\r\n\r\n`, if any.
pub(crate) fn find_crlfcrlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn is_clean(v: &str) -> bool {
    !v.is_empty() && !v.chars().any(|c| c.is_control() && c != '\t')
}

/// Read the request line and the Via, From, To, Call-ID and CSeq headers.
/// `None` when the start line is not a request line or a header is missing.
pub(crate) fn salvage(bytes: &[u8]) -> Option<Salvaged> {
    let head_end = find_crlfcrlf(bytes).unwrap_or(bytes.len());
    let head = bytes.get(..head_end)?;
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));

    let start = std::str::from_utf8(lines.next()?).ok()?;
    let mut parts = start.split_ascii_whitespace();
    let (method, _uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !is_token(method)
        || method.starts_with("SIP/")
        || !version.starts_with("SIP/")
    {
        return None;
    }

    let mut s = Salvaged {
        method: method.to_string(),
        vias: Vec::new(),
        from: String::new(),
        to: String::new(),
        call_id: String::new(),
        cseq: String::new(),
    };
    // Which field a folded continuation line extends.
    let mut last: Option<usize> = None;
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else {
            last = None;
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some(field) = last {
                let slot = match field {
                    0 => s.vias.last_mut(),
                    1 => Some(&mut s.from),
                    2 => Some(&mut s.to),
                    3 => Some(&mut s.call_id),
                    _ => Some(&mut s.cseq),
                };
                if let Some(slot) = slot {
                    slot.push(' ');
                    slot.push_str(line.trim());
                }
            }
            continue;
        }
        last = None;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim().to_string();
        let eq = |a: &str, b: &str| name.eq_ignore_ascii_case(a) || name.eq_ignore_ascii_case(b);
        if eq("Via", "v") {
            if s.vias.len() < MAX_VIAS {
                s.vias.push(value);
                last = Some(0);
            }
        } else if eq("From", "f") && s.from.is_empty() {
            s.from = value;
            last = Some(1);
        } else if eq("To", "t") && s.to.is_empty() {
            s.to = value;
            last = Some(2);
        } else if eq("Call-ID", "i") && s.call_id.is_empty() {
            s.call_id = value;
            last = Some(3);
        } else if eq("CSeq", "CSeq") && s.cseq.is_empty() {
            s.cseq = value;
            last = Some(4);
        }
    }
    let complete = !s.vias.is_empty()
        && s.vias.iter().all(|v| is_clean(v))
        && is_clean(&s.from)
        && is_clean(&s.to)
        && is_clean(&s.call_id)
        && is_clean(&s.cseq);
    complete.then_some(s)
}

impl Salvaged {
    /// A response copying the salvaged headers; `to_tag` is added when the
    /// To has none.
    pub fn response(
        &self,
        code: u16,
        reason: Option<&str>,
        to_tag: &str,
        server: &str,
    ) -> Response {
        let mut headers = Headers::default();
        for v in &self.vias {
            headers.push(Header::Via(Via::new(v.clone())));
        }
        headers.push(Header::From(From::new(self.from.clone())));
        let to = if self.to.to_ascii_lowercase().contains("tag=") {
            self.to.clone()
        } else {
            format!("{};tag={}", self.to, to_tag)
        };
        headers.push(Header::To(To::new(to)));
        headers.push(Header::CallId(CallId::new(self.call_id.clone())));
        headers.push(Header::CSeq(CSeq::new(self.cseq.clone())));
        headers.push(Header::Server(Server::new(server)));
        headers.push(Header::ContentLength(ContentLength::new("0")));
        Response {
            status_code: status_code(code, reason),
            wire_reason: None,
            version: Version::V2,
            headers,
            body: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOO: &str = "FOO sip:vm@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK0\r\n\
        f: <sip:a@example.com>;tag=1\r\n\
        t: <sip:vm@example.com>\r\n\
        i: abc\r\n\
        CSeq: 1\r\n FOO\r\n\
        \r\n";

    #[test]
    fn salvages_compact_and_folded_headers() {
        let s = salvage(FOO.as_bytes()).unwrap();
        assert_eq!(s.method, "FOO");
        assert_eq!(s.vias.len(), 2);
        assert_eq!(s.cseq, "1 FOO");
        let r = s.response(501, None, "t1", "vmail");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(
            text.starts_with("SIP/2.0 501 Not Implemented\r\n"),
            "{text}"
        );
        assert!(text.contains("To: <sip:vm@example.com>;tag=t1\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK0\r\n"));
    }

    #[test]
    fn refuses_responses_and_incomplete_requests() {
        assert!(salvage(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n").is_none());
        let no_call_id = FOO.replace("i: abc\r\n", "");
        assert!(salvage(no_call_id.as_bytes()).is_none());
        assert!(salvage(b"").is_none());
        assert!(salvage(b"\xff\xfe INVITE\r\n").is_none());
    }
}
