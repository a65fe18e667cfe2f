//! Attacks on the LOGIN path (see tests/security.rs).
