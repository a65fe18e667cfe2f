//! The SIP task: owns the transaction layer ([`Endpoint`]), the UDP socket
//! and the TCP connections' channels, decides what to do with each request
//! (SPEC §3, §5) and starts a driver per answered call (deposit or menu).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::{Header, Method, Request, Response};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::admission::{
    self, Accepted, CallKind, DomainOwner, InviteDecision, InviteFacts, InviteInput, Refusal,
};
use crate::call::DepositLimits;
use crate::destination::Cause;
use crate::ivr::{Menu, MenuConfig};
use crate::media::{Codec as MediaCodec, RtpPacketizer, RxConfig, SrtpRx, SrtpTx};
use crate::sdp::{self, Codec, Negotiated};
use crate::sip::{
    self as sipcore, Dialog, Endpoint, Event, Peer, RequestInfo, SipError, Transmit, Transport,
    TxKey,
};
use crate::store::{MailboxId, MailboxSettings, RecordingInfo, StoreError};

use super::media_io::RtpSocket;

use super::call_messages::{CallCommand, CallEvent};
use super::cluster::ClusterEvent;
use super::deposit_driver::{self, CallSetup, LoginSetup};
use super::menu_driver::{self, MenuSetup};
use super::mwi::Mwi;
use super::pacer::{PacerSlot, PlaybackDone, RemoteAddr};
use super::plan::DepositPlan;
use super::tcp::TcpConns;
use super::Shared;
use crate::metrics;

/// Messages into the SIP task from the TCP connections.
#[derive(Debug)]
pub enum Inbound {
    /// A framed SIP message from a TCP connection.
    Message { peer: Peer, bytes: Vec<u8> },
}

struct CallEntry {
    call_id: String,
    dialog: Dialog,
    peer: Peer,
    invite_tx: TxKey,
    /// The CSeq number of the INVITE that made the call.
    invite_cseq: u32,
    commands: mpsc::UnboundedSender<CallCommand>,
    port: u16,
    local_sdp: String,
    sdp_version: u64,
    codec: Codec,
    /// Set until the 200 is sent (answer delay).
    pending: Option<Box<PendingAnswer>>,
    /// The call's kind and its INVITE's arrival, for the metrics.
    metric_kind: metrics::CallKind,
    invited: Instant,
    /// A transfer (REFER) in progress: its client transaction until the
    /// final response.
    transfer: Option<Transfer>,
    /// SRTP (SDES): the offer's line answered and our own key.
    srtp: Option<(sdp::SdesChoice, sdp::SrtpKey)>,
}

/// A REFER vmail sent for a call.
struct Transfer {
    /// The REFER's client transaction, until its final response.
    refer_tx: Option<TxKey>,
}

/// The call's media and channels, handed to its driver.
struct CallIo {
    socket: RtpSocket,
    remote: RemoteAddr,
    slot: PacerSlot,
    done_rx: mpsc::UnboundedReceiver<PlaybackDone>,
    commands: mpsc::UnboundedReceiver<CallCommand>,
    srtp: Option<SrtpRx>,
}

/// The driver a call gets once answered.
enum Driver {
    Deposit(Box<CallSetup>),
    Menu(Box<MenuSetup>),
}

impl Driver {
    fn slot(&self) -> &PacerSlot {
        match self {
            Driver::Deposit(s) => &s.slot,
            Driver::Menu(s) => &s.slot,
        }
    }
}

struct PendingAnswer {
    setup: Driver,
    response: Response,
    invite: Request,
}

/// The SIP task.
pub struct SipServer {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    udp: Arc<UdpSocket>,
    tcp: TcpConns,
    inbound: mpsc::Receiver<Inbound>,
    /// New configurations (SIGHUP); calls in progress keep theirs.
    reload: mpsc::UnboundedReceiver<Arc<Shared>>,
    events_tx: mpsc::UnboundedSender<CallEvent>,
    events: mpsc::UnboundedReceiver<CallEvent>,
    calls: HashMap<u64, CallEntry>,
    /// Calls by Call-ID; several dialogs may share one (RFC 3261 §12: a
    /// dialog is the Call-ID and both tags).
    by_call_id: HashMap<String, Vec<u64>>,
    by_invite_tx: HashMap<TxKey, u64>,
    /// REFERs in progress, by client transaction.
    refers: HashMap<TxKey, u64>,
    answers_due: BTreeSet<(Instant, u64)>,
    next_call: u64,
    shutting_down: bool,
    /// Message-waiting subscriptions and NOTIFYs.
    mwi: Mwi,
    /// Role changes of the group's lease.
    cluster: mpsc::UnboundedReceiver<ClusterEvent>,
    /// The takeover work that must precede serving (the demo mailboxes)
    /// is done and the instance has not stepped down since.
    serving: bool,
}

impl SipServer {
    /// A server on bound sockets.
    pub fn new(
        shared: Arc<Shared>,
        udp: Arc<UdpSocket>,
        tcp: TcpConns,
        inbound: mpsc::Receiver<Inbound>,
        reload: mpsc::UnboundedReceiver<Arc<Shared>>,
        mwi: Mwi,
        cluster: mpsc::UnboundedReceiver<ClusterEvent>,
    ) -> Self {
        let local = SocketAddr::new(shared.role.addr, shared.role.ext.sip_port);
        let mut endpoint_cfg = sipcore::EndpointConfig::new(local);
        endpoint_cfg.tls_port = shared.role.ext.sip_tls_port;
        let endpoint = Endpoint::new(endpoint_cfg);
        let (events_tx, events) = mpsc::unbounded_channel();
        SipServer {
            shared,
            endpoint,
            udp,
            tcp,
            inbound,
            reload,
            events_tx,
            events,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            by_invite_tx: HashMap::new(),
            refers: HashMap::new(),
            answers_due: BTreeSet::new(),
            next_call: 1,
            shutting_down: false,
            mwi,
            cluster,
            serving: false,
        }
    }

    /// Serves until `shutdown` flips, then hangs up every call, waits for
    /// them to end (at most `grace`) and returns.
    pub async fn serve(mut self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut buf = vec![0u8; 65536];
        let mut drain_deadline: Option<Instant> = None;
        loop {
            self.flush();
            if let Some(deadline) = drain_deadline {
                if self.calls.is_empty() || Instant::now() >= deadline {
                    if !self.calls.is_empty() {
                        warn!(calls = self.calls.len(), "grace period over; calls left");
                    }
                    return;
                }
            }
            let next = [
                self.endpoint.poll_timeout().map(Instant::from_std),
                self.answers_due.first().map(|(t, _)| *t),
                self.mwi.poll_timeout().map(Instant::from_std),
                drain_deadline,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        if let Some(bytes) = buf.get(..n) {
                            let peer = Peer { transport: Transport::Udp, addr: from, conn: None };
                            self.endpoint.handle_input(Instant::now().into_std(), peer, bytes);
                        }
                    }
                    Err(e) => debug!("sip udp recv: {e}"),
                },
                msg = self.inbound.recv() => {
                    if let Some(Inbound::Message { peer, bytes }) = msg {
                        self.endpoint.handle_input(Instant::now().into_std(), peer, &bytes);
                    }
                }
                Some(shared) = self.reload.recv() => {
                    self.mwi.reconfigure(shared.clone());
                    self.shared = shared;
                }
                Some(ev) = self.cluster.recv() => self.on_cluster(ev),
                Some(input) = self.mwi.recv() => {
                    self.mwi.on_input(Instant::now().into_std(), input, &mut self.endpoint);
                }
                ev = self.events.recv() => {
                    if let Some(ev) = ev {
                        self.on_call_event(ev);
                    }
                }
                _ = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now.into_std());
                    self.answer_due(now);
                    self.mwi.handle_timeout(now.into_std(), &mut self.endpoint);
                }
                changed = shutdown.changed(), if drain_deadline.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        info!(calls = self.calls.len(), "shutting down: hanging up calls");
                        self.shutting_down = true;
                        let ids: Vec<u64> = self.calls.keys().copied().collect();
                        for id in ids {
                            // Answered calls get a BYE; their recordings are stored.
                            self.hang_up_call(id, true);
                        }
                        drain_deadline = Some(Instant::now() + grace);
                    }
                }
            }
            self.process_events();
        }
    }

    /// The lease made this instance active, or took the role away.
    fn on_cluster(&mut self, ev: ClusterEvent) {
        match ev {
            ClusterEvent::BecameActive { epoch } => {
                super::take_over(&self.shared, epoch);
                self.mwi.take_over();
                self.serving = true;
            }
            ClusterEvent::SteppedDown => {
                self.serving = false;
                // The store refuses this instance's writes now: its calls
                // cannot be stored here. Their recordings stay in tmp/ for
                // the next active instance to recover.
                if !self.calls.is_empty() {
                    warn!(
                        calls = self.calls.len(),
                        "no longer active: hanging up the calls in progress"
                    );
                }
                let ids: Vec<u64> = self.calls.keys().copied().collect();
                for id in ids {
                    self.hang_up_call(id, true);
                }
                self.mwi.step_down();
            }
        }
    }

    fn flush(&mut self) {
        while let Some(Transmit { to, bytes }) = self.endpoint.poll_transmit() {
            match to.transport {
                Transport::Udp => {
                    if let Err(e) = self.udp.try_send_to(&bytes, to.addr) {
                        debug!(to = %to.addr, "sip udp send: {e}");
                    }
                }
                Transport::Tcp | Transport::Tls => self.tcp.send(&to, bytes),
            }
        }
    }

    fn process_events(&mut self) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::Request {
                    tx,
                    request,
                    from,
                    info,
                } => {
                    self.shared.metrics.sip_request(&request.method);
                    self.on_request(tx, request, from, info);
                }
                // The ACK of our 2xx: the endpoint stopped retransmitting.
                Event::Ack { request, from } => {
                    self.shared.metrics.sip_request(&request.method);
                    self.on_ack(&request, from)
                }
                Event::Cancel { invite_tx } => {
                    self.shared.metrics.sip_request(&Method::Cancel);
                    self.on_cancel(invite_tx)
                }
                Event::AckTimeout { tx } => {
                    if let Some(&id) = self.by_invite_tx.get(&tx) {
                        warn!(call = id, "no ACK for the 200: ending the call");
                        self.hang_up_call(id, true);
                    }
                }
                // Outcomes of our NOTIFYs (BYEs are fire and forget).
                Event::Response { tx, response } => {
                    let now = Instant::now().into_std();
                    let code = response.status_code.code();
                    if self.refers.contains_key(&tx) {
                        self.on_refer_response(tx, code);
                    } else {
                        self.mwi.on_response(now, tx, code, &mut self.endpoint);
                    }
                }
                Event::RequestTimeout { tx } => {
                    let now = Instant::now().into_std();
                    if self.refers.contains_key(&tx) {
                        self.on_refer_response(tx, 408);
                    } else {
                        self.mwi.on_response(now, tx, 408, &mut self.endpoint);
                    }
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
            self.flush();
        }
    }

    fn respond(&mut self, tx: TxKey, response: Response) {
        let code = response.status_code.code();
        if code >= 200 {
            self.shared.metrics.sip_response_sent(&response);
        }
        if let Err(e) = self
            .endpoint
            .respond(Instant::now().into_std(), tx, response)
        {
            debug!(code, "response not sent: {e}");
        }
    }

    fn reply(&mut self, tx: TxKey, req: &Request, code: u16, reason: Option<&str>) {
        let resp = sipcore::make_response(req, code, reason, None);
        self.respond(tx, resp);
    }

    fn on_request(&mut self, tx: TxKey, req: Request, from: Peer, info: RequestInfo) {
        if info.to_tag.is_some() && req.method == Method::Subscribe {
            let now = Instant::now().into_std();
            if let Some(resp) = self.mwi.on_in_dialog(now, &req, &info.call_id) {
                return self.respond(tx, resp);
            }
        }
        if info.to_tag.is_some() && !matches!(req.method, Method::Ack | Method::Cancel) {
            return self.on_in_dialog(tx, req, info.call_id);
        }
        match req.method {
            Method::Invite => self.on_invite(tx, req, from, info),
            Method::Options => {
                // A passive instance answers 503, so that a proxy's health
                // probe (Kamailio's dispatcher, an SBC) sends it no calls.
                let resp = if self.serving && self.shared.cluster.is_active() {
                    sipcore::options_response(&req, None)
                } else {
                    let mut r = sipcore::make_response(&req, 503, Some("Passive"), None);
                    r.headers.push(Header::RetryAfter(
                        self.shared.cluster.retry_after().to_string().into(),
                    ));
                    r
                };
                self.respond(tx, resp);
            }
            // BYE and INFO belong in a dialog: without a To tag, none.
            Method::Bye | Method::Info => {
                self.reply(tx, &req, 481, Some("Call/Transaction Does Not Exist"))
            }
            Method::Ack | Method::Cancel => {}
            Method::Subscribe => {
                let contact = self.local_contact(from.transport, &req.uri);
                let facts = ShellFacts {
                    shared: &self.shared,
                    serving: self.serving,
                };
                let now = Instant::now().into_std();
                let resp = self.mwi.on_subscribe(now, &req, from, &facts, &contact);
                self.respond(tx, resp);
            }
            _ => self.unsupported(tx, &req),
        }
    }

    fn unsupported(&mut self, tx: TxKey, req: &Request) {
        let resp = sipcore::unsupported_method_response(req, None)
            .unwrap_or_else(|| sipcore::make_response(req, 501, None, None));
        self.respond(tx, resp);
    }

    /// The call whose dialog `req` belongs to: same Call-ID, its To tag is
    /// ours and its From tag the caller's (RFC 3261 §12.2.2).
    fn dialog_call(&self, req: &Request, call_id: &str) -> Option<u64> {
        self.by_call_id
            .get(call_id)?
            .iter()
            .copied()
            .find(|id| self.calls.get(id).is_some_and(|c| c.dialog.matches(req)))
    }

    /// A request with a To tag: it must match a dialog (else `481`) and
    /// its CSeq must go up (else `500`) before it acts on the call.
    fn on_in_dialog(&mut self, tx: TxKey, req: Request, call_id: String) {
        let checked = self.dialog_call(&req, &call_id).map(|id| {
            let r = match self.calls.get_mut(&id) {
                Some(call) => call.dialog.on_remote_request(&req),
                None => Err(SipError::NotInDialog),
            };
            (id, r)
        });
        let id = match checked {
            Some((id, Ok(()))) => id,
            Some((id, Err(SipError::CSeqOutOfOrder { got, last }))) => {
                info!(call = id, %call_id, method = %req.method, got, last, "in-dialog request with an old CSeq refused");
                return self.reply(tx, &req, 500, Some("CSeq Out of Order"));
            }
            Some((id, Err(e))) => {
                info!(call = id, %call_id, method = %req.method, "in-dialog request refused: {e}");
                return self.reply(tx, &req, 400, Some("Bad Request"));
            }
            None => {
                // Late copies after a call ended are common: not above debug.
                debug!(%call_id, method = %req.method, "request matches no dialog");
                return self.reply(tx, &req, 481, Some("Call/Transaction Does Not Exist"));
            }
        };
        match req.method {
            Method::Invite => self.on_reinvite(tx, req, id),
            Method::Bye => {
                self.reply(tx, &req, 200, None);
                self.hang_up_call(id, false);
            }
            Method::Info => {
                if let Some(digit) = sipcore::dtmf_from_info(&req) {
                    if let Some(call) = self.calls.get(&id) {
                        let _ = call.commands.send(CallCommand::Dtmf(digit));
                    }
                }
                self.reply(tx, &req, 200, None);
            }
            Method::Options => {
                let resp = sipcore::options_response(&req, None);
                self.respond(tx, resp);
            }
            Method::Notify => self.on_refer_notify(tx, &req, id),
            _ => self.unsupported(tx, &req),
        }
    }

    /// Sends REFER for a call whose caller asked for the operator.
    fn send_refer(&mut self, id: u64, target: &str, referred_by: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let failed = |call: &CallEntry| {
            let _ = call.commands.send(CallCommand::TransferEnded(false));
        };
        if call.pending.is_some() {
            return failed(call);
        }
        // An earlier transfer the call gave up on (no answer in time) is
        // forgotten: its late answers change nothing.
        if let Some(refer_tx) = call.transfer.take().and_then(|t| t.refer_tx) {
            self.refers.remove(&refer_tx);
        }
        let refer = match sipcore::make_refer(&mut call.dialog, target, referred_by) {
            Ok(r) => r,
            Err(e) => {
                warn!(call = id, "cannot build REFER: {e}");
                return failed(call);
            }
        };
        let peer = call.peer;
        match self
            .endpoint
            .send_request(Instant::now().into_std(), refer, peer)
        {
            Ok(tx) => {
                info!(call = id, %target, "REFER sent");
                call.transfer = Some(Transfer { refer_tx: Some(tx) });
                self.refers.insert(tx, id);
            }
            Err(e) => {
                warn!(call = id, "cannot send REFER: {e}");
                failed(call);
            }
        }
    }

    /// A response to a REFER (408: none came).
    fn on_refer_response(&mut self, tx: TxKey, code: u16) {
        if code < 200 {
            return;
        }
        let Some(id) = self.refers.remove(&tx) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(t) = call.transfer.as_mut() {
            t.refer_tx = None;
        }
        match sipcore::on_refer_response(code) {
            sipcore::ReferProgress::Pending => info!(call = id, code, "REFER accepted"),
            _ => {
                info!(call = id, code, "REFER refused: the caller goes on");
                call.transfer = None;
                let _ = call.commands.send(CallCommand::TransferEnded(false));
            }
        }
    }

    /// A NOTIFY in a call's dialog: the progress of vmail's REFER.
    fn on_refer_notify(&mut self, tx: TxKey, req: &Request, id: u64) {
        let event = sipcore::header_value(req, "Event").unwrap_or_default();
        let in_transfer = self.calls.get(&id).is_some_and(|c| c.transfer.is_some());
        if !sipcore::is_refer_event(event) {
            return self.reply(tx, req, 489, Some("Bad Event"));
        }
        if !in_transfer {
            return self.reply(tx, req, 481, Some("Subscription Does Not Exist"));
        }
        self.reply(tx, req, 200, None);
        let terminated =
            sipcore::header_value(req, "Subscription-State").is_some_and(sipcore::is_terminated);
        let status = sipcore::sipfrag_status(req.body());
        let progress = sipcore::on_refer_notify(status, terminated);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let ended = match progress {
            sipcore::ReferProgress::Pending => {
                debug!(call = id, ?status, "transfer in progress");
                return;
            }
            sipcore::ReferProgress::Succeeded => {
                info!(call = id, ?status, "caller transferred to the operator");
                true
            }
            sipcore::ReferProgress::Failed => {
                info!(call = id, ?status, "transfer failed: the caller goes on");
                false
            }
        };
        if let Some(t) = call.transfer.take() {
            if let Some(refer_tx) = t.refer_tx {
                self.refers.remove(&refer_tx);
            }
        }
        let _ = call.commands.send(CallCommand::TransferEnded(ended));
    }

    /// RFC 3261 §8.2.2.2: an INVITE with the Call-ID, From tag and CSeq of
    /// a call in progress but another branch is a merged copy (a fork that
    /// came back, or a forgery): refused, never a second call on the same
    /// keys.
    fn merged(&self, info: &RequestInfo) -> bool {
        self.by_call_id.get(&info.call_id).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.calls.get(id).is_some_and(|c| {
                    c.dialog.remote_tag() == info.from_tag.as_deref() && c.invite_cseq == info.cseq
                })
            })
        })
    }

    fn on_invite(&mut self, tx: TxKey, req: Request, from: Peer, info: RequestInfo) {
        let invited = Instant::now();
        let shared = self.shared.clone();
        let ext = &shared.role.ext;
        let cid = info.call_id.clone();
        let trying = sipcore::make_response(&req, 100, None, None);
        self.respond(tx, trying);
        let local_tag = sipcore::new_tag();
        let contact = self.local_contact(from.transport, &req.uri);
        let decision = admission::decide(
            &InviteInput {
                request: &req,
                source: from.addr,
                merged: self.merged(&info),
                shutting_down: self.shutting_down,
                active_calls: self.calls.len(),
                max_calls: ext.max_calls,
                media_lagging: shared.media_lag.refusing(),
                access_numbers: &ext.access_numbers,
                auto_create_mailboxes: ext.auto_create_mailboxes,
                local_tag: &local_tag,
                local_contact: &contact,
                codecs: admission::CodecChoice {
                    allowed: &ext.codecs,
                    ordered: ext.codecs_ordered,
                },
            },
            &ShellFacts {
                shared: &shared,
                serving: self.serving,
            },
        );
        let Accepted {
            kind,
            negotiated,
            dialog,
        } = match decision {
            InviteDecision::Accept(a) => *a,
            InviteDecision::Refuse(refusal) => return self.refuse(tx, &req, &cid, &refusal),
            InviteDecision::Redirect { contacts, domain } => {
                let mut r = sipcore::make_response(&req, 302, None, None);
                r.headers.push(Header::Contact(contacts.join(", ").into()));
                info!(call_id = %cid, %domain, "redirected to the owner group");
                return self.respond(tx, r);
            }
        };
        if negotiated.srtp.is_some() && !from.transport.is_secure() && !ext.srtp_over_insecure {
            let why = "SDES keys (a=crypto) offered over an unencrypted transport: \
                       SRTP is accepted over SIP/TLS only (ext.srtp_over_insecure)";
            return self.refuse(tx, &req, &cid, &Refusal::NotAcceptable(why.to_owned()));
        }
        let Some((socket, port)) = self.bind_rtp() else {
            self.shared.metrics.call_refused("no_media_port");
            let mut r = sipcore::make_response(&req, 503, Some("No media port"), None);
            r.headers.push(Header::RetryAfter("5".into()));
            self.respond(tx, r);
            return;
        };
        let id = self.next_call;
        self.next_call += 1;
        let sdp_version = 1;
        // SRTP: our own fresh key for what we send (RFC 4568 §6.1).
        let srtp = negotiated
            .srtp
            .clone()
            .map(|choice| (choice, sdp::SrtpKey::random()));
        let local_sdp = sdp::answer(
            &negotiated,
            &sdp::AnswerParams {
                local_ip: shared.role.addr,
                local_port: port,
                session_id: id,
                session_version: sdp_version,
                username: "vmail",
                srtp_key: srtp.as_ref().map(|(_, k)| k),
            },
        );
        let mut ok = sipcore::make_response(&req, 200, None, Some(&local_tag));
        ok.headers
            .push(Header::Contact(format!("<{contact}>").into()));
        sipcore::set_body(&mut ok, "application/sdp", local_sdp.clone().into_bytes());

        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let remote = Arc::new(std::sync::Mutex::new(negotiated.remote));
        let codec = media_codec(&negotiated);
        let frame_samples = (negotiated.ptime_ms * codec.sample_rate() / 1000) as usize;
        let slot = shared.pacer.register(
            id,
            socket.clone(),
            remote.clone(),
            RtpPacketizer::new_random(negotiated.pt, codec).with_opus(negotiated.params.opus),
            frame_samples,
            done_tx,
        );
        if let Some((choice, ours)) = &srtp {
            slot.protect(SrtpTx::new(choice.suite, ours));
        }
        let io = CallIo {
            socket,
            remote,
            slot,
            done_rx,
            commands: cmd_rx,
            srtp: srtp
                .as_ref()
                .map(|(choice, _)| SrtpRx::new(choice.suite, &choice.remote_key)),
        };
        let metric_kind = match kind {
            CallKind::Deposit { .. } => metrics::CallKind::Deposit,
            CallKind::Menu { .. } => metrics::CallKind::Retrieval,
        };
        let setup = self.driver_setup(id, kind, &negotiated, &req, from, port, &cid, io);
        let delay = Duration::from_millis(ext.answer_delay_ms);
        let ringing =
            (!delay.is_zero()).then(|| sipcore::make_response(&req, 180, None, Some(&local_tag)));
        self.calls.insert(
            id,
            CallEntry {
                call_id: cid.clone(),
                dialog,
                peer: from,
                invite_tx: tx,
                invite_cseq: info.cseq,
                commands: cmd_tx,
                port,
                local_sdp,
                sdp_version,
                codec: negotiated.codec,
                pending: Some(Box::new(PendingAnswer {
                    setup,
                    response: ok,
                    invite: req,
                })),
                metric_kind,
                invited,
                transfer: None,
                srtp,
            },
        );
        self.by_call_id.entry(cid).or_default().push(id);
        self.by_invite_tx.insert(tx, id);
        shared.metrics.call_started(metric_kind);
        match ringing {
            None => self.send_answer(id),
            Some(ringing) => {
                self.respond(tx, ringing);
                self.answers_due.insert((Instant::now() + delay, id));
            }
        }
    }

    /// What the driver of an accepted call starts with.
    #[allow(clippy::too_many_arguments)]
    fn driver_setup(
        &self,
        id: u64,
        kind: CallKind,
        negotiated: &Negotiated,
        req: &Request,
        from: Peer,
        port: u16,
        cid: &str,
        io: CallIo,
    ) -> Driver {
        let shared = &self.shared;
        let ext = &shared.role.ext;
        match kind {
            CallKind::Deposit {
                mailbox,
                settings,
                cause,
                create,
            } => {
                let (caller_uri, caller_name) = sipcore::caller(req);
                let language = settings
                    .language
                    .clone()
                    .unwrap_or_else(|| ext.language.clone());
                info!(call_id = %cid, %mailbox, ?cause, port, "deposit call accepted");
                let operator = settings
                    .operator_uri(ext.operator_uri.for_domain(mailbox.domain()))
                    .map(str::to_owned);
                Driver::Deposit(Box::new(CallSetup {
                    call: id,
                    mailbox,
                    peer: from.addr,
                    socket: io.socket,
                    tick: shared.media_clock.subscribe(id),
                    remote: io.remote,
                    rx: rx_config(negotiated),
                    plan: DepositPlan {
                        language,
                        cause,
                        limits: DepositLimits {
                            max_message: Duration::from_secs(u64::from(ext.max_message_seconds)),
                            min_message: Duration::from_secs(u64::from(ext.min_message_seconds)),
                            silence: Duration::from_secs(u64::from(ext.silence_seconds)),
                            media_timeout: Duration::from_secs(u64::from(
                                ext.media_timeout_seconds,
                            )),
                            review: ext.review,
                            operator: operator.is_some(),
                            operator_keeps_recording: ext.operator_keeps_recording,
                            login: !create,
                        },
                        max_messages: ext.max_messages,
                        create: create.then(|| settings.clone()),
                    },
                    prompts: shared.prompts.clone(),
                    greetings: shared.greetings.clone(),
                    store: shared.store.clone(),
                    recording: RecordingInfo {
                        caller_uri: caller_uri.unwrap_or_default(),
                        caller_name,
                        called_uri: req.uri.to_string(),
                        cause: cause_name(cause).to_owned(),
                        codec: codec_name(negotiated).to_owned(),
                        site: shared.config.site.clone(),
                        instance: shared.role.name.clone(),
                        epoch: self.shared.cluster.fence.epoch(),
                        sample_rate: media_codec(negotiated).sample_rate(),
                    },
                    slot: io.slot,
                    done_rx: io.done_rx,
                    commands: io.commands,
                    events: self.events_tx.clone(),
                    metrics: shared.metrics.clone(),
                    operator,
                    srtp: io.srtp,
                    login: (!create).then(|| {
                        let limiter = shared.clone();
                        LoginSetup {
                            time_zone: ext.time_zone(),
                            lockout_failures: ext.lockout_failures,
                            lockout_seconds: ext.lockout_seconds,
                            max_greeting: Duration::from_secs(u64::from(ext.max_message_seconds)),
                            logins: shared.logins.clone(),
                            sites: shared.sites.clone(),
                            access: Arc::new(move |ip: IpAddr| limiter.access_call(ip)),
                        }
                    }),
                }))
            }
            CallKind::Menu { domain, known } => {
                info!(call_id = %cid, %domain, known = ?known, port, "mailbox menu call accepted");
                let mut cfg = MenuConfig::new(domain.clone());
                cfg.max_greeting = Duration::from_secs(u64::from(ext.max_message_seconds));
                Driver::Menu(Box::new(MenuSetup {
                    call: id,
                    menu: Menu::new(cfg, known),
                    domain,
                    peer: from.addr,
                    socket: io.socket,
                    tick: shared.media_clock.subscribe(id),
                    remote: io.remote,
                    rx: rx_config(negotiated),
                    language: ext.language.clone(),
                    time_zone: ext.time_zone(),
                    lockout_failures: ext.lockout_failures,
                    lockout_seconds: ext.lockout_seconds,
                    logins: shared.logins.clone(),
                    prompts: shared.prompts.clone(),
                    store: shared.store.clone(),
                    sites: shared.sites.clone(),
                    slot: io.slot,
                    done_rx: io.done_rx,
                    commands: io.commands,
                    events: self.events_tx.clone(),
                    metrics: shared.metrics.clone(),
                    srtp: io.srtp,
                }))
            }
        }
    }

    /// Answers a refused INVITE.
    fn refuse(&mut self, tx: TxKey, req: &Request, call_id: &str, refusal: &Refusal) {
        self.shared
            .metrics
            .call_refused(metrics::refusal_label(refusal));
        match refusal {
            // The gate logged the change once (a warning); each refusal
            // would flood the log under overload.
            Refusal::Overloaded | Refusal::MediaLag => {
                debug!(%call_id, "INVITE refused: {refusal}");
            }
            Refusal::ShuttingDown => debug!(%call_id, "INVITE refused: {refusal}"),
            Refusal::RateLimited { .. } => {
                // Logged by the limiter: the first refusal of a streak per
                // address as a warning, the rest at debug.
            }
            Refusal::StoreUnavailable(_) => warn!(%call_id, "INVITE refused: {refusal}"),
            _ => info!(%call_id, code = refusal.code(), "INVITE refused: {refusal}"),
        }
        let mut r = sipcore::make_response(req, refusal.code(), Some(refusal.reason()), None);
        r.headers.extend(refusal.headers());
        self.respond(tx, r);
    }

    fn answer_due(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.answers_due.first() {
            if t > now {
                break;
            }
            self.answers_due.remove(&(t, id));
            self.send_answer(id);
        }
    }

    /// Sends the 200 and starts the call's driver.
    fn send_answer(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(pending) = call.pending.take() else {
            return;
        };
        let PendingAnswer {
            setup, response, ..
        } = *pending;
        let tx = call.invite_tx;
        let call_id = call.call_id.clone();
        let (metric_kind, invited) = (call.metric_kind, call.invited);
        self.respond(tx, response);
        self.shared
            .metrics
            .call_answered(metric_kind, invited.elapsed());
        match setup {
            Driver::Deposit(setup) => {
                let span = info_span!("call", %call_id, mailbox = %setup.mailbox);
                tokio::spawn(deposit_driver::drive(*setup).instrument(span));
            }
            Driver::Menu(setup) => {
                let span = info_span!("call", %call_id, menu = %setup.domain);
                tokio::spawn(menu_driver::drive(*setup).instrument(span));
            }
        }
    }

    fn on_reinvite(&mut self, tx: TxKey, req: Request, id: u64) {
        let local_ip = self.shared.role.addr;
        let Some(call) = self.calls.get_mut(&id) else {
            self.reply(tx, &req, 481, None);
            return;
        };
        if call.pending.is_some() {
            // A re-INVITE before our answer: glare-like; ask to retry.
            let mut r = sipcore::make_response(&req, 491, None, None);
            r.headers.push(Header::RetryAfter("1".into()));
            self.respond(tx, r);
            return;
        }
        let peer_transport = call.peer.transport;
        let body = if req.body().is_empty() {
            // An offerless re-INVITE: offer the current session again.
            call.local_sdp.clone()
        } else {
            let ext = &self.shared.role.ext;
            let choice = admission::CodecChoice {
                allowed: &ext.codecs,
                ordered: ext.codecs_ordered,
            };
            match admission::negotiate(req.body(), Some(call.codec), choice) {
                Ok(n) => {
                    if let Err(why) = srtp_update(call, &n) {
                        info!(call = id, "re-INVITE refused: {why}");
                        self.reply(tx, &req, 488, None);
                        return;
                    }
                    call.codec = n.codec;
                    call.sdp_version += 1;
                    call.local_sdp = sdp::answer(
                        &n,
                        &sdp::AnswerParams {
                            local_ip,
                            local_port: call.port,
                            session_id: id,
                            session_version: call.sdp_version,
                            username: "vmail",
                            srtp_key: call.srtp.as_ref().map(|(_, k)| k),
                        },
                    );
                    let _ = call.commands.send(CallCommand::Media(
                        rx_config(&n),
                        n.remote,
                        n.direction.sends(),
                    ));
                    call.local_sdp.clone()
                }
                Err(e) => {
                    info!(call = id, "re-INVITE refused: {e}");
                    self.reply(tx, &req, 488, None);
                    return;
                }
            }
        };
        info!(call = id, "re-INVITE answered");
        let mut ok = sipcore::make_response(&req, 200, None, None);
        let contact = self.local_contact(peer_transport, &req.uri);
        ok.headers
            .push(Header::Contact(format!("<{contact}>").into()));
        sipcore::set_body(&mut ok, "application/sdp", body.into_bytes());
        self.respond(tx, ok);
    }

    /// The ACK of a 200 of ours: when it comes from where the INVITE came
    /// from, the call may send to the SDP address if that is the same IP
    /// (see `media::SourceLatch`).
    fn on_ack(&mut self, request: &Request, from: Peer) {
        let Some(id) = sipcore::RequestInfo::of(request)
            .ok()
            .and_then(|info| self.dialog_call(request, &info.call_id))
        else {
            return;
        };
        if let Some(call) = self.calls.get(&id) {
            if from.transport == call.peer.transport && from.addr.ip() == call.peer.addr.ip() {
                let _ = call.commands.send(CallCommand::Ack);
            }
        }
    }

    fn on_cancel(&mut self, invite_tx: TxKey) {
        let Some(&id) = self.by_invite_tx.get(&invite_tx) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Already answered: the CANCEL lost the race; a BYE will follow.
        let Some(pending) = call.pending.take() else {
            return;
        };
        let resp =
            sipcore::make_response(&pending.invite, 487, None, Some(call.dialog.local_tag()));
        pending.setup.slot().unregister();
        self.respond(invite_tx, resp);
        self.remove_call(id);
    }

    /// Ends a call from the SIP side: tell the driver; if `send_bye`, vmail
    /// sends BYE too.
    fn hang_up_call(&mut self, id: u64, send_bye: bool) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.pending.is_some() {
            // Not answered yet (BYE cannot come before 200; CANCEL did).
            self.remove_call(id);
            return;
        }
        let _ = call.commands.send(CallCommand::Hangup);
        if send_bye {
            self.send_bye(id);
        }
    }

    fn send_bye(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let bye = match call.dialog.make_request(Method::Bye) {
            Ok(b) => b,
            Err(e) => {
                warn!(call = id, "cannot build BYE: {e}");
                return;
            }
        };
        let peer = call.peer;
        if let Err(e) = self
            .endpoint
            .send_request(Instant::now().into_std(), bye, peer)
        {
            warn!(call = id, "cannot send BYE: {e}");
        }
    }

    fn on_call_event(&mut self, ev: CallEvent) {
        match ev {
            CallEvent::Hangup { call } => self.send_bye(call),
            CallEvent::Transfer {
                call,
                target,
                referred_by,
            } => self.send_refer(call, &target, &referred_by),
            CallEvent::Ended { call } => self.remove_call(call),
        }
    }

    fn remove_call(&mut self, id: u64) {
        if let Some(call) = self.calls.remove(&id) {
            if let Some(ids) = self.by_call_id.get_mut(&call.call_id) {
                ids.retain(|&other| other != id);
                if ids.is_empty() {
                    self.by_call_id.remove(&call.call_id);
                }
            }
            self.by_invite_tx.remove(&call.invite_tx);
            if let Some(refer_tx) = call.transfer.and_then(|t| t.refer_tx) {
                self.refers.remove(&refer_tx);
            }
            if let Some(p) = call.pending {
                p.setup.slot().unregister();
            }
            self.shared.ports_release(call.port);
            self.shared.metrics.call_ended(call.metric_kind);
        }
    }

    fn bind_rtp(&self) -> Option<(RtpSocket, u16)> {
        let ip = self.shared.role.addr;
        for _ in 0..64 {
            let port = self.shared.ports_allocate()?;
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(sock) => {
                    // Read on the media clock, never awaited: see media_clock.
                    if sock.set_nonblocking(true).is_err() {
                        self.shared.ports_release(port);
                        continue;
                    }
                    return Some((Arc::new(sock), port));
                }
                Err(_) => self.shared.ports_release(port),
            }
        }
        None
    }

    /// Our Contact for a request that came over `transport` to `uri`:
    /// over TLS the TLS port, as `sips:` when the request was addressed to
    /// a `sips:` URI, else with `transport=tls` (RFC 5630 §3.1.3).
    fn local_contact(&self, transport: Transport, uri: &rsipstack::sip::Uri) -> String {
        let ext = &self.shared.role.ext;
        let port = match transport {
            Transport::Tls => ext.sip_tls_port.unwrap_or(ext.sip_port),
            _ => ext.sip_port,
        };
        let addr = SocketAddr::new(self.shared.role.addr, port);
        let host = match addr.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        };
        let sips = matches!(uri.scheme, Some(rsipstack::sip::Scheme::Sips));
        match transport {
            Transport::Tcp => format!("sip:vmail@{host};transport=tcp"),
            Transport::Tls if sips => format!("sips:vmail@{host}"),
            Transport::Tls => format!("sip:vmail@{host};transport=tls"),
            Transport::Udp => format!("sip:vmail@{host}"),
        }
    }
}

/// What a re-INVITE's offer `n` does to the call's SRTP: it stays on or
/// off, with the same suite (our key stays); a new key of the caller is
/// handed to the call's media. `Err` says why the offer is refused.
fn srtp_update(call: &mut CallEntry, n: &Negotiated) -> Result<(), &'static str> {
    if let Some(rx) = srtp_reoffer(&mut call.srtp, n.srtp.as_ref())? {
        let _ = call.commands.send(CallCommand::SrtpKey(Box::new(rx)));
    }
    Ok(())
}

/// [`srtp_update`] without the call: the call's SDES state `current`
/// after an offer of `offered`; `Some` receiver when the caller's key
/// changed.
fn srtp_reoffer(
    current: &mut Option<(sdp::SdesChoice, sdp::SrtpKey)>,
    offered: Option<&sdp::SdesChoice>,
) -> Result<Option<SrtpRx>, &'static str> {
    match (current, offered) {
        (None, None) => Ok(None),
        (Some(_), None) => Err("SRTP cannot be turned off within a call"),
        (None, Some(_)) => Err("SRTP cannot be turned on within a call"),
        (Some((current, _)), Some(offered)) => {
            if offered.suite != current.suite {
                return Err("the SRTP suite cannot change within a call");
            }
            let rx = (offered.remote_key != current.remote_key)
                .then(|| SrtpRx::new(offered.suite, &offered.remote_key));
            *current = offered.clone();
            Ok(rx)
        }
    }
}

/// Routing and the store, as the INVITE decision sees them.
struct ShellFacts<'a> {
    shared: &'a Shared,
    /// The SIP task has done its takeover work ([`SipServer::serving`]).
    serving: bool,
}

impl InviteFacts for ShellFacts<'_> {
    fn owner(&self, domain: &str) -> DomainOwner {
        let Some(owner) = self.shared.routing.owner(domain) else {
            return DomainOwner::Nobody;
        };
        let group = owner.group();
        let cluster = &self.shared.cluster;
        if group == self.shared.role.group {
            if self.serving && cluster.is_active() {
                return DomainOwner::Us;
            }
            // Passive: to the active instance when it is known.
            return match cluster.standing().active {
                Some(a) if a.name != self.shared.role.name => DomainOwner::Group(vec![a.sip]),
                _ => DomainOwner::NotActive {
                    retry_after: cluster.retry_after(),
                },
            };
        }
        let Some(instances) = self.shared.groups.get(&group) else {
            return DomainOwner::Nobody;
        };
        // The other group's active instance first, then every instance
        // by order (where the active one is not known, or in case it has
        // just died).
        let mut list: Vec<SocketAddr> = Vec::with_capacity(instances.len() + 1);
        if let Some(a) = cluster.standing().others.get(&group) {
            list.push(a.sip);
        }
        for i in instances {
            let addr = SocketAddr::new(i.addr, i.sip_port);
            if !list.contains(&addr) {
                list.push(addr);
            }
        }
        DomainOwner::Group(list)
    }

    fn mailbox(&self, id: &MailboxId) -> Result<Option<MailboxSettings>, StoreError> {
        Ok(self.shared.store.mailbox(id)?.map(|m| m.settings))
    }

    fn access_call(&self, source: IpAddr) -> Result<(), u64> {
        self.shared.access_call(source)
    }
}

fn media_codec(n: &Negotiated) -> MediaCodec {
    n.codec.media()
}

/// The codec's name in the message metadata (`PCMU`, `G722`, `opus`, ...).
fn codec_name(n: &Negotiated) -> &'static str {
    n.codec.encoding_name()
}

fn rx_config(n: &Negotiated) -> RxConfig {
    RxConfig {
        audio_pt: n.pt,
        codec: media_codec(n),
        dtmf_pt: n.dtmf_pt,
        clock_rate: n.codec.rtp_clock_rate(),
        annexb: n.params.annexb,
        jitter_depth_ms: 60,
    }
}

fn cause_name(c: Cause) -> &'static str {
    match c {
        Cause::Busy => "busy",
        Cause::Unavailable => "unavailable",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::{SdesChoice, SrtpKey, SrtpSuite};

    fn choice(tag: u32, suite: SrtpSuite, key: u8) -> SdesChoice {
        SdesChoice {
            tag,
            suite,
            remote_key: SrtpKey([key; 30]),
        }
    }

    #[test]
    fn a_reoffer_keeps_srtp_on_or_off_and_follows_a_new_key() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut plain = None;
        assert!(matches!(srtp_reoffer(&mut plain, None), Ok(None)));
        assert!(srtp_reoffer(&mut plain, Some(&choice(1, suite, 1))).is_err());

        let ours = SrtpKey([9; 30]);
        let mut on = Some((choice(1, suite, 1), ours.clone()));
        assert!(srtp_reoffer(&mut on, None).is_err());
        let other_suite = choice(1, SrtpSuite::AesCm128HmacSha1_32, 1);
        assert!(srtp_reoffer(&mut on, Some(&other_suite)).is_err());
        // Same key (another tag): nothing for the media to do.
        assert!(matches!(
            srtp_reoffer(&mut on, Some(&choice(2, suite, 1))),
            Ok(None)
        ));
        // A new key: a new receiver, and the state follows; ours stays.
        assert!(matches!(
            srtp_reoffer(&mut on, Some(&choice(2, suite, 5))),
            Ok(Some(_))
        ));
        let (now, key) = on.expect("still on");
        assert_eq!((now.tag, now.remote_key), (2, SrtpKey([5; 30])));
        assert_eq!(key, ours);
    }
}
