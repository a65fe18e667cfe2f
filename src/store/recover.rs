//! Crash recovery: completes recordings left in `tmp/`, removes leftovers
//! of atomic writes and of removed mailboxes.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::error::StoreError;
use super::fs::{FsStore, GREETINGS_DIR, MAILBOX_FILE, REMOVED_PREFIX, TMP_DIR};
use super::fsutil::{
    create_dir_all, dir_names, read_json, remove_if_exists, write_json_atomic, TMP_SUFFIX,
};
use super::ids::{id_time, new_message_id, rfc3339};
use super::names::{normalize_domain, validate_message_id, validate_user, Folder, MailboxId};
use super::recording::{finalize_wav, meta_from_sidecar};
use super::types::{cause, MessageMeta, RecordingInfo, Sidecar};
use super::wav;

/// Decides whether `recover_with` repairs a domain.
pub type DomainFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Which parts of the store `recover_with` repairs.
#[derive(Clone, Default)]
pub struct RecoverOptions {
    /// Only the domains for which this returns true (all when `None`):
    /// an instance repairs the domains its group serves, not another
    /// group's recordings in progress.
    pub domain_filter: Option<DomainFilter>,
    /// Leave files younger than this alone (their writer, possibly another
    /// process, may still be at work). Zero repairs everything.
    pub min_idle: Duration,
}

impl std::fmt::Debug for RecoverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverOptions")
            .field("domain_filter", &self.domain_filter.is_some())
            .field("min_idle", &self.min_idle)
            .finish()
    }
}

struct Ctx<'a> {
    opts: &'a RecoverOptions,
    now: SystemTime,
}

impl Ctx<'_> {
    /// True if `path` has not been modified for `min_idle`.
    fn idle(&self, path: &Path) -> bool {
        if self.opts.min_idle.is_zero() {
            return true;
        }
        fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| self.now.duration_since(t).ok())
            .is_some_and(|age| age >= self.opts.min_idle)
    }
}

impl FsStore {
    /// Repairs every mailbox: see [`recover_with`](Self::recover_with).
    pub fn recover(&self) -> Result<Vec<(MailboxId, String)>, StoreError> {
        self.recover_with(&RecoverOptions::default())
    }

    /// Repairs the store after a crash (call at start and on takeover):
    /// each `tmp/<id>.wav` not being written by this process gets its
    /// header fixed to the data present and is completed into `INBOX/`
    /// with `recovered: true` (metadata from its sidecar, or minimal); a
    /// WAV without audio is removed; leftover `*.tmp` files, orphan
    /// sidecars and half-removed mailboxes are deleted; a WAV in a folder
    /// without metadata gets minimal metadata. Returns the recovered
    /// messages. One mailbox failing does not stop the others (logged).
    ///
    /// With a fence, only the group's active instance repairs: the whole
    /// recovery is refused up front ([`StoreError::Fenced`]) and stops at
    /// the first refusal; every message it completes passes
    /// [`Fence::confirm`](crate::cluster::Fence::confirm) and carries the
    /// recoverer's epoch.
    pub fn recover_with(
        &self,
        opts: &RecoverOptions,
    ) -> Result<Vec<(MailboxId, String)>, StoreError> {
        self.fence_check("recover", None)?;
        let ctx = Ctx {
            opts,
            now: SystemTime::now(),
        };
        let mut out = Vec::new();
        // First messages of mailboxes cut short: the mailbox is put in
        // place (or the staging removed), then recovered below like any.
        for name in self.staged_names()? {
            let Some(id) = Self::staged_mailbox(&name) else {
                continue;
            };
            if let Some(f) = &opts.domain_filter {
                if !f(id.domain()) {
                    continue;
                }
            }
            let staged = self.staging_dir().join(&name);
            if let Err(e) = self.recover_staged(&id, &staged, &ctx) {
                if e.is_fenced() {
                    return Err(e);
                }
                tracing::error!(mailbox = %id, path = %staged.display(), error = %e, "cannot recover a staged mailbox");
            }
        }
        for domain in dir_names(self.domains_dir())? {
            if normalize_domain(&domain).ok().as_deref() != Some(domain.as_str()) {
                continue;
            }
            if let Some(f) = &opts.domain_filter {
                if !f(&domain) {
                    continue;
                }
            }
            let ddir = self.domains_dir().join(&domain);
            for user in dir_names(&ddir)? {
                if user.starts_with(REMOVED_PREFIX) {
                    let p = ddir.join(&user);
                    if ctx.idle(&p) {
                        self.fence_check("recover", None)?;
                        if let Err(e) = fs::remove_dir_all(&p) {
                            tracing::warn!(path = %p.display(), error = %e, "cannot delete removed mailbox");
                        }
                    }
                    continue;
                }
                if validate_user(&user).is_err() {
                    continue;
                }
                let Ok(id) = MailboxId::new(&user, &domain) else {
                    continue;
                };
                if !self.mailbox_dir(&id).join(MAILBOX_FILE).is_file() {
                    continue;
                }
                let before = out.len();
                if let Err(e) = self.recover_mailbox(&id, &ctx, &mut out) {
                    if e.is_fenced() {
                        return Err(e);
                    }
                    tracing::error!(mailbox = %id, error = %e, "mailbox recovery failed");
                }
                if out.len() > before {
                    tracing::warn!(mailbox = %id, count = out.len() - before, "recovered messages");
                }
            }
        }
        Ok(out)
    }

    /// A staged mailbox left behind: kept while in use, removed when it
    /// holds no audio, else put in place (or its files moved into the
    /// mailbox that appeared meanwhile).
    fn recover_staged(
        &self,
        id: &MailboxId,
        staged: &Path,
        ctx: &Ctx<'_>,
    ) -> Result<(), StoreError> {
        let in_use = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|p| p.starts_with(staged));
        let dirs = [staged.join(TMP_DIR), staged.join(Folder::Inbox.dir_name())];
        let mut files = Vec::new();
        for d in &dirs {
            for name in dir_names(d)? {
                files.push((d.clone(), name));
            }
        }
        if in_use || !ctx.idle(staged) || files.iter().any(|(d, n)| !ctx.idle(&d.join(n))) {
            return Ok(());
        }
        self.fence_confirm("recover mailbox", Some(id))?;
        let has_audio = files.iter().any(|(d, n)| {
            n.ends_with(".wav") && fs::metadata(d.join(n)).is_ok_and(|m| m.len() > wav::HEADER_LEN)
        });
        if !has_audio {
            self.drop_staged(staged);
            return Ok(());
        }
        if self.publish_staged(id, staged)? {
            tracing::warn!(mailbox = %id, "mailbox created by the recovery of its first message");
            self.notify(id);
            return Ok(());
        }
        let targets = [self.tmp_dir(id), self.folder_dir(id, Folder::Inbox)];
        for (from_dir, to_dir) in dirs.iter().zip(&targets) {
            create_dir_all(to_dir)?;
            for (d, n) in files.iter().filter(|(d, _)| d == from_dir) {
                let from = d.join(n);
                fs::rename(&from, to_dir.join(n))
                    .map_err(|e| StoreError::io("rename", &from, e))?;
            }
        }
        self.drop_staged(staged);
        self.notify(id);
        Ok(())
    }

    fn recover_mailbox(
        &self,
        id: &MailboxId,
        ctx: &Ctx<'_>,
        out: &mut Vec<(MailboxId, String)>,
    ) -> Result<(), StoreError> {
        self.fence_check("recover", Some(id))?;
        let dir = self.mailbox_dir(id);
        let tmp = self.tmp_dir(id);
        // Leftovers of atomic writes.
        let dirs = [dir.clone(), dir.join(GREETINGS_DIR), tmp.clone()]
            .into_iter()
            .chain(Folder::ALL.map(|f| self.folder_dir(id, f)));
        for d in dirs {
            for name in dir_names(&d)? {
                let p = d.join(&name);
                if name.ends_with(TMP_SUFFIX) && ctx.idle(&p) {
                    remove_if_exists(&p)?;
                }
            }
        }
        // Recordings cut short.
        for name in dir_names(&tmp)? {
            let Some(stem) = name.strip_suffix(".wav") else {
                continue;
            };
            let path = tmp.join(&name);
            let live = self
                .inner
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&path);
            if live || !ctx.idle(&path) {
                continue;
            }
            match self.recover_recording(id, &tmp, stem, ctx.now) {
                Ok(Some(msg)) => out.push((id.clone(), msg)),
                Ok(None) => {}
                Err(e) if e.is_fenced() => return Err(e),
                Err(e) => {
                    tracing::error!(mailbox = %id, file = %path.display(), error = %e, "cannot recover recording");
                }
            }
        }
        // Sidecars whose recording is gone.
        for name in dir_names(&tmp)? {
            if let Some(stem) = name.strip_suffix(".json") {
                let p = tmp.join(&name);
                if !tmp.join(format!("{stem}.wav")).exists() && ctx.idle(&p) {
                    remove_if_exists(&p)?;
                }
            }
        }
        // WAVs put into a folder without metadata (by hand).
        for folder in Folder::ALL {
            let fdir = self.folder_dir(id, folder);
            for name in dir_names(&fdir)? {
                let Some(stem) = name.strip_suffix(".wav") else {
                    continue;
                };
                if validate_message_id(stem).is_err() {
                    continue;
                }
                let (wav_path, json_path) = self.message_files(id, folder, stem);
                if json_path.exists() || !ctx.idle(&wav_path) {
                    continue;
                }
                match self.describe_bare_wav(id, folder, stem, &wav_path, &json_path, ctx.now) {
                    Ok(()) => out.push((id.clone(), stem.to_owned())),
                    Err(e) if e.is_fenced() => return Err(e),
                    Err(e) => {
                        tracing::warn!(file = %wav_path.display(), error = %e, "cannot describe WAV without metadata");
                    }
                }
            }
        }
        Ok(())
    }

    /// Completes one `tmp/<stem>.wav`. `Ok(None)` if it held no audio and
    /// was removed.
    fn recover_recording(
        &self,
        id: &MailboxId,
        tmp: &Path,
        stem: &str,
        now: SystemTime,
    ) -> Result<Option<String>, StoreError> {
        self.fence_confirm("recover recording", Some(id))?;
        let wav_path = tmp.join(format!("{stem}.wav"));
        let sidecar_path = tmp.join(format!("{stem}.json"));
        let sidecar = match read_json::<Sidecar>(&sidecar_path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %sidecar_path.display(), error = %e, "recording sidecar unreadable");
                None
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&wav_path)
            .map_err(|e| StoreError::io("open", &wav_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", &wav_path, e))?
            .len();
        if len < wav::HEADER_LEN + 2 {
            drop(file);
            tracing::info!(file = %wav_path.display(), "removing recording without audio");
            remove_if_exists(&wav_path)?;
            remove_if_exists(&sidecar_path)?;
            return Ok(None);
        }
        let mut head = [0u8; 44];
        let header_rate = match file.read_exact(&mut head) {
            Ok(()) => wav::parse_rate(&head),
            Err(_) => None,
        };
        let rate = sidecar
            .as_ref()
            .map(|s| s.info.sample_rate)
            .filter(|r| wav::valid_rate(*r))
            .or(header_rate)
            .unwrap_or(8000);
        let data_len = finalize_wav(&mut file, &wav_path, rate)?;
        drop(file);
        let msg_id = if validate_message_id(stem).is_ok() {
            stem.to_owned()
        } else {
            new_message_id(now, "recovered")
        };
        let mut sidecar = sidecar.unwrap_or_else(|| Sidecar {
            id: msg_id.clone(),
            received: rfc3339(
                id_time(stem)
                    .or_else(|| fs::metadata(&wav_path).and_then(|m| m.modified()).ok())
                    .unwrap_or(now),
            ),
            urgent: false,
            info: RecordingInfo {
                caller_uri: String::new(),
                caller_name: None,
                called_uri: format!("sip:{}@{}", id.user(), id.domain()),
                cause: cause::UNKNOWN.to_owned(),
                codec: String::new(),
                site: String::new(),
                instance: String::new(),
                epoch: 0,
                sample_rate: rate,
            },
        });
        sidecar.id = msg_id;
        sidecar.info.sample_rate = rate;
        let meta = meta_from_sidecar(&sidecar, data_len, true);
        let meta = self.commit_message(id, meta, &wav_path, Some(&sidecar_path))?;
        tracing::warn!(mailbox = %id, message = %meta.id, duration_ms = meta.duration_ms, "recording recovered");
        Ok(Some(meta.id))
    }

    /// Writes minimal metadata for a WAV found in a folder without any.
    fn describe_bare_wav(
        &self,
        id: &MailboxId,
        folder: Folder,
        stem: &str,
        wav_path: &Path,
        json_path: &Path,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let reader = hound::WavReader::open(wav_path).map_err(|e| StoreError::Corrupt {
            path: wav_path.to_owned(),
            reason: e.to_string(),
        })?;
        let spec = reader.spec();
        let frames = u64::from(reader.duration());
        drop(reader);
        let received = id_time(stem)
            .or_else(|| fs::metadata(wav_path).and_then(|m| m.modified()).ok())
            .unwrap_or(now);
        let mut meta = MessageMeta {
            id: stem.to_owned(),
            folder,
            caller_uri: String::new(),
            caller_name: None,
            called_uri: format!("sip:{}@{}", id.user(), id.domain()),
            cause: cause::UNKNOWN.to_owned(),
            received: rfc3339(received),
            duration_ms: wav::duration_ms(frames, spec.sample_rate),
            codec: String::new(),
            site: String::new(),
            instance: String::new(),
            epoch: 0,
            heard: false,
            urgent: false,
            recovered: true,
            forwarded_by: None,
            sample_rate: spec.sample_rate,
        };
        {
            let _g = self.lock(id);
            if json_path.exists() {
                return Ok(());
            }
            if let Some(epoch) = self.fence_check("recover message metadata", Some(id))? {
                meta.epoch = epoch;
            }
            write_json_atomic(json_path, &meta)?;
        }
        tracing::warn!(mailbox = %id, message = stem, "metadata created for a WAV without any");
        self.notify(id);
        Ok(())
    }
}
