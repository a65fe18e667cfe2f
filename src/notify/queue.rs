//! The durable notification queue in the store.
//!
//! `<siteshare>/vmail/queue/<channel>/` holds one JSON file per
//! notification (a job), named `<yyyymmddThhmmss.mmmZ>-<key>.json` so that
//! the names sort by the time the job was made. Every write is atomic
//! (temporary sibling, fsync, rename) and asks the store's Active-Passive
//! fence first, as every store write does. A job is removed only after it
//! was delivered; attempts, the time of the next try and the last error
//! are kept in the file. A job still failing `give_up` after it was made
//! is moved to `failed/` beside the queue.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::fsutil::{
    create_dir_all, read_json, remove_if_exists, sync_dir, write_json_atomic,
};
use crate::store::{parse_rfc3339, rfc3339, FsStore, StoreError};

/// A notification channel: one queue each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail of a new message.
    Email,
    /// Signed webhook POST.
    Webhook,
}

impl Channel {
    /// Both channels.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Webhook];

    /// The name of its folder and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// Where a job is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its next try.
    Pending,
    /// An SMTP transaction was being started (the job was not removed:
    /// the transaction failed, or the process stopped during it).
    Sending,
}

/// One notification to deliver (the JSON of a job file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The event id (webhooks send it; de-duplication key).
    pub id: String,
    /// Event type: `message.created`, `message.heard`, `message.deleted`,
    /// `mailbox.locked`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `user@domain` of the mailbox.
    pub mailbox: String,
    /// The message, for message events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the event happened, RFC 3339.
    pub created: String,
    /// For `message.created`: whether the message was stored (a job is
    /// written when the recording starts, before the message exists).
    #[serde(default = "yes")]
    pub ready: bool,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not to be tried before, RFC 3339.
    pub next_try: String,
    /// Delivery state.
    #[serde(default = "pending")]
    pub state: JobState,
    /// The `Message-ID` of the e-mail (the same at every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The webhook endpoint's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The webhook event's `data` (completed from the message's metadata
    /// before the first attempt, then never changed).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn yes() -> bool {
    true
}

fn pending() -> JobState {
    JobState::Pending
}

impl Job {
    /// When it was made (the epoch when the field is unreadable).
    pub fn created_at(&self) -> SystemTime {
        parse_rfc3339(&self.created).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// When it is to be tried next.
    pub fn next_try_at(&self) -> SystemTime {
        parse_rfc3339(&self.next_try).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Wait after the `attempts`-th failure: `base` doubled at each failure,
/// at most `max`.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(40);
    base.checked_mul(1u32 << shift.min(31))
        .map_or(max, |d| if shift > 31 { max } else { d })
        .min(max)
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(SystemTime),
    /// The job is older than the give-up limit: move it to `failed/`.
    GiveUp,
}

/// The decision after the `attempts`-th failure at `now` of a job made at
/// `created`.
pub fn after_failure(
    created: SystemTime,
    attempts: u32,
    now: SystemTime,
    base: Duration,
    max: Duration,
    give_up: Duration,
) -> AfterFailure {
    let age = now.duration_since(created).unwrap_or(Duration::ZERO);
    if age >= give_up {
        AfterFailure::GiveUp
    } else {
        AfterFailure::RetryAt(now + backoff(attempts, base, max))
    }
}

/// A job file's name: `<stamp>-<key>.json` (`key` made of `[A-Za-z0-9.-]`).
pub fn job_name(created: SystemTime, key: &str) -> String {
    let stamp = rfc3339(created)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>();
    format!("{stamp}-{key}.json")
}

/// A job as listed: where it is and what it says.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its channel.
    pub channel: Channel,
    /// File name.
    pub name: String,
    /// Whether it is in `failed/`.
    pub failed: bool,
    /// The job.
    pub job: Job,
}

/// The queue folders of one store.
#[derive(Debug, Clone)]
pub struct Queue {
    store: FsStore,
    root: PathBuf,
}

impl Queue {
    /// The queues under `<siteshare>/vmail/queue/`.
    pub fn new(store: FsStore) -> Queue {
        let root = store.root().join("queue");
        Queue { store, root }
    }

    /// The folder of `channel`'s pending jobs.
    pub fn dir(&self, channel: Channel) -> PathBuf {
        self.root.join(channel.as_str())
    }

    /// The folder of `channel`'s given-up jobs.
    pub fn failed_dir(&self, channel: Channel) -> PathBuf {
        self.dir(channel).join("failed")
    }

    fn fence(&self, op: &'static str) -> Result<(), StoreError> {
        if let Some(f) = self.store.fence() {
            if let Err(e) = f.check() {
                tracing::warn!(operation = op, reason = %e, "write refused: not the active instance of the group");
                return Err(StoreError::Fenced(e));
            }
        }
        Ok(())
    }

    /// Whether `name` is a job of `channel` (pending or in flight).
    pub fn exists(&self, channel: Channel, name: &str) -> bool {
        self.dir(channel).join(name).exists()
    }

    /// Writes (creates or replaces) the job `name` of `channel`.
    pub fn write(&self, channel: Channel, name: &str, job: &Job) -> Result<(), StoreError> {
        check_name(name)?;
        self.fence("queue a notification")?;
        let dir = self.dir(channel);
        create_dir_all(&dir)?;
        write_json_atomic(&dir.join(name), job)
    }

    /// Reads the job `name`; `None` when it is gone.
    pub fn read(&self, channel: Channel, name: &str) -> Result<Option<Job>, StoreError> {
        check_name(name)?;
        read_json(&self.dir(channel).join(name))
    }

    /// Removes a delivered (or dropped) job.
    pub fn remove(&self, channel: Channel, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        self.fence("remove a notification")?;
        let dir = self.dir(channel);
        if remove_if_exists(&dir.join(name))? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Moves a job to `failed/` with its last state.
    pub fn give_up(&self, channel: Channel, name: &str, job: &Job) -> Result<(), StoreError> {
        check_name(name)?;
        self.fence("give a notification up")?;
        let failed = self.failed_dir(channel);
        create_dir_all(&failed)?;
        write_json_atomic(&failed.join(name), job)?;
        let dir = self.dir(channel);
        if remove_if_exists(&dir.join(name))? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// The names of `channel`'s pending jobs, oldest first.
    pub fn names(&self, channel: Channel) -> Result<Vec<String>, StoreError> {
        job_names(&self.dir(channel))
    }

    /// Every job, pending and failed, of both channels (unreadable files
    /// are logged and left out).
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for channel in Channel::ALL {
            for (dir, failed) in [(self.dir(channel), false), (self.failed_dir(channel), true)] {
                for name in job_names(&dir)? {
                    match read_json::<Job>(&dir.join(&name)) {
                        Ok(Some(job)) => out.push(Listed {
                            channel,
                            name,
                            failed,
                            job,
                        }),
                        Ok(None) => {}
                        Err(e) => tracing::warn!("unreadable notification job: {e}"),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `*.json` names in `dir`, sorted (none when it does not exist).
fn job_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = name.ends_with(".json")
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidValue {
            what: "notification job",
            reason: "not a job file name",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let got: Vec<u64> = (1..=9).map(|a| backoff(a, 2 * S, max).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff(0, 2 * S, max), 2 * S);
        assert_eq!(backoff(u32::MAX, 2 * S, max), max);
        assert_eq!(backoff(33, Duration::from_millis(100), max), max);
    }

    #[test]
    fn a_job_gives_up_after_the_limit() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let give_up = Duration::from_secs(48 * 3600);
        let max = Duration::from_secs(1800);
        assert_eq!(
            after_failure(t0, 1, t0 + S, 10 * S, max, give_up),
            AfterFailure::RetryAt(t0 + 11 * S)
        );
        assert_eq!(
            after_failure(t0, 20, t0 + 3600 * S, 10 * S, max, give_up),
            AfterFailure::RetryAt(t0 + 3600 * S + max)
        );
        assert_eq!(
            after_failure(t0, 50, t0 + give_up, 10 * S, max, give_up),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn names_sort_by_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let a = job_name(t, "abc");
        let b = job_name(t + Duration::from_millis(1), "000");
        assert_eq!(a, "20231114T221320.123Z-abc.json");
        assert!(a < b);
        check_name(&a).unwrap();
        assert!(check_name("../x.json").is_err());
        assert!(check_name(".x.json").is_err());
    }

    #[test]
    fn jobs_are_written_listed_given_up_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let q = Queue::new(store);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let job = Job {
            id: "e1".into(),
            kind: "message.heard".into(),
            mailbox: "1001@example.com".into(),
            message: Some("m1".into()),
            created: rfc3339(t),
            ready: true,
            attempts: 0,
            next_try: rfc3339(t),
            state: JobState::Pending,
            message_id: None,
            url: Some("http://127.0.0.1:9/".into()),
            data: Value::Null,
            last_error: None,
        };
        let n1 = job_name(t, "b");
        let n2 = job_name(t, "a");
        q.write(Channel::Webhook, &n1, &job).unwrap();
        q.write(Channel::Webhook, &n2, &job).unwrap();
        assert_eq!(q.names(Channel::Webhook).unwrap(), [n2.clone(), n1.clone()]);
        assert!(q.names(Channel::Email).unwrap().is_empty());
        assert_eq!(q.read(Channel::Webhook, &n1).unwrap().unwrap(), job);
        q.give_up(Channel::Webhook, &n1, &job).unwrap();
        q.remove(Channel::Webhook, &n2).unwrap();
        assert!(q.names(Channel::Webhook).unwrap().is_empty());
        let all = q.list().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].failed && all[0].name == n1);
    }
}
