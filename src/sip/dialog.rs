//! The UAS side of a dialog (RFC 3261 §12): what is needed to send BYE,
//! NOTIFY or INFO into it and to recognise the requests that belong to it.

use std::net::SocketAddr;

use rsipstack::sip::headers::untyped::{
    CSeq, CallId, Contact, ContentLength, From, MaxForwards, Route, To, ToTypedHeader,
};
use rsipstack::sip::typed::RecordRoute;
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{parse_uri, Header, Headers, HeadersExt, Method, Request, Uri, Version};
use serde::{Deserialize, Serialize};

use super::error::SipError;

/// A dialog in which vmail is the UAS. Plain data: it serialises with serde
/// (the snapshot handed to the passive instance) and takes no clock.
///
/// URIs are kept as the peer wrote them (rsip re-encodes user parts when it
/// prints a parsed URI, so a round trip through its types is not lossless).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    call_id: String,
    local_uri: String,
    local_tag: String,
    remote_uri: String,
    remote_tag: Option<String>,
    remote_target: String,
    route_set: Vec<String>,
    remote_cseq: u32,
    local_cseq: u32,
    local_contact: String,
}

/// The URI text of a name-addr or addr-spec header value (`<uri>;params` or
/// `uri;params`).
fn raw_uri(value: &str) -> &str {
    let v = value.trim();
    if let Some(lt) = v.find('<') {
        let rest = v.get(lt + 1..).unwrap_or_default();
        let end = rest.find('>').unwrap_or(rest.len());
        return rest.get(..end).unwrap_or_default().trim();
    }
    let end = v.find(';').unwrap_or(v.len());
    v.get(..end).unwrap_or_default().trim()
}

/// Split a header value on the commas that separate entries (not those
/// inside quotes or angle brackets).
fn split_entries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out.retain(|s| !s.is_empty());
    out
}

fn parse_checked(raw: &str, header: &'static str) -> Result<Uri, SipError> {
    if raw.is_empty() {
        return Err(SipError::BadHeader(header));
    }
    let mut uri = parse_uri(raw).map_err(|_| SipError::BadHeader(header))?;
    // rsip keeps `%XX` escapes of the user part as written but escapes
    // again when printing: decode them so the printed form is escaped once.
    if let Some(auth) = uri.auth.as_mut() {
        if auth.user.contains('%') {
            if let Some(decoded) = percent_decode(&auth.user) {
                auth.user = decoded;
            }
        }
    }
    Ok(uri)
}

/// Decode `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn socket_of(uri: &Uri) -> Option<SocketAddr> {
    SocketAddr::try_from(uri.host_with_port.clone()).ok()
}

impl Dialog {
    /// The dialog an INVITE (or SUBSCRIBE) creates when vmail answers it
    /// with `local_tag` in To and `local_contact` (a Contact header value,
    /// e.g. `<sip:vmail@192.0.2.10:5060>`) in its 2xx.
    pub fn new_uas(req: &Request, local_tag: &str, local_contact: &str) -> Result<Self, SipError> {
        let call_id = req
            .call_id_header()
            .map_err(|_| SipError::MissingHeader("Call-ID"))?
            .value()
            .trim()
            .to_string();
        let cseq = req
            .cseq_header()
            .map_err(|_| SipError::MissingHeader("CSeq"))?
            .seq()
            .map_err(|_| SipError::BadHeader("CSeq"))?;
        let from = req
            .from_header()
            .map_err(|_| SipError::MissingHeader("From"))?;
        let from_typed = from.typed().map_err(|_| SipError::BadHeader("From"))?;
        let to = req.to_header().map_err(|_| SipError::MissingHeader("To"))?;
        to.typed().map_err(|_| SipError::BadHeader("To"))?;
        let contact = req
            .contact_header()
            .map_err(|_| SipError::MissingHeader("Contact"))?;
        let remote_target = Self::target_of(contact)?;

        let mut route_set = Vec::new();
        for rr in req.record_route_headers() {
            for entry in split_entries(rr.value()) {
                RecordRoute::parse(entry).map_err(|_| SipError::BadHeader("Record-Route"))?;
                route_set.push(entry.to_string());
            }
        }
        let local_uri = raw_uri(to.value()).to_string();
        let remote_uri = raw_uri(from.value()).to_string();
        parse_checked(&local_uri, "To")?;
        parse_checked(&remote_uri, "From")?;
        Ok(Dialog {
            call_id,
            local_uri,
            local_tag: local_tag.to_string(),
            remote_uri,
            remote_tag: from_typed.tag().map(|t| t.value().to_string()),
            remote_target,
            route_set,
            remote_cseq: cseq,
            local_cseq: 0,
            local_contact: local_contact.to_string(),
        })
    }

    fn target_of(contact: &Contact) -> Result<String, SipError> {
        let first = split_entries(contact.value())
            .first()
            .map(|s| raw_uri(s).to_string())
            .ok_or(SipError::BadHeader("Contact"))?;
        parse_checked(&first, "Contact")?;
        Ok(first)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our tag (the To tag of requests the peer sends in the dialog).
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The peer's tag (the From tag of its requests).
    pub fn remote_tag(&self) -> Option<&str> {
        self.remote_tag.as_deref()
    }

    /// Where in-dialog requests are addressed (the peer's Contact URI).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set (the INVITE's Record-Route entries, in order).
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// The highest CSeq number seen from the peer.
    pub fn remote_cseq(&self) -> u32 {
        self.remote_cseq
    }

    /// The CSeq number of the last request we sent (0 before the first).
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// Moves our CSeq on by `n`: a dialog restored from a snapshot may be
    /// behind the last request it sent, and the peer refuses a CSeq it has
    /// seen (`500`).
    pub fn advance_local_cseq(&mut self, n: u32) {
        self.local_cseq = self.local_cseq.saturating_add(n).min(i32::MAX as u32);
    }

    /// Replaces our Contact (a Contact header value): a dialog restored by
    /// another instance of the group sends its requests with the new
    /// instance's address, which the peer takes as the new remote target
    /// (RFC 6665 §4.1.3: a NOTIFY refreshes the target).
    pub fn set_local_contact(&mut self, contact: &str) {
        self.local_contact = contact.to_string();
    }

    /// Whether `req` belongs to this dialog: same Call-ID, its From tag is
    /// the remote tag and its To tag is ours.
    pub fn matches(&self, req: &Request) -> bool {
        let call_id_ok = req
            .call_id_header()
            .is_ok_and(|c| c.value().trim() == self.call_id);
        if !call_id_ok {
            return false;
        }
        let to_tag = req.to_header().ok().and_then(|t| t.tag().ok().flatten());
        if to_tag.as_ref().map(|t| t.value()) != Some(self.local_tag.as_str()) {
            return false;
        }
        let from_tag = req.from_header().ok().and_then(|f| f.tag().ok().flatten());
        from_tag.as_ref().map(|t| t.value()) == self.remote_tag.as_deref()
    }

    /// Check an in-dialog request from the peer (RFC 3261 §12.2.2): it must
    /// match, and its CSeq must go up (answer `500` when it does not).
    /// Records the CSeq; a re-INVITE also refreshes the remote target.
    pub fn on_remote_request(&mut self, req: &Request) -> Result<(), SipError> {
        if !self.matches(req) {
            return Err(SipError::NotInDialog);
        }
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let seq = req
            .cseq_header()
            .map_err(|_| SipError::MissingHeader("CSeq"))?
            .seq()
            .map_err(|_| SipError::BadHeader("CSeq"))?;
        // Retransmissions are absorbed by the transaction layer: a request
        // that reaches the dialog with the last CSeq again is a new one.
        if seq <= self.remote_cseq {
            return Err(SipError::CSeqOutOfOrder {
                got: seq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = seq;
        if req.method == Method::Invite {
            self.update_from_reinvite(req);
        }
        Ok(())
    }

    /// Target refresh: take the new remote target from a re-INVITE's
    /// Contact (a Contact that does not parse leaves the target unchanged).
    pub fn update_from_reinvite(&mut self, req: &Request) {
        if let Ok(contact) = req.contact_header() {
            if let Ok(target) = Self::target_of(contact) {
                self.remote_target = target;
            }
        }
    }

    /// Where to send our requests when the runtime has no better idea (it
    /// mostly reuses the peer the INVITE came from): the first route, else
    /// the remote target, when that is an IP address.
    pub fn remote_peer_hint(&self) -> Option<SocketAddr> {
        let raw = match self.route_set.first() {
            Some(route) => raw_uri(route),
            None => self.remote_target.as_str(),
        };
        socket_of(&parse_uri(raw).ok()?)
    }

    /// A request inside the dialog (BYE, NOTIFY, INFO...): Request-URI and
    /// Route from the route set (loose or strict routing), next local CSeq,
    /// Max-Forwards 70, From/To with the tags, Call-ID, and Contact for the
    /// methods that need one. No Via: the endpoint adds it when sending.
    pub fn make_request(&mut self, method: Method) -> Result<Request, SipError> {
        let target = parse_checked(&self.remote_target, "Contact")?;
        let mut routes: Vec<String> = self.route_set.clone();
        let strict = match routes.first() {
            Some(first) => !RecordRoute::parse(first)
                .map_err(|_| SipError::BadHeader("Record-Route"))?
                .uri
                .has_lr(),
            None => false,
        };
        let uri = if strict {
            // RFC 3261 §12.2.1.1: the first route becomes the Request-URI,
            // the remote target goes last in Route.
            let first = routes.remove(0);
            routes.push(format!("<{}>", self.remote_target));
            parse_checked(raw_uri(&first), "Record-Route")?
        } else {
            target
        };

        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        let mut headers = Headers::default();
        for r in routes {
            headers.push(Header::Route(Route::new(r)));
        }
        headers.push(Header::MaxForwards(MaxForwards::new("70")));
        headers.push(Header::From(From::new(format!(
            "<{}>;tag={}",
            self.local_uri, self.local_tag
        ))));
        let to = match &self.remote_tag {
            Some(tag) => format!("<{}>;tag={}", self.remote_uri, tag),
            None => format!("<{}>", self.remote_uri),
        };
        headers.push(Header::To(To::new(to)));
        headers.push(Header::CallId(CallId::new(self.call_id.clone())));
        headers.push(Header::CSeq(CSeq::new(format!(
            "{} {}",
            self.local_cseq, method
        ))));
        if matches!(
            method,
            Method::Invite | Method::Notify | Method::Subscribe | Method::Update | Method::Refer
        ) {
            headers.push(Header::Contact(Contact::new(self.local_contact.clone())));
        }
        headers.push(Header::ContentLength(ContentLength::new("0")));
        Ok(Request {
            method,
            uri,
            version: Version::V2,
            headers,
            body: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:vm@192.0.2.10 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv\r\n\
             {extra}\
             From: \"Alice\" <sip:+15550001@example.com>;tag=from1\r\n\
             To: <sip:vm@example.com>\r\n\
             Call-ID: dlg-1@192.0.2.1\r\n\
             CSeq: 7 INVITE\r\n\
             Contact: <sip:alice@192.0.2.1:5070;transport=udp>\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).unwrap()
    }

    fn header<'a>(req: &'a Request, name: &str) -> Vec<&'a str> {
        req.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value())
            .collect()
    }

    #[test]
    fn bye_without_route_set_goes_to_the_contact() {
        let mut d = Dialog::new_uas(&invite(""), "vmtag", "<sip:vmail@192.0.2.10:5060>").unwrap();
        let bye = d.make_request(Method::Bye).unwrap();
        assert_eq!(
            bye.uri.to_string(),
            "sip:alice@192.0.2.1:5070;transport=UDP"
        );
        assert_eq!(header(&bye, "From"), vec!["<sip:vm@example.com>;tag=vmtag"]);
        assert_eq!(
            header(&bye, "To"),
            vec!["<sip:+15550001@example.com>;tag=from1"]
        );
        assert_eq!(header(&bye, "CSeq"), vec!["1 BYE"]);
        assert_eq!(header(&bye, "Call-ID"), vec!["dlg-1@192.0.2.1"]);
        assert_eq!(header(&bye, "Max-Forwards"), vec!["70"]);
        assert!(header(&bye, "Route").is_empty());
        assert!(header(&bye, "Contact").is_empty());
        let notify = d.make_request(Method::Notify).unwrap();
        assert_eq!(header(&notify, "CSeq"), vec!["2 NOTIFY"]);
        assert_eq!(
            header(&notify, "Contact"),
            vec!["<sip:vmail@192.0.2.10:5060>"]
        );
        assert_eq!(
            d.remote_peer_hint(),
            Some("192.0.2.1:5070".parse().unwrap())
        );
    }

    #[test]
    fn loose_route_set_is_kept_in_order() {
        let inv = invite(
            "Record-Route: <sip:p1.example.com;lr>, <sip:10.0.0.2:5060;lr>\r\n\
             Record-Route: <sip:10.0.0.3;lr;ftag=x>\r\n",
        );
        let mut d = Dialog::new_uas(&inv, "t", "<sip:vm@192.0.2.10>").unwrap();
        let bye = d.make_request(Method::Bye).unwrap();
        assert_eq!(
            bye.uri.to_string(),
            "sip:alice@192.0.2.1:5070;transport=UDP"
        );
        assert_eq!(
            header(&bye, "Route"),
            vec![
                "<sip:p1.example.com;lr>",
                "<sip:10.0.0.2:5060;lr>",
                "<sip:10.0.0.3;lr;ftag=x>"
            ]
        );
        // The first route is a name: no address hint.
        assert_eq!(d.remote_peer_hint(), None);
    }

    #[test]
    fn strict_route_puts_the_first_route_in_the_request_uri() {
        let inv = invite("Record-Route: <sip:10.0.0.9:5060>, <sip:10.0.0.2;lr>\r\n");
        let mut d = Dialog::new_uas(&inv, "t", "<sip:vm@192.0.2.10>").unwrap();
        let bye = d.make_request(Method::Bye).unwrap();
        assert_eq!(bye.uri.to_string(), "sip:10.0.0.9:5060");
        assert_eq!(
            header(&bye, "Route"),
            vec![
                "<sip:10.0.0.2;lr>",
                "<sip:alice@192.0.2.1:5070;transport=udp>"
            ]
        );
        assert_eq!(d.remote_peer_hint(), Some("10.0.0.9:5060".parse().unwrap()));
    }

    #[test]
    fn matching_cseq_order_and_target_refresh() {
        let mut d = Dialog::new_uas(&invite(""), "vmtag", "<sip:vm@192.0.2.10>").unwrap();
        let in_dialog = |method: &str, cseq: u32, contact: &str| {
            let raw = format!(
                "{method} sip:vm@192.0.2.10 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{cseq}\r\n\
                 From: <sip:+15550001@example.com>;tag=from1\r\n\
                 To: <sip:vm@example.com>;tag=vmtag\r\n\
                 Call-ID: dlg-1@192.0.2.1\r\n\
                 CSeq: {cseq} {method}\r\n{contact}\
                 Content-Length: 0\r\n\r\n"
            );
            Request::try_from(raw.as_str()).unwrap()
        };
        let bye = in_dialog("BYE", 8, "");
        assert!(d.matches(&bye));
        assert!(!d.matches(&invite("")), "the initial INVITE has no To tag");

        let reinvite = in_dialog("INVITE", 9, "Contact: <sip:alice@192.0.2.99:5080>\r\n");
        d.on_remote_request(&reinvite).unwrap();
        assert_eq!(d.remote_target(), "sip:alice@192.0.2.99:5080");
        assert_eq!(d.remote_cseq(), 9);
        assert_eq!(
            d.on_remote_request(&in_dialog("INFO", 3, "")),
            Err(SipError::CSeqOutOfOrder { got: 3, last: 9 })
        );
        assert_eq!(
            d.on_remote_request(&in_dialog("INFO", 9, "")),
            Err(SipError::CSeqOutOfOrder { got: 9, last: 9 }),
            "the CSeq of the last request again"
        );
        let mut forged = in_dialog("BYE", 10, "");
        forged.headers.retain(|h| !matches!(h, Header::From(_)));
        forged.headers.push(Header::From(From::new(
            "<sip:+15550001@example.com>;tag=evil",
        )));
        assert_eq!(d.on_remote_request(&forged), Err(SipError::NotInDialog));
        let mut other = in_dialog("BYE", 10, "");
        other.headers.retain(|h| !matches!(h, Header::CallId(_)));
        other
            .headers
            .push(Header::CallId(CallId::new("another-call")));
        assert_eq!(d.on_remote_request(&other), Err(SipError::NotInDialog));
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let inv = invite("Record-Route: <sip:10.0.0.2;lr>\r\n");
        let mut d = Dialog::new_uas(&inv, "t", "<sip:vm@192.0.2.10>").unwrap();
        d.make_request(Method::Bye).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        let mut back: Dialog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            back.make_request(Method::Bye).unwrap().to_bytes(),
            d.make_request(Method::Bye).unwrap().to_bytes()
        );
    }

    #[test]
    fn an_escaped_contact_user_is_escaped_once_in_the_request_uri() {
        let raw = String::from_utf8(invite("").to_bytes()).unwrap().replace(
            "Contact: <sip:alice@192.0.2.1:5070;transport=udp>",
            "Contact: <sip:%2B1555%23x@192.0.2.1>",
        );
        let inv = Request::try_from(raw.as_str()).unwrap();
        let mut d = Dialog::new_uas(&inv, "t", "<sip:vm@h>").unwrap();
        let bye = d.make_request(Method::Bye).unwrap();
        assert_eq!(bye.uri.to_string(), "sip:+1555%23x@192.0.2.1");
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn an_invite_without_contact_makes_no_dialog() {
        let mut inv = invite("");
        inv.headers.retain(|h| !matches!(h, Header::Contact(_)));
        assert_eq!(
            Dialog::new_uas(&inv, "t", "<sip:vm@h>"),
            Err(SipError::MissingHeader("Contact"))
        );
    }
}
