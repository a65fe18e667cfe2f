//! Active-Passive groups (SPEC §4): leases, epochs and fencing.
//!
//! Every instance of a group runs one [`lease::Lease`] state machine. It
//! publishes a small [`Record`] about itself about every `lease_ms`/3,
//! observes the records of its group about every `lease_ms`/6, and the
//! lowest `order` among the live instances claims the group's next *epoch*
//! when no live active instance is left. Claiming is the only operation two
//! instances cannot both win; whoever holds the group's highest epoch and
//! keeps renewing its record is the active instance. Everyone else is
//! passive.
//!
//! Liveness never compares wall clocks: an observer judges a record dead
//! when its `seq` has not changed for `lease_ms` of the *observer's*
//! monotonic clock, counted from the end of the observation that first
//! showed the current value. The active instance counts its own validity
//! from the *start* of its last successful publish and gives up the role
//! `lease_ms`/6 earlier than anyone may take it over; a paused process
//! (SIGSTOP) finds its validity expired by its own monotonic clock before it
//! can write anything ([`Fence`]).
//!
//! The machine is sans-IO: the shell (`runtime::cluster`) runs the
//! [`lease::Op`]s it asks for against a [`Backend`] and feeds the answers
//! back, with `now` as an argument. Two backends exist: [`siteshare`] (the
//! default: files under `<siteshare>/vmail/cluster/`) and, with the cargo
//! feature `etcd`, an etcd cluster.

pub mod fence;
pub mod lease;
pub mod siteshare;

#[cfg(feature = "etcd")]
pub mod etcd;

pub use fence::{Fence, FenceError};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// What one instance publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Instance name (`roles[].name`).
    pub name: String,
    /// Its group.
    pub group: u32,
    /// Its order in the group (lowest becomes active first).
    pub order: u32,
    /// Where it takes SIP (redirects name it).
    pub sip: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    /// What it is doing.
    pub state: RecordState,
    /// The epoch it holds while `Active`; otherwise the last one it held
    /// (0: never).
    pub epoch: u64,
    /// Random per process start: a restarted instance is a new incarnation.
    pub incarnation: u64,
    /// Incremented by every renewal; observers judge liveness by its change.
    pub seq: u64,
    /// Wall clock of the renewal, milliseconds since the Unix epoch. For
    /// people reading the file; never used to judge liveness.
    pub renewed_unix_ms: u64,
}

/// The state an instance publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Just started: watching the group before it may campaign.
    Starting,
    /// Reserved: ready to take over.
    Passive,
    /// Claiming the group's next epoch.
    Candidate,
    /// Serving the group.
    Active,
    /// Gave up the role (lost its lease or was superseded); not a candidate
    /// for a while, so that the role does not ping-pong.
    SteppingDown,
    /// Stopped cleanly (a record left behind by a clean stop is dead).
    Stopped,
}

/// A group as a backend read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// The records of the group's instances (no particular order).
    pub records: Vec<Record>,
    /// The group's current epoch: the highest one ever claimed (0: none
    /// yet). For etcd, a revision number.
    pub epoch: u64,
}

impl GroupView {
    /// The record that claims to be active with the group's current epoch,
    /// if any. Says nothing about whether it is still renewing (the lease
    /// machine judges that); good enough to name the active instance of
    /// another group in a redirect.
    pub fn active(&self) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| r.state == RecordState::Active && r.epoch == self.epoch && self.epoch > 0)
            .min_by_key(|r| r.order)
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This instance holds the group's new epoch.
    Won {
        /// The new epoch.
        epoch: u64,
    },
    /// Someone else moved the epoch first.
    Lost,
}

/// A backend could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The store or service did not answer (or answered an error).
    #[error("coordination store unavailable: {0}")]
    Unavailable(String),
    /// It answered something vmail cannot read.
    #[error("coordination store holds unreadable data: {0}")]
    Corrupt(String),
    /// The operation did not finish in time (the shell's timeout).
    #[error("coordination store did not answer within {0} ms")]
    Timeout(u64),
}

/// A boxed future, for the object-safe [`Backend`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where leases and epochs are kept. Implementations: [`siteshare::SiteShareBackend`]
/// and (feature `etcd`) `etcd::EtcdBackend`.
pub trait Backend: Send + Sync + 'static {
    /// Writes `record` (the instance's own) so that a reader sees either
    /// the old or the new record, never a mix (renewal).
    fn publish<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Reads every record of `group` and the group's current epoch. An
    /// unreadable record is left out (and logged), never fatal.
    fn observe(&self, group: u32) -> BoxFuture<'_, Result<GroupView, BackendError>>;

    /// Moves the group's epoch on from `seen` (the epoch last observed) for
    /// `claimant`. For each value of `seen` at most one claimant, of all
    /// instances, ever gets [`Claim::Won`]; the new epoch is greater than
    /// every epoch claimed before.
    fn claim<'a>(
        &'a self,
        group: u32,
        seen: u64,
        claimant: &'a Record,
    ) -> BoxFuture<'a, Result<Claim, BackendError>>;

    /// Writes the instance's record in state `Stopped` (a clean stop), so
    /// that observers take it as dead at once.
    fn withdraw<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Whether `epoch` is still the group's current epoch, read from the
    /// store itself (for the fence before a message is committed). The
    /// default says yes: backends that cannot answer cheaply rely on the
    /// lease's validity alone.
    fn still_current(&self, group: u32, epoch: u64) -> Result<bool, BackendError> {
        let _ = (group, epoch);
        Ok(true)
    }

    /// A short name for logs (`siteshare`, `etcd`).
    fn kind(&self) -> &'static str;
}
