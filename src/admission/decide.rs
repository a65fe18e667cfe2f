//! The INVITE decision: inputs, facts, outcome.

use std::net::{IpAddr, SocketAddr};

use crate::destination::{self, Cause, Target};
use crate::sdp::{self, Codec, Negotiated};
use crate::sip::{Dialog, Header, Request};
use crate::store::{MailboxId, MailboxSettings, StoreError};

/// What the shell knows about a new INVITE when it arrives.
#[derive(Debug, Clone, Copy)]
pub struct InviteInput<'a> {
    /// The INVITE (no To tag).
    pub request: &'a Request,
    /// The address it came from.
    pub source: SocketAddr,
    /// The INVITE repeats the Call-ID, From tag and CSeq of a call in
    /// progress on another branch (RFC 3261 §8.2.2.2, a merged request).
    pub merged: bool,
    /// The instance is draining for shutdown.
    pub shutting_down: bool,
    /// Calls in progress now.
    pub active_calls: usize,
    /// `max_calls` of the instance.
    pub max_calls: u32,
    /// The media threads have been running late (see [`super::MediaLag`]):
    /// new calls wait.
    pub media_lagging: bool,
    /// `access_numbers` of the instance.
    pub access_numbers: &'a [String],
    /// `auto_create_mailboxes` of the instance.
    pub auto_create_mailboxes: bool,
    /// The To tag vmail will answer with.
    pub local_tag: &'a str,
    /// The Contact URI vmail will answer with.
    pub local_contact: &'a str,
    /// `ext.codecs` of the instance.
    pub codecs: CodecChoice<'a>,
}

/// Which codecs vmail answers with (`ext.codecs`), and whose order decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecChoice<'a> {
    /// The codecs allowed.
    pub allowed: &'a [crate::media::Codec],
    /// `allowed` is in the operator's order of preference (`ext.codecs`
    /// given); otherwise the offer's order decides.
    pub ordered: bool,
}

impl Default for CodecChoice<'_> {
    fn default() -> Self {
        CodecChoice {
            allowed: &crate::media::ALL_CODECS,
            ordered: false,
        }
    }
}

/// Who serves a domain, from the shell's routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainOwner {
    /// This instance's group.
    Us,
    /// Another group, whose instances take SIP here (by order).
    Group(Vec<SocketAddr>),
    /// Nobody (or a group with no known instance).
    Nobody,
    /// This instance's group, but this instance is passive and the
    /// active one is not known: `503`, retry after the seconds given.
    NotActive {
        /// Seconds until the group likely has an active instance.
        retry_after: u64,
    },
}

/// The facts the decision needs that live outside the request: routing
/// and the mailbox store. The shell implements it; tests fake it.
pub trait InviteFacts {
    /// Who serves `domain`.
    fn owner(&self, domain: &str) -> DomainOwner;
    /// The settings of a mailbox, `None` when it does not exist.
    fn mailbox(&self, id: &MailboxId) -> Result<Option<MailboxSettings>, StoreError>;
    /// Whether an access-number call from `source` is within its rate
    /// limit ([`super::SourceLimiter`]); `Err` holds the seconds until the
    /// next call from there is allowed. Counts the call when allowed.
    fn access_call(&self, source: std::net::IpAddr) -> Result<(), u64>;
}

/// Why an INVITE is refused; each maps to one status and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A merged request (RFC 3261 §8.2.2.2): `482`.
    Merged,
    /// The instance is shutting down: `503`, retry in 30 s.
    ShuttingDown,
    /// `max_calls` reached: `503`, retry in 5 s.
    Overloaded,
    /// The media threads run late (`ext.media_lag_limit_ms`): `503`,
    /// retry in 5 s.
    MediaLag,
    /// No valid mailbox or domain in the request: `404`.
    InvalidMailbox(String),
    /// The domain is served by no group: `404` with a Reason.
    DomainNotServed(String),
    /// The mailbox does not exist (and is not created): `404`.
    NoSuchMailbox(MailboxId),
    /// The store cannot be read: `503`, retry in 30 s.
    StoreUnavailable(String),
    /// The request cannot form a dialog (no usable Contact...): `400`.
    BadRequest(String),
    /// No usable SDP offer: `488`.
    NotAcceptable(String),
    /// This instance is passive and its group's active instance is not
    /// known: `503`, retry after the seconds given.
    NotActive {
        /// Seconds until the group likely has an active instance.
        retry_after: u64,
    },
    /// Too many access-number calls from the source address: `503`,
    /// retry after the seconds given.
    RateLimited {
        /// The source address.
        source: std::net::IpAddr,
        /// Seconds until its next call is allowed.
        retry_after: u64,
    },
}

impl Refusal {
    /// The status code.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::ShuttingDown
            | Refusal::Overloaded
            | Refusal::MediaLag
            | Refusal::StoreUnavailable(_)
            | Refusal::NotActive { .. }
            | Refusal::RateLimited { .. } => 503,
            Refusal::InvalidMailbox(_)
            | Refusal::DomainNotServed(_)
            | Refusal::NoSuchMailbox(_) => 404,
            Refusal::BadRequest(_) => 400,
            Refusal::Merged => 482,
            Refusal::NotAcceptable(_) => 488,
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Merged => "Loop Detected",
            Refusal::ShuttingDown => "Shutting down",
            Refusal::Overloaded => "Overloaded",
            Refusal::MediaLag => "Overloaded",
            Refusal::InvalidMailbox(_) => "Invalid mailbox",
            Refusal::DomainNotServed(_) => "Domain not served",
            Refusal::NoSuchMailbox(_) => "No such mailbox",
            Refusal::StoreUnavailable(_) => "Store unavailable",
            Refusal::BadRequest(_) => "Bad Request",
            Refusal::NotAcceptable(_) => "Not Acceptable Here",
            Refusal::RateLimited { .. } => "Rate limited",
            Refusal::NotActive { .. } => "Passive",
        }
    }

    /// Headers the response carries besides the usual ones.
    pub fn headers(&self) -> Vec<Header> {
        match self {
            Refusal::ShuttingDown | Refusal::StoreUnavailable(_) => {
                vec![Header::RetryAfter("30".into())]
            }
            Refusal::Overloaded | Refusal::MediaLag => vec![Header::RetryAfter("5".into())],
            Refusal::RateLimited { retry_after, .. } | Refusal::NotActive { retry_after } => {
                vec![Header::RetryAfter(retry_after.to_string().into())]
            }
            Refusal::DomainNotServed(_) => vec![Header::Reason(
                "SIP;cause=404;text=\"domain not served\"".into(),
            )],
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Merged => f.write_str("merged with a call in progress"),
            Refusal::ShuttingDown => f.write_str("shutting down"),
            Refusal::Overloaded => f.write_str("max_calls reached"),
            Refusal::MediaLag => f.write_str("media threads running late"),
            Refusal::InvalidMailbox(why) => write!(f, "invalid mailbox: {why}"),
            Refusal::DomainNotServed(d) => write!(f, "domain {d} not served"),
            Refusal::NoSuchMailbox(id) => write!(f, "no mailbox {id}"),
            Refusal::StoreUnavailable(why) => write!(f, "store unavailable: {why}"),
            Refusal::BadRequest(why) => write!(f, "cannot form a dialog: {why}"),
            Refusal::NotAcceptable(why) => write!(f, "no usable SDP offer: {why}"),
            Refusal::NotActive { retry_after } => write!(
                f,
                "this instance is passive and its group has no known active instance (retry in {retry_after} s)"
            ),
            Refusal::RateLimited {
                source,
                retry_after,
            } => write!(
                f,
                "access-number calls from {source} over the rate limit (retry in {retry_after} s)"
            ),
        }
    }
}

/// What a call is, once accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum CallKind {
    /// Leave a message.
    Deposit {
        /// The mailbox.
        mailbox: MailboxId,
        /// Its settings (the defaults for a mailbox still to be created).
        settings: MailboxSettings,
        /// Why the call was diverted.
        cause: Cause,
        /// The mailbox does not exist yet: it is created when its first
        /// message is stored (`auto_create_mailboxes`), never before.
        create: bool,
    },
    /// The mailbox menu of `domain`.
    Menu {
        /// The domain called.
        domain: String,
        /// The caller's own mailbox user, when it exists: only the PIN is
        /// asked.
        known: Option<String>,
    },
}

/// An accepted INVITE: everything the call needs.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Deposit or menu.
    pub kind: CallKind,
    /// The media both sides use (the SDP answer is made from it once the
    /// RTP port is bound).
    pub negotiated: Negotiated,
    /// The dialog the 2xx creates.
    pub dialog: Dialog,
}

/// What to do with a new INVITE.
#[derive(Debug, Clone)]
pub enum InviteDecision {
    /// Answer with the refusal's status.
    Refuse(Refusal),
    /// `302` to the instances of the group that owns `domain`.
    Redirect {
        /// Contact header values, best first.
        contacts: Vec<String>,
        /// The domain that is not ours.
        domain: String,
    },
    /// Take the call.
    Accept(Box<Accepted>),
}

/// Decides what to do with a new INVITE (one without a To tag).
pub fn decide(input: &InviteInput<'_>, facts: &dyn InviteFacts) -> InviteDecision {
    use InviteDecision::{Accept, Refuse};
    if input.merged {
        return Refuse(Refusal::Merged);
    }
    if input.shutting_down {
        return Refuse(Refusal::ShuttingDown);
    }
    if input.active_calls >= input.max_calls as usize {
        return Refuse(Refusal::Overloaded);
    }
    if input.media_lagging {
        return Refuse(Refusal::MediaLag);
    }
    let req = input.request;
    // Which mailbox, and is it ours (SPEC §3, §5)?
    let target = match destination::select(req, input.access_numbers) {
        Ok(t) => t,
        Err(e) => return Refuse(Refusal::InvalidMailbox(e.to_string())),
    };
    let kind = match target {
        Target::Deposit { mailbox, cause, .. } => {
            if let Some(other) = not_ours(facts, &mailbox.user, &mailbox.domain) {
                return other;
            }
            let Ok(id) = MailboxId::new(&mailbox.user, &mailbox.domain) else {
                return Refuse(Refusal::InvalidMailbox(mailbox.to_string()));
            };
            match facts.mailbox(&id) {
                Ok(Some(settings)) => CallKind::Deposit {
                    mailbox: id,
                    settings,
                    cause,
                    create: false,
                },
                Ok(None) if input.auto_create_mailboxes => CallKind::Deposit {
                    mailbox: id,
                    settings: MailboxSettings::default(),
                    cause,
                    create: true,
                },
                Ok(None) => return Refuse(Refusal::NoSuchMailbox(id)),
                Err(e) => return Refuse(Refusal::StoreUnavailable(format!("{id}: {e}"))),
            }
        }
        Target::Retrieval { domain, from_user } => {
            let access = req.uri.user().unwrap_or("voicemail");
            if let Some(other) = not_ours(facts, access, &domain) {
                return other;
            }
            if let Err(retry_after) = facts.access_call(input.source.ip()) {
                return InviteDecision::Refuse(Refusal::RateLimited {
                    source: input.source.ip(),
                    retry_after,
                });
            }
            // A caller who is a mailbox of the domain only gives the PIN.
            let known = from_user.filter(|u| {
                MailboxId::new(u, &domain)
                    .ok()
                    .and_then(|id| facts.mailbox(&id).ok().flatten())
                    .is_some()
            });
            CallKind::Menu { domain, known }
        }
    };
    let dialog = match Dialog::new_uas(req, input.local_tag, input.local_contact) {
        Ok(d) => d,
        Err(e) => return Refuse(Refusal::BadRequest(e.to_string())),
    };
    let negotiated = match negotiate(req.body(), None, input.codecs) {
        Ok(n) => n,
        Err(e) => return Refuse(Refusal::NotAcceptable(e)),
    };
    Accept(Box::new(Accepted {
        kind,
        negotiated,
        dialog,
    }))
}

/// `None` when this group serves `domain`, else the redirect (to the
/// owner group, for `user`) or refusal: the answer of an INVITE, and of a
/// SUBSCRIBE, for a domain that is not ours.
pub fn not_ours(facts: &dyn InviteFacts, user: &str, domain: &str) -> Option<InviteDecision> {
    match facts.owner(domain) {
        DomainOwner::Us => None,
        DomainOwner::Group(instances) if !instances.is_empty() => Some(InviteDecision::Redirect {
            contacts: redirect_contacts(user, &instances),
            domain: domain.to_owned(),
        }),
        DomainOwner::NotActive { retry_after } => {
            Some(InviteDecision::Refuse(Refusal::NotActive { retry_after }))
        }
        DomainOwner::Group(_) | DomainOwner::Nobody => Some(InviteDecision::Refuse(
            Refusal::DomainNotServed(domain.to_owned()),
        )),
    }
}

/// Contacts of a `302`: the instances given (the active one first when
/// it is known, then every instance of the group by order), with falling
/// q-values.
pub fn redirect_contacts(user: &str, instances: &[SocketAddr]) -> Vec<String> {
    let n = instances.len().max(1);
    instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let q = 1.0 - (i as f64) / (n as f64 * 1.25);
            let host = match inst.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            format!("<sip:{user}@{host}:{}>;q={q:.1}", inst.port())
        })
        .collect()
}

/// Parses an SDP offer and picks the codec: the offerer's order among the
/// codecs `choice` allows (RFC 3264 lets the answerer choose; following the
/// caller's preference is what phones expect), or the order of `choice`
/// when the operator set one; keeping `current` on a re-INVITE when it is
/// still offered. A re-INVITE moves only to a codec of the same audio rate
/// (the recording's rate is fixed for the call).
pub fn negotiate(
    body: &[u8],
    current: Option<Codec>,
    choice: CodecChoice<'_>,
) -> Result<Negotiated, String> {
    let offer = sdp::parse(body).map_err(|e| e.to_string())?;
    let mut prefer: Vec<Codec> = current.into_iter().collect();
    let allowed = |c: Codec| {
        choice.allowed.contains(&c.media())
            && current.is_none_or(|cur| cur.sample_rate() == c.sample_rate())
    };
    if choice.ordered {
        prefer.extend(
            choice
                .allowed
                .iter()
                .map(|&c| Codec::from_media(c))
                .filter(|&c| allowed(c) && Some(c) != current),
        );
    } else if let Some(audio) = &offer.audio {
        for f in &audio.formats {
            if let Some(c) = f.codec.filter(|&c| allowed(c)) {
                if !prefer.contains(&c) {
                    prefer.push(c);
                }
            }
        }
    }
    match current {
        // An initial offer must name an address (hold is for re-INVITEs).
        None => sdp::negotiate_initial(&offer, &prefer),
        Some(_) => sdp::negotiate(&offer, &prefer),
    }
    .map_err(|e| e.to_string())
}
