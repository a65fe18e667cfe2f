//! Prompt names and the spoken sentences built from them.

use crate::prompts::Gender;
use crate::store::{Folder, MessageMeta};

use super::types::Audio;

/// Prompt names the menu uses (all in `prompts/<lang>/`).
pub(super) mod p {
    pub const ENTER_MAILBOX: &str = "enter-mailbox";
    pub const ENTER_PIN: &str = "enter-pin";
    pub const LOGIN_INCORRECT: &str = "login-incorrect";
    pub const MAILBOX_LOCKED: &str = "mailbox-locked";
    pub const PLEASE_WAIT: &str = "please-wait";
    pub const TRY_LATER: &str = "try-later";
    pub const YOU_HAVE: &str = "you-have";
    pub const NEW: &str = "new";
    pub const OLD: &str = "old";
    pub const MESSAGE: &str = "message";
    pub const MESSAGES: &str = "messages";
    pub const NO_MESSAGES: &str = "no-messages";
    pub const AND: &str = "and";
    pub const MAIN_MENU: &str = "main-menu";
    pub const MESSAGE_NUMBER: &str = "message-number";
    pub const FIRST_MESSAGE: &str = "first-message";
    pub const NO_MORE_MESSAGES: &str = "no-more-messages";
    pub const MESSAGE_MENU: &str = "message-menu";
    pub const DELETED: &str = "deleted";
    pub const UNDELETED: &str = "undeleted";
    pub const SAVED: &str = "saved";
    pub const FORWARD_ENTER_MAILBOX: &str = "forward-enter-mailbox";
    pub const FORWARDED: &str = "forwarded";
    pub const INVALID_MAILBOX: &str = "invalid-mailbox";
    pub const RECEIVED_AT: &str = "received-at";
    pub const FROM: &str = "from";
    pub const UNKNOWN_CALLER: &str = "unknown-caller";
    pub const OPTIONS_MENU: &str = "options-menu";
    pub const RECORD_AFTER_TONE: &str = "record-after-tone";
    pub const BEEP: &str = "beep";
    pub const REVIEW_RECORDING: &str = "review-recording";
    pub const GREETING_SAVED: &str = "greeting-saved";
    pub const TEMP_GREETING_MENU: &str = "temp-greeting-menu";
    pub const TEMP_GREETING_ERASED: &str = "temp-greeting-erased";
    pub const ENTER_NEW_PIN: &str = "enter-new-pin";
    pub const REENTER_PIN: &str = "reenter-pin";
    pub const PIN_MISMATCH: &str = "pin-mismatch";
    pub const PIN_INVALID: &str = "pin-invalid";
    pub const PIN_CHANGED: &str = "pin-changed";
    pub const INVALID_OPTION: &str = "invalid-option";
    pub const HELP: &str = "help";
    pub const GOODBYE: &str = "goodbye";
    pub const FOLDERS_MENU: &str = "folders-menu";
    pub const SAVE_TO_FOLDER: &str = "save-to-folder";
    pub const SAVED_IN: &str = "saved-in";
    pub const FOLDER_NEW: &str = "folder-new";
    pub const FOLDER_OLD: &str = "folder-old";
    pub const FOLDER_WORK: &str = "folder-work";
    pub const FOLDER_FAMILY: &str = "folder-family";
    pub const FOLDER_FRIENDS: &str = "folder-friends";
    pub const FOLDER_5: &str = "folder-5";
    pub const FOLDER_6: &str = "folder-6";
    pub const FOLDER_7: &str = "folder-7";
    pub const FOLDER_8: &str = "folder-8";
    pub const FOLDER_9: &str = "folder-9";
    pub const SOME_UNREACHABLE: &str = "some-unreachable";
    pub const CANNOT_NOW: &str = "cannot-now";
}

/// What the shell plays while a PIN check waits for a hashing slot.
pub const WAIT_PROMPT: &str = p::PLEASE_WAIT;

/// Every prompt name the menu may ask for, so that the shell can check its
/// prompt set at start. Numbers, digits and dates come on top (see
/// [`Audio`]).
pub const PROMPT_NAMES: &[&str] = &[
    p::ENTER_MAILBOX,
    p::ENTER_PIN,
    p::LOGIN_INCORRECT,
    p::MAILBOX_LOCKED,
    p::PLEASE_WAIT,
    p::TRY_LATER,
    p::YOU_HAVE,
    p::NEW,
    p::OLD,
    p::MESSAGE,
    p::MESSAGES,
    p::NO_MESSAGES,
    p::AND,
    p::MAIN_MENU,
    p::MESSAGE_NUMBER,
    p::FIRST_MESSAGE,
    p::NO_MORE_MESSAGES,
    p::MESSAGE_MENU,
    p::DELETED,
    p::UNDELETED,
    p::SAVED,
    p::FORWARD_ENTER_MAILBOX,
    p::FORWARDED,
    p::INVALID_MAILBOX,
    p::RECEIVED_AT,
    p::FROM,
    p::UNKNOWN_CALLER,
    p::OPTIONS_MENU,
    p::RECORD_AFTER_TONE,
    p::BEEP,
    p::REVIEW_RECORDING,
    p::GREETING_SAVED,
    p::TEMP_GREETING_MENU,
    p::TEMP_GREETING_ERASED,
    p::ENTER_NEW_PIN,
    p::REENTER_PIN,
    p::PIN_MISMATCH,
    p::PIN_INVALID,
    p::PIN_CHANGED,
    p::INVALID_OPTION,
    p::HELP,
    p::GOODBYE,
    p::FOLDERS_MENU,
    p::SAVE_TO_FOLDER,
    p::SAVED_IN,
    p::FOLDER_NEW,
    p::FOLDER_OLD,
    p::FOLDER_WORK,
    p::FOLDER_FAMILY,
    p::FOLDER_FRIENDS,
    p::FOLDER_5,
    p::FOLDER_6,
    p::FOLDER_7,
    p::FOLDER_8,
    p::FOLDER_9,
    p::SOME_UNREACHABLE,
    p::CANNOT_NOW,
];

/// The spoken name of a folder: "work", "family", ...; the numbered
/// folders Cust1..Cust5 by their keys ("folder five").
pub(super) fn folder_name(f: Folder) -> &'static str {
    match f {
        Folder::Inbox => p::FOLDER_NEW,
        Folder::Old => p::FOLDER_OLD,
        Folder::Work => p::FOLDER_WORK,
        Folder::Family => p::FOLDER_FAMILY,
        Folder::Friends => p::FOLDER_FRIENDS,
        Folder::Cust1 => p::FOLDER_5,
        Folder::Cust2 => p::FOLDER_6,
        Folder::Cust3 => p::FOLDER_7,
        Folder::Cust4 => p::FOLDER_8,
        Folder::Cust5 => p::FOLDER_9,
    }
}

/// Longest caller number read out in the envelope.
const MAX_CALLER_DIGITS: usize = 32;

/// A prompt item.
pub(super) fn pr(name: &'static str) -> Audio {
    Audio::Prompt(name)
}

/// "N new messages" / "M old messages": number, adjective and noun agree
/// with the count (Russian forms through [`Audio::Counted`]).
fn count(out: &mut Vec<Audio>, n: u32, adjective: &'static str) {
    out.push(Audio::NumberGendered(n, Gender::Neuter));
    out.push(Audio::Counted {
        n,
        one: adjective,
        many: adjective,
    });
    out.push(Audio::Counted {
        n,
        one: p::MESSAGE,
        many: p::MESSAGES,
    });
}

/// "You have 2 new and 1 old message(s)", leaving out a folder that is
/// empty; "You have no messages" when both are.
pub(super) fn you_have(new: usize, old: usize) -> Vec<Audio> {
    let new = u32::try_from(new).unwrap_or(u32::MAX);
    let old = u32::try_from(old).unwrap_or(u32::MAX);
    let mut out = vec![pr(p::YOU_HAVE)];
    match (new, old) {
        (0, 0) => out.push(pr(p::NO_MESSAGES)),
        (n, 0) => count(&mut out, n, p::NEW),
        (0, o) => count(&mut out, o, p::OLD),
        (n, o) => {
            count(&mut out, n, p::NEW);
            out.push(pr(p::AND));
            count(&mut out, o, p::OLD);
        }
    }
    out
}

/// "Message N".
pub(super) fn message_number(n: usize) -> Vec<Audio> {
    vec![
        pr(p::MESSAGE_NUMBER),
        Audio::Number(u32::try_from(n).unwrap_or(u32::MAX)),
    ]
}

/// "Received <when> from <number | an unknown caller>".
pub(super) fn envelope(m: &MessageMeta) -> Vec<Audio> {
    let mut out = vec![pr(p::RECEIVED_AT)];
    if !m.received.is_empty() {
        out.push(Audio::DateTime(m.received.clone()));
    }
    out.push(pr(p::FROM));
    match caller_digits(&m.caller_uri) {
        Some(d) => out.push(Audio::Digits(d)),
        None => out.push(pr(p::UNKNOWN_CALLER)),
    }
    out
}

/// The caller number of a URI as digits to read out: the user part of a
/// `sip:`/`sips:`/`tel:` URI (or a bare number) without `+` and visual
/// separators. `None` for names (`anonymous`, `alice`), empty or absurdly
/// long numbers.
pub(super) fn caller_digits(uri: &str) -> Option<String> {
    let mut s = uri.trim();
    if let Some(start) = s.find('<') {
        s = s.get(start + 1..)?;
        s = s.split('>').next()?;
    }
    let lower = s.get(..5).map(str::to_ascii_lowercase);
    let rest = match lower.as_deref() {
        Some(x) if x.starts_with("sips:") => s.get(5..)?,
        Some(x) if x.starts_with("sip:") || x.starts_with("tel:") => s.get(4..)?,
        _ => s,
    };
    let user = rest.split(['@', ';', '?']).next()?;
    let user = user.strip_prefix('+').unwrap_or(user);
    let mut digits = String::new();
    for c in user.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
        if digits.len() > MAX_CALLER_DIGITS {
            return None;
        }
    }
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers() {
        assert_eq!(
            caller_digits("sip:1001@example.com").as_deref(),
            Some("1001")
        );
        assert_eq!(
            caller_digits("SIP:+7-495-123@x;user=phone").as_deref(),
            Some("7495123")
        );
        assert_eq!(
            caller_digits("tel:+1(555)0100;ext=1").as_deref(),
            Some("15550100")
        );
        assert_eq!(caller_digits("sips:42@h").as_deref(), Some("42"));
        assert_eq!(caller_digits("\"Bob\" <sip:555@h>").as_deref(), Some("555"));
        assert_eq!(caller_digits("2002").as_deref(), Some("2002"));
        for none in [
            "",
            "sip:anonymous@anonymous.invalid",
            "sip:@h",
            "sip:alice@h",
            "<",
            "sip:+",
        ] {
            assert_eq!(caller_digits(none), None, "{none}");
        }
        let long = format!("sip:{}@h", "1".repeat(33));
        assert_eq!(caller_digits(&long), None);
        assert_eq!(caller_digits("sip:ü1@h"), None);
    }

    #[test]
    fn prompt_names_exist_in_english_and_russian() {
        for lang in ["en", "ru"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("prompts")
                .join(lang);
            let have: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let n = e.unwrap().file_name().to_string_lossy().into_owned();
                    n.split('.').next().unwrap().to_string()
                })
                .collect();
            for name in PROMPT_NAMES {
                assert!(
                    have.iter().any(|h| h == name),
                    "missing prompt {lang}/{name}"
                );
            }
        }
    }

    #[test]
    fn every_folder_has_a_spoken_name() {
        let names: Vec<&str> = Folder::ALL.into_iter().map(folder_name).collect();
        for n in &names {
            assert!(PROMPT_NAMES.contains(n), "{n}");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
