//! Mailbox change notices. The store's observer (`FsStore::set_observer`)
//! calls [`Changes::notify`] after every change of a mailbox's counts (a
//! message stored, recovered, moved, deleted, copied; a mailbox removed),
//! whoever makes it (a call, the phone menu, the API); the listener
//! (message-waiting indication) reads the mailboxes from the
//! [`ChangeReceiver`] and looks at the store again, so a notice carries no
//! counts that could be stale.

use tokio::sync::mpsc;

use crate::store::MailboxId;

/// The sending side; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Changes {
    tx: mpsc::UnboundedSender<MailboxId>,
}

/// The listening side.
#[derive(Debug)]
pub struct ChangeReceiver {
    rx: mpsc::UnboundedReceiver<MailboxId>,
}

impl Changes {
    /// A new channel.
    pub fn new() -> (Changes, ChangeReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Changes { tx }, ChangeReceiver { rx })
    }

    /// `id` changed. Without a listener the notice is dropped.
    pub fn notify(&self, id: &MailboxId) {
        let _ = self.tx.send(id.clone());
    }
}

impl ChangeReceiver {
    /// The next changed mailbox; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<MailboxId> {
        self.rx.recv().await
    }

    /// A changed mailbox if one is waiting.
    pub fn try_recv(&mut self) -> Option<MailboxId> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notices_arrive_in_order_and_end_with_the_senders() {
        let (changes, mut rx) = Changes::new();
        let a = MailboxId::new("1001", "example.com").unwrap();
        let b = MailboxId::new("1002", "example.com").unwrap();
        changes.clone().notify(&a);
        changes.notify(&b);
        assert_eq!(rx.recv().await, Some(a));
        assert_eq!(rx.try_recv(), Some(b));
        assert_eq!(rx.try_recv(), None);
        drop(changes);
        assert_eq!(rx.recv().await, None);
    }
}
