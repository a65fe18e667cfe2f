//! Building responses and reading the basic fields of requests.

use rand::distributions::Alphanumeric;
use rand::Rng;
use rsipstack::sip::headers::untyped::{
    Accept, Allow, ContentLength, Server, Supported, ToTypedHeader, Warning,
};
use rsipstack::sip::{Header, Headers, HeadersExt, Method, Request, Response, StatusCode, Version};

use super::error::SipError;

/// The methods vmail answers (the `Allow` header value).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, SUBSCRIBE, NOTIFY";
/// The bodies vmail understands (the `Accept` header value).
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// The option tags vmail supports: none of the extensions (100rel, timer,
/// replaces) is implemented, so the list is honestly empty.
pub const SUPPORTED: &str = "";
/// The event packages vmail accepts in SUBSCRIBE.
pub const ALLOW_EVENTS: &str = "message-summary";
/// The `Server` header of responses built by [`make_response`].
pub const SERVER: &str = concat!("vmail/", env!("CARGO_PKG_VERSION"));

/// The magic cookie every RFC 3261 branch starts with.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh random tag for a From or To header.
pub fn new_tag() -> String {
    random_token(16)
}

/// A fresh random Via branch (`z9hG4bK` + random).
pub fn new_branch() -> String {
    let mut b = String::with_capacity(BRANCH_COOKIE.len() + 20);
    b.push_str(BRANCH_COOKIE);
    b.push_str(&random_token(20));
    b
}

/// The status code for `code`, carrying `reason` as its phrase when it
/// differs from the standard text (rsip writes the standard phrase for the
/// named codes, so a custom phrase needs [`StatusCode::Other`]). Compare
/// status codes with `.code()`, not with `==`.
pub fn status_code(code: u16, reason: Option<&str>) -> StatusCode {
    let standard = StatusCode::from(code);
    match reason {
        Some(r) if !r.is_empty() && r != standard.text() && is_phrase_safe(r) => {
            StatusCode::Other(code, r.to_string())
        }
        _ => standard,
    }
}

/// A reason phrase must not break the status line.
fn is_phrase_safe(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Build a response to `req`: copies all Via headers, From, To (adding
/// `;tag=<to_tag>` when the request's To has no tag), Call-ID and CSeq; copies
/// Record-Route into dialog-establishing responses (101..=299 to INVITE and
/// SUBSCRIBE); adds `Server` and `Content-Length: 0`. Put a body in with
/// [`set_body`]. `reason` replaces the standard phrase.
pub fn make_response(
    req: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let copy_rr =
        (101..300).contains(&code) && matches!(req.method, Method::Invite | Method::Subscribe);
    let mut headers = Headers::default();
    let (mut from, mut to, mut call_id, mut cseq) = (false, false, false, false);
    for h in req.headers.iter() {
        match h {
            Header::Via(_) => headers.push(h.clone()),
            Header::RecordRoute(_) if copy_rr => headers.push(h.clone()),
            Header::From(_) if !from => {
                from = true;
                headers.push(h.clone());
            }
            Header::To(t) if !to => {
                to = true;
                headers.push(Header::To(with_to_tag(t, to_tag)));
            }
            Header::CallId(_) if !call_id => {
                call_id = true;
                headers.push(h.clone());
            }
            Header::CSeq(_) if !cseq => {
                cseq = true;
                headers.push(h.clone());
            }
            _ => {}
        }
    }
    headers.push(Header::Server(Server::new(SERVER)));
    headers.push(Header::ContentLength(ContentLength::new("0")));
    Response {
        status_code: status_code(code, reason),
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The To header with `tag` appended when it has none. The value is kept as
/// written; a To that does not parse is copied unchanged.
fn with_to_tag(
    to: &rsipstack::sip::headers::untyped::To,
    tag: Option<&str>,
) -> rsipstack::sip::headers::untyped::To {
    match (tag, to.tag()) {
        (Some(tag), Ok(None)) if is_token(tag) => {
            rsipstack::sip::headers::untyped::To::new(format!("{};tag={}", to.value().trim(), tag))
        }
        _ => to.clone(),
    }
}

/// Whether `s` is a non-empty SIP token (RFC 3261 §25.1).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// The caller of a request: the From URI (without parameters) and its
/// display name, as far as they parse.
pub fn caller(req: &Request) -> (Option<String>, Option<String>) {
    match req.from_header().ok().and_then(|h| h.typed().ok()) {
        Some(from) => {
            let name = from
                .display_name
                .map(|n| n.trim().trim_matches('"').to_owned())
                .filter(|n| !n.is_empty());
            (Some(from.uri.to_string()), name)
        }
        None => (None, None),
    }
}

/// Put a body into a response: replaces `Content-Type` and fixes
/// `Content-Length`.
pub fn set_body(resp: &mut Response, content_type: &str, body: Vec<u8>) {
    set_body_parts(&mut resp.headers, &mut resp.body, content_type, body);
}

/// Put a body into a request: replaces `Content-Type` and fixes
/// `Content-Length`.
pub fn set_request_body(req: &mut Request, content_type: &str, body: Vec<u8>) {
    set_body_parts(&mut req.headers, &mut req.body, content_type, body);
}

fn set_body_parts(headers: &mut Headers, slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentType(_)));
    headers.push(Header::ContentType(
        rsipstack::sip::headers::untyped::ContentType::new(content_type),
    ));
    set_content_length(headers, body.len());
    *slot = body;
}

/// Make `Content-Length` say `len` (exactly one header, at the end).
pub fn set_content_length(headers: &mut Headers, len: usize) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_)));
    headers.push(Header::ContentLength(ContentLength::new(len.to_string())));
}

/// `200 OK` to an OPTIONS request: `Allow`, `Accept`, `Allow-Events`,
/// `Supported`.
pub fn options_response(req: &Request, to_tag: Option<&str>) -> Response {
    let mut r = make_response(req, 200, None, to_tag);
    let len = r.headers.len().saturating_sub(1);
    // Keep Content-Length last for readability.
    let tail = r.headers.0.split_off(len);
    r.headers.push(Header::Allow(Allow::new(ALLOW)));
    r.headers.push(Header::Accept(Accept::new(ACCEPT)));
    r.headers
        .push(Header::Other("Allow-Events".into(), ALLOW_EVENTS.into()));
    r.headers.push(Header::Supported(Supported::new(SUPPORTED)));
    r.headers.extend(tail);
    r
}

/// How vmail treats a request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSupport {
    /// vmail handles it (INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, SUBSCRIBE, NOTIFY).
    Allowed,
    /// A method vmail knows but does not accept: answer `405` with `Allow`
    /// (REGISTER, PUBLISH, MESSAGE, REFER, UPDATE, PRACK).
    NotAllowed,
    /// A method vmail does not know: answer `501 Not Implemented`.
    NotImplemented,
}

/// Classify a method name (case-sensitive, as RFC 3261 says methods are).
pub fn method_support(method: &str) -> MethodSupport {
    match method {
        "INVITE" | "ACK" | "CANCEL" | "BYE" | "OPTIONS" | "INFO" | "SUBSCRIBE" | "NOTIFY" => {
            MethodSupport::Allowed
        }
        "REGISTER" | "PUBLISH" | "MESSAGE" | "REFER" | "UPDATE" | "PRACK" => {
            MethodSupport::NotAllowed
        }
        _ => MethodSupport::NotImplemented,
    }
}

/// Classify a parsed method.
pub fn method_support_of(method: Method) -> MethodSupport {
    match method {
        Method::Invite
        | Method::Ack
        | Method::Cancel
        | Method::Bye
        | Method::Options
        | Method::Info
        | Method::Subscribe
        | Method::Notify => MethodSupport::Allowed,
        Method::Register
        | Method::Publish
        | Method::Message
        | Method::Refer
        | Method::Update
        | Method::PRack => MethodSupport::NotAllowed,
    }
}

/// `405` (with `Allow`) for methods vmail does not accept, `None` for the
/// ones it handles. (Unknown methods never parse into a [`Request`]; the
/// endpoint answers them `501` itself.)
pub fn unsupported_method_response(req: &Request, to_tag: Option<&str>) -> Option<Response> {
    match method_support_of(req.method) {
        MethodSupport::Allowed => None,
        MethodSupport::NotAllowed | MethodSupport::NotImplemented => {
            let mut r = make_response(req, 405, None, to_tag);
            r.headers.push(Header::Allow(Allow::new(ALLOW)));
            Some(r)
        }
    }
}

/// Add `Warning: 399 <agent> "<text>"` (RFC 3261 §20.43) to a response.
pub fn add_warning(resp: &mut Response, agent: &str, text: &str) {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    resp.headers.push(Header::Warning(Warning::new(format!(
        "399 {agent} \"{clean}\""
    ))));
}

/// The fields of a request the call logic looks at first, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The request method.
    pub method: Method,
    /// The Call-ID value.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The From tag, if any.
    pub from_tag: Option<String>,
    /// The To tag, if any (a request inside a dialog has one).
    pub to_tag: Option<String>,
    /// The top Via branch, if any.
    pub branch: Option<String>,
    /// The Max-Forwards value, if present.
    pub max_forwards: Option<u32>,
}

impl RequestInfo {
    /// Parse the basic fields; an error names the header that is missing or
    /// malformed.
    pub fn of(req: &Request) -> Result<Self, SipError> {
        let call_id = req
            .call_id_header()
            .map_err(|_| SipError::MissingHeader("Call-ID"))?
            .value()
            .trim();
        if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(SipError::BadHeader("Call-ID"));
        }
        let cseq = req
            .cseq_header()
            .map_err(|_| SipError::MissingHeader("CSeq"))?
            .typed()
            .map_err(|_| SipError::BadHeader("CSeq"))?;
        if cseq.seq > i32::MAX as u32 {
            return Err(SipError::BadHeader("CSeq"));
        }
        if cseq.method != req.method {
            return Err(SipError::CSeqMethodMismatch);
        }
        let from = req
            .from_header()
            .map_err(|_| SipError::MissingHeader("From"))?
            .typed()
            .map_err(|_| SipError::BadHeader("From"))?;
        let to = req
            .to_header()
            .map_err(|_| SipError::MissingHeader("To"))?
            .typed()
            .map_err(|_| SipError::BadHeader("To"))?;
        let via = req
            .top_via_header()
            .map_err(|_| SipError::MissingHeader("Via"))?
            .typed()
            .map_err(|_| SipError::BadHeader("Via"))?;
        let max_forwards = match req.max_forwards_header() {
            Ok(mf) => Some(
                mf.value()
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| SipError::BadHeader("Max-Forwards"))?,
            ),
            Err(_) => None,
        };
        Ok(RequestInfo {
            method: req.method,
            call_id: call_id.to_string(),
            cseq: cseq.seq,
            from_tag: from.tag().map(|t| t.value().to_string()),
            to_tag: to.tag().map(|t| t.value().to_string()),
            branch: via.branch().map(|b| b.value().to_string()),
            max_forwards,
        })
    }
}

/// The To tag of a response, if it has one.
pub(crate) fn response_to_tag(resp: &Response) -> Option<String> {
    resp.to_header()
        .ok()?
        .tag()
        .ok()
        .flatten()
        .map(|t| t.value().to_string())
}
