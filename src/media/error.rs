//! Errors of the media layer (setup-time mistakes; per-packet problems are
//! counted, see `IgnoreReason`).

/// Media layer errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Not one of `0-9 * # A-D`.
    #[error("invalid DTMF digit {0:?}")]
    InvalidDigit(char),
    /// The RTP port range holds no usable even port.
    #[error("RTP port range {min}..={max} holds no even port above 0")]
    EmptyPortRange {
        /// Lower bound given.
        min: u16,
        /// Upper bound given.
        max: u16,
    },
}
