//! Calls in progress by kind, for the status the API reports.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::admission::CallKind;

/// What a call is, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallClass {
    /// A caller leaving a message.
    Deposit,
    /// A subscriber in the mailbox menu.
    Retrieval,
}

impl CallClass {
    pub fn of(kind: &CallKind) -> CallClass {
        match kind {
            CallKind::Deposit { .. } => CallClass::Deposit,
            CallKind::Menu { .. } => CallClass::Retrieval,
        }
    }
}

/// Counts of the calls in progress.
#[derive(Debug, Default)]
pub(crate) struct CallCounts {
    deposit: AtomicU64,
    retrieval: AtomicU64,
}

impl CallCounts {
    fn of(&self, class: CallClass) -> &AtomicU64 {
        match class {
            CallClass::Deposit => &self.deposit,
            CallClass::Retrieval => &self.retrieval,
        }
    }

    /// A call of `class` began.
    pub fn started(&self, class: CallClass) {
        self.of(class).fetch_add(1, Ordering::Relaxed);
    }

    /// A call of `class` ended.
    pub fn ended(&self, class: CallClass) {
        let _ = self
            .of(class)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// `(deposit, retrieval)` in progress.
    pub fn in_progress(&self) -> (u64, u64) {
        (
            self.deposit.load(Ordering::Relaxed),
            self.retrieval.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_and_down_and_never_below_zero() {
        let c = CallCounts::default();
        c.started(CallClass::Deposit);
        c.started(CallClass::Deposit);
        c.started(CallClass::Retrieval);
        assert_eq!(c.in_progress(), (2, 1));
        c.ended(CallClass::Deposit);
        c.ended(CallClass::Retrieval);
        c.ended(CallClass::Retrieval);
        assert_eq!(c.in_progress(), (1, 0));
    }
}
