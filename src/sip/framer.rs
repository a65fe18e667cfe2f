//! Cutting a TCP byte stream into SIP messages (RFC 3261 §18.3).

use std::net::SocketAddr;

use rsipstack::sip::HeadersExt;

use super::error::SipError;
use super::message::{add_warning, new_tag, SERVER};
use super::peer::Peer;
use super::salvage::{find_crlfcrlf, salvage};
use super::via::stamp_top_via;

/// A buffer that grew past this is given back once it holds nothing (or
/// moved to a right-sized one when little of it is still in use): an idle
/// connection keeps no buffer at all.
const KEEP_CAPACITY: usize = 4096;

/// One item cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete SIP message (headers and the body its Content-Length says).
    Message(Vec<u8>),
    /// A `CRLFCRLF` keep-alive ping (RFC 5626 §4.4.1): answer with `CRLF`.
    Ping,
}

/// Feeds on arbitrary chunks of a TCP stream and yields whole messages,
/// framed by Content-Length (header name case-insensitive, compact `l`
/// too). CRLF keep-alives between messages are skipped. A message whose
/// headers or declared size exceed the limit is an error: the stream cannot
/// be resynchronised, so the shell closes the connection, after sending
/// [`StreamFramer::refusal`] when the head was readable enough to answer.
///
/// Memory: the buffer starts empty, grows with the unfinished message (to
/// at most the limit plus one pushed chunk, never doubling past it) and is
/// given back when the message is complete.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// How far past `start` the search for the end of headers got.
    scanned: usize,
    /// CR/LF bytes skipped since the last message or ping.
    crlf_run: usize,
    max: usize,
    failed: Option<SipError>,
    /// The status code and head of the message that failed, to answer it.
    refused: Option<(u16, Vec<u8>)>,
}

impl StreamFramer {
    /// A framer refusing messages larger than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            crlf_run: 0,
            max: max_message_size,
            failed: None,
            refused: None,
        }
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let need = self.buf.len().saturating_add(chunk.len());
        if need > self.buf.capacity() {
            // Amortised growth, but never past what the limit can need:
            // the limit plus the chunk that shows it is exceeded.
            let ceiling = self
                .start
                .saturating_add(self.max)
                .saturating_add(chunk.len());
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(512)
                .min(ceiling)
                .max(need);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Bytes of memory the buffer holds (its capacity).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// After an error: the response that tells the sender why its message
    /// was refused (`413` when the declared body makes it too large, `513`
    /// when the headers alone are, `400` for a Content-Length that is not a
    /// number), with the top Via stamped for `from`, or `None` when the head
    /// is not a request with the headers a response copies (or is an ACK).
    /// `local` names vmail in the Warning header.
    pub fn refusal(&self, from: &Peer, local: SocketAddr) -> Option<Vec<u8>> {
        let (code, head) = self.refused.as_ref()?;
        let s = salvage(head)?;
        if s.method == "ACK" {
            return None;
        }
        let mut resp = s.response(*code, None, &new_tag(), SERVER);
        stamp_top_via(resp.via_header_mut().ok()?, from)?;
        let why = match code {
            413 => "message body too large",
            513 => "message headers too large",
            _ => "invalid Content-Length",
        };
        let agent = rsipstack::sip::HostWithPort::from(local).to_string();
        add_warning(&mut resp, &agent, why);
        Some(resp.to_bytes())
    }

    /// The next complete message, skipping keep-alives; `Ok(None)` when more
    /// bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, SipError> {
        loop {
            match self.next_frame()? {
                Some(Frame::Message(m)) => return Ok(Some(m)),
                Some(Frame::Ping) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next message or keep-alive ping; `Ok(None)` when more bytes are
    /// needed. After an error every call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SipError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.cut() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.scanned = 0;
                self.start = 0;
                Err(e)
            }
        }
    }

    fn cut(&mut self) -> Result<Option<Frame>, SipError> {
        // Keep-alives: CR and LF between messages.
        while let Some(&b) = self.buf.get(self.start) {
            if b != b'\r' && b != b'\n' {
                break;
            }
            self.start += 1;
            self.crlf_run += 1;
            if self.crlf_run == 4 {
                self.crlf_run = 0;
                self.compact();
                return Ok(Some(Frame::Ping));
            }
        }
        let data = self.buf.get(self.start..).unwrap_or_default();
        if data.is_empty() {
            self.compact();
            return Ok(None);
        }
        self.crlf_run = 0;
        let from = self.scanned.saturating_sub(3);
        let head_end = data.get(from..).and_then(find_crlfcrlf).map(|p| p + from);
        let Some(pos) = head_end else {
            if data.len() > self.max {
                // Answerable from the complete lines that did arrive.
                let lines = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let head = data.get(..lines.min(self.max)).unwrap_or_default().to_vec();
                self.refused = Some((513, head));
                return Err(SipError::HeadersTooLarge { limit: self.max });
            }
            self.scanned = data.len();
            return Ok(None);
        };
        let head_len = pos + 4;
        let head = data.get(..head_len).unwrap_or_default();
        if head_len > self.max {
            self.refused = Some((513, head.get(..self.max).unwrap_or(head).to_vec()));
            return Err(SipError::HeadersTooLarge { limit: self.max });
        }
        let body_len = match content_length(head) {
            Ok(n) => n,
            Err(e) => {
                self.refused = Some((400, head.to_vec()));
                return Err(e);
            }
        };
        let total = head_len.saturating_add(body_len);
        if total > self.max {
            self.refused = Some((413, head.to_vec()));
            return Err(SipError::MessageTooLarge {
                size: total,
                limit: self.max,
            });
        }
        self.scanned = pos;
        let Some(msg) = data.get(..total) else {
            return Ok(None);
        };
        let msg = msg.to_vec();
        self.start += total;
        self.scanned = 0;
        self.compact();
        Ok(Some(Frame::Message(msg)))
    }

    fn compact(&mut self) {
        if self.start >= self.buf.len() {
            self.start = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        } else if self.buf.capacity() > KEEP_CAPACITY
            && (self.buf.len() - self.start) * 4 < self.buf.capacity()
        {
            // Little of a big buffer is in use: move it to a small one.
            self.buf = self.buf.get(self.start..).unwrap_or_default().to_vec();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// The Content-Length of a header block (0 when absent).
fn content_length(head: &[u8]) -> Result<usize, SipError> {
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            return std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(SipError::BadContentLength);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> String {
        format!(
            "OPTIONS sip:vm@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn drain(f: &mut StreamFramer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn many_messages_in_one_chunk_with_keepalives_between() {
        let a = msg("hello");
        let b = msg("");
        let mut f = StreamFramer::new(65536);
        f.push(format!("\r\n\r\n{a}\r\n{b}\r\n\r\n").as_bytes());
        let got = drain(&mut f);
        assert_eq!(got, vec![a.into_bytes(), b.into_bytes()]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn a_message_split_byte_by_byte() {
        let a = msg("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n");
        let mut f = StreamFramer::new(65536);
        let mut got = Vec::new();
        for b in a.as_bytes() {
            f.push(&[*b]);
            got.extend(drain(&mut f));
        }
        assert_eq!(got, vec![a.into_bytes()]);
    }

    #[test]
    fn compact_l_header_and_odd_spacing() {
        let m = "BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\nl :3\r\n\r\nabcBYE";
        let mut f = StreamFramer::new(65536);
        f.push(m.as_bytes());
        assert_eq!(
            f.next_message().unwrap().unwrap(),
            b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\nl :3\r\n\r\nabc".to_vec()
        );
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.buffered(), 3);
    }

    #[test]
    fn pings_are_reported() {
        let mut f = StreamFramer::new(100);
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn oversize_headers_and_bodies_are_errors() {
        let mut f = StreamFramer::new(64);
        f.push(&[b'A'; 65]);
        assert_eq!(
            f.next_message(),
            Err(SipError::HeadersTooLarge { limit: 64 })
        );
        // The framer stays failed.
        f.push(b"\r\n\r\n");
        assert!(f.next_message().is_err());

        let mut f = StreamFramer::new(200);
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(SipError::MessageTooLarge {
                size: 1048,
                limit: 200
            })
        ));

        let mut f = StreamFramer::new(200);
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n");
        assert_eq!(f.next_message(), Err(SipError::BadContentLength));
    }

    #[test]
    fn missing_content_length_means_no_body() {
        let mut f = StreamFramer::new(200);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\nOPTIONS");
        assert_eq!(
            f.next_message().unwrap().unwrap(),
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n".to_vec()
        );
    }

    fn tcp_peer() -> Peer {
        Peer::tcp("192.0.2.1:40000".parse().unwrap(), super::super::ConnId(1))
    }

    fn local() -> SocketAddr {
        "192.0.2.9:5060".parse().unwrap()
    }

    const HEAD: &str = "INVITE sip:1001@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 192.0.2.1:40000;branch=z9hG4bKbig;rport\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:1001@example.com>\r\n\
        Call-ID: big\r\nCSeq: 1 INVITE\r\n";

    #[test]
    fn an_oversize_body_is_refused_413_with_the_via_stamped() {
        let mut f = StreamFramer::new(1000);
        f.push(format!("{HEAD}Content-Length: 5000\r\n\r\nxxxx").as_bytes());
        assert!(matches!(
            f.next_message(),
            Err(SipError::MessageTooLarge { limit: 1000, .. })
        ));
        let r = String::from_utf8(f.refusal(&tcp_peer(), local()).unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 413 "), "{r}");
        assert!(r.contains("Call-ID: big\r\n"), "{r}");
        assert!(r.contains("CSeq: 1 INVITE\r\n"), "{r}");
        assert!(r.contains("rport=40000"), "{r}");
        assert!(r.contains("Warning: 399 192.0.2.9:5060 "), "{r}");
        assert_eq!(f.capacity(), 0, "the buffer is given back");
    }

    #[test]
    fn endless_headers_are_refused_513_from_the_lines_that_arrived() {
        let mut f = StreamFramer::new(1000);
        f.push(HEAD.as_bytes());
        for _ in 0..100 {
            f.push(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            f.next_message(),
            Err(SipError::HeadersTooLarge { limit: 1000 })
        );
        let r = String::from_utf8(f.refusal(&tcp_peer(), local()).unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 513 "), "{r}");

        // A bad Content-Length is answered 400.
        let mut f = StreamFramer::new(1000);
        f.push(format!("{HEAD}Content-Length: many\r\n\r\n").as_bytes());
        assert_eq!(f.next_message(), Err(SipError::BadContentLength));
        let r = String::from_utf8(f.refusal(&tcp_peer(), local()).unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    }

    #[test]
    fn no_refusal_without_a_readable_request_head() {
        let mut f = StreamFramer::new(64);
        f.push(&[b'A'; 65]);
        assert!(f.next_message().is_err());
        assert_eq!(f.refusal(&tcp_peer(), local()), None);

        let mut f = StreamFramer::new(200);
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 1000\r\n\r\n");
        assert!(f.next_message().is_err());
        assert_eq!(f.refusal(&tcp_peer(), local()), None);

        let mut f = StreamFramer::new(300);
        let ack = HEAD.replace("INVITE", "ACK");
        f.push(format!("{ack}Content-Length: 1000\r\n\r\n").as_bytes());
        assert!(f.next_message().is_err());
        assert_eq!(f.refusal(&tcp_peer(), local()), None);

        let mut f = StreamFramer::new(300);
        f.push(msg("").as_bytes());
        assert!(f.next_message().unwrap().is_some());
        assert_eq!(f.refusal(&tcp_peer(), local()), None);
    }

    #[test]
    fn the_buffer_stays_bounded_and_is_given_back() {
        let max = 64 * 1024;
        let mut f = StreamFramer::new(max);
        assert_eq!(f.capacity(), 0);
        // An unfinished message trickled in chunks never grows the buffer
        // past the limit plus one chunk.
        f.push(HEAD.as_bytes());
        let chunk = [b'a'; 8192];
        f.push(format!("Content-Length: {}\r\n\r\n", max - 1000).as_bytes());
        let mut pushed = HEAD.len();
        while pushed < max - 9000 {
            f.push(&chunk);
            pushed += chunk.len();
            assert_eq!(f.next_message(), Ok(None));
            assert!(f.capacity() <= max + chunk.len(), "{}", f.capacity());
        }
        // Completing it returns it and frees the buffer.
        let rest = max - 1000 - (f.buffered() - find_crlfcrlf(&f.buf).unwrap() - 4);
        f.push(&vec![b'b'; rest]);
        assert!(f.capacity() <= max + rest);
        assert!(f.next_message().unwrap().is_some());
        assert_eq!((f.buffered(), f.capacity()), (0, 0));

        // A big message followed by a few bytes of the next: the rest moves
        // to a small buffer.
        let big = msg(&"x".repeat(20_000));
        f.push(format!("{big}OPT").as_bytes());
        assert!(f.next_message().unwrap().is_some());
        assert_eq!(f.buffered(), 3);
        assert!(f.capacity() <= KEEP_CAPACITY, "{}", f.capacity());
    }
}
