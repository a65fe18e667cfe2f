//! The file-system store: mailboxes, messages, greetings, login state.
//!
//! Layout under `<siteshare>/vmail/domains/<domain>/<user>/`:
//! `mailbox.json`, `login.json`, `INBOX/`, `Old/` (and, once used, the
//! other folders of [`Folder`]: `Work/`, `Family/`, `Friends/`,
//! `Cust1/`..`Cust5/`), `greetings/`, `tmp/`.
//! A message is `<id>.wav` + `<id>.json`; it exists for readers only when
//! both are there, and the JSON is always put in place before the WAV.
//!
//! # Fencing
//!
//! With a [`Fence`] set ([`FsStore::set_fence`]), every operation that
//! writes asks it right before its first change to the store and is
//! refused with [`StoreError::Fenced`] (and a warning naming the operation
//! and the mailbox) when this instance is not the active one of its group,
//! or its lease ran out. Putting a message into a folder (a recording's
//! commit, a forwarded copy, recovery) asks [`Fence::confirm`], which also
//! checks the coordination store's current epoch. The epoch the fence
//! holds is written into what the operation writes: message metadata,
//! `mailbox.json`, `login.json`, the `login-unknown` buckets and
//! `subscriptions.json`. Reads are never fenced; a store without a fence
//! (the CLI, tools) writes unfenced and keeps the epochs its callers give.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use super::error::StoreError;
use super::fsutil::{
    create_dir_all, dir_names, exists, lock_file, parent, read_json, remove_if_exists, sync_dir,
    tmp_sibling, write_json_atomic,
};
use super::ids::{new_message_id, rfc3339};
use super::names::{
    normalize_domain, validate_message_id, validate_user, Folder, GreetingKind, MailboxId,
    MAX_MESSAGE_ID_LEN,
};
use super::pin::{validate_pin, PinCost, PinHasher};
use super::types::{
    Counts, LoginAttempt, LoginRecord, LoginState, Mailbox, MailboxRecord, MailboxSettings,
    MessageMeta,
};
use super::wav;
use crate::cluster::{Fence, FenceError};

/// Called with the mailbox whose message counts may have changed.
pub type Observer = Arc<dyn Fn(&MailboxId) + Send + Sync>;

const LOCK_STRIPES: usize = 64;
pub(super) const MAILBOX_FILE: &str = "mailbox.json";
const LOGIN_FILE: &str = "login.json";
const LOGIN_LOCK_FILE: &str = "login.lock";
pub(super) const TMP_DIR: &str = "tmp";
pub(super) const GREETINGS_DIR: &str = "greetings";
/// Prefix of a mailbox directory being removed (hidden: users never start
/// with a dot).
pub(super) const REMOVED_PREFIX: &str = ".removed-";

/// The SiteShare mailbox store on a file system.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`. All calls block on
/// file I/O (and `set_pin`/`verify_pin` on argon2): call them from
/// `spawn_blocking` in async code.
#[derive(Clone)]
pub struct FsStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    root: PathBuf,
    domains: PathBuf,
    locks: [Mutex<()>; LOCK_STRIPES],
    observer: RwLock<Option<Observer>>,
    /// The Active-Passive fence every write asks first (none: unfenced).
    fence: RwLock<Option<Arc<Fence>>>,
    /// Temporary WAVs of recordings alive in this process: `recover`
    /// leaves them alone.
    pub(super) live: Mutex<HashSet<PathBuf>>,
    pin: PinHasher,
    /// A hash to verify against when a mailbox does not exist.
    dummy_hash: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for FsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStore")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates and removes a file under a random name in `root`.
fn probe_writable(root: &Path) -> Result<(), StoreError> {
    let probe = tmp_sibling(&root.join("probe"));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| StoreError::io("write to", root, e))?;
    drop(f);
    remove_if_exists(&probe).map(drop)
}

impl FsStore {
    /// Opens (creating if needed) the store under `<siteshare>/vmail/` and
    /// checks that it is writable.
    pub fn open(siteshare: &Path) -> Result<Self, StoreError> {
        Self::open_with_pin_cost(siteshare, PinCost::Recommended)
    }

    /// Like [`open`](Self::open) with a chosen PIN hashing cost
    /// ([`PinCost::TestOnly`] keeps debug-build tests fast).
    pub fn open_with_pin_cost(siteshare: &Path, cost: PinCost) -> Result<Self, StoreError> {
        let pin = PinHasher::new(cost);
        let root = siteshare.join("vmail");
        let domains = root.join("domains");
        create_dir_all(&domains)?;
        probe_writable(&root)?;
        let locks = std::array::from_fn(|_| Mutex::new(()));
        Ok(FsStore {
            inner: Arc::new(Inner {
                root,
                domains,
                locks,
                observer: RwLock::new(None),
                fence: RwLock::new(None),
                live: Mutex::new(HashSet::new()),
                pin,
                dummy_hash: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Whether a file can be created (and removed) in the store, as at
    /// open: a probe file under a random name. Not fenced: it says whether
    /// the filesystem takes writes, and leaves nothing behind.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        probe_writable(&self.inner.root)
    }

    /// `<siteshare>/vmail`.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Installs the observer called after every change that can affect a
    /// mailbox's message counts (new, recovered, moved, deleted, copied
    /// message; removed mailbox). It runs on the caller's thread, outside
    /// the store's locks.
    pub fn set_observer(&self, f: Observer) {
        let mut g = self
            .inner
            .observer
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *g = Some(f);
    }

    /// Installs the fence that every write asks first (see the module
    /// documentation); replaces an earlier one. Without a fence the store
    /// writes unfenced.
    pub fn set_fence(&self, fence: Arc<Fence>) {
        let mut g = self.inner.fence.write().unwrap_or_else(|e| e.into_inner());
        *g = Some(fence);
    }

    /// The fence, if one is set.
    pub fn fence(&self) -> Option<Arc<Fence>> {
        self.inner
            .fence
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the fence before the write `op` (of `mailbox`): `Ok(None)`
    /// without a fence, `Ok(Some(epoch))` when this instance may write with
    /// `epoch`, else [`StoreError::Fenced`] (logged).
    pub(super) fn fence_check(
        &self,
        op: &'static str,
        mailbox: Option<&MailboxId>,
    ) -> Result<Option<u64>, StoreError> {
        match self.fence() {
            None => Ok(None),
            Some(f) => f
                .check()
                .map(Some)
                .map_err(|e| Self::refused(op, mailbox, e)),
        }
    }

    /// [`fence_check`](Self::fence_check) that also asks the coordination
    /// store whether the epoch is still the group's ([`Fence::confirm`]):
    /// before a message is put into a folder.
    pub(super) fn fence_confirm(
        &self,
        op: &'static str,
        mailbox: Option<&MailboxId>,
    ) -> Result<Option<u64>, StoreError> {
        match self.fence() {
            None => Ok(None),
            Some(f) => f
                .confirm()
                .map(Some)
                .map_err(|e| Self::refused(op, mailbox, e)),
        }
    }

    /// Logs a refused write and makes its error.
    pub(super) fn refused(
        op: &'static str,
        mailbox: Option<&MailboxId>,
        e: FenceError,
    ) -> StoreError {
        match mailbox {
            Some(m) => {
                tracing::warn!(operation = op, mailbox = %m, reason = %e, "write refused: not the active instance of the group");
            }
            None => {
                tracing::warn!(operation = op, reason = %e, "write refused: not the active instance of the group");
            }
        }
        StoreError::Fenced(e)
    }

    /// The one place that reports count changes.
    pub(super) fn notify(&self, id: &MailboxId) {
        let f = self
            .inner
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = f {
            f(id);
        }
    }

    /// The per-mailbox lock (striped; never hold two at once).
    pub(super) fn lock(&self, id: &MailboxId) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        let i = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0) % LOCK_STRIPES;
        lock_ignoring_poison(&self.inner.locks[i])
    }

    // ----- paths (only from validated names) -----

    pub(super) fn domains_dir(&self) -> &Path {
        &self.inner.domains
    }

    pub(super) fn mailbox_dir(&self, id: &MailboxId) -> PathBuf {
        self.inner.domains.join(id.domain()).join(id.user())
    }

    fn mailbox_file(&self, id: &MailboxId) -> PathBuf {
        self.mailbox_dir(id).join(MAILBOX_FILE)
    }

    pub(super) fn folder_dir(&self, id: &MailboxId, folder: Folder) -> PathBuf {
        self.mailbox_dir(id).join(folder.dir_name())
    }

    pub(super) fn tmp_dir(&self, id: &MailboxId) -> PathBuf {
        self.mailbox_dir(id).join(TMP_DIR)
    }

    fn greeting_file(&self, id: &MailboxId, kind: GreetingKind) -> PathBuf {
        self.mailbox_dir(id)
            .join(GREETINGS_DIR)
            .join(kind.file_name())
    }

    /// `(wav, json)` of a message; `msg_id` must be validated.
    pub(super) fn message_files(
        &self,
        id: &MailboxId,
        folder: Folder,
        msg_id: &str,
    ) -> (PathBuf, PathBuf) {
        let dir = self.folder_dir(id, folder);
        (
            dir.join(format!("{msg_id}.wav")),
            dir.join(format!("{msg_id}.json")),
        )
    }

    // ----- mailboxes -----

    pub(super) fn mailbox_exists(&self, id: &MailboxId) -> bool {
        self.mailbox_file(id).is_file()
    }

    pub(super) fn require_mailbox(&self, id: &MailboxId) -> Result<(), StoreError> {
        if self.mailbox_exists(id) {
            Ok(())
        } else {
            Err(StoreError::NotFound { what: "mailbox" })
        }
    }

    fn load_record(&self, id: &MailboxId) -> Result<MailboxRecord, StoreError> {
        read_json(&self.mailbox_file(id))?.ok_or(StoreError::NotFound { what: "mailbox" })
    }

    fn to_mailbox(id: &MailboxId, r: MailboxRecord) -> Mailbox {
        Mailbox {
            id: id.clone(),
            settings: r.settings,
            has_pin: r.pin_hash.is_some(),
            created: r.created,
        }
    }

    /// Creates a mailbox (`AlreadyExists` if there is one), whole or not
    /// at all.
    pub fn create_mailbox(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
        pin: Option<&str>,
    ) -> Result<Mailbox, StoreError> {
        settings.validate()?;
        let pin_hash = match pin {
            Some(p) => {
                validate_pin(p)?;
                Some(self.inner.pin.hash(p)?)
            }
            None => None,
        };
        if self.mailbox_exists(id) {
            return Err(StoreError::AlreadyExists { what: "mailbox" });
        }
        let record = MailboxRecord {
            version: 1,
            settings,
            pin_hash,
            created: rfc3339(SystemTime::now()),
            epoch: 0,
        };
        // Built whole under staging/, then renamed into place: a failure
        // (a full disk) never leaves a mailbox folder without mailbox.json.
        let staged = self.stage_mailbox(id, &record)?;
        let published = self.publish_staged(id, &staged);
        if !matches!(published, Ok(true)) {
            self.drop_staged(&staged);
        }
        if !published? {
            return Err(StoreError::AlreadyExists { what: "mailbox" });
        }
        tracing::info!(mailbox = %id, "mailbox created");
        Ok(Self::to_mailbox(id, record))
    }

    /// The mailbox, or `None`.
    pub fn mailbox(&self, id: &MailboxId) -> Result<Option<Mailbox>, StoreError> {
        Ok(read_json::<MailboxRecord>(&self.mailbox_file(id))?.map(|r| Self::to_mailbox(id, r)))
    }

    /// Replaces the settings.
    pub fn update_settings(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
    ) -> Result<Mailbox, StoreError> {
        settings.validate()?;
        let _g = self.lock(id);
        let mut r = self.load_record(id)?;
        r.settings = settings;
        r.epoch = self.fence_check("update settings", Some(id))?.unwrap_or(0);
        write_json_atomic(&self.mailbox_file(id), &r)?;
        Ok(Self::to_mailbox(id, r))
    }

    /// Removes a mailbox with all its messages and greetings. The
    /// directory is first renamed away (atomic), then deleted; a crash in
    /// between leaves a hidden directory that `recover` deletes.
    pub fn remove_mailbox(&self, id: &MailboxId) -> Result<(), StoreError> {
        let gone = {
            let _g = self.lock(id);
            self.require_mailbox(id)?;
            self.fence_check("remove mailbox", Some(id))?;
            let dir = self.mailbox_dir(id);
            let gone = parent(&dir).join(format!(
                "{REMOVED_PREFIX}{}-{}",
                id.user(),
                super::fsutil::rand_hex6()
            ));
            fs::rename(&dir, &gone).map_err(|e| StoreError::io("rename", &dir, e))?;
            sync_dir(parent(&dir))?;
            gone
        };
        if let Err(e) = fs::remove_dir_all(&gone) {
            tracing::warn!(path = %gone.display(), error = %e, "removed mailbox left behind; recovery deletes it");
        }
        tracing::info!(mailbox = %id, "mailbox removed");
        self.notify(id);
        Ok(())
    }

    /// Mailboxes of one domain, or of all; sorted.
    pub fn list_mailboxes(&self, domain: Option<&str>) -> Result<Vec<MailboxId>, StoreError> {
        let domains = match domain {
            Some(d) => vec![normalize_domain(d)?],
            None => dir_names(self.domains_dir())?
                .into_iter()
                .filter(|d| normalize_domain(d).ok().as_deref() == Some(d.as_str()))
                .collect(),
        };
        let mut out = Vec::new();
        for d in domains {
            for user in dir_names(&self.domains_dir().join(&d))? {
                if validate_user(&user).is_err() {
                    continue;
                }
                if let Ok(id) = MailboxId::new(&user, &d) {
                    if self.mailbox_exists(&id) {
                        out.push(id);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Sets the PIN (4..=20 digits), stored as a salted argon2 hash.
    pub fn set_pin(&self, id: &MailboxId, pin: &str) -> Result<(), StoreError> {
        validate_pin(pin)?;
        self.require_mailbox(id)?;
        let hash = self.inner.pin.hash(pin)?;
        let _g = self.lock(id);
        let mut r = self.load_record(id)?;
        r.pin_hash = Some(hash);
        r.epoch = self.fence_check("set PIN", Some(id))?.unwrap_or(0);
        write_json_atomic(&self.mailbox_file(id), &r)
    }

    /// True if `pin` is the mailbox's PIN (false when no PIN is set). A
    /// refusal without a stored hash to check costs a dummy verification,
    /// so the time does not tell a mailbox without a PIN (auto-created) or
    /// a malformed entry from a wrong PIN.
    pub fn verify_pin(&self, id: &MailboxId, pin: &str) -> Result<bool, StoreError> {
        let r = self.load_record(id)?;
        let Some(hash) = r.pin_hash.filter(|_| validate_pin(pin).is_ok()) else {
            self.dummy_verify(pin);
            return Ok(false);
        };
        self.inner
            .pin
            .verify(pin, &hash)
            .map_err(|reason| StoreError::Corrupt {
                path: self.mailbox_file(id),
                reason,
            })
    }

    /// PIN check that costs the same whether the mailbox exists or not (no
    /// mailbox enumeration by timing): `Some(matches)` for an existing
    /// mailbox, `None` for a missing one after a dummy verification.
    pub fn check_pin(&self, id: &MailboxId, pin: &str) -> Result<Option<bool>, StoreError> {
        if self.mailbox(id)?.is_some() {
            return self.verify_pin(id, pin).map(Some);
        }
        self.dummy_verify(pin);
        Ok(None)
    }

    /// An argon2 verification whose answer is thrown away: the time a real
    /// check takes.
    fn dummy_verify(&self, pin: &str) {
        let dummy = self
            .inner
            .dummy_hash
            .get_or_init(|| self.inner.pin.hash("00000000").unwrap_or_default());
        let _ = self.inner.pin.verify(pin, dummy);
    }

    // ----- login lockout -----

    fn read_login(&self, id: &MailboxId) -> Result<LoginRecord, StoreError> {
        match read_json::<LoginRecord>(&self.mailbox_dir(id).join(LOGIN_FILE)) {
            Ok(r) => Ok(r.unwrap_or_default()),
            Err(StoreError::Corrupt { path, reason }) => {
                tracing::warn!(path = %path.display(), %reason, "corrupt login state reset");
                Ok(LoginRecord::default())
            }
            Err(e) => Err(e),
        }
    }

    /// PIN login failures and lock of a mailbox.
    pub fn login_state(&self, id: &MailboxId) -> Result<LoginState, StoreError> {
        self.require_mailbox(id)?;
        Ok(self.read_login(id)?.into())
    }

    /// Reserves a PIN attempt at `now` before the PIN is checked
    /// ([`LoginState::reserve`]): the attempt is counted as a failure up
    /// front and `Locked` comes back, with nothing counted, while the
    /// mailbox is locked. A good PIN then calls
    /// [`record_login_success`](Self::record_login_success).
    ///
    /// One decision per mailbox across threads and processes: the
    /// read-modify-write of `login.json` runs under an exclusive `flock` of
    /// the mailbox's `login.lock` (plus the in-process stripe lock), so the
    /// instances of a group sharing the SiteShare count every attempt once.
    /// The file system must honour `flock` between its clients (local file
    /// systems, NFSv4, CephFS, GlusterFS do); one that silently ignores it
    /// leaves the lockout exact per instance only.
    pub fn reserve_login_attempt(
        &self,
        id: &MailboxId,
        now: SystemTime,
        lockout_failures: u32,
        lockout_seconds: u64,
    ) -> Result<LoginAttempt, StoreError> {
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        // The lock file is created on first use: a write too.
        self.fence_check("record login attempt", Some(id))?;
        let _file_lock = self.login_file_lock(id)?;
        let mut s: LoginState = self.read_login(id)?.into();
        let attempt = s.reserve(now, lockout_failures, lockout_seconds);
        if attempt.is_granted() {
            let mut record = LoginRecord::from(s);
            // Again: the flock may have waited for another instance.
            record.epoch = self
                .fence_check("record login attempt", Some(id))?
                .unwrap_or(0);
            write_json_atomic(&self.mailbox_dir(id).join(LOGIN_FILE), &record)?;
        }
        Ok(attempt)
    }

    /// Clears failures and lock after a good login.
    pub fn record_login_success(&self, id: &MailboxId) -> Result<(), StoreError> {
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        self.fence_check("record login success", Some(id))?;
        let _file_lock = self.login_file_lock(id)?;
        let dir = self.mailbox_dir(id);
        if remove_if_exists(&dir.join(LOGIN_FILE))? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// The exclusive lock on a mailbox's `login.lock` (`login.json` itself
    /// is replaced by renames, so it cannot carry the lock).
    fn login_file_lock(&self, id: &MailboxId) -> Result<File, StoreError> {
        lock_file(&self.mailbox_dir(id).join(LOGIN_LOCK_FILE))
    }

    // ----- messages -----

    /// Reads one message if present (WAV and JSON both there).
    pub(super) fn read_message(
        &self,
        id: &MailboxId,
        folder: Folder,
        msg_id: &str,
    ) -> Result<Option<MessageMeta>, StoreError> {
        let (wav, json) = self.message_files(id, folder, msg_id);
        if !wav.is_file() {
            return Ok(None);
        }
        Ok(read_json::<MessageMeta>(&json)?.map(|mut m| {
            m.id = msg_id.to_owned();
            m.folder = folder;
            m
        }))
    }

    fn find_message(
        &self,
        id: &MailboxId,
        msg_id: &str,
    ) -> Result<Option<MessageMeta>, StoreError> {
        for folder in Folder::ALL {
            if let Some(m) = self.read_message(id, folder, msg_id)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    fn require_message(&self, id: &MailboxId, msg_id: &str) -> Result<MessageMeta, StoreError> {
        self.find_message(id, msg_id)?
            .ok_or(StoreError::NotFound { what: "message" })
    }

    /// Messages of a folder, sorted by id (= time). A message whose JSON
    /// does not parse is skipped with a warning.
    pub fn list_messages(
        &self,
        id: &MailboxId,
        folder: Folder,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        self.require_mailbox(id)?;
        let mut out = Vec::new();
        for name in dir_names(&self.folder_dir(id, folder))? {
            let Some(stem) = name.strip_suffix(".wav") else {
                continue;
            };
            if validate_message_id(stem).is_err() {
                continue;
            }
            match self.read_message(id, folder, stem) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(StoreError::Corrupt { path, reason }) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping corrupt message metadata");
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Message counts: new = `INBOX/`; old = every other folder (`Old/`
    /// and the named ones: a message saved to `Work/` has been heard, and
    /// RFC 3842 counts it as old). The urgent counts are the urgent ones
    /// among them.
    pub fn counts(&self, id: &MailboxId) -> Result<Counts, StoreError> {
        let mut c = Counts::default();
        for folder in Folder::ALL {
            let list = self.list_messages(id, folder)?;
            let urgent = list.iter().filter(|m| m.urgent).count();
            if folder.is_new() {
                c.new += list.len();
                c.urgent_new += urgent;
            } else {
                c.old += list.len();
                c.urgent_old += urgent;
            }
        }
        Ok(c)
    }

    /// Messages in each folder, in key order (every folder, empty ones
    /// with 0).
    pub fn folder_counts(&self, id: &MailboxId) -> Result<Vec<(Folder, usize)>, StoreError> {
        Folder::ALL
            .into_iter()
            .map(|f| Ok((f, self.list_messages(id, f)?.len())))
            .collect()
    }

    /// One message, in whichever folder it is.
    pub fn message(&self, id: &MailboxId, msg_id: &str) -> Result<Option<MessageMeta>, StoreError> {
        validate_message_id(msg_id)?;
        self.require_mailbox(id)?;
        self.find_message(id, msg_id)
    }

    /// Path of a message's WAV.
    pub fn message_audio_path(
        &self,
        id: &MailboxId,
        msg_id: &str,
    ) -> Result<Option<PathBuf>, StoreError> {
        Ok(self
            .message(id, msg_id)?
            .map(|m| self.message_files(id, m.folder, msg_id).0))
    }

    /// Moves a message to another folder (no-op if it is there). The JSON
    /// goes first, then the WAV: the message is visible in exactly one
    /// folder at every moment.
    pub fn move_message(&self, id: &MailboxId, msg_id: &str, to: Folder) -> Result<(), StoreError> {
        validate_message_id(msg_id)?;
        {
            let _g = self.lock(id);
            self.require_mailbox(id)?;
            let mut m = self.require_message(id, msg_id)?;
            let from = m.folder;
            if from == to {
                return Ok(());
            }
            let (src_wav, src_json) = self.message_files(id, from, msg_id);
            let (dst_wav, dst_json) = self.message_files(id, to, msg_id);
            if exists(&dst_wav) {
                return Err(StoreError::AlreadyExists { what: "message" });
            }
            if let Some(epoch) = self.fence_check("move message", Some(id))? {
                m.epoch = epoch;
            }
            create_dir_all(parent(&dst_wav))?;
            m.folder = to;
            write_json_atomic(&dst_json, &m)?;
            fs::rename(&src_wav, &dst_wav).map_err(|e| StoreError::io("rename", &src_wav, e))?;
            sync_dir(parent(&dst_wav))?;
            remove_if_exists(&src_json)?;
            sync_dir(parent(&src_wav))?;
        }
        self.notify(id);
        Ok(())
    }

    /// Sets the heard flag.
    pub fn set_heard(&self, id: &MailboxId, msg_id: &str, heard: bool) -> Result<(), StoreError> {
        validate_message_id(msg_id)?;
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        let mut m = self.require_message(id, msg_id)?;
        if m.heard == heard {
            return Ok(());
        }
        m.heard = heard;
        if let Some(epoch) = self.fence_check("set heard flag", Some(id))? {
            m.epoch = epoch;
        }
        let (_, json) = self.message_files(id, m.folder, msg_id);
        write_json_atomic(&json, &m)
    }

    /// Deletes a message (WAV first, so it disappears at once).
    pub fn delete_message(&self, id: &MailboxId, msg_id: &str) -> Result<(), StoreError> {
        validate_message_id(msg_id)?;
        {
            let _g = self.lock(id);
            self.require_mailbox(id)?;
            let m = self.require_message(id, msg_id)?;
            self.fence_check("delete message", Some(id))?;
            let (wav, json) = self.message_files(id, m.folder, msg_id);
            remove_if_exists(&wav)?;
            remove_if_exists(&json)?;
            sync_dir(parent(&wav))?;
            tracing::info!(mailbox = %id, message = msg_id, "message deleted");
        }
        self.notify(id);
        Ok(())
    }

    /// Copies a message into another mailbox's `INBOX/` as a new, unheard
    /// message marked `forwarded_by`. Returns the new id.
    pub fn copy_message(
        &self,
        from: &MailboxId,
        msg_id: &str,
        to: &MailboxId,
        forwarded_by: &str,
    ) -> Result<String, StoreError> {
        validate_message_id(msg_id)?;
        if forwarded_by.len() > 256 || forwarded_by.chars().any(char::is_control) {
            return Err(StoreError::InvalidValue {
                what: "forwarded_by",
                reason: "at most 256 characters, no control characters",
            });
        }
        self.require_mailbox(to)?;
        self.fence_check("copy message", Some(to))?;
        let inbox = self.folder_dir(to, Folder::Inbox);
        create_dir_all(&inbox)?;
        let new_id = new_message_id(SystemTime::now(), "fwd");
        let staged = tmp_sibling(&inbox.join(format!("{new_id}.wav")));
        let mut meta = {
            let _g = self.lock(from);
            self.require_mailbox(from)?;
            let m = self.require_message(from, msg_id)?;
            let (src, _) = self.message_files(from, m.folder, msg_id);
            if let Err(e) = copy_synced(&src, &staged) {
                let _ = fs::remove_file(&staged);
                return Err(e);
            }
            m
        };
        meta.id = new_id;
        meta.folder = Folder::Inbox;
        meta.heard = false;
        meta.forwarded_by = Some(forwarded_by.to_owned());
        match self.commit_message(to, meta, &staged, None) {
            Ok(m) => {
                tracing::info!(from = %from, to = %to, message = msg_id, new = %m.id, "message copied");
                Ok(m.id)
            }
            Err(e) => {
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    /// Puts a complete WAV (`wav_src`, on the same file system) and its
    /// metadata into `INBOX/`: JSON first (atomic), then the WAV by
    /// rename, then directory fsyncs; removes `sidecar` at the end; tells
    /// the observer. The id is kept unless a different message already
    /// uses it. With a fence, [`Fence::confirm`] first, and the metadata
    /// gets the fence's epoch (a recovered message carries the recoverer's).
    pub(super) fn commit_message(
        &self,
        mailbox: &MailboxId,
        mut meta: MessageMeta,
        wav_src: &Path,
        sidecar: Option<&Path>,
    ) -> Result<MessageMeta, StoreError> {
        {
            let _g = self.lock(mailbox);
            self.require_mailbox(mailbox)?;
            if let Some(epoch) = self.fence_confirm("commit message", Some(mailbox))? {
                meta.epoch = epoch;
            }
            let inbox = self.folder_dir(mailbox, Folder::Inbox);
            create_dir_all(&inbox)?;
            meta.id = self.free_id(mailbox, &meta.id, &meta.instance);
            meta.folder = Folder::Inbox;
            let (wav, json) = self.message_files(mailbox, Folder::Inbox, &meta.id);
            write_json_atomic(&json, &meta)?;
            fs::rename(wav_src, &wav).map_err(|e| StoreError::io("rename", wav_src, e))?;
            sync_dir(&inbox)?;
            if parent(wav_src) != inbox {
                sync_dir(parent(wav_src))?;
            }
            if let Some(s) = sidecar {
                remove_if_exists(s)?;
            }
        }
        self.notify(mailbox);
        Ok(meta)
    }

    /// `want` if no WAV of that id is in any folder, else a variant.
    fn free_id(&self, mailbox: &MailboxId, want: &str, instance: &str) -> String {
        let taken = |cand: &str| {
            Folder::ALL
                .iter()
                .any(|f| exists(&self.message_files(mailbox, *f, cand).0))
        };
        if !taken(want) {
            return want.to_owned();
        }
        for n in 1..100 {
            let cand = format!("{want}-{n}");
            if cand.len() <= MAX_MESSAGE_ID_LEN && !taken(&cand) {
                return cand;
            }
        }
        loop {
            let cand = new_message_id(SystemTime::now(), instance);
            if !taken(&cand) {
                return cand;
            }
        }
    }

    // ----- greetings -----

    /// Path of a greeting, if recorded.
    pub fn greeting_path(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
    ) -> Result<Option<PathBuf>, StoreError> {
        self.require_mailbox(id)?;
        let p = self.greeting_file(id, kind);
        Ok(p.is_file().then_some(p))
    }

    /// Stores a greeting (PCM 16-bit mono) atomically, replacing the old.
    pub fn store_greeting(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
        pcm: &[i16],
        sample_rate: u32,
    ) -> Result<(), StoreError> {
        if pcm.is_empty() {
            return Err(StoreError::InvalidValue {
                what: "greeting audio",
                reason: "empty",
            });
        }
        if !wav::valid_rate(sample_rate) {
            return Err(StoreError::InvalidValue {
                what: "greeting audio",
                reason: "unsupported sample rate",
            });
        }
        if pcm.len() as u64 * 2 > wav::MAX_DATA_LEN {
            return Err(StoreError::InvalidValue {
                what: "greeting audio",
                reason: "too long",
            });
        }
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        self.fence_check("store greeting", Some(id))?;
        let path = self.greeting_file(id, kind);
        create_dir_all(parent(&path))?;
        let tmp = tmp_sibling(&path);
        let result = write_wav_file(&tmp, pcm, sample_rate)
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &tmp, e)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_dir(parent(&path))?;
        tracing::info!(mailbox = %id, greeting = kind.file_name(), "greeting stored");
        Ok(())
    }

    /// Deletes a greeting (`NotFound` if there is none).
    pub fn delete_greeting(&self, id: &MailboxId, kind: GreetingKind) -> Result<(), StoreError> {
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        self.fence_check("delete greeting", Some(id))?;
        let path = self.greeting_file(id, kind);
        if !remove_if_exists(&path)? {
            return Err(StoreError::NotFound { what: "greeting" });
        }
        sync_dir(parent(&path))
    }

    #[cfg(test)]
    pub(super) fn open_for_tests(siteshare: &Path) -> Result<Self, StoreError> {
        Self::open_with_pin_cost(siteshare, PinCost::TestOnly)
    }
}

/// Copies a file and fsyncs the copy.
fn copy_synced(src: &Path, dst: &Path) -> Result<(), StoreError> {
    fs::copy(src, dst).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::NotFound { what: "message" }
        } else {
            StoreError::io("copy", src, e)
        }
    })?;
    let f = File::open(dst).map_err(|e| StoreError::io("open", dst, e))?;
    f.sync_all().map_err(|e| StoreError::io("sync", dst, e))
}

/// Writes a complete WAV with hound and fsyncs it.
fn write_wav_file(path: &Path, pcm: &[i16], sample_rate: u32) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::io("create", path, e))?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let hound_err = |e: hound::Error| match e {
        hound::Error::IoError(io) => StoreError::io("write", path, io),
        other => StoreError::io("write", path, io::Error::other(other.to_string())),
    };
    let mut out = BufWriter::new(file);
    {
        let mut w = hound::WavWriter::new(&mut out, spec).map_err(hound_err)?;
        for s in pcm {
            w.write_sample(*s).map_err(hound_err)?;
        }
        w.finalize().map_err(hound_err)?;
    }
    let file = out
        .into_inner()
        .map_err(|e| StoreError::io("write", path, e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io("sync", path, e))
}
