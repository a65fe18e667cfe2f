//! Retention: removing messages older than their folder's period.
//!
//! The periods come from `ext.retention` (instance and per domain, see
//! [`crate::config::Retention`]) and a mailbox's own
//! `retention_old_days`; [`Rule::OlderThan`] is the operator's one-off
//! `vmail mailbox purge --older-than`. A message's age is counted from its
//! `received` time (when the recording began); a message whose `received`
//! does not parse is aged by its audio file's modification time, and one
//! with neither is kept. [`select`] is the pure choice on an injected
//! `now`; [`run_pass`] walks the store, removes (or, dry, only lists) and
//! logs one line per message.

use std::time::{Duration, SystemTime};

use crate::config::{Retention, RetentionDays};
use crate::store::{
    parse_rfc3339, DomainFilter, Folder, FsStore, MailboxId, MessageMeta, StoreError,
};

const DAY: u64 = 86_400;

/// What to remove.
#[derive(Debug, Clone)]
pub enum Rule {
    /// The configured periods (`ext.retention` and the mailboxes' own).
    Policy(Retention),
    /// Messages of these folders older than this many days (0: all).
    OlderThan {
        /// Days.
        days: u32,
        /// Folders looked at.
        folders: Vec<Folder>,
    },
}

/// Which mailboxes a pass looks at.
#[derive(Clone, Default)]
pub struct Scope {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this user (of `domain`).
    pub user: Option<String>,
    /// Only domains for which this says yes (the group's own).
    pub domain_filter: Option<DomainFilter>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One message a pass removed (or, dry, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its mailbox.
    pub mailbox: MailboxId,
    /// Its folder.
    pub folder: Folder,
    /// Its id.
    pub id: String,
    /// Its `received` time as stored.
    pub received: String,
    /// Whole days since then.
    pub age_days: u64,
}

/// The longest age of a folder's messages under `days`; `None`: kept for
/// ever.
pub fn max_age(days: &RetentionDays, folder: Folder) -> Option<Duration> {
    let d = match folder {
        Folder::Inbox => days.inbox,
        Folder::Old => days.old,
        _ => days.folders,
    };
    (d > 0).then(|| Duration::from_secs(u64::from(d) * DAY))
}

/// The messages of `msgs` at least `max_age` old at `now`, by the time
/// `time_of` gives (a message without a time, or from the future, stays).
pub fn select(
    msgs: &[MessageMeta],
    max_age: Duration,
    now: SystemTime,
    time_of: impl Fn(&MessageMeta) -> Option<SystemTime>,
) -> Vec<(&MessageMeta, Duration)> {
    msgs.iter()
        .filter_map(|m| {
            let age = now.duration_since(time_of(m)?).ok()?;
            (age >= max_age).then_some((m, age))
        })
        .collect()
}

/// The mailboxes in `scope`, sorted.
fn mailboxes(store: &FsStore, scope: &Scope) -> Result<Vec<MailboxId>, StoreError> {
    if let (Some(domain), Some(user)) = (&scope.domain, &scope.user) {
        let id = MailboxId::new(user, domain)?;
        store
            .mailbox(&id)?
            .ok_or(StoreError::NotFound { what: "mailbox" })?;
        return Ok(vec![id]);
    }
    let mut all = store.list_mailboxes(scope.domain.as_deref())?;
    if let Some(f) = &scope.domain_filter {
        all.retain(|id| f(id.domain()));
    }
    Ok(all)
}

/// One pass over the mailboxes of `scope` under `rule` at `now`: removes
/// each expired message (unless `dry_run`), logs a line per message and
/// calls `on_expired` for it. `keep_going` is asked before each mailbox;
/// when it says no the pass ends early (this instance stepped down). A
/// mailbox that fails is logged and skipped; a refusal of the fence ends
/// the pass.
pub fn run_pass(
    store: &FsStore,
    scope: &Scope,
    rule: &Rule,
    now: SystemTime,
    dry_run: bool,
    keep_going: &dyn Fn() -> bool,
    on_expired: &mut dyn FnMut(&Expired),
) -> Result<Vec<Expired>, StoreError> {
    let mut out = Vec::new();
    for id in mailboxes(store, scope)? {
        if !keep_going() {
            tracing::info!("retention pass stopped early");
            break;
        }
        match purge_mailbox(store, &id, rule, now, dry_run, on_expired) {
            Ok(list) => out.extend(list),
            Err(e) if e.is_fenced() => return Err(e),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(mailbox = %id, error = %e, "retention: mailbox skipped"),
        }
    }
    Ok(out)
}

/// The time a message's age counts from.
fn time_of(store: &FsStore, id: &MailboxId, m: &MessageMeta) -> Option<SystemTime> {
    parse_rfc3339(&m.received).or_else(|| {
        let path = store.message_audio_path(id, &m.id).ok()??;
        std::fs::metadata(path).and_then(|md| md.modified()).ok()
    })
}

fn purge_mailbox(
    store: &FsStore,
    id: &MailboxId,
    rule: &Rule,
    now: SystemTime,
    dry_run: bool,
    on_expired: &mut dyn FnMut(&Expired),
) -> Result<Vec<Expired>, StoreError> {
    let plan: Vec<(Folder, Duration)> = match rule {
        Rule::Policy(policy) => {
            let own = store
                .mailbox(id)?
                .and_then(|m| m.settings.retention_old_days);
            let days = policy.for_mailbox(id.domain(), own);
            Folder::ALL
                .into_iter()
                .filter_map(|f| max_age(&days, f).map(|a| (f, a)))
                .collect()
        }
        Rule::OlderThan { days, folders } => folders
            .iter()
            .map(|f| (*f, Duration::from_secs(u64::from(*days) * DAY)))
            .collect(),
    };
    let mut out = Vec::new();
    for (folder, age) in plan {
        let msgs = store.list_messages(id, folder)?;
        for (m, age) in select(&msgs, age, now, |m| time_of(store, id, m)) {
            let e = Expired {
                mailbox: id.clone(),
                folder,
                id: m.id.clone(),
                received: m.received.clone(),
                age_days: age.as_secs() / DAY,
            };
            if dry_run {
                tracing::info!(mailbox = %id, folder = %folder, id = %e.id, received = %e.received, age_days = e.age_days, "message would expire (dry run)");
            } else {
                match store.delete_message(id, &e.id) {
                    Ok(()) => {}
                    // Gone meanwhile (the owner deleted it).
                    Err(err) if err.is_not_found() => continue,
                    Err(err) => return Err(err),
                }
                // Webhook subscribers hear of it like of any deletion.
                if let Some(n) = crate::notify::installed() {
                    n.message_deleted(id, m);
                }
                tracing::info!(mailbox = %id, folder = %folder, id = %e.id, received = %e.received, age_days = e.age_days, "message expired: removed by retention");
            }
            on_expired(&e);
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PinCost, RecordingInfo};

    fn meta(id: &str, received: &str) -> MessageMeta {
        serde_json::from_value(serde_json::json!({"id": id, "received": received})).unwrap()
    }

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn selection_by_age_with_an_injected_now() {
        let msgs = vec![
            meta("a", "2026-01-01T00:00:00Z"),
            meta("b", "2026-01-24T00:00:00Z"),
            meta("c", "2026-01-24T00:00:01Z"),
            meta("d", "garbage"),
            meta("e", "2026-03-01T00:00:00Z"),
        ];
        let now = at("2026-01-31T00:00:00Z");
        let week = Duration::from_secs(7 * DAY);
        let chosen: Vec<&str> = select(&msgs, week, now, |m| parse_rfc3339(&m.received))
            .iter()
            .map(|(m, _)| m.id.as_str())
            .collect();
        // Exactly 7 days is expired; a second less is not; no time and the
        // future stay.
        assert_eq!(chosen, ["a", "b"]);
        let all = select(&msgs, Duration::ZERO, now, |m| parse_rfc3339(&m.received));
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].1.as_secs() / DAY, 30);
    }

    #[test]
    fn periods_by_folder() {
        let d = RetentionDays {
            inbox: 0,
            old: 30,
            folders: 365,
        };
        assert_eq!(max_age(&d, Folder::Inbox), None);
        assert_eq!(
            max_age(&d, Folder::Old),
            Some(Duration::from_secs(30 * DAY))
        );
        assert_eq!(
            max_age(&d, Folder::Cust3),
            Some(Duration::from_secs(365 * DAY))
        );
    }

    fn deposit(s: &FsStore, id: &MailboxId, when: SystemTime) -> String {
        let info = RecordingInfo {
            caller_uri: "sip:1@x".into(),
            caller_name: None,
            called_uri: "sip:2@x".into(),
            cause: "busy".into(),
            codec: "PCMU".into(),
            site: "s".into(),
            instance: "i".into(),
            epoch: 0,
            sample_rate: 8000,
        };
        let mut w = s.begin_recording(id, info, when).unwrap();
        w.append(&[100; 8000]).unwrap();
        w.finish().unwrap().id
    }

    #[test]
    fn a_pass_removes_by_policy_and_mailbox_override() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open_with_pin_cost(dir.path(), PinCost::TestOnly).unwrap();
        let a = MailboxId::new("1001", "a.ru").unwrap();
        let b = MailboxId::new("1002", "a.ru").unwrap();
        let c = MailboxId::new("1003", "b.ru").unwrap();
        for id in [&a, &b, &c] {
            s.create_mailbox(id, Default::default(), None).unwrap();
        }
        let t0 = at("2026-01-01T00:00:00Z");
        let now = at("2026-02-01T00:00:00Z");
        let old_a = deposit(&s, &a, t0);
        s.move_message(&a, &old_a, Folder::Old).unwrap();
        let new_a = deposit(&s, &a, t0);
        let work_a = deposit(&s, &a, t0);
        s.move_message(&a, &work_a, Folder::Work).unwrap();
        let old_b = deposit(&s, &b, t0);
        s.move_message(&b, &old_b, Folder::Old).unwrap();
        let old_c = deposit(&s, &c, t0);
        s.move_message(&c, &old_c, Folder::Old).unwrap();
        // b keeps its Old messages for ever.
        let mut mb = s.mailbox(&b).unwrap().unwrap().settings;
        mb.retention_old_days = Some(0);
        s.update_settings(&b, mb).unwrap();
        let mut policy = Retention::default();
        policy.days.old = 30;
        policy.domains.insert(
            "b.ru".into(),
            crate::config::DomainRetention {
                old: Some(60),
                ..Default::default()
            },
        );
        let rule = Rule::Policy(policy);
        let scope = Scope::default();
        let mut seen = Vec::new();
        let dry = run_pass(&s, &scope, &rule, now, true, &|| true, &mut |e| {
            seen.push(e.id.clone())
        })
        .unwrap();
        assert_eq!(seen, std::slice::from_ref(&old_a));
        assert_eq!(dry.len(), 1);
        assert_eq!(dry[0].age_days, 31);
        assert!(s.message(&a, &old_a).unwrap().is_some(), "dry run keeps it");
        let done = run_pass(&s, &scope, &rule, now, false, &|| true, &mut |_| {}).unwrap();
        assert_eq!(done, dry);
        assert!(s.message(&a, &old_a).unwrap().is_none());
        for (id, msg) in [(&a, &new_a), (&a, &work_a), (&b, &old_b), (&c, &old_c)] {
            assert!(s.message(id, msg).unwrap().is_some(), "{id} {msg}");
        }
        // The operator's rule: Work of one mailbox, any age.
        let rule = Rule::OlderThan {
            days: 0,
            folders: vec![Folder::Work],
        };
        let scope = Scope {
            domain: Some("a.ru".into()),
            user: Some("1001".into()),
            domain_filter: None,
        };
        let done = run_pass(&s, &scope, &rule, now, false, &|| true, &mut |_| {}).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].folder, Folder::Work);
        // Stopped before the first mailbox: nothing happens.
        let rule = Rule::OlderThan {
            days: 0,
            folders: Folder::ALL.to_vec(),
        };
        let none = run_pass(
            &s,
            &Scope::default(),
            &rule,
            now,
            false,
            &|| false,
            &mut |_| {},
        )
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(s.counts(&c).unwrap().old, 1);
        // A domain filter leaves the other domains alone.
        let scope = Scope {
            domain_filter: Some(std::sync::Arc::new(|d: &str| d == "b.ru")),
            ..Scope::default()
        };
        let done = run_pass(&s, &scope, &rule, now, false, &|| true, &mut |_| {}).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].mailbox, c);
        assert_eq!(s.counts(&a).unwrap().new, 1);
    }
}
