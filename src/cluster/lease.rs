//! The lease protocol as a sans-IO state machine on injected time.
//!
//! # Protocol (the contract the implementation and its tests keep)
//!
//! Let `L` = `lease` (`ext.lease_ms`), `R` = L/3 (renewal period),
//! `P` = L/6 (observation period), `S` = L/6 (safety margin).
//!
//! * **Ops.** At most one [`Op`] is outstanding. Every `R` the machine
//!   publishes its own [`Record`] (`seq` + 1, `renewed_unix_ms` from the
//!   wall clock given to [`Lease::poll_op`]); every `P` it observes its
//!   group. A failed or timed-out op is an answer like any other.
//! * **Liveness of others** (never from wall clocks): for each other
//!   record (keyed by name + incarnation) the machine remembers the `seq` it
//!   saw last and `first_seen`: the `now` of the *answer* of the
//!   observation that first showed that `seq`. A record is *live* while
//!   `now < first_seen + L`; a record missing from an observation, or in
//!   state `Stopped`, is dead at once. Failed observations change nothing
//!   (a passive cut off from the store never decides anyone is dead).
//! * **Own validity** (Active only): a publish whose op started at `t_s`
//!   and succeeded sets `valid_until = t_s + L − S`. [`Lease::role`] says
//!   `Active` only while `now < valid_until`, whatever else happened, so a
//!   process that was paused past its lease is not active the moment it
//!   resumes. When `now ≥ valid_until` the machine steps down.
//! * **The active instance of the group** is a live record in state
//!   `Active` whose `epoch` equals the observed group epoch.
//! * **Starting.** A new machine publishes `Starting` and observes. If it
//!   sees a live active, it becomes `Passive`. Otherwise it stays
//!   `Starting` until every other record it has seen is classified (its
//!   `seq` changed: live; or unchanged for L: dead) — at once when there is
//!   no other record — then it becomes `Passive` and may campaign.
//! * **Campaign.** A `Passive` machine with no live active in its latest
//!   observation ranks itself among the live records in state `Passive` or
//!   `Candidate` (and itself) by (`order`, name). Rank k waits `k · L/2`
//!   after it first saw the group without an active, then asks
//!   [`Op::Claim`] with `seen` = the observed group epoch (state
//!   `Candidate`). `Won { epoch }`: it publishes `Active` with that epoch;
//!   once that publish succeeds (op start `t_s`, `valid_until = t_s + L −
//!   S`) it is active. `Lost` or an error: back to `Passive`.
//! * **No pre-emption.** A live active keeps the role whatever the order of
//!   the others; a lower order that comes back stays passive.
//! * **Stepping down.** An active machine that observes a group epoch
//!   higher than its own, or reaches `valid_until`, becomes `SteppingDown`
//!   for `2L` (publishing that state), not a candidate, then `Passive`.
//! * **Stop.** [`Lease::stop`] makes the next op a [`Op::Withdraw`] and the
//!   role `Stopped` at once.
//!
//! # Safety argument
//!
//! The active's last successful publish started at `t_s`; it stops at
//! `t_s + L − S`. Any observer first saw that publish's `seq` at an answer
//! after the write, so after `t_s`, and waits `L` more: its earliest claim
//! is after `t_s + L`, `S` after the old active stopped (clock rates may
//! differ by far less than S/L). Claims are exclusive per epoch, so two
//! actives never share an epoch; every write is checked against the
//! writer's validity ([`super::Fence`]) and a message commit also against
//! the store's current epoch.
//!
//! Failover after a kill -9: about L + P (+ R/2 on average) — 3.5 to 4 s
//! with the default `lease_ms` of 3000.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{BackendError, Claim, GroupView, Record, RecordState};

/// What the machine is configured with.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The instance's own record (state, epoch, seq and renewed time are
    /// managed by the machine).
    pub me: Record,
    /// `ext.lease_ms`.
    pub lease: Duration,
}

/// A backend operation the shell runs for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write the instance's own record.
    Publish(Record),
    /// Read the group.
    Observe,
    /// Claim the epoch after `seen`.
    Claim {
        /// The group epoch last observed.
        seen: u64,
    },
    /// Remove the record (clean stop).
    Withdraw(Record),
}

/// The answer to the outstanding [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// To [`Op::Publish`].
    Published(Result<(), BackendError>),
    /// To [`Op::Observe`].
    Observed(Result<GroupView, BackendError>),
    /// To [`Op::Claim`].
    Claimed(Result<Claim, BackendError>),
    /// To [`Op::Withdraw`].
    Withdrawn(Result<(), BackendError>),
}

/// What the instance may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not yet decided (just started, or claiming).
    Starting,
    /// Reserved: redirect to `active` when known.
    Passive {
        /// The group's live active instance, if one is known.
        active: Option<Record>,
    },
    /// Serving the group with `epoch` until `valid_until` unless renewed.
    Active {
        /// The epoch every write carries.
        epoch: u64,
        /// The end of the current lease (monotonic).
        valid_until: Instant,
    },
    /// Stopped cleanly.
    Stopped,
}

/// Something the shell logs, counts or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instance became active with `epoch`; `waited` is how long the
    /// group had been without a live active, as this machine saw it.
    BecameActive {
        /// The new epoch.
        epoch: u64,
        /// Time since the machine first saw the group without an active.
        waited: Duration,
    },
    /// The instance stopped being active.
    SteppedDown {
        /// The epoch it held.
        epoch: u64,
        /// Why.
        reason: StepDownReason,
    },
    /// The active instance of the group changed (passive view), `None`
    /// when the group has none.
    ActiveChanged(Option<Record>),
    /// A backend operation failed.
    BackendFailed(BackendError),
}

/// Why an active instance gave up the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDownReason {
    /// Its lease ran out before a renewal succeeded (store unreachable,
    /// process paused).
    LeaseExpired,
    /// Another instance holds a higher epoch.
    Superseded,
    /// It was asked to stop.
    Stopping,
}

/// The lease state machine of one instance.
#[derive(Debug)]
pub struct Lease {
    cfg: LeaseConfig,
    #[allow(dead_code)]
    seen: HashMap<(String, u64), (u64, Instant)>,
}

impl Lease {
    /// A machine that starts at `now` in `Starting`.
    pub fn new(cfg: LeaseConfig, now: Instant) -> Lease {
        let _ = now;
        Lease {
            cfg,
            seen: HashMap::new(),
        }
    }

    /// The next operation to run at `now`, if one is due and none is
    /// outstanding; `unix_ms` is the wall clock for `renewed_unix_ms`.
    pub fn poll_op(&mut self, now: Instant, unix_ms: u64) -> Option<Op> {
        let _ = (now, unix_ms);
        todo!("lease machine")
    }

    /// The answer of the outstanding operation, arriving at `now`.
    pub fn handle(&mut self, now: Instant, answer: Answer) {
        let _ = (now, answer);
        todo!("lease machine")
    }

    /// When [`Lease::poll_op`] should be called next (a due op, a timer, or
    /// the end of the lease).
    pub fn next_wakeup(&self) -> Instant {
        todo!("lease machine")
    }

    /// What the instance may do at `now`.
    pub fn role(&self, now: Instant) -> Role {
        let _ = now;
        todo!("lease machine")
    }

    /// The next event for the shell, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!("lease machine")
    }

    /// Stop cleanly: the role is `Stopped` at once and the next op is a
    /// withdrawal of the record.
    pub fn stop(&mut self, now: Instant) {
        let _ = now;
        todo!("lease machine")
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }
}
