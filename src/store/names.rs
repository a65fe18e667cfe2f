//! Validated names: mailbox ids, message ids, folders, greeting kinds.
//!
//! Every name that ends up in a path is checked here first; the checks
//! admit only characters that can never form a path separator, a parent
//! reference or a hidden file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// Longest user part.
pub const MAX_USER_LEN: usize = 64;
/// Longest domain.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest domain label.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest message id.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// A mailbox address `user@domain`, valid by construction.
///
/// The domain is kept lower-cased (a single trailing dot is dropped); the
/// user part is case-sensitive as SIP user parts are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId {
    user: String,
    domain: String,
}

fn bad_user(reason: &'static str) -> StoreError {
    StoreError::InvalidName {
        kind: "user",
        reason,
    }
}

fn bad_domain(reason: &'static str) -> StoreError {
    StoreError::InvalidName {
        kind: "domain",
        reason,
    }
}

/// Checks a user part: 1..=64 of `[A-Za-z0-9._+-]`, no leading dot.
pub fn validate_user(user: &str) -> Result<(), StoreError> {
    if user.is_empty() {
        return Err(bad_user("empty"));
    }
    if user.len() > MAX_USER_LEN {
        return Err(bad_user("longer than 64 characters"));
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    {
        return Err(bad_user("only A-Z a-z 0-9 . _ + - are allowed"));
    }
    if user.starts_with('.') {
        return Err(bad_user("must not start with '.'"));
    }
    Ok(())
}

/// Normalises and checks a domain: lower-cased labels of `[a-z0-9-]`,
/// 1..=63 each, no leading/trailing '-', at most 253 in all. One trailing
/// dot is accepted and dropped.
pub fn normalize_domain(domain: &str) -> Result<String, StoreError> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() {
        return Err(bad_domain("empty"));
    }
    if d.len() > MAX_DOMAIN_LEN {
        return Err(bad_domain("longer than 253 characters"));
    }
    if !d
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad_domain("only letters, digits, '-' and '.' are allowed"));
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(bad_domain("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad_domain("label longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad_domain("label starts or ends with '-'"));
        }
    }
    Ok(d.to_ascii_lowercase())
}

impl MailboxId {
    /// Validates `user` and `domain` and builds the id.
    pub fn new(user: &str, domain: &str) -> Result<Self, StoreError> {
        validate_user(user)?;
        let domain = normalize_domain(domain)?;
        Ok(MailboxId {
            user: user.to_owned(),
            domain,
        })
    }

    /// Parses `user@domain`.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let (user, domain) = s.split_once('@').ok_or(StoreError::InvalidName {
            kind: "mailbox",
            reason: "expected user@domain",
        })?;
        MailboxId::new(user, domain)
    }

    /// The user part.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The (lower-case) domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

impl FromStr for MailboxId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MailboxId::parse(s)
    }
}

impl Serialize for MailboxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MailboxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MailboxId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks a message id: 1..=128 of `[A-Za-z0-9._-]`, starting with a
/// letter or digit.
pub fn validate_message_id(id: &str) -> Result<(), StoreError> {
    let bad = |reason| StoreError::InvalidName {
        kind: "message id",
        reason,
    };
    if id.is_empty() {
        return Err(bad("empty"));
    }
    if id.len() > MAX_MESSAGE_ID_LEN {
        return Err(bad("longer than 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only A-Z a-z 0-9 . _ - are allowed"));
    }
    if !id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric) {
        return Err(bad("must start with a letter or digit"));
    }
    Ok(())
}

/// A message folder: Asterisk's ten, under Asterisk's directory names, so
/// that a mailbox tree copied from `/var/spool/asterisk/voicemail` keeps its
/// folders. The phone menu picks one by its key ([`Folder::key`]): `0`
/// INBOX, `1` Old, `2` Work, `3` Family, `4` Friends, `5`..`9` Cust1..Cust5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Folder {
    /// New messages (`INBOX/`).
    #[serde(rename = "INBOX", alias = "inbox", alias = "new")]
    Inbox,
    /// Saved / heard messages (`Old/`).
    #[serde(rename = "Old", alias = "old")]
    Old,
    /// `Work/`.
    #[serde(alias = "work")]
    Work,
    /// `Family/`.
    #[serde(alias = "family")]
    Family,
    /// `Friends/`.
    #[serde(alias = "friends")]
    Friends,
    /// `Cust1/` (key 5).
    #[serde(alias = "cust1")]
    Cust1,
    /// `Cust2/` (key 6).
    #[serde(alias = "cust2")]
    Cust2,
    /// `Cust3/` (key 7).
    #[serde(alias = "cust3")]
    Cust3,
    /// `Cust4/` (key 8).
    #[serde(alias = "cust4")]
    Cust4,
    /// `Cust5/` (key 9).
    #[serde(alias = "cust5")]
    Cust5,
}

impl Folder {
    /// Every folder, in key order (new first).
    pub const ALL: [Folder; 10] = [
        Folder::Inbox,
        Folder::Old,
        Folder::Work,
        Folder::Family,
        Folder::Friends,
        Folder::Cust1,
        Folder::Cust2,
        Folder::Cust3,
        Folder::Cust4,
        Folder::Cust5,
    ];

    /// The directory name (also the name in the API and in metadata).
    pub fn dir_name(self) -> &'static str {
        match self {
            Folder::Inbox => "INBOX",
            Folder::Old => "Old",
            Folder::Work => "Work",
            Folder::Family => "Family",
            Folder::Friends => "Friends",
            Folder::Cust1 => "Cust1",
            Folder::Cust2 => "Cust2",
            Folder::Cust3 => "Cust3",
            Folder::Cust4 => "Cust4",
            Folder::Cust5 => "Cust5",
        }
    }

    /// The phone key that selects it (`0`..`9`, Asterisk's layout).
    pub fn key(self) -> char {
        let i = Folder::ALL.iter().position(|f| *f == self).unwrap_or(0);
        char::from(b'0' + u8::try_from(i).unwrap_or(0))
    }

    /// The folder of a phone key (`0`..`9`).
    pub fn from_key(key: char) -> Option<Folder> {
        let i = key.to_digit(10)?;
        Folder::ALL.get(usize::try_from(i).ok()?).copied()
    }

    /// True for `INBOX/`: the new messages; every other folder holds heard
    /// or saved ones (the "old" of message waiting).
    pub fn is_new(self) -> bool {
        self == Folder::Inbox
    }

    /// Parses a folder name as the API spells it: the directory name in
    /// any letter case, or `new` for `INBOX`.
    pub fn parse(s: &str) -> Option<Folder> {
        if s.eq_ignore_ascii_case("new") {
            return Some(Folder::Inbox);
        }
        Folder::ALL
            .into_iter()
            .find(|f| f.dir_name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Which greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GreetingKind {
    /// Played when the call was not answered (`unavail.wav`).
    Unavailable,
    /// Played when the subscriber was busy (`busy.wav`).
    Busy,
    /// Temporary greeting, overrides the others (`temp.wav`).
    Temporary,
    /// The subscriber's recorded name (`name.wav`).
    Name,
}

impl GreetingKind {
    /// All kinds.
    pub const ALL: [GreetingKind; 4] = [
        GreetingKind::Unavailable,
        GreetingKind::Busy,
        GreetingKind::Temporary,
        GreetingKind::Name,
    ];

    /// The file name under `greetings/`.
    pub fn file_name(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "unavail.wav",
            GreetingKind::Busy => "busy.wav",
            GreetingKind::Temporary => "temp.wav",
            GreetingKind::Name => "name.wav",
        }
    }

    /// Parses `unavail(able)`, `busy`, `temp(orary)`, `name`.
    pub fn parse(s: &str) -> Option<GreetingKind> {
        match s.to_ascii_lowercase().as_str() {
            "unavail" | "unavailable" => Some(GreetingKind::Unavailable),
            "busy" => Some(GreetingKind::Busy),
            "temp" | "temporary" => Some(GreetingKind::Temporary),
            "name" => Some(GreetingKind::Name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_names() {
        let m = MailboxId::new("1001", "Test.RootDomain.RU.").unwrap();
        assert_eq!(m.user(), "1001");
        assert_eq!(m.domain(), "test.rootdomain.ru");
        assert_eq!(m.to_string(), "1001@test.rootdomain.ru");
        let p = MailboxId::parse("alice.b+x_y-z@127.0.0.1").unwrap();
        assert_eq!(p.user(), "alice.b+x_y-z");
        assert_eq!("a@b.c".parse::<MailboxId>().unwrap().domain(), "b.c");
        assert!(MailboxId::new(&"u".repeat(64), &"d".repeat(63)).is_ok());
        let long_domain = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(long_domain.len(), 253);
        assert!(MailboxId::new("u", &long_domain).is_ok());
    }

    #[test]
    fn hostile_names() {
        let users = [
            "", ".", "..", "../x", ".hidden", "a/b", "a\\b", "a\0b", "%2e%2e", "a b", "a@b", "ä",
            "a:b", "*", "a\n", "a;b", "~root",
        ];
        for u in users {
            assert!(MailboxId::new(u, "example.com").is_err(), "user {u:?}");
        }
        assert!(MailboxId::new(&"u".repeat(65), "example.com").is_err());
        let domains = [
            "", ".", "..", "../etc", "a..b", ".a", "a/b", "a\\b", "a\0b", "%2e%2e", "-a.b", "a-.b",
            "a_b.c", "a b", "[::1]", "ex@mple", "a.b..",
        ];
        for d in domains {
            assert!(MailboxId::new("u", d).is_err(), "domain {d:?}");
        }
        assert!(MailboxId::new("u", &"d".repeat(64)).is_err());
        let too_long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        assert!(MailboxId::new("u", &too_long).is_err());
        assert!(MailboxId::new("u", &"a.".repeat(5000)).is_err());
        for s in [
            "",
            "@",
            "u@",
            "@d",
            "u@d@e",
            "../../etc/passwd",
            "u@../x",
            "u@d/../../x",
        ] {
            assert!(MailboxId::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn message_ids() {
        assert!(validate_message_id("20240101T101010.123Z-vmail1-abcdef").is_ok());
        for s in [
            "",
            ".",
            "..",
            ".x",
            "-x",
            "a/b",
            "a\\b",
            "a\0",
            "%2e",
            &"a".repeat(129),
        ] {
            assert!(validate_message_id(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn folder_and_kind_names() {
        assert_eq!(Folder::parse("new"), Some(Folder::Inbox));
        assert_eq!(Folder::parse("Old"), Some(Folder::Old));
        assert_eq!(Folder::parse("x"), None);
        assert_eq!(Folder::parse("OLD"), Some(Folder::Old));
        assert_eq!(Folder::parse("work"), Some(Folder::Work));
        assert_eq!(Folder::parse("Cust5"), Some(Folder::Cust5));
        assert_eq!(
            serde_json::to_string(&Folder::Family).unwrap(),
            "\"Family\""
        );
        let f: Folder = serde_json::from_str("\"friends\"").unwrap();
        assert_eq!(f, Folder::Friends);
        for (i, f) in Folder::ALL.into_iter().enumerate() {
            let key = char::from(b'0' + i as u8);
            assert_eq!(f.key(), key);
            assert_eq!(Folder::from_key(key), Some(f));
            assert_eq!(Folder::parse(f.dir_name()), Some(f));
        }
        assert_eq!(Folder::from_key('*'), None);
        assert_eq!(Folder::from_key('#'), None);
        assert_eq!(Folder::Work.key(), '2');
        assert_eq!(serde_json::to_string(&Folder::Inbox).unwrap(), "\"INBOX\"");
        assert_eq!(GreetingKind::parse("temp"), Some(GreetingKind::Temporary));
        assert_eq!(GreetingKind::Unavailable.file_name(), "unavail.wav");
    }

    proptest! {
        // Whatever the input, an accepted name is one plain path component.
        #[test]
        fn accepted_names_are_plain_components(u in ".{0,80}", d in ".{0,80}") {
            if let Ok(m) = MailboxId::new(&u, &d) {
                for part in [m.user(), m.domain()] {
                    prop_assert!(!part.is_empty());
                    prop_assert!(!part.starts_with('.'));
                    prop_assert!(!part.contains(['/', '\\', '\0']));
                    let p = std::path::Path::new(part);
                    prop_assert_eq!(p.components().count(), 1);
                    let is_normal = matches!(
                        p.components().next(),
                        Some(std::path::Component::Normal(_))
                    );
                    prop_assert!(is_normal);
                }
            }
            if validate_message_id(&u).is_ok() {
                prop_assert!(!u.starts_with('.') && !u.contains(['/', '\\', '\0']));
            }
        }
    }
}
