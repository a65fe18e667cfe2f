//! Typed reads of JSON values, each failing with the [`Rule`] it breaks,
//! and the sink that collects errors.

use serde_json::Value;

use super::error::{ConfigError, Entry, Rule};

/// Collects every error found; validation never stops at the first one.
#[derive(Default)]
pub(super) struct Sink {
    pub errors: Vec<ConfigError>,
}

impl Sink {
    /// Record an error about `field` of `entry`.
    pub fn field(&mut self, entry: &Entry, field: impl Into<String>, rule: Rule) {
        self.errors.push(ConfigError {
            entry: entry.clone(),
            field: Some(field.into()),
            rule,
        });
    }

    /// Record an error about `entry` as a whole.
    pub fn whole(&mut self, entry: &Entry, rule: Rule) {
        self.errors.push(ConfigError {
            entry: entry.clone(),
            field: None,
            rule,
        });
    }

    /// Number of errors so far (to tell whether a step added any).
    pub fn count(&self) -> usize {
        self.errors.len()
    }
}

/// A value as short JSON text for messages.
pub(super) fn shown(v: &Value) -> String {
    const MAX: usize = 48;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// A string shown as JSON (quoted, escaped, shortened).
pub(super) fn shown_str(s: &str) -> String {
    shown(&Value::String(s.to_owned()))
}

fn wrong(expected: &'static str, v: &Value) -> Rule {
    Rule::WrongType {
        expected,
        found: shown(v),
    }
}

/// An integer in `min..=max`.
pub(super) fn int_in(v: &Value, min: i64, max: i64) -> Result<i64, Rule> {
    match v.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Rule::IntegerRange {
            min,
            max,
            found: shown(v),
        }),
    }
}

/// A port number 1..=65535.
pub(super) fn port(v: &Value) -> Result<u16, Rule> {
    int_in(v, 1, i64::from(u16::MAX)).map(|n| n as u16)
}

/// A `u32` in `min..=max`.
pub(super) fn u32_in(v: &Value, min: u32, max: u32) -> Result<u32, Rule> {
    int_in(v, i64::from(min), i64::from(max)).map(|n| n as u32)
}

/// A `u64` in `min..=max` (bounded well below `i64::MAX`).
pub(super) fn u64_in(v: &Value, min: u64, max: u64) -> Result<u64, Rule> {
    let lo = i64::try_from(min).unwrap_or(i64::MAX);
    let hi = i64::try_from(max).unwrap_or(i64::MAX);
    int_in(v, lo, hi).map(|n| n as u64)
}

/// `true` or `false`.
pub(super) fn boolean(v: &Value) -> Result<bool, Rule> {
    v.as_bool().ok_or_else(|| wrong("true or false", v))
}

/// Any string.
pub(super) fn string(v: &Value) -> Result<&str, Rule> {
    v.as_str().ok_or_else(|| wrong("a string", v))
}

/// A list.
pub(super) fn list(v: &Value) -> Result<&Vec<Value>, Rule> {
    v.as_array().ok_or_else(|| wrong("a list", v))
}

/// An object.
pub(super) fn object(v: &Value) -> Result<&serde_json::Map<String, Value>, Rule> {
    v.as_object().ok_or_else(|| wrong("an object", v))
}

/// The known key closest to an unknown one, if it is a likely typo.
pub(super) fn suggest(unknown: &str, known: &[&str]) -> Option<String> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (distance(&unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

/// Levenshtein distance (small strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers() {
        assert_eq!(int_in(&json!(5), 1, 9), Ok(5));
        for bad in [
            json!(0),
            json!(10),
            json!(1.5),
            json!("3"),
            json!(null),
            json!(-1),
        ] {
            assert!(
                matches!(int_in(&bad, 1, 9), Err(Rule::IntegerRange { .. })),
                "{bad}"
            );
        }
        assert_eq!(port(&json!(65535)), Ok(65535));
        assert!(port(&json!(0)).is_err());
        assert!(port(&json!(65536)).is_err());
        assert_eq!(u64_in(&json!(3000), 1, u64::MAX), Ok(3000));
    }

    #[test]
    fn suggestions() {
        let keys = ["sip_port", "http_port", "rtp_port_min", "language"];
        assert_eq!(suggest("sip_prot", &keys).as_deref(), Some("sip_port"));
        assert_eq!(suggest("SIP_PORT", &keys).as_deref(), Some("sip_port"));
        assert_eq!(suggest("langauge", &keys).as_deref(), Some("language"));
        assert_eq!(suggest("colour", &keys), None);
    }

    #[test]
    fn long_values_are_shortened() {
        let s = shown(&json!("x".repeat(500)));
        assert!(s.chars().count() <= 49);
    }
}
