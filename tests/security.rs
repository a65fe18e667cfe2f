//! An attacker's tests: every probe of the security review, run against the
//! real `vmail` binary on 127.0.0.1 (docs/security.md states the threat
//! model). One file per path an attacker can reach:
//!
//! - `security/sip.rs`: in-dialog spoofing, Call-ID reuse, auto-created
//!   mailboxes;
//! - `security/rtp.rs`: media hijack, injection, floods, reflection;
//! - `security/login.rs`: PIN lockout races, hashing exhaustion, rate limits;
//! - `security/tcp.rs`: connection exhaustion, slow and oversize messages.

mod common;

#[path = "security/login.rs"]
mod login;
#[path = "security/rtp.rs"]
mod rtp;
#[path = "security/sip.rs"]
mod sip;
#[path = "security/tcp.rs"]
mod tcp;
