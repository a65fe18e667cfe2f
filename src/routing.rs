//! Domain-tree partitioning (SPEC §3): which group owns a domain.
//!
//! A group that lists `d` serves the whole subtree under `d`, except the
//! branches that another group lists. The owner of a domain is the group that
//! lists its longest label-wise suffix; else the default group (the one with
//! an empty `include_domains`); else nobody.
//!
//! The table is a hash map from listed domain to group. A lookup walks the
//! label boundaries of the queried domain from the longest suffix to the
//! shortest and probes the map once per suffix, so its cost grows with the
//! number of labels of the domain, never with the number of groups.

use std::collections::HashMap;

/// Who serves a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A group lists the domain or one of its parents.
    Listed { group: u32 },
    /// No group lists it; the default group serves it.
    Default { group: u32 },
}

impl Owner {
    /// The owning group number.
    pub fn group(&self) -> u32 {
        match *self {
            Owner::Listed { group } | Owner::Default { group } => group,
        }
    }
}

/// Domain → group lookup table, built once per configuration.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    listed: HashMap<String, u32>,
    default_group: Option<u32>,
}

/// A domain claimed by two groups while building a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// The same domain is listed by two groups.
    #[error("domain `{domain}` is listed by groups {first} and {second}")]
    DomainInTwoGroups {
        domain: String,
        first: u32,
        second: u32,
    },
    /// Two groups have an empty `include_domains`.
    #[error("groups {first} and {second} both have an empty include_domains (only one default group is allowed)")]
    TwoDefaultGroups { first: u32, second: u32 },
}

impl RoutingTable {
    /// Builds the table from `(group, include_domains)` pairs. Domains are
    /// expected to be normalized already (lower case, no trailing dot); a
    /// group with an empty list is the default group.
    pub fn new<I, D>(groups: I) -> Result<Self, RoutingError>
    where
        I: IntoIterator<Item = (u32, D)>,
        D: IntoIterator,
        D::Item: AsRef<str>,
    {
        let mut table = RoutingTable::default();
        for (group, domains) in groups {
            let mut any = false;
            for d in domains {
                any = true;
                let d = normalize(d.as_ref()).to_owned();
                match table.listed.get(&d) {
                    Some(&other) if other != group => {
                        return Err(RoutingError::DomainInTwoGroups {
                            domain: d,
                            first: other,
                            second: group,
                        })
                    }
                    _ => {
                        table.listed.insert(d, group);
                    }
                }
            }
            if !any {
                match table.default_group {
                    Some(first) if first != group => {
                        return Err(RoutingError::TwoDefaultGroups {
                            first,
                            second: group,
                        })
                    }
                    _ => table.default_group = Some(group),
                }
            }
        }
        Ok(table)
    }

    /// The owner of `domain` (case-insensitive, one trailing dot ignored),
    /// or `None` when no group serves it.
    pub fn owner(&self, domain: &str) -> Option<Owner> {
        let d = normalize(domain);
        if d.is_empty() {
            return self.default_group.map(|group| Owner::Default { group });
        }
        // Fast path: already lower case (the usual case) avoids allocation.
        if d.bytes().any(|b| b.is_ascii_uppercase()) {
            let lower = d.to_ascii_lowercase();
            self.owner_lower(&lower)
        } else {
            self.owner_lower(d)
        }
    }

    fn owner_lower(&self, d: &str) -> Option<Owner> {
        let mut suffix = d;
        loop {
            if let Some(&group) = self.listed.get(suffix) {
                return Some(Owner::Listed { group });
            }
            match suffix.find('.') {
                Some(i) => suffix = &suffix[i + 1..],
                None => break,
            }
        }
        self.default_group.map(|group| Owner::Default { group })
    }

    /// The default group, if one is configured.
    pub fn default_group(&self) -> Option<u32> {
        self.default_group
    }

    /// Number of listed domains.
    pub fn len(&self) -> usize {
        self.listed.len()
    }

    /// True when no domain is listed.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
}

fn normalize(domain: &str) -> &str {
    domain.strip_suffix('.').unwrap_or(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(groups: &[(u32, &[&str])]) -> RoutingTable {
        RoutingTable::new(groups.iter().map(|(g, d)| (*g, d.iter().copied()))).unwrap()
    }

    #[test]
    fn nested_claims() {
        let t = table(&[(1, &["test.ru"]), (2, &["a.test.ru"])]);
        assert_eq!(t.owner("x.a.test.ru").map(|o| o.group()), Some(2));
        assert_eq!(t.owner("a.test.ru").map(|o| o.group()), Some(2));
        assert_eq!(t.owner("b.test.ru").map(|o| o.group()), Some(1));
        assert_eq!(t.owner("test.ru").map(|o| o.group()), Some(1));
        assert_eq!(t.owner("ru"), None);
    }

    #[test]
    fn case_and_trailing_dot() {
        let t = table(&[(1, &["test.ru"])]);
        assert_eq!(t.owner("X.TEST.RU.").map(|o| o.group()), Some(1));
        assert_eq!(t.owner("Test.Ru").map(|o| o.group()), Some(1));
    }

    #[test]
    fn label_boundaries() {
        let t = table(&[(1, &["test.ru"])]);
        assert_eq!(t.owner("xtest.ru"), None);
        assert_eq!(t.owner("st.ru"), None);
        assert_eq!(t.owner("a.xtest.ru"), None);
        let t = table(&[(1, &["st.ru"])]);
        assert_eq!(t.owner("a.b.test.ru"), None);
    }

    #[test]
    fn default_group_and_no_owner() {
        let t = table(&[(1, &["test.ru"]), (9, &[])]);
        assert_eq!(t.owner("other.com"), Some(Owner::Default { group: 9 }));
        assert_eq!(t.owner("a.test.ru"), Some(Owner::Listed { group: 1 }));
        let t = table(&[(1, &["test.ru"])]);
        assert_eq!(t.owner("other.com"), None);
    }

    #[test]
    fn conflicts_are_errors() {
        let r = RoutingTable::new([(1, vec!["a.ru"]), (2, vec!["a.ru"])]);
        assert!(matches!(r, Err(RoutingError::DomainInTwoGroups { .. })));
        let r = RoutingTable::new([(1, Vec::<&str>::new()), (2, Vec::new())]);
        assert!(matches!(r, Err(RoutingError::TwoDefaultGroups { .. })));
        // The same group listed twice (two instances) is fine.
        let r = RoutingTable::new([(1, vec!["a.ru"]), (1, vec!["a.ru"])]);
        assert!(r.is_ok());
    }

    /// The naive reference: scan every listed domain, keep the longest one
    /// that equals the domain or is a label-wise suffix of it.
    fn reference(groups: &[(u32, Vec<String>)], default: Option<u32>, d: &str) -> Option<u32> {
        let mut best: Option<(usize, u32)> = None;
        for (g, ds) in groups {
            for listed in ds {
                let matches = d == listed || d.ends_with(&format!(".{listed}"));
                if matches && best.is_none_or(|(len, _)| listed.len() > len) {
                    best = Some((listed.len(), *g));
                }
            }
        }
        best.map(|(_, g)| g).or(default)
    }

    fn label() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "ab", "ru", "test", "x-y", "1"])
            .prop_map(str::to_owned)
    }

    fn domain() -> impl Strategy<Value = String> {
        prop::collection::vec(label(), 1..5).prop_map(|ls| ls.join("."))
    }

    proptest! {
        #[test]
        fn matches_naive_reference(
            claims in prop::collection::vec(domain(), 0..12),
            with_default in any::<bool>(),
            queries in prop::collection::vec(domain(), 1..20),
        ) {
            // Give each distinct claimed domain to one of 4 groups.
            let mut groups: Vec<(u32, Vec<String>)> = (1..=4).map(|g| (g, Vec::new())).collect();
            let mut seen = std::collections::HashSet::new();
            for (i, c) in claims.into_iter().enumerate() {
                if seen.insert(c.clone()) {
                    groups[i % 4].1.push(c);
                }
            }
            groups.retain(|(_, ds)| !ds.is_empty());
            let default = with_default.then_some(99);
            let mut input = groups.clone();
            if let Some(g) = default {
                input.push((g, Vec::new()));
            }
            let t = RoutingTable::new(input).unwrap();
            for q in &queries {
                prop_assert_eq!(t.owner(q).map(|o| o.group()), reference(&groups, default, q));
            }
        }
    }
}
