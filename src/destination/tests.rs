//! Header examples after RFC 4458, RFC 7044/7131 and RFC 5806, hostile
//! input and the precedence between the rules.

use proptest::prelude::*;
use rsipstack::sip::Request;

use super::names::{is_valid_user, normalize_domain};
use super::*;

fn access() -> Vec<String> {
    vec!["*98".to_owned(), "voicemail".to_owned()]
}

fn msg(ruri: &str, from: &str, to: &str, extra: &[&str]) -> Request {
    let mut text = format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK74bf9\r\n\
         Max-Forwards: 70\r\n\
         From: {from};tag=9fxced76sl\r\n\
         To: {to}\r\n\
         Call-ID: 3848276298220188511@192.0.2.7\r\n\
         CSeq: 1 INVITE\r\n"
    );
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Request::try_from(text.as_str()).expect("test request parses")
}

fn invite(ruri: &str, extra: &[&str]) -> Request {
    msg(
        ruri,
        "\"Alice\" <sip:alice@atlanta.example.com>",
        "<sip:bob@example.com>",
        extra,
    )
}

fn deposit(user: &str, domain: &str, cause: Cause, via: Source) -> Target {
    Target::Deposit {
        mailbox: MailboxAddr {
            user: user.to_owned(),
            domain: domain.to_owned(),
        },
        cause,
        via,
    }
}

fn sel(req: &Request) -> Result<Target, TargetError> {
    select(req, &access())
}

// ---------------------------------------------------------------- RFC 4458

#[test]
fn rfc4458_busy() {
    let r = invite(
        "sip:voicemail@example.com;target=sip:+15555551002%40example.com;cause=486",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15555551002",
            "example.com",
            Cause::Busy,
            Source::Rfc4458
        ))
    );
}

#[test]
fn rfc4458_user_phone_forms() {
    // user=phone outside the escaped target belongs to the voicemail URI.
    let r = invite(
        "sip:voicemail@example.com;target=sip:+15555551002%40example.com;user=phone;cause=408",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15555551002",
            "example.com",
            Cause::Unavailable,
            Source::Rfc4458
        ))
    );
    // ...and inside it, escaped, it belongs to the target.
    let r = invite(
        "sip:voicemail@example.com;target=sip:+15555551002%40example.com%3Buser%3Dphone;cause=302",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15555551002",
            "example.com",
            Cause::Unavailable,
            Source::Rfc4458
        ))
    );
}

#[test]
fn rfc4458_causes() {
    for (cause, expected) in [
        ("486", Cause::Busy),
        ("600", Cause::Busy),
        ("404", Cause::Unavailable),
        ("408", Cause::Unavailable),
        ("480", Cause::Unavailable),
        ("487", Cause::Unavailable),
        ("302", Cause::Unavailable),
        ("503", Cause::Unavailable),
        ("abc", Cause::Unknown),
        ("99999", Cause::Unknown),
    ] {
        let r = invite(
            &format!("sip:vm@vm.example.com;target=sip:bob%40example.com;cause={cause}"),
            &[],
        );
        assert_eq!(
            sel(&r),
            Ok(deposit("bob", "example.com", expected, Source::Rfc4458)),
            "{cause}"
        );
    }
    let r = invite("sip:vm@vm.example.com;target=sip:bob%40example.com", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Unknown,
            Source::Rfc4458
        ))
    );
}

#[test]
fn rfc4458_domain_normalised_user_case_kept() {
    let r = invite(
        "sip:vm@vm.example.com;target=sip:Bob%40Example.COM.;cause=486",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit("Bob", "example.com", Cause::Busy, Source::Rfc4458))
    );
}

#[test]
fn rfc4458_tel_target_takes_to_domain() {
    let r = invite("sip:vm@192.0.2.1;target=tel:+15555551002;cause=486", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15555551002",
            "example.com",
            Cause::Busy,
            Source::Rfc4458
        ))
    );
}

#[test]
fn rfc4458_bad_targets() {
    for (ruri, expected) in [
        ("sip:vm@vm.example.com;target=", TargetError::InvalidTarget),
        ("sip:vm@vm.example.com;target", TargetError::InvalidTarget),
        (
            "sip:vm@vm.example.com;target=%zz",
            TargetError::InvalidTarget,
        ),
        (
            "sip:vm@vm.example.com;target=sip:example.com",
            TargetError::InvalidTarget,
        ),
        (
            "sip:vm@vm.example.com;target=sip:..%2F..%2Fetc%40example.com",
            TargetError::InvalidUser {
                via: Source::Rfc4458,
            },
        ),
        (
            "sip:vm@vm.example.com;target=sip:%252e%252e%40example.com",
            TargetError::InvalidUser {
                via: Source::Rfc4458,
            },
        ),
        (
            "sip:vm@vm.example.com;target=sip:bob%40ex_ample.com",
            TargetError::InvalidDomain {
                via: Source::Rfc4458,
            },
        ),
    ] {
        assert_eq!(sel(&invite(ruri, &[])), Err(expected), "{ruri}");
    }
}

// ------------------------------------------------------ History-Info (7044)

#[test]
fn history_info_no_answer_at_contacts_then_voicemail() {
    // Bob's proxy tries two contacts (rc), then maps to voicemail (mp)
    // with the cause of the last failure.
    let r = msg(
        "sip:vm@vm.example.com",
        "<sip:alice@atlanta.example.com>",
        "<sip:bob@example.com>",
        &[
            "History-Info: <sip:bob@example.com>;index=1,\
             <sip:office@192.0.2.5?Reason=SIP%3Bcause%3D408>;index=1.1;rc=1,\
             <sip:home@192.0.2.6?Reason=SIP%3Bcause%3D480>;index=1.2;rc=1",
            "History-Info: <sip:vm@vm.example.com;cause=480>;index=1.3;mp=1",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Unavailable,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_busy_from_contact_climbs_rc_to_aor() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["History-Info: <sip:bob@example.com>;index=1,\
           <sip:bob@192.0.2.4?Reason=SIP%3Bcause%3D486>;index=1.1;rc=1,\
           <sip:vm@vm.example.com;cause=486>;index=1.1.1;mp=1.1"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Busy,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_forwarded_then_voicemail_picks_last_user() {
    // Alice's call to Bob is forwarded (cause=302) to Carol, whose phone
    // does not answer: Carol's mailbox.
    let r = msg(
        "sip:vm@vm.example.net",
        "<sip:alice@atlanta.example.com>",
        "<sip:bob@example.com>",
        &["History-Info: <sip:bob@example.com>;index=1,\
           <sip:carol@example.net;cause=302>;index=1.1;mp=1,\
           <sip:carol@192.0.2.9?Reason=SIP%3Bcause%3D408>;index=1.1.1;rc=1.1,\
           <sip:vm@vm.example.net;cause=408>;index=1.1.2;mp=1.1"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "carol",
            "example.net",
            Cause::Unavailable,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_rfc4244_style_without_mp_uses_parent_index() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["History-Info: <sip:bob@example.com>;index=1,\
           <sip:bob@192.0.2.4>;index=1.1,\
           <sip:vm@vm.example.com;cause=486>;index=1.2"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Busy,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_entries_out_of_order_are_sorted() {
    let r = invite(
        "sip:vm@vm.example.com",
        &[
            "History-Info: <sip:vm@vm.example.com;cause=487>;index=1.2;mp=1",
            "History-Info: <sip:dave@example.org>;index=1, <sip:dave@192.0.2.8>;index=1.1;rc=1",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "dave",
            "example.org",
            Cause::Unavailable,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_predecessor_when_no_pointer_or_parent() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["History-Info: <sip:erin@example.com>;index=1, <sip:vm@vm.example.com;cause=480>;index=2"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "erin",
            "example.com",
            Cause::Unavailable,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_voicemail_entry_with_target() {
    let r = invite(
        "sip:vm@10.0.0.5",
        &[
            "History-Info: <sip:+15551234@example.com;user=phone>;index=1,\
           <sip:vm@vm.example.com;target=sip:bob%40example.com;cause=486>;index=1.1;mp=1,\
           <sip:vm@10.0.0.5>;index=1.1.1;rc=1.1",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Busy,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_contact_with_ip_takes_to_domain() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["History-Info: <sip:bob@192.0.2.4>;index=1, <sip:vm@vm.example.com;cause=486>;index=1.1;mp=1"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Busy,
            Source::HistoryInfo
        ))
    );
}

#[test]
fn history_info_without_cause_or_unparseable_is_skipped() {
    // A proxy's plain History-Info (no retarget to voicemail) does not
    // apply; neither does a line without index. The R-URI decides.
    let r = invite(
        "sip:frank@example.com",
        &[
            "History-Info: <sip:frank@example.com>;index=1",
            "History-Info: <sip:vm@vm.example.com;cause=486>",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "frank",
            "example.com",
            Cause::Unknown,
            Source::RequestUri
        ))
    );
}

#[test]
fn history_info_hostile_user_is_an_error() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["History-Info: <sip:%2e%2e%2fetc@example.com>;index=1, <sip:vm@vm.example.com;cause=486>;index=1.1;mp=1"],
    );
    assert_eq!(
        sel(&r),
        Err(TargetError::InvalidUser {
            via: Source::HistoryInfo
        })
    );
}

// ---------------------------------------------------------- Diversion (5806)

#[test]
fn diversion_single_entry() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["Diversion: <sip:5551002@example.com>;reason=no-answer;counter=1;privacy=off"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "5551002",
            "example.com",
            Cause::Unavailable,
            Source::Diversion
        ))
    );
}

#[test]
fn diversion_top_most_header_and_first_entry_win() {
    // Bob forwarded unconditionally to Carol, Carol was busy: the top-most
    // (most recent) diversion names Carol.
    let r = invite(
        "sip:vm@vm.example.com",
        &[
            "Diversion: \"Carol\" <sip:carol@example.com>;reason=user-busy;counter=1",
            "Diversion: <sip:bob@example.com>;reason=unconditional;counter=1",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "carol",
            "example.com",
            Cause::Busy,
            Source::Diversion
        ))
    );
    let r = invite(
        "sip:vm@vm.example.com",
        &[
            "Diversion: <sip:carol@example.com>;reason=user-busy;counter=1,\
           <sip:bob@example.com>;reason=unconditional;counter=1",
        ],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "carol",
            "example.com",
            Cause::Busy,
            Source::Diversion
        ))
    );
}

#[test]
fn diversion_reasons() {
    for (reason, expected) in [
        (";reason=user-busy", Cause::Busy),
        (";reason=busy", Cause::Busy),
        (";reason=USER-BUSY", Cause::Busy),
        (";reason=no-answer", Cause::Unavailable),
        (";reason=unconditional", Cause::Unavailable),
        (";reason=time-of-day", Cause::Unavailable),
        (";reason=out-of-service", Cause::Unavailable),
        (";reason=deflection", Cause::Unavailable),
        (";reason=unknown", Cause::Unavailable),
        ("", Cause::Unknown),
    ] {
        let header = format!("Diversion: <sip:bob@example.com>{reason};counter=1");
        let r = invite("sip:vm@vm.example.com", &[&header]);
        assert_eq!(
            sel(&r),
            Ok(deposit("bob", "example.com", expected, Source::Diversion)),
            "{reason}"
        );
    }
}

#[test]
fn diversion_tel_uri_takes_to_domain() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["Diversion: <tel:+15551234567>;reason=user-busy;counter=1"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15551234567",
            "example.com",
            Cause::Busy,
            Source::Diversion
        ))
    );
}

#[test]
fn diversion_hostile_or_broken() {
    let r = invite(
        "sip:vm@vm.example.com",
        &["Diversion: <sip:..%2F..%2Fetc%2Fpasswd@example.com>;reason=user-busy"],
    );
    assert_eq!(
        sel(&r),
        Err(TargetError::InvalidUser {
            via: Source::Diversion
        })
    );
    let r = invite(
        "sip:vm@vm.example.com",
        &["Diversion: <sip:bob@exa%2Fmple.com>;reason=user-busy"],
    );
    assert_eq!(
        sel(&r),
        Err(TargetError::InvalidDomain {
            via: Source::Diversion
        })
    );
    // Unparseable or user-less: skipped, the R-URI decides.
    for header in [
        "Diversion: <sip:bob@example.com",
        "Diversion: <sip:example.com>",
    ] {
        let r = invite("sip:grace@example.com", &[header]);
        assert_eq!(
            sel(&r),
            Ok(deposit(
                "grace",
                "example.com",
                Cause::Unknown,
                Source::RequestUri
            )),
            "{header}"
        );
    }
}

// --------------------------------------------------------------- precedence

#[test]
fn precedence_between_rules() {
    let hi = "History-Info: <sip:hi@example.com>;index=1, <sip:vm@vm.example.com;cause=486>;index=1.1;mp=1";
    let div = "Diversion: <sip:div@example.com>;reason=no-answer";
    let r = invite(
        "sip:vm@vm.example.com;target=sip:rfc%40example.com;cause=408",
        &[hi, div],
    );
    assert_eq!(sel(&r).map(|t| via(&t)), Ok(Some(Source::Rfc4458)));
    let r = invite("sip:vm@vm.example.com", &[hi, div]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "hi",
            "example.com",
            Cause::Busy,
            Source::HistoryInfo
        ))
    );
    let r = invite("sip:vm@vm.example.com", &[div]);
    assert_eq!(sel(&r).map(|t| via(&t)), Ok(Some(Source::Diversion)));
}

fn via(t: &Target) -> Option<Source> {
    match t {
        Target::Deposit { via, .. } => Some(*via),
        Target::Retrieval { .. } => None,
    }
}

#[test]
fn diverted_call_to_access_number_is_a_deposit() {
    let r = invite(
        "sip:*98@example.com",
        &["Diversion: <sip:bob@example.com>;reason=user-busy"],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "bob",
            "example.com",
            Cause::Busy,
            Source::Diversion
        ))
    );
}

// ------------------------------------------------- Request-URI, To, retrieval

#[test]
fn request_uri_user() {
    let r = invite("sip:alice@Example.COM", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "alice",
            "example.com",
            Cause::Unknown,
            Source::RequestUri
        ))
    );
    let r = invite("sip:%2B15551234@example.com;user=phone", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "+15551234",
            "example.com",
            Cause::Unknown,
            Source::RequestUri
        ))
    );
}

#[test]
fn request_uri_ip_host_takes_to_domain() {
    let r = invite("sip:alice@192.0.2.1:5060", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit(
            "alice",
            "example.com",
            Cause::Unknown,
            Source::RequestUri
        ))
    );
    let r = msg(
        "sip:alice@192.0.2.1",
        "<sip:x@example.org>",
        "<sip:alice@[2001:db8::1]>",
        &[],
    );
    assert_eq!(
        sel(&r),
        Err(TargetError::NoDomainName {
            via: Source::RequestUri
        })
    );
}

#[test]
fn to_user_when_request_uri_has_none() {
    let r = invite("sip:vm.example.com", &[]);
    assert_eq!(
        sel(&r),
        Ok(deposit("bob", "example.com", Cause::Unknown, Source::To))
    );
    let r = msg(
        "sip:192.0.2.1",
        "<sip:x@example.org>",
        "<sip:bob@192.0.2.1>",
        &[],
    );
    assert_eq!(sel(&r), Err(TargetError::NoDomainName { via: Source::To }));
    // To with an IP host, R-URI with a name: the R-URI host.
    let r = msg(
        "sip:vm.example.com",
        "<sip:x@example.org>",
        "<sip:bob@192.0.2.1>",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(deposit("bob", "vm.example.com", Cause::Unknown, Source::To))
    );
    let r = msg(
        "sip:example.com",
        "<sip:x@example.org>",
        "<sip:example.com>",
        &[],
    );
    assert_eq!(sel(&r), Err(TargetError::NoUser));
}

#[test]
fn retrieval_by_access_number() {
    let r = msg(
        "sip:*98@Example.com",
        "\"Alice\" <sip:alice@example.com>",
        "<sip:*98@example.com>",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(Target::Retrieval {
            domain: "example.com".into(),
            from_user: Some("alice".into())
        })
    );
    // A caller from another domain is not taken for a local mailbox.
    let r = invite("sip:*98@example.com", &[]);
    assert_eq!(
        sel(&r),
        Ok(Target::Retrieval {
            domain: "example.com".into(),
            from_user: None
        })
    );
    // Escaped, other case, second access number.
    for ruri in ["sip:%2A98@example.com", "sip:VoiceMail@example.com"] {
        assert!(
            matches!(sel(&invite(ruri, &[])), Ok(Target::Retrieval { .. })),
            "{ruri}"
        );
    }
    // R-URI with an IP address: the To host.
    let r = msg(
        "sip:*98@192.0.2.1",
        "<sip:+15551234@example.com>",
        "<sip:*98@example.com>",
        &[],
    );
    assert_eq!(
        sel(&r),
        Ok(Target::Retrieval {
            domain: "example.com".into(),
            from_user: Some("+15551234".into())
        })
    );
    // No user in the R-URI, the To user is the access number.
    let r = msg(
        "sip:vm.example.com",
        "<sip:alice@example.com>",
        "<sip:voicemail@example.com>",
        &[],
    );
    assert!(matches!(sel(&r), Ok(Target::Retrieval { .. })));
    // Not an access number without the configuration.
    let r = invite("sip:voicemail@example.com", &[]);
    assert_eq!(
        select(&r, &[]),
        Ok(deposit(
            "voicemail",
            "example.com",
            Cause::Unknown,
            Source::RequestUri
        ))
    );
}

#[test]
fn retrieval_from_user_is_validated() {
    for from in [
        "<sip:%2e%2e@example.com>",
        "<sip:example.com>",
        "\"x\" <sip:a%2Fb@example.com>",
        "<sip:alice@other.example>",
    ] {
        let r = msg("sip:*98@example.com", from, "<sip:*98@example.com>", &[]);
        assert_eq!(
            sel(&r),
            Ok(Target::Retrieval {
                domain: "example.com".into(),
                from_user: None
            }),
            "{from}"
        );
    }
    for from in [
        "<sip:alice@192.0.2.99>",
        "<sip:alice@EXAMPLE.com.>",
        "<tel:alice>",
    ] {
        let r = msg("sip:*98@example.com", from, "<sip:*98@example.com>", &[]);
        assert_eq!(
            sel(&r),
            Ok(Target::Retrieval {
                domain: "example.com".into(),
                from_user: Some("alice".into())
            }),
            "{from}"
        );
    }
    let r = msg(
        "sip:*98@192.0.2.1",
        "<sip:alice@example.com>",
        "<sip:*98@192.0.2.1>",
        &[],
    );
    assert_eq!(
        sel(&r),
        Err(TargetError::NoDomainName {
            via: Source::RequestUri
        })
    );
}

#[test]
fn hostile_request_uri_users() {
    let long = "a".repeat(4096);
    let long_escaped = "%61".repeat(65);
    for user in [
        "..",
        "../etc",
        "..%2F..%2Fetc",
        "%2e%2e%2fetc",
        "%2E%2E",
        ".hidden",
        "a%00b",
        "a%2Fb",
        "a%5Cb",
        "a%20b",
        "bad%",
        "bad%zz",
        "%c3%a9",
        long.as_str(),
        long_escaped.as_str(),
    ] {
        let r = invite(&format!("sip:{user}@example.com"), &[]);
        assert_eq!(
            sel(&r),
            Err(TargetError::InvalidUser {
                via: Source::RequestUri
            }),
            "{user}"
        );
    }
}

#[test]
fn hostile_domains() {
    let long = format!("{}.example.com", "a".repeat(64));
    let huge = ["abcdefghi"; 30].join(".");
    for host in [
        "ex_ample.com",
        "exa%2Fmple.com",
        long.as_str(),
        huge.as_str(),
    ] {
        let r = invite(&format!("sip:alice@{host}"), &[]);
        assert_eq!(
            sel(&r),
            Err(TargetError::InvalidDomain {
                via: Source::RequestUri
            }),
            "{host}"
        );
    }
}

// ------------------------------------------------------------------ property

fn check(req: &Request) {
    match select(req, &access()) {
        Ok(Target::Deposit { mailbox, .. }) => {
            assert!(is_valid_user(&mailbox.user), "{mailbox:?}");
            assert_eq!(
                normalize_domain(&mailbox.domain).as_deref(),
                Some(mailbox.domain.as_str())
            );
        }
        Ok(Target::Retrieval { domain, from_user }) => {
            assert_eq!(normalize_domain(&domain).as_deref(), Some(domain.as_str()));
            assert!(from_user.is_none_or(|u| is_valid_user(&u)));
        }
        Err(_) => {}
    }
}

fn try_msg(ruri: &str, to: &str, extra: &[&str]) -> Option<Request> {
    let text = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n\
         From: <sip:a@example.org>;tag=1\r\nTo: {to}\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{}\
         Content-Length: 0\r\n\r\n",
        extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    Request::try_from(text.as_str()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the user and host parts hold, what leaves the module is a
    /// valid user and a normalised domain.
    #[test]
    fn any_request_uri_yields_safe_names(
        user in "[ -~]{0,80}",
        host in "[ -~]{1,40}",
        to_user in "[!-~]{0,20}",
    ) {
        let ruri = format!("sip:{user}@{host}");
        if let Some(req) = try_msg(&ruri, &format!("<sip:{to_user}@example.com>"), &[]) {
            check(&req);
        }
    }

    #[test]
    fn any_diversion_or_history_info_yields_safe_names(
        value in prop_oneof![
            "[ -~]{0,120}",
            ("[!-~]{0,40}", "[!-~]{1,30}", "[a-z0-9.;=-]{0,20}").prop_map(|(u, h, p)| {
                format!("<sip:{u}@{h}>;reason=user-busy, <sip:x@example.com;cause=486{p}>;index=1.1;mp=1")
            }),
            ("[a-zA-Z0-9.%+-]{0,40}", "[a-zA-Z0-9.-]{1,30}").prop_map(|(u, h)| {
                format!("<sip:{u}@{h}>;index=1;reason=no-answer, <sip:vm@vm.example.com;cause=480>;index=1.1;mp=1")
            }),
        ],
        hi in any::<bool>(),
    ) {
        let header = if hi {
            format!("History-Info: {value}")
        } else {
            format!("Diversion: {value}")
        };
        if let Some(req) = try_msg("sip:vm@vm.example.com", "<sip:bob@example.com>", &[&header]) {
            check(&req);
        }
    }

    #[test]
    fn any_target_param_yields_safe_names(target in "[!-~]{0,120}", cause in "[0-9a-z]{0,4}") {
        let ruri = format!("sip:vm@vm.example.com;target={target};cause={cause}");
        if let Some(req) = try_msg(&ruri, "<sip:bob@example.com>", &[]) {
            check(&req);
        }
    }
}
