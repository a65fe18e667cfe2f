//! Percent-decoding and validation of mailbox users and domains.
//!
//! These names become path components of the SiteShare store, so the rules
//! are a whitelist, checked after decoding.

/// Longest mailbox user, in characters.
pub(crate) const MAX_USER_LEN: usize = 64;

/// Longest domain name (RFC 1035).
const MAX_DOMAIN_LEN: usize = 253;

/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Decode RFC 3261 `escaped` characters (`%` HEX HEX). `None` on a broken
/// escape, on text that does not decode to UTF-8, or on input longer than
/// `max_len` bytes (checked before decoding).
pub(crate) fn percent_decode(s: &str, max_len: usize) -> Option<String> {
    if s.len() > max_len {
        return None;
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex_value(bytes.next()?)?;
            let lo = hex_value(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether a decoded user is a valid mailbox user: 1..=64 characters of
/// `[A-Za-z0-9._+-]`, no `..`, not starting or ending with `.` (a trailing
/// dot is dropped by SMB/Windows file systems and would alias another
/// mailbox).
pub(crate) fn is_valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !user.starts_with('.')
        && !user.ends_with('.')
        && !user.contains("..")
}

/// Normalise a domain name: lower-case, one trailing dot stripped, labels
/// of 1..=63 characters of `[a-z0-9-]`, at most 253 characters. `None`
/// when it is not such a name.
pub(crate) fn normalize_domain(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_DOMAIN_LEN {
        return None;
    }
    let lower = host.to_ascii_lowercase();
    let valid = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    valid.then_some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("alice", 64).as_deref(), Some("alice"));
        assert_eq!(percent_decode("%2B1555", 64).as_deref(), Some("+1555"));
        assert_eq!(percent_decode("a%40b", 64).as_deref(), Some("a@b"));
        assert_eq!(percent_decode("%2e%2E", 64).as_deref(), Some(".."));
        assert_eq!(percent_decode("%", 64), None);
        assert_eq!(percent_decode("%4", 64), None);
        assert_eq!(percent_decode("%zz", 64), None);
        assert_eq!(percent_decode("%ff", 64), None);
        assert_eq!(percent_decode("%c3%a9", 64).as_deref(), Some("é"));
        assert_eq!(percent_decode(&"a".repeat(65), 64), None);
    }

    #[test]
    fn users() {
        for ok in [
            "alice",
            "+15555551002",
            "bob.smith",
            "a_b-c+d",
            "1",
            &"x".repeat(64),
        ] {
            assert!(is_valid_user(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            ".hidden",
            "a..b",
            "trailing.",
            "a/b",
            "a\\b",
            "a\0b",
            "a b",
            "é",
            "*98",
            "a@b",
            "a;b",
            "a%2e",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn domains() {
        assert_eq!(
            normalize_domain("Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_domain("localhost").as_deref(), Some("localhost"));
        assert_eq!(
            normalize_domain("test.rootdomain.ru").as_deref(),
            Some("test.rootdomain.ru")
        );
        let label63 = "a".repeat(63);
        assert!(normalize_domain(&format!("{label63}.ru")).is_some());
        for bad in [
            "",
            ".",
            "example.com..",
            "a..b",
            ".example.com",
            "ex_ample.com",
            "exa mple.com",
            "../..",
            "a/b",
            "é.ru",
            &format!("{}.ru", "a".repeat(64)),
            &["abcdefghi"; 26].join("."),
        ] {
            assert_eq!(normalize_domain(bad), None, "{bad:?}");
        }
    }
}
