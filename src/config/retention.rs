//! `ext.retention`: how many days messages are kept, by folder, for the
//! instance and per domain.
//!
//! ```json
//! "retention": {
//!   "old_days": 30, "inbox_days": 0, "folders_days": 0,
//!   "domains": { "example.ru": { "old_days": 7 } }
//! }
//! ```
//!
//! Every period is a whole number of days from 0 to 36500; 0 keeps the
//! messages for ever (the default of every period: nothing expires unless
//! configured). A domain entry overrides only the periods it names; a
//! mailbox's `retention_old_days` (`mailbox.json`) overrides the `Old`
//! period of its domain.

use std::collections::BTreeMap;

use serde_json::Value;

use super::domain::normalize_domain;
use super::error::{Entry, Rule};
use super::value::{object, suggest, u32_in, Sink};

/// Largest period, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Days messages are kept in each kind of folder; 0: for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionDays {
    /// `INBOX` (new messages).
    pub inbox: u32,
    /// `Old` (heard messages).
    pub old: u32,
    /// The named folders: `Work`, `Family`, `Friends`, `Cust1`..`Cust5`.
    pub folders: u32,
}

impl RetentionDays {
    /// True when nothing expires.
    pub fn is_off(&self) -> bool {
        self.inbox == 0 && self.old == 0 && self.folders == 0
    }
}

/// The periods a domain entry sets; the others come from the top level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainRetention {
    /// `inbox_days`, if given.
    pub inbox: Option<u32>,
    /// `old_days`, if given.
    pub old: Option<u32>,
    /// `folders_days`, if given.
    pub folders: Option<u32>,
}

/// The whole `ext.retention` object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// The instance's periods.
    pub days: RetentionDays,
    /// Overrides by normalized domain.
    pub domains: BTreeMap<String, DomainRetention>,
}

impl Retention {
    /// The periods of a mailbox of `domain` (normalized) whose own
    /// `retention_old_days` is `mailbox_old_days`.
    pub fn for_mailbox(&self, domain: &str, mailbox_old_days: Option<u32>) -> RetentionDays {
        let mut d = self.days;
        if let Some(o) = self.domains.get(domain) {
            d.inbox = o.inbox.unwrap_or(d.inbox);
            d.old = o.old.unwrap_or(d.old);
            d.folders = o.folders.unwrap_or(d.folders);
        }
        if let Some(days) = mailbox_old_days {
            d.old = days;
        }
        d
    }

    /// True when no setting of the instance or of a domain expires
    /// anything (a mailbox setting alone can still turn it on).
    pub fn is_off(&self) -> bool {
        self.days.is_off()
            && self.domains.values().all(|o| {
                [o.inbox, o.old, o.folders]
                    .iter()
                    .all(|x| x.unwrap_or(0) == 0)
            })
    }
}

const PERIOD_KEYS: &[&str] = &["inbox_days", "old_days", "folders_days"];
const KEYS: &[&str] = &["inbox_days", "old_days", "folders_days", "domains"];

/// Reads `ext.retention`; errors go to `sink` under `field` and its
/// sub-fields. `Err` carries a whole-value error (not an object).
pub(super) fn parse_retention(
    v: &Value,
    field: &str,
    entry: &Entry,
    sink: &mut Sink,
) -> Result<Retention, Rule> {
    let obj = object(v)?;
    let mut out = Retention::default();
    for (k, val) in obj {
        let at = format!("{field}.{k}");
        match k.as_str() {
            "inbox_days" | "old_days" | "folders_days" => match days(val) {
                Ok(n) => set(&mut out.days, k, n),
                Err(rule) => sink.field(entry, at, rule),
            },
            "domains" => match object(val) {
                Ok(domains) => {
                    for (name, per) in domains {
                        let at = format!("{at}.{name}");
                        let domain = match normalize_domain(name) {
                            Ok(d) => d,
                            Err(error) => {
                                sink.field(
                                    entry,
                                    at,
                                    Rule::BadDomain {
                                        domain: name.clone(),
                                        error,
                                    },
                                );
                                continue;
                            }
                        };
                        if let Some(o) = domain_entry(per, &at, entry, sink) {
                            out.domains.insert(domain, o);
                        }
                    }
                }
                Err(rule) => sink.field(entry, at, rule),
            },
            _ => sink.field(
                entry,
                at,
                Rule::UnknownKey {
                    suggestion: suggest(k, KEYS),
                },
            ),
        }
    }
    Ok(out)
}

fn days(v: &Value) -> Result<u32, Rule> {
    u32_in(v, 0, MAX_RETENTION_DAYS)
}

fn set(d: &mut RetentionDays, key: &str, n: u32) {
    match key {
        "inbox_days" => d.inbox = n,
        "old_days" => d.old = n,
        _ => d.folders = n,
    }
}

fn domain_entry(v: &Value, at: &str, entry: &Entry, sink: &mut Sink) -> Option<DomainRetention> {
    let obj = match object(v) {
        Ok(o) => o,
        Err(rule) => {
            sink.field(entry, at, rule);
            return None;
        }
    };
    let before = sink.count();
    let mut out = DomainRetention::default();
    for (k, val) in obj {
        let field = format!("{at}.{k}");
        if !PERIOD_KEYS.contains(&k.as_str()) {
            sink.field(
                entry,
                field,
                Rule::UnknownKey {
                    suggestion: suggest(k, PERIOD_KEYS),
                },
            );
            continue;
        }
        match days(val) {
            Ok(n) => match k.as_str() {
                "inbox_days" => out.inbox = Some(n),
                "old_days" => out.old = Some(n),
                _ => out.folders = Some(n),
            },
            Err(rule) => sink.field(entry, field, rule),
        }
    }
    (sink.count() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> (Option<Retention>, Vec<String>) {
        let mut sink = Sink::default();
        let entry = Entry::Role {
            index: 0,
            name: Some("vmail1".into()),
        };
        let r = parse_retention(&v, "ext.retention", &entry, &mut sink);
        let errs: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        match r {
            Ok(r) if errs.is_empty() => (Some(r), errs),
            Ok(_) => (None, errs),
            Err(rule) => (None, vec![rule.to_string()]),
        }
    }

    #[test]
    fn periods_domains_and_mailbox_overrides() {
        let (r, errs) = run(json!({
            "old_days": 30, "folders_days": 365,
            "domains": {"Example.RU.": {"old_days": 7, "inbox_days": 90}, "b.ru": {}}
        }));
        assert!(errs.is_empty(), "{errs:?}");
        let r = r.unwrap();
        assert!(!r.is_off());
        assert_eq!(
            r.for_mailbox("other.ru", None),
            RetentionDays {
                inbox: 0,
                old: 30,
                folders: 365
            }
        );
        assert_eq!(
            r.for_mailbox("example.ru", None),
            RetentionDays {
                inbox: 90,
                old: 7,
                folders: 365
            }
        );
        assert_eq!(r.for_mailbox("example.ru", Some(0)).old, 0);
        assert_eq!(r.for_mailbox("b.ru", Some(3)).old, 3);
        assert_eq!(r.for_mailbox("b.ru", None).old, 30);
    }

    #[test]
    fn off_unless_configured() {
        let r = Retention::default();
        assert!(r.is_off());
        assert!(r.for_mailbox("a.ru", None).is_off());
        assert!(!r.for_mailbox("a.ru", Some(5)).is_off());
        let (r, errs) = run(json!({"domains": {"a.ru": {"old_days": 0}}}));
        assert!(errs.is_empty());
        assert!(r.unwrap().is_off());
        let (r, _) = run(json!({"domains": {"a.ru": {"old_days": 2}}}));
        assert!(!r.unwrap().is_off());
    }

    #[test]
    fn bad_values_are_named() {
        for (v, expect) in [
            (json!(7), "must be an object"),
            (json!({"old_days": -1}), "ext.retention.old_days"),
            (json!({"old_days": 36501}), "from 0 to 36500"),
            (json!({"old_days": "30"}), "ext.retention.old_days"),
            (json!({"old_dys": 3}), "did you mean `old_days`"),
            (json!({"domains": []}), "ext.retention.domains"),
            (
                json!({"domains": {"a..b": {"old_days": 1}}}),
                "not a valid domain name",
            ),
            (
                json!({"domains": {"a.ru": {"old_days": 1.5}}}),
                "ext.retention.domains.a.ru.old_days",
            ),
            (
                json!({"domains": {"a.ru": {"domains": {}}}}),
                "ext.retention.domains.a.ru.domains",
            ),
            (json!({"domains": {"a.ru": 3}}), "must be an object"),
        ] {
            let (r, errs) = run(v.clone());
            assert!(r.is_none(), "{v} passed");
            assert!(errs.iter().any(|e| e.contains(expect)), "{v}: {errs:?}");
        }
    }
}
