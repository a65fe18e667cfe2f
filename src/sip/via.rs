//! The top Via of a received request: RFC 3581 `received`/`rport`, where
//! the responses go, and the transaction key.

use std::net::SocketAddr;

use rsipstack::sip::headers::untyped::{ToTypedHeader, Via};
use rsipstack::sip::param::Received;
use rsipstack::sip::{Host, Param};

use super::peer::{Peer, Transport};

/// What the top Via of a received request says, after stamping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViaFacts {
    /// The branch parameter, if any.
    pub branch: Option<String>,
    /// `host[:port]` of sent-by, lower-cased.
    pub sent_by: String,
    /// Where responses to this request go.
    pub reply_to: Peer,
}

/// Stamp the top Via of a received request per RFC 3581: add
/// `received=<source ip>` when sent-by is a name or another address, fill an
/// empty `rport` with the source port. Returns `None` when the top Via does
/// not parse (then nothing can be answered).
pub(crate) fn stamp_top_via(via: &mut Via, from: &Peer) -> Option<ViaFacts> {
    let mut facts = None;
    let result = via.update_first_value(|first| {
        let mut v = first.typed()?;
        let src = from.addr;
        let sent_by = v.uri.host_with_port.clone();
        let differs = match &sent_by.host {
            Host::IpAddr(ip) => *ip != src.ip(),
            Host::Domain(_) => true,
        };
        let mut has_rport = false;
        let mut has_received = false;
        for p in v.params.iter_mut() {
            match p {
                Param::Rport(port) => {
                    has_rport = true;
                    *port = Some(src.port());
                }
                Param::Received(r) if differs => {
                    has_received = true;
                    *r = Received::new(src.ip().to_string());
                }
                _ => {}
            }
        }
        if differs && !has_received {
            v.params
                .push(Param::Received(Received::new(src.ip().to_string())));
        }
        let reply_to = match from.transport {
            Transport::Tcp | Transport::Tls => *from,
            Transport::Udp => {
                let port = if has_rport {
                    src.port()
                } else {
                    sent_by.port.map(|p| p.value()).unwrap_or(5060)
                };
                Peer::udp(SocketAddr::new(src.ip(), port))
            }
        };
        facts = Some(ViaFacts {
            branch: v.branch().map(|b| b.value().to_string()),
            sent_by: sent_by.to_string().to_ascii_lowercase(),
            reply_to,
        });
        Ok(Via::new(v.to_string()))
    });
    result.ok()?;
    facts
}

/// The key of a server transaction (RFC 3261 §17.2.3): branch, sent-by and
/// method, with ACK counted as INVITE.
pub(crate) fn server_key(branch: &str, sent_by: &str, method: &str) -> String {
    let method = if method == "ACK" { "INVITE" } else { method };
    let mut k = String::with_capacity(branch.len() + sent_by.len() + method.len() + 2);
    k.push_str(branch);
    k.push('\u{1f}');
    k.push_str(sent_by);
    k.push('\u{1f}');
    k.push_str(method);
    k
}

/// The key of a client transaction (RFC 3261 §17.1.3): branch and CSeq method.
pub(crate) fn client_key(branch: &str, method: &str) -> String {
    let mut k = String::with_capacity(branch.len() + method.len() + 1);
    k.push_str(branch);
    k.push('\u{1f}');
    k.push_str(method);
    k
}

/// The key matching an ACK (or a CANCEL) to the INVITE it belongs to:
/// Call-ID, From tag and CSeq number. The From tag keeps two INVITEs that
/// share a Call-ID (a forked or a forged one) from answering for each other.
pub(crate) fn ack_key(call_id: &str, from_tag: Option<&str>, cseq: u32) -> String {
    format!(
        "{call_id}\u{1f}{}\u{1f}{cseq}",
        from_tag.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    #[test]
    fn rport_is_filled_and_received_added_when_sent_by_differs() {
        let mut via = Via::new("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport");
        let f = stamp_top_via(&mut via, &peer("192.0.2.7:40000")).unwrap();
        assert_eq!(f.reply_to, peer("192.0.2.7:40000"));
        assert_eq!(f.branch.as_deref(), Some("z9hG4bKa"));
        assert_eq!(f.sent_by, "10.0.0.1:5062");
        assert_eq!(
            via.value(),
            "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport=40000;received=192.0.2.7"
        );
    }

    #[test]
    fn no_received_when_sent_by_is_the_source_and_sent_by_port_without_rport() {
        let mut via = Via::new("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKb");
        let f = stamp_top_via(&mut via, &peer("192.0.2.7:40000")).unwrap();
        assert_eq!(via.value(), "SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKb");
        assert_eq!(f.reply_to, peer("192.0.2.7:5070"));
    }

    #[test]
    fn a_name_in_sent_by_gets_received_and_the_default_port() {
        let mut via = Via::new("SIP/2.0/UDP pbx.example.com;branch=z9hG4bKc");
        let f = stamp_top_via(&mut via, &peer("192.0.2.9:6000")).unwrap();
        assert!(via.value().ends_with(";received=192.0.2.9"));
        assert_eq!(f.reply_to, peer("192.0.2.9:5060"));
        assert_eq!(f.sent_by, "pbx.example.com");
    }

    #[test]
    fn only_the_top_via_of_a_comma_list_is_stamped() {
        let mut via = Via::new(
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKd;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKe;rport",
        );
        stamp_top_via(&mut via, &peer("192.0.2.1:1111")).unwrap();
        assert_eq!(
            via.value(),
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKd;rport=1111;received=192.0.2.1, \
             SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKe;rport"
        );
    }

    #[test]
    fn tcp_replies_on_the_connection() {
        let p = Peer::tcp("192.0.2.1:33000".parse().unwrap(), super::super::ConnId(7));
        let mut via = Via::new("SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKf");
        let f = stamp_top_via(&mut via, &p).unwrap();
        assert_eq!(f.reply_to, p);
    }

    #[test]
    fn a_broken_via_gives_nothing() {
        let mut via = Via::new("garbage");
        assert!(stamp_top_via(&mut via, &peer("192.0.2.1:1")).is_none());
    }
}
