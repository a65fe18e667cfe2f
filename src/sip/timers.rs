//! Transaction timers as data: an ordered table of deadlines.

use std::collections::BTreeMap;
use std::time::Instant;

use super::peer::TxKey;

/// Which of a transaction's two timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Retransmission: timers E and G, and the 2xx resend.
    Retransmit = 0,
    /// End of a state: timers F, H, I, J, K, L and the wait for the
    /// application's final answer.
    Lifetime = 1,
}

/// The armed timers of one transaction: deadline and table id per slot.
pub(crate) type Armed = [Option<(Instant, u64)>; 2];

/// All armed timers, earliest first. Each transaction knows the entries it
/// owns, so disarming removes the entry (no stale entries, exact
/// `next_deadline`).
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    map: BTreeMap<(Instant, u64), (TxKey, Slot)>,
    seq: u64,
}

impl TimerTable {
    /// Arm (or re-arm) `slot` of transaction `key` at `at`.
    pub fn arm(&mut self, armed: &mut Armed, key: TxKey, slot: Slot, at: Instant) {
        self.disarm(armed, slot);
        self.seq = self.seq.wrapping_add(1);
        self.map.insert((at, self.seq), (key, slot));
        armed[slot as usize] = Some((at, self.seq));
    }

    /// Disarm `slot`, if armed.
    pub fn disarm(&mut self, armed: &mut Armed, slot: Slot) {
        if let Some(entry) = armed[slot as usize].take() {
            self.map.remove(&entry);
        }
    }

    /// Disarm both slots.
    pub fn disarm_all(&mut self, armed: &mut Armed) {
        self.disarm(armed, Slot::Retransmit);
        self.disarm(armed, Slot::Lifetime);
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|((at, _), _)| *at)
    }

    /// Remove and return the earliest timer due at `now`; the caller clears
    /// the transaction's slot.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TxKey, Slot)> {
        let (&(at, _), _) = self.map.first_key_value()?;
        if at > now {
            return None;
        }
        let ((at, _), (key, slot)) = self.map.pop_first()?;
        Some((at, key, slot))
    }
}
