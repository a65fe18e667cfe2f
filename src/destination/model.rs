//! What [`super::select`] returns.

use std::fmt;

/// Why the call reached voicemail; picks the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The user was busy (RFC 4458 cause 486/600, Diversion `user-busy`):
    /// the busy greeting.
    Busy,
    /// No answer, not reachable, unconditional forwarding and every other
    /// stated cause: the unavailable greeting.
    Unavailable,
    /// No cause was given (or it could not be read); callers play the
    /// unavailable greeting.
    Unknown,
}

impl Cause {
    /// Map an RFC 4458 `cause=` value (a SIP status code).
    pub(crate) fn from_code(code: &str) -> Cause {
        match code.trim().parse::<u16>() {
            Ok(486 | 600) => Cause::Busy,
            Ok(300..=699) => Cause::Unavailable,
            _ => Cause::Unknown,
        }
    }
}

/// A validated mailbox address: `user` is 1..=64 characters of
/// `[A-Za-z0-9._+-]` (no `..`, no leading or trailing `.`), `domain` is a
/// lower-case DNS name without trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxAddr {
    /// The mailbox user (its case kept as received).
    pub user: String,
    /// The mailbox domain.
    pub domain: String,
}

impl fmt::Display for MailboxAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// Where the mailbox was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// RFC 4458 `target=` of the Request-URI.
    Rfc4458,
    /// History-Info (RFC 7044).
    HistoryInfo,
    /// Diversion (RFC 5806).
    Diversion,
    /// The Request-URI user.
    RequestUri,
    /// The To user.
    To,
}

/// What the call is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Leave a message in `mailbox`.
    Deposit {
        /// The mailbox.
        mailbox: MailboxAddr,
        /// Which greeting to play.
        cause: Cause,
        /// Which rule found the mailbox.
        via: Source,
    },
    /// The access number was called: log in and listen to messages.
    Retrieval {
        /// The domain called (Request-URI host, or To host when that is an
        /// IP address).
        domain: String,
        /// The caller's From user, when it is a valid mailbox user and the
        /// From host is `domain` (or an IP address, or the From is a
        /// `tel:` URI): the mailbox to ask the PIN for.
        from_user: Option<String>,
    },
}

/// Why no mailbox could be taken from a request; answer `400`/`404`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The user part is not a valid mailbox user (bad escape, characters
    /// outside `[A-Za-z0-9._+-]`, `..`, too long, …).
    #[error("invalid mailbox user (from {via:?})")]
    InvalidUser {
        /// The rule whose URI carried it.
        via: Source,
    },
    /// The host is not a valid domain name.
    #[error("invalid mailbox domain (from {via:?})")]
    InvalidDomain {
        /// The rule whose URI carried it.
        via: Source,
    },
    /// Only IP addresses: neither the URI nor the To and Request-URI hosts
    /// name a domain.
    #[error("no domain name in the request (from {via:?})")]
    NoDomainName {
        /// The rule whose URI carried the user.
        via: Source,
    },
    /// The RFC 4458 `target=` parameter is not a readable URI.
    #[error("unreadable RFC 4458 target parameter")]
    InvalidTarget,
    /// No rule found a user: no Request-URI user and no To user.
    #[error("the request names no mailbox user")]
    NoUser,
}
