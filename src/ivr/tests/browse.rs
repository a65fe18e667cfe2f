use super::*;
use crate::ivr::ForwardError;
use crate::prompts::Gender;

fn intro(new: usize, old: usize) -> Vec<String> {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    h.reply(StoreReply::Pin(PinReply::Ok));
    let ids: Vec<String> = (0..new + old).map(|i| format!("m{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.reply(StoreReply::Messages {
        new: metas(&ids[..new]),
        old: metas(&ids[new..]),
        remote: vec![],
        partial: false,
    })
}

#[test]
fn counts_are_spoken_with_the_right_forms() {
    let cases = [
        (0, 0, "you-have no-messages"),
        (1, 0, "you-have 1 new message"),
        (2, 0, "you-have 2 new messages"),
        (0, 1, "you-have 1 old message"),
        (0, 2, "you-have 2 old messages"),
        (1, 1, "you-have 1 new message and 1 old message"),
        (2, 3, "you-have 2 new messages and 3 old messages"),
    ];
    for (new, old, text) in cases {
        assert_eq!(intro(new, old), v(&[&format!("play: {text} main-menu")]));
    }
}

#[test]
fn counts_carry_what_russian_needs() {
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    h.reply(StoreReply::Pin(PinReply::Ok));
    h.m.on_store(
        h.now,
        StoreReply::Messages {
            new: metas(&["a", "b"]),
            old: vec![],
            remote: vec![],
            partial: false,
        },
    );
    let Some(Action::Play(items)) = h.m.poll_action() else {
        panic!("expected a playlist");
    };
    assert_eq!(
        items[..4],
        [
            Audio::Prompt("you-have"),
            Audio::NumberGendered(2, Gender::Neuter),
            Audio::Counted {
                n: 2,
                one: "new",
                many: "new"
            },
            Audio::Counted {
                n: 2,
                one: "message",
                many: "messages"
            },
        ]
    );
}

#[test]
fn new_then_old_with_navigation_at_both_ends() {
    let mut h = H::logged_in(&["n1", "n2"], &["o1"]);
    assert_eq!(h.keys("1"), v(&["play: message-number 1"]));
    assert_eq!(h.done(), v(&["play: msg:n1", r#"MoveToOld { msg: "n1" }"#]));
    assert!(h.reply(StoreReply::Done).is_empty());
    assert_eq!(h.done(), v(&["play: message-menu"]));
    // 4 at the first message.
    assert_eq!(
        h.keys("4"),
        v(&["stop", "play: first-message message-menu"])
    );
    // 6 while the menu plays: next message.
    assert_eq!(h.keys("6"), v(&["stop", "play: message-number 2"]));
    assert_eq!(h.done(), v(&["play: msg:n2", r#"MoveToOld { msg: "n2" }"#]));
    h.reply(StoreReply::Done);
    // 6 during the audio: the old message, which does not move.
    assert_eq!(h.keys("6"), v(&["stop", "play: message-number 3"]));
    assert_eq!(h.done(), v(&["play: msg:o1"]));
    assert_eq!(h.done(), v(&["play: message-menu"]));
    assert_eq!(
        h.keys("6"),
        v(&["stop", "play: no-more-messages message-menu"])
    );
    // Back to the first: it is not moved a second time.
    assert_eq!(h.keys("4"), v(&["stop", "play: message-number 2"]));
    assert_eq!(h.keys("4"), v(&["stop", "play: message-number 1"]));
    assert_eq!(h.done(), v(&["play: msg:n1"]));
    assert_eq!(h.keys("5"), v(&["stop", "play: message-number 1"]));
    assert_eq!(h.done(), v(&["play: msg:n1"]));
    assert_eq!(h.keys("#"), v(&["stop", "play: main-menu"]));
    // The Old folder (2 then 1) now holds the ones heard.
    h.done();
    assert_eq!(h.keys("2"), v(&["play: folders-menu"]));
    assert_eq!(
        h.keys("1"),
        v(&["stop", "play: folder-old message-number 1"])
    );
    assert_eq!(h.done(), v(&["play: msg:n1"]));
    h.keys("66");
    assert_eq!(h.done(), v(&["play: msg:o1"]));
}

#[test]
fn old_menu_with_nothing_old_and_empty_mailbox() {
    let mut h = H::logged_in(&["n1"], &[]);
    assert_eq!(h.keys("2"), v(&["play: folders-menu"]));
    assert_eq!(
        h.keys("1"),
        v(&["stop", "play: folder-old you-have no-messages main-menu"])
    );
    let mut h = H::logged_in(&[], &[]);
    assert_eq!(h.keys("1"), v(&["play: you-have no-messages main-menu"]));
}

#[test]
fn delete_undelete_and_deletion_at_the_end() {
    let mut h = H::logged_in(&[], &["o1", "o2"]);
    h.keys("1");
    assert_eq!(h.keys("7"), v(&["stop", "play: deleted message-menu"]));
    assert_eq!(h.keys("7"), v(&["stop", "play: undeleted message-menu"]));
    h.keys("7");
    h.keys("6");
    // Deleted at the end of the call only: caller hangs up.
    assert_eq!(h.hangup(), v(&[r#"Delete { msg: "o1" }"#, "done"]));
    assert!(h.hangup().is_empty());

    // Goodbye from the main menu: hang up, delete, done.
    let mut h = H::logged_in(&[], &["o1", "o2"]);
    h.keys("16");
    h.keys("7");
    h.keys("#");
    assert_eq!(h.keys("#"), v(&["stop", "play: goodbye"]));
    assert_eq!(h.done(), v(&["hangup", r#"Delete { msg: "o2" }"#, "done"]));
}

#[test]
fn forward_ok_and_unknown_mailbox() {
    let mut h = H::logged_in(&[], &["o1"]);
    h.keys("1");
    assert_eq!(h.keys("8"), v(&["stop", "play: forward-enter-mailbox"]));
    assert_eq!(
        h.keys("2002#"),
        v(&["stop", r#"Forward { msg: "o1", to_user: "2002" }"#])
    );
    assert!(h.keys("5").is_empty());
    assert_eq!(
        h.reply(StoreReply::Forwarded(Ok(()))),
        v(&["play: forwarded message-menu"])
    );
    h.keys("8");
    h.keys("9999#");
    assert_eq!(
        h.reply(StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox))),
        v(&["play: invalid-mailbox message-menu"])
    );
    // Star cancels, an empty entry goes back too.
    h.keys("8");
    assert_eq!(h.keys("12*"), v(&["stop", "play: message-menu"]));
    h.keys("8");
    assert_eq!(h.keys("#"), v(&["stop", "play: message-menu"]));
    h.keys("8");
    assert_eq!(
        h.keys(&format!("{}#", "3".repeat(50))),
        v(&["stop", "play: invalid-mailbox message-menu"])
    );
    // A forward that fails in the store ends the call.
    h.keys("8");
    h.keys("2002#");
    assert_eq!(
        h.reply(StoreReply::Forwarded(Err(ForwardError::Failed))),
        v(&["play: goodbye"])
    );
}

#[test]
fn a_forward_waits_for_the_move_in_flight() {
    let mut h = H::logged_in(&["n1"], &[]);
    h.keys("1");
    assert_eq!(h.done(), v(&["play: msg:n1", r#"MoveToOld { msg: "n1" }"#]));
    h.keys("8");
    // The forward is queued behind the unanswered move.
    assert_eq!(h.keys("2002#"), v(&["stop"]));
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&[r#"Forward { msg: "n1", to_user: "2002" }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Forwarded(Ok(()))),
        v(&["play: forwarded message-menu"])
    );
}

#[test]
fn moves_queue_behind_each_other_and_failures_are_only_logged() {
    let mut h = H::logged_in(&["n1", "n2", "n3"], &[]);
    h.keys("1");
    h.done();
    h.keys("6");
    assert_eq!(h.done(), v(&["play: msg:n2"]));
    h.keys("6");
    assert_eq!(h.done(), v(&["play: msg:n3"]));
    assert_eq!(
        h.reply(StoreReply::Failed),
        v(&[r#"MoveToOld { msg: "n2" }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&[r#"MoveToOld { msg: "n3" }"#])
    );
    assert!(h.reply(StoreReply::Done).is_empty());
    // A reply nobody waits for is ignored.
    assert!(h.reply(StoreReply::Done).is_empty());
}

#[test]
fn save_moves_an_unplayed_new_message_once() {
    let mut h = H::logged_in(&["n1"], &[]);
    h.keys("1");
    assert_eq!(
        h.keys("9"),
        v(&["stop", "play: save-to-folder folders-menu"])
    );
    assert_eq!(
        h.keys("1"),
        v(&["stop", r#"MoveTo { msg: "n1", folder: Old }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: saved-in folder-old message-menu"])
    );
    // Played now, it does not move a second time.
    h.keys("5");
    assert_eq!(h.done(), v(&["play: msg:n1"]));
    // Save also takes back a deletion mark; already there: no store op.
    h.keys("7");
    h.keys("9");
    assert_eq!(
        h.keys("1"),
        v(&["stop", "play: saved-in folder-old message-menu"])
    );
    assert_eq!(h.hangup(), v(&["done"]));
}

#[test]
fn nine_then_a_folder_key_saves_into_that_folder() {
    let mut h = H::logged_in(&["n1", "n2"], &[]);
    h.keys("1");
    // Heard: MoveToOld goes out, then 9 2 saves it into Work.
    assert_eq!(h.done(), v(&["play: msg:n1", r#"MoveToOld { msg: "n1" }"#]));
    assert_eq!(
        h.keys("9"),
        v(&["stop", "play: save-to-folder folders-menu"])
    );
    // The move waits behind the MoveToOld in flight.
    assert!(h.keys("2").iter().all(|a| a == "stop"));
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&[r#"MoveTo { msg: "n1", folder: Work }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: saved-in folder-work message-menu"])
    );
    // The next message, heard; `#` cancels a save.
    h.keys("6");
    assert_eq!(h.done(), v(&["play: msg:n2", r#"MoveToOld { msg: "n2" }"#]));
    assert!(h.reply(StoreReply::Done).is_empty());
    assert_eq!(
        h.keys("9"),
        v(&["stop", "play: save-to-folder folders-menu"])
    );
    assert_eq!(h.keys("#"), v(&["stop", "play: message-menu"]));
    // Key 9 is the fifth numbered folder; `*` is no folder.
    h.keys("9");
    assert_eq!(
        h.keys("*"),
        v(&["stop", "play: invalid-option folders-menu"])
    );
    assert_eq!(
        h.keys("9"),
        v(&["stop", r#"MoveTo { msg: "n2", folder: Cust5 }"#])
    );
    assert_eq!(
        h.reply(StoreReply::Done),
        v(&["play: saved-in folder-9 message-menu"])
    );
    // 2 then 2: the Work folder holds n1.
    h.keys("#");
    h.done();
    assert_eq!(h.keys("2"), v(&["play: folders-menu"]));
    assert_eq!(
        h.keys("2"),
        v(&["stop", "play: folder-work message-number 1"])
    );
    assert_eq!(h.done(), v(&["play: msg:n1"]));
    assert_eq!(h.hangup(), v(&["done"]));
}

#[test]
fn a_failed_save_ends_the_call() {
    let mut h = H::logged_in(&[], &["o1"]);
    h.keys("1");
    h.keys("9");
    assert_eq!(
        h.keys("3"),
        v(&["stop", r#"MoveTo { msg: "o1", folder: Family }"#])
    );
    assert_eq!(h.reply(StoreReply::Failed), v(&["play: goodbye"]));
}

#[test]
fn folders_loaded_at_login_are_reached_with_two() {
    let mut work = metas(&["w1"]);
    work[0].folder = crate::store::Folder::Work;
    let mut fam = metas(&["f1"]);
    fam[0].folder = crate::store::Folder::Family;
    let mut old = metas(&["o1"]);
    old.extend(work);
    old.extend(fam);
    let mut h = H::new(Some("1001"));
    h.start();
    h.keys("1234#");
    h.reply(StoreReply::Pin(PinReply::Ok));
    // The greeting counts INBOX and Old only.
    assert_eq!(
        h.reply(StoreReply::Messages {
            new: metas(&["n1"]),
            old,
            remote: vec![],
            partial: false,
        }),
        v(&["play: you-have 1 new message and 1 old message main-menu"])
    );
    h.done();
    // 1 plays INBOX and Old only.
    h.keys("1");
    h.done();
    h.reply(StoreReply::Done);
    h.keys("6");
    h.done();
    assert_eq!(
        h.keys("6"),
        v(&["stop", "play: no-more-messages message-menu"])
    );
    h.keys("#");
    h.done();
    h.keys("2");
    assert_eq!(
        h.keys("3"),
        v(&["stop", "play: folder-family message-number 1"])
    );
    assert_eq!(h.done(), v(&["play: msg:f1"]));
    h.keys("#");
    h.keys("2");
    assert_eq!(
        h.keys("4"),
        v(&[
            "stop",
            "play: folder-friends you-have no-messages main-menu"
        ])
    );
    // 0: INBOX now (n1 was heard: empty).
    h.keys("2");
    assert_eq!(
        h.keys("0"),
        v(&["stop", "play: folder-new you-have no-messages main-menu"])
    );
    // `#` leaves the folder choice; silence repeats it.
    h.keys("2");
    assert_eq!(h.keys("#"), v(&["stop", "play: main-menu"]));
    h.keys("2");
    h.done();
    assert_eq!(h.wait(10), v(&["play: folders-menu"]));
}

#[test]
fn envelope_help_and_invalid_keys() {
    let mut h = H::logged_in_with(
        vec![],
        vec![
            meta("o1", "sip:+7-495-1234@pbx"),
            meta("o2", "sip:anonymous@anonymous.invalid"),
        ],
    );
    h.keys("1");
    assert_eq!(
        h.keys("3"),
        v(&[
            "stop",
            "play: received-at date:2024-05-01T10:05:00Z from digits:74951234 message-menu"
        ])
    );
    h.keys("6");
    assert_eq!(
        h.keys("3"),
        v(&[
            "stop",
            "play: received-at date:2024-05-01T10:05:00Z from unknown-caller message-menu"
        ])
    );
    assert_eq!(h.keys("*"), v(&["stop", "play: help"]));
    assert_eq!(
        h.keys("0"),
        v(&["stop", "play: invalid-option message-menu"])
    );
    assert_eq!(h.keys("#"), v(&["stop", "play: main-menu"]));
    assert_eq!(h.keys("*"), v(&["stop", "play: help main-menu"]));
    assert_eq!(h.keys("5"), v(&["stop", "play: invalid-option main-menu"]));
}

#[test]
fn a_key_flood_stays_bounded() {
    let mut h = H::logged_in(&["n1", "n2"], &["o1"]);
    let keys: String = "1234567890*#".repeat(200);
    for d in keys.chars() {
        h.m.on_digit(h.now, d);
        let a = h.drain();
        assert!(a.len() <= 4, "{a:?}");
        h.m.on_store(h.now, StoreReply::Done);
        h.drain();
    }
}

#[test]
fn store_ops_are_never_more_than_one_out() {
    // MoveToOld of three messages with no reply: only one is out.
    let mut h = H::logged_in(&["a", "b", "c"], &[]);
    h.keys("1");
    let mut ops = h.done();
    for _ in 0..2 {
        h.keys("6");
        ops.extend(h.done());
    }
    let stores = ops.iter().filter(|a| a.starts_with("MoveToOld")).count();
    assert_eq!(stores, 1, "{ops:?}");
}

#[test]
fn urgent_messages_play_first() {
    let mut new = metas(&["n1", "n2", "n3"]);
    new[2].urgent = true;
    let mut old = metas(&["o1", "o2"]);
    old[1].urgent = true;
    let mut h = H::logged_in_with(new.clone(), old.clone());
    assert_eq!(h.keys("1"), v(&["play: message-number 1"]));
    assert_eq!(h.done(), v(&["play: msg:n3", r#"MoveToOld { msg: "n3" }"#]));

    // Old through "change folders" (2), then 1.
    let mut h = H::logged_in_with(new, old);
    h.keys("21");
    assert_eq!(h.done()[0], "play: msg:o2");
}
