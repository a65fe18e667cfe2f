//! One element of `roles`: what kind it is, and the checks of a vmail entry
//! on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};

use super::domain::normalize_domain;
use super::error::{Entry, Rule};
use super::ext::{parse_ext, Ext};
use super::iface::{resolve, HostInterfaces, Resolved};
use super::value::{boolean, int_in, list, shown, shown_str, string, suggest, u32_in, Sink};

/// Largest `group` number.
pub const MAX_GROUP: u32 = 9_999_999;
/// Largest `order`.
pub const MAX_ORDER: u32 = 9_999_999;

/// An enabled vmail instance, fully validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmailRole {
    /// Position in `roles`, from 0.
    pub index: usize,
    /// Instance name (`^[A-Za-z][A-Za-z0-9]*$`).
    pub name: String,
    /// `iface` as written (an alias or a host interface name).
    pub iface: String,
    /// The address `iface` resolved to; SIP, RTP and HTTP bind here.
    pub addr: IpAddr,
    /// Group number, 1..=9999999.
    pub group: u32,
    /// Order inside the group (lowest becomes active first).
    pub order: u32,
    /// Served domains: normalized, sorted, without repeats; empty for the
    /// default group.
    pub include_domains: Vec<String>,
    /// Options.
    pub ext: Ext,
}

impl VmailRole {
    /// Where SIP listens.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.ext.sip_port)
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.ext.http_port)
    }

    /// Whether this instance belongs to the default group (serves every
    /// domain no other group claims).
    pub fn is_default_group(&self) -> bool {
        self.include_domains.is_empty()
    }
}

/// One element of `roles`, kept in file order.
// A file holds a handful of roles, built once: no point boxing the big one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// An enabled vmail instance.
    Vmail(VmailRole),
    /// A vmail entry (or an entry without `roletype`) with `enabled: false`:
    /// not validated, not started.
    Disabled {
        /// Position in `roles`.
        index: usize,
        /// Its `name`, if a string.
        name: Option<String>,
        /// The entry as written.
        raw: Value,
    },
    /// An entry of another roletype, left alone.
    Other {
        /// Position in `roles`.
        index: usize,
        /// Its `name`, if a string.
        name: Option<String>,
        /// Its `roletype`.
        roletype: String,
        /// The entry as written.
        raw: Value,
    },
}

impl Role {
    /// Position in `roles`.
    pub fn index(&self) -> usize {
        match self {
            Role::Vmail(v) => v.index,
            Role::Disabled { index, .. } | Role::Other { index, .. } => *index,
        }
    }

    /// The entry's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Role::Vmail(v) => Some(&v.name),
            Role::Disabled { name, .. } | Role::Other { name, .. } => name.as_deref(),
        }
    }

    /// The entry's roletype (`"vmail"` for disabled entries too).
    pub fn roletype(&self) -> &str {
        match self {
            Role::Vmail(_) | Role::Disabled { .. } => "vmail",
            Role::Other { roletype, .. } => roletype,
        }
    }
}

/// An enabled vmail entry while it is checked: what could be read of it.
pub(super) struct Draft {
    pub index: usize,
    pub entry: Entry,
    pub name: Option<String>,
    pub iface: Option<String>,
    pub addr: Option<Resolved>,
    pub group: Option<u32>,
    pub order: Option<u32>,
    pub domains: Option<Vec<String>>,
    pub ext: Option<Ext>,
}

impl Draft {
    /// The finished role, if every field is there.
    pub fn finish(self) -> Option<VmailRole> {
        Some(VmailRole {
            index: self.index,
            name: self.name?,
            iface: self.iface?,
            addr: self.addr?.addr(),
            group: self.group?,
            order: self.order?,
            include_domains: self.domains?,
            ext: self.ext?,
        })
    }
}

/// How one element of `roles` was classified.
pub(super) enum Parsed {
    Vmail(Draft),
    Role(Role),
    /// Not usable (reported).
    Broken,
}

/// Keys a vmail entry may hold.
const ROLE_KEYS: &[&str] = &[
    "name",
    "roletype",
    "iface",
    "ext",
    "enabled",
    "group",
    "order",
    "include_domains",
    "description",
    "comment",
];

/// The entry label of `roles[index]`.
pub(super) fn entry_of(index: usize, v: &Value) -> Entry {
    Entry::Role {
        index,
        name: v.get("name").and_then(Value::as_str).map(str::to_owned),
    }
}

/// Classify and, for an enabled vmail entry, check one element of `roles`.
pub(super) fn parse_entry(
    index: usize,
    v: &Value,
    aliases: &BTreeMap<String, IpAddr>,
    host: &mut dyn HostInterfaces,
    sink: &mut Sink,
) -> Parsed {
    let entry = entry_of(index, v);
    let Some(obj) = v.as_object() else {
        sink.whole(
            &entry,
            Rule::WrongType {
                expected: "an object",
                found: shown(v),
            },
        );
        return Parsed::Broken;
    };
    let name = obj.get("name").and_then(Value::as_str).map(str::to_owned);
    let disabled = obj.get("enabled") == Some(&Value::Bool(false));
    let roletype = match obj.get("roletype") {
        None if disabled => None,
        None => {
            sink.field(&entry, "roletype", Rule::Missing);
            return Parsed::Broken;
        }
        Some(rt) => match string(rt) {
            Ok(rt) => Some(rt),
            Err(rule) => {
                sink.field(&entry, "roletype", rule);
                return Parsed::Broken;
            }
        },
    };
    match roletype {
        Some("vmail") | None if disabled => Parsed::Role(Role::Disabled {
            index,
            name,
            raw: v.clone(),
        }),
        Some("vmail") => Parsed::Vmail(parse_vmail(index, entry, obj, aliases, host, sink)),
        Some(rt) if rt.eq_ignore_ascii_case("vmail") => {
            sink.field(
                &entry,
                "roletype",
                Rule::RoletypeCase {
                    found: shown_str(rt),
                },
            );
            Parsed::Broken
        }
        Some(rt) => Parsed::Role(Role::Other {
            index,
            name,
            roletype: rt.to_owned(),
            raw: v.clone(),
        }),
        None => Parsed::Broken,
    }
}

fn parse_vmail(
    index: usize,
    entry: Entry,
    obj: &Map<String, Value>,
    aliases: &BTreeMap<String, IpAddr>,
    host: &mut dyn HostInterfaces,
    sink: &mut Sink,
) -> Draft {
    for k in obj.keys().filter(|k| !ROLE_KEYS.contains(&k.as_str())) {
        let suggestion = suggest(k, ROLE_KEYS);
        sink.field(&entry, k.as_str(), Rule::UnknownKey { suggestion });
    }
    let required = |key: &str, sink: &mut Sink| {
        let v = obj.get(key);
        if v.is_none() {
            sink.field(&entry, key, Rule::Missing);
        }
        v
    };

    let name = required("name", sink).and_then(|v| match string(v) {
        Ok(s) if is_role_name(s) => Some(s.to_owned()),
        Ok(_) => {
            sink.field(&entry, "name", Rule::BadName { found: shown(v) });
            None
        }
        Err(rule) => {
            sink.field(&entry, "name", rule);
            None
        }
    });

    let mut iface = None;
    let mut addr = None;
    if let Some(v) = required("iface", sink) {
        match string(v) {
            Ok(s) => {
                iface = Some(s.to_owned());
                addr = resolve(s, aliases, host);
                if addr.is_none() {
                    let iface = s.to_owned();
                    sink.field(&entry, "iface", Rule::UnknownIface { iface });
                }
            }
            Err(rule) => sink.field(&entry, "iface", rule),
        }
    }

    let group = required("group", sink).and_then(|v| {
        u32_in(v, 1, MAX_GROUP)
            .map_err(|rule| sink.field(&entry, "group", rule))
            .ok()
    });
    let order = required("order", sink).and_then(|v| {
        int_in(v, 0, i64::from(MAX_ORDER))
            .map(|n| n as u32)
            .map_err(|rule| sink.field(&entry, "order", rule))
            .ok()
    });

    if let Some(v) = obj.get("enabled") {
        if let Err(rule) = boolean(v) {
            sink.field(&entry, "enabled", rule);
        }
    }
    for key in ["description", "comment"] {
        if let Some(Err(rule)) = obj.get(key).map(string) {
            sink.field(&entry, key, rule);
        }
    }

    let domains = match obj.get("include_domains") {
        None => Some(Vec::new()),
        Some(v) => domains(v, &entry, sink),
    };
    let ext = parse_ext(obj.get("ext"), &entry, sink);

    Draft {
        index,
        entry,
        name,
        iface,
        addr,
        group,
        order,
        domains,
        ext,
    }
}

/// `include_domains`: normalized, sorted, repeats dropped; `None` if any
/// element is bad (reported).
fn domains(v: &Value, entry: &Entry, sink: &mut Sink) -> Option<Vec<String>> {
    let items = match list(v) {
        Ok(items) => items,
        Err(rule) => {
            sink.field(entry, "include_domains", rule);
            return None;
        }
    };
    let mut out = BTreeSet::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let field = format!("include_domains[{i}]");
        match string(item) {
            Ok(s) => match normalize_domain(s) {
                Ok(d) => {
                    out.insert(d);
                }
                Err(error) => {
                    let domain = s.to_owned();
                    sink.field(entry, field, Rule::BadDomain { domain, error });
                    ok = false;
                }
            },
            Err(rule) => {
                sink.field(entry, field, rule);
                ok = false;
            }
        }
    }
    ok.then(|| out.into_iter().collect())
}

/// `^[A-Za-z][A-Za-z0-9]*$`.
pub(super) fn is_role_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        for ok in ["vmail1", "V", "vmailA2b"] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in ["", "1vmail", "vm-1", "vm_1", "vm 1", "вмейл", "vmail1\n"] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }
}
