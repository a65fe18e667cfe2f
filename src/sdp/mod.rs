//! SDP offer/answer for vmail's single audio stream (RFC 8866 syntax,
//! RFC 3264 offer/answer, RFC 3551 static payload types, RFC 4733 DTMF).
//!
//! Flow: [`parse`] the peer's offer, [`negotiate`] one audio stream and one
//! codec against our preference list, then build our [`answer`] from the
//! [`Negotiated`] result. All three are pure functions; nothing here does I/O.
//!
//! # Why a hand-written parser
//! vmail needs a small subset of SDP (`v o c m a=rtpmap/fmtp/ptime/direction/crypto`)
//! and must accept what real SIP equipment sends. The Rust SDP crates were
//! judged and not taken:
//! - `sdp` (webrtc-rs, a port of pion/sdp) enforces the RFC's line order with
//!   a state machine and rejects offers seen in the field, e.g. a session
//!   `c=` after `t=` (pion/sdp issue #163, answered "should keep order");
//! - `webrtc-sdp` (Mozilla) is built for WebRTC's rules and its error model;
//! - `sdp-rs` has had no release since 2021.
//!
//! The parser here is strict about what vmail uses (a malformed `m=`, `c=`
//! or `rtpmap` of the audio stream is an error) and tolerant about the rest:
//! any line order, LF or CRLF, unknown line types and attributes ignored,
//! non-UTF-8 text in `s=`/`i=` lines accepted. Bad input is an
//! [`SdpError`], never a panic (property-tested).

mod answer;
mod crypto;
mod model;
mod negotiate;
mod parse;

pub use answer::{answer, AnswerParams};
pub use crypto::{
    choose as choose_crypto, format_crypto, parse_crypto, CryptoAttr, SdesChoice, SrtpKey,
    SrtpSuite, SRTP_KEY_LEN,
};
pub use model::{AudioOffer, Codec, Direction, Format, MediaLine, Offer, Origin};
pub use negotiate::{negotiate, negotiate_initial, CodecParams, NegotiateError, Negotiated};
pub use parse::{parse, SdpError, MAX_SDP_LEN};

#[cfg(test)]
mod crypto_tests;
#[cfg(test)]
mod tests;
