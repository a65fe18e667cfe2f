//! DTMF carried in SIP INFO bodies: `application/dtmf-relay`
//! (`Signal=5\r\nDuration=160`) and `application/dtmf` (the digit alone).

use rsipstack::sip::{Header, Request};

/// The digit an INFO request carries, if its body is DTMF.
pub fn dtmf_from_info(req: &Request) -> Option<char> {
    let content_type = req.headers.iter().find_map(|h| match h {
        Header::ContentType(ct) => Some(ct.value().to_ascii_lowercase()),
        _ => None,
    })?;
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let body = std::str::from_utf8(req.body()).ok()?;
    match media.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| signal_digit(value.trim()))
                .flatten()
        }),
        "application/dtmf" => signal_digit(body.trim()),
        _ => None,
    }
}

/// `5`, `*`, `#`, `A`..`D`; some gateways send `10`/`11` for `*`/`#`.
fn signal_digit(s: &str) -> Option<char> {
    match s {
        "10" => Some('*'),
        "11" => Some('#'),
        _ => {
            let mut chars = s.chars();
            let c = chars.next()?.to_ascii_uppercase();
            if chars.next().is_some() {
                return None;
            }
            matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ct: &str, body: &str) -> Request {
        let text = format!(
            "INFO sip:vmail@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n\
             Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn relay_and_plain() {
        assert_eq!(
            dtmf_from_info(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            dtmf_from_info(&info("application/dtmf-relay", "Signal= #\r\n")),
            Some('#')
        );
        assert_eq!(
            dtmf_from_info(&info("Application/DTMF-Relay", "signal=11\r\n")),
            Some('#')
        );
        assert_eq!(dtmf_from_info(&info("application/dtmf", "*")), Some('*'));
        assert_eq!(dtmf_from_info(&info("application/dtmf", "12")), None);
        assert_eq!(
            dtmf_from_info(&info("application/dtmf-relay", "Duration=160")),
            None
        );
        assert_eq!(dtmf_from_info(&info("text/plain", "5")), None);
        assert_eq!(
            dtmf_from_info(&info("application/dtmf-relay", "Signal=x")),
            None
        );
    }
}
