//! The whole site file: reading, validating, and questions about it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value};

use super::checks::{cross_checks, unique_names};
use super::error::{ConfigError, ConfigErrors, Entry, Rule, SelectError};
use super::iface::{HostInterfaces, OsInterfaces};
use super::json::{self, path_string, Seg};
use super::role::{entry_of, parse_entry, Parsed, Role, VmailRole};
use super::value::{list, object, shown, string, Sink};

/// Site name used when the file has no `site`.
pub const DEFAULT_SITE: &str = "site1";

/// Another site serving some of the same domains (SPEC §10), reached
/// through its vmail HTTP API.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerSite {
    /// The API base URLs of its instances (normalised, no trailing `/`),
    /// in file order.
    pub api: Vec<String>,
    /// The Bearer token it accepts (`token`, or read from `token_file`).
    pub token: String,
    /// PEM certificates to trust for its https URLs (`ca_file`), besides
    /// the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// The domains it serves, with their subdomains (normalised, sorted);
    /// `None`: every domain.
    pub domains: Option<Vec<String>>,
}

impl PeerSite {
    /// Whether the site serves `domain` (normalised): listed, or a
    /// subdomain of a listed one, or every domain without `domains`.
    pub fn serves(&self, domain: &str) -> bool {
        match &self.domains {
            None => true,
            Some(list) => list.iter().any(|d| {
                domain == d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }),
        }
    }
}

impl std::fmt::Debug for PeerSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSite")
            .field("api", &self.api)
            .field("token", &"********")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("domains", &self.domains)
            .finish()
    }
}

/// One group of instances, as [`Config::groups`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo<'a> {
    /// The group number.
    pub group: u32,
    /// Its domains (normalized, sorted); empty for the default group.
    pub include_domains: &'a [String],
    /// Its enabled instances, by `order` (lowest first).
    pub instances: Vec<&'a VmailRole>,
}

impl GroupInfo<'_> {
    /// Whether this is the default group (serves every unclaimed domain).
    pub fn is_default(&self) -> bool {
        self.include_domains.is_empty()
    }
}

/// A whole validated site file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Site name (default `site1`).
    pub site: String,
    /// Interface aliases: alias → address.
    pub interfaces: BTreeMap<String, IpAddr>,
    /// Other sites serving some of the same domains: site name → how to
    /// reach it. May be empty.
    pub sites: BTreeMap<String, PeerSite>,
    /// Every element of `roles`, in file order, of every roletype, enabled
    /// or not.
    pub roles: Vec<Role>,
    /// The file as parsed (`GET /api/v1/config`; see
    /// [`Config::raw_redacted`]).
    pub raw: Value,
}

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let unreadable = |reason: String| {
            ConfigErrors(vec![ConfigError {
                entry: Entry::File,
                field: None,
                rule: Rule::Unreadable {
                    path: path.display().to_string(),
                    reason,
                },
            }])
        };
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            unreadable(format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::parse(&text)
    }

    /// Validate a file's text. Does no file I/O; an `iface` that is not an
    /// alias is looked up among this host's network interfaces.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        parse_with(text, &mut OsInterfaces::default())
    }

    /// The enabled vmail instances, in file order.
    pub fn vmail_roles(&self) -> impl Iterator<Item = &VmailRole> {
        self.roles.iter().filter_map(|r| match r {
            Role::Vmail(v) => Some(v),
            _ => None,
        })
    }

    /// The instance to run: the one named `name`, or with `None` the only
    /// enabled vmail instance of the file.
    pub fn select(&self, name: Option<&str>) -> Result<&VmailRole, SelectError> {
        let available = || self.vmail_roles().map(|v| v.name.clone()).collect();
        match name {
            Some(name) => {
                if let Some(v) = self.vmail_roles().find(|v| v.name == name) {
                    return Ok(v);
                }
                let name = name.to_owned();
                match self.roles.iter().find(|r| r.name() == Some(name.as_str())) {
                    Some(Role::Disabled { .. }) => Err(SelectError::Disabled {
                        name,
                        available: available(),
                    }),
                    Some(Role::Other { roletype, .. }) => Err(SelectError::NotVmail {
                        name,
                        roletype: roletype.clone(),
                        available: available(),
                    }),
                    _ => Err(SelectError::NotFound {
                        name,
                        available: available(),
                    }),
                }
            }
            None => {
                let mut all = self.vmail_roles();
                match (all.next(), all.next()) {
                    (Some(v), None) => Ok(v),
                    (None, _) => Err(SelectError::NoVmailRole),
                    (Some(_), Some(_)) => Err(SelectError::Ambiguous {
                        available: available(),
                    }),
                }
            }
        }
    }

    /// Groups of enabled instances: group number → its domains and its
    /// instances by order.
    pub fn groups(&self) -> BTreeMap<u32, GroupInfo<'_>> {
        let mut out: BTreeMap<u32, GroupInfo<'_>> = BTreeMap::new();
        for v in self.vmail_roles() {
            out.entry(v.group)
                .or_insert_with(|| GroupInfo {
                    group: v.group,
                    include_domains: &v.include_domains,
                    instances: Vec::new(),
                })
                .instances
                .push(v);
        }
        for g in out.values_mut() {
            g.instances.sort_by_key(|v| (v.order, v.index));
        }
        out
    }

    /// [`Config::raw`] with secrets masked: every `api_tokens` element and
    /// every demo mailbox `pin` in the `ext` of vmail entries.
    pub fn raw_redacted(&self) -> Value {
        const MASK: &str = "********";
        let mut raw = self.raw.clone();
        if let Some(Value::Object(sites)) = raw.get_mut("sites") {
            for site in sites.values_mut().filter_map(Value::as_object_mut) {
                if let Some(token) = site.get_mut("token") {
                    *token = Value::from(MASK);
                }
            }
        }
        let Some(roles) = raw.get_mut("roles").and_then(Value::as_array_mut) else {
            return raw;
        };
        for role in roles {
            let ext_objects: Vec<&mut Map<String, Value>> = match role.get_mut("ext") {
                Some(Value::Object(o)) => vec![o],
                Some(Value::Array(a)) => a.iter_mut().filter_map(Value::as_object_mut).collect(),
                _ => Vec::new(),
            };
            for ext in ext_objects {
                if let Some(Value::Array(tokens)) = ext.get_mut("api_tokens") {
                    tokens.iter_mut().for_each(|t| *t = Value::from(MASK));
                }
                if let Some(Value::Array(hooks)) = ext.get_mut("webhooks") {
                    for h in hooks.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(secret) = h.get_mut("secret") {
                            *secret = Value::from(MASK);
                        }
                    }
                }
                if let Some(Value::Array(boxes)) = ext.get_mut("demo_mailboxes") {
                    for b in boxes.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(pin) = b.get_mut("pin") {
                            *pin = Value::from(MASK);
                        }
                    }
                }
            }
        }
        raw
    }
}

/// [`Config::parse`] with the host's interfaces supplied (tests use a fake
/// host).
pub(super) fn parse_with(
    text: &str,
    host: &mut dyn HostInterfaces,
) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::default();
    let file = Entry::File;
    let doc = json::parse(text).map_err(|rule| {
        ConfigErrors(vec![ConfigError {
            entry: Entry::File,
            field: None,
            rule,
        }])
    })?;
    let raw = doc.value;
    duplicate_keys(&raw, &doc.duplicates, &mut sink);

    let Some(top) = raw.as_object() else {
        sink.whole(
            &file,
            Rule::WrongType {
                expected: "a JSON object with a `roles` list",
                found: shown(&raw),
            },
        );
        return Err(ConfigErrors(sink.errors));
    };

    let site = match top.get("site") {
        None => DEFAULT_SITE.to_owned(),
        Some(v) => match string(v) {
            Ok(s) if is_site_name(s) => s.to_owned(),
            Ok(_) => {
                sink.field(&file, "site", Rule::BadSiteName { found: shown(v) });
                String::new()
            }
            Err(rule) => {
                sink.field(&file, "site", rule);
                String::new()
            }
        },
    };
    let interfaces = interfaces(top.get("interfaces"), &mut sink);
    let sites = sites(top.get("sites"), &site, &mut sink);

    let mut roles = Vec::new();
    let mut drafts = Vec::new();
    match top.get("roles") {
        None => sink.field(&file, "roles", Rule::Missing),
        Some(v) => match list(v) {
            Err(rule) => sink.field(&file, "roles", rule),
            Ok(items) => {
                let mut names = Vec::new();
                let mut broken = false;
                for (index, item) in items.iter().enumerate() {
                    if let Some(name) = item.get("name").and_then(Value::as_str) {
                        names.push((entry_of(index, item), name.to_owned()));
                    }
                    match parse_entry(index, item, &interfaces, host, &mut sink) {
                        Parsed::Vmail(d) => drafts.push(d),
                        Parsed::Role(r) => roles.push(r),
                        Parsed::Broken => broken = true,
                    }
                }
                unique_names(&names, &mut sink);
                // an entry that could not be classified may be the vmail
                // role; its own error says enough
                if drafts.is_empty() && !broken {
                    sink.field(&file, "roles", Rule::NoVmailRole);
                }
            }
        },
    }
    cross_checks(&drafts, &mut sink);

    if !sink.errors.is_empty() {
        return Err(ConfigErrors(sink.errors));
    }
    for d in drafts {
        match d.finish() {
            Some(v) => roles.push(Role::Vmail(v)),
            // every missing part was reported, so this is not reached
            None => return Err(ConfigErrors(sink.errors)),
        }
    }
    roles.sort_by_key(Role::index);
    Ok(Config {
        site,
        interfaces,
        sites,
        roles,
        raw,
    })
}

/// Report keys given twice in one object, under the entry they are in.
fn duplicate_keys(raw: &Value, duplicates: &[Vec<Seg>], sink: &mut Sink) {
    for path in duplicates {
        match path.as_slice() {
            [Seg::Key(roles), Seg::Index(i), rest @ ..] if roles == "roles" && !rest.is_empty() => {
                let item = raw
                    .get("roles")
                    .and_then(|r| r.get(*i))
                    .unwrap_or(&Value::Null);
                sink.field(&entry_of(*i, item), path_string(rest), Rule::DuplicateKey);
            }
            _ => sink.field(&Entry::File, path_string(path), Rule::DuplicateKey),
        }
    }
}

fn interfaces(v: Option<&Value>, sink: &mut Sink) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return out };
    let obj = match object(v) {
        Ok(obj) => obj,
        Err(rule) => {
            sink.field(&Entry::File, "interfaces", rule);
            return out;
        }
    };
    for (alias, addr) in obj {
        let field = format!("interfaces.{alias}");
        match string(addr) {
            Ok(s) => match s.parse::<IpAddr>() {
                Ok(a) => {
                    out.insert(alias.clone(), a);
                }
                Err(_) => sink.field(&Entry::File, field, Rule::BadAddress { found: shown(addr) }),
            },
            Err(rule) => sink.field(&Entry::File, field, rule),
        }
    }
    out
}

fn sites(v: Option<&Value>, own: &str, sink: &mut Sink) -> BTreeMap<String, PeerSite> {
    const KEYS: [&str; 6] = [
        "api",
        "token",
        "token_file",
        "ca_file",
        "domains",
        "siteshare",
    ];
    let mut out = BTreeMap::new();
    let Some(v) = v else { return out };
    let obj = match object(v) {
        Ok(obj) => obj,
        Err(rule) => {
            sink.field(&Entry::File, "sites", rule);
            return out;
        }
    };
    let file = Entry::File;
    // every URL of every site: normalised URL → where it is first given
    let mut urls: BTreeMap<String, String> = BTreeMap::new();
    for (name, peer) in obj {
        let field = format!("sites.{name}");
        let before = sink.count();
        if !is_site_name(name) {
            let found = shown(&Value::from(name.as_str()));
            sink.field(&file, field.as_str(), Rule::BadSiteName { found });
        } else if name == own {
            sink.field(
                &file,
                field.as_str(),
                Rule::OwnSite {
                    site: own.to_owned(),
                },
            );
        }
        let peer = match object(peer) {
            Ok(p) => p,
            Err(rule) => {
                sink.field(&file, field, rule);
                continue;
            }
        };
        for k in peer.keys().filter(|k| !KEYS.contains(&k.as_str())) {
            let suggestion = super::value::suggest(k, &KEYS);
            sink.field(
                &file,
                format!("{field}.{k}"),
                Rule::UnknownKey { suggestion },
            );
        }
        if peer.contains_key("siteshare") {
            sink.field(
                &file,
                format!("{field}.siteshare"),
                Rule::SiteShareNotSupported,
            );
        }
        let mut api = Vec::new();
        match peer.get("api") {
            None => sink.field(&file, format!("{field}.api"), Rule::Missing),
            Some(v) => {
                let items: Vec<(String, &Value)> = match v {
                    Value::Array(a) if a.is_empty() => {
                        sink.field(
                            &file,
                            format!("{field}.api"),
                            Rule::WrongType {
                                expected: "a URL or a non-empty list of URLs",
                                found: shown(v),
                            },
                        );
                        Vec::new()
                    }
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, u)| (format!("{field}.api[{i}]"), u))
                        .collect(),
                    other => vec![(format!("{field}.api"), other)],
                };
                for (at, u) in items {
                    match string(u).map(api_url) {
                        Ok(Some(url)) => match urls.get(&url) {
                            Some(other) => sink.field(
                                &file,
                                at,
                                Rule::DuplicateUrl {
                                    url,
                                    other: other.clone(),
                                },
                            ),
                            None => {
                                urls.insert(url.clone(), at);
                                api.push(url);
                            }
                        },
                        Ok(None) => sink.field(&file, at, Rule::BadUrl { found: shown(u) }),
                        Err(rule) => sink.field(&file, at, rule),
                    }
                }
            }
        }
        let token = match (peer.get("token"), peer.get("token_file")) {
            (Some(t), None) => match string(t) {
                Ok(t) if is_token(t) => Some(t.to_owned()),
                Ok(_) => {
                    sink.field(&file, format!("{field}.token"), Rule::BadToken);
                    None
                }
                Err(rule) => {
                    sink.field(&file, format!("{field}.token"), rule);
                    None
                }
            },
            (None, Some(p)) => {
                let at = format!("{field}.token_file");
                match string(p) {
                    Ok("") => {
                        sink.field(&file, at, Rule::EmptyPath);
                        None
                    }
                    Ok(path) => match std::fs::read_to_string(path) {
                        Ok(text) if is_token(text.trim()) => Some(text.trim().to_owned()),
                        Ok(_) => {
                            sink.field(&file, at, Rule::BadToken);
                            None
                        }
                        Err(e) => {
                            let rule = Rule::Unreadable {
                                path: path.to_owned(),
                                reason: e.to_string(),
                            };
                            sink.field(&file, at, rule);
                            None
                        }
                    },
                    Err(rule) => {
                        sink.field(&file, at, rule);
                        None
                    }
                }
            }
            _ => {
                sink.field(&file, field.as_str(), Rule::TokenChoice);
                None
            }
        };
        let ca = match peer.get("ca_file") {
            None => None,
            Some(p) => {
                let at = format!("{field}.ca_file");
                match string(p) {
                    Ok("") => {
                        sink.field(&file, at, Rule::EmptyPath);
                        None
                    }
                    Ok(path) => match super::tls::load_ca(Path::new(path)) {
                        Ok(pem) => Some(pem),
                        Err(reason) => {
                            sink.field(&file, at, Rule::BadCaFile { reason });
                            None
                        }
                    },
                    Err(rule) => {
                        sink.field(&file, at, rule);
                        None
                    }
                }
            }
        };
        let domains = match peer.get("domains") {
            None => None,
            Some(v) => {
                let at = format!("{field}.domains");
                match list(v) {
                    Err(rule) => {
                        sink.field(&file, at, rule);
                        None
                    }
                    Ok(items) => {
                        let mut out = Vec::new();
                        for (i, d) in items.iter().enumerate() {
                            let at = format!("{at}[{i}]");
                            match string(d) {
                                Ok(s) => match super::domain::normalize_domain(s) {
                                    Ok(n) => {
                                        if !out.contains(&n) {
                                            out.push(n);
                                        }
                                    }
                                    Err(error) => sink.field(
                                        &file,
                                        at,
                                        Rule::BadDomain {
                                            domain: s.to_owned(),
                                            error,
                                        },
                                    ),
                                },
                                Err(rule) => sink.field(&file, at, rule),
                            }
                        }
                        out.sort();
                        Some(out)
                    }
                }
            }
        };
        if sink.count() == before {
            if let Some(token) = token {
                out.insert(
                    name.clone(),
                    PeerSite {
                        api,
                        token,
                        ca_pem: ca,
                        domains,
                    },
                );
            }
        }
    }
    out
}

/// A peer's API base URL, normalised (`http://host:port` or with a path,
/// no trailing `/`), if `s` is one: http or https, a host, no query,
/// fragment or credentials.
fn api_url(s: &str) -> Option<String> {
    let url = reqwest::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// A Bearer token: visible ASCII, no spaces, at most 4096 characters.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// 1 to 64 of `A-Za-z0-9._-`, beginning with a letter or digit.
fn is_site_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
