//! Kamailio in front of a vmail group: the dispatcher module of a real
//! Kamailio (Debian package `kamailio`, `tests/kamailio/vmail-dispatcher.cfg`)
//! probes the group's instances with OPTIONS and sends the calls to the one
//! that answers 200; a call that reaches an instance that does not take it
//! (no answer, 503, 302) is retried on the next one.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

/// A vmail instance with mailbox 1001 of [`DOMAIN`] and a 100 ms greeting
/// (recording starts about half a second after the answer).
fn vmail(name: &str) -> Vmail {
    let v = Vmail::builder()
        .name(name)
        .env("RUST_LOG", "info,vmail=debug")
        .ext(|ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
        })
        .start();
    let store =
        FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store");
    let id = MailboxId::new("1001", DOMAIN).expect("mailbox id");
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .expect("store greeting");
    v
}

fn inbox(v: &Vmail) -> std::path::PathBuf {
    v.mailbox_dir("1001", DOMAIN).join("INBOX")
}

fn inbox_count(v: &Vmail) -> usize {
    files_with_suffix(&inbox(v), ".wav").len()
}

/// Every message in the INBOX was written by `v` (its metadata names it).
fn assert_written_by(v: &Vmail) {
    for wav in files_with_suffix(&inbox(v), ".wav") {
        let meta = wav.with_extension("json");
        let text = std::fs::read_to_string(&meta)
            .unwrap_or_else(|e| panic!("{}: metadata missing: {e}", meta.display()));
        let meta: Value = serde_json::from_str(&text).expect("metadata is JSON");
        assert_eq!(meta["instance"], v.name.as_str(), "{meta}");
    }
}

/// One deposit of about `hold_ms` sent to `to` (Kamailio).
fn deposit(to: SocketAddr, hold_ms: u64) -> Sipp {
    Sipp::uac("deposit.xml", to)
        .mailbox("1001")
        .hold_ms(hold_ms)
        .timeout_s(30)
}

/// Any INVITE in a test peer's trace.
fn invites_received(run: &SippRun) -> usize {
    run.received("INVITE ").len()
}

/// A real vmail, a stand-in for a passive instance (OPTIONS -> 503, INVITE
/// -> 503) and a dead address, the passive and the dead one with higher
/// priorities: once probed, every deposit goes to the real vmail, none to
/// the others.
#[test]
fn dispatcher_sends_every_call_to_the_instance_that_answers_options_200() {
    let Some(passive) = passive_standin(
        "SIP/2.0 503 Service Unavailable",
        "SIP/2.0 503 Service Unavailable",
        "\r\nRetry-After: 5",
    ) else {
        return;
    };
    let dead = SocketAddr::from((LOCALHOST, free_udp_port()));
    let active = vmail("vmail1");
    let Some(kam) = Kamailio::start(&[passive.addr(), dead, active.sip_addr()]) else {
        return;
    };
    let took = kam.wait_states(
        &[active.sip_addr()],
        &[passive.addr(), dead],
        Duration::from_secs(15),
    );
    eprintln!("dispatcher: passive and dead instances marked inactive after {took:?}");

    let Some(run) = deposit(kam.sip_addr(), 2000)
        .arg("-m")
        .arg("10")
        .arg("-l")
        .arg("5")
        .arg("-r")
        .arg("10")
        .run()
    else {
        return;
    };
    run.assert_success("10 deposits through Kamailio");
    let wavs = wait_for_files(&inbox(&active), ".wav", 10, Duration::from_secs(15));
    assert_eq!(wavs.len(), 10);
    assert_written_by(&active);
    assert_eq!(calls_accepted(&active.log()).len(), 10);

    let routed = kam.invites_routed();
    assert_eq!(
        routed,
        vec![active.sip_addr(); 10],
        "Kamailio routed INVITEs elsewhere\n{}",
        kam.log()
    );
    let passive = passive.stop();
    assert_eq!(
        invites_received(&passive),
        0,
        "the passive stand-in got an INVITE\n{}",
        passive.messages
    );
    assert!(
        !passive.received("OPTIONS ").is_empty(),
        "the passive stand-in was never probed"
    );
    // The dead and the passive instance stay out of the set.
    kam.wait_states(&[active.sip_addr()], &[dead], Duration::from_secs(5));
}

/// Instances that still answer the probe with 200 but refuse the call (a
/// 302 naming the active instance, a 503 with Retry-After: what a passive
/// instance answers between two probes) come first in the set: each deposit
/// is retried by the failure route until the real vmail takes it.
#[test]
fn a_302_or_503_from_an_instance_sends_the_call_to_the_next_one() {
    let active = vmail("vmail1");
    let contact = format!("\r\nContact: <sip:1001@{}>;q=1.0", active.sip_addr());
    let Some(redirecting) =
        passive_standin("SIP/2.0 200 OK", "SIP/2.0 302 Moved Temporarily", &contact)
    else {
        return;
    };
    let Some(refusing) = passive_standin(
        "SIP/2.0 200 OK",
        "SIP/2.0 503 Service Unavailable",
        "\r\nRetry-After: 5",
    ) else {
        return;
    };
    let Some(kam) = Kamailio::start(&[redirecting.addr(), refusing.addr(), active.sip_addr()])
    else {
        return;
    };
    kam.wait_states(
        &[redirecting.addr(), refusing.addr(), active.sip_addr()],
        &[],
        Duration::from_secs(10),
    );
    for i in 0..3 {
        let Some(run) = deposit(kam.sip_addr(), 2000).run() else {
            return;
        };
        run.assert_success(&format!("deposit {i} through Kamailio"));
    }
    wait_for_files(&inbox(&active), ".wav", 3, Duration::from_secs(10));
    assert_eq!(inbox_count(&active), 3);
    assert_eq!(kam.invites_routed_to(active.sip_addr()), 3, "{}", kam.log());
    let redirecting = redirecting.stop();
    let refusing = refusing.stop();
    // The first deposit met both refusals in priority order; later ones may
    // have found them inactive (the failure route marks them, the next good
    // probe brings them back).
    assert!(
        invites_received(&redirecting) >= 1,
        "302 stand-in never tried\n{}",
        kam.log()
    );
    assert!(
        invites_received(&refusing) >= 1,
        "503 stand-in never tried\n{}",
        kam.log()
    );
    let routed = kam.invites_routed();
    assert_eq!(
        &routed[..3],
        &[redirecting.sip_port, refusing.sip_port, active.sip_port]
            .map(|p| SocketAddr::from((LOCALHOST, p)))[..],
        "first deposit: 302, then 503, then vmail\n{}",
        kam.log()
    );
}

/// Two vmail instances behind Kamailio, 20 sequential deposits, kill -9 of
/// the first (highest priority) during the 11th: every later deposit
/// succeeds on the second, including those sent before Kamailio's probe
/// noticed (the failure route retries after fr_timer). Prints how long
/// Kamailio took to stop routing to the dead instance.
#[test]
fn kill9_of_the_first_instance_moves_the_calls_to_the_second() {
    let mut first = vmail("vmail1");
    let second = vmail("vmail2");
    let (a, b) = (first.sip_addr(), second.sip_addr());
    let Some(kam) = Kamailio::start(&[a, b]) else {
        return;
    };
    kam.wait_states(&[a, b], &[], Duration::from_secs(10));

    for i in 0..10 {
        let Some(run) = deposit(kam.sip_addr(), 2000).run() else {
            return;
        };
        run.assert_success(&format!("deposit {i} before the kill"));
    }
    wait_for_files(&inbox(&first), ".wav", 10, Duration::from_secs(10));
    assert_eq!(inbox_count(&second), 0, "calls went to the second instance");

    // The 11th deposit is recording on the first instance when it dies.
    let Some(cut) = deposit(kam.sip_addr(), 5000).spawn() else {
        return;
    };
    let tmp = first.mailbox_dir("1001", DOMAIN).join("tmp");
    wait_for_files(&tmp, ".wav", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    first.kill9();
    let killed = Instant::now();

    // Measure, in the background, when Kamailio stops routing to it, while
    // deposits 12..20 go out right away: the first of them may still be sent
    // to the dead instance and must be retried on the second.
    let stop = AtomicBool::new(false);
    let (noticed, results) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let deadline = killed + Duration::from_secs(15);
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if !kam.is_active(a) {
                    return Some(killed.elapsed());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        let mut results = Vec::new();
        for i in 11..20 {
            let started = killed.elapsed();
            results.push((i, started, deposit(kam.sip_addr(), 2000).run()));
        }
        stop.store(true, Ordering::Relaxed);
        (watcher.join().expect("watcher thread"), results)
    });
    let noticed = noticed.unwrap_or_else(|| {
        panic!(
            "Kamailio still routes to the dead instance 15 s after the kill\n{}",
            kam.log()
        )
    });
    eprintln!(
        "kill -9 of the first instance: Kamailio marked it inactive after {:.0} ms",
        noticed.as_secs_f64() * 1000.0
    );
    for (i, started, run) in results {
        let Some(run) = run else { return };
        run.assert_success(&format!(
            "deposit {i} (sent {:.0} ms after the kill)",
            started.as_secs_f64() * 1000.0
        ));
    }
    let cut = cut.wait();
    eprintln!(
        "the deposit cut by the kill ended with sipp status {} (its BYE has nowhere to go)",
        cut.status
    );
    wait_for_files(&inbox(&second), ".wav", 9, Duration::from_secs(10));
    assert_eq!(inbox_count(&second), 9);
    assert_eq!(inbox_count(&first), 10);
    assert_written_by(&second);
    let retries = kam
        .log()
        .lines()
        .filter(|l| l.contains("vmail-dispatch: retry INVITE"))
        .count();
    eprintln!("{retries} INVITE(s) retried on the second instance by the failure route");
    // Once marked, nothing more went to the dead instance: the INVITEs
    // routed to it are the 11 before the kill plus at most the retried ones.
    assert!(kam.invites_routed_to(a) <= 11 + retries, "{}", kam.log());
    kam.wait_states(&[b], &[a], Duration::from_secs(5));
}

/// The caller talks TCP to Kamailio, Kamailio UDP to vmail: the deposit is
/// stored and the caller's BYE reaches vmail.
#[test]
fn a_deposit_over_tcp_through_kamailio_is_stored() {
    let active = vmail("vmail1");
    let Some(kam) = Kamailio::start(&[active.sip_addr()]) else {
        return;
    };
    kam.wait_states(&[active.sip_addr()], &[], Duration::from_secs(10));
    let Some(run) = deposit(kam.sip_addr(), 2000).tcp().run() else {
        return;
    };
    run.assert_success("deposit over TCP through Kamailio");
    wait_for_files(&inbox(&active), ".wav", 1, Duration::from_secs(10));
    assert_eq!(kam.invites_routed(), vec![active.sip_addr()]);
}

/// vmail's own BYE (after the caller's `#`) follows the Record-Route through
/// Kamailio back to the caller.
#[test]
fn vmail_hangs_up_through_kamailio_after_pound() {
    let active = vmail("vmail1");
    let Some(kam) = Kamailio::start(&[active.sip_addr()]) else {
        return;
    };
    kam.wait_states(&[active.sip_addr()], &[], Duration::from_secs(10));
    let Some(run) = Sipp::uac("deposit_dtmf.xml", kam.sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .timeout_s(40)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_dtmf.xml through Kamailio");
    let byes = run.received("BYE ");
    assert_eq!(byes.len(), 1, "{}", run.messages);
    // It came through Kamailio: its top Via is Kamailio's.
    let via = header_value(&byes[0], "Via").unwrap_or_default();
    assert!(
        via.contains(&kam.sip_addr().to_string()),
        "BYE not relayed by Kamailio: {}",
        byes[0]
    );
    wait_for_files(&inbox(&active), ".wav", 1, Duration::from_secs(10));
}
