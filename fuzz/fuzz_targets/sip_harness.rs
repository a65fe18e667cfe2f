//! What the SIP server does with the endpoint's events, without sockets or
//! tasks: the endpoint parses and answers by itself what it can; requests
//! for the application get the answers `runtime/sip_server.rs` gives them
//! (an INVITE with an SDP offer is answered 200 with an SDP answer and opens
//! a dialog; BYE, INFO, re-INVITE go through the dialog), then the timers
//! run out on a fixed clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vmail::sdp;
use vmail::sip::{
    caller, dtmf_from_info, make_response, options_response, set_body, unsupported_method_response,
    Dialog, Endpoint, EndpointConfig, Event, Method, Peer, Request, TxKey,
};

/// One fixed `now` for the whole run, so an input always takes the same path.
pub fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

pub fn local() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060)
}

pub fn remote() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 5062)
}

pub struct Harness {
    pub endpoint: Endpoint,
    dialogs: Vec<Dialog>,
    tags: u32,
}

impl Harness {
    pub fn new() -> Self {
        // A size limit fuzz inputs reach: oversized UDP is dropped, TCP
        // answered 413.
        let mut cfg = EndpointConfig::new(local());
        cfg.max_message_size = 2048;
        Harness {
            endpoint: Endpoint::new(cfg),
            dialogs: Vec::new(),
            tags: 0,
        }
    }

    /// One message (a datagram or a framed TCP message) from `from`, then
    /// the application's answers.
    pub fn input(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.endpoint.handle_input(now, from, bytes);
        self.events(now);
    }

    /// Runs the timers up to five minutes past `now` (retransmissions,
    /// timers H/J/L/F, the 2xx without ACK). Every transaction has ended by
    /// then: nothing an input does keeps state alive for longer.
    pub fn run_timers(&mut self, now: Instant) {
        let end = now + Duration::from_secs(300);
        let mut steps = 0;
        while let Some(deadline) = self.endpoint.poll_timeout() {
            if deadline > end || steps > 10_000 {
                break;
            }
            steps += 1;
            self.endpoint.handle_timeout(deadline.max(now));
            self.events(deadline.max(now));
        }
        assert_eq!(
            self.endpoint.transaction_count(),
            0,
            "transactions left after five minutes ({steps} timer steps)"
        );
    }

    fn events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            if let Event::Request {
                tx, request, from, ..
            } = ev
            {
                self.request(now, tx, &request, from);
            }
            while self.endpoint.poll_transmit().is_some() {}
        }
        while self.endpoint.poll_transmit().is_some() {}
    }

    fn respond(&mut self, now: Instant, tx: TxKey, req: &Request, code: u16, tag: Option<&str>) {
        let resp = make_response(req, code, None, tag);
        let _ = self.endpoint.respond(now, tx, resp);
    }

    fn in_dialog(&mut self, req: &Request) -> Option<usize> {
        let i = self.dialogs.iter().position(|d| d.matches(req))?;
        self.dialogs[i].on_remote_request(req).ok().map(|()| i)
    }

    fn request(&mut self, now: Instant, tx: TxKey, req: &Request, from: Peer) {
        match req.method {
            Method::Invite => {
                let _ = caller(req);
                self.respond(now, tx, req, 100, None);
                if let Some(i) = self.in_dialog(req) {
                    // A re-INVITE: a new offer, the dialog's tag.
                    let tag = self.dialogs[i].local_tag().to_owned();
                    self.answer_offer(now, tx, req, &tag);
                    return;
                }
                self.tags += 1;
                let tag = format!("fz{}", self.tags);
                match Dialog::new_uas(req, &tag, "<sip:vmail@192.0.2.10:5060>") {
                    Ok(d) => {
                        if self.answer_offer(now, tx, req, &tag) {
                            self.dialogs.push(d);
                        }
                    }
                    Err(_) => self.respond(now, tx, req, 400, None),
                }
            }
            Method::Bye => match self.in_dialog(req) {
                Some(i) => {
                    self.respond(now, tx, req, 200, None);
                    self.dialogs.remove(i);
                }
                None => self.respond(now, tx, req, 481, None),
            },
            Method::Info => match self.in_dialog(req) {
                Some(i) => {
                    let _ = dtmf_from_info(req);
                    self.respond(now, tx, req, 200, None);
                    // vmail hangs up a call by itself too.
                    if let Ok(bye) = self.dialogs[i].make_request(Method::Bye) {
                        let to = self.dialogs[i]
                            .remote_peer_hint()
                            .map_or(from, |a| Peer { addr: a, ..from });
                        let _ = self.endpoint.send_request(now, bye, to);
                    }
                }
                None => self.respond(now, tx, req, 481, None),
            },
            Method::Options => {
                let resp = options_response(req, None);
                let _ = self.endpoint.respond(now, tx, resp);
            }
            Method::Ack | Method::Cancel => {}
            Method::Subscribe => self.respond(now, tx, req, 489, None),
            _ => {
                let resp = unsupported_method_response(req, None)
                    .unwrap_or_else(|| make_response(req, 501, None, None));
                let _ = self.endpoint.respond(now, tx, resp);
            }
        }
    }

    /// 200 with an SDP answer, or 488; true when answered 200.
    fn answer_offer(&mut self, now: Instant, tx: TxKey, req: &Request, tag: &str) -> bool {
        let prefer = [sdp::Codec::Pcma, sdp::Codec::Pcmu];
        let neg = sdp::parse(req.body())
            .ok()
            .and_then(|offer| sdp::negotiate(&offer, &prefer).ok());
        let Some(neg) = neg else {
            self.respond(now, tx, req, 488, Some(tag));
            return false;
        };
        // An SDES offer is answered with our own key, as the server does.
        let key = sdp::SrtpKey([7; sdp::SRTP_KEY_LEN]);
        let body = sdp::answer(
            &neg,
            &sdp::AnswerParams {
                local_ip: local().ip(),
                local_port: 20_000,
                session_id: 1,
                session_version: 1,
                username: "vmail",
                srtp_key: neg.srtp.as_ref().map(|_| &key),
            },
        );
        let mut ok = make_response(req, 200, None, Some(tag));
        set_body(&mut ok, "application/sdp", body.into_bytes());
        let _ = self.endpoint.respond(now, tx, ok);
        true
    }
}
