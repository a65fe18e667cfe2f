//! The retention task of the active instance: a pass over the group's
//! mailboxes at takeover and then every `ext.retention_interval_minutes`,
//! removing the messages older than their folder's period (see
//! [`crate::retention`]). It ends when the instance steps down (or takes
//! over again under a newer epoch, which starts a new task); a pass in
//! progress stops at the next mailbox, and the store's fence refuses any
//! removal meanwhile.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::Shared;
use crate::retention::{run_pass, Rule, Scope};

/// Starts the task for the takeover under `epoch`.
pub(super) fn start(shared: &Arc<Shared>, epoch: u64) {
    let ext = &shared.role.ext;
    let policy = ext.retention.clone();
    let every = Duration::from_secs(u64::from(ext.retention_interval_minutes) * 60);
    let shared = shared.clone();
    tokio::spawn(async move {
        info!(
            epoch,
            interval_minutes = every.as_secs() / 60,
            off = policy.is_off(),
            "retention task started"
        );
        loop {
            if !still_ours(&shared, epoch) {
                info!(epoch, "retention task ended: no longer the active instance");
                return;
            }
            let pass_shared = shared.clone();
            let rule = Rule::Policy(policy.clone());
            let outcome =
                tokio::task::spawn_blocking(move || pass(&pass_shared, epoch, &rule)).await;
            if let Err(e) = outcome {
                warn!("retention pass panicked: {e}");
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Whether the instance is still the active one under `epoch` (a newer
/// epoch means a later takeover, with its own task).
fn still_ours(shared: &Shared, epoch: u64) -> bool {
    shared.cluster.is_active() && shared.cluster.standing().epoch <= epoch
}

/// One pass over the mailboxes of the domains this group owns.
fn pass(shared: &Arc<Shared>, epoch: u64, rule: &Rule) {
    let started = std::time::Instant::now();
    let table = shared.routing.clone();
    let own_group = shared.role.group;
    let scope = Scope {
        domain_filter: Some(Arc::new(move |domain: &str| {
            table.owner(domain).map(|o| o.group()) == Some(own_group)
        })),
        ..Scope::default()
    };
    let metrics = shared.metrics.clone();
    let keep_going = || still_ours(shared, epoch);
    let result = run_pass(
        &shared.store,
        &scope,
        rule,
        SystemTime::now(),
        false,
        &keep_going,
        &mut |_| metrics.messages_expired.inc(),
    );
    match result {
        Ok(removed) => info!(
            removed = removed.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "retention pass done"
        ),
        Err(e) => warn!("retention pass failed: {e}"),
    }
}
