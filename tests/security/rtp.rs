//! Attacks on the RTP path (see tests/security.rs).
