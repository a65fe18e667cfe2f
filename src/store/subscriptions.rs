//! Message-waiting subscriptions of a mailbox, kept across restarts in
//! `<mailbox>/subscriptions.json` (replaced atomically). The store keeps
//! the records as the caller shapes them (the runtime stores the dialog,
//! the expiry as wall-clock time and the subscriber's address).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;
use super::fs::FsStore;
use super::fsutil::{read_json, remove_if_exists, sync_dir, write_json_atomic};
use super::names::MailboxId;

const SUBSCRIPTIONS_FILE: &str = "subscriptions.json";

impl FsStore {
    /// The saved subscriptions of a mailbox (none when it has no file).
    /// A file that does not parse is reported as `Corrupt`.
    pub fn subscriptions<T: DeserializeOwned>(&self, id: &MailboxId) -> Result<Vec<T>, StoreError> {
        self.require_mailbox(id)?;
        let path = self.mailbox_dir(id).join(SUBSCRIPTIONS_FILE);
        Ok(read_json::<Vec<T>>(&path)?.unwrap_or_default())
    }

    /// Replaces the saved subscriptions of a mailbox; an empty list
    /// removes the file. `NotFound` when the mailbox is gone.
    pub fn save_subscriptions<T: Serialize>(
        &self,
        id: &MailboxId,
        subs: &[T],
    ) -> Result<(), StoreError> {
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        let dir = self.mailbox_dir(id);
        let path = dir.join(SUBSCRIPTIONS_FILE);
        if subs.is_empty() {
            if remove_if_exists(&path)? {
                sync_dir(&dir)?;
            }
            return Ok(());
        }
        write_json_atomic(&path, &subs)
    }

    /// Mailboxes of the domains `keep` accepts that have saved
    /// subscriptions.
    pub fn mailboxes_with_subscriptions(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<MailboxId>, StoreError> {
        Ok(self
            .list_mailboxes(None)?
            .into_iter()
            .filter(|id| keep(id.domain()))
            .filter(|id| self.mailbox_dir(id).join(SUBSCRIPTIONS_FILE).is_file())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MailboxSettings, PinCost};

    #[test]
    fn subscriptions_round_trip_and_empty_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open_with_pin_cost(dir.path(), PinCost::TestOnly).unwrap();
        let a = MailboxId::new("1001", "example.com").unwrap();
        let b = MailboxId::new("2001", "other.example").unwrap();
        for id in [&a, &b] {
            s.create_mailbox(id, MailboxSettings::default(), None)
                .unwrap();
        }
        assert!(s.subscriptions::<String>(&a).unwrap().is_empty());
        s.save_subscriptions(&a, &["x".to_string(), "y".to_string()])
            .unwrap();
        s.save_subscriptions(&b, &["z".to_string()]).unwrap();
        assert_eq!(s.subscriptions::<String>(&a).unwrap(), vec!["x", "y"]);
        let all = s.mailboxes_with_subscriptions(&|_| true).unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()]);
        let ours = s
            .mailboxes_with_subscriptions(&|d| d == "example.com")
            .unwrap();
        assert_eq!(ours, vec![a.clone()]);
        s.save_subscriptions::<String>(&a, &[]).unwrap();
        assert!(s.subscriptions::<String>(&a).unwrap().is_empty());
        assert_eq!(s.mailboxes_with_subscriptions(&|_| true).unwrap(), vec![b]);
        // No leftovers of the atomic writes.
        let left: Vec<_> = std::fs::read_dir(s.root().join("domains/example.com/1001"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let gone = MailboxId::new("9999", "example.com").unwrap();
        assert!(matches!(
            s.save_subscriptions(&gone, &["x".to_string()]),
            Err(StoreError::NotFound { .. })
        ));
    }
}
