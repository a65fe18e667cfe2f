//! The INVITE decision on fake routing and a fake store: no sockets, no
//! files.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::*;
use crate::destination::Cause;
use crate::sdp::Codec;
use crate::sip::Header;
use crate::sip::Request;
use crate::store::{MailboxId, MailboxSettings, StoreError};

const OFFER: &str = "v=0\r\n\
    o=alice 1 1 IN IP4 192.0.2.7\r\n\
    s=-\r\n\
    c=IN IP4 192.0.2.7\r\n\
    t=0 0\r\n\
    m=audio 40000 RTP/AVP 8 0 101\r\n\
    a=rtpmap:101 telephone-event/8000\r\n";

fn invite_with(ruri: &str, from: &str, contact: bool, body: &str) -> Request {
    let contact = if contact {
        "Contact: <sip:alice@192.0.2.7:5060>\r\n"
    } else {
        ""
    };
    let text = format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKadm\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag=caller1\r\n\
         To: <{ruri}>\r\n\
         Call-ID: adm-1@192.0.2.7\r\n\
         CSeq: 1 INVITE\r\n\
         {contact}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Request::try_from(text.as_str()).expect("test request parses")
}

fn invite(ruri: &str) -> Request {
    invite_with(ruri, "sip:alice@atlanta.example.com", true, OFFER)
}

/// Routing: `vm.example.com` is ours, `other.example.com` belongs to a
/// group with two instances, `lost.example.com` to a group without any,
/// anything else to nobody. Mailboxes: a map; `broken.example.com`
/// fails to read.
#[derive(Default)]
struct Fake {
    mailboxes: HashMap<String, MailboxSettings>,
    asked: RefCell<Vec<String>>,
    /// Access-number calls from these sources are over their rate limit.
    limited: Vec<std::net::IpAddr>,
    /// Sources whose access-number calls were counted.
    counted: RefCell<Vec<std::net::IpAddr>>,
}

impl Fake {
    fn with(mailboxes: &[&str]) -> Self {
        Fake {
            mailboxes: mailboxes
                .iter()
                .map(|m| (m.to_string(), MailboxSettings::default()))
                .collect(),
            asked: RefCell::default(),
            limited: Vec::new(),
            counted: RefCell::default(),
        }
    }
}

impl InviteFacts for Fake {
    fn owner(&self, domain: &str) -> DomainOwner {
        match domain {
            "vm.example.com" | "broken.example.com" => DomainOwner::Us,
            "other.example.com" => DomainOwner::Group(vec![
                "192.0.2.21:5060".parse().unwrap(),
                "[2001:db8::22]:5070".parse().unwrap(),
            ]),
            "lost.example.com" => DomainOwner::Group(Vec::new()),
            "standby.example.com" => DomainOwner::NotActive { retry_after: 3 },
            _ => DomainOwner::Nobody,
        }
    }

    fn mailbox(&self, id: &MailboxId) -> Result<Option<MailboxSettings>, StoreError> {
        self.asked.borrow_mut().push(id.to_string());
        if id.domain() == "broken.example.com" {
            return Err(StoreError::NotFound { what: "disk" });
        }
        Ok(self.mailboxes.get(&id.to_string()).cloned())
    }

    fn access_call(&self, source: std::net::IpAddr) -> Result<(), u64> {
        self.counted.borrow_mut().push(source);
        if self.limited.contains(&source) {
            Err(7)
        } else {
            Ok(())
        }
    }
}

fn input(req: &Request) -> InviteInput<'_> {
    static ACCESS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    InviteInput {
        request: req,
        source: "192.0.2.7:5060".parse::<SocketAddr>().unwrap(),
        merged: false,
        shutting_down: false,
        active_calls: 0,
        max_calls: 10,
        media_lagging: false,
        access_numbers: ACCESS.get_or_init(|| vec!["*98".to_owned(), "voicemail".to_owned()]),
        auto_create_mailboxes: false,
        local_tag: "vmtag",
        local_contact: "sip:vmail@192.0.2.10:5060",
        codecs: Default::default(),
    }
}

fn refusal(d: InviteDecision) -> Refusal {
    match d {
        InviteDecision::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn accepted(d: InviteDecision) -> Accepted {
    match d {
        InviteDecision::Accept(a) => *a,
        other => panic!("expected an accept, got {other:?}"),
    }
}

#[test]
fn a_deposit_to_an_existing_mailbox_is_accepted_with_its_media_and_dialog() {
    let req = invite("sip:1001@vm.example.com");
    let fake = Fake::with(&["1001@vm.example.com"]);
    let a = accepted(decide(&input(&req), &fake));
    match &a.kind {
        CallKind::Deposit {
            mailbox,
            cause,
            create,
            ..
        } => {
            assert_eq!(mailbox.to_string(), "1001@vm.example.com");
            assert_eq!(*cause, Cause::Unknown);
            assert!(!create);
        }
        other => panic!("{other:?}"),
    }
    // The caller's order: PCMA first.
    assert_eq!(a.negotiated.codec, Codec::Pcma);
    assert_eq!(a.negotiated.dtmf_pt, Some(101));
    assert_eq!(a.dialog.local_tag(), "vmtag");
    assert_eq!(a.dialog.remote_tag(), Some("caller1"));
    assert_eq!(a.dialog.call_id(), "adm-1@192.0.2.7");
}

#[test]
fn merged_shutting_down_and_overload_refuse_before_anything_is_looked_up() {
    let req = invite("sip:1001@vm.example.com");
    let fake = Fake::with(&["1001@vm.example.com"]);
    let mut i = input(&req);
    i.shutting_down = true;
    let r = refusal(decide(&i, &fake));
    assert_eq!((r.code(), r.reason()), (503, "Shutting down"));
    assert_eq!(r.headers(), vec![Header::RetryAfter("30".into())]);

    let mut i = input(&req);
    i.active_calls = 10;
    let r = refusal(decide(&i, &fake));
    assert_eq!(r, Refusal::Overloaded);
    assert_eq!(r.headers(), vec![Header::RetryAfter("5".into())]);

    let mut i = input(&req);
    i.media_lagging = true;
    let r = refusal(decide(&i, &fake));
    assert_eq!(r, Refusal::MediaLag);
    assert_eq!((r.code(), r.reason()), (503, "Overloaded"));
    assert_eq!(r.headers(), vec![Header::RetryAfter("5".into())]);

    let mut i = input(&req);
    i.merged = true;
    let r = refusal(decide(&i, &fake));
    assert_eq!((r.code(), r.reason()), (482, "Loop Detected"));
    assert!(fake.asked.borrow().is_empty(), "no store look-up");
}

#[test]
fn an_unknown_mailbox_is_refused_or_accepted_for_creation_but_never_created_here() {
    let req = invite("sip:2002@vm.example.com");
    let fake = Fake::with(&[]);
    let r = refusal(decide(&input(&req), &fake));
    assert_eq!(r.code(), 404);
    assert_eq!(r.reason(), "No such mailbox");

    let mut i = input(&req);
    i.auto_create_mailboxes = true;
    let a = accepted(decide(&i, &fake));
    match a.kind {
        CallKind::Deposit {
            mailbox,
            settings,
            create,
            ..
        } => {
            assert_eq!(mailbox.to_string(), "2002@vm.example.com");
            assert_eq!(settings, MailboxSettings::default());
            assert!(create, "to be created by its first message");
        }
        other => panic!("{other:?}"),
    }
    // The facts offer no way to create anything: only look-ups happened.
    assert_eq!(fake.asked.borrow().len(), 2);
}

#[test]
fn domains_of_other_groups_are_redirected_and_unserved_ones_refused() {
    let fake = Fake::with(&[]);
    let req = invite("sip:1001@other.example.com");
    match decide(&input(&req), &fake) {
        InviteDecision::Redirect { contacts, domain } => {
            assert_eq!(domain, "other.example.com");
            assert_eq!(
                contacts,
                vec![
                    "<sip:1001@192.0.2.21:5060>;q=1.0",
                    "<sip:1001@[2001:db8::22]:5070>;q=0.6"
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    for domain in ["nowhere.example.com", "lost.example.com"] {
        let req = invite(&format!("sip:1001@{domain}"));
        let r = refusal(decide(&input(&req), &fake));
        assert_eq!(r, Refusal::DomainNotServed(domain.to_owned()));
        assert_eq!((r.code(), r.reason()), (404, "Domain not served"));
        assert_eq!(
            r.headers(),
            vec![Header::Reason(
                "SIP;cause=404;text=\"domain not served\"".into()
            )]
        );
    }
    assert!(fake.asked.borrow().is_empty(), "not ours: no store look-up");
}

#[test]
fn a_passive_instance_without_a_known_active_answers_503_with_retry_after() {
    let fake = Fake::with(&["1001@standby.example.com"]);
    for ruri in [
        "sip:1001@standby.example.com",
        "sip:*98@standby.example.com",
    ] {
        let req = invite(ruri);
        let r = refusal(decide(&input(&req), &fake));
        assert_eq!(r, Refusal::NotActive { retry_after: 3 });
        assert_eq!((r.code(), r.reason()), (503, "Passive"));
        assert_eq!(r.headers(), vec![Header::RetryAfter("3".into())]);
    }
    assert!(fake.asked.borrow().is_empty(), "passive: no store look-up");
    assert!(fake.counted.borrow().is_empty(), "passive: no rate count");
}

#[test]
fn the_access_number_opens_the_menu_knowing_a_caller_who_has_a_mailbox() {
    let fake = Fake::with(&["1001@vm.example.com"]);
    let req = invite_with(
        "sip:*98@vm.example.com",
        "sip:1001@vm.example.com",
        true,
        OFFER,
    );
    let a = accepted(decide(&input(&req), &fake));
    assert_eq!(
        a.kind,
        CallKind::Menu {
            domain: "vm.example.com".into(),
            known: Some("1001".into())
        }
    );
    let req = invite_with(
        "sip:*98@vm.example.com",
        "sip:3003@vm.example.com",
        true,
        OFFER,
    );
    let a = accepted(decide(&input(&req), &fake));
    assert_eq!(
        a.kind,
        CallKind::Menu {
            domain: "vm.example.com".into(),
            known: None
        }
    );
}

#[test]
fn bad_requests_get_their_codes() {
    let fake = Fake::with(&["1001@vm.example.com", "1001@broken.example.com"]);
    // No usable offer.
    let req = invite_with("sip:1001@vm.example.com", "sip:a@b.example", true, "");
    assert_eq!(refusal(decide(&input(&req), &fake)).code(), 488);
    let req = invite_with(
        "sip:1001@vm.example.com",
        "sip:a@b.example",
        true,
        &OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 3"),
    );
    assert_eq!(refusal(decide(&input(&req), &fake)).code(), 488);
    // No Contact: no dialog.
    let req = invite_with("sip:1001@vm.example.com", "sip:a@b.example", false, OFFER);
    let r = refusal(decide(&input(&req), &fake));
    assert_eq!((r.code(), r.reason()), (400, "Bad Request"));
    // A user that cannot be a mailbox.
    let req = invite("sip:..%2Fetc@vm.example.com");
    assert_eq!(refusal(decide(&input(&req), &fake)).code(), 404);
    // The store cannot be read.
    let req = invite("sip:1001@broken.example.com");
    let r = refusal(decide(&input(&req), &fake));
    assert_eq!(r.code(), 503);
    assert_eq!(r.headers(), vec![Header::RetryAfter("30".into())]);
}

#[test]
fn access_number_calls_over_their_source_rate_limit_get_503_and_deposits_are_not_counted() {
    let source: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let mut facts = Fake::with(&["1001@vm.example.com"]);
    facts.limited = vec![source];
    let req = invite("sip:*98@vm.example.com");
    let r = refusal(decide(&input(&req), &facts));
    assert_eq!(
        r,
        Refusal::RateLimited {
            source,
            retry_after: 7
        }
    );
    assert_eq!((r.code(), r.reason()), (503, "Rate limited"));
    assert!(r
        .headers()
        .iter()
        .any(|h| matches!(h, Header::RetryAfter(v) if v.to_string().contains('7'))));
    // Deposits from the same address are not rate limited nor counted.
    facts.counted.borrow_mut().clear();
    let req = invite("sip:1001@vm.example.com");
    accepted(decide(&input(&req), &facts));
    assert!(facts.counted.borrow().is_empty());
    // An access-number call for a domain of another group is redirected
    // without being counted either.
    let req = invite("sip:*98@other.example.com");
    assert!(matches!(
        decide(&input(&req), &facts),
        InviteDecision::Redirect { .. }
    ));
    assert!(facts.counted.borrow().is_empty());
}

const WIDE_OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 9 111 18\r\na=rtpmap:111 opus/48000/2\r\n";

#[test]
fn the_offer_order_decides_unless_ext_codecs_orders() {
    use crate::media::Codec as M;
    let pick = |allowed: &[M], ordered: bool| {
        negotiate(
            WIDE_OFFER.as_bytes(),
            None,
            CodecChoice { allowed, ordered },
        )
        .map(|n| n.codec)
    };
    // Default: every codec, the offer's order.
    assert_eq!(pick(&crate::media::ALL_CODECS, false), Ok(Codec::Pcmu));
    // ext.codecs given: its order.
    assert_eq!(pick(&[M::Opus, M::G722], true), Ok(Codec::Opus));
    assert_eq!(pick(&[M::G729, M::Pcmu], true), Ok(Codec::G729));
    assert_eq!(pick(&[M::G722], true), Ok(Codec::G722));
    // Nothing in common: 488.
    assert!(pick(&[M::Pcma], true).is_err());
    // A re-INVITE keeps the current codec, and moves only within its rate.
    let re = |current| {
        negotiate(
            WIDE_OFFER
                .replace("RTP/AVP 0 9 111 18", "RTP/AVP 0 111")
                .as_bytes(),
            Some(current),
            CodecChoice::default(),
        )
        .map(|n| n.codec)
    };
    assert_eq!(re(Codec::Opus), Ok(Codec::Opus));
    assert_eq!(re(Codec::G722), Ok(Codec::Opus));
    assert_eq!(re(Codec::Pcma), Ok(Codec::Pcmu));
}

use proptest::prelude::*;

proptest! {
    /// Whatever `ext.codecs` and the offer's order: the codec picked is
    /// allowed and offered, and it is the first such by the order that
    /// decides (`ext.codecs` when given, else the offer's).
    #[test]
    fn the_codec_picked_follows_the_deciding_order(
        offer_order in proptest::sample::subsequence(vec![0u8, 8, 9, 18, 111], 1..=5)
            .prop_shuffle(),
        allowed in proptest::sample::subsequence(crate::media::ALL_CODECS.to_vec(), 1..=5)
            .prop_shuffle(),
        ordered in proptest::bool::ANY,
    ) {
        let pts: Vec<String> = offer_order.iter().map(u8::to_string).collect();
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP {}\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:18 G729/8000\r\n",
            pts.join(" ")
        );
        let offered: Vec<crate::media::Codec> = offer_order
            .iter()
            .map(|&pt| match pt {
                0 => crate::media::Codec::Pcmu,
                8 => crate::media::Codec::Pcma,
                9 => crate::media::Codec::G722,
                18 => crate::media::Codec::G729,
                _ => crate::media::Codec::Opus,
            })
            .collect();
        let want = if ordered {
            allowed.iter().find(|c| offered.contains(c)).copied()
        } else {
            offered.iter().find(|c| allowed.contains(c)).copied()
        };
        let got = negotiate(body.as_bytes(), None, CodecChoice { allowed: &allowed, ordered })
            .ok()
            .map(|n| n.codec.media());
        prop_assert_eq!(got, want);
    }
}
