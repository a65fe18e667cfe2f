//! Error values of the configuration: where (entry, field) and which rule.

use std::fmt;

use super::domain::DomainError;

/// Which part of the file an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// The file as a whole or one of its top-level keys (`site`,
    /// `interfaces`, `sites`, `roles`).
    File,
    /// One element of `roles`, by index and, where it has a string `name`,
    /// by name.
    Role {
        /// Position in `roles`, from 0.
        index: usize,
        /// The entry's `name` if it is a string (valid or not).
        name: Option<String>,
    },
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::File => f.write_str("file"),
            Entry::Role { index, name: None } => write!(f, "roles[{index}]"),
            Entry::Role {
                index,
                name: Some(name),
            } => write!(f, "roles[{index}] {name:?}"),
        }
    }
}

/// The rule a value breaks. `Display` gives the plain-words explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rule {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The path given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file holds nothing but white space.
    #[error("the file is empty")]
    EmptyFile,
    /// The file is not well-formed JSON.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON reader saw.
        message: String,
    },
    /// One JSON object names the same key twice (the later would win
    /// silently, so it is refused).
    #[error("the key appears more than once in the same object")]
    DuplicateKey,
    /// A required key is absent.
    #[error("is required")]
    Missing,
    /// The value has the wrong JSON type.
    #[error("must be {expected}, found {found}")]
    WrongType {
        /// What is allowed, in words ("a string").
        expected: &'static str,
        /// The value that was there, as JSON (shortened).
        found: String,
    },
    /// Not an integer, or an integer outside the allowed range.
    #[error("must be an integer from {min} to {max}, found {found}")]
    IntegerRange {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// The value that was there, as JSON (shortened).
        found: String,
    },
    /// A key that this object does not know (typos must not pass).
    #[error("unknown key{}", did_you_mean(.suggestion))]
    UnknownKey {
        /// A known key spelled nearly the same.
        suggestion: Option<String>,
    },
    /// A role name breaks the name rule.
    #[error("must consist of Latin letters and digits and begin with a letter, found {found}")]
    BadName {
        /// The name, as JSON.
        found: String,
    },
    /// A role name already used by an earlier entry.
    #[error("{name:?} is already the name of {other}")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// The earlier entry.
        other: String,
    },
    /// `iface` names neither an alias nor an interface of this host.
    #[error("{iface:?} is neither an alias in `interfaces` nor a network interface of this host")]
    UnknownIface {
        /// The `iface` value.
        iface: String,
    },
    /// An `interfaces` value that is not an IP address.
    #[error("must be an IP address such as \"127.0.0.1\", found {found}")]
    BadAddress {
        /// The value, as JSON.
        found: String,
    },
    /// `order` repeated inside one group.
    #[error("order {order} is already used in group {group} by {other}")]
    DuplicateOrder {
        /// The repeated order.
        order: u32,
        /// The group.
        group: u32,
        /// The earlier entry with that order.
        other: String,
    },
    /// A malformed domain name.
    #[error("{} is not a valid domain name: {error}", short(.domain))]
    BadDomain {
        /// The value as written.
        domain: String,
        /// What is wrong with it.
        error: DomainError,
    },
    /// Two instances of one group list different domains.
    #[error("all instances of group {group} must list the same include_domains, but {other} lists {other_domains}")]
    GroupDomainsDiffer {
        /// The group.
        group: u32,
        /// The first instance of the group.
        other: String,
        /// Its list, as JSON.
        other_domains: String,
    },
    /// A domain listed by two groups.
    #[error("{domain:?} is also listed by group {other_group} ({other})")]
    DomainClaimedTwice {
        /// The domain (normalized).
        domain: String,
        /// The group that listed it first.
        other_group: u32,
        /// An instance of that group.
        other: String,
    },
    /// A second group with an empty `include_domains`.
    #[error("group {group} has an empty include_domains, and so has group {other_group} ({other}); only one default group is allowed")]
    SecondDefaultGroup {
        /// This entry's group.
        group: u32,
        /// The first default group.
        other_group: u32,
        /// An instance of it.
        other: String,
    },
    /// Two enabled instances would bind the same address and port.
    #[error("{what} is also used by {other}")]
    AddressInUse {
        /// The socket in words, e.g. "SIP 127.0.0.1:5060/udp".
        what: String,
        /// The other instance.
        other: String,
    },
    /// A roletype that is "vmail" in another letter case.
    #[error("must be written \"vmail\" (lower case), found {found}")]
    RoletypeCase {
        /// The value, as JSON.
        found: String,
    },
    /// No enabled vmail role in the file.
    #[error("no enabled role with roletype \"vmail\" in `roles`")]
    NoVmailRole,
    /// A list that must not be empty is empty.
    #[error("must not be empty")]
    EmptyList,
    /// The RTP port range is upside down or too small.
    #[error("the RTP port range {min}..={max} must hold at least 2 ports (rtp_port_min <= rtp_port_max - 1)")]
    RtpRange {
        /// `rtp_port_min`.
        min: u16,
        /// `rtp_port_max`.
        max: u16,
    },
    /// `min_message_seconds` above `max_message_seconds`.
    #[error("min_message_seconds ({min}) must not exceed max_message_seconds ({max})")]
    MessageLength {
        /// `min_message_seconds`.
        min: u32,
        /// `max_message_seconds`.
        max: u32,
    },
    /// The SIP UDP port lies inside the instance's own RTP range.
    #[error("sip_port {port} lies inside the RTP port range {min}..={max} (both are UDP)")]
    SipPortInRtpRange {
        /// `sip_port`.
        port: u16,
        /// `rtp_port_min`.
        min: u16,
        /// `rtp_port_max`.
        max: u16,
    },
    /// `http_port` equals `sip_port` while SIP runs over TCP.
    #[error("http_port {port} equals sip_port while SIP runs over TCP")]
    HttpPortIsSipPort {
        /// The port.
        port: u16,
    },
    /// SIP over TLS cannot be served as configured.
    #[error("{reason}")]
    BadTls {
        /// What is wrong (file, parse, key, expiry, port).
        reason: String,
    },
    /// An unsupported SIP transport.
    #[error("must be \"udp\" or \"tcp\", found {found}")]
    BadTransport {
        /// The value, as JSON.
        found: String,
    },
    /// A language code that is not a safe prompt folder name.
    #[error("must be a language code such as \"en\", \"ru\" or \"en-US\", found {found}")]
    BadLanguage {
        /// The value, as JSON.
        found: String,
    },
    /// A codec name vmail does not have.
    #[error("must be one of \"opus\", \"G722\", \"PCMA\", \"PCMU\", \"G729\", found {found}")]
    BadCodec {
        /// The value, as JSON.
        found: String,
    },
    /// A SIP user part (access number, mailbox user) with unsafe characters.
    #[error("must be 1 to 64 characters of letters, digits and - _ . ! ~ * + (not starting with '.'), found {found}")]
    BadSipUser {
        /// The value, as JSON.
        found: String,
    },
    /// A PIN that is not 4 to 16 digits.
    #[error("must be a string of 4 to 16 digits")]
    BadPin,
    /// An API token that cannot travel in an HTTP header.
    #[error("must be a non-empty string of visible ASCII characters without spaces")]
    BadToken,
    /// A value that is not a `sip:`/`sips:` URI.
    #[error("must be a sip: or sips: URI such as \"sip:proxy.example.ru:5060\", found {found}")]
    BadSipUri {
        /// The value, as JSON.
        found: String,
    },
    /// An `mwi_notify` entry that is not a `sip:` URI over UDP.
    #[error("must be a sip: URI over UDP such as \"sip:pbx.example.com:5060\" (no sips:, no transport=tcp), found {found}")]
    BadMwiTarget {
        /// The value, as JSON.
        found: String,
    },
    /// `mwi_min_expires` above `mwi_max_expires`.
    #[error("mwi_min_expires ({min}) must not exceed mwi_max_expires ({max})")]
    MwiExpires {
        /// `mwi_min_expires`.
        min: u32,
        /// `mwi_max_expires`.
        max: u32,
    },
    /// A time zone that vmail cannot apply.
    #[error("must be \"UTC\", a fixed offset such as \"+03:00\" or an IANA zone name such as \"Europe/Moscow\" that the time zone database knows, found {found}")]
    BadTimezone {
        /// The value, as JSON.
        found: String,
    },
    /// An empty path.
    #[error("must be a non-empty path")]
    EmptyPath,
    /// A site name that is not a safe identifier.
    #[error("must be 1 to 64 characters of letters, digits, '-', '_' or '.', beginning with a letter or digit, found {found}")]
    BadSiteName {
        /// The value, as JSON.
        found: String,
    },
    /// A `sites` element naming another site's SiteShare.
    #[error("another site's SiteShare is not read directly (its writes are fenced by its own Active-Passive group and its subscribers would miss the changes): name its vmail HTTP API with `api`")]
    SiteShareNotSupported,
    /// A `sites` element naming this site itself.
    #[error("is this site itself (`site` is {site:?}); list only the other sites")]
    OwnSite {
        /// This site's name.
        site: String,
    },
    /// A peer site's URL given twice.
    #[error("{url} is given more than once (also at {other})")]
    DuplicateUrl {
        /// The URL, normalised.
        url: String,
        /// Where it appeared first.
        other: String,
    },
    /// A peer site with neither or both of `token` and `token_file`.
    #[error("must hold exactly one of `token` and `token_file` (the Bearer token the peer site accepts in its `ext.api_tokens`)")]
    TokenChoice,
    /// A CA file that does not load.
    #[error("{reason}")]
    BadCaFile {
        /// Which file and what is wrong.
        reason: String,
    },
    /// A URL that is not http:// or https://.
    #[error("must be an http:// or https:// URL, found {found}")]
    BadUrl {
        /// The value, as JSON.
        found: String,
    },
    /// An `ext.coordination` value vmail does not know.
    #[error("must be \"siteshare\" or {{\"backend\": \"etcd\", \"endpoints\": [\"http://host:2379\", ...], \"prefix\": \"/vmail\"}}, found {found}")]
    BadCoordination {
        /// The value, as JSON.
        found: String,
    },
    /// A notification setting (`ext.smtp`, `ext.webhooks`, a template)
    /// that breaks its rule.
    #[error("{reason}")]
    BadNotify {
        /// What is wrong, for the operator.
        reason: String,
    },
    /// A demo mailbox listed twice.
    #[error("mailbox {mailbox} is listed twice")]
    DuplicateMailbox {
        /// `user@domain`.
        mailbox: String,
    },
}

/// One broken rule: where, which field, what rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The entry (a role or the file).
    pub entry: Entry,
    /// The field path inside the entry (`name`, `ext.sip_port`,
    /// `include_domains[2]`, `interfaces.eth0`); `None` for errors about
    /// the whole file or the whole entry.
    pub field: Option<String>,
    /// The rule broken.
    pub rule: Rule,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => {
                write!(f, "{}: field `", self.entry)?;
                // keys come from the file: keep one error on one line
                for c in field.chars() {
                    if c.is_control() {
                        write!(f, "{}", c.escape_default())?;
                    } else {
                        write!(f, "{c}")?;
                    }
                }
                write!(f, "`: {}", self.rule)
            }
            None => write!(f, "{}: {}", self.entry, self.rule),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one file, in the order found. `Display` prints one
/// error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none (a `ConfigErrors` returned by this module
    /// never is).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why [`super::Config::select`] found no instance to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// No role of that name in the file.
    #[error("no enabled vmail role named {name:?}; enabled vmail roles: {}", list(.available))]
    NotFound {
        /// The requested name.
        name: String,
        /// The names that could be chosen.
        available: Vec<String>,
    },
    /// The named role is a vmail role with `enabled: false`.
    #[error("the vmail role {name:?} is disabled (enabled: false); enabled vmail roles: {}", list(.available))]
    Disabled {
        /// The requested name.
        name: String,
        /// The names that could be chosen.
        available: Vec<String>,
    },
    /// The named role has another roletype.
    #[error("the role {name:?} has roletype {roletype:?}, not \"vmail\"; enabled vmail roles: {}", list(.available))]
    NotVmail {
        /// The requested name.
        name: String,
        /// Its roletype.
        roletype: String,
        /// The names that could be chosen.
        available: Vec<String>,
    },
    /// No name given and the file has more than one enabled vmail role.
    #[error("the file has {} enabled vmail roles, choose one with --name: {}", .available.len(), list(.available))]
    Ambiguous {
        /// The names that could be chosen.
        available: Vec<String>,
    },
    /// The configuration has no enabled vmail role (cannot happen for a
    /// validated file, kept for completeness).
    #[error("the configuration has no enabled vmail role")]
    NoVmailRole,
}

/// A string as JSON, shortened to keep one error on one readable line.
fn short(s: &str) -> String {
    super::value::shown_str(s)
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}
