//! The notifier side of RFC 6665 subscriptions to `message-summary`, for
//! every subscription of the instance at once: expiry timers as data, one
//! NOTIFY in flight per subscription, the newest counts sent next.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::store::{Counts, MailboxId};

/// The subscription length when SUBSCRIBE has no `Expires` (RFC 3842 §6).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// The shortest and longest subscription the instance grants, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Shorter requests get `423 Interval Too Brief` with `Min-Expires`.
    pub min: u32,
    /// Longer requests are shortened to this.
    pub max: u32,
}

/// What a SUBSCRIBE's `Expires` asks for, under the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Subscribe or refresh for this many seconds (the 200's `Expires`).
    For(u32),
    /// `Expires: 0`: unsubscribe (or fetch once, for a new subscription).
    Unsubscribe,
    /// Below the minimum: `423` with `Min-Expires: min`.
    TooBrief {
        /// The `Min-Expires` value.
        min: u32,
    },
}

/// Decides on a requested `Expires` (`None`: the header is absent).
pub fn grant(limits: Limits, requested: Option<u32>) -> Grant {
    match requested {
        Some(0) => Grant::Unsubscribe,
        Some(s) if s < limits.min => Grant::TooBrief { min: limits.min },
        Some(s) => Grant::For(s.min(limits.max)),
        None => Grant::For(DEFAULT_EXPIRES.clamp(limits.min, limits.max.max(limits.min))),
    }
}

/// A subscription's handle (the shell keeps its dialog under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

/// Why a subscription ended (the `reason` of `Subscription-State:
/// terminated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Expired, or unsubscribed with `Expires: 0`.
    Timeout,
    /// The mailbox no longer exists.
    NoResource,
}

impl EndReason {
    /// The `reason` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::NoResource => "noresource",
        }
    }
}

/// The `Subscription-State` of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyState {
    /// `active;expires=<seconds left>`.
    Active {
        /// Seconds until the subscription expires.
        expires: u32,
    },
    /// `terminated;reason=<reason>`: the last NOTIFY.
    Terminated(EndReason),
}

impl NotifyState {
    /// The header value.
    pub fn header_value(self) -> String {
        match self {
            NotifyState::Active { expires } => format!("active;expires={expires}"),
            NotifyState::Terminated(r) => format!("terminated;reason={}", r.as_str()),
        }
    }
}

/// A NOTIFY to send now; the shell reports its outcome with
/// [`Subscriptions::on_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The subscription.
    pub sub: SubId,
    /// Its `Subscription-State`.
    pub state: NotifyState,
    /// The counts for the body (`None`: no body, e.g. `noresource`).
    pub counts: Option<Counts>,
}

#[derive(Debug)]
enum Phase {
    Active,
    /// A terminated NOTIFY is owed (or in flight); removed once answered.
    Ending(EndReason),
}

#[derive(Debug)]
struct Sub {
    mailbox: MailboxId,
    expires_at: Instant,
    phase: Phase,
    /// A NOTIFY of this subscription is waiting for its answer.
    in_flight: bool,
    /// Owes a NOTIFY even with unchanged counts (new, refreshed).
    force: bool,
    /// The counts of the last NOTIFY sent.
    last_sent: Option<Counts>,
    /// The terminated NOTIFY has been handed out.
    final_sent: bool,
}

/// Every subscription of the instance.
#[derive(Debug, Default)]
pub struct Subscriptions {
    subs: HashMap<SubId, Sub>,
    by_mailbox: HashMap<MailboxId, BTreeSet<SubId>>,
    /// The newest counts read per watched mailbox.
    counts: HashMap<MailboxId, Counts>,
    expiries: BTreeSet<(Instant, SubId)>,
    /// Subscriptions that may have a NOTIFY to send.
    check: VecDeque<SubId>,
    removed: VecDeque<(SubId, MailboxId)>,
}

impl Subscriptions {
    /// No subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many subscriptions there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there is none.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Whether `mailbox` has subscriptions.
    pub fn watches(&self, mailbox: &MailboxId) -> bool {
        self.by_mailbox.contains_key(mailbox)
    }

    /// The subscriptions of `mailbox`.
    pub fn of_mailbox(&self, mailbox: &MailboxId) -> Vec<SubId> {
        self.by_mailbox
            .get(mailbox)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The mailbox and expiry of a subscription still active.
    pub fn get(&self, id: SubId) -> Option<(&MailboxId, Instant)> {
        self.subs
            .get(&id)
            .filter(|s| matches!(s.phase, Phase::Active))
            .map(|s| (&s.mailbox, s.expires_at))
    }

    /// A new subscription of `mailbox` for `seconds`; its first NOTIFY
    /// goes out once the counts are known ([`set_counts`](Self::set_counts)).
    /// The shell reads them right after.
    pub fn add(&mut self, now: Instant, id: SubId, mailbox: MailboxId, seconds: u32) {
        self.add_until(id, mailbox, now + Duration::from_secs(u64::from(seconds)));
    }

    /// A subscription that expires at `expires_at` (a restored one).
    pub fn add_until(&mut self, id: SubId, mailbox: MailboxId, expires_at: Instant) {
        self.forget(id);
        self.by_mailbox
            .entry(mailbox.clone())
            .or_default()
            .insert(id);
        self.expiries.insert((expires_at, id));
        self.subs.insert(
            id,
            Sub {
                mailbox,
                expires_at,
                phase: Phase::Active,
                in_flight: false,
                force: true,
                last_sent: None,
                final_sent: false,
            },
        );
        self.check.push_back(id);
    }

    /// A refresh for `seconds` more; a NOTIFY follows (RFC 6665 §4.2.1.2).
    /// `false` when the subscription is unknown or ending.
    pub fn refresh(&mut self, now: Instant, id: SubId, seconds: u32) -> bool {
        let Some(sub) = self.subs.get_mut(&id) else {
            return false;
        };
        if !matches!(sub.phase, Phase::Active) {
            return false;
        }
        self.expiries.remove(&(sub.expires_at, id));
        sub.expires_at = now + Duration::from_secs(u64::from(seconds));
        sub.force = true;
        self.expiries.insert((sub.expires_at, id));
        self.check.push_back(id);
        true
    }

    /// `Expires: 0`: a last NOTIFY with `terminated;reason=timeout`, then
    /// the subscription is gone.
    pub fn unsubscribe(&mut self, id: SubId) {
        self.end(id, EndReason::Timeout);
    }

    fn end(&mut self, id: SubId, reason: EndReason) {
        if let Some(sub) = self.subs.get_mut(&id) {
            if matches!(sub.phase, Phase::Active) {
                self.expiries.remove(&(sub.expires_at, id));
                sub.phase = Phase::Ending(reason);
                self.check.push_back(id);
            }
        }
    }

    /// The newest counts of `mailbox`, read after a change or a new
    /// subscription: every subscription whose lamp state differs (or that
    /// owes a NOTIFY) gets one, when its previous NOTIFY is answered.
    pub fn set_counts(&mut self, mailbox: &MailboxId, counts: Counts) {
        let Some(ids) = self.by_mailbox.get(mailbox) else {
            return;
        };
        self.counts.insert(mailbox.clone(), counts);
        self.check.extend(ids.iter().copied());
    }

    /// The counts of `mailbox` could not be read: nothing is sent with a
    /// guessed count; ending subscriptions that never had counts get
    /// their terminated NOTIFY without a body.
    pub fn counts_unreadable(&mut self, mailbox: &MailboxId) {
        if let Some(ids) = self.by_mailbox.get(mailbox) {
            for id in ids.clone() {
                if let Some(sub) = self.subs.get_mut(&id) {
                    if matches!(sub.phase, Phase::Ending(_)) {
                        sub.last_sent.get_or_insert_with(Counts::default);
                        self.check.push_back(id);
                    }
                }
            }
        }
    }

    /// The mailbox no longer exists: every subscription of it ends with
    /// `noresource`.
    pub fn mailbox_gone(&mut self, mailbox: &MailboxId) {
        for id in self.of_mailbox(mailbox) {
            self.end(id, EndReason::NoResource);
        }
    }

    /// The outcome of the NOTIFY of `id`: `true` for a 2xx. A failure
    /// (481, 408 or timeout, any other final error) ends the
    /// subscription at once (RFC 6665 §4.2.2); so does the answer to the
    /// terminated NOTIFY.
    pub fn on_outcome(&mut self, id: SubId, ok: bool) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        sub.in_flight = false;
        if !ok || matches!(sub.phase, Phase::Ending(_)) && sub.final_sent {
            self.remove(id);
        } else {
            self.check.push_back(id);
        }
    }

    /// Drops a subscription without a NOTIFY (its dialog is unusable).
    pub fn remove(&mut self, id: SubId) {
        if let Some(mailbox) = self.forget(id) {
            self.removed.push_back((id, mailbox));
        }
    }

    fn forget(&mut self, id: SubId) -> Option<MailboxId> {
        let sub = self.subs.remove(&id)?;
        self.expiries.remove(&(sub.expires_at, id));
        if let Some(set) = self.by_mailbox.get_mut(&sub.mailbox) {
            set.remove(&id);
            if set.is_empty() {
                self.by_mailbox.remove(&sub.mailbox);
                self.counts.remove(&sub.mailbox);
            }
        }
        Some(sub.mailbox)
    }

    /// Ends the subscriptions that expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, id));
            self.end(id, EndReason::Timeout);
        }
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// The next NOTIFY to send at `now`; it counts as in flight from here.
    pub fn poll_notify(&mut self, now: Instant) -> Option<Notify> {
        while let Some(id) = self.check.pop_front() {
            let Some(sub) = self.subs.get_mut(&id) else {
                continue;
            };
            if sub.in_flight {
                continue;
            }
            let known = self.counts.get(&sub.mailbox).copied();
            match sub.phase {
                Phase::Active => {
                    let Some(counts) = known else { continue };
                    if !sub.force && sub.last_sent == Some(counts) {
                        continue;
                    }
                    let left = sub.expires_at.saturating_duration_since(now);
                    // Round up: a subscription with 0.4 s left is not over.
                    let expires =
                        u32::try_from(left.as_millis().div_ceil(1000)).unwrap_or(u32::MAX);
                    sub.force = false;
                    sub.last_sent = Some(counts);
                    sub.in_flight = true;
                    return Some(Notify {
                        sub: id,
                        state: NotifyState::Active { expires },
                        counts: Some(counts),
                    });
                }
                Phase::Ending(reason) => {
                    if sub.final_sent {
                        continue;
                    }
                    let counts = match reason {
                        EndReason::NoResource => None,
                        // A fetch (Expires: 0 at once) waits for its counts,
                        // unless they cannot be read.
                        EndReason::Timeout => match (known, sub.last_sent) {
                            (Some(c), _) => Some(c),
                            (None, Some(_)) => None,
                            (None, None) => continue,
                        },
                    };
                    sub.final_sent = true;
                    sub.in_flight = true;
                    return Some(Notify {
                        sub: id,
                        state: NotifyState::Terminated(reason),
                        counts,
                    });
                }
            }
        }
        None
    }

    /// A subscription that is gone (ended or failed): the shell drops its
    /// dialog and saves the mailbox's subscriptions again.
    pub fn poll_removed(&mut self) -> Option<(SubId, MailboxId)> {
        self.removed.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(u: &str) -> MailboxId {
        MailboxId::new(u, "example.com").unwrap()
    }

    fn counts(new: usize, old: usize) -> Counts {
        Counts {
            new,
            old,
            ..Counts::default()
        }
    }

    const LIMITS: Limits = Limits { min: 60, max: 3600 };

    #[test]
    fn grant_follows_the_limits() {
        assert_eq!(grant(LIMITS, Some(0)), Grant::Unsubscribe);
        assert_eq!(grant(LIMITS, Some(59)), Grant::TooBrief { min: 60 });
        assert_eq!(grant(LIMITS, Some(60)), Grant::For(60));
        assert_eq!(grant(LIMITS, Some(90_000)), Grant::For(3600));
        assert_eq!(grant(LIMITS, None), Grant::For(3600));
        let short = Limits { min: 10, max: 600 };
        assert_eq!(grant(short, None), Grant::For(600));
    }

    #[test]
    fn first_notify_waits_for_counts_then_changes_are_sent() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        assert_eq!(s.poll_notify(t0), None, "no NOTIFY without counts");
        s.set_counts(&mb("1001"), counts(0, 0));
        let n = s.poll_notify(t0).unwrap();
        assert_eq!(n.state, NotifyState::Active { expires: 600 });
        assert_eq!(n.counts, Some(counts(0, 0)));
        s.on_outcome(SubId(1), true);
        assert_eq!(s.poll_notify(t0), None);
        // The same counts again: nothing to tell.
        s.set_counts(&mb("1001"), counts(0, 0));
        assert_eq!(s.poll_notify(t0), None);
        s.set_counts(&mb("1001"), counts(1, 0));
        let n = s.poll_notify(t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(n.state, NotifyState::Active { expires: 500 });
        assert_eq!(n.counts, Some(counts(1, 0)));
        // Another mailbox's counts do not concern it.
        s.on_outcome(SubId(1), true);
        s.set_counts(&mb("1002"), counts(5, 0));
        assert_eq!(s.poll_notify(t0), None);
    }

    #[test]
    fn one_notify_in_flight_and_the_newest_counts_win() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.set_counts(&mb("1001"), counts(1, 0));
        assert_eq!(s.poll_notify(t0).unwrap().counts, Some(counts(1, 0)));
        s.set_counts(&mb("1001"), counts(2, 0));
        s.set_counts(&mb("1001"), counts(3, 0));
        assert_eq!(s.poll_notify(t0), None, "one in flight");
        s.on_outcome(SubId(1), true);
        assert_eq!(s.poll_notify(t0).unwrap().counts, Some(counts(3, 0)));
        assert_eq!(s.poll_notify(t0), None);
    }

    #[test]
    fn refresh_renotifies_and_moves_the_expiry() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 100);
        s.set_counts(&mb("1001"), counts(0, 1));
        s.poll_notify(t0).unwrap();
        s.on_outcome(SubId(1), true);
        let t1 = t0 + Duration::from_secs(90);
        assert!(s.refresh(t1, SubId(1), 100));
        s.set_counts(&mb("1001"), counts(0, 1));
        let n = s.poll_notify(t1).unwrap();
        assert_eq!(n.state, NotifyState::Active { expires: 100 });
        s.on_outcome(SubId(1), true);
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(100)));
        s.handle_timeout(t0 + Duration::from_secs(101));
        assert_eq!(s.poll_notify(t1), None, "not expired after the refresh");
        assert!(!s.refresh(t1, SubId(9), 100));
    }

    #[test]
    fn expiry_sends_terminated_and_removes() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 60);
        s.set_counts(&mb("1001"), counts(2, 0));
        s.poll_notify(t0).unwrap();
        s.on_outcome(SubId(1), true);
        s.handle_timeout(t0 + Duration::from_secs(59));
        assert_eq!(s.poll_notify(t0), None);
        s.handle_timeout(t0 + Duration::from_secs(60));
        let n = s.poll_notify(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(n.state, NotifyState::Terminated(EndReason::Timeout));
        assert_eq!(n.state.header_value(), "terminated;reason=timeout");
        assert_eq!(n.counts, Some(counts(2, 0)));
        assert!(s.get(SubId(1)).is_none(), "ending is not active");
        assert_eq!(s.poll_removed(), None);
        s.on_outcome(SubId(1), true);
        assert_eq!(s.poll_removed(), Some((SubId(1), mb("1001"))));
        assert!(s.is_empty() && !s.watches(&mb("1001")));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn unsubscribe_waits_for_the_notify_in_flight() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.set_counts(&mb("1001"), counts(1, 0));
        s.poll_notify(t0).unwrap();
        s.unsubscribe(SubId(1));
        assert_eq!(s.poll_notify(t0), None);
        s.on_outcome(SubId(1), true);
        let n = s.poll_notify(t0).unwrap();
        assert_eq!(n.state, NotifyState::Terminated(EndReason::Timeout));
        s.on_outcome(SubId(1), true);
        assert!(s.is_empty());
    }

    #[test]
    fn a_fetch_waits_for_counts_unless_unreadable() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.unsubscribe(SubId(1));
        assert_eq!(s.poll_notify(t0), None);
        s.set_counts(&mb("1001"), counts(4, 1));
        let n = s.poll_notify(t0).unwrap();
        assert_eq!(n.state, NotifyState::Terminated(EndReason::Timeout));
        assert_eq!(n.counts, Some(counts(4, 1)));

        s.add(t0, SubId(2), mb("1002"), 600);
        s.unsubscribe(SubId(2));
        s.counts_unreadable(&mb("1002"));
        let n = s.poll_notify(t0).unwrap();
        assert_eq!((n.sub, n.counts), (SubId(2), None));
    }

    #[test]
    fn unreadable_counts_send_nothing_to_active_subscriptions() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.counts_unreadable(&mb("1001"));
        assert_eq!(s.poll_notify(t0), None);
    }

    #[test]
    fn a_failed_notify_ends_the_subscription() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.add(t0, SubId(2), mb("1001"), 600);
        s.set_counts(&mb("1001"), counts(1, 0));
        let a = s.poll_notify(t0).unwrap();
        let b = s.poll_notify(t0).unwrap();
        assert_ne!(a.sub, b.sub);
        s.on_outcome(SubId(1), false); // 481 or timeout
        assert_eq!(s.poll_removed(), Some((SubId(1), mb("1001"))));
        s.on_outcome(SubId(2), true);
        assert_eq!(s.len(), 1);
        assert!(s.watches(&mb("1001")));
    }

    #[test]
    fn a_removed_mailbox_ends_with_noresource() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add(t0, SubId(1), mb("1001"), 600);
        s.mailbox_gone(&mb("1001"));
        let n = s.poll_notify(t0).unwrap();
        assert_eq!(n.state, NotifyState::Terminated(EndReason::NoResource));
        assert_eq!(n.state.header_value(), "terminated;reason=noresource");
        assert_eq!(n.counts, None);
        s.on_outcome(SubId(1), false);
        assert_eq!(s.poll_removed(), Some((SubId(1), mb("1001"))));
        assert!(s.is_empty());
    }

    #[test]
    fn restored_subscriptions_expire_at_their_time() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new();
        s.add_until(SubId(7), mb("1001"), t0 + Duration::from_millis(1500));
        s.set_counts(&mb("1001"), counts(0, 0));
        let n = s.poll_notify(t0).unwrap();
        assert_eq!(n.state, NotifyState::Active { expires: 2 });
        s.on_outcome(SubId(7), true);
        s.handle_timeout(t0 + Duration::from_secs(2));
        let n = s.poll_notify(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(n.state, NotifyState::Terminated(EndReason::Timeout));
    }
}
