//! The `message-summary` body (RFC 3842 §5).

use crate::store::Counts;

/// The event package name (the `Event` header value).
pub const EVENT: &str = "message-summary";
/// The body's content type.
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// Whether an `Event` header value names the `message-summary` package
/// (parameters such as `;id=` are ignored; package names are
/// case-insensitive tokens).
pub fn is_message_summary(event: &str) -> bool {
    event
        .split(';')
        .next()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case(EVENT))
}

/// The body for `account` (the mailbox AOR, e.g. `sip:1001@example.com`):
/// `Messages-Waiting` is `yes` while there are new messages; the voice
/// line gives new/old and, in parentheses, the urgent ones among them.
pub fn summary_body(account: &str, c: &Counts) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} ({}/{})\r\n",
        if c.new > 0 { "yes" } else { "no" },
        c.new,
        c.old,
        c.urgent_new,
        c.urgent_old
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_3842_lines() {
        let c = Counts {
            new: 2,
            old: 5,
            urgent_new: 1,
            urgent_old: 0,
        };
        assert_eq!(
            summary_body("sip:1001@example.com", &c),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@example.com\r\nVoice-Message: 2/5 (1/0)\r\n"
        );
        let none = summary_body("sip:1001@example.com", &Counts::default());
        assert!(none.starts_with("Messages-Waiting: no\r\n"));
        assert!(none.ends_with("Voice-Message: 0/0 (0/0)\r\n"));
        // Old messages alone do not light the lamp.
        let old = Counts {
            old: 3,
            ..Counts::default()
        };
        assert!(summary_body("sip:a@b", &old).starts_with("Messages-Waiting: no"));
    }

    #[test]
    fn event_package_is_matched_without_parameters() {
        assert!(is_message_summary("message-summary"));
        assert!(is_message_summary(" Message-Summary ;id=3"));
        assert!(!is_message_summary("presence"));
        assert!(!is_message_summary(""));
        assert!(!is_message_summary("message-summary2"));
    }
}
