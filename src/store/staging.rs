//! Mailboxes made whole before they appear: a new mailbox is built under
//! `<root>/staging/<user>@<domain>.<hex>/` (folders, `mailbox.json`, and
//! for a mailbox created by its first message, that message) and then
//! renamed into `domains/<domain>/<user>/` in one step. A reader sees no
//! mailbox or a complete one; a failure (a full disk) leaves at most a
//! staging directory, which is removed or, when it holds a message,
//! completed by `recover`.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::fs::{FsStore, GREETINGS_DIR, MAILBOX_FILE, REMOVED_PREFIX, TMP_DIR};
use super::fsutil::{
    create_dir_all, dir_names, parent, rand_hex6, remove_if_exists, sync_dir, write_json_atomic,
};
use super::names::{Folder, MailboxId};
use super::types::{MailboxRecord, MessageMeta};

/// The directory of mailboxes being built, under the store root.
pub(super) const STAGING_DIR: &str = "staging";

impl FsStore {
    pub(super) fn staging_dir(&self) -> PathBuf {
        self.root().join(STAGING_DIR)
    }

    /// Builds a complete mailbox (folders and `mailbox.json`, with the
    /// fence's epoch) in a new staging directory; nothing of it is left
    /// when this fails.
    pub(super) fn stage_mailbox(
        &self,
        id: &MailboxId,
        record: &MailboxRecord,
    ) -> Result<PathBuf, StoreError> {
        let mut record = record.clone();
        if let Some(epoch) = self.fence_check("create mailbox", Some(id))? {
            record.epoch = epoch;
        }
        let staged =
            self.staging_dir()
                .join(format!("{}@{}.{}", id.user(), id.domain(), rand_hex6()));
        let built = (|| {
            for sub in [
                Folder::Inbox.dir_name(),
                Folder::Old.dir_name(),
                GREETINGS_DIR,
                TMP_DIR,
            ] {
                create_dir_all(&staged.join(sub))?;
            }
            write_json_atomic(&staged.join(MAILBOX_FILE), &record)
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staged);
            return Err(e);
        }
        Ok(staged)
    }

    /// Renames a staged mailbox into place. `Ok(false)` when the mailbox
    /// exists already (the staged one is left for the caller). A directory
    /// in the way without `mailbox.json` (half made by an older vmail) is
    /// moved aside for `recover` to delete.
    pub(super) fn publish_staged(&self, id: &MailboxId, staged: &Path) -> Result<bool, StoreError> {
        let _g = self.lock(id);
        if self.mailbox_exists(id) {
            return Ok(false);
        }
        self.fence_check("create mailbox", Some(id))?;
        let dir = self.mailbox_dir(id);
        let domain_dir = parent(&dir).to_owned();
        let new_domain = !domain_dir.exists();
        create_dir_all(&domain_dir)?;
        let moved = (|| {
            if dir.exists() {
                let aside =
                    domain_dir.join(format!("{REMOVED_PREFIX}{}-{}", id.user(), rand_hex6()));
                fs::rename(&dir, &aside).map_err(|e| StoreError::io("rename", &dir, e))?;
            }
            fs::rename(staged, &dir).map_err(|e| StoreError::io("rename", staged, e))
        })();
        if let Err(e) = moved {
            if new_domain {
                // Only succeeds when empty: never takes anything with it.
                let _ = fs::remove_dir(&domain_dir);
            }
            return Err(e);
        }
        sync_dir(&domain_dir)?;
        sync_dir(self.domains_dir())?;
        sync_dir(parent(staged))?;
        Ok(true)
    }

    /// Stores the first message of a staged mailbox (its WAV and sidecar
    /// in the staged `tmp/`) and puts the mailbox in place with it. When
    /// the mailbox appeared meanwhile, the message goes into that one. On
    /// error the staged mailbox stays, and `recover` completes it. Fenced
    /// like [`commit_message`](Self::commit_message).
    pub(super) fn commit_first_message(
        &self,
        id: &MailboxId,
        staged: &Path,
        mut meta: MessageMeta,
        wav_src: &Path,
        sidecar: &Path,
    ) -> Result<MessageMeta, StoreError> {
        if self.mailbox_exists(id) {
            let meta = self.commit_message(id, meta, wav_src, Some(sidecar))?;
            self.drop_staged(staged);
            return Ok(meta);
        }
        if let Some(epoch) = self.fence_confirm("commit message", Some(id))? {
            meta.epoch = epoch;
        }
        meta.folder = Folder::Inbox;
        let inbox = staged.join(Folder::Inbox.dir_name());
        let wav = inbox.join(format!("{}.wav", meta.id));
        let json = inbox.join(format!("{}.json", meta.id));
        write_json_atomic(&json, &meta)?;
        fs::rename(wav_src, &wav).map_err(|e| StoreError::io("rename", wav_src, e))?;
        sync_dir(&inbox)?;
        remove_if_exists(sidecar)?;
        if self.publish_staged(id, staged)? {
            tracing::info!(mailbox = %id, "mailbox created with its first message");
            self.notify(id);
            return Ok(meta);
        }
        let meta = self.commit_message(id, meta, &wav, Some(&json))?;
        self.drop_staged(staged);
        Ok(meta)
    }

    /// Removes a staging directory (logged when it cannot be).
    pub(super) fn drop_staged(&self, staged: &Path) {
        if let Err(e) = fs::remove_dir_all(staged) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %staged.display(), error = %e, "cannot remove a staged mailbox");
            }
        }
    }

    /// The mailbox a staging directory is for, from its name.
    pub(super) fn staged_mailbox(name: &str) -> Option<MailboxId> {
        let (user, rest) = name.split_once('@')?;
        let (domain, _hex) = rest.rsplit_once('.')?;
        let id = MailboxId::new(user, domain).ok()?;
        (id.domain() == domain).then_some(id)
    }

    /// Staging directories in the store.
    pub(super) fn staged_names(&self) -> Result<Vec<String>, StoreError> {
        dir_names(&self.staging_dir())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::super::types::{MailboxSettings, RecordingInfo};
    use super::super::RecoverOptions;
    use super::*;

    fn store() -> (tempfile::TempDir, FsStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open_for_tests(dir.path()).unwrap();
        (dir, s)
    }

    fn info() -> RecordingInfo {
        RecordingInfo {
            caller_uri: "sip:2002@test.example".into(),
            caller_name: None,
            called_uri: "sip:1001@test.example".into(),
            cause: "busy".into(),
            codec: "PCMU".into(),
            site: "site1".into(),
            instance: "vmail1".into(),
            epoch: 0,
            sample_rate: 8000,
        }
    }

    fn id() -> MailboxId {
        MailboxId::new("1001", "new.example").unwrap()
    }

    /// Everything under the store root, relative, sorted.
    fn tree(s: &FsStore) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![s.root().to_owned()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(s.root()).unwrap().display().to_string());
                if p.is_dir() {
                    todo.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_first_message_creates_the_mailbox_only_when_stored() {
        let (_d, s) = store();
        let before = tree(&s);
        let mut w = s
            .begin_recording_creating(&id(), MailboxSettings::default(), info(), SystemTime::now())
            .unwrap();
        assert!(s.mailbox(&id()).unwrap().is_none(), "not while recording");
        assert!(!s.domains_dir().join("new.example").exists());
        w.append(&[100i16; 8000]).unwrap();
        let meta = w.finish().unwrap();
        let mb = s
            .mailbox(&id())
            .unwrap()
            .expect("created by its first message");
        assert!(!mb.has_pin);
        assert_eq!(
            s.list_messages(&id(), Folder::Inbox).unwrap()[0].id,
            meta.id
        );
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());
        assert_ne!(tree(&s), before);

        // A recording dropped before anything is stored leaves nothing.
        let other = MailboxId::new("2002", "new.example").unwrap();
        let w = s
            .begin_recording_creating(
                &other,
                MailboxSettings::default(),
                info(),
                SystemTime::now(),
            )
            .unwrap();
        w.discard().unwrap();
        let w = s
            .begin_recording_creating(
                &other,
                MailboxSettings::default(),
                info(),
                SystemTime::now(),
            )
            .unwrap();
        assert!(w.finish().is_err(), "no audio");
        assert!(s.mailbox(&other).unwrap().is_none());
        assert!(!s.domains_dir().join("new.example/2002").exists());
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());
    }

    #[test]
    fn a_mailbox_made_meanwhile_gets_the_first_message() {
        let (_d, s) = store();
        let mut w = s
            .begin_recording_creating(&id(), MailboxSettings::default(), info(), SystemTime::now())
            .unwrap();
        s.create_mailbox(&id(), MailboxSettings::default(), Some("1234"))
            .unwrap();
        w.append(&[100i16; 800]).unwrap();
        w.finish().unwrap();
        assert!(
            s.mailbox(&id()).unwrap().unwrap().has_pin,
            "the existing one kept"
        );
        assert_eq!(s.list_messages(&id(), Folder::Inbox).unwrap().len(), 1);
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());
    }

    #[test]
    fn a_failed_creation_leaves_no_half_made_mailbox() {
        let (_d, s) = store();
        // The domain folder cannot be made (a file is in its place), as
        // when a full disk refuses the last step.
        let domain = s.domains_dir().join("new.example");
        fs::write(&domain, b"in the way").unwrap();
        assert!(s
            .create_mailbox(&id(), MailboxSettings::default(), None)
            .is_err());
        assert!(domain.is_file(), "nothing half made");
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());

        // A first message that cannot be put in place stays staged, and
        // recovery completes it once the disk takes it.
        let mut w = s
            .begin_recording_creating(&id(), MailboxSettings::default(), info(), SystemTime::now())
            .unwrap();
        w.append(&[100i16; 800]).unwrap();
        assert!(w.finish().is_err());
        assert!(domain.is_file(), "no half-made mailbox");
        assert!(!s.mailbox_exists(&id()));
        fs::remove_file(&domain).unwrap();
        s.recover_with(&RecoverOptions::default()).unwrap();
        assert_eq!(s.list_messages(&id(), Folder::Inbox).unwrap().len(), 1);
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());
    }

    #[test]
    fn recovery_completes_a_cut_first_message_and_drops_an_empty_one() {
        let (_d, s) = store();
        let mut w = s
            .begin_recording_creating(&id(), MailboxSettings::default(), info(), SystemTime::now())
            .unwrap();
        w.append(&[100i16; 16000]).unwrap();
        w.simulate_kill();
        let other = MailboxId::new("2002", "new.example").unwrap();
        let w = s
            .begin_recording_creating(
                &other,
                MailboxSettings::default(),
                info(),
                SystemTime::now(),
            )
            .unwrap();
        w.simulate_kill();
        let recovered = s.recover_with(&RecoverOptions::default()).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].0, id());
        assert!(s.mailbox(&id()).unwrap().is_some());
        assert!(s.mailbox(&other).unwrap().is_none());
        assert!(dir_names(&s.staging_dir()).unwrap().is_empty());
    }
}
