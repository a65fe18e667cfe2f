//! Endpoint scenarios on simulated time: every `Instant` is one base
//! instant plus a `Duration`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rsipstack::sip::headers::untyped::ToTypedHeader;

use super::*;

const VM: &str = "192.0.2.10:5060";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn udp(s: &str) -> Peer {
    Peer::udp(addr(s))
}

fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig::new(addr(VM)))
}

/// A request from the caller at 192.0.2.1:5060.
fn request(method: &str, branch: &str, call_id: &str, cseq: u32, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:vm@192.0.2.10 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=alice1\r\n\
         To: <sip:vm@example.com>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn invite(branch: &str, call_id: &str) -> String {
    request("INVITE", branch, call_id, 1, None)
}

fn caller() -> Peer {
    udp("192.0.2.1:5060")
}

fn transmits(ep: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn status_line(t: &Transmit) -> String {
    let text = String::from_utf8_lossy(&t.bytes);
    text.lines().next().unwrap_or_default().to_string()
}

fn text(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.bytes).into_owned()
}

/// The one new request event; panics otherwise.
fn take_request(ep: &mut Endpoint) -> (TxKey, Request) {
    let mut ev = events(ep);
    assert_eq!(ev.len(), 1, "{ev:?}");
    match ev.remove(0) {
        Event::Request { tx, request, .. } => (tx, request),
        other => panic!("expected a request, got {other:?}"),
    }
}

/// Run timers up to `until` (relative to `t0`), collecting what is sent
/// and what happens, with the time it happened.
#[allow(clippy::type_complexity)]
fn run_until(
    ep: &mut Endpoint,
    t0: Instant,
    until: Duration,
) -> (Vec<(Duration, Transmit)>, Vec<(Duration, Event)>) {
    let (mut tx, mut ev) = (Vec::new(), Vec::new());
    while let Some(at) = ep.poll_timeout() {
        if at > t0 + until {
            break;
        }
        ep.handle_timeout(at);
        let rel = at - t0;
        tx.extend(transmits(ep).into_iter().map(|t| (rel, t)));
        ev.extend(events(ep).into_iter().map(|e| (rel, e)));
    }
    (tx, ev)
}

/// INVITE in, 100/180/200 out; returns the transaction and the request.
fn answered_call(ep: &mut Endpoint, t0: Instant, call_id: &str) -> TxKey {
    ep.handle_input(t0, caller(), invite("z9hG4bKinv1", call_id).as_bytes());
    let (tx, req) = take_request(ep);
    ep.respond(t0, tx, make_response(&req, 100, None, None))
        .unwrap();
    ep.respond(t0, tx, make_response(&req, 180, None, Some("vm1")))
        .unwrap();
    ep.respond(t0, tx, make_response(&req, 200, None, Some("vm1")))
        .unwrap();
    let sent = transmits(ep);
    assert_eq!(
        sent.iter().map(status_line).collect::<Vec<_>>(),
        vec![
            "SIP/2.0 100 Trying",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK"
        ]
    );
    assert!(sent.iter().all(|t| t.to == caller()));
    tx
}

#[test]
fn two_xx_is_resent_on_the_t1_t2_schedule_until_ack_timeout() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let tx = answered_call(&mut ep, t0, "sched-1");
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(40));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(sent.iter().all(|(_, t)| status_line(t) == "SIP/2.0 200 OK"));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0, Duration::from_secs(32));
    assert_eq!(ev[0].1, Event::AckTimeout { tx });
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn a_late_ack_stops_the_2xx_retransmission() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    answered_call(&mut ep, t0, "late-ack");
    // The first ACK is lost; the 2xx is resent twice.
    let (sent, _) = run_until(&mut ep, t0, ms(2000));
    assert_eq!(sent.len(), 2);
    // The ACK has its own branch and the To tag of the 2xx.
    let ack = request("ACK", "z9hG4bKack1", "late-ack", 1, Some("vm1"));
    ep.handle_input(t0 + ms(2100), caller(), ack.as_bytes());
    let ev = events(&mut ep);
    assert!(matches!(&ev[..], [Event::Ack { request, .. }] if request.method == Method::Ack));
    // A second copy of the ACK (answering a crossing 2xx) is absorbed.
    ep.handle_input(t0 + ms(2200), caller(), ack.as_bytes());
    assert!(events(&mut ep).is_empty());
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(60));
    assert!(sent.is_empty(), "no retransmission after the ACK");
    assert!(ev.is_empty(), "no AckTimeout after the ACK");
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
}

#[test]
fn an_ack_with_a_foreign_to_tag_does_not_stop_the_2xx() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    answered_call(&mut ep, t0, "tags");
    let ack = request("ACK", "z9hG4bKack2", "tags", 1, Some("other"));
    ep.handle_input(t0 + ms(100), caller(), ack.as_bytes());
    assert!(matches!(&events(&mut ep)[..], [Event::Ack { .. }]));
    let (sent, _) = run_until(&mut ep, t0, ms(600));
    assert_eq!(sent.len(), 1, "still retransmitting");
}

#[test]
fn an_ack_without_our_to_tag_does_not_stop_the_2xx() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    answered_call(&mut ep, t0, "tagless");
    let ack = request("ACK", "z9hG4bKack3", "tagless", 1, None);
    ep.handle_input(t0 + ms(100), caller(), ack.as_bytes());
    events(&mut ep);
    let (sent, _) = run_until(&mut ep, t0, ms(600));
    assert_eq!(sent.len(), 1, "still retransmitting");
}

#[test]
fn two_invites_sharing_a_call_id_are_acked_and_cancelled_apart() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    // Two INVITEs with one Call-ID and CSeq, different From tags.
    let first = invite("z9hG4bKone", "shared");
    let second = invite("z9hG4bKtwo", "shared").replace("tag=alice1", "tag=mallory");
    ep.handle_input(t0, caller(), first.as_bytes());
    let (tx1, req1) = take_request(&mut ep);
    ep.handle_input(t0, udp("192.0.2.66:5060"), second.as_bytes());
    let (tx2, req2) = take_request(&mut ep);
    ep.respond(t0, tx1, make_response(&req1, 200, None, Some("vmA")))
        .unwrap();
    ep.respond(t0, tx2, make_response(&req2, 180, None, Some("vmB")))
        .unwrap();
    transmits(&mut ep);

    // A CANCEL with the second INVITE's branch but the first one's From
    // tag cancels nothing.
    let forged = request("CANCEL", "z9hG4bKtwo", "shared", 1, None);
    ep.handle_input(t0 + ms(10), caller(), forged.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        status_line(&sent[0]),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(events(&mut ep).is_empty());

    // The second caller's ACK (its From tag, our first tag) does not
    // acknowledge the first call's 2xx.
    let ack = request("ACK", "z9hG4bKack9", "shared", 1, Some("vmA"))
        .replace("tag=alice1", "tag=mallory");
    ep.handle_input(t0 + ms(20), udp("192.0.2.66:5060"), ack.as_bytes());
    events(&mut ep);
    let (sent, _) = run_until(&mut ep, t0, ms(600));
    assert_eq!(sent.len(), 1, "the first 2xx is still resent");

    // The first caller's own ACK does.
    let ack = request("ACK", "z9hG4bKack1", "shared", 1, Some("vmA"));
    ep.handle_input(t0 + ms(700), caller(), ack.as_bytes());
    assert!(matches!(&events(&mut ep)[..], [Event::Ack { .. }]));
    let (sent, _) = run_until(&mut ep, t0, ms(5000));
    assert!(sent.is_empty(), "no 2xx after the right ACK");
}

#[test]
fn cancel_before_the_answer_then_487_and_its_ack_absorbed() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, caller(), invite("z9hG4bKc1", "cancel-1").as_bytes());
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 180, None, Some("vmC")))
        .unwrap();
    transmits(&mut ep);

    let cancel = request("CANCEL", "z9hG4bKc1", "cancel-1", 1, None);
    ep.handle_input(t0 + ms(300), caller(), cancel.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(text(&sent[0]).contains("CSeq: 1 CANCEL"));
    assert!(
        text(&sent[0]).contains(";tag=vmC"),
        "same To tag as the INVITE's responses"
    );
    assert_eq!(events(&mut ep), vec![Event::Cancel { invite_tx: tx }]);

    // A retransmitted CANCEL gets the same 200 again, no second event.
    ep.handle_input(t0 + ms(400), caller(), cancel.as_bytes());
    assert_eq!(transmits(&mut ep).len(), 1);
    assert!(events(&mut ep).is_empty());

    ep.respond(
        t0 + ms(310),
        tx,
        make_response(&req, 487, None, Some("vmC")),
    )
    .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 487 Request Terminated");
    // The ACK for the 487 is lost once: timer G resends it.
    let (sent, _) = run_until(&mut ep, t0, ms(900));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ms(810));
    // The ACK for a non-2xx final has the INVITE's branch; absorbed.
    let ack = request("ACK", "z9hG4bKc1", "cancel-1", 1, Some("vmC"));
    ep.handle_input(t0 + ms(1000), caller(), ack.as_bytes());
    assert!(events(&mut ep).is_empty());
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(60));
    assert!(sent.is_empty());
    assert!(ev.is_empty());
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
}

#[test]
fn cancel_racing_the_200_gets_200_and_no_event() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    answered_call(&mut ep, t0, "race");
    let cancel = request("CANCEL", "z9hG4bKinv1", "race", 1, None);
    ep.handle_input(t0 + ms(10), caller(), cancel.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(text(&sent[0]).contains("CSeq: 1 CANCEL"));
    assert!(events(&mut ep).is_empty());
    // The call goes on: the 2xx is still resent until the ACK.
    let (sent, _) = run_until(&mut ep, t0, ms(600));
    assert_eq!(sent.len(), 1);
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let cancel = request("CANCEL", "z9hG4bKnone", "nothing", 1, None);
    ep.handle_input(t0, caller(), cancel.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        status_line(&sent[0]),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(events(&mut ep).is_empty());
}

#[test]
fn a_retransmitted_invite_gets_the_stored_provisional_or_final() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let inv = invite("z9hG4bKr1", "retrans");
    ep.handle_input(t0, caller(), inv.as_bytes());
    let (tx, req) = take_request(&mut ep);
    // Not answered yet: the endpoint sends 100 Trying itself.
    ep.handle_input(t0 + ms(500), caller(), inv.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        sent.iter().map(status_line).collect::<Vec<_>>(),
        vec!["SIP/2.0 100 Trying"]
    );
    assert!(
        events(&mut ep).is_empty(),
        "a retransmission is no new request"
    );

    ep.respond(t0 + ms(600), tx, make_response(&req, 180, None, Some("r")))
        .unwrap();
    transmits(&mut ep);
    ep.handle_input(t0 + ms(1500), caller(), inv.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        sent.iter().map(status_line).collect::<Vec<_>>(),
        vec!["SIP/2.0 180 Ringing"]
    );

    ep.respond(t0 + ms(1600), tx, make_response(&req, 486, None, Some("r")))
        .unwrap();
    transmits(&mut ep);
    ep.handle_input(t0 + ms(1700), caller(), inv.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        sent.iter().map(status_line).collect::<Vec<_>>(),
        vec!["SIP/2.0 486 Busy Here"]
    );
    assert!(events(&mut ep).is_empty());
    // Answering twice is refused.
    assert_eq!(
        ep.respond(t0, tx, make_response(&req, 200, None, Some("r"))),
        Err(SipError::AlreadyAnswered(tx))
    );
}

#[test]
fn a_non_invite_retransmission_is_absorbed_and_answered_from_the_store() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let opt = request("OPTIONS", "z9hG4bKo1", "opt", 5, None);
    ep.handle_input(t0, caller(), opt.as_bytes());
    let (tx, req) = take_request(&mut ep);
    // Retransmitted before the answer: nothing to send, no new event.
    ep.handle_input(t0 + ms(500), caller(), opt.as_bytes());
    assert!(transmits(&mut ep).is_empty());
    assert!(events(&mut ep).is_empty());

    ep.respond(t0 + ms(600), tx, options_response(&req, Some("o")))
        .unwrap();
    let first = transmits(&mut ep);
    assert_eq!(first.len(), 1);
    ep.handle_input(t0 + ms(1500), caller(), opt.as_bytes());
    let again = transmits(&mut ep);
    assert_eq!(again, first);
    assert!(events(&mut ep).is_empty());
    // Timer J (64*T1 on UDP) forgets it.
    run_until(&mut ep, t0, ms(600 + 32_000));
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
}

#[test]
fn over_tcp_a_non_invite_transaction_ends_with_its_final_answer() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let peer = Peer::tcp(addr("192.0.2.1:40123"), ConnId(9));
    let bye = request("BYE", "z9hG4bKt1", "tcp", 2, Some("x")).replace("UDP", "TCP");
    ep.handle_input(t0, peer, bye.as_bytes());
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 200, None, None))
        .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent[0].to, peer, "the answer goes back on the connection");
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
}

#[test]
fn a_bye_inside_a_dialog_and_our_own_bye_out() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let inv = invite("z9hG4bKd1", "dialog-1");
    ep.handle_input(t0, caller(), inv.as_bytes());
    let (tx, req) = take_request(&mut ep);
    let mut dialog = Dialog::new_uas(&req, "vmD", "<sip:vm@192.0.2.10:5060>").unwrap();
    ep.respond(t0, tx, make_response(&req, 200, None, Some("vmD")))
        .unwrap();
    let ack = request("ACK", "z9hG4bKd2", "dialog-1", 1, Some("vmD"));
    ep.handle_input(t0 + ms(50), caller(), ack.as_bytes());
    transmits(&mut ep);
    let Event::Ack { request: ack, .. } = &events(&mut ep)[0] else {
        panic!("expected the ACK");
    };
    assert!(dialog.matches(ack));

    // The caller hangs up.
    let bye = request("BYE", "z9hG4bKd3", "dialog-1", 2, Some("vmD"));
    ep.handle_input(t0 + ms(5000), caller(), bye.as_bytes());
    let (bye_tx, bye) = take_request(&mut ep);
    assert!(dialog.matches(&bye));
    dialog.on_remote_request(&bye).unwrap();
    ep.respond(t0 + ms(5000), bye_tx, make_response(&bye, 200, None, None))
        .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(text(&sent[0]).contains("CSeq: 2 BYE"));
    assert!(text(&sent[0]).contains("To: <sip:vm@example.com>;tag=vmD"));

    // Another call where vmail hangs up: our BYE in a client transaction.
    let bye = dialog.make_request(Method::Bye).unwrap();
    let to = udp("192.0.2.1:5060");
    let ctx = ep.send_request(t0 + ms(6000), bye, to).unwrap();
    let sent = transmits(&mut ep);
    let out = text(&sent[0]);
    assert!(
        out.starts_with("BYE sip:alice@192.0.2.1:5060 SIP/2.0\r\n"),
        "{out}"
    );
    assert!(out.contains("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK"));
    assert!(out.contains("CSeq: 1 BYE"));
    assert!(out.contains("User-Agent: vmail/"));
    // The far end answers with the response built from our request.
    let theirs = Request::try_from(sent[0].bytes.as_slice()).unwrap();
    let ok = make_response(&theirs, 200, None, None).to_bytes();
    ep.handle_input(t0 + ms(6100), udp("192.0.2.1:5060"), &ok);
    match &events(&mut ep)[..] {
        [Event::Response { tx, response }] => {
            assert_eq!(*tx, ctx);
            assert_eq!(response.status_code.code(), 200);
        }
        other => panic!("{other:?}"),
    }
    // A retransmitted 200 is absorbed; timer K then ends the transaction.
    ep.handle_input(t0 + ms(6200), udp("192.0.2.1:5060"), &ok);
    assert!(events(&mut ep).is_empty());
    run_until(&mut ep, t0, Duration::from_secs(100));
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
}

#[test]
fn a_client_bye_is_retransmitted_then_times_out() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, caller(), invite("z9hG4bKb1", "bye-timeout").as_bytes());
    let (_, req) = take_request(&mut ep);
    let mut dialog = Dialog::new_uas(&req, "vmB", "<sip:vm@192.0.2.10>").unwrap();
    let ctx = ep
        .send_request(t0, dialog.make_request(Method::Bye).unwrap(), caller())
        .unwrap();
    let first = transmits(&mut ep);
    assert_eq!(first.len(), 1);
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(40));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(sent.iter().all(|(_, t)| t.bytes == first[0].bytes));
    let timeouts: Vec<_> = ev
        .iter()
        .filter(|(_, e)| matches!(e, Event::RequestTimeout { .. }))
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].0, Duration::from_secs(32));
    assert_eq!(timeouts[0].1, Event::RequestTimeout { tx: ctx });
}

#[test]
fn a_provisional_slows_client_retransmission_to_t2_and_tcp_never_retransmits() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, caller(), invite("z9hG4bKp1", "prov").as_bytes());
    let (_, req) = take_request(&mut ep);
    let mut dialog = Dialog::new_uas(&req, "vmP", "<sip:vm@192.0.2.10>").unwrap();
    ep.send_request(t0, dialog.make_request(Method::Info).unwrap(), caller())
        .unwrap();
    let sent = transmits(&mut ep);
    let theirs = Request::try_from(sent[0].bytes.as_slice()).unwrap();
    let trying = make_response(&theirs, 100, None, None).to_bytes();
    ep.handle_input(t0 + ms(100), caller(), &trying);
    assert!(matches!(&events(&mut ep)[..], [Event::Response { .. }]));
    let (sent, _) = run_until(&mut ep, t0, ms(9000));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 4500, 8500]);

    let mut ep = endpoint();
    let peer = Peer::tcp(addr("192.0.2.1:5060"), ConnId(1));
    ep.send_request(t0, dialog.make_request(Method::Bye).unwrap(), peer)
        .unwrap();
    let sent = transmits(&mut ep);
    assert!(text(&sent[0]).contains("Via: SIP/2.0/TCP 192.0.2.10:5060;"));
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(matches!(&ev[..], [(_, Event::RequestTimeout { .. })]));
}

#[test]
fn invite_and_ack_are_not_sent_in_client_transactions() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let req = Request::try_from(invite("z9hG4bKx", "no").as_str()).unwrap();
    assert!(matches!(
        ep.send_request(t0, req, caller()),
        Err(SipError::UnsupportedClientMethod(_))
    ));
}

#[test]
fn rport_and_received_are_stamped_and_responses_follow_them() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let nat = invite("z9hG4bKn1", "nat").replace(
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKn1",
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKn1;rport",
    );
    ep.handle_input(t0, udp("203.0.113.7:40000"), nat.as_bytes());
    let (tx, req) = take_request(&mut ep);
    let via = req.top_via_header().unwrap().typed().unwrap();
    assert_eq!(via.rport(), Some(Some(40000)));
    assert_eq!(via.received().unwrap().unwrap().to_string(), "203.0.113.7");
    ep.respond(t0, tx, make_response(&req, 100, None, None))
        .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent[0].to, udp("203.0.113.7:40000"));
    assert!(text(&sent[0]).contains(
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKn1;rport=40000;received=203.0.113.7\r\n"
    ));

    // No rport: the source address with the sent-by port.
    let plain = invite("z9hG4bKn2", "nat2").replace(
        "Via: SIP/2.0/UDP 192.0.2.1:5060;",
        "Via: SIP/2.0/UDP 10.0.0.1:5062;",
    );
    ep.handle_input(t0, udp("203.0.113.7:40000"), plain.as_bytes());
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 100, None, None))
        .unwrap();
    assert_eq!(transmits(&mut ep)[0].to, udp("203.0.113.7:5062"));
}

#[test]
fn a_broken_request_with_the_needed_headers_gets_400() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    // rsip parses it, the CSeq does not.
    let bad_cseq = invite("z9hG4bKbad1", "bad-1").replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    ep.handle_input(t0, caller(), bad_cseq.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 400 Bad Request");
    assert!(
        text(&sent[0]).contains("Warning: 399 192.0.2.10:5060 \"malformed CSeq header\"\r\n"),
        "{}",
        text(&sent[0])
    );
    assert!(text(&sent[0]).contains("CSeq: one INVITE"));
    assert!(events(&mut ep).is_empty());
    // The 400 is a final to an INVITE: its ACK is absorbed, not an event.
    let ack = request("ACK", "z9hG4bKbad1", "bad-1", 1, None);
    ep.handle_input(t0 + ms(10), caller(), ack.as_bytes());
    assert!(events(&mut ep).is_empty());

    // CSeq method differing from the request method.
    let mismatch =
        request("BYE", "z9hG4bKbad2", "bad-2", 1, Some("t")).replace("CSeq: 1 BYE", "CSeq: 1 INFO");
    ep.handle_input(t0, caller(), mismatch.as_bytes());
    assert_eq!(
        status_line(&transmits(&mut ep)[0]),
        "SIP/2.0 400 Bad Request"
    );

    // rsip cannot parse the request line at all (empty host); salvaged.
    let bad_uri =
        invite("z9hG4bKbad3", "bad-3").replace("INVITE sip:vm@192.0.2.10", "INVITE sip:vm@");
    ep.handle_input(t0, caller(), bad_uri.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 400 Bad Request");
    assert_eq!(sent[0].to, caller());
    // Its retransmission gets the same answer.
    ep.handle_input(t0 + ms(500), caller(), bad_uri.as_bytes());
    assert_eq!(transmits(&mut ep), sent);

    // A Via without branch.
    let no_branch =
        request("OPTIONS", "z9hG4bKx", "bad-4", 1, None).replace(";branch=z9hG4bKx", "");
    ep.handle_input(t0, caller(), no_branch.as_bytes());
    assert_eq!(
        status_line(&transmits(&mut ep)[0]),
        "SIP/2.0 400 Bad Request"
    );

    // Missing Call-ID: nothing to answer with.
    let no_call_id =
        request("OPTIONS", "z9hG4bKy", "bad-5", 1, None).replace("Call-ID: bad-5\r\n", "");
    ep.handle_input(t0, caller(), no_call_id.as_bytes());
    assert!(transmits(&mut ep).is_empty());

    // A body shorter than its Content-Length (UDP truncation).
    let short = request("INFO", "z9hG4bKz", "bad-6", 1, Some("t")).replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 50\r\n\r\nSignal=1\r\n",
    );
    ep.handle_input(t0, caller(), short.as_bytes());
    assert_eq!(
        status_line(&transmits(&mut ep)[0]),
        "SIP/2.0 400 Bad Request"
    );

    // Garbage: dropped.
    ep.handle_input(t0, caller(), b"hello world\r\n\r\n");
    assert!(transmits(&mut ep).is_empty());
    assert!(events(&mut ep).is_empty());
}

#[test]
fn a_required_extension_gets_420_with_unsupported() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let inv = invite("z9hG4bKreq", "req").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: 100rel\r\nRequire: timer\r\n",
    );
    ep.handle_input(t0, caller(), inv.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 420 Bad Extension");
    assert!(text(&sent[0]).contains("Unsupported: 100rel, timer\r\n"));
    assert!(events(&mut ep).is_empty());
}

#[test]
fn max_forwards_zero_gets_483() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let inv = invite("z9hG4bKmf", "mf").replace("Max-Forwards: 70", "Max-Forwards: 0");
    ep.handle_input(t0, caller(), inv.as_bytes());
    assert_eq!(
        status_line(&transmits(&mut ep)[0]),
        "SIP/2.0 483 Too Many Hops"
    );
    assert!(events(&mut ep).is_empty());
}

#[test]
fn unknown_methods_get_501_and_refused_ones_405() {
    assert_eq!(method_support("FOO"), MethodSupport::NotImplemented);
    assert_eq!(method_support("REGISTER"), MethodSupport::NotAllowed);
    assert_eq!(method_support("SUBSCRIBE"), MethodSupport::Allowed);
    let reg = Request::try_from(request("REGISTER", "z9hG4bKr", "reg", 1, None).as_str()).unwrap();
    let r = unsupported_method_response(&reg, Some("t")).unwrap();
    assert_eq!(r.status_code.code(), 405);
    assert!(r.to_string().contains(&format!("Allow: {ALLOW}\r\n")));
    let bye = Request::try_from(request("BYE", "z9hG4bKr", "bye", 1, None).as_str()).unwrap();
    assert!(unsupported_method_response(&bye, None).is_none());

    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(
        t0,
        caller(),
        request("FOO", "z9hG4bKf", "foo", 1, None).as_bytes(),
    );
    let sent = transmits(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 501 Not Implemented");
    assert!(text(&sent[0]).contains("Allow: INVITE"));
    for m in ["REGISTER", "PUBLISH", "MESSAGE", "REFER", "UPDATE", "PRACK"] {
        ep.handle_input(
            t0,
            caller(),
            request(m, &format!("z9hG4bK{m}"), m, 1, None).as_bytes(),
        );
        let sent = transmits(&mut ep);
        assert_eq!(
            status_line(&sent[0]),
            "SIP/2.0 405 Method Not Allowed",
            "{m}"
        );
        assert!(text(&sent[0]).contains(&format!("Allow: {ALLOW}")));
    }
    assert!(events(&mut ep).is_empty());
}

#[test]
fn oversized_messages_are_dropped_on_udp_and_answered_413_on_tcp() {
    let t0 = Instant::now();
    let mut cfg = EndpointConfig::new(addr(VM));
    cfg.max_message_size = 600;
    let mut ep = Endpoint::new(cfg);
    let body = "x".repeat(600);
    let big = invite("z9hG4bKbig", "big").replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Length: 600\r\n\r\n{body}"),
    );
    ep.handle_input(t0, caller(), big.as_bytes());
    assert!(transmits(&mut ep).is_empty());
    let peer = Peer::tcp(addr("192.0.2.1:5060"), ConnId(3));
    ep.handle_input(t0, peer, big.replace("UDP", "TCP").as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(
        status_line(&sent[0]),
        "SIP/2.0 413 Request Entity Too Large"
    );
    assert_eq!(sent[0].to, peer);
    assert!(events(&mut ep).is_empty());
}

#[test]
fn make_response_copies_the_dialog_headers_and_options_lists_capabilities() {
    let inv = invite("z9hG4bKm", "mk").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRecord-Route: <sip:10.0.0.2;lr>\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKp\r\n",
    );
    let req = Request::try_from(inv.as_str()).unwrap();
    let ok = make_response(&req, 200, None, Some("abc")).to_string();
    let lines: Vec<&str> = ok.split("\r\n").collect();
    assert_eq!(lines[0], "SIP/2.0 200 OK");
    assert_eq!(lines[1], "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm");
    assert_eq!(lines[2], "Record-Route: <sip:10.0.0.2;lr>");
    assert_eq!(lines[3], "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKp");
    assert!(ok.contains("To: <sip:vm@example.com>;tag=abc\r\n"));
    assert!(ok.contains("From: <sip:alice@example.com>;tag=alice1\r\n"));
    assert!(ok.contains("Call-ID: mk\r\n"));
    assert!(ok.contains("CSeq: 1 INVITE\r\n"));
    assert!(ok.contains(&format!("Server: {SERVER}\r\n")));
    assert!(ok.ends_with("Content-Length: 0\r\n\r\n"));
    // A 4xx carries no Record-Route; an existing To tag is kept.
    let busy = make_response(&req, 486, Some("Mailbox Busy"), Some("abc"));
    assert_eq!(busy.status_code.code(), 486);
    assert!(busy.to_string().starts_with("SIP/2.0 486 Mailbox Busy\r\n"));
    assert!(!busy.to_string().contains("Record-Route"));

    let opt = options_response(&req, Some("o")).to_string();
    assert!(opt.contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, SUBSCRIBE, NOTIFY\r\n"));
    assert!(opt.contains("Accept: application/sdp, application/dtmf-relay, application/dtmf\r\n"));
    assert!(opt.contains("Supported:"));
    assert!(opt.ends_with("Content-Length: 0\r\n\r\n"));

    let tag = new_tag();
    assert_eq!(tag.len(), 16);
    assert_ne!(tag, new_tag());
    assert!(new_branch().starts_with("z9hG4bK"));

    let mut with_body = make_response(&req, 200, None, Some("abc"));
    set_body(&mut with_body, "application/sdp", b"v=0\r\n".to_vec());
    let s = with_body.to_string();
    assert!(s.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
}

// ----- captured INVITEs -------------------------------------------------

const ASTERISK: &[u8] = include_bytes!("../../tests/data/sip/invite_diversion_asterisk.sip");
const BROADWORKS: &[u8] = include_bytes!("../../tests/data/sip/invite_history_info_sbc.sip");
const COMPACT_TCP: &[u8] = include_bytes!("../../tests/data/sip/invite_rfc4458_compact_tcp.sip");

fn parse(bytes: &[u8]) -> Request {
    Request::try_from(bytes).unwrap()
}

#[test]
fn captured_asterisk_invite_with_diversion_and_sdp() {
    let req = parse(ASTERISK);
    let info = RequestInfo::of(&req).unwrap();
    assert_eq!(info.method, Method::Invite);
    assert_eq!(info.cseq, 102);
    assert_eq!(info.from_tag.as_deref(), Some("as5c3e9d21"));
    let div = req.diversion_entries().unwrap();
    assert_eq!(div.len(), 2);
    assert_eq!(div[0].uri.user(), Some("2001"));
    assert_eq!(
        div[0].reason.as_ref().map(|r| r.as_str()),
        Some("user-busy")
    );
    let sdp = String::from_utf8(req.body.clone()).unwrap();
    assert!(sdp.starts_with("v=0\r\n"));
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    assert!(sdp.ends_with("a=sendrecv\r\n"));
}

#[test]
fn captured_broadworks_invite_with_history_info() {
    let req = parse(BROADWORKS);
    let hi = req.history_info_entries().unwrap();
    assert_eq!(hi.len(), 3);
    assert_eq!(hi[2].index, "1.1.1");
    assert_eq!(hi[2].mp.as_deref(), Some("1.1"));
    assert_eq!(hi[2].uri.user(), Some("voicemail"));
    assert_eq!(req.record_route_headers().len(), 1);
    assert_eq!(req.body.len(), {
        let text = String::from_utf8_lossy(BROADWORKS);
        text.split("\r\n\r\n").nth(1).unwrap().len()
    });
    // Through the endpoint: one request event, the two Vias intact.
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, udp("198.51.100.5:5060"), BROADWORKS);
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 180, None, Some("bw")))
        .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent[0].to, udp("198.51.100.5:5060"));
    let t = text(&sent[0]);
    assert!(t.contains(
        "Via: SIP/2.0/UDP 198.51.100.5:5060;branch=z9hG4bKk8s0r01d0g3h5e2;rport=5060\r\n"
    ));
    assert!(t.contains("Record-Route: <sip:198.51.100.5;lr;"));
}

#[test]
fn captured_compact_tcp_invite_with_rfc4458_target() {
    let req = parse(COMPACT_TCP);
    let info = RequestInfo::of(&req).unwrap();
    assert_eq!(info.call_id, "ZDk5YjQ0ZTY3NzVkMWU3ZGFlYjA0Mjk4ZWY2NDBhNTk");
    let target = req.uri.params.iter().find_map(|p| match p {
        rsipstack::sip::Param::Other(n, v) if n.value() == "target" => v.clone(),
        _ => None,
    });
    assert_eq!(
        target.map(|v| v.value().to_string()).as_deref(),
        Some("sip:%2B15551230000%40test.rootdomain.ru")
    );
    assert!(req.body.ends_with(b"a=sendrecv\r\n"));
    // Framed from a TCP stream split at awkward places, twice in a row.
    let mut f = StreamFramer::new(65536);
    let stream = [COMPACT_TCP, b"\r\n\r\n", COMPACT_TCP].concat();
    let mut got = Vec::new();
    for chunk in stream.chunks(7) {
        f.push(chunk);
        while let Some(m) = f.next_message().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, vec![COMPACT_TCP.to_vec(), COMPACT_TCP.to_vec()]);
    let t0 = Instant::now();
    let mut ep = endpoint();
    let peer = Peer::tcp(addr("203.0.113.4:51000"), ConnId(4));
    ep.handle_input(t0, peer, &got[0]);
    ep.handle_input(t0, peer, &got[1]);
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 100, None, None))
        .unwrap();
    assert_eq!(transmits(&mut ep)[0].to, peer);
}

// ----- scale --------------------------------------------------------------

#[test]
fn thousands_of_calls_keep_no_state_behind() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let n = 2000;
    for i in 0..n {
        let call = format!("load-{i}");
        ep.handle_input(
            t0,
            caller(),
            invite(&format!("z9hG4bKl{i}"), &call).as_bytes(),
        );
        let (tx, req) = take_request(&mut ep);
        ep.respond(t0, tx, make_response(&req, 200, None, Some("l")))
            .unwrap();
        let ack = request("ACK", &format!("z9hG4bKa{i}"), &call, 1, Some("l"));
        ep.handle_input(t0 + ms(10), caller(), ack.as_bytes());
        assert!(matches!(ep.poll_event(), Some(Event::Ack { .. })));
    }
    assert_eq!(ep.transaction_count(), n);
    transmits(&mut ep);
    run_until(&mut ep, t0, Duration::from_secs(100));
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.is_idle());
    assert!(transmits(&mut ep).is_empty());
}

// ----- never panic --------------------------------------------------------

/// Feed bytes over UDP and TCP, then run every timer.
fn feed(bytes: &[u8]) {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, caller(), bytes);
    ep.handle_input(t0, Peer::tcp(addr("192.0.2.1:5060"), ConnId(1)), bytes);
    // Answer whatever got through, as the application would.
    while let Some(ev) = ep.poll_event() {
        if let Event::Request { tx, request, .. } = ev {
            let _ = ep.respond(t0, tx, make_response(&request, 200, None, Some("p")));
            let _ = Dialog::new_uas(&request, "p", "<sip:vm@h>").map(|mut d| {
                d.make_request(Method::Bye)
                    .map(|r| ep.send_request(t0, r, caller()))
            });
        }
    }
    ep.handle_input(t0 + ms(1), caller(), bytes);
    run_until(&mut ep, t0, Duration::from_secs(100));
    let mut f = StreamFramer::new(4096);
    f.push(bytes);
    while let Ok(Some(_)) = f.next_frame() {}
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        feed(&bytes);
    }

    #[test]
    fn mutated_invites_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..12),
    ) {
        let mut bytes = [ASTERISK, BROADWORKS, COMPACT_TCP][which].to_vec();
        for (pos, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let pos = pos % bytes.len();
            match op {
                0 => bytes[pos] = byte,
                1 => bytes.insert(pos, byte),
                2 => { bytes.remove(pos); }
                _ => bytes.truncate(pos),
            }
        }
        feed(&bytes);
    }

    #[test]
    fn sip_like_lines_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("INVITE sip:a@b SIP/2.0".to_string()),
                Just("ACK sip:a@b SIP/2.0".to_string()),
                Just("CANCEL sip:a@b SIP/2.0".to_string()),
                Just("SIP/2.0 200 OK".to_string()),
                "[A-Za-z-]{1,12}: [ -~]{0,40}",
                "(Via|v): SIP/2.0/(UDP|TCP|XYZ) [ -~]{0,30}",
                "(CSeq|Call-ID|From|To|Max-Forwards|Content-Length|l): [ -~]{0,30}",
                "[ -~]{0,40}",
            ],
            1..14,
        ),
    ) {
        let msg = format!("{}\r\n\r\n", lines.join("\r\n"));
        feed(msg.as_bytes());
    }
}

#[test]
fn an_unacknowledged_non_2xx_is_resent_by_timer_g_until_timer_h() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(t0, caller(), invite("z9hG4bKh", "timer-h").as_bytes());
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 404, None, Some("h")))
        .unwrap();
    transmits(&mut ep);
    let (sent, ev) = run_until(&mut ep, t0, Duration::from_secs(40));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(ev.is_empty(), "timer H ends the transaction silently");
    assert!(ep.is_idle());
}

#[test]
fn a_2xx_is_resent_over_tcp_too() {
    // RFC 3261 §13.3.1.4: the 2xx is retransmitted end to end whatever the
    // first hop's transport.
    let t0 = Instant::now();
    let mut ep = endpoint();
    let peer = Peer::tcp(addr("192.0.2.1:40000"), ConnId(2));
    let inv = invite("z9hG4bKtcp2", "tcp-2xx").replace("UDP", "TCP");
    ep.handle_input(t0, peer, inv.as_bytes());
    let (tx, req) = take_request(&mut ep);
    ep.respond(t0, tx, make_response(&req, 200, None, Some("t")))
        .unwrap();
    transmits(&mut ep);
    let (sent, _) = run_until(&mut ep, t0, ms(1600));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, t)| t.to == peer));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The caller ACKs every 2xx copy it gets; the network loses 2xx copies
    /// and ACKs at random and delays them. Whatever is lost, the call ends
    /// with exactly one Ack event or one AckTimeout, never both, nothing is
    /// sent after the ACK arrived, and no state is left behind.
    #[test]
    fn lossy_2xx_ack_exchange(
        lost_2xx in proptest::collection::vec(any::<bool>(), 12),
        lost_ack in proptest::collection::vec(any::<bool>(), 12),
        delay_ms in 1u64..400,
    ) {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_input(t0, caller(), invite("z9hG4bKloss", "loss").as_bytes());
        let (tx, req) = take_request(&mut ep);
        ep.respond(t0, tx, make_response(&req, 200, None, Some("L"))).unwrap();
        let ack = request("ACK", "z9hG4bKlossack", "loss", 1, Some("L"));
        let (mut acks, mut timeouts, mut copy) = (0, 0, 0usize);
        let mut pending_acks: Vec<Instant> = Vec::new();
        let mut now = t0;
        let mut acked_at: Option<Instant> = None;
        loop {
            for t in transmits(&mut ep) {
                prop_assert!(acked_at.is_none(), "2xx sent after the ACK");
                let i = copy;
                copy += 1;
                if !lost_2xx.get(i).copied().unwrap_or(false)
                    && !lost_ack.get(i).copied().unwrap_or(false)
                {
                    prop_assert_eq!(status_line(&t), "SIP/2.0 200 OK");
                    pending_acks.push(now + ms(delay_ms));
                }
            }
            for e in events(&mut ep) {
                match e {
                    Event::Ack { .. } => { acks += 1; acked_at = Some(now); }
                    Event::AckTimeout { .. } => timeouts += 1,
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            pending_acks.sort();
            let next_ack = pending_acks.first().copied();
            let next_timer = ep.poll_timeout();
            let ack_first = match (next_ack, next_timer) {
                (Some(a), Some(t)) => a <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if ack_first {
                now = pending_acks.remove(0);
                ep.handle_input(now, caller(), ack.as_bytes());
            } else if let Some(t) = next_timer {
                now = t;
                ep.handle_timeout(now);
            }
        }
        prop_assert_eq!(acks + timeouts, 1);
        prop_assert!(ep.is_idle());
    }
}

#[test]
fn a_restored_dialog_skips_cseq_numbers_and_survives_serde() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let inv = invite("z9hG4bKr1", "restore-1");
    ep.handle_input(t0, caller(), inv.as_bytes());
    let (_, req) = take_request(&mut ep);
    let mut dialog = Dialog::new_uas(&req, "vmR", "<sip:vm@192.0.2.10>").unwrap();
    dialog.make_request(Method::Notify).unwrap();
    let saved = serde_json::to_string(&dialog).unwrap();
    let mut restored: Dialog = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored, dialog);
    restored.advance_local_cseq(1000);
    let next = restored.make_request(Method::Notify).unwrap();
    assert!(next.to_string().contains("CSeq: 1002 NOTIFY"), "{next}");
    // Never beyond what RFC 3261 allows (2**31).
    restored.advance_local_cseq(u32::MAX);
    assert_eq!(restored.local_cseq(), i32::MAX as u32);
}
