use super::*;

#[test]
fn silence_repeats_the_menu_three_times_then_goodbye() {
    let mut h = H::logged_in(&[], &[]);
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    assert!(h.wait(9).is_empty());
    for _ in 0..3 {
        assert_eq!(h.wait(1), v(&["play: main-menu"]));
        // No timer while the prompt plays.
        assert_eq!(h.m.poll_timeout(), None);
        assert!(h.wait(60).is_empty());
        h.done();
        assert!(h.wait(9).is_empty());
    }
    assert_eq!(h.wait(1), v(&["play: goodbye"]));
    assert_eq!(h.done(), v(&["hangup", "done"]));
    assert!(h.m.is_done());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_key_resets_the_repeat_count() {
    let mut h = H::logged_in(&["n1"], &[]);
    for _ in 0..2 {
        h.wait(10);
        h.done();
    }
    h.keys("1");
    h.done();
    h.done();
    h.done();
    for _ in 0..3 {
        assert_eq!(h.wait(10), v(&["play: message-menu"]));
        h.done();
    }
    assert_eq!(h.wait(10), v(&["play: goodbye"]));
}

#[test]
fn login_prompts_repeat_too() {
    let mut h = H::new(None);
    h.start();
    h.done();
    assert_eq!(h.wait(10), v(&["play: enter-mailbox"]));
    h.done();
    h.keys("1001#");
    h.done();
    assert_eq!(h.wait(10), v(&["play: enter-pin"]));
}

#[test]
fn every_menu_repeats_its_own_prompt() {
    let cases: [(&str, &str); 4] = [
        ("0", "options-menu"),
        ("04", "temp-greeting-menu"),
        ("05", "enter-new-pin"),
        ("1", "message-menu"),
    ];
    for (keys, prompt) in cases {
        let mut h = H::logged_in(&[], &["o1"]);
        h.keys(keys);
        h.done();
        if keys == "1" {
            h.done();
            h.done();
        }
        assert_eq!(h.wait(10), v(&[&format!("play: {prompt}")]), "{keys}");
    }
    let mut h = H::logged_in(&[], &["o1"]);
    h.keys("18");
    h.done();
    assert_eq!(h.wait(10), v(&["play: forward-enter-mailbox"]));
}

#[test]
fn early_or_missing_timeouts_do_nothing() {
    let mut h = H::new(None);
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    h.start();
    assert_eq!(h.m.poll_timeout(), None);
    assert!(h.wait(100).is_empty());
    // A playback "done" with nothing playing is ignored.
    h.done();
    assert!(h.done().is_empty());
    let _ = h.t0;
}
