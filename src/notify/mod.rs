//! Notifications: e-mail of new messages and signed webhooks.
//!
//! Every notification is a job file in the store's durable queue
//! ([`queue`]) before anything is sent. The active instance's worker
//! ([`Notifier::start`]) drains the queues: due jobs are tried, a delivered
//! job is removed, a failed one is tried again after a doubling wait (at
//! most `ext.notify_retry_max_seconds`), and one still failing
//! `ext.notify_give_up_hours` after it was made is moved to `failed/`.
//!
//! # Exactly once, and where it stops
//!
//! The jobs of a new message are written when its recording starts, under
//! names made of the message id, so the same jobs are found again however
//! the message gets stored (end of call, or recovery after a crash) and a
//! restart never makes a second one. Removal follows delivery, so a crash
//! between the two delivers again:
//! - an e-mail job is marked `sending`, with the e-mail's `Message-ID`,
//!   before its SMTP transaction; after a crash in that state nothing on
//!   the SMTP side can be asked whether the transaction completed, so the
//!   e-mail is sent again with the same `Message-ID` (mail clients use it
//!   to drop the duplicate). E-mail is exactly once per completed SMTP
//!   transaction whose job removal was not interrupted;
//! - a webhook is delivered at least once; its event `id` is the same at
//!   every attempt, for the receiver to drop duplicates.

pub mod email;
pub mod ogg_opus;
pub mod queue;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use blake2::{Blake2s256, Digest};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::config::{Ext, Smtp, Webhook};
use crate::metrics::Metrics;
use crate::store::{rfc3339, Attach, FsStore, MailboxId, MessageMeta, StoreError};

pub use queue::{Channel, Job, JobState, Listed, Queue};

/// How long a job whose message is not stored yet (its recording is in
/// progress, or waits for recovery) is kept past the longest recording.
const UNSTORED_GRACE: Duration = Duration::from_secs(600);
/// How often the worker looks at the queues when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);

/// The notification settings of `ext`.
#[derive(Debug, Clone)]
struct Settings {
    smtp: Option<Smtp>,
    webhooks: Vec<Webhook>,
    give_up: Duration,
    delay: Duration,
    retry: Duration,
    retry_max: Duration,
    link_template: Option<String>,
    subject_template: Option<String>,
    body_template: Option<String>,
    time_zone: crate::config::TimeZone,
    language: String,
    longest_recording: Duration,
}

impl Settings {
    fn of(ext: &Ext) -> Settings {
        Settings {
            smtp: ext.smtp.clone(),
            webhooks: ext.webhooks.clone(),
            give_up: Duration::from_secs(u64::from(ext.notify_give_up_hours) * 3600),
            delay: Duration::from_millis(ext.notify_delay_ms),
            retry: Duration::from_millis(ext.notify_retry_ms),
            retry_max: Duration::from_secs(u64::from(ext.notify_retry_max_seconds)),
            link_template: ext.email_link_template.clone(),
            subject_template: ext.email_subject_template.clone(),
            body_template: ext.email_body_template.clone(),
            time_zone: ext.time_zone(),
            language: ext.language.clone(),
            longest_recording: Duration::from_secs(u64::from(ext.max_message_seconds)),
        }
    }
}

/// Queues and delivers the notifications of one vmail instance.
pub struct Notifier {
    store: FsStore,
    queue: Queue,
    settings: RwLock<Arc<Settings>>,
    metrics: Arc<Metrics>,
    wake: tokio::sync::Notify,
    started: AtomicBool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

static INSTALLED: OnceLock<Arc<Notifier>> = OnceLock::new();

/// Makes `n` the process's notifier (the first call wins), for the places
/// that raise events without a handle on the runtime (mailbox operations
/// of the API and the web inbox).
pub fn install(n: Arc<Notifier>) {
    let _ = INSTALLED.set(n);
}

/// The process's notifier, when the server runs (the command-line tools
/// raise no events).
pub fn installed() -> Option<&'static Arc<Notifier>> {
    INSTALLED.get()
}

/// Marks the `message.heard` event of `msg` when it was unheard before
/// (`was_heard`, read before the change). Blocking.
pub fn heard_if_new(store: &FsStore, mailbox: &MailboxId, msg: &str, was_heard: Option<bool>) {
    let Some(n) = installed() else { return };
    if was_heard != Some(false) {
        return;
    }
    if let Ok(Some(meta)) = store.message(mailbox, msg) {
        n.message_heard(mailbox, &meta);
    }
}

/// A message was forwarded into `mailbox` as `msg`: for that mailbox it
/// is a new message (e-mail, `message.created`). Blocking.
pub fn forwarded(store: &FsStore, mailbox: &MailboxId, msg: &str) {
    let Some(n) = installed() else { return };
    if let Ok(Some(meta)) = store.message(mailbox, msg) {
        n.message_stored(mailbox, &meta);
    }
}

/// Deletes a message and raises `message.deleted`. Blocking.
pub fn delete_message(store: &FsStore, mailbox: &MailboxId, msg: &str) -> Result<(), StoreError> {
    let meta = match installed() {
        Some(_) => store.message(mailbox, msg)?,
        None => None,
    };
    store.delete_message(mailbox, msg)?;
    if let (Some(n), Some(meta)) = (installed(), meta) {
        n.message_deleted(mailbox, &meta);
    }
    Ok(())
}

/// A UUID-formatted (version 4 layout) id from 16 bytes.
fn uuid_from(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = webhook::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A random event id.
/// The Opus-in-Ogg copy of a stored WAV (8 or 16 kHz, 16-bit mono).
fn opus_copy(wav: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader =
        hound::WavReader::new(std::io::Cursor::new(wav)).map_err(|e| format!("WAV: {e}"))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!(
            "WAV of {} channel(s) at {} bits",
            spec.channels, spec.bits_per_sample
        ));
    }
    let pcm = reader
        .samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| format!("WAV: {e}"))?;
    ogg_opus::encode(&pcm, spec.sample_rate)
}

/// How many PEM certificates `pem` holds; an error when one does not
/// parse (the `ca_file` of `ext.smtp` and of a webhook).
pub fn pem_certificates(pem: &[u8]) -> Result<usize, String> {
    reqwest::Certificate::from_pem_bundle(pem)
        .map(|certs| certs.len())
        .map_err(|e| format!("not PEM certificates: {e}"))
}

pub fn random_event_id() -> String {
    uuid_from(rand::random())
}

/// 8 hex digits naming `s` in file names.
fn short_hash(s: &str) -> String {
    webhook::hex(&Blake2s256::digest(s.as_bytes())[..4])
}

/// The event id of the arrival of message `msg` in `mailbox`: the same
/// whenever it is computed.
fn created_event_id(mailbox: &MailboxId, msg: &str) -> String {
    let d = Blake2s256::digest(format!("message.created/{mailbox}/{msg}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid_from(b)
}

/// The `data.message` of a webhook event.
fn message_data(meta: &MessageMeta) -> Value {
    json!({
        "id": meta.id,
        "folder": meta.folder,
        "caller": meta.caller_uri,
        "caller_name": meta.caller_name,
        "called": meta.called_uri,
        "cause": meta.cause,
        "received": meta.received,
        "duration_ms": meta.duration_ms,
        "urgent": meta.urgent,
        "heard": meta.heard,
        "forwarded_by": meta.forwarded_by,
    })
}

/// What a delivery attempt came to.
enum Attempt {
    /// Delivered: remove the job.
    Delivered,
    /// Not to be sent any more (its mailbox, message or endpoint is gone).
    Dropped(String),
    /// Not ready: look again at this time, without counting an attempt.
    Later(SystemTime),
    /// Failed: count it and retry, or give up.
    Failed(String),
    /// This instance may not write the store any more: stop.
    Fenced,
}

impl Notifier {
    /// A notifier on `store` with the settings of `ext`.
    pub fn new(store: FsStore, ext: &Ext, metrics: Arc<Metrics>) -> Notifier {
        Notifier {
            queue: Queue::new(store.clone()),
            store,
            settings: RwLock::new(Arc::new(Settings::of(ext))),
            metrics,
            wake: tokio::sync::Notify::new(),
            started: AtomicBool::new(false),
        }
    }

    /// Takes the settings of a reloaded configuration.
    pub fn reconfigure(&self, ext: &Ext) {
        let mut g = self.settings.write().unwrap_or_else(|e| e.into_inner());
        *g = Arc::new(Settings::of(ext));
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The queues.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether `mailbox` wants its messages e-mailed (and a relay is set).
    fn wants_email(&self, s: &Settings, mailbox: &MailboxId) -> bool {
        if s.smtp.is_none() {
            return false;
        }
        match self.store.mailbox(mailbox) {
            Ok(Some(m)) => m
                .settings
                .email
                .as_deref()
                .is_some_and(|e| !e.trim().is_empty()),
            Ok(None) => false,
            Err(e) => {
                // Keep the job: whether to send is decided again at send time.
                warn!(%mailbox, "reading the mailbox for its e-mail setting: {e}");
                true
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        id: String,
        kind: &str,
        mailbox: &MailboxId,
        message: Option<&str>,
        now: SystemTime,
        next_try: SystemTime,
        ready: bool,
    ) -> Job {
        Job {
            id,
            kind: kind.to_string(),
            mailbox: mailbox.to_string(),
            message: message.map(str::to_string),
            created: rfc3339(now),
            ready,
            attempts: 0,
            next_try: rfc3339(next_try),
            state: JobState::Pending,
            message_id: None,
            url: None,
            data: Value::Null,
            last_error: None,
        }
    }

    /// The job names of the arrival of `msg`: e-mail, then one per
    /// webhook that wants it (with its URL).
    fn created_names(
        &self,
        s: &Settings,
        mailbox: &MailboxId,
        msg: &str,
    ) -> (Option<String>, Vec<(String, String)>) {
        let base = format!("{msg}-{}", short_hash(&mailbox.to_string()));
        let email = self.wants_email(s, mailbox).then(|| format!("{base}.json"));
        let hooks = s
            .webhooks
            .iter()
            .filter(|w| w.wants("message.created", mailbox.domain()))
            .map(|w| (format!("{base}-{}.json", short_hash(&w.url)), w.url.clone()))
            .collect();
        (email, hooks)
    }

    /// Writes the jobs of a message whose recording just started (id
    /// `msg`), before anything is stored: they wait for
    /// [`message_stored`](Self::message_stored) (or recovery) and are
    /// dropped if the message never comes. Blocking (file I/O).
    pub fn message_recording(&self, mailbox: &MailboxId, msg: &str) {
        self.created(mailbox, msg, None);
    }

    /// A message was stored in `mailbox` (by a call, or by recovery):
    /// its jobs become due (written now when they were not yet).
    /// Blocking (file I/O).
    pub fn message_stored(&self, mailbox: &MailboxId, meta: &MessageMeta) {
        self.created(mailbox, &meta.id, Some(meta));
        self.wake.notify_one();
    }

    fn created(&self, mailbox: &MailboxId, msg: &str, meta: Option<&MessageMeta>) {
        let s = self.settings();
        let (email, hooks) = self.created_names(&s, mailbox, msg);
        let now = SystemTime::now();
        let next_try = match meta {
            Some(_) => now + s.delay,
            None => now + s.longest_recording + UNSTORED_GRACE,
        };
        let event_id = created_event_id(mailbox, msg);
        let put = |channel: Channel, name: &str, url: Option<String>| {
            let job = match self.queue.read(channel, name) {
                Ok(Some(mut job)) => {
                    if meta.is_none() || job.ready {
                        return;
                    }
                    job.ready = true;
                    job.next_try = rfc3339(next_try);
                    job
                }
                Ok(None) => {
                    let mut job = self.job(
                        event_id.clone(),
                        "message.created",
                        mailbox,
                        Some(msg),
                        now,
                        next_try,
                        meta.is_some(),
                    );
                    job.url = url;
                    job
                }
                Err(e) => {
                    warn!(%mailbox, id = msg, "reading a notification job: {e}");
                    return;
                }
            };
            match self.queue.write(channel, name, &job) {
                Ok(()) => {
                    debug!(%mailbox, id = msg, channel = channel.as_str(), "notification queued")
                }
                Err(e) => {
                    warn!(%mailbox, id = msg, channel = channel.as_str(), "cannot queue the notification: {e}")
                }
            }
        };
        if let Some(name) = email {
            put(Channel::Email, &name, None);
        }
        for (name, url) in hooks {
            put(Channel::Webhook, &name, Some(url));
        }
        self.update_gauges();
    }

    /// On becoming active: a `message.created` job still waiting for its
    /// message whose message is stored was cut off by a crash between the
    /// message's commit and [`message_stored`](Self::message_stored) (no
    /// recovery will report it: nothing is left to recover). It becomes
    /// due now instead of when the wait for an unstored message ends.
    /// Blocking (file I/O).
    fn reconcile(&self) {
        let s = self.settings();
        let now = SystemTime::now();
        let mut woken = 0usize;
        for channel in Channel::ALL {
            let names = match self.queue.names(channel) {
                Ok(n) => n,
                Err(e) => {
                    warn!(
                        channel = channel.as_str(),
                        "listing the notification queue: {e}"
                    );
                    continue;
                }
            };
            for name in names {
                let Ok(Some(mut job)) = self.queue.read(channel, &name) else {
                    continue;
                };
                if job.ready || job.kind != "message.created" {
                    continue;
                }
                let (Ok(mailbox), Some(msg)) =
                    (job.mailbox.parse::<MailboxId>(), job.message.clone())
                else {
                    continue;
                };
                if !matches!(self.store.message(&mailbox, &msg), Ok(Some(_))) {
                    continue;
                }
                job.ready = true;
                job.next_try = rfc3339(now + s.delay);
                match self.queue.write(channel, &name, &job) {
                    Ok(()) => {
                        woken += 1;
                        info!(%mailbox, id = %msg, channel = channel.as_str(), "notification of a message stored before a crash made due");
                    }
                    Err(e) => {
                        warn!(%mailbox, id = %msg, "cannot update a notification job: {e}");
                        if e.is_fenced() {
                            return;
                        }
                    }
                }
            }
        }
        if woken > 0 {
            self.wake.notify_one();
        }
    }

    /// The recording of `msg` was dropped (too short, failed): its jobs
    /// go. Blocking (file I/O).
    pub fn message_dropped(&self, mailbox: &MailboxId, msg: &str) {
        let s = self.settings();
        let (email, hooks) = self.created_names(&s, mailbox, msg);
        let names = email
            .map(|n| (Channel::Email, n))
            .into_iter()
            .chain(hooks.into_iter().map(|(n, _)| (Channel::Webhook, n)));
        for (channel, name) in names {
            if let Err(e) = self.queue.remove(channel, &name) {
                warn!(%mailbox, id = msg, "removing the jobs of a dropped recording: {e}");
            }
        }
        self.update_gauges();
    }

    /// A message was marked heard. Blocking (file I/O).
    pub fn message_heard(&self, mailbox: &MailboxId, meta: &MessageMeta) {
        let data = json!({"mailbox": mailbox.to_string(), "message": message_data(meta)});
        self.event("message.heard", mailbox, Some(&meta.id), data);
    }

    /// A message was deleted. Blocking (file I/O).
    pub fn message_deleted(&self, mailbox: &MailboxId, meta: &MessageMeta) {
        let data = json!({"mailbox": mailbox.to_string(), "message": message_data(meta)});
        self.event("message.deleted", mailbox, Some(&meta.id), data);
    }

    /// A mailbox was locked by wrong PINs until `until`. Blocking (file I/O).
    pub fn mailbox_locked(&self, mailbox: &MailboxId, until: SystemTime) {
        if !matches!(self.store.mailbox(mailbox), Ok(Some(_))) {
            return;
        }
        let data = json!({"mailbox": mailbox.to_string(), "locked_until": rfc3339(until)});
        self.event("mailbox.locked", mailbox, None, data);
    }

    /// Queues a webhook event for every endpoint that wants it.
    fn event(&self, kind: &str, mailbox: &MailboxId, msg: Option<&str>, data: Value) {
        let s = self.settings();
        let now = SystemTime::now();
        let id = random_event_id();
        for w in s
            .webhooks
            .iter()
            .filter(|w| w.wants(kind, mailbox.domain()))
        {
            let mut job = self.job(id.clone(), kind, mailbox, msg, now, now + s.delay, true);
            job.url = Some(w.url.clone());
            job.data = data.clone();
            let name = queue::job_name(now, &format!("{id}-{}", short_hash(&w.url)));
            if let Err(e) = self.queue.write(Channel::Webhook, &name, &job) {
                warn!(%mailbox, event = kind, "cannot queue the webhook: {e}");
            }
        }
        self.update_gauges();
        self.wake.notify_one();
    }

    /// Sets the queue-length gauges from the folders.
    fn update_gauges(&self) {
        for channel in Channel::ALL {
            if let Ok(names) = self.queue.names(channel) {
                self.metrics
                    .set_notify_queue(channel.as_str(), names.len() as i64);
            }
        }
    }

    /// Starts the worker (once per process; later calls do nothing). It
    /// drains the queues while `is_active` says this instance is the
    /// active one of its group.
    pub fn start(self: &Arc<Self>, is_active: impl Fn() -> bool + Send + Sync + 'static) {
        if self.started.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let clients = webhook::Clients::default();
            info!("notification worker started");
            let mut reconciled = false;
            loop {
                if is_active() {
                    if !reconciled {
                        let m = me.clone();
                        let _ = tokio::task::spawn_blocking(move || m.reconcile()).await;
                        reconciled = true;
                    }
                    me.round(&clients, &is_active).await;
                } else {
                    reconciled = false;
                }
                let _ = tokio::time::timeout(POLL, me.wake.notified()).await;
            }
        });
    }

    /// One pass over both queues: every due job is tried once.
    async fn round(
        self: &Arc<Self>,
        clients: &webhook::Clients,
        is_active: &(dyn Fn() -> bool + Send + Sync),
    ) {
        for channel in Channel::ALL {
            let me = self.clone();
            let names = match tokio::task::spawn_blocking(move || me.queue.names(channel)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    warn!(
                        channel = channel.as_str(),
                        "listing the notification queue: {e}"
                    );
                    continue;
                }
                Err(_) => continue,
            };
            self.metrics
                .set_notify_queue(channel.as_str(), names.len() as i64);
            for name in names {
                if !is_active() {
                    return;
                }
                if self.process(channel, &name, clients).await {
                    return;
                }
            }
        }
    }

    /// Tries the job `name` if it is due; `true` when the store refused a
    /// write (the instance is no longer active).
    async fn process(
        self: &Arc<Self>,
        channel: Channel,
        name: &str,
        clients: &webhook::Clients,
    ) -> bool {
        let me = self.clone();
        let n = name.to_string();
        let job = match tokio::task::spawn_blocking(move || me.queue.read(channel, &n)).await {
            Ok(Ok(Some(job))) => job,
            Ok(Ok(None)) | Err(_) => return false,
            Ok(Err(e)) => {
                warn!(
                    job = name,
                    "unreadable notification job, moved to failed/: {e}"
                );
                let me = self.clone();
                let n = name.to_string();
                let _ = tokio::task::spawn_blocking(move || {
                    let dir = me.queue.dir(channel);
                    let failed = me.queue.failed_dir(channel);
                    std::fs::create_dir_all(&failed)
                        .and_then(|()| std::fs::rename(dir.join(&n), failed.join(&n)))
                })
                .await;
                return false;
            }
        };
        let now = SystemTime::now();
        if job.next_try_at() > now {
            return false;
        }
        let s = self.settings();
        let attempt = match channel {
            Channel::Email => self.try_email(&s, name, job.clone()).await,
            Channel::Webhook => self.try_webhook(&s, name, job.clone(), clients).await,
        };
        self.settle(&s, channel, name, job, attempt).await
    }

    /// Records what an attempt came to; `true` when fenced.
    async fn settle(
        self: &Arc<Self>,
        s: &Settings,
        channel: Channel,
        name: &str,
        job: Job,
        attempt: Attempt,
    ) -> bool {
        let ch = channel.as_str();
        let me = self.clone();
        let n = name.to_string();
        let (retry, retry_max, give_up) = (s.retry, s.retry_max, s.give_up);
        let result = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let now = SystemTime::now();
            match attempt {
                Attempt::Fenced => Ok(()),
                Attempt::Delivered => {
                    me.queue.remove(channel, &n)?;
                    me.metrics.notify_outcome(ch, "sent");
                    info!(channel = ch, event = %job.kind, mailbox = %job.mailbox, id = %job.id, attempts = job.attempts + 1, "notification delivered");
                    me.after_delivery(channel, &job);
                    Ok(())
                }
                Attempt::Dropped(why) => {
                    me.queue.remove(channel, &n)?;
                    me.metrics.notify_outcome(ch, "dropped");
                    info!(channel = ch, event = %job.kind, mailbox = %job.mailbox, "notification dropped: {why}");
                    Ok(())
                }
                Attempt::Later(at) => {
                    let mut job = job;
                    job.next_try = rfc3339(at);
                    me.queue.write(channel, &n, &job)
                }
                Attempt::Failed(why) => {
                    let mut job = job;
                    job.attempts = job.attempts.saturating_add(1);
                    job.state = JobState::Pending;
                    job.last_error = Some(why.clone());
                    me.metrics.notify_outcome(ch, "failed");
                    match queue::after_failure(job.created_at(), job.attempts, now, retry, retry_max, give_up) {
                        queue::AfterFailure::RetryAt(at) => {
                            job.next_try = rfc3339(at);
                            warn!(channel = ch, event = %job.kind, mailbox = %job.mailbox, attempts = job.attempts, next_try = %job.next_try, "notification failed, will retry: {why}");
                            me.queue.write(channel, &n, &job)
                        }
                        queue::AfterFailure::GiveUp => {
                            warn!(channel = ch, event = %job.kind, mailbox = %job.mailbox, attempts = job.attempts, job = %n, "notification given up, moved to failed/: {why}");
                            me.metrics.notify_outcome(ch, "given_up");
                            me.queue.give_up(channel, &n, &job)
                        }
                    }
                }
            }
        })
        .await;
        match result {
            Ok(Ok(())) => false,
            Ok(Err(e)) if e.is_fenced() => true,
            Ok(Err(e)) => {
                warn!(channel = ch, job = name, "notification queue: {e}");
                false
            }
            Err(_) => false,
        }
    }

    /// What follows a delivered e-mail: the message goes when the mailbox
    /// says `delete_after_send`. Blocking.
    fn after_delivery(&self, channel: Channel, job: &Job) {
        if channel != Channel::Email {
            return;
        }
        let (Ok(mailbox), Some(msg)) = (MailboxId::parse(&job.mailbox), job.message.as_deref())
        else {
            return;
        };
        let delete =
            matches!(self.store.mailbox(&mailbox), Ok(Some(m)) if m.settings.delete_after_send);
        if !delete {
            return;
        }
        let meta = self.store.message(&mailbox, msg).ok().flatten();
        match self.store.delete_message(&mailbox, msg) {
            Ok(()) => {
                info!(%mailbox, id = msg, "message deleted after it was e-mailed (delete_after_send)");
                if let Some(meta) = meta {
                    self.message_deleted(&mailbox, &meta);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => warn!(%mailbox, id = msg, "cannot delete the e-mailed message: {e}"),
        }
    }

    /// The message of a `message.created` job: `Ok(None)` with the
    /// attempt to make when it is not there.
    fn created_message(
        &self,
        s: &Settings,
        job: &Job,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<Option<MessageMeta>, Attempt> {
        match self.store.message(mailbox, msg) {
            Ok(Some(meta)) => Ok(Some(meta)),
            Ok(None) if !job.ready => {
                let age = SystemTime::now()
                    .duration_since(job.created_at())
                    .unwrap_or(Duration::ZERO);
                if age < s.longest_recording + UNSTORED_GRACE {
                    Err(Attempt::Later(SystemTime::now() + Duration::from_secs(5)))
                } else {
                    Err(Attempt::Dropped("the message was never stored".into()))
                }
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Attempt::Failed(format!("reading the message: {e}"))),
        }
    }

    async fn try_email(self: &Arc<Self>, s: &Arc<Settings>, name: &str, job: Job) -> Attempt {
        let Some(smtp) = s.smtp.clone() else {
            return Attempt::Dropped("ext.smtp is not set any more".into());
        };
        let me = self.clone();
        let s2 = s.clone();
        let n = name.to_string();
        // Everything but the SMTP transaction, on a blocking thread: read
        // the mailbox and message, build the e-mail, mark the job sending.
        let prepared =
            tokio::task::spawn_blocking(move || me.prepare_email(&s2, &smtp, &n, job)).await;
        let (message, smtp) = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(a)) => return a,
            Err(e) => return Attempt::Failed(format!("preparing the e-mail: {e}")),
        };
        match email::send(&smtp, message).await {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Failed(e),
        }
    }

    fn prepare_email(
        &self,
        s: &Settings,
        smtp: &Smtp,
        name: &str,
        mut job: Job,
    ) -> Result<(lettre::Message, Smtp), Attempt> {
        let Ok(mailbox) = MailboxId::parse(&job.mailbox) else {
            return Err(Attempt::Dropped(format!("bad mailbox {}", job.mailbox)));
        };
        let Some(msg) = job.message.clone() else {
            return Err(Attempt::Dropped("no message in the job".into()));
        };
        let settings = match self.store.mailbox(&mailbox) {
            Ok(Some(m)) => m.settings,
            Ok(None) => return Err(Attempt::Dropped("the mailbox is gone".into())),
            Err(e) => return Err(Attempt::Failed(format!("reading the mailbox: {e}"))),
        };
        let Some(to) = settings.email.clone().filter(|e| !e.trim().is_empty()) else {
            return Err(Attempt::Dropped(
                "the mailbox has no e-mail address any more".into(),
            ));
        };
        let meta = match self.created_message(s, &job, &mailbox, &msg)? {
            Some(m) => m,
            None => return Err(Attempt::Dropped("the message is gone".into())),
        };
        let zone = settings
            .timezone
            .as_deref()
            .and_then(crate::config::parse_timezone)
            .unwrap_or_else(|| s.time_zone.clone());
        let language = settings.language.as_deref().unwrap_or(&s.language);
        let fields = email::Fields::new(&mailbox, &meta, &zone, s.link_template.as_deref());
        let (subject, body) = email::render(
            &fields,
            language,
            s.subject_template.as_deref(),
            s.body_template.as_deref(),
        );
        let attach = settings.attach.unwrap_or(Attach::Wav);
        let attachment = if attach == Attach::None {
            None
        } else {
            let path = match self.store.message_audio_path(&mailbox, &msg) {
                Ok(Some(p)) => p,
                Ok(None) => return Err(Attempt::Dropped("the message is gone".into())),
                Err(e) => return Err(Attempt::Failed(format!("finding the audio: {e}"))),
            };
            let wav = std::fs::read(&path)
                .map_err(|e| Attempt::Failed(format!("reading {}: {e}", path.display())))?;
            Some(match attach {
                Attach::Opus => {
                    // A WAV that cannot be read as audio is e-mailed as it
                    // is rather than not at all.
                    match opus_copy(&wav) {
                        Ok(ogg) => email::Attached {
                            name: format!("voicemail-{msg}.opus"),
                            content_type: "audio/ogg",
                            bytes: ogg,
                        },
                        Err(e) => {
                            warn!(%mailbox, id = %msg, "attaching the WAV: no Opus copy: {e}");
                            email::Attached::wav(&msg, wav)
                        }
                    }
                }
                _ => email::Attached::wav(&msg, wav),
            })
        };
        let message_id = job.message_id.clone().unwrap_or_else(|| {
            email::message_id(
                &name.trim_end_matches(".json").replace('_', "-"),
                &smtp.from,
            )
        });
        if job.state == JobState::Sending {
            warn!(%mailbox, id = %msg, message_id = %message_id, "an earlier send of this e-mail was interrupted: sending it again with the same Message-ID");
        }
        let message = email::build(
            &smtp.from,
            &to,
            subject,
            body,
            message_id.clone(),
            SystemTime::now(),
            attachment,
        )
        .map_err(Attempt::Dropped)?;
        // Mark the job before the SMTP transaction (see the module
        // documentation).
        job.state = JobState::Sending;
        job.message_id = Some(message_id);
        job.ready = true;
        match self.queue.write(Channel::Email, name, &job) {
            Ok(()) => {}
            Err(e) if e.is_fenced() => return Err(Attempt::Fenced),
            Err(e) => return Err(Attempt::Failed(format!("marking the job: {e}"))),
        }
        Ok((message, smtp.clone()))
    }

    async fn try_webhook(
        self: &Arc<Self>,
        s: &Arc<Settings>,
        name: &str,
        job: Job,
        clients: &webhook::Clients,
    ) -> Attempt {
        let Some(url) = job.url.clone() else {
            return Attempt::Dropped("no URL in the job".into());
        };
        let Some(endpoint) = s.webhooks.iter().find(|w| w.url == url).cloned() else {
            return Attempt::Dropped(format!("{url} is not in ext.webhooks any more"));
        };
        let client = match clients.get(endpoint.ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => return Attempt::Failed(e),
        };
        let event_id = job.id.clone();
        let me = self.clone();
        let s2 = s.clone();
        let n = name.to_string();
        let prepared =
            tokio::task::spawn_blocking(move || -> Result<(String, Vec<u8>), Attempt> {
                let secret = webhook::secret_bytes(&endpoint.secret).map_err(Attempt::Failed)?;
                let job = me.complete_event(&s2, &n, job)?;
                let body = json!({
                    "id": job.id,
                    "type": job.kind,
                    "created": job.created,
                    "data": job.data,
                });
                Ok((body.to_string(), secret))
            })
            .await;
        let (body, secret) = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(a)) => return a,
            Err(e) => return Attempt::Failed(format!("preparing the webhook: {e}")),
        };
        match webhook::deliver(&client, &url, &secret, &event_id, body).await {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Failed(e),
        }
    }

    /// Fills the `data` of a `message.created` job from the stored message
    /// and writes it back, so every attempt sends the same body.
    fn complete_event(&self, s: &Settings, name: &str, mut job: Job) -> Result<Job, Attempt> {
        if !job.data.is_null() {
            return Ok(job);
        }
        let mut data = json!({"mailbox": job.mailbox});
        if let (Ok(mailbox), Some(msg)) = (MailboxId::parse(&job.mailbox), job.message.clone()) {
            match self.created_message(s, &job, &mailbox, &msg)? {
                Some(meta) => data["message"] = message_data(&meta),
                None => data["message"] = json!({"id": msg}),
            }
        }
        job.data = data;
        job.ready = true;
        match self.queue.write(Channel::Webhook, name, &job) {
            Ok(()) => Ok(job),
            Err(e) if e.is_fenced() => Err(Attempt::Fenced),
            Err(e) => Err(Attempt::Failed(format!("writing the job: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_look_like_uuids_and_created_ones_are_stable() {
        let id = random_event_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, random_event_id());
        let m = MailboxId::new("1001", "example.com").unwrap();
        assert_eq!(created_event_id(&m, "x"), created_event_id(&m, "x"));
        assert_ne!(created_event_id(&m, "x"), created_event_id(&m, "y"));
    }

    /// A store in `dir` with the mailbox 1001@example.com, and a notifier
    /// with one webhook (unreachable) for `domains` and `events` (empty:
    /// all).
    fn webhook_notifier(
        dir: &std::path::Path,
        domains: &[&str],
        events: &[&str],
    ) -> (FsStore, MailboxId, Notifier) {
        let store = FsStore::open(dir).unwrap();
        let m = MailboxId::new("1001", "example.com").unwrap();
        store
            .create_mailbox(&m, crate::store::MailboxSettings::default(), None)
            .unwrap();
        let ext = Ext {
            webhooks: vec![Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: crate::config::WebhookSecret::Inline("0123456789abcdef".into()),
                domains: domains.iter().map(|d| d.to_string()).collect(),
                events: events.iter().map(|e| e.to_string()).collect(),
                ca_file: None,
            }],
            ..Ext::default()
        };
        let n = Notifier::new(store.clone(), &ext, Arc::new(Metrics::default()));
        (store, m, n)
    }

    #[test]
    fn a_recording_job_waits_for_its_message_and_goes_with_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (_, m, n) = webhook_notifier(dir.path(), &[], &["message.created"]);
        n.message_recording(&m, "20261207T140000.000Z-vmail1-abcdef");
        let names = n.queue.names(Channel::Webhook).unwrap();
        assert_eq!(names.len(), 1);
        let job = n.queue.read(Channel::Webhook, &names[0]).unwrap().unwrap();
        assert!(!job.ready);
        // Stored: the same job, now ready.
        let meta: MessageMeta = serde_json::from_value(json!({
            "id": "20261207T140000.000Z-vmail1-abcdef"
        }))
        .unwrap();
        n.message_stored(&m, &meta);
        assert_eq!(n.queue.names(Channel::Webhook).unwrap(), names);
        let again = n.queue.read(Channel::Webhook, &names[0]).unwrap().unwrap();
        assert!(again.ready);
        assert_eq!(again.id, job.id);
        // Heard is not wanted by this endpoint; a dropped recording goes.
        n.message_heard(&m, &meta);
        assert_eq!(n.queue.names(Channel::Webhook).unwrap().len(), 1);
        n.message_dropped(&m, &meta.id);
        assert!(n.queue.names(Channel::Webhook).unwrap().is_empty());
    }

    #[test]
    fn a_lock_is_an_event_and_a_passive_instance_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, m, n) = webhook_notifier(dir.path(), &["example.com"], &[]);
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        n.mailbox_locked(&m, until);
        // No event for a mailbox that does not exist.
        n.mailbox_locked(&MailboxId::new("1999", "example.com").unwrap(), until);
        let names = n.queue.names(Channel::Webhook).unwrap();
        assert_eq!(names.len(), 1);
        let job = n.queue.read(Channel::Webhook, &names[0]).unwrap().unwrap();
        assert_eq!(job.kind, "mailbox.locked");
        assert_eq!(job.data["locked_until"], "2027-01-15T08:00:00Z");
        // A closed fence (a passive instance): nothing is written or removed.
        store.set_fence(Arc::new(crate::cluster::Fence::new(1, None)));
        n.mailbox_locked(&m, until);
        assert_eq!(n.queue.names(Channel::Webhook).unwrap(), names);
        assert!(n
            .queue
            .remove(Channel::Webhook, &names[0])
            .unwrap_err()
            .is_fenced());
    }

    #[test]
    fn a_message_stored_before_a_crash_makes_its_waiting_job_due() {
        let dir = tempfile::tempdir().unwrap();
        let (store, m, n) = webhook_notifier(dir.path(), &[], &[]);
        let info = crate::store::RecordingInfo {
            caller_uri: "sip:5551234@example.com".into(),
            caller_name: None,
            called_uri: "sip:1001@example.com".into(),
            cause: "unavailable".into(),
            codec: "PCMA".into(),
            site: "site1".into(),
            instance: "vmail1".into(),
            epoch: 0,
            sample_rate: 8000,
        };
        let mut w = store.begin_recording(&m, info, SystemTime::now()).unwrap();
        let msg = w.id().to_string();
        n.message_recording(&m, &msg);
        w.append(&crate::media::tone(400.0, 1000, 8000, 8000))
            .unwrap();
        w.finish().unwrap();
        // The crash: message_stored never ran. The job waits for minutes.
        let names = n.queue.names(Channel::Webhook).unwrap();
        let job = n.queue.read(Channel::Webhook, &names[0]).unwrap().unwrap();
        assert!(!job.ready);
        assert!(job.next_try_at() > SystemTime::now() + Duration::from_secs(60));
        n.reconcile();
        let job = n.queue.read(Channel::Webhook, &names[0]).unwrap().unwrap();
        assert!(job.ready);
        assert!(job.next_try_at() <= SystemTime::now() + Duration::from_secs(10));
        // A job whose recording is still going on is left waiting.
        n.message_recording(&m, "20261207T140000.000Z-vmail1-abcdef");
        n.reconcile();
        let waiting = n
            .queue
            .names(Channel::Webhook)
            .unwrap()
            .into_iter()
            .filter_map(|name| n.queue.read(Channel::Webhook, &name).unwrap())
            .filter(|j| !j.ready)
            .count();
        assert_eq!(waiting, 1);
    }
}
