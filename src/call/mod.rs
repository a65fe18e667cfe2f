//! Per-call state machines: what a call does, independent of SIP and sockets.
//!
//! [`Deposit`] is the leave-a-message flow (SPEC §6).

mod deposit;

pub use deposit::{
    review_keys, Action, Deposit, DepositLimits, DepositPrompts, Opening, RecordingOutcome,
    LOGIN_KEY, OPERATOR_KEY, REVIEW_PLAYS, REVIEW_WAIT, TRANSFER_WAIT,
};

/// Prompts of the deposit flow's review menu and operator transfer. Not
/// required at start (both features are off by default); a missing one is
/// left out with a warning.
pub const EXTRA_PROMPTS: &[&str] = &[
    "review-message",
    "marked-urgent",
    "urgent-removed",
    "invalid-option",
    "transferring",
    "transfer-failed",
];

/// A piece of audio to play: 8 kHz mono 16-bit samples, shared by all calls.
pub type Clip = crate::prompts::Prompt;
