use super::*;
use std::time::SystemTime;

#[test]
fn login_with_mailbox_number() {
    let mut h = H::new(None);
    assert_eq!(h.start(), v(&["play: enter-mailbox"]));
    // Typing during the prompt interrupts it; the digits are the entry.
    assert_eq!(h.keys("10"), v(&["stop"]));
    assert_eq!(h.keys("01#"), v(&["play: enter-pin"]));
    assert_eq!(h.m.mailbox(), None);
    assert_eq!(
        h.keys("1234#"),
        v(&["stop", r#"VerifyPin { mailbox: "1001", pin: "1234" }"#])
    );
    // Keys while the store works are dropped.
    assert!(h.keys("55").is_empty());
    assert_eq!(h.reply(StoreReply::Pin(PinReply::Ok)), v(&["LoadMessages"]));
    assert_eq!(h.m.mailbox(), Some("1001"));
    assert_eq!(
        h.reply(StoreReply::Messages {
            new: metas(&["a", "b"]),
            old: metas(&["c"]),
            remote: vec![],
            partial: false,
        }),
        v(&["play: you-have 2 new messages and 1 old message main-menu"])
    );
}

#[test]
fn known_caller_is_asked_only_the_pin() {
    let mut h = H::new(Some("2002"));
    assert_eq!(h.start(), v(&["play: enter-pin"]));
    h.done();
    assert_eq!(
        h.keys("4321#"),
        v(&[r#"VerifyPin { mailbox: "2002", pin: "4321" }"#])
    );
    // A second start does nothing.
    assert!(h.start().is_empty());
}

fn wrong_three_times(reply: PinReply) -> Vec<String> {
    let mut h = H::new(None);
    let mut all = h.start();
    for _ in 0..3 {
        all.extend(h.keys("1001#"));
        all.extend(h.keys("9999#"));
        all.extend(h.reply(StoreReply::Pin(reply)));
    }
    all.extend(h.done());
    assert!(h.m.is_done());
    all
}

#[test]
fn three_wrong_logins_end_the_call() {
    let all = wrong_three_times(PinReply::Wrong);
    let said: Vec<&String> = all.iter().filter(|a| a.starts_with("play")).collect();
    assert_eq!(
        said,
        [
            "play: enter-mailbox",
            "play: enter-pin",
            "play: login-incorrect enter-mailbox",
            "play: enter-pin",
            "play: login-incorrect enter-mailbox",
            "play: enter-pin",
            "play: login-incorrect goodbye",
        ]
    );
    assert_eq!(all[all.len() - 2..], v(&["hangup", "done"]));
}

#[test]
fn no_such_mailbox_is_indistinguishable_from_a_wrong_pin() {
    assert_eq!(
        wrong_three_times(PinReply::Wrong),
        wrong_three_times(PinReply::NoSuchMailbox)
    );
}

#[test]
fn known_caller_retries_the_pin_only() {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1111#");
    assert_eq!(
        h.reply(StoreReply::Pin(PinReply::Wrong)),
        v(&["play: login-incorrect enter-pin"])
    );
}

#[test]
fn locked_mailbox() {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    let until = SystemTime::UNIX_EPOCH;
    assert_eq!(
        h.reply(StoreReply::Pin(PinReply::Locked { until })),
        v(&["play: mailbox-locked"])
    );
    assert!(h.keys("1").is_empty());
    assert_eq!(h.done(), v(&["hangup", "done"]));
}

#[test]
fn busy_hashing_pool_asks_to_try_later() {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    assert_eq!(
        h.reply(StoreReply::Pin(PinReply::Busy)),
        v(&["play: try-later"])
    );
    assert!(h.keys("1").is_empty());
    assert_eq!(h.done(), v(&["hangup", "done"]));
}

#[test]
fn overlong_and_empty_entries_are_wrong_without_asking_the_store() {
    let mut h = H::new(Some("1001"));
    h.start();
    let pin = "1".repeat(200);
    let a = h.keys(&format!("{pin}#"));
    assert_eq!(a, v(&["stop", "play: login-incorrect enter-pin"]));
    assert_eq!(h.keys("#"), v(&["stop", "play: login-incorrect enter-pin"]));
    assert_eq!(h.keys("#"), v(&["stop", "play: login-incorrect goodbye"]));

    let mut h = H::new(None);
    h.start();
    assert_eq!(
        h.keys(&format!("{}#", "7".repeat(40))),
        v(&["stop", "play: enter-pin"])
    );
    assert_eq!(
        h.keys("1234#"),
        v(&["stop", "play: login-incorrect enter-mailbox"])
    );

    // An empty mailbox number asks again.
    let mut h = H::new(None);
    h.start();
    h.done();
    assert_eq!(h.keys("#"), v(&["play: enter-mailbox"]));
}

#[test]
fn inter_digit_pause_ends_the_entry() {
    let mut h = H::new(None);
    h.start();
    h.done();
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.keys("1001");
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    assert!(h.wait(4).is_empty());
    assert_eq!(h.wait(1), v(&["play: enter-pin"]));
    h.keys("1234");
    assert_eq!(
        h.wait(5),
        v(&[r#"VerifyPin { mailbox: "1001", pin: "1234" }"#])
    );
}

#[test]
fn star_starts_the_login_over() {
    let mut h = H::new(None);
    h.start();
    h.keys("1001#");
    assert_eq!(h.keys("12*"), v(&["stop", "play: enter-mailbox"]));
    assert_eq!(h.keys("12*"), v(&["stop", "play: enter-mailbox"]));
    h.keys("2002#");
    assert_eq!(
        h.keys("5678#"),
        v(&["stop", r#"VerifyPin { mailbox: "2002", pin: "5678" }"#])
    );
}

#[test]
fn store_failure_at_login_says_goodbye() {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    assert_eq!(h.reply(StoreReply::Failed), v(&["play: goodbye"]));
    assert_eq!(h.done(), v(&["hangup", "done"]));

    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    h.reply(StoreReply::Pin(PinReply::Ok));
    assert_eq!(h.reply(StoreReply::Done), v(&["play: goodbye"]));
}

#[test]
fn unknown_keys_are_ignored() {
    let mut h = H::new(None);
    h.start();
    assert!(h.keys("AbD").is_empty());
}
