//! Resolving `iface` to an address: a top-level alias first, else a
//! network interface of this host.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// How an `iface` was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolved {
    /// Through the site-wide `interfaces` map: the address means the same
    /// on every host that reads the file.
    Alias(IpAddr),
    /// Through an interface of the host reading the file.
    Host(IpAddr),
}

impl Resolved {
    pub fn addr(self) -> IpAddr {
        match self {
            Resolved::Alias(a) | Resolved::Host(a) => a,
        }
    }

    /// Whether two instances with this address must live on one host (so
    /// their sockets can clash): site-wide aliases and loopback addresses.
    pub fn is_host_independent(self) -> bool {
        match self {
            Resolved::Alias(_) => true,
            Resolved::Host(a) => a.is_loopback(),
        }
    }
}

/// Source of the host's interfaces (a fake in tests).
pub(super) trait HostInterfaces {
    /// `(interface name, address)` pairs of this host.
    fn list(&mut self) -> &[(String, IpAddr)];
}

/// The real host, read once per parse on first need.
#[derive(Default)]
pub(super) struct OsInterfaces {
    cache: Option<Vec<(String, IpAddr)>>,
}

impl HostInterfaces for OsInterfaces {
    fn list(&mut self) -> &[(String, IpAddr)] {
        self.cache
            .get_or_insert_with(|| match if_addrs::get_if_addrs() {
                Ok(list) => list
                    .into_iter()
                    .map(|i| {
                        let ip = i.ip();
                        (i.name, ip)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the network interfaces of this host");
                    Vec::new()
                }
            })
    }
}

/// Resolve `name`: alias → its address; else the interface's first IPv4
/// address, else its first IPv6 address.
pub(super) fn resolve(
    name: &str,
    aliases: &BTreeMap<String, IpAddr>,
    host: &mut dyn HostInterfaces,
) -> Option<Resolved> {
    if let Some(a) = aliases.get(name) {
        return Some(Resolved::Alias(*a));
    }
    let list = host.list();
    let mine = || list.iter().filter(|(n, _)| n == name).map(|(_, a)| *a);
    mine()
        .find(IpAddr::is_ipv4)
        .or_else(|| mine().next())
        .map(Resolved::Host)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A host with `lo` (127.0.0.1, ::1) and `eth0` (192.0.2.10, 2001:db8::10)
    /// and `v6only` (2001:db8::20).
    pub(crate) struct FakeHost(pub Vec<(String, IpAddr)>);

    impl Default for FakeHost {
        fn default() -> Self {
            let l = |n: &str, a: &str| (n.to_string(), a.parse().unwrap());
            FakeHost(vec![
                l("lo", "::1"),
                l("lo", "127.0.0.1"),
                l("eth0", "2001:db8::10"),
                l("eth0", "192.0.2.10"),
                l("v6only", "2001:db8::20"),
            ])
        }
    }

    impl HostInterfaces for FakeHost {
        fn list(&mut self) -> &[(String, IpAddr)] {
            &self.0
        }
    }

    #[test]
    fn alias_first_then_host_ipv4_then_ipv6() {
        let mut host = FakeHost::default();
        let mut aliases = BTreeMap::new();
        aliases.insert("eth0".to_string(), "10.1.1.1".parse().unwrap());
        aliases.insert("int".to_string(), "10.1.1.2".parse().unwrap());
        let r = |n: &str, host: &mut FakeHost| resolve(n, &aliases, host);
        assert_eq!(
            r("eth0", &mut host),
            Some(Resolved::Alias("10.1.1.1".parse().unwrap()))
        );
        assert_eq!(
            r("int", &mut host),
            Some(Resolved::Alias("10.1.1.2".parse().unwrap()))
        );
        assert_eq!(
            r("lo", &mut host),
            Some(Resolved::Host("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            r("v6only", &mut host),
            Some(Resolved::Host("2001:db8::20".parse().unwrap()))
        );
        assert_eq!(r("nosuch0", &mut host), None);
    }

    #[test]
    fn the_real_host_has_a_loopback() {
        let mut os = OsInterfaces::default();
        let found = resolve("lo", &BTreeMap::new(), &mut os)
            .or_else(|| resolve("lo0", &BTreeMap::new(), &mut os));
        assert!(
            found.is_some_and(|r| r.addr().is_loopback()),
            "{:?}",
            os.list()
        );
    }
}
