//! Cutting a TCP byte stream into SIP messages (RFC 3261 §18.3).

use super::error::SipError;
use super::salvage::find_crlfcrlf;

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
/// be resynchronised, so the shell closes the connection.
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
        }
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
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
                return Err(SipError::HeadersTooLarge { limit: self.max });
            }
            self.scanned = data.len();
            return Ok(None);
        };
        let head_len = pos + 4;
        if head_len > self.max {
            return Err(SipError::HeadersTooLarge { limit: self.max });
        }
        let body_len = content_length(data.get(..pos).unwrap_or_default())?;
        let total = head_len
            .checked_add(body_len)
            .ok_or(SipError::BadContentLength)?;
        if total > self.max {
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
            self.buf.clear();
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
}
