//! Per-call state machines: what a call does, independent of SIP and sockets.
//!
//! [`Deposit`] is the leave-a-message flow (SPEC §6).

mod deposit;

pub use deposit::{Action, Deposit, DepositLimits, DepositPrompts, Opening, RecordingOutcome};

/// A piece of audio to play: 8 kHz mono 16-bit samples, shared by all calls.
pub type Clip = crate::prompts::Prompt;
