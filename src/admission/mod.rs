//! Whether and how vmail takes a new INVITE (SPEC §3, §5): a pure decision
//! over the request and the facts the shell looks up, returning what to do
//! — refuse with a status, redirect to the owner group, or accept with all
//! that the call needs (destination, mailbox settings, negotiated media,
//! the dialog). The runtime shell carries it out: it answers, binds the
//! RTP port and starts the call's driver.
//!
//! The checks run in a fixed order, the cheapest and the ones that protect
//! the process first: a merged request, shutting down, overload, media lag, destination, owner group,
//! mailbox, dialog, SDP offer. A new admission check is one more step in
//! [`decide`] and, when it refuses, one more [`Refusal`].
//!
//! New calls also wait while the media threads run late ([`MediaLag`]:
//! the shell measures, the gate decides, [`Refusal::MediaLag`]).
//!
//! Access-number calls are also limited per source address
//! ([`SourceLimiter`], a token bucket on injected time); the shell asks it
//! through [`InviteFacts::access_call`].

mod decide;
mod lag;
mod source_limit;

#[cfg(test)]
mod tests;

pub use decide::{
    decide, negotiate, not_ours, redirect_contacts, Accepted, CallKind, CodecChoice, DomainOwner,
    InviteDecision, InviteFacts, InviteInput, Refusal,
};
pub use lag::{LagChange, LagGate, LagMeter, MediaLag, LAG_WINDOW};
pub use source_limit::{RateLimit, SourceLimiter, Verdict, MAX_SOURCES};
