//! Attacks on the SIP path (see tests/security.rs).
