//! The transaction layer (RFC 3261 §17, RFC 3581, RFC 6026): sans-IO.
//! Bytes and `now` go in; datagrams to send, events and the next deadline
//! come out.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip::headers::untyped::{
    Allow, MaxForwards, Server, ToTypedHeader, Unsupported, UserAgent, Via,
};
use rsipstack::sip::{Header, HeadersExt, Method, Request, Response, SipMessage};
use tracing::{debug, trace, warn};

use super::error::SipError;
use super::message::{
    add_warning, make_response, method_support, method_support_of, new_branch, new_tag,
    response_to_tag, set_content_length, MethodSupport, RequestInfo, ALLOW,
};
use super::peer::{Peer, Transmit, Transport, TxKey};
use super::salvage::salvage;
use super::timers::{Armed, Slot, TimerTable};
use super::via::{ack_key, client_key, server_key, stamp_top_via, ViaFacts};

/// How long an INVITE server transaction waits for the application's
/// final answer before it is forgotten (as a proxy's timer C would).
pub const INVITE_ANSWER_LIMIT: Duration = Duration::from_secs(180);

/// Settings of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Our address, for the Via of requests we send.
    pub local_addr: SocketAddr,
    /// Our SIP/TLS port, for the Via of requests we send over TLS.
    pub tls_port: Option<u16>,
    /// `User-Agent` of our requests and `Server` of the responses the
    /// endpoint makes itself.
    pub user_agent: String,
    /// Larger messages are dropped (UDP) or answered `413` (TCP).
    pub max_message_size: usize,
    /// RTT estimate (RFC 3261: 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl EndpointConfig {
    /// RFC 3261 timer values, a 64 KiB size limit, `vmail/<version>`.
    pub fn new(local_addr: SocketAddr) -> Self {
        EndpointConfig {
            local_addr,
            tls_port: None,
            user_agent: super::message::SERVER.to_string(),
            max_message_size: 64 * 1024,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What the application learns from the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new request in a new server transaction; answer it with
    /// [`Endpoint::respond`]. The top Via already carries `received`/`rport`.
    Request {
        /// The server transaction.
        tx: TxKey,
        /// The request.
        request: Request,
        /// Where it came from.
        from: Peer,
        /// Its basic fields, already parsed.
        info: RequestInfo,
    },
    /// An ACK for a 2xx we sent (it stopped the 2xx retransmission), or an
    /// ACK that matches nothing we know (late or stray).
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        from: Peer,
    },
    /// A CANCEL matched this INVITE server transaction before its final
    /// answer. The CANCEL is already answered `200`; answer the INVITE `487`.
    Cancel {
        /// The INVITE server transaction.
        invite_tx: TxKey,
    },
    /// A 2xx to INVITE was never acknowledged (64*T1): end the call.
    AckTimeout {
        /// The INVITE server transaction.
        tx: TxKey,
    },
    /// A response in one of our client transactions (provisional or final).
    Response {
        /// The client transaction.
        tx: TxKey,
        /// The response.
        response: Response,
    },
    /// A client transaction got no final response (timer F).
    RequestTimeout {
        /// The client transaction.
        tx: TxKey,
    },
}

/// INVITE server transaction states (RFC 3261 §17.2.1 with RFC 6026).
#[derive(Debug)]
enum InviteServer {
    /// Waiting for the application's final answer.
    Proceeding { provisional: Option<Vec<u8>> },
    /// Non-2xx sent; resent (timer G) until the ACK, timer H gives up.
    Completed {
        response: Vec<u8>,
        interval: Duration,
    },
    /// 2xx sent; resent until the ACK (matched by Call-ID and CSeq).
    Accepted {
        response: Vec<u8>,
        interval: Duration,
    },
    /// Non-2xx acknowledged; absorbs ACK retransmissions (timer I).
    Confirmed,
    /// 2xx acknowledged; absorbs late copies (timer L).
    Acked,
}

/// Non-INVITE server transaction states (RFC 3261 §17.2.2).
#[derive(Debug)]
enum NonInviteServer {
    Trying,
    Proceeding {
        provisional: Vec<u8>,
    },
    /// Final sent; answers retransmissions until timer J.
    Completed {
        response: Vec<u8>,
    },
}

/// Non-INVITE client transaction states (RFC 3261 §17.1.2).
#[derive(Debug)]
enum Client {
    Trying {
        request: Vec<u8>,
        interval: Duration,
    },
    Proceeding {
        request: Vec<u8>,
    },
    /// Final received; absorbs response retransmissions until timer K.
    Completed,
}

#[derive(Debug)]
enum TxState {
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
    Client(Client),
}

/// Why a request opens no transaction for the application.
enum Refusal {
    /// Not answerable (a header a response copies is missing).
    Drop(String),
    /// Answer with this code; the text goes into a Warning header.
    Answer(u16, String),
}

#[derive(Debug)]
struct Transaction {
    /// Server: where responses go. Client: where the request goes.
    peer: Peer,
    /// Key in `server_index` or `client_index`.
    index: String,
    /// Key in `ack_index` (INVITE server transactions that sent a 2xx).
    ack_index: Option<String>,
    /// The To tag of the responses sent (INVITE server transactions).
    to_tag: Option<String>,
    /// Call-ID, From tag and CSeq number of the INVITE (INVITE server
    /// transactions): what its CANCEL and the ACK of its 2xx must carry.
    origin: Option<String>,
    timers: Armed,
    state: TxState,
}

/// The transaction layer: matches requests and responses to transactions,
/// retransmits, absorbs retransmissions and runs timers E..L. No sockets, no
/// clock. Lookups are hash-map hits; timers live in an ordered table.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    txs: HashMap<TxKey, Transaction>,
    server_index: HashMap<String, TxKey>,
    client_index: HashMap<String, TxKey>,
    ack_index: HashMap<String, TxKey>,
    timers: TimerTable,
    next_key: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Endpoint {
    /// An endpoint with no transactions.
    pub fn new(cfg: EndpointConfig) -> Self {
        Endpoint {
            cfg,
            txs: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            ack_index: HashMap::new(),
            timers: TimerTable::default(),
            next_key: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Number of live transactions.
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    /// The earliest timer deadline: call [`Endpoint::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A datagram or a framed TCP message arrived from `from`. Never panics:
    /// what does not parse is answered `400`/`501` when enough of it is
    /// readable, else dropped.
    pub fn handle_input(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            trace!(%from.addr, "keep-alive");
            return;
        }
        if bytes.len() > self.cfg.max_message_size {
            debug!(%from.addr, len = bytes.len(), "oversized SIP message");
            if from.transport.is_reliable() {
                self.answer_unparsable(now, from, bytes, 413);
            }
            return;
        }
        match rsipstack::sip::parser::parse_message(bytes) {
            Ok(SipMessage::Request(req)) => self.on_request(now, from, req),
            Ok(SipMessage::Response(resp)) => self.on_response(now, from, resp),
            Err(e) => {
                debug!(%from.addr, error = %e, "unparsable SIP message");
                let code = match salvage(bytes) {
                    Some(s) if method_support(&s.method) == MethodSupport::NotImplemented => 501,
                    _ => 400,
                };
                self.answer_unparsable(now, from, bytes, code);
            }
        }
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((deadline, key, slot)) = self.timers.pop_due(now) {
            let Some(tx) = self.txs.get_mut(&key) else {
                continue;
            };
            tx.timers[slot as usize] = None;
            self.on_timer(now, deadline, key, slot);
        }
    }

    /// Answer a server transaction (provisional or final). A 2xx to INVITE
    /// is resent (T1 doubling up to T2) until its ACK; after 64*T1 without
    /// one, [`Event::AckTimeout`]. `Content-Length` is set from the body.
    pub fn respond(&mut self, now: Instant, tx: TxKey, response: Response) -> Result<(), SipError> {
        let code = response.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(SipError::BadStatusCode(code));
        }
        let mut response = response;
        set_content_length(&mut response.headers, response.body.len());
        let t1 = self.cfg.t1;
        let t = self
            .txs
            .get_mut(&tx)
            .ok_or(SipError::UnknownTransaction(tx))?;
        let reliable = t.peer.transport.is_reliable();
        let to = t.peer;
        let mut forget = false;
        match &mut t.state {
            TxState::Client(_) => return Err(SipError::NotServerTransaction(tx)),
            TxState::InviteServer(InviteServer::Proceeding { provisional }) => {
                if code > 100 {
                    if let Some(tag) = response_to_tag(&response) {
                        t.to_tag = Some(tag);
                    }
                }
                let bytes = response.to_bytes();
                if code < 200 {
                    *provisional = Some(bytes.clone());
                } else if code < 300 {
                    t.state = TxState::InviteServer(InviteServer::Accepted {
                        response: bytes.clone(),
                        interval: t1,
                    });
                    if let Some(k) = t.origin.clone() {
                        self.ack_index.insert(k.clone(), tx);
                        t.ack_index = Some(k);
                    }
                    self.timers
                        .arm(&mut t.timers, tx, Slot::Retransmit, now + t1);
                    self.timers
                        .arm(&mut t.timers, tx, Slot::Lifetime, now + 64 * t1);
                } else {
                    t.state = TxState::InviteServer(InviteServer::Completed {
                        response: bytes.clone(),
                        interval: t1,
                    });
                    if !reliable {
                        self.timers
                            .arm(&mut t.timers, tx, Slot::Retransmit, now + t1);
                    }
                    self.timers
                        .arm(&mut t.timers, tx, Slot::Lifetime, now + 64 * t1);
                }
                self.transmits.push_back(Transmit { to, bytes });
            }
            TxState::NonInviteServer(
                state @ (NonInviteServer::Trying | NonInviteServer::Proceeding { .. }),
            ) => {
                let bytes = response.to_bytes();
                if code < 200 {
                    *state = NonInviteServer::Proceeding {
                        provisional: bytes.clone(),
                    };
                } else {
                    *state = NonInviteServer::Completed {
                        response: bytes.clone(),
                    };
                    if reliable {
                        forget = true;
                    } else {
                        self.timers
                            .arm(&mut t.timers, tx, Slot::Lifetime, now + 64 * t1);
                    }
                }
                self.transmits.push_back(Transmit { to, bytes });
            }
            _ => return Err(SipError::AlreadyAnswered(tx)),
        }
        trace!(?tx, code, "response sent");
        if forget {
            self.remove_tx(tx);
        }
        Ok(())
    }

    /// Send a request in a non-INVITE client transaction (BYE, NOTIFY,
    /// OPTIONS, INFO...). A top Via with a fresh branch is added when the
    /// request has none, `Max-Forwards: 70` and `User-Agent` when absent.
    /// Responses come as [`Event::Response`], silence as
    /// [`Event::RequestTimeout`] (timer F).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        to: Peer,
    ) -> Result<TxKey, SipError> {
        let mut request = request;
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(SipError::UnsupportedClientMethod(
                request.method.to_string(),
            ));
        }
        let branch = self.ensure_via(&mut request, to.transport)?;
        if request.max_forwards_header().is_err() {
            request
                .headers
                .push(Header::MaxForwards(MaxForwards::new("70")));
        }
        if request.user_agent_header().is_none() {
            request.headers.push(Header::UserAgent(UserAgent::new(
                self.cfg.user_agent.clone(),
            )));
        }
        set_content_length(&mut request.headers, request.body.len());
        let index = client_key(&branch, &request.method.to_string());
        if self.client_index.contains_key(&index) {
            return Err(SipError::BadHeader("Via"));
        }
        let bytes = request.to_bytes();
        let key = self.new_key();
        let mut tx = Transaction {
            peer: to,
            index: index.clone(),
            ack_index: None,
            to_tag: None,
            origin: None,
            timers: Armed::default(),
            state: TxState::Client(Client::Trying {
                request: bytes.clone(),
                interval: self.cfg.t1,
            }),
        };
        if !to.transport.is_reliable() {
            self.timers
                .arm(&mut tx.timers, key, Slot::Retransmit, now + self.cfg.t1);
        }
        self.timers
            .arm(&mut tx.timers, key, Slot::Lifetime, now + 64 * self.cfg.t1);
        self.txs.insert(key, tx);
        self.client_index.insert(index, key);
        self.transmits.push_back(Transmit { to, bytes });
        trace!(?key, method = %request.method, "request sent");
        Ok(key)
    }

    fn new_key(&mut self) -> TxKey {
        self.next_key += 1;
        TxKey(self.next_key)
    }

    /// Make sure the top Via has a branch; returns it.
    fn ensure_via(&self, request: &mut Request, transport: Transport) -> Result<String, SipError> {
        match request.via_header_mut() {
            Err(_) => {
                let branch = new_branch();
                let sent_by = match (transport, self.cfg.tls_port) {
                    (Transport::Tls, Some(port)) => SocketAddr::new(self.cfg.local_addr.ip(), port),
                    _ => self.cfg.local_addr,
                };
                let via = format!(
                    "SIP/2.0/{} {};branch={};rport",
                    transport.via_token(),
                    rsipstack::sip::HostWithPort::from(sent_by),
                    branch
                );
                request.headers.push_front(Header::Via(Via::new(via)));
                Ok(branch)
            }
            Ok(via) => {
                let mut branch = None;
                via.update_first_value(|first| {
                    let typed = first.typed()?;
                    let typed = match typed.branch() {
                        Some(b) => {
                            branch = Some(b.value().to_string());
                            typed
                        }
                        None => {
                            let b = new_branch();
                            branch = Some(b.clone());
                            typed.with_branch(rsipstack::sip::param::Branch::new(b))
                        }
                    };
                    Ok(Via::new(typed.to_string()))
                })
                .map_err(|_| SipError::BadHeader("Via"))?;
                branch.ok_or(SipError::BadHeader("Via"))
            }
        }
    }

    // ----- incoming requests -------------------------------------------

    fn on_request(&mut self, now: Instant, from: Peer, mut req: Request) {
        let facts = match req.via_header_mut() {
            Ok(via) => stamp_top_via(via, &from),
            Err(_) => None,
        };
        let Some(facts) = facts else {
            debug!(%from.addr, method = %req.method, "request without a usable Via dropped");
            return;
        };
        if req.method == Method::Ack {
            self.on_ack(now, from, req, &facts);
            return;
        }
        let method = req.method.to_string();
        let index = facts
            .branch
            .as_deref()
            .map(|b| server_key(b, &facts.sent_by, &method));
        if let Some(&key) = index.as_ref().and_then(|i| self.server_index.get(i)) {
            self.on_retransmission(key, &req);
            return;
        }

        let info = match self.check_request(&req, &facts) {
            Ok(info) => info,
            Err(Refusal::Drop(why)) => {
                debug!(%from.addr, %method, %why, "request dropped");
                return;
            }
            Err(Refusal::Answer(code, why)) => {
                debug!(%from.addr, %method, code, why, "request refused");
                let mut resp = self.own_response(&req, code, None);
                add_warning(&mut resp, &self.warn_agent(), &why);
                self.answer_new(now, &facts, index, req.method == Method::Invite, resp);
                return;
            }
        };
        let Some(index) = index else {
            // check_request refuses requests without a branch.
            return;
        };

        if req.method == Method::Cancel {
            self.on_cancel(now, &req, &facts, index);
            return;
        }
        if info.max_forwards == Some(0) {
            let resp = self.own_response(&req, 483, None);
            self.answer_new(now, &facts, Some(index), req.method == Method::Invite, resp);
            return;
        }
        if let Some(tags) = required_extensions(&req) {
            // vmail supports no extension (see SUPPORTED): RFC 3261 §8.2.2.3.
            let mut resp = self.own_response(&req, 420, None);
            resp.headers
                .push(Header::Unsupported(Unsupported::new(tags)));
            self.answer_new(now, &facts, Some(index), req.method == Method::Invite, resp);
            return;
        }
        if method_support_of(req.method) != MethodSupport::Allowed {
            let mut resp = self.own_response(&req, 405, None);
            resp.headers.push(Header::Allow(Allow::new(ALLOW)));
            self.answer_new(now, &facts, Some(index), false, resp);
            return;
        }
        let invite = req.method == Method::Invite;
        let tx = self.open_server_tx(now, index, invite, facts.reply_to);
        if invite {
            if let Some(t) = self.txs.get_mut(&tx) {
                t.origin = Some(ack_key(&info.call_id, info.from_tag.as_deref(), info.cseq));
            }
        }
        trace!(?tx, %method, "new server transaction");
        self.events.push_back(Event::Request {
            tx,
            request: req,
            from,
            info,
        });
    }

    /// Validate a request that opens a transaction. A request missing one
    /// of the headers a response copies cannot be answered: dropped.
    fn check_request(&self, req: &Request, facts: &ViaFacts) -> Result<RequestInfo, Refusal> {
        let info = RequestInfo::of(req).map_err(|e| match e {
            SipError::MissingHeader(_) => Refusal::Drop(e.to_string()),
            _ => Refusal::Answer(400, e.to_string()),
        })?;
        if facts.branch.is_none() {
            return Err(Refusal::Answer(400, "missing Via branch".into()));
        }
        let declared = match req.headers.iter().find_map(|h| match h {
            Header::ContentLength(cl) => Some(cl.value().trim()),
            _ => None,
        }) {
            None => None,
            Some(v) => Some(v.parse::<usize>().map_err(|_| {
                Refusal::Answer(400, "malformed Content-Length header".to_string())
            })?),
        };
        if declared.is_some_and(|d| d > req.body.len()) {
            return Err(Refusal::Answer(
                400,
                "body shorter than Content-Length".into(),
            ));
        }
        Ok(info)
    }

    /// A response the endpoint makes itself, with a To tag for finals.
    fn own_response(&self, req: &Request, code: u16, tag: Option<&str>) -> Response {
        let fresh;
        let tag = match tag {
            Some(t) => Some(t),
            None if code > 100 => {
                fresh = new_tag();
                Some(fresh.as_str())
            }
            None => None,
        };
        let mut resp = make_response(req, code, None, tag);
        self.brand(&mut resp);
        resp
    }

    /// The warn-agent of our Warning headers: our host and port.
    fn warn_agent(&self) -> String {
        rsipstack::sip::HostWithPort::from(self.cfg.local_addr).to_string()
    }

    fn brand(&self, resp: &mut Response) {
        for h in resp.headers.iter_mut() {
            if let Header::Server(s) = h {
                *s = Server::new(self.cfg.user_agent.clone());
            }
        }
    }

    /// Answer a request the endpoint refuses: in a new server transaction
    /// when it can be keyed (so retransmissions and the ACK are absorbed),
    /// else statelessly.
    fn answer_new(
        &mut self,
        now: Instant,
        facts: &ViaFacts,
        index: Option<String>,
        invite: bool,
        resp: Response,
    ) {
        match index {
            Some(index) => {
                let tx = self.open_server_tx(now, index, invite, facts.reply_to);
                if let Err(e) = self.respond(now, tx, resp) {
                    warn!(error = %e, "could not answer a refused request");
                }
            }
            None => {
                let mut resp = resp;
                set_content_length(&mut resp.headers, 0);
                self.transmits.push_back(Transmit {
                    to: facts.reply_to,
                    bytes: resp.to_bytes(),
                });
            }
        }
    }

    fn open_server_tx(
        &mut self,
        now: Instant,
        index: String,
        invite: bool,
        reply_to: Peer,
    ) -> TxKey {
        let key = self.new_key();
        let (state, limit) = if invite {
            (
                TxState::InviteServer(InviteServer::Proceeding { provisional: None }),
                INVITE_ANSWER_LIMIT,
            )
        } else {
            (
                TxState::NonInviteServer(NonInviteServer::Trying),
                64 * self.cfg.t1,
            )
        };
        let mut tx = Transaction {
            peer: reply_to,
            index: index.clone(),
            ack_index: None,
            to_tag: None,
            origin: None,
            timers: Armed::default(),
            state,
        };
        self.timers
            .arm(&mut tx.timers, key, Slot::Lifetime, now + limit);
        self.txs.insert(key, tx);
        self.server_index.insert(index, key);
        key
    }

    /// A request matching an existing server transaction.
    fn on_retransmission(&mut self, key: TxKey, req: &Request) {
        let unanswered_invite = self.txs.get(&key).is_some_and(|t| {
            matches!(
                t.state,
                TxState::InviteServer(InviteServer::Proceeding { provisional: None })
            )
        });
        // RFC 3261 §17.2.1: a retransmitted INVITE the application has not
        // answered yet gets a 100 Trying.
        let trying = unanswered_invite.then(|| self.own_response(req, 100, None).to_bytes());
        let Some(t) = self.txs.get_mut(&key) else {
            return;
        };
        let resend = match &mut t.state {
            TxState::InviteServer(InviteServer::Proceeding { provisional }) => {
                if provisional.is_none() {
                    *provisional = trying;
                }
                provisional.clone()
            }
            TxState::InviteServer(
                InviteServer::Completed { response, .. } | InviteServer::Accepted { response, .. },
            ) => Some(response.clone()),
            TxState::NonInviteServer(NonInviteServer::Proceeding { provisional }) => {
                Some(provisional.clone())
            }
            TxState::NonInviteServer(NonInviteServer::Completed { response }) => {
                Some(response.clone())
            }
            _ => None,
        };
        trace!(
            ?key,
            resend = resend.is_some(),
            "request retransmission absorbed"
        );
        if let Some(bytes) = resend {
            self.transmits.push_back(Transmit { to: t.peer, bytes });
        }
    }

    fn on_cancel(&mut self, now: Instant, req: &Request, facts: &ViaFacts, index: String) {
        let invite_index = facts
            .branch
            .as_deref()
            .map(|b| server_key(b, &facts.sent_by, "INVITE"));
        // RFC 3261 §9.1: a CANCEL has the Call-ID, From and CSeq number of
        // the INVITE it cancels; one that matches the branch but not those
        // is not for this INVITE. (An INVITE the endpoint refused by itself
        // has no origin and can no longer be cancelled anyway.)
        let origin = RequestInfo::of(req)
            .ok()
            .map(|i| ack_key(&i.call_id, i.from_tag.as_deref(), i.cseq));
        let invite = invite_index
            .and_then(|i| self.server_index.get(&i).copied())
            .and_then(|k| self.txs.get(&k).map(|t| (k, t)))
            .filter(|(_, t)| t.origin.is_none() || t.origin == origin);
        let (code, pending, tag) = match invite {
            None => (481, None, None),
            Some((k, t)) => {
                let pending = matches!(
                    t.state,
                    TxState::InviteServer(InviteServer::Proceeding { .. })
                );
                (200, pending.then_some(k), t.to_tag.clone())
            }
        };
        let resp = self.own_response(req, code, tag.as_deref());
        self.answer_new(now, facts, Some(index), false, resp);
        if let Some(invite_tx) = pending {
            debug!(?invite_tx, "INVITE cancelled");
            self.events.push_back(Event::Cancel { invite_tx });
        }
    }

    fn on_ack(&mut self, now: Instant, from: Peer, req: Request, facts: &ViaFacts) {
        let l = 64 * self.cfg.t1;
        // An ACK for a non-2xx final has the INVITE's branch.
        if let Some(branch) = facts.branch.as_deref() {
            let index = server_key(branch, &facts.sent_by, "INVITE");
            if let Some(&key) = self.server_index.get(&index) {
                if let Some(t) = self.txs.get_mut(&key) {
                    match t.state {
                        TxState::InviteServer(InviteServer::Completed { .. }) => {
                            t.state = TxState::InviteServer(InviteServer::Confirmed);
                            self.timers.disarm_all(&mut t.timers);
                            if t.peer.transport.is_reliable() {
                                self.remove_tx(key);
                            } else {
                                self.timers.arm(
                                    &mut t.timers,
                                    key,
                                    Slot::Lifetime,
                                    now + self.cfg.t4,
                                );
                            }
                            trace!(?key, "ACK for a non-2xx final absorbed");
                            return;
                        }
                        TxState::InviteServer(InviteServer::Confirmed | InviteServer::Acked) => {
                            return;
                        }
                        TxState::InviteServer(InviteServer::Proceeding { .. }) => {
                            debug!(?key, "ACK before any final response dropped");
                            return;
                        }
                        // A 2xx ACK reusing the INVITE branch: matched below.
                        _ => {}
                    }
                }
            }
        }
        // An ACK for a 2xx: its own branch; matched by Call-ID and CSeq.
        let Ok(info) = RequestInfo::of(&req) else {
            debug!(%from.addr, "malformed ACK dropped");
            return;
        };
        let index = ack_key(&info.call_id, info.from_tag.as_deref(), info.cseq);
        if let Some(&key) = self.ack_index.get(&index) {
            if let Some(t) = self.txs.get_mut(&key) {
                // The ACK of a 2xx is inside the dialog: it carries our tag.
                let tag_ok = match &t.to_tag {
                    Some(ours) => info.to_tag.as_ref() == Some(ours),
                    None => true,
                };
                match t.state {
                    TxState::InviteServer(InviteServer::Accepted { .. }) if tag_ok => {
                        t.state = TxState::InviteServer(InviteServer::Acked);
                        self.timers.disarm(&mut t.timers, Slot::Retransmit);
                        self.timers.arm(&mut t.timers, key, Slot::Lifetime, now + l);
                        trace!(?key, "2xx acknowledged");
                        self.events.push_back(Event::Ack { request: req, from });
                        return;
                    }
                    TxState::InviteServer(InviteServer::Acked) if tag_ok => {
                        trace!(?key, "duplicate ACK absorbed");
                        return;
                    }
                    _ => {}
                }
            }
        }
        trace!(%from.addr, "ACK without a transaction");
        self.events.push_back(Event::Ack { request: req, from });
    }

    /// Answer bytes rsip could not parse (or too large ones) when the
    /// request line and the headers a response copies can be read.
    fn answer_unparsable(&mut self, now: Instant, from: Peer, bytes: &[u8], code: u16) {
        let Some(s) = salvage(bytes) else {
            debug!(%from.addr, "unreadable SIP message dropped");
            return;
        };
        if s.method == "ACK" {
            return;
        }
        let mut resp = s.response(code, None, &new_tag(), &self.cfg.user_agent);
        let facts = match resp.via_header_mut() {
            Ok(via) => stamp_top_via(via, &from),
            Err(_) => None,
        };
        let Some(facts) = facts else {
            debug!(%from.addr, "unparsable request with a broken Via dropped");
            return;
        };
        let index = facts
            .branch
            .as_deref()
            .map(|b| server_key(b, &facts.sent_by, &s.method));
        if let Some(&key) = index.as_ref().and_then(|i| self.server_index.get(i)) {
            if let Some(t) = self.txs.get(&key) {
                if let TxState::InviteServer(InviteServer::Completed { response, .. })
                | TxState::NonInviteServer(NonInviteServer::Completed { response }) = &t.state
                {
                    self.transmits.push_back(Transmit {
                        to: t.peer,
                        bytes: response.clone(),
                    });
                }
            }
            return;
        }
        let why = match code {
            413 => "message too large",
            501 => "method not implemented",
            _ => "malformed request",
        };
        if code == 501 {
            resp.headers.push(Header::Allow(Allow::new(ALLOW)));
        }
        add_warning(&mut resp, &self.warn_agent(), why);
        self.answer_new(now, &facts, index, s.method == "INVITE", resp);
    }

    // ----- incoming responses ------------------------------------------

    fn on_response(&mut self, now: Instant, from: Peer, resp: Response) {
        let branch = resp
            .top_via_header()
            .ok()
            .and_then(|v| v.typed().ok())
            .and_then(|v| v.branch().map(|b| b.value().to_string()));
        let method = resp.cseq_header().ok().and_then(|c| c.method().ok());
        let (Some(branch), Some(method)) = (branch, method) else {
            debug!(%from.addr, "response without Via branch or CSeq dropped");
            return;
        };
        let Some(&key) = self
            .client_index
            .get(&client_key(&branch, &method.to_string()))
        else {
            trace!(%from.addr, "response matching no transaction dropped");
            return;
        };
        let code = resp.status_code.code();
        let Some(t) = self.txs.get_mut(&key) else {
            return;
        };
        let TxState::Client(state) = &mut t.state else {
            return;
        };
        match state {
            Client::Trying { request, .. } | Client::Proceeding { request } => {
                if code < 200 {
                    let request = std::mem::take(request);
                    *state = Client::Proceeding { request };
                } else {
                    *state = Client::Completed;
                    self.timers.disarm_all(&mut t.timers);
                    if t.peer.transport.is_reliable() {
                        self.remove_tx(key);
                    } else {
                        self.timers
                            .arm(&mut t.timers, key, Slot::Lifetime, now + self.cfg.t4);
                    }
                }
                self.events.push_back(Event::Response {
                    tx: key,
                    response: resp,
                });
            }
            Client::Completed => trace!(?key, "response retransmission absorbed"),
        }
    }

    // ----- timers ------------------------------------------------------

    fn on_timer(&mut self, now: Instant, deadline: Instant, key: TxKey, slot: Slot) {
        let t2 = self.cfg.t2;
        let Some(t) = self.txs.get_mut(&key) else {
            return;
        };
        // Next retransmission: keep the schedule even if we woke up late,
        // but never fire into the past.
        let next = |interval: Duration| {
            let at = deadline + interval;
            if at > now {
                at
            } else {
                now + interval
            }
        };
        match (&mut t.state, slot) {
            (
                TxState::InviteServer(
                    InviteServer::Completed { response, interval }
                    | InviteServer::Accepted { response, interval },
                ),
                Slot::Retransmit,
            ) => {
                *interval = (*interval * 2).min(t2);
                let at = next(*interval);
                self.transmits.push_back(Transmit {
                    to: t.peer,
                    bytes: response.clone(),
                });
                self.timers.arm(&mut t.timers, key, Slot::Retransmit, at);
            }
            (TxState::Client(Client::Trying { request, interval }), Slot::Retransmit) => {
                *interval = (*interval * 2).min(t2);
                let at = next(*interval);
                self.transmits.push_back(Transmit {
                    to: t.peer,
                    bytes: request.clone(),
                });
                self.timers.arm(&mut t.timers, key, Slot::Retransmit, at);
            }
            (TxState::Client(Client::Proceeding { request }), Slot::Retransmit) => {
                let at = next(t2);
                self.transmits.push_back(Transmit {
                    to: t.peer,
                    bytes: request.clone(),
                });
                self.timers.arm(&mut t.timers, key, Slot::Retransmit, at);
            }
            (TxState::InviteServer(InviteServer::Accepted { .. }), Slot::Lifetime) => {
                debug!(?key, "2xx never acknowledged");
                self.events.push_back(Event::AckTimeout { tx: key });
                self.remove_tx(key);
            }
            (
                TxState::Client(Client::Trying { .. } | Client::Proceeding { .. }),
                Slot::Lifetime,
            ) => {
                debug!(?key, "request timed out");
                self.events.push_back(Event::RequestTimeout { tx: key });
                self.remove_tx(key);
            }
            (TxState::InviteServer(InviteServer::Completed { .. }), Slot::Lifetime) => {
                debug!(?key, "ACK for a non-2xx final never came (timer H)");
                self.remove_tx(key);
            }
            (
                TxState::InviteServer(InviteServer::Proceeding { .. })
                | TxState::NonInviteServer(
                    NonInviteServer::Trying | NonInviteServer::Proceeding { .. },
                ),
                Slot::Lifetime,
            ) => {
                warn!(
                    ?key,
                    "request never answered by the application; transaction dropped"
                );
                self.remove_tx(key);
            }
            (_, Slot::Lifetime) => {
                trace!(?key, "transaction ended");
                self.remove_tx(key);
            }
            (_, Slot::Retransmit) => {}
        }
    }

    /// Whether every index is empty (no state left behind).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.txs.is_empty()
            && self.server_index.is_empty()
            && self.client_index.is_empty()
            && self.ack_index.is_empty()
            && self.timers.next_deadline().is_none()
    }

    fn remove_tx(&mut self, key: TxKey) {
        let Some(mut t) = self.txs.remove(&key) else {
            return;
        };
        self.timers.disarm_all(&mut t.timers);
        let index = match t.state {
            TxState::Client(_) => &mut self.client_index,
            _ => &mut self.server_index,
        };
        if index.get(&t.index) == Some(&key) {
            index.remove(&t.index);
        }
        if let Some(a) = t.ack_index {
            if self.ack_index.get(&a) == Some(&key) {
                self.ack_index.remove(&a);
            }
        }
    }
}

/// The option tags of the request's `Require` headers, comma-joined, when
/// there are any (vmail supports none).
fn required_extensions(req: &Request) -> Option<String> {
    let mut tags: Vec<&str> = Vec::new();
    for h in req.headers.iter() {
        if let Header::Require(r) = h {
            tags.extend(
                r.value()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty()),
            );
        }
    }
    (!tags.is_empty()).then(|| tags.join(", "))
}
