use super::*;

fn in_options() -> H {
    let mut h = H::logged_in(&[], &[]);
    assert_eq!(h.keys("0"), v(&["play: options-menu"]));
    h.done();
    h
}

#[test]
fn record_a_greeting_listen_rerecord_accept() {
    let mut h = in_options();
    assert_eq!(h.keys("1"), v(&["play: record-after-tone beep"]));
    // Other keys do not cut the instructions.
    assert!(h.keys("5").is_empty());
    assert_eq!(h.done(), v(&["record 120s"]));
    assert!(h.keys("7*").is_empty());
    assert_eq!(h.keys("#"), v(&["stop-recording"]));
    assert_eq!(h.recorded(3000), v(&["play: review-recording"]));
    assert_eq!(
        h.keys("2"),
        v(&["stop", "play: recording review-recording"])
    );
    assert_eq!(h.keys("3"), v(&["stop", "play: record-after-tone beep"]));
    assert_eq!(h.done(), v(&["record 120s"]));
    // The shell's own limit ended it.
    assert_eq!(h.recorded(120_000), v(&["play: review-recording"]));
    assert_eq!(
        h.keys("4"),
        v(&["stop", "play: invalid-option review-recording"])
    );
    assert_eq!(
        h.keys("1"),
        v(&["stop", "SaveGreeting { kind: Unavailable }"])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: greeting-saved options-menu"])
    );
}

#[test]
fn busy_and_name_greetings_and_skipping_the_instructions() {
    let mut h = in_options();
    h.keys("2");
    // # during the instructions records at once.
    assert_eq!(h.keys("#"), v(&["stop", "record 120s"]));
    h.keys("#");
    h.recorded(900);
    assert_eq!(h.keys("1"), v(&["stop", "SaveGreeting { kind: Busy }"]));
    h.reply(StoreReply::Done);
    h.keys("3");
    h.done();
    h.keys("#");
    h.recorded(900);
    assert_eq!(h.keys("1"), v(&["stop", "SaveGreeting { kind: Name }"]));
}

#[test]
fn cancel_and_empty_recordings_go_back_to_options() {
    let mut h = in_options();
    h.keys("1");
    assert_eq!(h.keys("*"), v(&["stop", "play: options-menu"]));
    h.keys("1");
    h.done();
    h.keys("#");
    assert_eq!(h.recorded(0), v(&["play: options-menu"]));
    h.keys("1");
    h.done();
    h.keys("#");
    h.recorded(500);
    assert_eq!(h.keys("*"), v(&["stop", "play: options-menu"]));
    // A recording end out of place is ignored.
    assert!(h.recorded(500).is_empty());
}

#[test]
fn recording_guard_when_the_shell_never_reports() {
    let mut h = in_options();
    h.keys("1");
    h.done();
    assert!(h.wait(124).is_empty());
    assert_eq!(h.wait(1), v(&["stop-recording"]));
    assert_eq!(h.wait(5), v(&["play: options-menu"]));
}

#[test]
fn temporary_greeting_record_and_erase() {
    let mut h = in_options();
    assert_eq!(h.keys("4"), v(&["play: temp-greeting-menu"]));
    assert_eq!(
        h.keys("9"),
        v(&["stop", "play: invalid-option temp-greeting-menu"])
    );
    assert_eq!(
        h.keys("2"),
        v(&["stop", "DeleteGreeting { kind: Temporary }"])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: temp-greeting-erased options-menu"])
    );
    h.keys("4");
    h.keys("1");
    h.done();
    h.keys("#");
    h.recorded(2000);
    assert_eq!(
        h.keys("1"),
        v(&["stop", "SaveGreeting { kind: Temporary }"])
    );
    h.reply(StoreReply::Done);
    h.keys("4");
    assert_eq!(h.keys("*"), v(&["stop", "play: options-menu"]));
}

#[test]
fn change_pin() {
    let mut h = in_options();
    assert_eq!(h.keys("5"), v(&["play: enter-new-pin"]));
    assert_eq!(h.keys("2580#"), v(&["stop", "play: reenter-pin"]));
    assert_eq!(h.keys("2580#"), v(&["stop", r#"SetPin { pin: "2580" }"#]));
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: pin-changed options-menu"])
    );
}

#[test]
fn change_pin_mismatch_and_cancel() {
    let mut h = in_options();
    h.keys("5");
    h.keys("2580#");
    assert_eq!(
        h.keys("2581#"),
        v(&["stop", "play: pin-mismatch options-menu"])
    );
    h.keys("5");
    h.keys("2580#");
    assert_eq!(h.keys("#"), v(&["stop", "play: pin-mismatch options-menu"]));
    h.keys("5");
    assert_eq!(h.keys("25*"), v(&["stop", "play: options-menu"]));
    h.keys("5");
    h.keys("2580#");
    assert_eq!(h.keys("*"), v(&["stop", "play: options-menu"]));
}

#[test]
fn change_pin_invalid() {
    let seventeen = "13579135791357913";
    for bad in [
        "1111",
        "1234",
        "4321",
        "12",
        seventeen,
        "",
        &"2".repeat(100),
    ] {
        let mut h = in_options();
        h.keys("5");
        assert_eq!(
            h.keys(&format!("{bad}#")),
            v(&["stop", "play: pin-invalid options-menu"]),
            "{bad}"
        );
    }
}

#[test]
fn pin_entry_ends_after_a_pause() {
    let mut h = in_options();
    h.keys("5");
    h.keys("2580");
    assert_eq!(h.wait(5), v(&["play: reenter-pin"]));
    h.keys("2580");
    assert_eq!(h.wait(5), v(&[r#"SetPin { pin: "2580" }"#]));
}

#[test]
fn options_back_invalid_and_store_failure() {
    let mut h = in_options();
    assert_eq!(h.keys("8"), v(&["play: invalid-option options-menu"]));
    assert_eq!(h.keys("*"), v(&["stop", "play: main-menu"]));

    let mut h = in_options();
    h.keys("5");
    h.keys("2580#");
    h.keys("2580#");
    assert_eq!(h.reply(StoreReply::Failed), v(&["play: goodbye"]));
    assert_eq!(h.done(), v(&["hangup", "done"]));
}
