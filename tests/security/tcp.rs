//! Attacks on the TCP path (see tests/security.rs).
