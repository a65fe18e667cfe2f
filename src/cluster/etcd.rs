//! The etcd backend: leases and epochs in an etcd cluster (v3 API).
//!
//! Layout under `<prefix>/cluster/group-<g>/`:
//! - `members/<name>`: the instance's [`Record`] as JSON, attached to an
//!   etcd lease of the process, so that etcd itself deletes it when the
//!   process stops renewing;
//! - `epoch`: the JSON record of the last claimant; its `mod_revision` is
//!   the group's epoch (0 while the key does not exist).
//!
//! **TTL.** The etcd lease is granted with a TTL of `ceil(lease_ms / 1000)`
//! seconds (at least 1). The renewal happens after the publish started, so
//! the key lives at least `lease_ms` past that start, longer than the
//! instance's own validity (`lease_ms − lease_ms/6` after it): the lease
//! machine may treat a record that vanished as dead at once. A new etcd
//! leader renews every lease in full, which only delays the deletion. etcd raises a
//! TTL below its minimum (`1.5 × election-timeout`, rounded up to whole
//! seconds: 2 s with etcd's default 1000 ms election timeout) to that
//! minimum; the effective TTL (from the grant's answer) is logged.
//!
//! **Publish** renews the lease (one `LeaseKeepAlive` exchange on a fresh
//! stream), then puts the record with that lease. A lease that expired (a
//! paused process, a cluster that lost quorum for longer than the TTL) is
//! replaced by a newly granted one. One exchange per publish (rather than
//! a long-lived keep-alive stream) keeps no stream tied to a member that
//! may die: every renewal goes to a member that answers (see below), and a
//! renewal happens exactly when the lease machine publishes, so a process
//! that stops publishing (paused, stuck) stops renewing too.
//!
//! **Observe** is one linearizable range read of the group's prefix: a
//! member cut off from the quorum answers an error (the client sends
//! `require_leader`), so the lease machine of an active instance stops
//! renewing and steps down within its lease.
//!
//! **Claim** is one transaction: `mod_revision(epoch) == seen` then put the
//! claimant's record under `epoch`. The winner's epoch is the revision of
//! that transaction, greater than every revision before it; for a given
//! `seen` only one transaction can succeed.
//!
//! **Failover between members.** Every configured endpoint gets its own
//! client (one HTTP/2 connection). An operation goes to the member that
//! answered last; when that member is down (connection refused), has no
//! leader (the client sends `require_leader`), or answers "unavailable"
//! (leader changed, request timed out inside etcd), the same operation is
//! tried on the next member, all within one bound of `lease_ms`/3. A member
//! that hangs (paused, partitioned) is given up after half that bound, in
//! time to ask the next one; an operation that still runs out of time moves
//! the next operation's first try to another member. (A single
//! balanced channel over all endpoints, as the client offers, keeps sending
//! a share of the requests to a dead member.) A claim that failed in a way
//! that may still have been applied is recognised on the retry: the epoch
//! key then holds exactly this claimant's record.
//!
//! **Still current.** [`Backend::still_current`] is synchronous and is
//! called on the write path, where blocking on the network is not allowed.
//! It answers from the highest epoch this backend has seen for the group in
//! its own observations and claims (at most `lease_ms`/6 old while the
//! lease machine runs): `false` only when a newer epoch is known for sure,
//! `true` otherwise, the lease's validity bounding the writer.
//!
//! One backend serves one vmail process: its own records share one etcd
//! lease, which [`Backend::withdraw`] revokes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::{Backend, BackendError, BoxFuture, Claim, GroupView, Record};

/// Leases and epochs in etcd.
pub struct EtcdBackend {
    /// One client per member, in the configured order.
    members: Vec<Member>,
    /// The member tried first (the last one that answered).
    preferred: AtomicUsize,
    /// `<prefix>/cluster` (no trailing slash).
    root: String,
    /// Requested TTL of the process's etcd lease, seconds.
    ttl_s: i64,
    /// Bound on every operation (all attempts on all members).
    op_timeout: Duration,
    /// The process's etcd lease, once granted.
    lease: Mutex<Option<i64>>,
    /// The highest epoch seen per group (observations and claims).
    epochs: Mutex<HashMap<u32, u64>>,
}

/// One etcd member and its client.
struct Member {
    endpoint: String,
    client: Client,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field(
                "endpoints",
                &self.members.iter().map(|m| &m.endpoint).collect::<Vec<_>>(),
            )
            .field("root", &self.root)
            .field("ttl_s", &self.ttl_s)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

/// The TTL (seconds) asked of etcd for `lease_ms`: `ceil(4 · lease_ms /
/// 1000)`, at least 1. The lease machine judges liveness by the records'
/// `seq` within one `lease_ms`; the TTL only clears the records of dead
/// processes afterwards, so it is longer than the lease (a record that
/// vanished earlier would delay the takeover: an absent record counts as
/// dead only after a whole lease of absence). etcd may raise it to its own
/// minimum.
pub fn ttl_seconds(lease_ms: u64) -> i64 {
    i64::try_from(lease_ms.saturating_mul(4).div_ceil(1000).max(1)).unwrap_or(i64::MAX)
}

/// The bound on one backend operation for `lease_ms`: `lease_ms`/6 (the
/// lease machine's own bound), at least 50 ms.
pub fn op_timeout(lease_ms: u64) -> Duration {
    Duration::from_millis((lease_ms / 6).max(50))
}

/// The bound on one attempt on one member: half the operation's bound, so
/// that a member that hangs leaves time to ask another one.
fn attempt_timeout(op: Duration) -> Duration {
    (op / 2).max(Duration::from_millis(25))
}

/// etcd's default `--grpc-keepalive-min-time`.
const ETCD_MIN_PING_INTERVAL: Duration = Duration::from_secs(5);

/// gRPC status codes (tonic's `Code` discriminants).
const GRPC_CANCELLED: i32 = 1;
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

/// What an etcd error means for the operation.
#[derive(Debug)]
enum Failure {
    /// This member cannot serve now (unreachable, no leader, request timed
    /// out inside etcd, the connection broke): try another member.
    Member(BackendError),
    /// An answer another member would give too.
    Final(BackendError),
}

impl Failure {
    fn into_error(self) -> BackendError {
        match self {
            Failure::Member(e) | Failure::Final(e) => e,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Classifies an etcd client error of `what` at `endpoint`.
fn failure(what: &str, endpoint: &str, e: etcd_client::Error, timeout: Duration) -> Failure {
    match &e {
        etcd_client::Error::GRpcStatus(s) => {
            let code = s.code() as i32;
            if code == GRPC_DEADLINE_EXCEEDED
                || (code == GRPC_CANCELLED && s.message().contains("Timeout expired"))
            {
                return Failure::Member(BackendError::Timeout(millis(timeout)));
            }
            let err = BackendError::Unavailable(format!("etcd {what} at {endpoint}: {e}"));
            if code == GRPC_UNAVAILABLE {
                Failure::Member(err)
            } else {
                Failure::Final(err)
            }
        }
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_) => Failure::Member(BackendError::Unavailable(format!(
            "etcd {what} at {endpoint}: {e}"
        ))),
        _ => Failure::Final(BackendError::Unavailable(format!(
            "etcd {what} at {endpoint}: {e}"
        ))),
    }
}

/// A future of one attempt of an operation on one member.
type Attempt<'a, T> = BoxFuture<'a, Result<T, Failure>>;

impl EtcdBackend {
    /// A client for the etcd cluster at `endpoints` (client URLs such as
    /// `http://10.0.0.1:2379`; a bare `host:port` means `http://`), keys
    /// under `prefix`. Each connection attempt and each operation is
    /// bounded by `lease_ms`/3. Every member gets its own client; an
    /// operation goes to the member that answered last and moves on to the
    /// next one when that member is down, has no leader, or hangs. The
    /// cluster need not be reachable yet (vmail stays passive until it is):
    /// only a bad endpoint is an error.
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        lease_ms: u64,
    ) -> Result<EtcdBackend, BackendError> {
        if endpoints.is_empty() {
            return Err(BackendError::Unavailable(
                "etcd: no endpoints configured".to_string(),
            ));
        }
        let t = op_timeout(lease_ms);
        // HTTP/2 pings only while a request is in flight, and no more often
        // than etcd's `--grpc-keepalive-min-time` (5 s by default) allows:
        // etcd closes connections that ping more. A member that goes silent
        // is left by the operation timeout instead (see `run`).
        let options = ConnectOptions::new()
            .with_connect_timeout(attempt_timeout(t))
            .with_timeout(attempt_timeout(t))
            .with_keep_alive(t.max(ETCD_MIN_PING_INTERVAL), t)
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            // Lazy: nothing is dialled until the first request.
            let client = Client::connect([endpoint.as_str()], Some(options.clone()))
                .await
                .map_err(|e| BackendError::Unavailable(format!("etcd endpoint {endpoint}: {e}")))?;
            members.push(Member {
                endpoint: endpoint.clone(),
                client,
            });
        }
        let backend = EtcdBackend {
            members,
            preferred: AtomicUsize::new(0),
            root: format!("{}/cluster", prefix.trim_end_matches('/')),
            ttl_s: ttl_seconds(lease_ms),
            op_timeout: t,
            lease: Mutex::new(None),
            epochs: Mutex::new(HashMap::new()),
        };
        // A first look, for the log only.
        let probe = backend
            .run("status", |m| {
                Box::pin(async move {
                    let mut c = m.client.clone();
                    c.status()
                        .await
                        .map(|_| ())
                        .map_err(|e| failure("status", &m.endpoint, e, t))
                })
            })
            .await;
        match probe {
            Ok(()) => tracing::info!(endpoints = ?endpoints, "etcd coordination store reachable"),
            Err(e) => tracing::warn!(
                endpoints = ?endpoints,
                error = %e,
                "etcd coordination store not reachable yet; vmail keeps trying"
            ),
        }
        Ok(backend)
    }

    /// `<prefix>/cluster/group-<g>/` (with the trailing slash).
    pub fn group_prefix(&self, group: u32) -> String {
        format!("{}/group-{group}/", self.root)
    }

    /// The key of an instance's record.
    pub fn member_key(&self, group: u32, name: &str) -> String {
        format!("{}members/{name}", self.group_prefix(group))
    }

    /// The key whose `mod_revision` is the group's epoch.
    pub fn epoch_key(&self, group: u32) -> String {
        format!("{}epoch", self.group_prefix(group))
    }

    /// The TTL asked of etcd for the process's lease, seconds.
    pub fn ttl_s(&self) -> i64 {
        self.ttl_s
    }

    /// Runs `attempt` on the preferred member, then on the next ones while
    /// a member cannot serve, each attempt within half the operation bound
    /// and all of them within the bound. The member that answers becomes
    /// the preferred one; one that hangs past the bound loses that place.
    async fn run<'a, T>(
        &'a self,
        what: &str,
        mut attempt: impl FnMut(&'a Member) -> Attempt<'a, T>,
    ) -> Result<T, BackendError> {
        let n = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        // The member being tried, read when the bound runs out.
        let trying = AtomicUsize::new(first);
        let all = async {
            let mut last = None;
            for k in 0..n {
                let i = (first + k) % n;
                trying.store(i, Ordering::Relaxed);
                let answer = tokio::time::timeout(
                    attempt_timeout(self.op_timeout),
                    attempt(&self.members[i]),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::Member(BackendError::Timeout(millis(
                        attempt_timeout(self.op_timeout),
                    ))))
                });
                match answer {
                    Ok(v) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(Failure::Member(e)) => {
                        tracing::debug!(op = what, endpoint = %self.members[i].endpoint, error = %e, "etcd member cannot serve; trying the next one");
                        last = Some(e);
                    }
                    Err(f @ Failure::Final(_)) => return Err(f.into_error()),
                }
            }
            let last = last.map(|e| e.to_string()).unwrap_or_default();
            Err(BackendError::Unavailable(format!(
                "etcd {what}: none of the {n} members can serve (last: {last})"
            )))
        };
        match tokio::time::timeout(self.op_timeout, all).await {
            Ok(r) => r,
            Err(_) => {
                let stuck = trying.load(Ordering::Relaxed);
                self.preferred.store((stuck + 1) % n, Ordering::Relaxed);
                tracing::debug!(op = what, endpoint = %self.members[stuck % n].endpoint, "etcd operation timed out");
                Err(BackendError::Timeout(millis(self.op_timeout)))
            }
        }
    }

    fn fail(&self, what: &str, m: &Member, e: etcd_client::Error) -> Failure {
        failure(what, &m.endpoint, e, self.op_timeout)
    }

    fn note_epoch(&self, group: u32, epoch: u64) {
        if let Ok(mut m) = self.epochs.lock() {
            let e = m.entry(group).or_insert(0);
            *e = (*e).max(epoch);
        }
    }

    fn current_lease(&self) -> Option<i64> {
        self.lease.lock().ok().and_then(|l| *l)
    }

    fn set_lease(&self, id: Option<i64>) {
        if let Ok(mut l) = self.lease.lock() {
            *l = id;
        }
    }

    async fn grant(&self, m: &Member) -> Result<i64, Failure> {
        let mut c = m.client.clone();
        let r = c
            .lease_grant(self.ttl_s, None)
            .await
            .map_err(|e| self.fail("lease grant", m, e))?;
        if !r.error().is_empty() {
            return Err(Failure::Final(BackendError::Unavailable(format!(
                "etcd lease grant: {}",
                r.error()
            ))));
        }
        tracing::info!(
            lease = format_args!("{:x}", r.id()),
            ttl_s = r.ttl(),
            "etcd lease granted"
        );
        self.set_lease(Some(r.id()));
        Ok(r.id())
    }

    /// One keep-alive exchange: `Ok(true)` renewed, `Ok(false)` the lease
    /// is gone (expired or revoked).
    async fn keep_alive(&self, m: &Member, id: i64) -> Result<bool, Failure> {
        let mut c = m.client.clone();
        match c.lease_keep_alive(id).await {
            // The call does the first exchange; dropping the keeper and the
            // stream closes the stream.
            Ok(_) => Ok(true),
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
            Err(e) => Err(self.fail("lease keep-alive", m, e)),
        }
    }

    async fn put_record(
        &self,
        m: &Member,
        key: &str,
        json: &[u8],
        lease: i64,
    ) -> Result<(), PutError> {
        let mut c = m.client.clone();
        match c
            .put(key, json, Some(PutOptions::new().with_lease(lease)))
            .await
        {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("lease not found") => {
                Err(PutError::LeaseGone)
            }
            Err(e) => Err(PutError::Other(self.fail("put", m, e))),
        }
    }

    async fn publish_on(&self, m: &Member, key: &str, json: &[u8]) -> Result<(), Failure> {
        let lease = match self.current_lease() {
            Some(id) if self.keep_alive(m, id).await? => id,
            Some(id) => {
                tracing::warn!(
                    lease = format_args!("{id:x}"),
                    "etcd lease expired (process paused or cluster unavailable for longer than its TTL); granting a new one"
                );
                self.set_lease(None);
                self.grant(m).await?
            }
            None => self.grant(m).await?,
        };
        match self.put_record(m, key, json, lease).await {
            Ok(()) => Ok(()),
            Err(PutError::LeaseGone) => {
                // Expired between the renewal and the put.
                self.set_lease(None);
                let lease = self.grant(m).await?;
                self.put_record(m, key, json, lease)
                    .await
                    .map_err(|e| match e {
                        PutError::LeaseGone => Failure::Final(BackendError::Unavailable(
                            "etcd put: a lease just granted is already gone".to_string(),
                        )),
                        PutError::Other(f) => f,
                    })
            }
            Err(PutError::Other(f)) => Err(f),
        }
    }

    async fn observe_on(&self, m: &Member, group: u32) -> Result<GroupView, Failure> {
        let prefix = self.group_prefix(group);
        let epoch_key = self.epoch_key(group);
        let mut c = m.client.clone();
        // Linearizable (the default): served through the leader's quorum.
        let r = c
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.fail("range read", m, e))?;
        let mut view = GroupView::default();
        let members = format!("{prefix}members/");
        for kv in r.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if key == epoch_key {
                view.epoch = u64::try_from(kv.mod_revision()).unwrap_or(0);
            } else if key.starts_with(&members) {
                match serde_json::from_slice::<Record>(kv.value()) {
                    Ok(rec) => view.records.push(rec),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "unreadable lease record in etcd; ignored")
                    }
                }
            }
        }
        Ok(view)
    }

    /// The claim transaction on one member. `retry`: an earlier attempt of
    /// the same claim failed in a way that may have been applied; if the
    /// epoch key now holds exactly this claimant's record, that attempt
    /// won.
    async fn claim_on(
        &self,
        m: &Member,
        key: &str,
        seen: i64,
        json: &[u8],
        retry: bool,
    ) -> Result<Claim, Failure> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, seen)])
            .and_then([TxnOp::put(key, json, None)]);
        let mut c = m.client.clone();
        let r = c
            .txn(txn)
            .await
            .map_err(|e| self.fail("claim transaction", m, e))?;
        if r.succeeded() {
            let rev = r
                .header()
                .map(|h| h.revision())
                .and_then(|v| u64::try_from(v).ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    Failure::Final(BackendError::Corrupt(
                        "claim transaction answered without a revision".to_string(),
                    ))
                })?;
            return Ok(Claim::Won { epoch: rev });
        }
        if retry {
            let r = c
                .get(key, None)
                .await
                .map_err(|e| self.fail("range read", m, e))?;
            if let Some(kv) = r.kvs().first() {
                if kv.value() == json && kv.mod_revision() > seen {
                    if let Ok(epoch) = u64::try_from(kv.mod_revision()) {
                        return Ok(Claim::Won { epoch });
                    }
                }
            }
        }
        Ok(Claim::Lost)
    }

    /// Writes the `Stopped` record without a lease (observers see a clean
    /// stop at once, where a deleted key would count as dead only after it
    /// has been missing for a whole lease), then revokes the lease.
    async fn withdraw_on(&self, m: &Member, key: &str, json: &[u8]) -> Result<(), Failure> {
        let mut c = m.client.clone();
        c.put(key, json, None)
            .await
            .map_err(|e| self.fail("put", m, e))?;
        if let Some(id) = self.current_lease() {
            match c.lease_revoke(id).await {
                Ok(_) => {}
                Err(etcd_client::Error::GRpcStatus(s))
                    if s.message().contains("lease not found") => {}
                Err(e) => return Err(self.fail("lease revoke", m, e)),
            }
            self.set_lease(None);
        }
        Ok(())
    }
}

enum PutError {
    LeaseGone,
    Other(Failure),
}

impl Backend for EtcdBackend {
    fn publish<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let json = serde_json::to_vec(record)
                .map_err(|e| BackendError::Corrupt(format!("record of {}: {e}", record.name)))?;
            let key = self.member_key(record.group, &record.name);
            let (key, json) = (&key, &json);
            self.run("publish", |m| Box::pin(self.publish_on(m, key, json)))
                .await
        })
    }

    fn observe(&self, group: u32) -> BoxFuture<'_, Result<GroupView, BackendError>> {
        Box::pin(async move {
            let view = self
                .run("observe", |m| Box::pin(self.observe_on(m, group)))
                .await?;
            self.note_epoch(group, view.epoch);
            Ok(view)
        })
    }

    fn claim<'a>(
        &'a self,
        group: u32,
        seen: u64,
        claimant: &'a Record,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        Box::pin(async move {
            let seen = i64::try_from(seen).map_err(|_| {
                BackendError::Corrupt(format!("epoch {seen} is not an etcd revision"))
            })?;
            let json = serde_json::to_vec(claimant)
                .map_err(|e| BackendError::Corrupt(format!("record of {}: {e}", claimant.name)))?;
            let key = self.epoch_key(group);
            let (key, json) = (&key, &json);
            let mut attempts = 0u32;
            let claim = self
                .run("claim", |m| {
                    attempts += 1;
                    Box::pin(self.claim_on(m, key, seen, json, attempts > 1))
                })
                .await?;
            if let Claim::Won { epoch } = claim {
                self.note_epoch(group, epoch);
            }
            Ok(claim)
        })
    }

    fn withdraw<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let json = serde_json::to_vec(record)
                .map_err(|e| BackendError::Corrupt(format!("record of {}: {e}", record.name)))?;
            let key = self.member_key(record.group, &record.name);
            let (key, json) = (&key, &json);
            self.run("withdraw", |m| Box::pin(self.withdraw_on(m, key, json)))
                .await
        })
    }

    fn still_current(&self, group: u32, epoch: u64) -> Result<bool, BackendError> {
        let known = self
            .epochs
            .lock()
            .ok()
            .and_then(|m| m.get(&group).copied())
            .unwrap_or(0);
        Ok(known <= epoch)
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_four_leases_in_whole_seconds() {
        assert_eq!(ttl_seconds(0), 1);
        assert_eq!(ttl_seconds(200), 1);
        assert_eq!(ttl_seconds(250), 1);
        assert_eq!(ttl_seconds(251), 2);
        assert_eq!(ttl_seconds(3000), 12);
        assert_eq!(op_timeout(3000), Duration::from_millis(500));
        assert_eq!(op_timeout(30), Duration::from_millis(50));
    }
}
