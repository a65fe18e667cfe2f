//! Transfer with REFER (RFC 3515) as the transferor: the REFER vmail sends
//! into a call's dialog, and how the answers to it (the REFER's response,
//! then NOTIFYs of the implicit `refer` subscription carrying a
//! `message/sipfrag` status line, RFC 3420) decide the outcome.

use rsipstack::sip::{Header, Method, Request};

use super::dialog::Dialog;
use super::error::SipError;

/// Where a transfer stands after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferProgress {
    /// Still going (REFER accepted, or the target is being called).
    Pending,
    /// The caller reached the target (a `2xx` sipfrag).
    Succeeded,
    /// Refused, failed, or the subscription ended without a `2xx`.
    Failed,
}

/// A REFER in `dialog` asking the peer to call `target`, referred by
/// `referred_by` (RFC 3892); both are URIs, put in angle brackets.
pub fn make_refer(
    dialog: &mut Dialog,
    target: &str,
    referred_by: &str,
) -> Result<Request, SipError> {
    let mut refer = dialog.make_request(Method::Refer)?;
    refer
        .headers
        .push(Header::Other("Refer-To".into(), format!("<{target}>")));
    refer.headers.push(Header::Other(
        "Referred-By".into(),
        format!("<{referred_by}>"),
    ));
    Ok(refer)
}

/// The final response to the REFER: `2xx` means the peer will try (wait
/// for its NOTIFYs); anything else (`405`, `603`, a timeout as `408`)
/// ends the transfer.
pub fn on_refer_response(code: u16) -> ReferProgress {
    match code {
        100..=299 => ReferProgress::Pending,
        _ => ReferProgress::Failed,
    }
}

/// Whether an `Event` header value names the `refer` package (an `;id=`
/// parameter is allowed).
pub fn is_refer_event(event: &str) -> bool {
    event
        .split(';')
        .next()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("refer"))
}

/// The status code of a `message/sipfrag` body's status line
/// (`SIP/2.0 200 OK`); `None` when the body is no such line.
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// A NOTIFY of the `refer` subscription: its sipfrag status (if any) and
/// whether `Subscription-State` says `terminated`.
pub fn on_refer_notify(status: Option<u16>, terminated: bool) -> ReferProgress {
    match status {
        Some(200..=299) => ReferProgress::Succeeded,
        Some(300..) => ReferProgress::Failed,
        _ if terminated => ReferProgress::Failed,
        _ => ReferProgress::Pending,
    }
}

/// The value of the first header named `name` (case-insensitive).
pub fn header_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
}

/// Whether a `Subscription-State` value is `terminated`.
pub fn is_terminated(state: &str) -> bool {
    state
        .split(';')
        .next()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Request {
        let raw = "INVITE sip:1001@vm.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv\r\n\
             From: <sip:+15550001@example.com>;tag=from1\r\n\
             To: <sip:1001@example.com>\r\n\
             Call-ID: refer-1@192.0.2.1\r\n\
             CSeq: 7 INVITE\r\n\
             Contact: <sip:alice@192.0.2.1:5070>\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n";
        Request::try_from(raw).unwrap()
    }

    #[test]
    fn refer_carries_refer_to_and_referred_by_in_the_dialog() {
        let mut d = Dialog::new_uas(&invite(), "vmtag", "<sip:vmail@192.0.2.10:5060>").unwrap();
        let r = make_refer(
            &mut d,
            "sip:operator@pbx.example.com",
            "sip:1001@example.com",
        )
        .unwrap();
        assert_eq!(r.method, Method::Refer);
        assert_eq!(r.uri.to_string(), "sip:alice@192.0.2.1:5070");
        assert_eq!(
            header_value(&r, "Refer-To"),
            Some("<sip:operator@pbx.example.com>")
        );
        assert_eq!(
            header_value(&r, "Referred-By"),
            Some("<sip:1001@example.com>")
        );
        assert_eq!(header_value(&r, "CSeq"), Some("1 REFER"));
        assert_eq!(
            header_value(&r, "To"),
            Some("<sip:+15550001@example.com>;tag=from1")
        );
        assert_eq!(
            header_value(&r, "Contact"),
            Some("<sip:vmail@192.0.2.10:5060>")
        );
        // The text survives a round trip through the parser.
        let again = Request::try_from(r.to_string().as_str()).unwrap();
        assert_eq!(
            header_value(&again, "Refer-To"),
            Some("<sip:operator@pbx.example.com>")
        );
    }

    #[test]
    fn responses_and_notifies_decide_the_outcome() {
        assert_eq!(on_refer_response(202), ReferProgress::Pending);
        assert_eq!(on_refer_response(200), ReferProgress::Pending);
        assert_eq!(on_refer_response(405), ReferProgress::Failed);
        assert_eq!(on_refer_response(603), ReferProgress::Failed);
        assert_eq!(on_refer_response(408), ReferProgress::Failed);

        assert_eq!(on_refer_notify(Some(100), false), ReferProgress::Pending);
        assert_eq!(on_refer_notify(Some(180), false), ReferProgress::Pending);
        assert_eq!(on_refer_notify(Some(200), true), ReferProgress::Succeeded);
        assert_eq!(on_refer_notify(Some(486), true), ReferProgress::Failed);
        assert_eq!(on_refer_notify(Some(503), false), ReferProgress::Failed);
        assert_eq!(on_refer_notify(None, false), ReferProgress::Pending);
        assert_eq!(on_refer_notify(Some(180), true), ReferProgress::Failed);
        assert_eq!(on_refer_notify(None, true), ReferProgress::Failed);
    }

    #[test]
    fn sipfrag_and_headers_parse() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"\r\nSIP/2.0 100 Trying"), Some(100));
        assert_eq!(sipfrag_status(b"sip/2.0 603 Declined\r\n"), Some(603));
        assert_eq!(sipfrag_status(b"SIP/2.0 abc"), None);
        assert_eq!(sipfrag_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 999 Nope"), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
        assert_eq!(sipfrag_status(b""), None);
        assert!(is_refer_event("refer"));
        assert!(is_refer_event(" Refer ;id=93"));
        assert!(!is_refer_event("message-summary"));
        assert!(is_terminated("terminated;reason=noresource"));
        assert!(!is_terminated("active;expires=60"));
    }
}
