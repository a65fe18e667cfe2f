//! Rules between entries: unique names and orders, one responsibility per
//! group, no domain in two groups, one default group, no shared sockets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::error::{Entry, Rule};
use super::ext::SipTransport;
use super::role::Draft;
use super::value::Sink;

/// Names must be unique (ignoring letter case, since they name files on
/// SiteShare) across every entry of the file that has a string `name`.
pub(super) fn unique_names(names: &[(Entry, String)], sink: &mut Sink) {
    let mut seen: HashMap<String, &Entry> = HashMap::new();
    for (entry, name) in names {
        let key = name.to_ascii_lowercase();
        match seen.get(&key) {
            Some(first) => sink.field(
                entry,
                "name",
                Rule::DuplicateName {
                    name: name.clone(),
                    other: first.to_string(),
                },
            ),
            None => {
                seen.insert(key, entry);
            }
        }
    }
}

/// The rules among enabled vmail entries.
pub(super) fn cross_checks(drafts: &[Draft], sink: &mut Sink) {
    unique_orders(drafts, sink);
    group_domains(drafts, sink);
    sockets(drafts, sink);
}

fn unique_orders(drafts: &[Draft], sink: &mut Sink) {
    let mut seen: HashMap<(u32, u32), &Entry> = HashMap::new();
    for d in drafts {
        let (Some(group), Some(order)) = (d.group, d.order) else {
            continue;
        };
        match seen.get(&(group, order)) {
            Some(first) => sink.field(
                &d.entry,
                "order",
                Rule::DuplicateOrder {
                    order,
                    group,
                    other: first.to_string(),
                },
            ),
            None => {
                seen.insert((group, order), &d.entry);
            }
        }
    }
}

/// Same domains within a group; a domain in one group only; one default
/// group.
fn group_domains(drafts: &[Draft], sink: &mut Sink) {
    // group -> (its first instance, its domains); groups in file order
    let mut groups: Vec<(u32, &Entry, &[String])> = Vec::new();
    for d in drafts {
        let (Some(group), Some(domains)) = (d.group, d.domains.as_deref()) else {
            continue;
        };
        match groups.iter().find(|(g, _, _)| *g == group) {
            Some((_, first, theirs)) => {
                if *theirs != domains {
                    sink.field(
                        &d.entry,
                        "include_domains",
                        Rule::GroupDomainsDiffer {
                            group,
                            other: first.to_string(),
                            other_domains: serde_json::to_string(theirs).unwrap_or_default(),
                        },
                    );
                }
            }
            None => groups.push((group, &d.entry, domains)),
        }
    }

    let mut owner: BTreeMap<&str, (u32, &Entry)> = BTreeMap::new();
    let mut default: Option<(u32, &Entry)> = None;
    for &(group, entry, domains) in &groups {
        if domains.is_empty() {
            match default {
                Some((other_group, other)) => sink.field(
                    entry,
                    "include_domains",
                    Rule::SecondDefaultGroup {
                        group,
                        other_group,
                        other: other.to_string(),
                    },
                ),
                None => default = Some((group, entry)),
            }
        }
        for domain in domains {
            match owner.get(domain.as_str()) {
                Some(&(other_group, other)) => sink.field(
                    entry,
                    "include_domains",
                    Rule::DomainClaimedTwice {
                        domain: domain.clone(),
                        other_group,
                        other: other.to_string(),
                    },
                ),
                None => {
                    owner.insert(domain, (group, entry));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

/// One socket (or port range) an instance binds.
struct Socket {
    what: &'static str,
    field: &'static str,
    proto: Proto,
    addr: IpAddr,
    ports: (u16, u16),
}

impl Socket {
    fn describe(&self) -> String {
        let proto = match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        let host = match self.addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        if self.ports.0 == self.ports.1 {
            format!("{} {host}:{}/{proto}", self.what, self.ports.0)
        } else {
            format!(
                "{} {host}:{}-{}/{proto}",
                self.what, self.ports.0, self.ports.1
            )
        }
    }

    fn clashes(&self, other: &Socket) -> bool {
        let same_addr = self.addr == other.addr
            || (self.addr.is_unspecified() && self.addr.is_ipv4() == other.addr.is_ipv4())
            || (other.addr.is_unspecified() && self.addr.is_ipv4() == other.addr.is_ipv4());
        self.proto == other.proto
            && same_addr
            && self.ports.0 <= other.ports.1
            && other.ports.0 <= self.ports.1
    }
}

fn sockets_of(d: &Draft) -> Vec<Socket> {
    let (Some(addr), Some(ext)) = (d.addr, d.ext.as_ref()) else {
        return Vec::new();
    };
    // Addresses from a host interface name mean "whichever host reads the
    // file": two such instances may run on different hosts, except on
    // loopback. Only addresses that are the same everywhere can clash.
    if !addr.is_host_independent() {
        return Vec::new();
    }
    let addr = addr.addr();
    let mut out = Vec::new();
    let sip = |proto| Socket {
        what: "SIP",
        field: "ext.sip_port",
        proto,
        addr,
        ports: (ext.sip_port, ext.sip_port),
    };
    if ext.has_transport(SipTransport::Udp) {
        out.push(sip(Proto::Udp));
    }
    if ext.has_transport(SipTransport::Tcp) {
        out.push(sip(Proto::Tcp));
    }
    out.push(Socket {
        what: "HTTP",
        field: "ext.http_port",
        proto: Proto::Tcp,
        addr,
        ports: (ext.http_port, ext.http_port),
    });
    out.push(Socket {
        what: "RTP",
        field: "ext.rtp_port_min",
        proto: Proto::Udp,
        addr,
        ports: (ext.rtp_port_min, ext.rtp_port_max),
    });
    out
}

/// Two enabled instances must not bind the same address and port.
fn sockets(drafts: &[Draft], sink: &mut Sink) {
    let all: Vec<(&Entry, Vec<Socket>)> =
        drafts.iter().map(|d| (&d.entry, sockets_of(d))).collect();
    for (i, (entry, mine)) in all.iter().enumerate() {
        let mut reported = BTreeSet::new();
        for s in mine {
            let earlier = all.iter().take(i);
            let clash = earlier
                .flat_map(|(e, theirs)| theirs.iter().map(move |t| (e, t)))
                .find(|(_, t)| s.clashes(t));
            if let Some((other, theirs)) = clash {
                if reported.insert(s.field) {
                    sink.field(
                        entry,
                        s.field,
                        Rule::AddressInUse {
                            what: s.describe(),
                            other: format!("{other} ({})", theirs.describe()),
                        },
                    );
                }
            }
        }
    }
}
