//! SIP for vmail (SPEC §5): messages through rsipstack's `sip` module (the
//! rsip model), and vmail's own sans-IO transaction layer ([`Endpoint`]),
//! UAS dialogs ([`Dialog`]), TCP framing ([`StreamFramer`]) and the TCP
//! connection limits ([`ConnLimits`], [`ConnClock`]).
//!
//! Nothing here touches a socket or reads a clock: the runtime shell feeds
//! bytes and `now` in, and drains [`Transmit`]s, [`Event`]s and the next
//! deadline.
//!
//! Decisions a newcomer asks about:
//! - rsipstack's own transaction, dialog and transport layers are async and
//!   own sockets; vmail uses only its message model and keeps its state
//!   machines here, testable on simulated time.
//! - The endpoint answers by itself what needs no application logic:
//!   retransmissions (from the stored response; an unanswered INVITE gets
//!   `100 Trying`), CANCEL (`200`/`481`, then [`Event::Cancel`]), malformed
//!   requests (`400` with a Warning, dropped when a header a response copies
//!   is missing), `483` for Max-Forwards 0, `420` for any `Require`, `405`
//!   for known methods vmail refuses and `501` for unknown ones, `413` for
//!   oversized TCP messages (oversized UDP datagrams are dropped).
//! - A 2xx to INVITE is resent until its ACK on every transport (RFC 3261
//!   §13.3.1.4: the retransmission is end to end). The ACK is matched by
//!   Call-ID, From tag and CSeq number, and must carry the 2xx's To tag; a
//!   CANCEL must carry the INVITE's Call-ID, From tag and CSeq number
//!   besides its branch (RFC 3261 §9.1), so INVITEs sharing a Call-ID never
//!   answer for each other. After the ACK the transaction absorbs copies
//!   for 64*T1 (RFC 6026 timer L).
//! - Transactions are found through hash maps keyed by branch, sent-by and
//!   method (RFC 3261 §17.2.3); timers sit in one ordered table, so the next
//!   deadline is the table's first key.

mod conn_limits;
mod dialog;
mod endpoint;
mod error;
mod framer;
mod info_dtmf;
mod message;
mod peer;
mod refer;
mod salvage;
mod timers;
mod via;

#[cfg(test)]
mod tests;

pub use conn_limits::{ConnClock, ConnLimits, Expiry, Refusal, SourceKey};
pub use dialog::Dialog;
pub use endpoint::{Endpoint, EndpointConfig, Event, INVITE_ANSWER_LIMIT};
pub use error::SipError;
pub use framer::{Frame, StreamFramer};
pub use info_dtmf::dtmf_from_info;
pub use message::{
    add_warning, caller, make_response, method_support, method_support_of, new_branch, new_tag,
    options_response, set_body, set_content_length, set_request_body, status_code,
    unsupported_method_response, MethodSupport, RequestInfo, ACCEPT, ALLOW, ALLOW_EVENTS,
    BRANCH_COOKIE, SERVER, SUPPORTED,
};
pub use peer::{ConnId, Peer, Transmit, Transport, TxKey};
pub use refer::{
    header_value, is_refer_event, is_terminated, make_refer, on_refer_notify, on_refer_response,
    sipfrag_status, ReferProgress,
};

/// The rsip message model vmail builds on, re-exported for the call logic.
pub use rsipstack::sip::{
    headers, typed, Header, Headers, HeadersExt, Method, Request, Response, SipMessage, StatusCode,
    Uri,
};

/// True for a `sip:` or `sips:` URI with a host that the SIP stack parses
/// (at most 512 printable ASCII characters): what vmail accepts where a
/// configuration or a mailbox names a SIP destination.
pub fn is_sip_uri(s: &str) -> bool {
    if s.is_empty() || s.len() > 512 || s.bytes().any(|b| !b.is_ascii_graphic()) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
        return false;
    }
    match rsipstack::sip::Uri::try_from(s) {
        Ok(uri) => !uri.host().to_string().is_empty(),
        Err(_) => false,
    }
}
