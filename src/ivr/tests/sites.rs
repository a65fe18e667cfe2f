//! Messages kept at other sites: the partial-listing notice, the early
//! fetch of their audio, and their changes, which an unreachable site
//! refuses without ending the call.

use super::*;

/// Logged in with `new`/`old` messages of which `remote` are kept at
/// another site; returns the menu and the intro it said.
fn logged_in(new: &[&str], old: &[&str], remote: &[&str], partial: bool) -> (H, Vec<String>) {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    h.reply(StoreReply::Pin(PinReply::Ok));
    let intro = h.reply(StoreReply::Messages {
        new: metas(new),
        old: metas(old),
        remote: remote.iter().map(|s| s.to_string()).collect(),
        partial,
    });
    h.done();
    (h, intro)
}

#[test]
fn a_partial_listing_is_said_after_the_counts() {
    let (_, intro) = logged_in(&["n1"], &[], &[], true);
    assert_eq!(
        intro,
        v(&["play: you-have 1 new message some-unreachable main-menu"])
    );
    let (_, intro) = logged_in(&[], &[], &[], true);
    assert_eq!(
        intro,
        v(&["play: you-have no-messages some-unreachable main-menu"])
    );
    let (_, intro) = logged_in(&["n1"], &[], &["n1"], false);
    assert_eq!(intro, v(&["play: you-have 1 new message main-menu"]));
}

#[test]
fn a_remote_message_is_fetched_while_its_number_is_said() {
    let (mut h, _) = logged_in(&["a", "b"], &[], &["b"], false);
    // The local one: no fetch.
    assert_eq!(h.keys("1"), v(&["play: message-number 1"]));
    assert_eq!(h.done(), v(&["play: msg:a", r#"MoveToOld { msg: "a" }"#]));
    h.reply(StoreReply::Done);
    // The remote one: fetched before "message 2" plays.
    assert_eq!(
        h.keys("6"),
        v(&["stop", "prefetch:b", "play: message-number 2"])
    );
    assert_eq!(h.done(), v(&["play: msg:b", r#"MoveToOld { msg: "b" }"#]));
    h.reply(StoreReply::Done);
    // Repeat: fetched again.
    assert_eq!(
        h.keys("5"),
        v(&["stop", "prefetch:b", "play: message-number 2"])
    );
    // The first message of a listing too.
    let (mut h, _) = logged_in(&["r"], &[], &["r"], false);
    assert_eq!(h.keys("1"), v(&["prefetch:r", "play: message-number 1"]));
}

#[test]
fn an_unreachable_site_keeps_a_message_new_and_says_so() {
    let (mut h, _) = logged_in(&["r"], &[], &["r"], false);
    h.keys("1");
    assert_eq!(h.done(), v(&["play: msg:r", r#"MoveToOld { msg: "r" }"#]));
    assert!(h.reply(StoreReply::Unreachable).is_empty());
    // Said before the next message menu, once.
    assert_eq!(h.done(), v(&["play: cannot-now message-menu"]));
    assert_eq!(
        h.keys("5"),
        v(&["stop", "prefetch:r", "play: message-number 1"])
    );
    // Still new: marking it heard is tried again.
    assert_eq!(h.done(), v(&["play: msg:r", r#"MoveToOld { msg: "r" }"#]));
    h.reply(StoreReply::Done);
    assert_eq!(h.done(), v(&["play: message-menu"]));
    // Now in Old.
    h.keys("#");
    h.done();
    h.keys("2");
    assert_eq!(
        h.keys("1"),
        v(&["stop", "prefetch:r", "play: folder-old message-number 1"])
    );
}

#[test]
fn deleting_a_remote_message_happens_at_once_or_not_at_all() {
    let (mut h, _) = logged_in(&[], &["l", "r"], &["r"], false);
    h.keys("1");
    h.keys("6");
    h.done();
    h.done();
    // Site down: nothing deleted, the menu goes on.
    assert_eq!(h.keys("7"), v(&["stop", r#"DeleteNow { msg: "r" }"#]));
    assert_eq!(
        h.reply(StoreReply::Unreachable),
        v(&["play: cannot-now message-menu"])
    );
    // Site back: deleted there now.
    assert_eq!(h.keys("7"), v(&["stop", r#"DeleteNow { msg: "r" }"#]));
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: deleted message-menu"])
    );
    // Nothing to undo; keys meanwhile are dropped.
    assert_eq!(h.keys("7"), v(&["stop", "play: deleted message-menu"]));
    // The local one is marked and deleted at the end, the remote one not
    // again.
    h.keys("4");
    h.done();
    h.done();
    assert_eq!(h.keys("7"), v(&["stop", "play: deleted message-menu"]));
    assert_eq!(h.hangup(), v(&[r#"Delete { msg: "l" }"#, "done"]));
}

#[test]
fn keys_wait_while_a_remote_delete_is_out() {
    let (mut h, _) = logged_in(&[], &["r"], &["r"], false);
    h.keys("1");
    h.done();
    h.done();
    h.keys("7");
    assert!(h.keys("6#").is_empty());
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: deleted message-menu"])
    );
}

#[test]
fn saving_and_forwarding_a_remote_message_when_its_site_is_down() {
    let (mut h, _) = logged_in(&[], &["r"], &["r"], false);
    h.keys("1");
    h.done();
    h.done();
    h.keys("9");
    assert_eq!(
        h.keys("2"),
        v(&["stop", r#"MoveTo { msg: "r", folder: Work }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Unreachable),
        v(&["play: cannot-now message-menu"])
    );
    // Not moved: the Work folder is empty.
    h.keys("#");
    h.done();
    h.keys("2");
    assert_eq!(
        h.keys("2"),
        v(&["stop", "play: folder-work you-have no-messages main-menu"])
    );
    // Forward: refused the same way, the call goes on.
    h.done();
    h.keys("1");
    h.done();
    h.done();
    h.keys("8");
    h.keys("2002#");
    assert_eq!(
        h.reply(StoreReply::Unreachable),
        v(&["play: cannot-now message-menu"])
    );
    // Saved once the site is back.
    h.keys("9");
    h.keys("2");
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: saved-in folder-work message-menu"])
    );
}
