//! Message-waiting subscriptions of a mailbox, kept across restarts in
//! `<mailbox>/subscriptions.json` (replaced atomically). The store keeps
//! the records as the caller shapes them (the runtime stores the dialog,
//! the expiry as wall-clock time and the subscriber's address); each must
//! be a JSON object, and the store adds to each an `epoch` field: the
//! Active-Passive epoch of the writer (0 when unfenced; absent in files of
//! older versions). The key `epoch` of a record belongs to the store.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::StoreError;
use super::fs::FsStore;
use super::fsutil::{read_json, remove_if_exists, sync_dir, write_json_atomic};
use super::names::MailboxId;

const SUBSCRIPTIONS_FILE: &str = "subscriptions.json";
/// The field the store adds to each record.
const EPOCH_FIELD: &str = "epoch";

impl FsStore {
    /// The saved subscriptions of a mailbox (none when it has no file).
    /// A file that does not parse is reported as `Corrupt`.
    pub fn subscriptions<T: DeserializeOwned>(&self, id: &MailboxId) -> Result<Vec<T>, StoreError> {
        Ok(self
            .subscriptions_with_epochs(id)?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    /// [`subscriptions`](Self::subscriptions) with the epoch each record was
    /// written with.
    pub fn subscriptions_with_epochs<T: DeserializeOwned>(
        &self,
        id: &MailboxId,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        self.require_mailbox(id)?;
        let path = self.mailbox_dir(id).join(SUBSCRIPTIONS_FILE);
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        read_json::<Vec<Value>>(&path)?
            .unwrap_or_default()
            .into_iter()
            .map(|mut v| {
                let epoch = match v.as_object_mut().and_then(|o| o.remove(EPOCH_FIELD)) {
                    None => 0,
                    Some(e) => e
                        .as_u64()
                        .ok_or_else(|| corrupt(format!("bad {EPOCH_FIELD}: {e}")))?,
                };
                let t = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
                Ok((epoch, t))
            })
            .collect()
    }

    /// Replaces the saved subscriptions of a mailbox; an empty list
    /// removes the file. `NotFound` when the mailbox is gone; a record
    /// that is not a JSON object is `InvalidValue`.
    pub fn save_subscriptions<T: Serialize>(
        &self,
        id: &MailboxId,
        subs: &[T],
    ) -> Result<(), StoreError> {
        let _g = self.lock(id);
        self.require_mailbox(id)?;
        let epoch = self
            .fence_check("save subscriptions", Some(id))?
            .unwrap_or(0);
        let dir = self.mailbox_dir(id);
        let path = dir.join(SUBSCRIPTIONS_FILE);
        if subs.is_empty() {
            if remove_if_exists(&path)? {
                sync_dir(&dir)?;
            }
            return Ok(());
        }
        let not_an_object = || StoreError::InvalidValue {
            what: "subscription",
            reason: "a saved subscription must be a JSON object",
        };
        let stamped = subs
            .iter()
            .map(|t| {
                let mut v = serde_json::to_value(t)
                    .map_err(|e| StoreError::io("serialize", &path, std::io::Error::other(e)))?;
                v.as_object_mut()
                    .ok_or_else(not_an_object)?
                    .insert(EPOCH_FIELD.to_owned(), Value::from(epoch));
                Ok(v)
            })
            .collect::<Result<Vec<Value>, StoreError>>()?;
        write_json_atomic(&path, &stamped)
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
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Sub {
        call_id: String,
    }

    fn sub(c: &str) -> Sub {
        Sub {
            call_id: c.to_owned(),
        }
    }

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
        assert!(s.subscriptions::<Sub>(&a).unwrap().is_empty());
        s.save_subscriptions(&a, &[sub("x"), sub("y")]).unwrap();
        s.save_subscriptions(&b, &[sub("z")]).unwrap();
        assert_eq!(
            s.subscriptions::<Sub>(&a).unwrap(),
            vec![sub("x"), sub("y")]
        );
        assert_eq!(
            s.subscriptions_with_epochs::<Sub>(&b).unwrap(),
            vec![(0, sub("z"))],
            "unfenced: epoch 0"
        );
        let all = s.mailboxes_with_subscriptions(&|_| true).unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()]);
        let ours = s
            .mailboxes_with_subscriptions(&|d| d == "example.com")
            .unwrap();
        assert_eq!(ours, vec![a.clone()]);
        s.save_subscriptions::<Sub>(&a, &[]).unwrap();
        assert!(s.subscriptions::<Sub>(&a).unwrap().is_empty());
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
            s.save_subscriptions(&gone, &[sub("x")]),
            Err(StoreError::NotFound { .. })
        ));
        // Records must be objects (the store adds their epoch).
        assert!(matches!(
            s.save_subscriptions(&a, &["x".to_string()]),
            Err(StoreError::InvalidValue { .. })
        ));
    }

    #[test]
    fn files_of_older_versions_read_with_epoch_zero() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open_with_pin_cost(dir.path(), PinCost::TestOnly).unwrap();
        let a = MailboxId::new("1001", "example.com").unwrap();
        s.create_mailbox(&a, MailboxSettings::default(), None)
            .unwrap();
        let path = s.mailbox_dir(&a).join(SUBSCRIPTIONS_FILE);
        std::fs::write(
            &path,
            br#"[{"call_id": "old"}, {"call_id": "new", "epoch": 4}]"#,
        )
        .unwrap();
        assert_eq!(
            s.subscriptions_with_epochs::<Sub>(&a).unwrap(),
            vec![(0, sub("old")), (4, sub("new"))]
        );
        std::fs::write(&path, br#"[{"call_id": "x", "epoch": "four"}]"#).unwrap();
        assert!(matches!(
            s.subscriptions::<Sub>(&a),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
