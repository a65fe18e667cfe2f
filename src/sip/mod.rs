//! SIP for vmail (SPEC §5): messages through rsipstack's `sip` module (the
//! rsip model), and vmail's own sans-IO transaction layer ([`Endpoint`]),
//! UAS dialogs ([`Dialog`]) and TCP framing ([`StreamFramer`]).
//!
//! Nothing here touches a socket or reads a clock: the runtime shell feeds
//! bytes and `now` in, and drains [`Transmit`]s, [`Event`]s and the next
//! deadline.

mod dialog;
mod endpoint;
mod error;
mod framer;
mod message;
mod peer;
mod salvage;
mod timers;
mod via;

#[cfg(test)]
mod tests;

pub use dialog::Dialog;
pub use endpoint::{Endpoint, EndpointConfig, Event, INVITE_ANSWER_LIMIT};
pub use error::SipError;
pub use framer::{Frame, StreamFramer};
pub use message::{
    add_warning, make_response, method_support, method_support_of, new_branch, new_tag,
    options_response, set_body, set_content_length, set_request_body, status_code,
    unsupported_method_response, MethodSupport, RequestInfo, ACCEPT, ALLOW, ALLOW_EVENTS,
    BRANCH_COOKIE, SERVER, SUPPORTED,
};
pub use peer::{ConnId, Peer, Transmit, Transport, TxKey};

/// The rsip message model vmail builds on, re-exported for the call logic.
pub use rsipstack::sip::{
    headers, typed, Header, Headers, HeadersExt, Method, Request, Response, SipMessage, StatusCode,
    Uri,
};
