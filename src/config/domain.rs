//! Domain names: one normal form for configuration, routing and SIP.

/// Longest domain name accepted (RFC 1035 presentation form without the
/// trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 63;

/// What is wrong with a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Nothing (or only a dot) was given.
    #[error("empty")]
    Empty,
    /// Longer than 253 characters.
    #[error("{len} characters long, at most {MAX_DOMAIN_LEN} allowed")]
    TooLong {
        /// Length of the name without its trailing dot.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("has an empty label (two dots in a row or a leading dot)")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("has a label of {len} characters, at most {MAX_LABEL_LEN} allowed")]
    LabelTooLong {
        /// The label's length.
        len: usize,
    },
    /// A character other than a-z, 0-9, '-' and '.'.
    #[error("contains {ch:?}; only letters a-z, digits, '-' and '.' are allowed (write international names in their xn-- form)")]
    BadChar {
        /// The first offending character.
        ch: char,
    },
    /// A label that begins or ends with '-'.
    #[error("has a label that begins or ends with '-'")]
    HyphenAtEdge,
}

/// Bring a domain name to its normal form: ASCII lower case, one trailing
/// dot removed, checked against RFC 1035 rules (labels of 1 to 63
/// characters from `a-z0-9-`, not beginning or ending with `-`; at most 253
/// characters in all). An IPv4 address passes as a name of digit labels,
/// which is what a SIP URI `user@192.0.2.1` needs.
pub fn normalize_domain(s: &str) -> Result<String, DomainError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    let len = s.chars().count();
    if len > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong { len });
    }
    let lower = s.to_ascii_lowercase();
    for label in lower.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(DomainError::BadChar { ch });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong { len: label.len() });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::HyphenAtEdge);
        }
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize_domain("Example.RU").unwrap(), "example.ru");
        assert_eq!(normalize_domain("example.ru.").unwrap(), "example.ru");
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        assert_eq!(
            normalize_domain("xn--e1afmkfd.xn--p1ai").unwrap(),
            "xn--e1afmkfd.xn--p1ai"
        );
        assert_eq!(normalize_domain("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(normalize_domain("a-b.c1").unwrap(), "a-b.c1");
    }

    #[test]
    fn only_one_trailing_dot_is_stripped() {
        assert_eq!(normalize_domain("a.ru.."), Err(DomainError::EmptyLabel));
        assert_eq!(normalize_domain("."), Err(DomainError::Empty));
        assert_eq!(normalize_domain(""), Err(DomainError::Empty));
    }

    #[test]
    fn bad_names() {
        assert_eq!(normalize_domain("a..b"), Err(DomainError::EmptyLabel));
        assert_eq!(normalize_domain(".a.b"), Err(DomainError::EmptyLabel));
        assert_eq!(normalize_domain("-x.ru"), Err(DomainError::HyphenAtEdge));
        assert_eq!(normalize_domain("x-.ru"), Err(DomainError::HyphenAtEdge));
        assert_eq!(
            normalize_domain("a_b.ru"),
            Err(DomainError::BadChar { ch: '_' })
        );
        assert_eq!(
            normalize_domain("*.ru"),
            Err(DomainError::BadChar { ch: '*' })
        );
        assert_eq!(
            normalize_domain("a b"),
            Err(DomainError::BadChar { ch: ' ' })
        );
        assert_eq!(
            normalize_domain("пример.рф"),
            Err(DomainError::BadChar { ch: 'п' })
        );
        assert_eq!(
            normalize_domain("a/../b"),
            Err(DomainError::BadChar { ch: '/' })
        );
    }

    #[test]
    fn lengths() {
        let label63 = "a".repeat(63);
        assert!(normalize_domain(&format!("{label63}.ru")).is_ok());
        assert_eq!(
            normalize_domain(&format!("{}.ru", "a".repeat(64))),
            Err(DomainError::LabelTooLong { len: 64 })
        );
        // 4 labels of 63 + 3 dots = 255 > 253
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(
            normalize_domain(&long),
            Err(DomainError::TooLong { len: 255 })
        );
        // exactly 253 passes, with or without the trailing dot
        let ok = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(ok.len(), 253);
        assert!(normalize_domain(&ok).is_ok());
        assert!(normalize_domain(&format!("{ok}.")).is_ok());
        assert_eq!(
            normalize_domain(&"a".repeat(300)),
            Err(DomainError::TooLong { len: 300 })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in ".{0,300}") {
            if let Ok(n) = normalize_domain(&s) {
                proptest::prop_assert_eq!(normalize_domain(&n), Ok(n.clone()));
                proptest::prop_assert!(n.len() <= MAX_DOMAIN_LEN);
            }
        }
    }
}
