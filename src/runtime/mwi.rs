//! The message-waiting shell around [`crate::mwi`]: answers SUBSCRIBE,
//! keeps each subscription's dialog, sends the NOTIFYs through the SIP
//! task's transaction layer, reads the counts from the store after every
//! change notice ([`super::ChangeReceiver`]), saves the subscriptions in
//! the store and restores them at start, and sends the unsolicited
//! NOTIFYs to the `ext.mwi_notify` targets.
//!
//! The SIP task owns an [`Mwi`] and hands it SUBSCRIBEs, the outcomes of
//! its NOTIFY transactions, its inputs and its timers. Store work runs on
//! two tasks of its own, each one job at a time, so their results come
//! back in order: the counts reader (a read that starts after a change
//! notice sees that change, so the newest counts always come last) and
//! the saver (the last snapshot of a mailbox is the one on disk).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rsipstack::sip::{parse_uri, Header, Method, Request, Response, Uri, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::admission::{self, InviteDecision, InviteFacts, Refusal};
use crate::destination::{self, Target};
use crate::mwi::{
    self, grant, is_message_summary, summary_body, Backoff, Grant, Limits, Notify, NotifyState,
    SubId, Subscriptions, Unsolicited, UnsolicitedSend,
};
use crate::sip::{self as sipcore, Dialog, Endpoint, Peer, SipError, Transport, TxKey};
use crate::sites::Sites;
use crate::store::{Counts, FsStore, MailboxId, StoreError};

use super::{ChangeReceiver, Shared};

/// Subscriptions one mailbox may have (its phones); more get `403`.
const MAX_PER_MAILBOX: usize = 32;
/// How far a restored dialog's CSeq jumps: more than the NOTIFYs that
/// can go out between the last save and a crash.
const RESTORED_CSEQ_GAP: u32 = 1000;
/// Mailboxes read in one go by the counts reader.
const READ_BATCH: usize = 256;
/// Mailboxes whose peer-site counts one refresh round asks for.
const REFRESH_BATCH: usize = 1000;

/// A subscription as saved in the store (`subscriptions.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Saved {
    dialog: Dialog,
    /// Expiry, wall-clock milliseconds since the Unix epoch.
    expires_unix_ms: u64,
    /// Where the subscriber is.
    transport: Transport,
    addr: SocketAddr,
}

struct Entry {
    mailbox: MailboxId,
    dialog: Dialog,
    peer: Peer,
    expires_wall: SystemTime,
}

/// What a NOTIFY transaction was for.
enum TxOwner {
    Sub(SubId),
    Target(usize, MailboxId),
}

/// A result of the store tasks.
pub(super) enum Input {
    Counts(MailboxId, Result<Counts, StoreError>),
    Restored(Vec<(MailboxId, Vec<Saved>)>),
    Resolved(usize, Option<SocketAddr>),
}

/// An `ext.mwi_notify` target.
struct NotifyTarget {
    /// As configured.
    uri: String,
    user: Option<String>,
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
}

/// The message-waiting state of the SIP task.
pub(super) struct Mwi {
    shared: Arc<Shared>,
    subs: Subscriptions,
    entries: HashMap<SubId, Entry>,
    by_call_id: HashMap<String, Vec<SubId>>,
    unsolicited: Unsolicited,
    targets: Vec<NotifyTarget>,
    txs: HashMap<TxKey, TxOwner>,
    next_sub: u64,
    reads: mpsc::UnboundedSender<MailboxId>,
    saves: mpsc::UnboundedSender<(MailboxId, Vec<Saved>)>,
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    /// The peer sites (replaced on a reload), as the counts reader sees
    /// them.
    sites: Arc<RwLock<Arc<Sites>>>,
    /// Mailboxes whose peer-site counts the reader refreshes.
    refreshes: mpsc::UnboundedSender<Vec<MailboxId>>,
    /// The next refresh of the peer sites' counts of subscribed mailboxes.
    next_refresh: Instant,
    /// Where the next refresh round starts in the list of subscribed
    /// mailboxes (rounds are bounded).
    refresh_from: usize,
}

impl Mwi {
    /// Starts the counts reader (on `changes`), the saver and the target
    /// resolution. The saved subscriptions of the group's domains are
    /// restored when the instance becomes active ([`Mwi::take_over`]).
    pub fn start(shared: Arc<Shared>, changes: ChangeReceiver) -> Mwi {
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (reads, reads_rx) = mpsc::unbounded_channel();
        let (saves, saves_rx) = mpsc::unbounded_channel();
        let (refreshes, refreshes_rx) = mpsc::unbounded_channel();
        let sites = Arc::new(RwLock::new(shared.sites.clone()));
        let next_refresh = Instant::now() + shared.sites.refresh_interval();
        tokio::spawn(read_counts(
            shared.store.clone(),
            sites.clone(),
            changes,
            reads_rx,
            refreshes_rx,
            inputs_tx.clone(),
        ));
        tokio::spawn(save_subscriptions(shared.store.clone(), saves_rx));
        let targets = parse_targets(&shared.role.ext.mwi_notify);
        for (i, t) in targets.iter().enumerate() {
            if t.addr.is_none() {
                let (host, port, tx) = (t.host.clone(), t.port, inputs_tx.clone());
                tokio::spawn(async move {
                    let addr = match tokio::net::lookup_host((host.as_str(), port)).await {
                        Ok(mut addrs) => addrs.next(),
                        Err(e) => {
                            warn!(target = %host, "mwi_notify target does not resolve: {e}");
                            None
                        }
                    };
                    let _ = tx.send(Input::Resolved(i, addr));
                });
            }
        }
        Mwi {
            inputs_tx,
            unsolicited: Unsolicited::new(targets.len(), Backoff::default()),
            shared,
            subs: Subscriptions::new(),
            entries: HashMap::new(),
            by_call_id: HashMap::new(),
            targets,
            txs: HashMap::new(),
            next_sub: 1,
            reads,
            saves,
            inputs,
            next_refresh,
            refresh_from: 0,
            sites,
            refreshes,
        }
    }

    /// This instance became the active one of its group: restore the
    /// group's saved subscriptions (each gets a NOTIFY with the counts).
    pub fn take_over(&mut self) {
        restore(&self.shared, self.inputs_tx.clone());
    }

    /// This instance is no longer active: forget the subscriptions (they
    /// stay saved in the store for the next active instance) and the
    /// NOTIFYs in flight.
    pub fn step_down(&mut self) {
        let n = self.entries.len();
        self.subs = Subscriptions::new();
        self.entries.clear();
        self.by_call_id.clear();
        self.txs.clear();
        if n > 0 {
            info!(
                subscriptions = n,
                "no longer active: subscriptions left to the next active instance"
            );
        }
    }

    /// A new configuration (SIGHUP): the expiry limits follow it.
    pub fn reconfigure(&mut self, shared: Arc<Shared>) {
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = shared.sites.clone();
        self.shared = shared;
    }

    /// The next result of the store tasks.
    pub async fn recv(&mut self) -> Option<Input> {
        self.inputs.recv().await
    }

    /// The next subscription expiry or NOTIFY retry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let refresh = (self.shared.sites.has_any_peers() && !self.entries.is_empty())
            .then_some(self.next_refresh);
        [
            self.subs.poll_timeout(),
            self.unsolicited.poll_timeout(),
            refresh,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers due by `now`.
    pub fn handle_timeout(&mut self, now: Instant, ep: &mut Endpoint) {
        if now >= self.next_refresh {
            self.next_refresh = now + self.shared.sites.refresh_interval();
            self.refresh_remote_counts();
        }
        self.subs.handle_timeout(now);
        self.unsolicited.handle_timeout(now);
        self.pump(now, ep);
    }

    /// Asks the counts reader to refresh the peer sites' counts of the
    /// subscribed mailboxes (a safety net for change notices that did not
    /// arrive), at most [`REFRESH_BATCH`] mailboxes a round, in turn.
    fn refresh_remote_counts(&mut self) {
        let sites = &self.shared.sites;
        let mut all: Vec<MailboxId> = self
            .entries
            .values()
            .map(|e| e.mailbox.clone())
            .filter(|m| sites.has_peers(m.domain()))
            .collect();
        all.sort();
        all.dedup();
        if all.is_empty() {
            return;
        }
        let from = self.refresh_from % all.len();
        let round: Vec<MailboxId> = all
            .iter()
            .cycle()
            .skip(from)
            .take(REFRESH_BATCH.min(all.len()))
            .cloned()
            .collect();
        self.refresh_from = from + round.len();
        let _ = self.refreshes.send(round);
    }

    fn limits(&self) -> Limits {
        let ext = &self.shared.role.ext;
        Limits {
            min: ext.mwi_min_expires,
            max: ext.mwi_max_expires,
        }
    }

    /// A SUBSCRIBE without a To tag: the answer to send (a `200` makes
    /// the subscription; its first NOTIFY follows once the counts are
    /// read).
    pub fn on_subscribe(
        &mut self,
        now: Instant,
        req: &Request,
        from: Peer,
        facts: &dyn InviteFacts,
        contact: &str,
    ) -> Response {
        if let Some(refused) = check_event(req) {
            return refused;
        }
        let id = match subscribed_mailbox(req, facts) {
            Ok(id) => id,
            Err(SubscribeRefusal::Redirect { contacts, domain }) => {
                info!(%domain, "SUBSCRIBE redirected to the owner group");
                let mut r = sipcore::make_response(req, 302, None, None);
                r.headers.push(Header::Contact(contacts.join(", ").into()));
                return r;
            }
            Err(SubscribeRefusal::Refuse(refusal)) => {
                info!(code = refusal.code(), "SUBSCRIBE refused: {refusal}");
                let mut r =
                    sipcore::make_response(req, refusal.code(), Some(refusal.reason()), None);
                r.headers.extend(refusal.headers());
                return r;
            }
        };
        let expires = match requested_expires(req) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let seconds = match grant(self.limits(), expires) {
            Grant::TooBrief { min } => return too_brief(req, min),
            Grant::For(s) => Some(s),
            Grant::Unsubscribe => None,
        };
        if self.subs.of_mailbox(&id).len() >= MAX_PER_MAILBOX {
            warn!(mailbox = %id, "SUBSCRIBE refused: too many subscriptions");
            return sipcore::make_response(req, 403, Some("Too many subscriptions"), None);
        }
        let tag = sipcore::new_tag();
        let dialog = match Dialog::new_uas(req, &tag, &format!("<{contact}>")) {
            Ok(d) => d,
            Err(e) => {
                info!(mailbox = %id, "SUBSCRIBE refused: {e}");
                return sipcore::make_response(req, 400, Some("Bad Request"), None);
            }
        };
        let sub = SubId(self.next_sub);
        self.next_sub += 1;
        let granted = seconds.unwrap_or(0);
        self.by_call_id
            .entry(dialog.call_id().to_owned())
            .or_default()
            .push(sub);
        self.entries.insert(
            sub,
            Entry {
                mailbox: id.clone(),
                dialog,
                peer: from,
                expires_wall: SystemTime::now() + secs(granted),
            },
        );
        self.subs.add(now, sub, id.clone(), granted);
        if seconds.is_none() {
            // A fetch: one NOTIFY with the counts, terminated.
            info!(mailbox = %id, "message-summary fetched (Expires: 0)");
            self.subs.unsubscribe(sub);
        } else {
            info!(mailbox = %id, expires = granted, peer = %from.addr, "message-summary subscription accepted");
            self.save(&id);
        }
        let _ = self.reads.send(id);
        let mut ok = sipcore::make_response(req, 200, None, Some(&tag));
        ok.headers
            .push(Header::Contact(format!("<{contact}>").into()));
        ok.headers.push(Header::Expires(granted.to_string().into()));
        ok
    }

    /// A SUBSCRIBE with a To tag: a refresh or `Expires: 0` of one of our
    /// subscriptions (matched by Call-ID and both tags), else `None` (not
    /// ours: the SIP task answers `481`).
    pub fn on_in_dialog(&mut self, now: Instant, req: &Request, call_id: &str) -> Option<Response> {
        let sub = self
            .by_call_id
            .get(call_id)?
            .iter()
            .copied()
            .find(|s| self.entries.get(s).is_some_and(|e| e.dialog.matches(req)))?;
        let checked = self.entries.get_mut(&sub)?.dialog.on_remote_request(req);
        match checked {
            Ok(()) => {}
            Err(SipError::CSeqOutOfOrder { got, last }) => {
                info!(%call_id, got, last, "SUBSCRIBE with an old CSeq refused");
                return Some(sipcore::make_response(
                    req,
                    500,
                    Some("CSeq Out of Order"),
                    None,
                ));
            }
            Err(e) => {
                info!(%call_id, "in-dialog SUBSCRIBE refused: {e}");
                return Some(sipcore::make_response(req, 400, Some("Bad Request"), None));
            }
        }
        if let Some(refused) = check_event(req) {
            return Some(refused);
        }
        let Some((mailbox, _)) = self.subs.get(sub) else {
            // Ending already: the terminated NOTIFY is on its way.
            return Some(sipcore::make_response(
                req,
                481,
                Some("Subscription Does Not Exist"),
                None,
            ));
        };
        let mailbox = mailbox.clone();
        let expires = match requested_expires(req) {
            Ok(e) => e,
            Err(r) => return Some(r),
        };
        let granted = match grant(self.limits(), expires) {
            Grant::TooBrief { min } => return Some(too_brief(req, min)),
            Grant::Unsubscribe => {
                info!(%mailbox, "message-summary subscription ended (Expires: 0)");
                self.subs.unsubscribe(sub);
                self.save(&mailbox);
                0
            }
            Grant::For(s) => {
                self.subs.refresh(now, sub, s);
                if let Some(e) = self.entries.get_mut(&sub) {
                    e.expires_wall = SystemTime::now() + secs(s);
                }
                debug!(%mailbox, expires = s, "message-summary subscription refreshed");
                self.save(&mailbox);
                s
            }
        };
        let _ = self.reads.send(mailbox);
        let mut ok = sipcore::make_response(req, 200, None, None);
        ok.headers.push(Header::Expires(granted.to_string().into()));
        Some(ok)
    }

    /// A final response (or `408` for a timeout) to a client transaction;
    /// ignored unless it is one of our NOTIFYs.
    pub fn on_response(&mut self, now: Instant, tx: TxKey, code: u16, ep: &mut Endpoint) {
        if code < 200 {
            return;
        }
        let Some(owner) = self.txs.remove(&tx) else {
            return;
        };
        let ok = (200..300).contains(&code);
        self.shared.metrics.mwi_notify(ok);
        match owner {
            TxOwner::Sub(sub) => {
                if !ok {
                    if let Some(e) = self.entries.get(&sub) {
                        info!(mailbox = %e.mailbox, code, "NOTIFY failed: subscription ended");
                    }
                }
                self.subs.on_outcome(sub, ok);
            }
            TxOwner::Target(target, mailbox) => {
                if !ok {
                    let uri = self.targets.get(target).map_or("", |t| t.uri.as_str());
                    info!(target = uri, %mailbox, code, "unsolicited NOTIFY failed: retrying");
                }
                self.unsolicited.on_outcome(now, target, &mailbox, ok);
            }
        }
        self.pump(now, ep);
    }

    /// A result of the store tasks.
    pub fn on_input(&mut self, now: Instant, input: Input, ep: &mut Endpoint) {
        match input {
            Input::Counts(mailbox, Ok(counts)) => {
                self.subs.set_counts(&mailbox, counts);
                self.unsolicited.set_counts(&mailbox, counts);
            }
            Input::Counts(mailbox, Err(StoreError::NotFound { .. })) => {
                if self.subs.watches(&mailbox) {
                    info!(%mailbox, "mailbox gone: its subscriptions end");
                }
                self.subs.mailbox_gone(&mailbox);
            }
            Input::Counts(mailbox, Err(e)) => {
                warn!(%mailbox, "cannot read the message counts, no NOTIFY sent: {e}");
                self.subs.counts_unreadable(&mailbox);
            }
            Input::Restored(list) => self.restored(now, list),
            Input::Resolved(i, addr) => {
                if let Some(t) = self.targets.get_mut(i) {
                    t.addr = addr;
                }
            }
        }
        self.pump(now, ep);
    }

    fn restored(&mut self, now: Instant, list: Vec<(MailboxId, Vec<Saved>)>) {
        let wall = SystemTime::now();
        let mut count = 0usize;
        for (mailbox, saved) in list {
            for s in saved {
                let left = (UNIX_EPOCH + Duration::from_millis(s.expires_unix_ms))
                    .duration_since(wall)
                    .unwrap_or_default();
                let known = self.by_call_id.get(s.dialog.call_id()).is_some_and(|subs| {
                    subs.iter().any(|x| {
                        self.entries
                            .get(x)
                            .is_some_and(|e| e.dialog.local_tag() == s.dialog.local_tag())
                    })
                });
                // Expired ones are dropped; so are TCP ones (the
                // connection is gone, vmail does not connect out).
                if left.is_zero() || known || s.transport != Transport::Udp {
                    continue;
                }
                let mut dialog = s.dialog;
                // The last save may have missed the last NOTIFYs.
                dialog.advance_local_cseq(RESTORED_CSEQ_GAP);
                // Saved by this or another instance of the group: the
                // NOTIFYs carry this instance's address from now on.
                dialog.set_local_contact(&self.local_contact());
                let sub = SubId(self.next_sub);
                self.next_sub += 1;
                self.by_call_id
                    .entry(dialog.call_id().to_owned())
                    .or_default()
                    .push(sub);
                self.entries.insert(
                    sub,
                    Entry {
                        mailbox: mailbox.clone(),
                        dialog,
                        peer: Peer::udp(s.addr),
                        expires_wall: wall + left,
                    },
                );
                self.subs.add_until(sub, mailbox.clone(), now + left);
                count += 1;
            }
            // Saved again without the expired ones; counts re-NOTIFYed.
            self.save(&mailbox);
            let _ = self.reads.send(mailbox);
        }
        info!(
            subscriptions = count,
            "message-summary subscriptions restored"
        );
    }

    /// Sends what the state machines have ready, and drops what ended.
    /// A passive instance sends nothing.
    fn pump(&mut self, now: Instant, ep: &mut Endpoint) {
        if !self.shared.cluster.is_active() {
            return;
        }
        while let Some(n) = self.subs.poll_notify(now) {
            self.send_notify(now, n, ep);
        }
        while let Some((sub, mailbox)) = self.subs.poll_removed() {
            if let Some(e) = self.entries.remove(&sub) {
                let cid = e.dialog.call_id().to_owned();
                if let Some(v) = self.by_call_id.get_mut(&cid) {
                    v.retain(|s| *s != sub);
                    if v.is_empty() {
                        self.by_call_id.remove(&cid);
                    }
                }
            }
            self.save(&mailbox);
        }
        while let Some(s) = self.unsolicited.poll_send() {
            self.send_unsolicited(now, s, ep);
        }
        while let Some(g) = self.unsolicited.poll_given_up() {
            let uri = self.targets.get(g.target).map_or("", |t| t.uri.as_str());
            warn!(target = uri, mailbox = %g.mailbox, "unsolicited NOTIFY given up after the last retry");
        }
    }

    fn send_notify(&mut self, now: Instant, n: Notify, ep: &mut Endpoint) {
        let Some(e) = self.entries.get_mut(&n.sub) else {
            self.subs.on_outcome(n.sub, false);
            return;
        };
        let built = e.dialog.make_request(Method::Notify).map(|mut req| {
            req.headers.push(Header::Event(mwi::EVENT.into()));
            req.headers
                .push(Header::SubscriptionState(n.state.header_value().into()));
            if let Some(c) = n.counts {
                let body = summary_body(&account(&e.mailbox), &c);
                sipcore::set_request_body(&mut req, mwi::CONTENT_TYPE, body.into_bytes());
            }
            req
        });
        let mailbox = e.mailbox.clone();
        let sent = built.and_then(|req| ep.send_request(now, req, e.peer));
        match sent {
            Ok(tx) => {
                debug!(%mailbox, state = %n.state.header_value(), counts = ?n.counts, "NOTIFY sent");
                self.txs.insert(tx, TxOwner::Sub(n.sub));
                if matches!(n.state, NotifyState::Active { .. }) {
                    // The dialog's CSeq moved: saved, so a restart goes on
                    // from there.
                    self.save(&mailbox);
                }
            }
            Err(e) => {
                warn!(%mailbox, "cannot send NOTIFY: {e}");
                self.shared.metrics.mwi_notify(false);
                self.subs.on_outcome(n.sub, false);
            }
        }
    }

    fn send_unsolicited(&mut self, now: Instant, s: UnsolicitedSend, ep: &mut Endpoint) {
        let Some(target) = self.targets.get(s.target) else {
            return;
        };
        let sent = match target.addr {
            Some(addr) => {
                let req = unsolicited_request(target, &s, &self.local_contact());
                req.and_then(|req| ep.send_request(now, req, Peer::udp(addr)))
            }
            None => Err(SipError::BadHeader("Request-URI")),
        };
        match sent {
            Ok(tx) => {
                debug!(target = %target.uri, mailbox = %s.mailbox, counts = ?s.counts, "unsolicited NOTIFY sent");
                self.txs.insert(tx, TxOwner::Target(s.target, s.mailbox));
            }
            Err(e) => {
                debug!(target = %target.uri, "unsolicited NOTIFY not sent: {e}");
                self.shared.metrics.mwi_notify(false);
                self.unsolicited
                    .on_outcome(now, s.target, &s.mailbox, false);
            }
        }
    }

    fn local_contact(&self) -> String {
        let host = match self.shared.role.addr {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("<sip:vmail@{host}:{}>", self.shared.role.ext.sip_port)
    }

    /// Saves the active subscriptions of `mailbox` (in the saver's order).
    fn save(&self, mailbox: &MailboxId) {
        let list: Vec<Saved> = self
            .subs
            .of_mailbox(mailbox)
            .into_iter()
            .filter(|s| self.subs.get(*s).is_some())
            .filter_map(|s| self.entries.get(&s))
            .map(|e| Saved {
                dialog: e.dialog.clone(),
                expires_unix_ms: e
                    .expires_wall
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                transport: e.peer.transport,
                addr: e.peer.addr,
            })
            .collect();
        let _ = self.saves.send((mailbox.clone(), list));
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The mailbox's address of record, the body's `Message-Account`.
fn account(id: &MailboxId) -> String {
    format!("sip:{}@{}", id.user(), id.domain())
}

/// `489` with `Allow-Events` unless the Event is `message-summary`.
fn check_event(req: &Request) -> Option<Response> {
    let event = req.headers.iter().find_map(|h| match h {
        Header::Event(e) => Some(e.value().to_owned()),
        _ => None,
    });
    if event.as_deref().is_some_and(is_message_summary) {
        return None;
    }
    debug!(event = ?event, "SUBSCRIBE for an unknown event package");
    let mut r = sipcore::make_response(req, 489, Some("Bad Event"), None);
    r.headers.push(Header::Other(
        "Allow-Events".into(),
        sipcore::ALLOW_EVENTS.into(),
    ));
    Some(r)
}

/// The `Expires` asked for (`None`: absent); `400` when it is no number.
fn requested_expires(req: &Request) -> Result<Option<u32>, Response> {
    let raw = req.headers.iter().find_map(|h| match h {
        Header::Expires(e) => Some(e.value().trim().to_owned()),
        _ => None,
    });
    match raw {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            Err(_) => Err(sipcore::make_response(req, 400, Some("Bad Expires"), None)),
        },
    }
}

fn too_brief(req: &Request, min: u32) -> Response {
    let mut r = sipcore::make_response(req, 423, Some("Interval Too Brief"), None);
    r.headers.push(Header::MinExpires(min.to_string().into()));
    r
}

enum SubscribeRefusal {
    Redirect {
        contacts: Vec<String>,
        domain: String,
    },
    Refuse(Refusal),
}

/// The mailbox a SUBSCRIBE is for, chosen as for an INVITE (the
/// Request-URI user, the domain of the Request-URI or To), and whether
/// this group serves it: the same `302`/`404` as an INVITE otherwise.
fn subscribed_mailbox(
    req: &Request,
    facts: &dyn InviteFacts,
) -> Result<MailboxId, SubscribeRefusal> {
    let refuse = |r| Err(SubscribeRefusal::Refuse(r));
    let mailbox = match destination::select(req, &[]) {
        Ok(Target::Deposit { mailbox, .. }) => mailbox,
        Ok(_) => return refuse(Refusal::InvalidMailbox("no mailbox user".into())),
        Err(e) => return refuse(Refusal::InvalidMailbox(e.to_string())),
    };
    match admission::not_ours(facts, &mailbox.user, &mailbox.domain) {
        None => {}
        Some(InviteDecision::Redirect { contacts, domain }) => {
            return Err(SubscribeRefusal::Redirect { contacts, domain })
        }
        Some(InviteDecision::Refuse(r)) => return refuse(r),
        Some(InviteDecision::Accept(_)) => {}
    }
    let Ok(id) = MailboxId::new(&mailbox.user, &mailbox.domain) else {
        return refuse(Refusal::InvalidMailbox(mailbox.to_string()));
    };
    match facts.mailbox(&id) {
        Ok(Some(_)) => Ok(id),
        Ok(None) => refuse(Refusal::NoSuchMailbox(id)),
        Err(e) => refuse(Refusal::StoreUnavailable(format!("{id}: {e}"))),
    }
}

/// The targets of `ext.mwi_notify` (validated by the configuration:
/// `sip:` URIs over UDP); IP addresses need no resolution.
fn parse_targets(list: &[String]) -> Vec<NotifyTarget> {
    list.iter()
        .filter_map(|raw| {
            let uri = match parse_uri(raw.as_str()) {
                Ok(u) => u,
                Err(e) => {
                    warn!(target = %raw, "mwi_notify target ignored: {e}");
                    return None;
                }
            };
            let host = uri.host_with_port.host.to_string();
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.host_with_port.port.map_or(5060, |p| p.value());
            let addr = host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port));
            Some(NotifyTarget {
                uri: raw.clone(),
                user: uri.user().map(str::to_owned),
                host,
                port,
                addr,
            })
        })
        .collect()
}

/// An unsolicited NOTIFY: out of any dialog, a fresh Call-ID and From
/// tag, To the mailbox's AOR, the Request-URI the target's (with the
/// mailbox user when the target names none).
fn unsolicited_request(
    target: &NotifyTarget,
    s: &UnsolicitedSend,
    contact: &str,
) -> Result<Request, SipError> {
    use rsipstack::sip::headers::untyped::{CSeq, CallId, Contact, From, To};
    let user = target.user.as_deref().unwrap_or(s.mailbox.user());
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let uri: Uri = parse_uri(format!("sip:{user}@{host}:{}", target.port).as_str())
        .map_err(|_| SipError::BadHeader("Request-URI"))?;
    let aor = account(&s.mailbox);
    let mut headers = rsipstack::sip::Headers::default();
    headers.push(Header::From(From::new(format!(
        "<{aor}>;tag={}",
        sipcore::new_tag()
    ))));
    headers.push(Header::To(To::new(format!("<{aor}>"))));
    headers.push(Header::CallId(CallId::new(format!(
        "{}{}",
        sipcore::new_tag(),
        sipcore::new_tag()
    ))));
    headers.push(Header::CSeq(CSeq::new("1 NOTIFY")));
    headers.push(Header::Contact(Contact::new(contact)));
    headers.push(Header::Event(mwi::EVENT.into()));
    let mut req = Request {
        method: Method::Notify,
        uri,
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    let body = summary_body(&aor, &s.counts);
    sipcore::set_request_body(&mut req, mwi::CONTENT_TYPE, body.into_bytes());
    Ok(req)
}

/// Reads the counts of every mailbox that changed (or that a subscription
/// needs), one batch at a time, on a blocking thread.
async fn read_counts(
    store: FsStore,
    sites: Arc<RwLock<Arc<Sites>>>,
    mut changes: ChangeReceiver,
    mut asks: mpsc::UnboundedReceiver<MailboxId>,
    mut refreshes: mpsc::UnboundedReceiver<Vec<MailboxId>>,
    out: mpsc::UnboundedSender<Input>,
) {
    let current = || sites.read().unwrap_or_else(|e| e.into_inner()).clone();
    loop {
        let mut batch = tokio::select! {
            Some(m) = changes.recv() => vec![m],
            Some(m) = asks.recv() => vec![m],
            Some(list) = refreshes.recv() => {
                // only the mailboxes whose peer counts changed are read again
                let changed = current().refresh(&list).await;
                if changed.is_empty() {
                    continue;
                }
                changed
            }
            else => return,
        };
        super::fill_batch(&mut batch, READ_BATCH, || {
            changes.try_recv().or_else(|| asks.try_recv().ok())
        });
        let read = super::counts_of(&store, batch).await;
        let sites = current();
        match read {
            Ok(results) => {
                // plus the peer sites' (their last known counts), asked for
                // the whole batch at once
                let results = futures_util::future::join_all(results.into_iter().map(|(m, c)| {
                    let sites = &sites;
                    async move {
                        let c = match c {
                            Ok(mut c) if sites.has_peers(m.domain()) => {
                                let r = sites.remote_counts(&m).await;
                                c.new += r.new;
                                c.old += r.old;
                                c.urgent_new += r.urgent_new;
                                c.urgent_old += r.urgent_old;
                                Ok(c)
                            }
                            other => other,
                        };
                        (m, c)
                    }
                }))
                .await;
                for (m, c) in results {
                    if out.send(Input::Counts(m, c)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => warn!("message counts reader failed: {e}"),
        }
    }
}

/// Writes the subscriptions of each mailbox, the newest snapshot last.
async fn save_subscriptions(
    store: FsStore,
    mut saves: mpsc::UnboundedReceiver<(MailboxId, Vec<Saved>)>,
) {
    while let Some(first) = saves.recv().await {
        // The newest snapshot of each mailbox in this batch.
        let mut batch: Vec<(MailboxId, Vec<Saved>)> = vec![first];
        while let Ok((m, list)) = saves.try_recv() {
            match batch.iter_mut().find(|(b, _)| *b == m) {
                Some(slot) => slot.1 = list,
                None => batch.push((m, list)),
            }
            if batch.len() >= READ_BATCH {
                break;
            }
        }
        let store = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            for (m, list) in batch {
                match store.save_subscriptions(&m, &list) {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => warn!(mailbox = %m, "cannot save the subscriptions: {e}"),
                }
            }
        })
        .await;
        if let Err(e) = done {
            warn!("subscription saver failed: {e}");
        }
    }
}

/// Loads the saved subscriptions of the group's domains in the
/// background; they come back as [`Input::Restored`].
fn restore(shared: &Shared, out: mpsc::UnboundedSender<Input>) {
    let store = shared.store.clone();
    let table = shared.routing.clone();
    let group = shared.role.group;
    tokio::task::spawn_blocking(move || {
        let ours = |d: &str| table.owner(d).map(|o| o.group()) == Some(group);
        let mailboxes = match store.mailboxes_with_subscriptions(&ours) {
            Ok(m) => m,
            Err(e) => {
                warn!("cannot list the saved subscriptions: {e}");
                return;
            }
        };
        let mut list = Vec::new();
        for m in mailboxes {
            match store.subscriptions::<Saved>(&m) {
                Ok(saved) => list.push((m, saved)),
                Err(e) => warn!(mailbox = %m, "saved subscriptions not restored: {e}"),
            }
        }
        let _ = out.send(Input::Restored(list));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Counts;

    fn request(extra: &str) -> Request {
        let text = format!(
            "SUBSCRIBE sip:1001@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs1\r\n\
             From: <sip:1001@example.com>;tag=a\r\n\
             To: <sip:1001@example.com>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:1001@192.0.2.1>\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_bytes()).unwrap()
    }

    #[test]
    fn event_and_expires_are_checked() {
        assert!(check_event(&request("Event: message-summary\r\n")).is_none());
        let r = check_event(&request("Event: presence\r\n")).unwrap();
        assert_eq!(r.status_code.code(), 489);
        assert!(r.to_string().contains("Allow-Events: message-summary"));
        assert_eq!(check_event(&request("")).unwrap().status_code.code(), 489);
        assert_eq!(requested_expires(&request("")).unwrap(), None);
        assert_eq!(
            requested_expires(&request("Expires: 120\r\n")).unwrap(),
            Some(120)
        );
        assert_eq!(
            requested_expires(&request("Expires: 99999999999\r\n")).unwrap(),
            Some(u32::MAX)
        );
        let bad = requested_expires(&request("Expires: soon\r\n")).unwrap_err();
        assert_eq!(bad.status_code.code(), 400);
        let brief = too_brief(&request(""), 60);
        assert_eq!(brief.status_code.code(), 423);
        assert!(brief.to_string().contains("Min-Expires: 60"));
    }

    #[test]
    fn targets_and_the_unsolicited_notify() {
        let t = parse_targets(&[
            "sip:192.0.2.7".to_string(),
            "sip:mwi@192.0.2.8:5070;transport=udp".to_string(),
            "sip:pbx.example.com:5062".to_string(),
        ]);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].addr, Some("192.0.2.7:5060".parse().unwrap()));
        assert_eq!(t[1].addr, Some("192.0.2.8:5070".parse().unwrap()));
        assert_eq!(t[1].user.as_deref(), Some("mwi"));
        assert_eq!((t[2].addr, t[2].port), (None, 5062));
        let send = UnsolicitedSend {
            target: 0,
            mailbox: MailboxId::new("1001", "example.com").unwrap(),
            counts: Counts {
                new: 1,
                ..Counts::default()
            },
        };
        let req = unsolicited_request(&t[0], &send, "<sip:vmail@192.0.2.10:5060>").unwrap();
        let text = req.to_string();
        assert!(
            text.starts_with("NOTIFY sip:1001@192.0.2.7:5060 SIP/2.0"),
            "{text}"
        );
        assert!(text.contains("To: <sip:1001@example.com>\r\n"), "{text}");
        assert!(text.contains("Event: message-summary"), "{text}");
        assert!(text.contains("Content-Type: application/simple-message-summary"));
        assert!(text.ends_with("Voice-Message: 1/0 (0/0)\r\n"), "{text}");
        let req = unsolicited_request(&t[1], &send, "<sip:vmail@192.0.2.10:5060>").unwrap();
        assert!(req
            .to_string()
            .starts_with("NOTIFY sip:mwi@192.0.2.8:5070 SIP/2.0"));
    }
}
