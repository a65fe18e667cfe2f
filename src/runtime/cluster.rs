//! The lease driver: runs the group's [`Lease`] machine against the
//! coordination backend, keeps the store's [`Fence`] in step with it,
//! watches the other groups' active instances (for redirects), and tells
//! the SIP task when this instance becomes active or steps down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cluster::lease::{
    Answer, Event, Lease, LeaseConfig, Op, Role as LeaseRole, StepDownReason,
};
use crate::cluster::siteshare::SiteShareBackend;
use crate::cluster::{Backend, BackendError, Fence, Record, RecordState};
use crate::config::{Config, Coordination, VmailRole};
use crate::metrics::Metrics;

use super::RuntimeError;

/// What this instance is, as the rest of the process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleKind {
    /// Watching the group, or claiming.
    Starting,
    /// Reserved.
    Passive,
    /// Serving the group.
    Active,
    /// Stopped.
    Stopped,
}

impl RoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Starting => "starting",
            RoleKind::Passive => "passive",
            RoleKind::Active => "active",
            RoleKind::Stopped => "stopped",
        }
    }
}

/// The instance's standing in its group and what it knows of the others.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub role: RoleKind,
    /// The epoch held (Active) or last seen for the group.
    pub epoch: u64,
    /// The own group's active instance (itself when active), if known.
    pub active: Option<Record>,
    /// Other groups' active instances, as last observed.
    pub others: BTreeMap<u32, Record>,
}

/// What the SIP task acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterEvent {
    /// Became the active instance: recover the group, restore MWI.
    BecameActive { epoch: u64 },
    /// No longer active: end the calls, forget the subscriptions.
    SteppedDown,
}

enum Control {
    /// The configuration changed (SIGHUP): group, order or lease.
    Reconfigure(Box<(Record, Duration, Vec<u32>)>),
    /// Withdraw the lease and end.
    Stop(oneshot::Sender<()>),
}

/// The handle the rest of the process holds.
pub(crate) struct Cluster {
    /// The store's fence (open while active).
    pub fence: Arc<Fence>,
    standing: watch::Receiver<Standing>,
    control: mpsc::UnboundedSender<Control>,
    /// The coordination backend's name, for status and logs.
    pub backend: &'static str,
    lease: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Whether this instance may serve its group right now (the fence is
    /// open: active, lease not run out).
    pub fn is_active(&self) -> bool {
        self.fence.check().is_ok()
    }

    /// A copy of the current standing.
    pub fn standing(&self) -> Standing {
        self.standing.borrow().clone()
    }

    /// Seconds a refused caller should wait before trying again.
    pub fn retry_after(&self) -> u64 {
        self.lease.as_secs().max(1)
    }

    /// A new configuration: a change of group, order or lease drops the
    /// lease cleanly and starts again.
    pub fn reconfigure(&self, config: &Config, role: &VmailRole) {
        let me = own_record(role, 0);
        let others = other_groups(config, role.group);
        let lease = Duration::from_millis(role.ext.lease_ms);
        let _ = self
            .control
            .send(Control::Reconfigure(Box::new((me, lease, others))));
    }

    /// Steps down if active and withdraws the record (clean stop).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(self.lease, rx).await;
        }
        self.fence.revoke();
    }
}

fn own_record(role: &VmailRole, incarnation: u64) -> Record {
    Record {
        name: role.name.clone(),
        group: role.group,
        order: role.order,
        sip: std::net::SocketAddr::new(role.addr, role.ext.sip_port),
        http: std::net::SocketAddr::new(role.addr, role.ext.http_port),
        state: RecordState::Starting,
        epoch: 0,
        incarnation,
        seq: 0,
        renewed_unix_ms: 0,
    }
}

fn other_groups(config: &Config, own: u32) -> Vec<u32> {
    config
        .groups()
        .keys()
        .copied()
        .filter(|g| *g != own)
        .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the backend `ext.coordination` names.
async fn open_backend(role: &VmailRole) -> Result<Arc<dyn Backend>, RuntimeError> {
    match &role.ext.coordination {
        Coordination::SiteShare => Ok(Arc::new(SiteShareBackend::new(&role.ext.siteshare))),
        #[cfg(feature = "etcd")]
        Coordination::Etcd { endpoints, prefix } => {
            let b =
                crate::cluster::etcd::EtcdBackend::connect(endpoints, prefix, role.ext.lease_ms)
                    .await
                    .map_err(|e| RuntimeError::Coordination(e.to_string()))?;
            Ok(Arc::new(b))
        }
        #[cfg(not(feature = "etcd"))]
        Coordination::Etcd { .. } => Err(RuntimeError::Coordination(
            "ext.coordination names etcd, but this vmail was built without the `etcd` feature \
             (cargo build --release --features etcd)"
                .into(),
        )),
    }
}

/// Starts the lease driver of `role`; events for the SIP task go to
/// `events`.
pub(crate) async fn start(
    config: &Config,
    role: &VmailRole,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<ClusterEvent>,
) -> Result<Cluster, RuntimeError> {
    let backend = open_backend(role).await?;
    let kind = backend.kind();
    let lease = Duration::from_millis(role.ext.lease_ms);
    let fence = Arc::new(Fence::new(role.group, Some(backend.clone())));
    let (standing_tx, standing) = watch::channel(Standing {
        role: RoleKind::Starting,
        epoch: 0,
        active: None,
        others: BTreeMap::new(),
    });
    let (control, control_rx) = mpsc::unbounded_channel();
    let me = own_record(role, rand::random());
    let others = other_groups(config, role.group);
    info!(
        backend = kind,
        group = role.group,
        order = role.order,
        lease_ms = role.ext.lease_ms,
        "joining the group: passive until the lease says otherwise"
    );
    let driver = Driver {
        backend,
        fence: fence.clone(),
        standing: standing_tx,
        events,
        metrics,
        failing: false,
        last_role: RoleKind::Starting,
    };
    tokio::spawn(driver.run(me, lease, others, control_rx));
    Ok(Cluster {
        fence,
        standing,
        control,
        backend: kind,
        lease,
    })
}

struct Driver {
    backend: Arc<dyn Backend>,
    fence: Arc<Fence>,
    standing: watch::Sender<Standing>,
    events: mpsc::UnboundedSender<ClusterEvent>,
    metrics: Arc<Metrics>,
    /// A streak of backend failures is being logged.
    failing: bool,
    last_role: RoleKind,
}

impl Driver {
    async fn run(
        mut self,
        me: Record,
        lease_len: Duration,
        others: Vec<u32>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let incarnation = me.incarnation;
        let mut lease = Lease::new(
            LeaseConfig {
                me,
                lease: lease_len,
            },
            Instant::now().into_std(),
        );
        let mut watcher = spawn_watcher(
            self.backend.clone(),
            others,
            lease_len,
            self.standing.clone(),
        );
        loop {
            self.step(&mut lease).await;
            let wake = Instant::from_std(lease.next_wakeup());
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                c = control.recv() => match c {
                    Some(Control::Reconfigure(next)) => {
                        let (mut rec, new_len, new_others) = *next;
                        let cur = &lease.config().me;
                        watcher.abort();
                        watcher = spawn_watcher(self.backend.clone(), new_others, new_len, self.standing.clone());
                        if rec.group != cur.group || rec.order != cur.order || new_len != lease.config().lease {
                            info!(from_group = cur.group, to_group = rec.group, order = rec.order,
                                "group membership changed: dropping the lease and joining again");
                            self.finish(&mut lease).await;
                            rec.incarnation = incarnation.wrapping_add(1);
                            lease = Lease::new(LeaseConfig { me: rec, lease: new_len }, Instant::now().into_std());
                        }
                    }
                    Some(Control::Stop(done)) => {
                        watcher.abort();
                        self.finish(&mut lease).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        watcher.abort();
                        self.finish(&mut lease).await;
                        return;
                    }
                },
            }
        }
    }

    /// Stops the machine and runs its withdrawal.
    async fn finish(&mut self, lease: &mut Lease) {
        lease.stop(Instant::now().into_std());
        self.fence.revoke();
        self.step(lease).await;
    }

    /// Runs every operation that is due, then acts on the events.
    async fn step(&mut self, lease: &mut Lease) {
        // Bounded: a machine asks for a handful of ops per period.
        for _ in 0..16 {
            let now = Instant::now().into_std();
            let Some(op) = lease.poll_op(now, unix_ms()) else {
                break;
            };
            let me = lease.config().me.clone();
            let answer = self.run_op(op, &me, lease.op_timeout()).await;
            lease.handle(Instant::now().into_std(), answer);
            self.after(lease);
        }
        self.after(lease);
    }

    async fn run_op(&mut self, op: Op, me: &Record, op_limit: Duration) -> Answer {
        // A hung store must not hold the machine past its lease: every
        // operation gets the machine's bound (a sixth of the lease).
        let limit = op_limit;
        let ms = limit.as_millis() as u64;
        let b = &*self.backend;
        macro_rules! timed {
            ($fut:expr) => {
                match tokio::time::timeout(limit, $fut).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::Timeout(ms)),
                }
            };
        }
        let answer = match &op {
            Op::Publish(r) => Answer::Published(timed!(b.publish(r))),
            Op::Observe => Answer::Observed(timed!(b.observe(me.group))),
            Op::Claim { seen } => {
                let mut claimant = me.clone();
                claimant.state = RecordState::Candidate;
                claimant.renewed_unix_ms = unix_ms();
                Answer::Claimed(timed!(b.claim(me.group, *seen, &claimant)))
            }
            Op::Withdraw(r) => Answer::Withdrawn(timed!(b.withdraw(r))),
        };
        let failed = match &answer {
            Answer::Published(r) | Answer::Withdrawn(r) => r.as_ref().err().cloned(),
            Answer::Observed(r) => r.as_ref().err().cloned(),
            Answer::Claimed(r) => r.as_ref().err().cloned(),
        };
        match failed {
            Some(e) => {
                self.metrics.lease_failures.inc();
                if !self.failing {
                    warn!(backend = self.backend.kind(), "lease operation failed: {e}");
                    self.failing = true;
                } else {
                    debug!(backend = self.backend.kind(), "lease operation failed: {e}");
                }
            }
            None if self.failing => {
                info!(
                    backend = self.backend.kind(),
                    "coordination store answers again"
                );
                self.failing = false;
            }
            None => {}
        }
        answer
    }

    /// Fence, standing and events after the machine moved.
    fn after(&mut self, lease: &mut Lease) {
        let now = Instant::now().into_std();
        let role = lease.role(now);
        let kind = match &role {
            LeaseRole::Active { epoch, valid_until } => {
                self.fence.grant(*epoch, *valid_until);
                RoleKind::Active
            }
            LeaseRole::Passive { .. } => RoleKind::Passive,
            LeaseRole::Starting => RoleKind::Starting,
            LeaseRole::Stopped => RoleKind::Stopped,
        };
        if kind != RoleKind::Active {
            self.fence.revoke();
        }
        // The epoch held while active, else the group's as last observed.
        let epoch = match &role {
            LeaseRole::Active { epoch, .. } => *epoch,
            _ => lease.group_epoch(),
        };
        while let Some(ev) = lease.poll_event() {
            match ev {
                Event::BecameActive { epoch, waited } => {
                    info!(
                        epoch,
                        waited_ms = waited.as_millis() as u64,
                        "takeover: this instance is now the active one of its group"
                    );
                    self.metrics.takeovers.inc();
                    self.metrics.last_takeover_ms.set(waited.as_millis() as i64);
                    self.metrics.epoch.set(epoch as i64);
                    let _ = self.events.send(ClusterEvent::BecameActive { epoch });
                }
                Event::SteppedDown { epoch, reason } => {
                    self.fence.revoke();
                    let why = match reason {
                        StepDownReason::LeaseExpired => "its lease ran out before a renewal",
                        StepDownReason::Superseded => "another instance holds a newer epoch",
                        StepDownReason::Stopping => "stopping",
                        #[allow(unreachable_patterns)]
                        _ => "other",
                    };
                    warn!(epoch, "stepping down: {why}");
                    self.metrics.step_downs.inc();
                    let _ = self.events.send(ClusterEvent::SteppedDown);
                }
                Event::ActiveChanged(rec) => match &rec {
                    Some(r) => {
                        info!(active = %r.name, epoch = r.epoch, sip = %r.sip, "the group's active instance")
                    }
                    None => info!("the group has no live active instance"),
                },
                Event::BackendFailed(e) => debug!("lease: {e}"),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        let active = match &role {
            LeaseRole::Passive { active } => active.clone(),
            LeaseRole::Active { .. } => Some(Record {
                state: RecordState::Active,
                epoch,
                ..lease.config().me.clone()
            }),
            _ => None,
        };
        self.metrics
            .role_active
            .set(i64::from(kind == RoleKind::Active));
        if kind != self.last_role {
            info!(role = kind.as_str(), epoch, "role");
            self.last_role = kind;
        }
        self.standing.send_if_modified(|s| {
            let changed = s.role != kind || s.epoch != epoch || s.active != active;
            s.role = kind;
            s.epoch = epoch;
            s.active = active;
            changed
        });
    }
}

/// Observes the other groups about every half lease and keeps their
/// active instances in the standing (for redirects).
fn spawn_watcher(
    backend: Arc<dyn Backend>,
    groups: Vec<u32>,
    lease: Duration,
    standing: watch::Sender<Standing>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if groups.is_empty() {
            return;
        }
        let period = (lease / 2).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for &g in &groups {
                let seen = match tokio::time::timeout(lease / 3, backend.observe(g)).await {
                    Ok(Ok(view)) => Some(view.active().cloned()),
                    Ok(Err(e)) => {
                        debug!(group = g, "other group not observed: {e}");
                        None
                    }
                    Err(_) => None,
                };
                let Some(active) = seen else { continue };
                standing.send_if_modified(|s| match active {
                    Some(r) => {
                        let changed = s.others.get(&g) != Some(&r);
                        s.others.insert(g, r);
                        changed
                    }
                    None => s.others.remove(&g).is_some(),
                });
            }
        }
    })
}
