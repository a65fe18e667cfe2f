//! Random inputs: no panic, one store op out at a time, after the
//! hang-up only deletions and `Done`, `Done` exactly once and last.

use proptest::prelude::*;
use std::time::SystemTime;

use super::*;
use crate::ivr::{ForwardError, StoreOp};

#[derive(Debug, Clone)]
enum Input {
    Digit(char),
    PlaybackDone,
    RecordingDone(u64),
    /// A plausible reply to whatever is out (by index), or a random one.
    Reply(u8),
    Hangup,
    Wait(u64),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => proptest::sample::select(
            "0123456789*#A".chars().collect::<Vec<_>>()
        ).prop_map(Input::Digit),
        4 => Just(Input::PlaybackDone),
        1 => (0u64..5000).prop_map(Input::RecordingDone),
        3 => any::<u8>().prop_map(Input::Reply),
        1 => Just(Input::Hangup),
        2 => (0u64..15).prop_map(Input::Wait),
    ]
}

fn reply_for(op: Option<&StoreOp>, k: u8) -> StoreReply {
    let any = [
        StoreReply::Done,
        StoreReply::Failed,
        StoreReply::Pin(PinReply::Wrong),
        StoreReply::Forwarded(Ok(())),
        StoreReply::Unreachable,
    ];
    if k % 8 == 7 {
        return any[usize::from(k / 8) % any.len()].clone();
    }
    match op {
        Some(StoreOp::VerifyPin { .. }) => match k % 5 {
            0 | 1 => StoreReply::Pin(PinReply::Ok),
            2 => StoreReply::Pin(PinReply::Wrong),
            3 => StoreReply::Pin(PinReply::NoSuchMailbox),
            _ => StoreReply::Pin(PinReply::Locked {
                until: SystemTime::UNIX_EPOCH,
            }),
        },
        Some(StoreOp::LoadMessages) => {
            let ids = ["a", "b", "c", "d", "e"];
            let n = usize::from(k % 4);
            let o = usize::from(k / 4 % 3);
            let mut old = metas(&ids[n..n + o]);
            // Some runs have a message saved in a named folder.
            if let Some(last) = old.last_mut().filter(|_| k.is_multiple_of(2)) {
                last.folder = crate::store::Folder::from_key(char::from(b'2' + k % 8))
                    .unwrap_or(crate::store::Folder::Work);
            }
            // Some runs have messages kept at another site ("b", "d"),
            // and some a site that did not answer.
            let remote = if k.is_multiple_of(3) {
                vec![]
            } else {
                vec!["b".to_string(), "d".to_string()]
            };
            StoreReply::Messages {
                new: metas(&ids[..n]),
                old,
                remote,
                partial: k.is_multiple_of(5),
            }
        }
        Some(StoreOp::Forward { .. }) => match k % 3 {
            0 => StoreReply::Forwarded(Ok(())),
            1 => StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)),
            _ => StoreReply::Forwarded(Err(ForwardError::Failed)),
        },
        _ => match k % 6 {
            5 => StoreReply::Failed,
            4 => StoreReply::Unreachable,
            _ => StoreReply::Done,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_stay_consistent(
        known in proptest::option::of(Just("1001")),
        logged_in in any::<bool>(),
        inputs in proptest::collection::vec(input(), 0..120),
    ) {
        // Half of the runs begin in the main menu, so that the deep states
        // are walked for sure.
        let mut h = if logged_in {
            H::logged_in(&["n1", "n2"], &["o1"])
        } else {
            H::new(known)
        };
        let mut out: Option<StoreOp> = None;
        let mut hung_up = false;
        let mut done = 0;
        let mut remote: Vec<String> = Vec::new();
        let check = |h: &mut H, out: &mut Option<StoreOp>, hung_up: bool, done: &mut u32, remote: &[String]| {
            let mut n = 0;
            while let Some(a) = h.m.poll_action() {
                n += 1;
                prop_assert_eq!(*done, 0, "action after Done: {:?}", a);
                match &a {
                    Action::Done => *done += 1,
                    Action::Store(StoreOp::Delete { msg }) => {
                        // Remote ones were deleted during the call.
                        prop_assert!(!remote.contains(msg), "end-of-call delete of {}", msg);
                    }
                    Action::Store(op) => {
                        prop_assert!(!hung_up, "store op after hang-up: {:?}", op);
                        prop_assert!(out.is_none(), "two ops out: {:?} and {:?}", out, op);
                        *out = Some(op.clone());
                    }
                    other => prop_assert!(!hung_up, "{:?} after hang-up", other),
                }
            }
            prop_assert!(n <= 16, "{} actions for one input", n);
            Ok(())
        };
        h.m.start(h.now);
        check(&mut h, &mut out, hung_up, &mut done, &remote)?;
        for i in inputs {
            match i {
                Input::Digit(d) => h.m.on_digit(h.now, d),
                Input::PlaybackDone => h.m.on_playback_done(h.now),
                Input::RecordingDone(ms) => h.m.on_recording_done(h.now, ms),
                Input::Reply(k) => {
                    let r = reply_for(out.as_ref(), k);
                    if let StoreReply::Messages { remote: r, .. } = &r {
                        remote = r.clone();
                    }
                    out = None;
                    h.m.on_store(h.now, r);
                }
                Input::Hangup => {
                    hung_up = true;
                    h.m.on_hangup(h.now);
                }
                Input::Wait(s) => {
                    h.now += Duration::from_secs(s);
                    h.m.handle_timeout(h.now);
                }
            }
            check(&mut h, &mut out, hung_up, &mut done, &remote)?;
            if done == 1 {
                prop_assert!(h.m.is_done());
                prop_assert_eq!(h.m.poll_timeout(), None);
            }
        }
        h.m.on_hangup(h.now);
        check(&mut h, &mut out, true, &mut done, &remote)?;
        prop_assert_eq!(done, 1);
    }
}
