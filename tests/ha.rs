//! Active-Passive groups (SPEC §4) with the default SiteShare backend: real
//! vmail processes on 127.0.0.1, one SiteShare directory, two groups of two
//! instances (`g1n1`, `g1n2` serve [`DOMAIN`]; `g2n1`, `g2n2` serve
//! `sales.` + [`DOMAIN`]).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

fn sales() -> String {
    format!("sales.{DOMAIN}")
}

/// Two groups of two instances; mailbox 1001 of [`DOMAIN`] and 2001 of
/// the sales domain (PIN 1234).
fn site(tweak: impl Fn(&mut Value)) -> Site {
    let sales_domain = sales();
    let sales_domains: Vec<&str> = vec![sales_domain.as_str()];
    Site::new(&[(1, &[DOMAIN], 2), (2, &sales_domains, 2)], |ext| {
        ext["demo_mailboxes"] = json!([
            {"user": "1001", "domain": DOMAIN, "pin": "1234"},
            {"user": "2001", "domain": sales(), "pin": "1234"},
        ]);
        ext["silence_seconds"] = json!(60);
        tweak(ext);
    })
}

fn store(site: &Site) -> FsStore {
    FsStore::open_with_pin_cost(site.siteshare.path(), PinCost::TestOnly).expect("open store")
}

/// A 100 ms greeting, so that recording starts half a second after the
/// answer (the mailbox exists once an instance of its group is active).
fn short_greeting(site: &Site, user: &str, domain: &str) {
    let id = MailboxId::new(user, domain).unwrap();
    // The new active instance creates the demo mailboxes right after it
    // reports the role.
    let settings = site.mailbox_dir(user, domain).join("mailbox.json");
    wait_for(Duration::from_secs(10), "the demo mailbox", || {
        settings.exists().then_some(())
    });
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    // The new active instance's recovery, which runs right after it creates
    // the mailbox, removes the temporary files of atomic writes it finds,
    // and this write (made from outside, like the CLI's) may be caught
    // between its create and its rename: it then fails whole and is made
    // again.
    let store = store(site);
    let mut attempts = 0;
    while let Err(e) = store.store_greeting(&id, GreetingKind::Temporary, &pcm, 8000) {
        attempts += 1;
        assert!(attempts < 5, "the greeting could not be stored: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn inbox(site: &Site, user: &str, domain: &str) -> PathBuf {
    site.mailbox_dir(user, domain).join("INBOX")
}

fn metas(dir: &Path) -> Vec<Value> {
    files_with_suffix(dir, ".json")
        .into_iter()
        .filter_map(|p| serde_json::from_str(&fs::read_to_string(p).ok()?).ok())
        .collect()
}

fn epoch_of(node: &Node) -> u64 {
    node.status().expect("status")["cluster"]["epoch"]
        .as_u64()
        .expect("epoch")
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(p, (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    out
}

const START: Duration = Duration::from_secs(20);

#[test]
fn lowest_order_becomes_active_the_other_is_passive_and_redirects() {
    let site = site(|_| {});
    // All four at once: the lowest order of each group wins.
    let nodes: Vec<Node> = ["g1n1", "g1n2", "g2n1", "g2n2"]
        .iter()
        .map(|n| site.start(n))
        .collect();
    nodes[0].wait_role("active", START);
    nodes[2].wait_role("active", START);
    nodes[1].wait_role("passive", START);
    nodes[3].wait_role("passive", START);
    // A passive learns of the active one at its next look at the group.
    for (passive, active) in [(&nodes[1], "g1n1"), (&nodes[3], "g2n1")] {
        wait_for(
            Duration::from_secs(5),
            "the passive knows the active",
            || {
                passive
                    .status()
                    .filter(|s| s["cluster"]["active"]["name"] == active)
                    .map(|_| ())
            },
        );
    }

    // OPTIONS: 200 from the active, 503 from the passive (a proxy's probe).
    assert!(nodes[0].options().unwrap().starts_with("SIP/2.0 200"));
    let passive = nodes[1].options().expect("the passive answers OPTIONS");
    assert!(passive.starts_with("SIP/2.0 503"), "{passive}");
    // /readyz: 503 from the passive; its status names the active one.
    let (code, body) = http_get(nodes[1].http_addr(), "/readyz", Duration::from_secs(2)).unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("g1n1"), "{body}");
    let status = nodes[1].status().unwrap();
    assert_eq!(status["cluster"]["role"], "passive", "{status}");
    assert_eq!(status["cluster"]["active"]["name"], "g1n1", "{status}");
    assert_eq!(status["cluster"]["backend"], "siteshare", "{status}");
    let (code, _) = http_get(nodes[0].http_addr(), "/readyz", Duration::from_secs(2)).unwrap();
    assert_eq!(code, 200);

    // An INVITE to the passive: 302 to the active.
    let Some(run) = Sipp::uac("expect_status.xml", nodes[1].sip_addr())
        .mailbox("1001")
        .set("expected", "302")
        .run()
    else {
        return;
    };
    run.assert_success("302 from the passive");
    let resp = &run.received("SIP/2.0 302")[0];
    let contact = header_values(resp, "Contact").join(",");
    assert!(
        contact.contains(&format!("sip:1001@127.0.0.1:{}", nodes[0].spec.sip_port)),
        "{contact}"
    );
    // An API mailbox request to the passive: 503 naming the active.
    let url = format!(
        "http://{}/api/v1/domains/{DOMAIN}/mailboxes/1001",
        nodes[1].http_addr()
    );
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(SITE_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.text().unwrap().contains("g1n1"));

    // A deposit sent to the wrong group: 302 to the other group's active
    // instance first, which the caller follows to a stored message.
    short_greeting(&site, "1001", DOMAIN);
    let Some(run) = Sipp::uac("deposit_redirect.xml", nodes[2].sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit after a redirect");
    assert!(
        run.log.contains(&format!(
            "redirected to 127.0.0.1:{}",
            nodes[0].spec.sip_port
        )),
        "the active of group 1 comes first: {}",
        run.log
    );
    let wavs = wait_for_files(
        &inbox(&site, "1001", DOMAIN),
        ".wav",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(wavs.len(), 1);
    let meta = &metas(&inbox(&site, "1001", DOMAIN))[0];
    assert_eq!(meta["instance"], "g1n1", "{meta}");
    assert_eq!(meta["epoch"].as_u64(), Some(epoch_of(&nodes[0])), "{meta}");
}

#[test]
fn kill9_of_the_active_during_twenty_recordings_fails_over_and_recovers_them() {
    let site = site(|_| {});
    let mut a = site.start("g1n1");
    a.wait_role("active", START);
    let b = site.start("g1n2");
    b.wait_role("passive", START);
    let old_epoch = epoch_of(&a);
    short_greeting(&site, "1001", DOMAIN);

    let Some(sipp) = Sipp::uac("deposit.xml", a.sip_addr())
        .mailbox("1001")
        .hold_ms(30_000)
        .arg("-m")
        .arg("20")
        .arg("-l")
        .arg("20")
        .arg("-r")
        .arg("40")
        .timeout_s(40)
        .spawn()
    else {
        return;
    };
    let tmp = site.mailbox_dir("1001", DOMAIN).join("tmp");
    wait_for_files(&tmp, ".wav", 20, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(2500));
    let killed = Instant::now();
    a.kill9();
    drop(sipp);

    // The passive takes over: OPTIONS 200 from it.
    let deadline = killed + Duration::from_secs(15);
    let took = loop {
        if b.options().is_some_and(|l| l.starts_with("SIP/2.0 200")) {
            break killed.elapsed();
        }
        assert!(Instant::now() < deadline, "no takeover\n{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("failover: g1n2 answered OPTIONS 200 {took:?} after the kill -9 of g1n1");
    // A new deposit to the new active.
    let Some(run) = Sipp::uac("deposit.xml", b.sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit to the new active");
    let deposit_done = killed.elapsed();
    eprintln!("failover: a new deposit to g1n2 completed {deposit_done:?} after the kill");
    assert!(
        took <= Duration::from_secs(5),
        "SPEC §4: a passive instance serves new calls within 5 s of the kill, took {took:?}"
    );

    // The 20 cut recordings, recovered by the new active with its epoch,
    // and the new message.
    let new_epoch = epoch_of(&b);
    assert!(new_epoch > old_epoch, "{new_epoch} > {old_epoch}");
    let wavs = wait_for_files(
        &inbox(&site, "1001", DOMAIN),
        ".wav",
        21,
        Duration::from_secs(15),
    );
    assert_eq!(wavs.len(), 21);
    let all = metas(&inbox(&site, "1001", DOMAIN));
    let recovered: Vec<&Value> = all.iter().filter(|m| m["recovered"] == true).collect();
    assert_eq!(recovered.len(), 20, "{all:?}");
    for m in &all {
        assert_eq!(m["epoch"].as_u64(), Some(new_epoch), "{m}");
    }
    for w in &wavs {
        let (spec, pcm) = read_wav(w);
        assert_eq!((spec.channels, spec.sample_rate), (1, 8000));
        assert!(!pcm.is_empty(), "{}", w.display());
    }
    assert!(files_with_suffix(&tmp, ".wav").is_empty());

    // Another group's redirect now names the new active one first
    // (order 2), then the instances by order.
    let other = site.start("g2n1");
    other.wait_role("active", START);
    let want = format!("sip:1001@127.0.0.1:{}", b.spec.sip_port);
    let contacts = wait_for(Duration::from_secs(10), "a 302 naming g1n2 first", || {
        let run = Sipp::uac("expect_status.xml", other.sip_addr())
            .mailbox("1001")
            .set("expected", "302")
            .run()?;
        let resp = run.received("SIP/2.0 302").first()?.clone();
        let contacts = header_values(&resp, "Contact").join(",");
        contacts
            .starts_with(&format!("<{want}>"))
            .then_some(contacts)
    });
    assert!(
        contacts.contains(&format!("sip:1001@127.0.0.1:{}", a.spec.sip_port)),
        "{contacts}"
    );

    // The killed one comes back: passive (no pre-emption).
    a.restart();
    a.wait_role("passive", START);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(a.role().as_deref(), Some("passive"));
    assert_eq!(b.role().as_deref(), Some("active"));
}

#[test]
fn a_paused_active_steps_down_and_writes_nothing_after_the_takeover() {
    let site = site(|_| {});
    let a = site.start("g1n1");
    a.wait_role("active", START);
    let b = site.start("g1n2");
    b.wait_role("passive", START);
    short_greeting(&site, "1001", DOMAIN);
    let Some(sipp) = Sipp::uac("deposit.xml", a.sip_addr())
        .mailbox("1001")
        .hold_ms(30_000)
        .arg("-m")
        .arg("3")
        .arg("-l")
        .arg("3")
        .timeout_s(40)
        .spawn()
    else {
        return;
    };
    let tmp = site.mailbox_dir("1001", DOMAIN).join("tmp");
    wait_for_files(&tmp, ".wav", 3, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    a.signal("STOP");
    b.wait_role("active", Duration::from_secs(15));
    // The cut recordings are recovered by the new active.
    wait_for_files(
        &inbox(&site, "1001", DOMAIN),
        ".wav",
        3,
        Duration::from_secs(15),
    );
    let new_epoch = epoch_of(&b);
    let mailbox = site.mailbox_dir("1001", DOMAIN);
    let before = snapshot(&mailbox);
    // The caller keeps sending RTP to the paused instance; it resumes.
    a.signal("CONT");
    drop(sipp);
    a.wait_role("passive", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let after = snapshot(&mailbox);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        changed.is_empty(),
        "the resumed instance wrote {changed:?}\n{}",
        a.log()
    );
    for m in metas(&inbox(&site, "1001", DOMAIN)) {
        assert_eq!(m["epoch"].as_u64(), Some(new_epoch), "{m}");
    }
    assert!(a.log().contains("stepping down"), "{}", a.log());
    assert_eq!(b.role().as_deref(), Some("active"));
}

#[test]
fn an_mwi_subscription_made_before_the_failover_gets_a_notify_from_the_new_active() {
    let site = site(|_| {});
    let mut a = site.start("g1n1");
    a.wait_role("active", START);
    let b = site.start("g1n2");
    b.wait_role("passive", START);
    short_greeting(&site, "1001", DOMAIN);
    let Some(phone) = PjsuaMwi::start(a.sip_addr(), "1001", "0,1") else {
        return;
    };
    phone.wait_counts(0, 0, Duration::from_secs(20));
    // Saved in the store once made.
    let saved = site.mailbox_dir("1001", DOMAIN).join("subscriptions.json");
    wait_for(Duration::from_secs(10), "subscription saved", || {
        saved.exists().then_some(())
    });
    a.kill9();
    b.wait_role("active", Duration::from_secs(15));
    let Some(run) = Sipp::uac("deposit.xml", b.sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit to the new active");
    let v = phone.wait_counts(1, 0, Duration::from_secs(20));
    assert_eq!(v["waiting"], true, "{v}");
    assert!(phone.wait_exit().success());
}

#[test]
fn a_clean_restart_keeps_messages_subscriptions_and_lockout() {
    let site = site(|_| {});
    let mut a = site.start("g1n1");
    a.wait_role("active", START);
    short_greeting(&site, "1001", DOMAIN);
    let Some(run) = Sipp::uac("deposit.xml", a.sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit");
    wait_for_files(
        &inbox(&site, "1001", DOMAIN),
        ".wav",
        1,
        Duration::from_secs(10),
    );
    let Some(phone) = PjsuaMwi::start(a.sip_addr(), "1001", "1,2") else {
        return;
    };
    phone.wait_counts(1, 0, Duration::from_secs(20));
    let saved = site.mailbox_dir("1001", DOMAIN).join("subscriptions.json");
    wait_for(Duration::from_secs(10), "subscription saved", || {
        saved.exists().then_some(())
    });
    // A locked mailbox: five wrong PINs reserved in the store.
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let st = store(&site);
    for _ in 0..5 {
        let _ = st.reserve_login_attempt(&id, SystemTime::now(), 5, 300);
    }
    let mbox_url = format!(
        "http://{}/api/v1/domains/{DOMAIN}/mailboxes/1001",
        a.http_addr()
    );
    let locked = |url: &str| -> Value {
        reqwest::blocking::Client::new()
            .get(url)
            .bearer_auth(SITE_TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(locked(&mbox_url)["locked"], true);
    let before = snapshot(&site.mailbox_dir("1001", DOMAIN).join("INBOX"));
    a.terminate(Duration::from_secs(20)).expect("stops");
    assert!(a.log().contains("vmail stopped"), "{}", a.log());
    // The clean stop marked the record stopped: the restart watches its
    // group for one lease and takes the role (no old lease to wait out).
    a.restart();
    a.wait_role("active", Duration::from_secs(10));
    assert_eq!(
        snapshot(&site.mailbox_dir("1001", DOMAIN).join("INBOX")),
        before
    );
    assert_eq!(locked(&mbox_url)["locked"], true);
    // The restored subscription hears of the next message.
    let Some(run) = Sipp::uac("deposit.xml", a.sip_addr())
        .mailbox("1001")
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit after the restart");
    phone.wait_counts(2, 0, Duration::from_secs(20));
    assert!(phone.wait_exit().success());
}

#[test]
fn reload_moves_an_instance_to_another_group_and_a_bad_file_is_rejected() {
    let site = site(|_| {});
    let a = site.start("g1n1");
    a.wait_role("active", START);
    let b = site.start("g1n2");
    b.wait_role("passive", START);

    // g1n2 moves to a new group 3 with its own domain.
    let text = fs::read_to_string(site.config_path()).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    for r in cfg["roles"].as_array_mut().unwrap() {
        if r["name"] == "g1n2" {
            r["group"] = json!(3);
            r["order"] = json!(1);
            r["include_domains"] = json!([format!("support.{DOMAIN}")]);
        }
    }
    fs::write(
        site.config_path(),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    b.signal("HUP");
    wait_for(Duration::from_secs(10), "the group change", || {
        b.status()
            .filter(|s| s["group"] == 3 && s["cluster"]["role"] == "active")
            .map(|_| ())
    });
    assert!(b.log().contains("group membership changed"), "{}", b.log());
    assert_eq!(a.role().as_deref(), Some("active"));

    // A broken file through the API: 422 with every error, nothing changes.
    fs::write(site.config_path(), "{\"roles\": [{\"name\": \"1bad\"}]}").unwrap();
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}/api/v1/config/reload", a.http_addr()))
        .bearer_auth(SITE_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "config_rejected", "{body}");
    assert!(a.log().contains("configuration rejected"), "{}", a.log());
    assert_eq!(a.role().as_deref(), Some("active"));
    assert!(a.options().unwrap().starts_with("SIP/2.0 200"));
}

/// Kamailio's dispatcher in front of group 1 (tests/kamailio/): it probes
/// both instances with OPTIONS and sends INVITEs to the one that answers
/// 200. 25 deposits, kill -9 of the active, 25 more after the failover:
/// all 50 stored, each answered by the instance active at the time, none
/// by a passive one.
#[test]
fn kamailio_in_front_sends_calls_to_the_active_across_a_failover() {
    let site = site(|_| {});
    let mut a = site.start("g1n1");
    a.wait_role("active", START);
    let b = site.start("g1n2");
    b.wait_role("passive", START);
    short_greeting(&site, "1001", DOMAIN);
    let (aa, ba) = (a.sip_addr(), b.sip_addr());
    let Some(kam) = Kamailio::start(&[aa, ba]) else {
        return;
    };
    // The passive's 503 keeps it out of the set.
    kam.wait_states(&[aa], &[ba], Duration::from_secs(15));
    let batch = |n: &str| {
        Sipp::uac("deposit.xml", kam.sip_addr())
            .mailbox("1001")
            .hold_ms(2500)
            .arg("-m")
            .arg(n)
            .arg("-l")
            .arg(n)
            .arg("-r")
            .arg("10")
            .timeout_s(60)
            .run()
    };
    let Some(run) = batch("25") else { return };
    run.assert_success("25 deposits through Kamailio before the kill");
    let dir = inbox(&site, "1001", DOMAIN);
    wait_for_files(&dir, ".wav", 25, Duration::from_secs(15));
    assert!(
        calls_accepted(&b.log()).is_empty(),
        "the passive took a call"
    );

    a.kill9();
    let took = kam.wait_states(&[ba], &[aa], Duration::from_secs(20));
    eprintln!("failover behind Kamailio: the dispatcher routes to g1n2 {took:?} after the kill -9 of g1n1");
    let Some(run) = batch("25") else { return };
    run.assert_success("25 deposits through Kamailio after the failover");
    let wavs = wait_for_files(&dir, ".wav", 50, Duration::from_secs(20));
    assert_eq!(wavs.len(), 50);
    let all = metas(&dir);
    let by = |name: &str| all.iter().filter(|m| m["instance"] == name).count();
    assert_eq!((by("g1n1"), by("g1n2")), (25, 25), "{all:?}");
    // g1n2 answered calls only once it was active.
    let log = b.log();
    let took_over = log.find("takeover").expect("takeover logged");
    let first_call = log.find("call accepted").expect("g1n2 took calls");
    assert!(took_over < first_call, "g1n2 answered a call while passive");
    assert_eq!(calls_accepted(&log).len(), 25);
}
