//! The lease protocol as a sans-IO state machine on injected time.
//!
//! # Protocol (the contract the implementation and its tests keep)
//!
//! Let `L` = `lease` (`ext.lease_ms`), `R` = L/3 (renewal period),
//! `P` = L/6 (observation period), `S` = L/6 (safety margin).
//!
//! * **Ops.** At most one [`Op`] is outstanding: the shell answers it
//!   before the machine emits another. Every `R` the machine publishes its
//!   own [`Record`] (`seq` + 1, `renewed_unix_ms` from the wall clock given
//!   to [`Lease::poll_op`]); every `P` it observes its group; a change of
//!   state is published at once. A failed or timed-out op is an answer like
//!   any other (the machine goes on on its timers; a failed publish is
//!   retried after `P`). The shell times an op out after
//!   [`Lease::op_timeout`] (`P`), so that a hung read cannot hold back a
//!   renewal.
//! * **Liveness of others** (never from wall clocks): for each other
//!   record (keyed by name + incarnation) the machine remembers the `seq` it
//!   saw last and `first_seen`: the `now` of the *answer* of the
//!   observation that first showed that `seq`. A record is *dead* once an
//!   observation whose op *started* at or after `first_seen + L` still does
//!   not show a newer `seq`, or at once when it is in state `Stopped`;
//!   otherwise it is *live*. Absence is weak evidence (a backend leaves an
//!   unreadable record out, NFS answers `ESTALE` during a rename): a record
//!   missing from an observation is dead only if, besides, it has been
//!   missing from every observation of a run that spans `L` (from the
//!   answer of the first that missed it to the start of the last) with no
//!   two consecutive observations more than L/2 apart. Failed observations
//!   change nothing: a machine cut off from the store never decides anyone
//!   is dead. A live record missing from the latest observation has an
//!   unknown state: while there is one, the machine does not campaign.
//! * **What a backend must guarantee.** A publish or claim that was
//!   answered with success is seen by every observation that starts after
//!   that answer (read-after-write across instances; a record may be left
//!   out of observations now and then, for less than `L` at a time); claims
//!   are exclusive per `seen`; records of one instance are not reordered
//!   (a late write of an older `seq` only delays a takeover).
//! * **Own validity** (Active only): a publish whose op started at `t_s`
//!   and succeeded sets `valid_until = t_s + L − S`, but only if its answer
//!   arrives while the lease it extends is still valid (`now <
//!   valid_until`; for the first publish after a claim, before the claim's
//!   start + L − S). A success that arrives later revives nothing.
//!   [`Lease::role`] says `Active` only while `now < valid_until`, whatever
//!   else happened, so a process that was paused past its lease is not
//!   active the moment it resumes. When `now ≥ valid_until` the machine
//!   steps down; it emits a publish in state `Active` only while its lease
//!   (or, after a claim, the claim's deadline) is running.
//! * **The active instance of the group** is a live record in state
//!   `Active` whose `epoch` equals the observed group epoch (> 0).
//! * **Starting.** A new machine publishes `Starting` and observes. If it
//!   sees a live active, it becomes `Passive`. Otherwise it stays
//!   `Starting` until every other record it has seen is classified (its
//!   `seq` changed: live; or dead) — at once when there is no other record
//!   — then it becomes `Passive`.
//! * **Campaign.** A `Passive` machine becomes *eligible* at the answer of
//!   the first observation that shows no live active, leaves out no live
//!   record, and whose op started at least `L` after both the answer that
//!   first showed the current group epoch and the answer that began the
//!   current run of observations (a run: no two consecutive successful
//!   observations more than L/2 apart). So a claimant that moved the epoch
//!   gets `L` to publish its `Active` record, a record left out now and then
//!   has shown up in between, and a machine that just started, resumed from
//!   a pause or got the store back watches for `L` before it claims. It ranks
//!   itself among the live records in state `Starting`, `Passive` or
//!   `Candidate` (and itself) by (`order`, name). Rank k waits `k · L/2`
//!   after it became eligible, then asks [`Op::Claim`] with `seen` = the
//!   observed group epoch (state `Candidate`). `Won { epoch }` (answered
//!   before the claim's start + L − S): it publishes `Active` with that
//!   epoch; once that publish succeeds (op start `t_s`, `valid_until = t_s
//!   + L − S`) it is active. `Lost`, an error or a deadline passed: back to
//!   `Passive`. While it claims and until its `Active` publish succeeds its
//!   role is `Starting`.
//! * **No pre-emption.** A live active keeps the role whatever the order of
//!   the others; a lower order that comes back stays passive.
//! * **Stepping down.** An active machine that observes a group epoch
//!   higher than its own, or reaches `valid_until`, becomes `SteppingDown`
//!   for `2L` (publishing that state), not a candidate, then `Passive`.
//! * **Stop.** [`Lease::stop`] makes the role `Stopped` at once and the
//!   next op an [`Op::Withdraw`] of the record in state `Stopped` (which
//!   observers judge dead at once, so the next instance takes over within
//!   about 2P; a backend that removes the record instead makes them wait
//!   `L` of absence).
//!
//! # Safety argument
//!
//! Let an observer claim after an observation that started at `o` showed
//! the old active's record still at the `seq` it first saw at `f`, with `o
//! ≥ f + L`. That `seq` was written by a publish that started at `t_s ≤ f`,
//! which gave the old active at most `valid_until = t_s + L − S ≤ o − S`.
//! No later publish of the old active landed before `o` (the observer would
//! have seen it); a later publish that lands after `o` is answered after
//! `o`, too late to extend a lease that ended before `o − S`. (Judging
//! liveness by the clock alone, or letting any successful publish extend
//! the lease, would be unsafe: an observer whose reads failed or lagged for
//! `L` could claim while a renewal that landed in the meantime kept the old
//! active valid for another `L − S`.) So the old active stopped `S` before
//! the claim (clock rates may differ by far less than S/L; the tests use
//! ±5 %). The same argument, with the claim's start in place of `t_s`
//! and the new group epoch in place of the `seq`, covers a claimant that
//! won but whose `Active` record is not yet visible. Claims are exclusive
//! per epoch, so two actives never share an epoch; every write is checked
//! against the writer's validity ([`super::Fence`]) and a message commit
//! also against the store's current epoch.
//!
//! # Driving the machine
//!
//! ```text
//! loop {
//!     while let Some(op) = lease.poll_op(Instant::now(), unix_ms()) {
//!         let answer = run(op) under a timeout of lease.op_timeout();
//!         lease.handle(Instant::now(), answer);   // `now` of the answer
//!     }
//!     match lease.role(Instant::now()) {
//!         Role::Active { epoch, valid_until } => fence.grant(epoch, valid_until),
//!         _ => fence.revoke(),
//!     }
//!     while let Some(event) = lease.poll_event() { log, count, act }
//!     sleep until lease.next_wakeup() (or a stop request)
//! }
//! ```
//!
//! Failover after a kill -9: between L − R and L + 2P after the kill, plus
//! the ops' latency (2 to 4 s with the default `lease_ms` of 3000). A lone
//! instance starting cold is active after about L + P.

use std::collections::{HashMap, VecDeque};
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
    /// `L`, never below 60 ms (so that the periods derived from it are not
    /// zero).
    l: Duration,
    /// The record as last published (or about to be).
    me: Record,
    phase: Phase,
    pending: Option<Pending>,
    /// Other records, keyed by (name, incarnation).
    seen: HashMap<(String, u64), Seen>,
    next_publish: Instant,
    next_observe: Instant,
    /// The last successful observation.
    view: Option<GroupView>,
    /// The group epoch of the last successful observation.
    group_epoch: u64,
    /// When that epoch value was first seen (answer of the observation).
    epoch_first_seen: Option<Instant>,
    /// The epoch held while active, the last one held otherwise.
    held_epoch: u64,
    /// The live active among the others, from the last observation.
    live_active: Option<Record>,
    /// (name, incarnation, epoch) of the active last reported by
    /// [`Event::ActiveChanged`].
    reported_active: Option<(String, u64, u64)>,
    /// The first observation (answer) that showed no live active.
    no_active_since: Option<Instant>,
    /// When the machine became eligible to campaign (Passive only).
    eligible_since: Option<Instant>,
    /// Its rank among the live candidates at the last observation.
    rank: u32,
    events: VecDeque<Event>,
    withdraw_due: bool,
    last_now: Instant,
    /// The start of the last successful observation.
    last_observed: Option<Instant>,
    /// The answer of the first observation of the current run (no two
    /// consecutive successful observations more than L/2 apart).
    run_since: Option<Instant>,
}

/// What the machine knows about another record.
#[derive(Debug, Clone)]
struct Seen {
    record: Record,
    /// `now` of the answer of the observation that first showed
    /// `record.seq`.
    first_seen: Instant,
    /// Its `seq` changed since it was first seen (it lives).
    changed: bool,
    /// The answer of the first observation of the current run of
    /// consecutive observations that did not show it.
    missing_since: Option<Instant>,
    live: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Passive,
    /// A claim is outstanding.
    Candidate,
    /// The claim was won; the `Active` record is not yet published.
    Won {
        epoch: u64,
        deadline: Instant,
    },
    Active {
        epoch: u64,
        valid_until: Instant,
    },
    SteppingDown {
        until: Instant,
    },
    Stopped,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Publish {
        started: Instant,
        state: RecordState,
        epoch: u64,
    },
    Observe {
        started: Instant,
    },
    Claim {
        started: Instant,
        seen: u64,
    },
    Withdraw,
}

/// At most this many events wait for the shell; older ones are dropped.
const MAX_EVENTS: usize = 256;

impl Lease {
    /// A machine that starts at `now` in `Starting`.
    pub fn new(cfg: LeaseConfig, now: Instant) -> Lease {
        let l = cfg.lease.max(Duration::from_millis(60));
        let mut me = cfg.me.clone();
        me.state = RecordState::Starting;
        let held_epoch = me.epoch;
        Lease {
            cfg,
            l,
            me,
            phase: Phase::Starting,
            pending: None,
            seen: HashMap::new(),
            next_publish: now,
            next_observe: now,
            view: None,
            group_epoch: 0,
            epoch_first_seen: None,
            held_epoch,
            live_active: None,
            reported_active: None,
            no_active_since: None,
            eligible_since: None,
            rank: 0,
            events: VecDeque::new(),
            withdraw_due: false,
            last_now: now,
            last_observed: None,
            run_since: None,
        }
    }

    fn renew_period(&self) -> Duration {
        self.l / 3
    }

    fn observe_period(&self) -> Duration {
        self.l / 6
    }

    /// How long a lease lasts from the start of the publish that renewed
    /// it: `L − S`.
    fn validity(&self) -> Duration {
        self.l - self.l / 6
    }

    /// How long the shell lets one op run before it answers
    /// [`BackendError::Timeout`] itself (`L`/6).
    pub fn op_timeout(&self) -> Duration {
        self.l / 6
    }

    /// The next operation to run at `now`, if one is due and none is
    /// outstanding; `unix_ms` is the wall clock for `renewed_unix_ms`.
    pub fn poll_op(&mut self, now: Instant, unix_ms: u64) -> Option<Op> {
        self.advance(now);
        if self.pending.is_some() {
            return None;
        }
        if self.phase == Phase::Stopped {
            if !self.withdraw_due {
                return None;
            }
            self.withdraw_due = false;
            self.me.seq = self.me.seq.wrapping_add(1);
            self.me.state = RecordState::Stopped;
            self.me.epoch = self.held_epoch;
            self.me.renewed_unix_ms = unix_ms;
            self.pending = Some(Pending::Withdraw);
            return Some(Op::Withdraw(self.me.clone()));
        }
        if now >= self.next_publish {
            let (state, epoch) = match self.phase {
                Phase::Starting => (RecordState::Starting, self.held_epoch),
                Phase::Passive => (RecordState::Passive, self.held_epoch),
                Phase::Candidate => (RecordState::Candidate, self.held_epoch),
                Phase::Won { epoch, .. } | Phase::Active { epoch, .. } => {
                    (RecordState::Active, epoch)
                }
                Phase::SteppingDown { .. } => (RecordState::SteppingDown, self.held_epoch),
                Phase::Stopped => (RecordState::Stopped, self.held_epoch),
            };
            self.me.seq = self.me.seq.wrapping_add(1);
            self.me.state = state;
            self.me.epoch = epoch;
            self.me.renewed_unix_ms = unix_ms;
            self.next_publish = now + self.renew_period();
            self.pending = Some(Pending::Publish {
                started: now,
                state,
                epoch,
            });
            return Some(Op::Publish(self.me.clone()));
        }
        if let Some(at) = self.campaign_at() {
            if now >= at {
                let seen = self.group_epoch;
                self.phase = Phase::Candidate;
                self.eligible_since = None;
                self.next_publish = now;
                self.pending = Some(Pending::Claim { started: now, seen });
                return Some(Op::Claim { seen });
            }
        }
        if now >= self.next_observe {
            self.next_observe = now + self.observe_period();
            self.pending = Some(Pending::Observe { started: now });
            return Some(Op::Observe);
        }
        None
    }

    /// The answer of the outstanding operation, arriving at `now`. An
    /// answer that does not fit the outstanding op is ignored.
    pub fn handle(&mut self, now: Instant, answer: Answer) {
        self.advance(now);
        let Some(pending) = self.pending else {
            return;
        };
        match (pending, answer) {
            (
                Pending::Publish {
                    started,
                    state,
                    epoch,
                },
                Answer::Published(res),
            ) => {
                self.pending = None;
                match res {
                    Ok(()) => self.published(now, started, state, epoch),
                    Err(e) => {
                        self.next_publish = now + self.observe_period();
                        self.failed(e);
                    }
                }
            }
            (Pending::Observe { started }, Answer::Observed(res)) => {
                self.pending = None;
                match res {
                    Ok(view) => self.observed(now, started, view),
                    Err(e) => self.failed(e),
                }
            }
            (Pending::Claim { started, seen }, Answer::Claimed(res)) => {
                self.pending = None;
                self.claimed(now, started, seen, res);
            }
            (Pending::Withdraw, Answer::Withdrawn(res)) => {
                self.pending = None;
                if let Err(e) = res {
                    self.failed(e);
                }
            }
            _ => {}
        }
    }

    /// When [`Lease::poll_op`] should be called next (a due op, a timer, or
    /// the end of the lease).
    pub fn next_wakeup(&self) -> Instant {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| {
            at = Some(at.map_or(t, |a: Instant| a.min(t)));
        };
        match self.phase {
            Phase::Active { valid_until, .. } => consider(valid_until),
            Phase::Won { deadline, .. } => consider(deadline),
            Phase::SteppingDown { until } => consider(until),
            _ => {}
        }
        if self.pending.is_none() {
            if self.phase == Phase::Stopped {
                if self.withdraw_due {
                    consider(self.last_now);
                }
            } else {
                consider(self.next_publish);
                consider(self.next_observe);
                if let Some(c) = self.campaign_at() {
                    consider(c);
                }
            }
        }
        at.unwrap_or(self.last_now + self.l)
    }

    /// What the instance may do at `now`.
    pub fn role(&self, now: Instant) -> Role {
        match self.phase {
            Phase::Stopped => Role::Stopped,
            Phase::Starting | Phase::Candidate | Phase::Won { .. } => Role::Starting,
            Phase::Active { epoch, valid_until } if now < valid_until => {
                Role::Active { epoch, valid_until }
            }
            Phase::Active { .. } | Phase::Passive | Phase::SteppingDown { .. } => Role::Passive {
                active: self.live_active.clone(),
            },
        }
    }

    /// The next event for the shell, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Stop cleanly: the role is `Stopped` at once and the next op is a
    /// withdrawal of the record.
    pub fn stop(&mut self, now: Instant) {
        self.advance(now);
        if self.phase == Phase::Stopped {
            return;
        }
        if let Phase::Active { epoch, .. } = self.phase {
            self.push(Event::SteppedDown {
                epoch,
                reason: StepDownReason::Stopping,
            });
        }
        self.phase = Phase::Stopped;
        self.eligible_since = None;
        self.withdraw_due = true;
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// The state the machine publishes now.
    pub fn state(&self) -> RecordState {
        match self.phase {
            Phase::Starting => RecordState::Starting,
            Phase::Passive => RecordState::Passive,
            Phase::Candidate => RecordState::Candidate,
            Phase::Won { .. } | Phase::Active { .. } => RecordState::Active,
            Phase::SteppingDown { .. } => RecordState::SteppingDown,
            Phase::Stopped => RecordState::Stopped,
        }
    }

    /// The group epoch of the last successful observation (0: none yet).
    pub fn group_epoch(&self) -> u64 {
        self.group_epoch
    }

    /// The epoch held while active; otherwise the last one held (0: never).
    pub fn held_epoch(&self) -> u64 {
        self.held_epoch
    }

    /// The group as the last successful observation showed it.
    pub fn last_view(&self) -> Option<&GroupView> {
        self.view.as_ref()
    }

    /// The live active instance of the group other than this one, as last
    /// observed.
    pub fn live_active(&self) -> Option<&Record> {
        self.live_active.as_ref()
    }

    /// The record as last published (or about to be).
    pub fn record(&self) -> &Record {
        &self.me
    }

    fn push(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn failed(&mut self, e: BackendError) {
        // A run of failures (a store that stays down) is reported once.
        if !matches!(self.events.back(), Some(Event::BackendFailed(_))) {
            self.push(Event::BackendFailed(e));
        }
    }

    /// Timers: the end of the lease, of a claim's deadline, of stepping
    /// down.
    fn advance(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
        match self.phase {
            Phase::Active { valid_until, .. } if now >= valid_until => {
                self.step_down(now, StepDownReason::LeaseExpired);
            }
            Phase::Won { deadline, .. } if now >= deadline => {
                self.phase = Phase::Passive;
                self.next_publish = now;
            }
            Phase::SteppingDown { until } if now >= until => {
                self.phase = Phase::Passive;
                self.eligible_since = None;
                self.next_publish = now;
            }
            _ => {}
        }
    }

    fn step_down(&mut self, now: Instant, reason: StepDownReason) {
        let Phase::Active { epoch, .. } = self.phase else {
            return;
        };
        self.phase = Phase::SteppingDown {
            until: now + 2 * self.l,
        };
        self.eligible_since = None;
        self.next_publish = now;
        self.push(Event::SteppedDown { epoch, reason });
        self.report_active();
    }

    fn published(&mut self, now: Instant, started: Instant, state: RecordState, epoch: u64) {
        if state != RecordState::Active {
            return;
        }
        let until = started + self.validity();
        match self.phase {
            Phase::Won {
                epoch: won,
                deadline,
            } if won == epoch && now < deadline => {
                self.phase = Phase::Active {
                    epoch,
                    valid_until: until,
                };
                self.held_epoch = epoch;
                let waited = now.saturating_duration_since(self.no_active_since.unwrap_or(started));
                self.no_active_since = None;
                self.push(Event::BecameActive { epoch, waited });
                self.report_active();
            }
            Phase::Active {
                epoch: held,
                valid_until,
            } if held == epoch && now < valid_until => {
                self.phase = Phase::Active {
                    epoch,
                    valid_until: valid_until.max(until),
                };
            }
            _ => {}
        }
    }

    fn claimed(
        &mut self,
        now: Instant,
        started: Instant,
        seen: u64,
        res: Result<Claim, BackendError>,
    ) {
        if self.phase != Phase::Candidate {
            return;
        }
        self.phase = Phase::Passive;
        self.next_publish = now;
        match res {
            Ok(Claim::Won { epoch }) if epoch > seen => {
                let deadline = started + self.validity();
                if now < deadline {
                    self.phase = Phase::Won { epoch, deadline };
                }
            }
            Ok(Claim::Won { epoch }) => {
                self.failed(BackendError::Corrupt(format!(
                    "claim after epoch {seen} answered epoch {epoch}"
                )));
            }
            Ok(Claim::Lost) => {
                // Learn the new epoch at once.
                self.next_observe = now;
            }
            Err(e) => self.failed(e),
        }
    }

    fn observed(&mut self, now: Instant, started: Instant, view: GroupView) {
        let group = self.me.group;
        let my_key = (self.me.name.clone(), self.me.incarnation);
        if self.epoch_first_seen.is_none() || view.epoch != self.group_epoch {
            self.group_epoch = view.epoch;
            self.epoch_first_seen = Some(now);
        }
        let mut present = Vec::new();
        for r in view.records.iter().filter(|r| r.group == group) {
            let key = (r.name.clone(), r.incarnation);
            if key == my_key {
                continue;
            }
            match self.seen.get_mut(&key) {
                Some(s) if s.record.seq == r.seq => s.record = r.clone(),
                Some(s) => {
                    s.record = r.clone();
                    s.first_seen = now;
                    s.changed = true;
                }
                None => {
                    self.seen.insert(
                        key.clone(),
                        Seen {
                            record: r.clone(),
                            first_seen: now,
                            changed: false,
                            missing_since: None,
                            live: true,
                        },
                    );
                }
            }
            present.push(key);
        }
        let l = self.l;
        // Absence is weak evidence (a backend leaves an unreadable record
        // out): it counts only over a run of observations, none more than
        // L/2 after the one before, that spans L.
        let gap = self.last_observed.is_none_or(|prev| started > prev + l / 2);
        self.last_observed = Some(started);
        if gap {
            self.run_since = Some(now);
        }
        for (k, s) in self.seen.iter_mut() {
            if present.contains(k) {
                s.missing_since = None;
            } else if gap || s.missing_since.is_none() {
                s.missing_since = Some(now);
            }
            s.live = s.record.state != RecordState::Stopped
                && (started < s.first_seen + l || s.missing_since.is_some_and(|m| started < m + l));
        }
        self.seen
            .retain(|k, s| s.live || present.iter().any(|p| p == k));
        self.view = Some(view);

        let epoch = self.group_epoch;
        self.live_active = self
            .seen
            .values()
            .filter(|s| {
                s.live
                    && s.record.state == RecordState::Active
                    && epoch > 0
                    && s.record.epoch == epoch
            })
            .map(|s| &s.record)
            .min_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)))
            .cloned();

        match self.phase {
            Phase::Active { epoch: held, .. } if epoch > held => {
                self.step_down(now, StepDownReason::Superseded);
            }
            Phase::Won { epoch: won, .. } if epoch > won => {
                self.phase = Phase::Passive;
                self.next_publish = now;
            }
            _ => {}
        }

        let me_active = matches!(self.phase, Phase::Active { .. } | Phase::Won { .. });
        if self.live_active.is_some() || me_active {
            self.no_active_since = None;
        } else if self.no_active_since.is_none() {
            self.no_active_since = Some(now);
        }

        if self.phase == Phase::Starting {
            let classified = self.seen.values().all(|s| s.changed || !s.live);
            if self.live_active.is_some() || classified {
                self.phase = Phase::Passive;
                self.next_publish = now;
            }
        }

        let mine = (self.me.order, self.me.name.as_str());
        self.rank = self
            .seen
            .values()
            .filter(|s| {
                s.live
                    && matches!(
                        s.record.state,
                        RecordState::Starting | RecordState::Passive | RecordState::Candidate
                    )
                    && (s.record.order, s.record.name.as_str()) < mine
            })
            .count() as u32;
        // The epoch has not moved, and the machine has watched without a
        // gap, for L: a record left out now and then has shown up, and a
        // claimant that moved the epoch has had its time to publish.
        let quiet = self.epoch_first_seen.is_some_and(|f| started >= f + self.l)
            && self.run_since.is_some_and(|r| started >= r + self.l);
        // A live record this observation left out may have become active
        // meanwhile: its state is unknown until it shows again or dies.
        let unknown = self
            .seen
            .values()
            .any(|s| s.live && s.missing_since.is_some());
        if self.phase == Phase::Passive && self.live_active.is_none() && quiet && !unknown {
            self.eligible_since.get_or_insert(now);
        } else {
            self.eligible_since = None;
        }
        self.report_active();
    }

    /// When a passive machine claims, if it may.
    fn campaign_at(&self) -> Option<Instant> {
        if self.phase != Phase::Passive {
            return None;
        }
        self.eligible_since.map(|e| e + (self.l / 2) * self.rank)
    }

    /// Reports a change of the group's active instance (this one or the
    /// live active among the others).
    fn report_active(&mut self) {
        let current = match self.phase {
            Phase::Active { .. } => Some(self.me.clone()),
            _ => self.live_active.clone(),
        };
        let key = current
            .as_ref()
            .map(|r| (r.name.clone(), r.incarnation, r.epoch));
        if key != self.reported_active {
            self.reported_active = key;
            self.push(Event::ActiveChanged(current));
        }
    }
}

#[cfg(test)]
mod tests;
