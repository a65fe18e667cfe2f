//! `ext`: the typed options of one vmail instance, with their defaults.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::domain::normalize_domain;
use super::error::{Entry, Rule};
use super::retention::{parse_retention, Retention};
use super::timezone::TimeZone;
use super::value::{
    boolean, list, object, port, shown, shown_str, string, suggest, u32_in, u64_in, Sink,
};
use crate::sip::is_sip_uri;

/// A SIP transport vmail listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SipTransport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

impl SipTransport {
    /// The lower-case name used in the file and in `Via`.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mailbox created on the first start if it does not exist yet (demos
/// and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoMailbox {
    /// Mailbox user (the number), e.g. `1001`.
    pub user: String,
    /// Mailbox domain, normalized.
    pub domain: String,
    /// The PIN, 4 to 16 digits (stored by the mailbox store only as a hash).
    pub pin: String,
}

/// The `ext` options of one vmail instance; every field has the default
/// that SPEC §2 gives (see `config/README.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ext {
    /// SIP listening port (UDP and/or TCP).
    pub sip_port: u16,
    /// SIP transports to listen on; never empty, no repeats.
    pub sip_transports: Vec<SipTransport>,
    /// Lowest local RTP port.
    pub rtp_port_min: u16,
    /// Highest local RTP port.
    pub rtp_port_max: u16,
    /// HTTP API port.
    pub http_port: u16,
    /// Root of the shared storage; relative paths are taken from the
    /// working directory of the process.
    pub siteshare: PathBuf,
    /// Folder of prompts (`<prompts>/<language>/…`).
    pub prompts: PathBuf,
    /// Default prompt language of this instance (a folder name in `prompts`).
    pub language: String,
    /// The codecs vmail answers with, in order of preference when the
    /// offer has several (default: every codec vmail has, the offer's
    /// order deciding).
    pub codecs: Vec<crate::media::Codec>,
    /// Whether `codecs` was given: then its order decides, not the offer's.
    pub codecs_ordered: bool,
    /// Request-URI users that reach the mailbox menu instead of a deposit.
    pub access_numbers: Vec<String>,
    /// Create a mailbox on a deposit to an unknown one instead of `404`.
    pub auto_create_mailboxes: bool,
    /// Longest recording, seconds.
    pub max_message_seconds: u32,
    /// Recordings shorter than this are dropped, seconds (0 keeps all).
    pub min_message_seconds: u32,
    /// Silence that ends a recording, seconds.
    pub silence_seconds: u32,
    /// Messages a mailbox holds (all folders together) before it counts as
    /// full.
    pub max_messages: u32,
    /// Bearer tokens accepted by the `/api/` routes.
    pub api_tokens: Vec<String>,
    /// SIP URIs (UDP) that get an unsolicited NOTIFY on every mailbox change.
    pub mwi_notify: Vec<String>,
    /// Shortest message-waiting subscription granted, seconds (shorter
    /// SUBSCRIBEs get `423` with `Min-Expires`).
    pub mwi_min_expires: u32,
    /// Longest message-waiting subscription granted, seconds (longer
    /// requests are shortened).
    pub mwi_max_expires: u32,
    /// Calls in progress beyond which new INVITEs get `503`.
    pub max_calls: u32,
    /// Bytes of decoded personal greetings kept in memory between calls
    /// (0: every call decodes its greeting).
    pub greeting_cache_bytes: u64,
    /// New INVITEs get `503` while the media threads run this late,
    /// milliseconds (the pacer's ticks or the receive clock, averaged over
    /// a quarter second); 0 turns the check off.
    pub media_lag_limit_ms: u32,
    /// How long the lag must stay over `media_lag_limit_ms` before INVITEs
    /// are refused, and under half of it before they are taken again,
    /// milliseconds.
    pub media_lag_hold_ms: u32,
    /// A call with no RTP for this long is ended, seconds.
    pub media_timeout_seconds: u32,
    /// A lease not renewed for this long is dead, milliseconds.
    pub lease_ms: u64,
    /// Where the group's leases and epochs are kept (SPEC §4).
    pub coordination: Coordination,
    /// Wrong PINs in a row that lock a mailbox.
    pub lockout_failures: u32,
    /// How long a locked mailbox stays locked, seconds.
    pub lockout_seconds: u64,
    /// PIN checks (argon2, 19 MiB each) that run at once; 0: two per core,
    /// at most 16.
    pub pin_hash_workers: u32,
    /// PIN checks that wait for a turn (the caller hears "please wait");
    /// beyond that a login is refused with "try later" and not counted.
    pub pin_hash_queue: u32,
    /// Calls to an access number one source address may make at once
    /// before the rate applies; 0 turns the limit off.
    pub access_rate_burst: u32,
    /// Calls to an access number per minute and source address (IPv6 by
    /// /64) once the burst is spent.
    pub access_rate_per_minute: u32,
    /// Time zone for spoken dates and times: `UTC` or `+HH:MM`/`-HH:MM`.
    pub timezone: String,
    /// Mailboxes created on the first start if absent.
    pub demo_mailboxes: Vec<DemoMailbox>,
    /// Ring this long (`180 Ringing`) before answering a deposit call,
    /// milliseconds (0 answers at once).
    pub answer_delay_ms: u64,
    /// SIP/TCP connections open at once, from all sources together.
    pub tcp_max_connections: u32,
    /// SIP/TCP connections open at once from one source address (an IPv6
    /// source counts by its /64).
    pub tcp_max_connections_per_address: u32,
    /// A SIP/TCP connection with no complete message or keep-alive for
    /// this long is closed, seconds.
    pub tcp_idle_seconds: u32,
    /// A SIP/TCP message must arrive whole within this long of its first
    /// byte, or the connection is closed, seconds.
    pub tcp_message_seconds: u32,
    /// A web inbox session unused for this long ends, seconds.
    pub web_session_seconds: u32,
    /// After the recording, offer the caller the review menu (accept,
    /// listen, re-record, urgent), as Asterisk's `review`.
    pub review: bool,
    /// Where `0` during a deposit transfers the caller (REFER), per domain.
    /// Empty: `0` does nothing.
    pub operator_uri: OperatorUris,
    /// After a transfer to the operator, keep what the caller recorded.
    pub operator_keeps_recording: bool,
    /// How long messages are kept, by folder and domain (off by default).
    pub retention: Retention,
    /// Minutes between two retention passes of the active instance.
    pub retention_interval_minutes: u32,
    /// How long one request to a peer site may take (listing, counts,
    /// a change; for audio, until its first bytes), milliseconds.
    pub sites_timeout_ms: u32,
    /// Requests to peer sites in flight at once, over every peer.
    pub sites_max_requests: u32,
    /// Seconds between two refreshes of the peer sites' counts of the
    /// mailboxes with message-waiting subscribers.
    pub sites_refresh_seconds: u32,
    /// The SMTP relay of e-mail notifications (none: no e-mail is sent).
    pub smtp: Option<Smtp>,
    /// Endpoints that receive signed event webhooks.
    pub webhooks: Vec<Webhook>,
    /// A notification still failing this long after it was queued is
    /// given up (moved to `failed/`), hours.
    pub notify_give_up_hours: u32,
    /// Wait before the first attempt of a notification, milliseconds.
    pub notify_delay_ms: u64,
    /// Wait before the first retry, milliseconds; doubled at each failure.
    pub notify_retry_ms: u64,
    /// Longest wait between two attempts, seconds.
    pub notify_retry_max_seconds: u32,
    /// Link put in e-mails: `{domain}`, `{user}` and `{id}` are replaced.
    pub email_link_template: Option<String>,
    /// E-mail subject template (default: by the mailbox language).
    pub email_subject_template: Option<String>,
    /// E-mail body template (default: by the mailbox language).
    pub email_body_template: Option<String>,
    /// Port of the SIP over TLS listener (`None`: no TLS listener).
    pub sip_tls_port: Option<u16>,
    /// PEM file of the TLS certificate chain (leaf first).
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the TLS certificate's private key.
    pub tls_key: Option<PathBuf>,
    /// Serve the HTTP port (API and web inbox) over TLS with `tls_cert`
    /// and `tls_key`.
    pub http_tls: bool,
    /// Accept SDES keys (`a=crypto`) in SDP that came over UDP or TCP.
    /// Unsafe: anyone who sees the signalling can decrypt the media.
    pub srtp_over_insecure: bool,
}

/// How the SMTP connection is protected (`ext.smtp.tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or a trusted network).
    None,
    /// STARTTLS, required (port 587 usually).
    StartTls,
    /// TLS from the first byte (port 465 usually).
    Implicit,
}

/// The SMTP relay (`ext.smtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// Host name or address of the relay.
    pub host: String,
    /// Its port (default: 25, 587 with STARTTLS, 465 with implicit TLS).
    pub port: u16,
    /// The `From:` address (checked like every e-mail address).
    pub from: String,
    /// Transport security.
    pub tls: SmtpTls,
    /// User for SMTP AUTH (with `password_file`).
    pub username: Option<String>,
    /// File holding the SMTP AUTH password (read at each send).
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted for the relay's TLS besides the public
    /// roots (a relay with a private CA or a self-signed certificate).
    pub ca_file: Option<PathBuf>,
}

/// The event types a webhook can receive.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "message.created",
    "message.heard",
    "message.deleted",
    "mailbox.locked",
];

/// Where a webhook's HMAC secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSecret {
    /// Given in the file.
    Inline(String),
    /// Read from this file at each delivery (surrounding white space trimmed).
    File(PathBuf),
}

/// One webhook endpoint (`ext.webhooks[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://` URL that receives the POSTs.
    pub url: String,
    /// The HMAC-SHA256 key of `Vmail-Signature`.
    pub secret: WebhookSecret,
    /// Domains whose events it receives (empty: all).
    pub domains: Vec<String>,
    /// Event types it receives (empty: all of [`WEBHOOK_EVENTS`]).
    pub events: Vec<String>,
    /// PEM certificates trusted for an `https://` endpoint besides the
    /// public roots.
    pub ca_file: Option<PathBuf>,
}

impl Webhook {
    /// Whether the event `kind` of a mailbox of `domain` goes to this endpoint.
    pub fn wants(&self, kind: &str, domain: &str) -> bool {
        (self.events.is_empty() || self.events.iter().any(|e| e == kind))
            && (self.domains.is_empty() || self.domains.iter().any(|d| d == domain))
    }
}

/// `ext.operator_uri`: one `sip:` URI for every domain, or an object from
/// domain (normalised) to URI with `"*"` for the others.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperatorUris {
    /// The URI of domains without their own (`"*"`, or the plain string).
    pub default: Option<String>,
    /// Per domain, normalised.
    pub domains: Vec<(String, String)>,
}

impl OperatorUris {
    /// The operator URI of `domain` (normalised), if any.
    pub fn for_domain(&self, domain: &str) -> Option<&str> {
        self.domains
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, u)| u.as_str())
            .or(self.default.as_deref())
    }
}

/// `"sip:..."` or `{"example.com": "sip:...", "*": "sip:..."}`.
fn operator_uris(
    v: &Value,
    field: &str,
    entry: &Entry,
    sink: &mut Sink,
) -> Result<OperatorUris, Rule> {
    if let Some(s) = v.as_str() {
        if !is_sip_uri(s) {
            return Err(Rule::BadSipUri { found: shown(v) });
        }
        return Ok(OperatorUris {
            default: Some(s.to_string()),
            domains: Vec::new(),
        });
    }
    let obj = object(v)?;
    let mut out = OperatorUris::default();
    for (key, item) in obj {
        let at = format!("{field}.{key}");
        let Some(uri) = item.as_str().filter(|s| is_sip_uri(s)) else {
            sink.field(entry, at, Rule::BadSipUri { found: shown(item) });
            continue;
        };
        if key == "*" {
            out.default = Some(uri.to_string());
            continue;
        }
        match normalize_domain(key) {
            Ok(d) => {
                out.domains.retain(|(o, _)| *o != d);
                out.domains.push((d, uri.to_string()));
            }
            Err(error) => sink.field(
                entry,
                at,
                Rule::BadDomain {
                    domain: key.clone(),
                    error,
                },
            ),
        }
    }
    Ok(out)
}

impl Default for Ext {
    fn default() -> Self {
        Ext {
            sip_port: 5060,
            sip_transports: vec![SipTransport::Udp, SipTransport::Tcp],
            rtp_port_min: 20000,
            rtp_port_max: 39999,
            http_port: 8080,
            siteshare: PathBuf::from("./var/siteshare"),
            prompts: PathBuf::from("./prompts"),
            language: "en".to_string(),
            codecs: crate::media::ALL_CODECS.to_vec(),
            codecs_ordered: false,
            access_numbers: vec!["*98".to_string(), "voicemail".to_string()],
            auto_create_mailboxes: false,
            max_message_seconds: 180,
            min_message_seconds: 1,
            silence_seconds: 10,
            max_messages: 100,
            api_tokens: Vec::new(),
            mwi_notify: Vec::new(),
            mwi_min_expires: 60,
            mwi_max_expires: 3600,
            max_calls: 2000,
            greeting_cache_bytes: 64 << 20,
            media_lag_limit_ms: 0,
            media_lag_hold_ms: 1000,
            media_timeout_seconds: 30,
            lease_ms: 3000,
            coordination: Coordination::SiteShare,
            lockout_failures: 5,
            lockout_seconds: 300,
            pin_hash_workers: 0,
            pin_hash_queue: 64,
            access_rate_burst: 10,
            access_rate_per_minute: 60,
            timezone: "UTC".to_string(),
            demo_mailboxes: Vec::new(),
            answer_delay_ms: 0,
            tcp_max_connections: 8192,
            tcp_max_connections_per_address: 64,
            tcp_idle_seconds: 300,
            tcp_message_seconds: 10,
            web_session_seconds: 1800,
            review: false,
            operator_uri: OperatorUris::default(),
            operator_keeps_recording: true,
            retention: Retention::default(),
            retention_interval_minutes: 60,
            sites_timeout_ms: 2000,
            sites_max_requests: 16,
            sites_refresh_seconds: 60,
            smtp: None,
            webhooks: Vec::new(),
            notify_give_up_hours: 48,
            notify_delay_ms: 0,
            notify_retry_ms: 10_000,
            notify_retry_max_seconds: 1800,
            email_link_template: None,
            email_subject_template: None,
            email_body_template: None,
            sip_tls_port: None,
            tls_cert: None,
            tls_key: None,
            http_tls: false,
            srtp_over_insecure: false,
        }
    }
}

impl Ext {
    /// The zone of [`Ext::timezone`] (validated at load).
    pub fn time_zone(&self) -> TimeZone {
        parse_timezone(&self.timezone).unwrap_or_default()
    }

    /// Whether SIP listens on `t`.
    pub fn has_transport(&self, t: SipTransport) -> bool {
        self.sip_transports.contains(&t)
    }
}

/// Where an Active-Passive group keeps its leases (`ext.coordination`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Coordination {
    /// Files under `<siteshare>/vmail/cluster/` (the default): no extra
    /// service, the shared filesystem must offer atomic rename and
    /// exclusive create (docs/high-availability.md).
    #[default]
    SiteShare,
    /// An etcd cluster (v3 API): `{"backend": "etcd", "endpoints":
    /// ["http://10.0.0.1:2379", ...], "prefix": "/vmail"}` (plain HTTP:
    /// the client has no TLS). Needs a vmail built with the cargo feature
    /// `etcd`.
    Etcd {
        /// Client URLs of the etcd members.
        endpoints: Vec<String>,
        /// Key prefix (default `/vmail`).
        prefix: String,
    },
}

/// `"siteshare"`, `{"backend": "siteshare"}` or `{"backend": "etcd",
/// "endpoints": [...], "prefix": "/vmail"}`.
fn coordination(v: &Value) -> Result<Coordination, Rule> {
    let bad = || Rule::BadCoordination { found: shown(v) };
    if let Some(s) = v.as_str() {
        return match s {
            "siteshare" => Ok(Coordination::SiteShare),
            _ => Err(bad()),
        };
    }
    let obj = object(v)?;
    match obj.get("backend").and_then(Value::as_str) {
        Some("siteshare") if obj.len() == 1 => Ok(Coordination::SiteShare),
        Some("etcd") => {
            if obj
                .keys()
                .any(|k| !matches!(k.as_str(), "backend" | "endpoints" | "prefix"))
            {
                return Err(bad());
            }
            let endpoints = obj
                .get("endpoints")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(bad)?;
            let mut out = Vec::new();
            for e in endpoints {
                let s = e.as_str().ok_or_else(bad)?;
                // Plain http:// only: the etcd client is built without TLS.
                let ok = s
                    .strip_prefix("http://")
                    .is_some_and(|h| !h.is_empty() && !h.contains('/'));
                if !ok {
                    return Err(Rule::BadUrl { found: shown(e) });
                }
                out.push(s.to_string());
            }
            let prefix = match obj.get("prefix") {
                None => "/vmail".to_string(),
                Some(p) => {
                    let p = p.as_str().ok_or_else(bad)?;
                    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(bad());
                    }
                    p.trim_end_matches('/').to_string()
                }
            };
            Ok(Coordination::Etcd {
                endpoints: out,
                prefix,
            })
        }
        _ => Err(bad()),
    }
}

/// Every key `ext` knows.
pub(super) const EXT_KEYS: &[&str] = &[
    "sip_port",
    "sip_transports",
    "rtp_port_min",
    "rtp_port_max",
    "http_port",
    "siteshare",
    "prompts",
    "language",
    "codecs",
    "access_numbers",
    "auto_create_mailboxes",
    "max_message_seconds",
    "min_message_seconds",
    "silence_seconds",
    "max_messages",
    "api_tokens",
    "mwi_notify",
    "mwi_min_expires",
    "mwi_max_expires",
    "max_calls",
    "greeting_cache_bytes",
    "media_lag_limit_ms",
    "media_lag_hold_ms",
    "media_timeout_seconds",
    "lease_ms",
    "coordination",
    "lockout_failures",
    "lockout_seconds",
    "pin_hash_workers",
    "pin_hash_queue",
    "access_rate_burst",
    "access_rate_per_minute",
    "timezone",
    "review",
    "operator_uri",
    "operator_keeps_recording",
    "demo_mailboxes",
    "answer_delay_ms",
    "tcp_max_connections",
    "tcp_max_connections_per_address",
    "tcp_idle_seconds",
    "tcp_message_seconds",
    "web_session_seconds",
    "retention",
    "retention_interval_minutes",
    "sites_timeout_ms",
    "sites_max_requests",
    "sites_refresh_seconds",
    "smtp",
    "webhooks",
    "notify_give_up_hours",
    "notify_delay_ms",
    "notify_retry_ms",
    "notify_retry_max_seconds",
    "email_link_template",
    "email_subject_template",
    "email_body_template",
    "sip_tls_port",
    "tls_cert",
    "tls_key",
    "http_tls",
    "srtp_over_insecure",
];

/// Read `ext` (absent, an object, or a list of objects merged in order).
/// Returns `None` when it broke a rule (the errors are in `sink`).
pub(super) fn parse_ext(value: Option<&Value>, entry: &Entry, sink: &mut Sink) -> Option<Ext> {
    let before = sink.count();
    // key -> (value, field prefix of the object it came from)
    let mut merged: Map<String, Value> = Map::new();
    let mut origin: Vec<(String, String)> = Vec::new();
    let mut put = |prefix: String, obj: &Map<String, Value>| {
        for (k, v) in obj {
            merged.insert(k.clone(), v.clone());
            origin.retain(|(key, _)| key != k);
            origin.push((k.clone(), prefix.clone()));
        }
    };
    match value {
        None => {}
        Some(Value::Object(obj)) => put("ext".to_string(), obj),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match object(item) {
                    Ok(obj) => put(format!("ext[{i}]"), obj),
                    Err(rule) => sink.field(entry, format!("ext[{i}]"), rule),
                }
            }
        }
        Some(other) => sink.field(
            entry,
            "ext",
            Rule::WrongType {
                expected: "an object or a list of objects",
                found: shown(other),
            },
        ),
    }

    let mut ext = Ext::default();
    for (key, prefix) in &origin {
        let Some(v) = merged.get(key) else { continue };
        let field = format!("{prefix}.{key}");
        if let Err(rule) = set_key(&mut ext, key, v, &field, entry, sink) {
            sink.field(entry, field, rule);
        }
    }
    if sink.count() != before {
        return None;
    }

    // Rules between keys, checked once every key is valid.
    let field_of = |key: &str| {
        origin
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| format!("ext.{key}"), |(_, p)| format!("{p}.{key}"))
    };
    if ext.rtp_port_min >= ext.rtp_port_max {
        sink.field(
            entry,
            field_of("rtp_port_min"),
            Rule::RtpRange {
                min: ext.rtp_port_min,
                max: ext.rtp_port_max,
            },
        );
    } else if ext.has_transport(SipTransport::Udp)
        && (ext.rtp_port_min..=ext.rtp_port_max).contains(&ext.sip_port)
    {
        sink.field(
            entry,
            field_of("sip_port"),
            Rule::SipPortInRtpRange {
                port: ext.sip_port,
                min: ext.rtp_port_min,
                max: ext.rtp_port_max,
            },
        );
    }
    if ext.min_message_seconds > ext.max_message_seconds {
        sink.field(
            entry,
            field_of("min_message_seconds"),
            Rule::MessageLength {
                min: ext.min_message_seconds,
                max: ext.max_message_seconds,
            },
        );
    }
    if ext.mwi_min_expires > ext.mwi_max_expires {
        sink.field(
            entry,
            field_of("mwi_min_expires"),
            Rule::MwiExpires {
                min: ext.mwi_min_expires,
                max: ext.mwi_max_expires,
            },
        );
    }
    if ext.has_transport(SipTransport::Tcp) && ext.http_port == ext.sip_port {
        sink.field(
            entry,
            field_of("http_port"),
            Rule::HttpPortIsSipPort {
                port: ext.http_port,
            },
        );
    }
    tls_rules(&ext, &field_of, entry, sink);
    (sink.count() == before).then_some(ext)
}

/// SIP over TLS needs a port of its own; SIP over TLS and HTTPS
/// (`http_tls`) need a certificate and key that load (readable PEM, the
/// key matches the certificate, not expired).
fn tls_rules(ext: &Ext, field_of: &dyn Fn(&str) -> String, entry: &Entry, sink: &mut Sink) {
    if let Some(tls_port) = ext.sip_tls_port {
        let clash = (ext.has_transport(SipTransport::Tcp) && tls_port == ext.sip_port)
            || tls_port == ext.http_port;
        if clash {
            sink.field(
                entry,
                field_of("sip_tls_port"),
                Rule::BadTls {
                    reason: format!("port {tls_port} is already taken by sip_port or http_port"),
                },
            );
        }
    } else if !ext.http_tls {
        return;
    }
    match (&ext.tls_cert, &ext.tls_key) {
        (Some(cert), Some(key)) => {
            if let Err(reason) = super::tls::load_server_config(cert, key) {
                sink.field(entry, field_of("tls_cert"), Rule::BadTls { reason });
            }
        }
        (None, _) => sink.field(entry, field_of("tls_cert"), Rule::Missing),
        (_, None) => sink.field(entry, field_of("tls_key"), Rule::Missing),
    }
}

/// Set one key; element-level errors of lists go to `sink` directly (with
/// their index), a whole-value error is returned.
fn set_key(
    ext: &mut Ext,
    key: &str,
    v: &Value,
    field: &str,
    entry: &Entry,
    sink: &mut Sink,
) -> Result<(), Rule> {
    match key {
        "sip_port" => ext.sip_port = port(v)?,
        "sip_tls_port" => ext.sip_tls_port = Some(port(v)?),
        "tls_cert" => ext.tls_cert = Some(path(v)?),
        "tls_key" => ext.tls_key = Some(path(v)?),
        "http_tls" => ext.http_tls = boolean(v)?,
        "srtp_over_insecure" => ext.srtp_over_insecure = boolean(v)?,
        "rtp_port_min" => ext.rtp_port_min = port(v)?,
        "rtp_port_max" => ext.rtp_port_max = port(v)?,
        "http_port" => ext.http_port = port(v)?,
        "sip_transports" => {
            let items = non_empty_list(v)?;
            let mut out = Vec::new();
            for_each(items, field, entry, sink, |item| {
                let s = string(item)?;
                let t = match s.to_ascii_lowercase().as_str() {
                    "udp" => SipTransport::Udp,
                    "tcp" => SipTransport::Tcp,
                    _ => return Err(Rule::BadTransport { found: shown(item) }),
                };
                if !out.contains(&t) {
                    out.push(t);
                }
                Ok(())
            });
            ext.sip_transports = out;
        }
        "siteshare" => ext.siteshare = path(v)?,
        "prompts" => ext.prompts = path(v)?,
        "language" => {
            let s = string(v)?;
            if !is_language(s) {
                return Err(Rule::BadLanguage { found: shown(v) });
            }
            ext.language = s.to_string();
        }
        "codecs" => {
            let items = non_empty_list(v)?;
            let mut out = Vec::new();
            for_each(items, field, entry, sink, |item| {
                let name = string(item)?;
                let codec = crate::media::Codec::from_encoding_name(name)
                    .ok_or_else(|| Rule::BadCodec { found: shown(item) })?;
                if !out.contains(&codec) {
                    out.push(codec);
                }
                Ok(())
            });
            ext.codecs = out;
            ext.codecs_ordered = true;
        }
        "access_numbers" => {
            let items = non_empty_list(v)?;
            let mut out: Vec<String> = Vec::new();
            for_each(items, field, entry, sink, |item| {
                let s = string(item)?;
                if !is_sip_user(s) {
                    return Err(Rule::BadSipUser { found: shown(item) });
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
                Ok(())
            });
            ext.access_numbers = out;
        }
        "auto_create_mailboxes" => ext.auto_create_mailboxes = boolean(v)?,
        "max_message_seconds" => ext.max_message_seconds = u32_in(v, 1, 86_400)?,
        "min_message_seconds" => ext.min_message_seconds = u32_in(v, 0, 86_400)?,
        "silence_seconds" => ext.silence_seconds = u32_in(v, 1, 86_400)?,
        "max_messages" => ext.max_messages = u32_in(v, 1, 1_000_000)?,
        "mwi_min_expires" => ext.mwi_min_expires = u32_in(v, 1, 86_400)?,
        "mwi_max_expires" => ext.mwi_max_expires = u32_in(v, 1, 604_800)?,
        "api_tokens" => {
            let items = list(v)?;
            let mut out: Vec<String> = Vec::new();
            for_each(items, field, entry, sink, |item| {
                let s = string(item)?;
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(Rule::BadToken);
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
                Ok(())
            });
            ext.api_tokens = out;
        }
        "mwi_notify" => {
            let items = list(v)?;
            let mut out = Vec::new();
            for_each(items, field, entry, sink, |item| {
                let s = string(item)?;
                if !is_mwi_target(s) {
                    return Err(Rule::BadMwiTarget { found: shown(item) });
                }
                out.push(s.to_string());
                Ok(())
            });
            ext.mwi_notify = out;
        }
        "max_calls" => ext.max_calls = u32_in(v, 1, 1_000_000)?,
        "greeting_cache_bytes" => ext.greeting_cache_bytes = u64_in(v, 0, 1 << 40)?,
        "media_lag_limit_ms" => ext.media_lag_limit_ms = u32_in(v, 0, 10_000)?,
        "media_lag_hold_ms" => ext.media_lag_hold_ms = u32_in(v, 100, 60_000)?,
        "media_timeout_seconds" => ext.media_timeout_seconds = u32_in(v, 1, 86_400)?,
        "lease_ms" => ext.lease_ms = u64_in(v, 500, 600_000)?,
        "coordination" => ext.coordination = coordination(v)?,
        "lockout_failures" => ext.lockout_failures = u32_in(v, 1, 1000)?,
        "lockout_seconds" => ext.lockout_seconds = u64_in(v, 1, 31_536_000)?,
        "pin_hash_workers" => ext.pin_hash_workers = u32_in(v, 0, 256)?,
        "pin_hash_queue" => ext.pin_hash_queue = u32_in(v, 0, 100_000)?,
        "access_rate_burst" => ext.access_rate_burst = u32_in(v, 0, 1_000_000)?,
        "access_rate_per_minute" => ext.access_rate_per_minute = u32_in(v, 1, 6_000_000)?,
        "answer_delay_ms" => ext.answer_delay_ms = u64_in(v, 0, 60_000)?,
        "tcp_max_connections" => ext.tcp_max_connections = u32_in(v, 1, 1_000_000)?,
        "tcp_max_connections_per_address" => {
            ext.tcp_max_connections_per_address = u32_in(v, 1, 1_000_000)?
        }
        "tcp_idle_seconds" => ext.tcp_idle_seconds = u32_in(v, 1, 86_400)?,
        "tcp_message_seconds" => ext.tcp_message_seconds = u32_in(v, 1, 3600)?,
        "web_session_seconds" => ext.web_session_seconds = u32_in(v, 10, 86_400)?,
        "review" => ext.review = boolean(v)?,
        "operator_uri" => ext.operator_uri = operator_uris(v, field, entry, sink)?,
        "operator_keeps_recording" => ext.operator_keeps_recording = boolean(v)?,
        "retention" => ext.retention = parse_retention(v, field, entry, sink)?,
        "retention_interval_minutes" => ext.retention_interval_minutes = u32_in(v, 1, 1440)?,
        "sites_timeout_ms" => ext.sites_timeout_ms = u32_in(v, 100, 60_000)?,
        "sites_max_requests" => ext.sites_max_requests = u32_in(v, 1, 1024)?,
        "sites_refresh_seconds" => ext.sites_refresh_seconds = u32_in(v, 5, 86_400)?,
        "smtp" => ext.smtp = smtp(v, field, entry, sink),
        "webhooks" => {
            let items = list(v)?;
            let mut out: Vec<Webhook> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(w) = webhook(item, &format!("{field}[{i}]"), entry, sink) {
                    out.push(w);
                }
            }
            ext.webhooks = out;
        }
        "notify_give_up_hours" => ext.notify_give_up_hours = u32_in(v, 1, 8760)?,
        "notify_delay_ms" => ext.notify_delay_ms = u64_in(v, 0, 3_600_000)?,
        "notify_retry_ms" => ext.notify_retry_ms = u64_in(v, 100, 3_600_000)?,
        "notify_retry_max_seconds" => ext.notify_retry_max_seconds = u32_in(v, 1, 86_400)?,
        "email_link_template" => ext.email_link_template = Some(template(v, 1024)?),
        "email_subject_template" => ext.email_subject_template = Some(template(v, 256)?),
        "email_body_template" => ext.email_body_template = Some(template(v, 16_384)?),
        "timezone" => {
            let s = string(v)?;
            if parse_timezone(s).is_none() {
                return Err(Rule::BadTimezone { found: shown(v) });
            }
            ext.timezone = s.to_string();
        }
        "demo_mailboxes" => {
            let items = list(v)?;
            let mut out: Vec<DemoMailbox> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{field}[{i}]");
                if let Some(mb) = demo_mailbox(item, &at, entry, sink) {
                    if out
                        .iter()
                        .any(|o| o.user == mb.user && o.domain == mb.domain)
                    {
                        let mailbox = format!("{}@{}", mb.user, mb.domain);
                        sink.field(entry, at, Rule::DuplicateMailbox { mailbox });
                    } else {
                        out.push(mb);
                    }
                }
            }
            ext.demo_mailboxes = out;
        }
        _ => {
            return Err(Rule::UnknownKey {
                suggestion: suggest(key, EXT_KEYS),
            })
        }
    }
    Ok(())
}

fn bad_notify(reason: impl Into<String>) -> Rule {
    Rule::BadNotify {
        reason: reason.into(),
    }
}

/// A template: a non-empty string without control characters other than
/// line breaks and tabs.
fn template(v: &Value, max: usize) -> Result<String, Rule> {
    let s = string(v)?;
    if s.is_empty() || s.len() > max {
        return Err(bad_notify(format!(
            "must be a text of 1 to {max} bytes, found {}",
            shown(v)
        )));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(bad_notify("control characters are not allowed"));
    }
    Ok(s.to_string())
}

/// Unknown keys of an object, each reported under `at.key`.
fn unknown_keys(
    obj: &Map<String, Value>,
    known: &[&str],
    at: &str,
    entry: &Entry,
    sink: &mut Sink,
) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        let suggestion = suggest(k, known);
        sink.field(entry, format!("{at}.{k}"), Rule::UnknownKey { suggestion });
    }
}

/// `ext.smtp`: every broken rule is reported, each under its own field.
fn smtp(v: &Value, at: &str, entry: &Entry, sink: &mut Sink) -> Option<Smtp> {
    const KEYS: &[&str] = &[
        "host",
        "port",
        "from",
        "tls",
        "username",
        "password_file",
        "ca_file",
    ];
    let obj = match object(v) {
        Ok(o) => o,
        Err(rule) => {
            sink.field(entry, at, rule);
            return None;
        }
    };
    let before = sink.count();
    unknown_keys(obj, KEYS, at, entry, sink);
    let mut report = |key: &str, rule: Rule| sink.field(entry, format!("{at}.{key}"), rule);
    let host = match obj.get("host").map(string) {
        None => {
            report("host", Rule::Missing);
            None
        }
        Some(Err(rule)) => {
            report("host", rule);
            None
        }
        Some(Ok(h)) => {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
            if !ok {
                report(
                    "host",
                    bad_notify(format!("not a host name or address: {}", shown_str(h))),
                );
            }
            ok.then(|| h.to_string())
        }
    };
    let tls = match obj.get("tls").map(string) {
        None => Some(SmtpTls::StartTls),
        Some(Ok("none")) => Some(SmtpTls::None),
        Some(Ok("starttls")) => Some(SmtpTls::StartTls),
        Some(Ok("implicit")) => Some(SmtpTls::Implicit),
        Some(Ok(other)) => {
            report(
                "tls",
                bad_notify(format!(
                    "must be \"none\", \"starttls\" or \"implicit\", found {}",
                    shown_str(other)
                )),
            );
            None
        }
        Some(Err(rule)) => {
            report("tls", rule);
            None
        }
    };
    let port = match obj.get("port").map(port) {
        None => tls.map(|t| match t {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        }),
        Some(Ok(p)) => Some(p),
        Some(Err(rule)) => {
            report("port", rule);
            None
        }
    };
    let from = match obj.get("from").map(string) {
        None => {
            report("from", Rule::Missing);
            None
        }
        Some(Err(rule)) => {
            report("from", rule);
            None
        }
        Some(Ok(f)) => match f.parse::<lettre::message::Mailbox>() {
            Ok(_) => Some(f.to_string()),
            Err(e) => {
                report(
                    "from",
                    bad_notify(format!("not an e-mail address ({e}): {}", shown_str(f))),
                );
                None
            }
        },
    };
    let username = match obj.get("username").map(string) {
        None => None,
        Some(Ok(u)) if !u.is_empty() && !u.chars().any(char::is_control) => Some(u.to_string()),
        Some(Ok(_)) => {
            report(
                "username",
                bad_notify("must be a non-empty name without control characters"),
            );
            None
        }
        Some(Err(rule)) => {
            report("username", rule);
            None
        }
    };
    let password_file = match obj.get("password_file").map(path) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(rule)) => {
            report("password_file", rule);
            None
        }
    };
    let ca_file = match obj.get("ca_file").map(ca_file) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(rule)) => {
            report("ca_file", rule);
            None
        }
    };
    if username.is_some() != password_file.is_some() && sink.count() == before {
        sink.field(
            entry,
            at,
            bad_notify("`username` and `password_file` go together: give both or neither"),
        );
    }
    if sink.count() != before {
        return None;
    }
    Some(Smtp {
        host: host?,
        port: port?,
        from: from?,
        tls: tls?,
        username,
        password_file,
        ca_file,
    })
}

/// A `ca_file`: a readable file of PEM certificates (at least one), read
/// once here so that `vmail config check` names a missing or broken file.
fn ca_file(v: &Value) -> Result<PathBuf, Rule> {
    let p = path(v)?;
    let pem =
        std::fs::read(&p).map_err(|e| bad_notify(format!("cannot read {}: {e}", p.display())))?;
    match crate::notify::pem_certificates(&pem) {
        Ok(n) if n > 0 => Ok(p),
        Ok(_) => Err(bad_notify(format!(
            "{} holds no PEM certificate",
            p.display()
        ))),
        Err(e) => Err(bad_notify(format!("{}: {e}", p.display()))),
    }
}

/// One `ext.webhooks[i]`: every broken rule is reported.
fn webhook(v: &Value, at: &str, entry: &Entry, sink: &mut Sink) -> Option<Webhook> {
    const KEYS: &[&str] = &[
        "url",
        "secret",
        "secret_file",
        "domains",
        "events",
        "ca_file",
    ];
    let obj = match object(v) {
        Ok(o) => o,
        Err(rule) => {
            sink.field(entry, at, rule);
            return None;
        }
    };
    let before = sink.count();
    unknown_keys(obj, KEYS, at, entry, sink);
    let url = match obj.get("url").map(string) {
        None => {
            sink.field(entry, format!("{at}.url"), Rule::Missing);
            None
        }
        Some(Err(rule)) => {
            sink.field(entry, format!("{at}.url"), rule);
            None
        }
        Some(Ok(u)) => {
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                let host = r.split(['/', '?', '#']).next().unwrap_or("");
                !host.is_empty()
            }) && u.len() <= 2048
                && u.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                sink.field(
                    entry,
                    format!("{at}.url"),
                    Rule::BadUrl {
                        found: shown_str(u),
                    },
                );
            }
            ok.then(|| u.to_string())
        }
    };
    let secret = match (obj.get("secret"), obj.get("secret_file")) {
        (Some(s), None) => match string(s) {
            Ok(s) if s.len() >= 16 && s.len() <= 1024 && !s.chars().any(char::is_control) => {
                Some(WebhookSecret::Inline(s.to_string()))
            }
            Ok(_) => {
                sink.field(
                    entry,
                    format!("{at}.secret"),
                    bad_notify("must be 16 to 1024 characters without control characters"),
                );
                None
            }
            Err(rule) => {
                sink.field(entry, format!("{at}.secret"), rule);
                None
            }
        },
        (None, Some(p)) => match path(p) {
            Ok(p) => Some(WebhookSecret::File(p)),
            Err(rule) => {
                sink.field(entry, format!("{at}.secret_file"), rule);
                None
            }
        },
        _ => {
            sink.field(
                entry,
                at,
                bad_notify("needs exactly one of `secret` and `secret_file`"),
            );
            None
        }
    };
    let mut domains = Vec::new();
    if let Some(d) = obj.get("domains") {
        match list(d) {
            Ok(items) => for_each(items, &format!("{at}.domains"), entry, sink, |item| {
                let s = string(item)?;
                let d = normalize_domain(s).map_err(|error| Rule::BadDomain {
                    domain: s.to_string(),
                    error,
                })?;
                if !domains.contains(&d) {
                    domains.push(d);
                }
                Ok(())
            }),
            Err(rule) => sink.field(entry, format!("{at}.domains"), rule),
        }
    }
    let mut events = Vec::new();
    if let Some(e) = obj.get("events") {
        match list(e) {
            Ok(items) => for_each(items, &format!("{at}.events"), entry, sink, |item| {
                let s = string(item)?;
                if !WEBHOOK_EVENTS.contains(&s) {
                    return Err(bad_notify(format!(
                        "unknown event {}; known: {}",
                        shown_str(s),
                        WEBHOOK_EVENTS.join(", ")
                    )));
                }
                if !events.iter().any(|x| x == s) {
                    events.push(s.to_string());
                }
                Ok(())
            }),
            Err(rule) => sink.field(entry, format!("{at}.events"), rule),
        }
    }
    let ca_file = match obj.get("ca_file").map(ca_file) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(rule)) => {
            sink.field(entry, format!("{at}.ca_file"), rule);
            None
        }
    };
    if sink.count() != before {
        return None;
    }
    Some(Webhook {
        url: url?,
        secret: secret?,
        domains,
        events,
        ca_file,
    })
}

fn non_empty_list(v: &Value) -> Result<&Vec<Value>, Rule> {
    let items = list(v)?;
    if items.is_empty() {
        return Err(Rule::EmptyList);
    }
    Ok(items)
}

/// Run `f` on each element, reporting a failure under `field[i]`.
fn for_each(
    items: &[Value],
    field: &str,
    entry: &Entry,
    sink: &mut Sink,
    mut f: impl FnMut(&Value) -> Result<(), Rule>,
) {
    for (i, item) in items.iter().enumerate() {
        if let Err(rule) = f(item) {
            sink.field(entry, format!("{field}[{i}]"), rule);
        }
    }
}

fn path(v: &Value) -> Result<PathBuf, Rule> {
    let s = string(v)?;
    if s.is_empty() {
        return Err(Rule::EmptyPath);
    }
    Ok(PathBuf::from(s))
}

fn demo_mailbox(v: &Value, at: &str, entry: &Entry, sink: &mut Sink) -> Option<DemoMailbox> {
    const KEYS: &[&str] = &["user", "domain", "pin"];
    let obj = match object(v) {
        Ok(obj) => obj,
        Err(rule) => {
            sink.field(entry, at, rule);
            return None;
        }
    };
    let before = sink.count();
    for k in obj.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        let suggestion = suggest(k, KEYS);
        sink.field(entry, format!("{at}.{k}"), Rule::UnknownKey { suggestion });
    }
    let mut get = |key: &str, check: &dyn Fn(&Value) -> Result<String, Rule>| match obj.get(key) {
        None => {
            sink.field(entry, format!("{at}.{key}"), Rule::Missing);
            None
        }
        Some(v) => check(v)
            .map_err(|rule| sink.field(entry, format!("{at}.{key}"), rule))
            .ok(),
    };
    let user = get("user", &|v| {
        let s = string(v)?;
        if is_sip_user(s) {
            Ok(s.to_string())
        } else {
            Err(Rule::BadSipUser { found: shown(v) })
        }
    });
    let domain = get("domain", &|v| {
        let s = string(v)?;
        normalize_domain(s).map_err(|error| Rule::BadDomain {
            domain: s.to_string(),
            error,
        })
    });
    let pin = get("pin", &|v| {
        let s = string(v)?;
        if (4..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_string())
        } else {
            Err(Rule::BadPin)
        }
    });
    if sink.count() != before {
        return None;
    }
    Some(DemoMailbox {
        user: user?,
        domain: domain?,
        pin: pin?,
    })
}

/// A language code usable as a folder name: `en`, `ru`, `en-US`, `pt_BR`.
fn is_language(s: &str) -> bool {
    let (primary, region) = match s.find(['-', '_']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region
        .is_none_or(|r| (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    primary_ok && region_ok
}

/// A SIP user part that is also safe as a file name: letters, digits and
/// `- _ . ! ~ * +`, 1 to 64 characters, not beginning with `.`.
pub(super) fn is_sip_user(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*+".contains(&b))
}

/// An `mwi_notify` target: a `sip:` URI with a host, over UDP (no
/// `transport` parameter, or `transport=udp`).
fn is_mwi_target(s: &str) -> bool {
    if !is_sip_uri(s) || !s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        return false;
    }
    s.split(';').skip(1).all(|param| {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        !name.trim().eq_ignore_ascii_case("transport") || value.trim().eq_ignore_ascii_case("udp")
    })
}

/// `UTC`/`Z`, a fixed offset `+HH:MM` / `-HH:MM` or an IANA zone name
/// (see [`TimeZone::parse`]).
pub fn parse_timezone(s: &str) -> Option<TimeZone> {
    TimeZone::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> (Option<Ext>, Vec<String>) {
        let mut sink = Sink::default();
        let entry = Entry::Role {
            index: 0,
            name: Some("vmail1".into()),
        };
        let ext = parse_ext(Some(&v), &entry, &mut sink);
        (ext, sink.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_match_the_spec() {
        let (ext, errs) = run(json!({}));
        assert!(errs.is_empty());
        let ext = ext.unwrap();
        assert_eq!(ext, Ext::default());
        assert_eq!(ext.sip_port, 5060);
        assert_eq!(ext.sip_transports, [SipTransport::Udp, SipTransport::Tcp]);
        assert_eq!((ext.rtp_port_min, ext.rtp_port_max), (20000, 39999));
        assert_eq!(ext.http_port, 8080);
        assert_eq!(ext.siteshare, PathBuf::from("./var/siteshare"));
        assert_eq!(ext.prompts, PathBuf::from("./prompts"));
        assert_eq!(ext.language, "en");
        assert_eq!(ext.access_numbers, ["*98", "voicemail"]);
        assert!(!ext.auto_create_mailboxes);
        assert_eq!((ext.max_message_seconds, ext.min_message_seconds), (180, 1));
        assert_eq!((ext.silence_seconds, ext.max_messages), (10, 100));
        assert!(ext.api_tokens.is_empty() && ext.mwi_notify.is_empty());
        assert_eq!((ext.mwi_min_expires, ext.mwi_max_expires), (60, 3600));
        assert_eq!((ext.max_calls, ext.media_timeout_seconds), (2000, 30));
        assert_eq!(ext.greeting_cache_bytes, 64 << 20);
        assert_eq!((ext.media_lag_limit_ms, ext.media_lag_hold_ms), (0, 1000));
        assert_eq!(ext.lease_ms, 3000);
        assert_eq!((ext.lockout_failures, ext.lockout_seconds), (5, 300));
        assert_eq!((ext.pin_hash_workers, ext.pin_hash_queue), (0, 64));
        assert_eq!(
            (ext.access_rate_burst, ext.access_rate_per_minute),
            (10, 60)
        );
        assert_eq!(ext.time_zone(), TimeZone::UTC);
        assert!(ext.demo_mailboxes.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let (ext, errs) = run(json!({
            "sip_port": 5070, "sip_transports": ["TCP"], "rtp_port_min": 30000,
            "rtp_port_max": 30001, "http_port": 8081, "siteshare": "/srv/share",
            "prompts": "/srv/prompts", "language": "ru", "access_numbers": ["*86"],
            "auto_create_mailboxes": true, "max_message_seconds": 60,
            "min_message_seconds": 0, "silence_seconds": 5, "max_messages": 10,
            "api_tokens": ["abc"], "mwi_notify": ["sip:proxy.example.ru:5060;transport=udp"],
            "mwi_min_expires": 30, "mwi_max_expires": 7200,
            "max_calls": 10, "media_timeout_seconds": 5, "lease_ms": 1000,
            "greeting_cache_bytes": 0, "media_lag_limit_ms": 50, "media_lag_hold_ms": 3000,
            "lockout_failures": 3, "lockout_seconds": 60, "timezone": "+03:00",
            "demo_mailboxes": [{"user": "1001", "domain": "Example.RU.", "pin": "1234"}],
            "answer_delay_ms": 1500, "pin_hash_workers": 3, "pin_hash_queue": 7,
            "access_rate_burst": 0, "access_rate_per_minute": 120,
            "coordination": {"backend": "etcd", "endpoints": ["http://10.0.0.1:2379"]},
            "web_session_seconds": 900,
            "retention": {"old_days": 30, "domains": {"example.ru": {"old_days": 7}}},
            "retention_interval_minutes": 15,
            "sites_timeout_ms": 1500, "sites_max_requests": 8, "sites_refresh_seconds": 120,
            "smtp": {"host": "smtp.example.ru", "from": "vmail@example.ru"},
            "webhooks": [{"url": "https://hooks.example.ru/vm", "secret_file": "/etc/vmail/hook"}],
            "notify_give_up_hours": 24, "notify_delay_ms": 10, "notify_retry_ms": 500,
            "notify_retry_max_seconds": 60, "email_link_template": "https://x/{id}",
            "email_subject_template": "VM {caller}", "email_body_template": "{duration}"
        }));
        assert!(errs.is_empty(), "{errs:?}");
        let ext = ext.unwrap();
        assert_eq!(ext.sip_transports, [SipTransport::Tcp]);
        assert_eq!(ext.demo_mailboxes[0].domain, "example.ru");
        assert_eq!(
            ext.time_zone()
                .offset_at(time::OffsetDateTime::UNIX_EPOCH)
                .whole_hours(),
            3
        );
        // every known key was exercised
        assert_eq!(ext.answer_delay_ms, 1500);
        assert_eq!(ext.greeting_cache_bytes, 0);
        assert_eq!((ext.media_lag_limit_ms, ext.media_lag_hold_ms), (50, 3000));
        assert_eq!((ext.pin_hash_workers, ext.pin_hash_queue), (3, 7));
        assert_eq!(
            (ext.access_rate_burst, ext.access_rate_per_minute),
            (0, 120)
        );
        assert_eq!((ext.mwi_min_expires, ext.mwi_max_expires), (30, 7200));
        assert_eq!(
            ext.coordination,
            Coordination::Etcd {
                endpoints: vec!["http://10.0.0.1:2379".into()],
                prefix: "/vmail".into()
            }
        );
        assert_eq!(ext.web_session_seconds, 900);
        assert_eq!(ext.retention.for_mailbox("example.ru", None).old, 7);
        assert_eq!(ext.retention.for_mailbox("other.ru", None).old, 30);
        assert_eq!(ext.retention_interval_minutes, 15);
        let smtp = ext.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, SmtpTls::StartTls));
        assert_eq!(
            ext.webhooks[0].secret,
            WebhookSecret::File("/etc/vmail/hook".into())
        );
        assert_eq!(
            (
                ext.notify_give_up_hours,
                ext.notify_delay_ms,
                ext.notify_retry_ms
            ),
            (24, 10, 500)
        );
        assert_eq!(ext.notify_retry_max_seconds, 60);
        assert!(ext.email_link_template.is_some() && ext.email_body_template.is_some());
        assert!(ext.email_subject_template.is_some());
        assert_eq!(
            (
                ext.sites_timeout_ms,
                ext.sites_max_requests,
                ext.sites_refresh_seconds
            ),
            (1500, 8, 120)
        );
        assert_eq!(EXT_KEYS.len(), 62);
    }

    #[test]
    fn review_and_operator_keys() {
        let ext = Ext::default();
        assert!(!ext.review && ext.operator_keeps_recording);
        assert_eq!(ext.operator_uri.for_domain("a.ru"), None);

        let (ext, errs) = run(json!({
            "review": true,
            "operator_keeps_recording": false,
            "operator_uri": "sip:operator@pbx.example.com"
        }));
        assert!(errs.is_empty(), "{errs:?}");
        let ext = ext.unwrap();
        assert!(ext.review && !ext.operator_keeps_recording);
        assert_eq!(
            ext.operator_uri.for_domain("any.ru"),
            Some("sip:operator@pbx.example.com")
        );

        let (ext, errs) = run(json!({"operator_uri": {
            "Example.COM": "sip:0@pbx.example.com",
            "*": "sip:desk@pbx.example.net"
        }}));
        assert!(errs.is_empty(), "{errs:?}");
        let ops = ext.unwrap().operator_uri;
        assert_eq!(ops.for_domain("example.com"), Some("sip:0@pbx.example.com"));
        assert_eq!(ops.for_domain("other.ru"), Some("sip:desk@pbx.example.net"));

        for (bad, says) in [
            (json!({"operator_uri": "tel:+100"}), "sip: or sips: URI"),
            (
                json!({"operator_uri": {"a.ru": "http://x"}}),
                "operator_uri.a.ru",
            ),
            (
                json!({"operator_uri": {"a..ru": "sip:o@a.ru"}}),
                "valid domain",
            ),
            (json!({"operator_uri": 5}), "operator_uri"),
            (json!({"review": "yes"}), "true or false"),
        ] {
            let (_, errs) = run(bad.clone());
            assert!(errs.iter().any(|e| e.contains(says)), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn notification_settings_report_every_error_at_once() {
        assert_eq!(Ext::default().notify_give_up_hours, 48);
        assert!(Ext::default().smtp.is_none() && Ext::default().webhooks.is_empty());
        let (ext, errs) = run(json!({
            "smtp": {"host": "", "port": 0, "from": "not an address", "tls": "ssl",
                     "username": "u", "pasword_file": "/x"},
            "webhooks": [
                {"url": "ftp://x", "secret": "short", "events": ["message.played"]},
                {"url": "http://ok.example/", "domains": ["bad..domain"]},
                "nope"
            ],
            "notify_give_up_hours": 0
        }));
        assert!(ext.is_none());
        let all = errs.join("\n");
        for field in [
            "ext.smtp.host",
            "ext.smtp.port",
            "ext.smtp.from",
            "ext.smtp.tls",
            "ext.smtp.pasword_file",
            "ext.webhooks[0].url",
            "ext.webhooks[0].secret",
            "ext.webhooks[0].events[0]",
            "ext.webhooks[1]`",
            "ext.webhooks[1].domains[0]",
            "ext.webhooks[2]",
            "ext.notify_give_up_hours",
        ] {
            assert!(all.contains(field), "{field} not reported:\n{all}");
        }
        let (ext, errs) = run(json!({
            "smtp": {"host": "127.0.0.1", "port": 2525, "from": "Voicemail <vm@example.ru>",
                     "tls": "implicit", "username": "vm", "password_file": "/etc/vmail/smtp"},
            "webhooks": [{"url": "http://127.0.0.1:9000/h", "secret": "0123456789abcdef",
                          "domains": ["Example.RU"], "events": ["mailbox.locked"]}]
        }));
        assert!(errs.is_empty(), "{errs:?}");
        let ext = ext.unwrap();
        assert_eq!(ext.smtp.unwrap().tls, SmtpTls::Implicit);
        let w = &ext.webhooks[0];
        assert!(w.wants("mailbox.locked", "example.ru"));
        assert!(!w.wants("message.created", "example.ru"));
        assert!(!w.wants("mailbox.locked", "other.ru"));
    }

    #[test]
    fn a_ca_file_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let (ext, errs) = run(json!({
            "smtp": {"host": "127.0.0.1", "from": "vm@example.ru", "ca_file": missing},
            "webhooks": [{"url": "https://127.0.0.1:9000/h", "secret": "0123456789abcdef",
                          "ca_file": empty}]
        }));
        assert!(ext.is_none());
        let all = errs.join("\n");
        assert!(
            all.contains("ext.smtp.ca_file") && all.contains("cannot read"),
            "{all}"
        );
        assert!(
            all.contains("ext.webhooks[0].ca_file") && all.contains("no PEM certificate"),
            "{all}"
        );
    }

    #[test]
    fn coordination_is_siteshare_or_etcd() {
        assert_eq!(Ext::default().coordination, Coordination::SiteShare);
        for ok in [json!("siteshare"), json!({"backend": "siteshare"})] {
            let (ext, errs) = run(json!({ "coordination": ok }));
            assert!(errs.is_empty(), "{errs:?}");
            assert_eq!(ext.unwrap().coordination, Coordination::SiteShare);
        }
        let (ext, errs) = run(json!({"coordination": {"backend": "etcd",
            "endpoints": ["http://a:2379", "http://b:2379"], "prefix": "/site1/"}}));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            ext.unwrap().coordination,
            Coordination::Etcd {
                endpoints: vec!["http://a:2379".into(), "http://b:2379".into()],
                prefix: "/site1".into()
            }
        );
        for bad in [
            json!("etcd"),
            json!(7),
            json!({"backend": "zookeeper"}),
            json!({"backend": "etcd"}),
            json!({"backend": "etcd", "endpoints": []}),
            json!({"backend": "etcd", "endpoints": ["a:2379"]}),
            json!({"backend": "etcd", "endpoints": ["https://a:2379"]}),
            json!({"backend": "etcd", "endpoints": ["http://a:2379"], "tls": true}),
            json!({"backend": "siteshare", "endpoints": ["http://a:2379"]}),
        ] {
            let (_, errs) = run(json!({ "coordination": bad.clone() }));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert!(errs[0].to_string().contains("coordination"), "{}", errs[0]);
        }
    }

    #[test]
    fn tcp_limits_have_defaults_and_ranges() {
        let d = Ext::default();
        assert_eq!(
            (d.tcp_max_connections, d.tcp_max_connections_per_address),
            (8192, 64)
        );
        assert_eq!((d.tcp_idle_seconds, d.tcp_message_seconds), (300, 10));
        let (ext, errs) = run(json!({
            "tcp_max_connections": 100, "tcp_max_connections_per_address": 5,
            "tcp_idle_seconds": 60, "tcp_message_seconds": 2
        }));
        assert!(errs.is_empty(), "{errs:?}");
        let ext = ext.unwrap();
        assert_eq!(
            (ext.tcp_max_connections, ext.tcp_max_connections_per_address),
            (100, 5)
        );
        assert_eq!((ext.tcp_idle_seconds, ext.tcp_message_seconds), (60, 2));
        for bad in [
            json!({"tcp_max_connections": 0}),
            json!({"tcp_max_connections_per_address": 0}),
            json!({"tcp_idle_seconds": 0}),
            json!({"tcp_message_seconds": 3601}),
        ] {
            let (ext, errs) = run(bad.clone());
            assert!(ext.is_none() && errs.len() == 1, "{bad}: {errs:?}");
        }
    }

    #[test]
    fn web_sessions_expire_after_a_bounded_idle_time() {
        assert_eq!(Ext::default().web_session_seconds, 1800);
        let (ext, errs) = run(json!({"web_session_seconds": 86400}));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(ext.unwrap().web_session_seconds, 86400);
        for bad in [
            json!({"web_session_seconds": 9}),
            json!({"web_session_seconds": 86401}),
            json!({"web_session_seconds": "1800"}),
        ] {
            let (ext, errs) = run(bad.clone());
            assert!(ext.is_none() && errs.len() == 1, "{bad}: {errs:?}");
        }
    }

    #[test]
    fn sites_limits_have_defaults_and_ranges() {
        let d = Ext::default();
        assert_eq!(
            (
                d.sites_timeout_ms,
                d.sites_max_requests,
                d.sites_refresh_seconds
            ),
            (2000, 16, 60)
        );
        let (ext, errs) = run(
            json!({"sites_timeout_ms": 500, "sites_max_requests": 4, "sites_refresh_seconds": 30}),
        );
        assert!(errs.is_empty(), "{errs:?}");
        let ext = ext.unwrap();
        assert_eq!(
            (
                ext.sites_timeout_ms,
                ext.sites_max_requests,
                ext.sites_refresh_seconds
            ),
            (500, 4, 30)
        );
        for bad in [
            json!({"sites_timeout_ms": 99}),
            json!({"sites_timeout_ms": 60_001}),
            json!({"sites_max_requests": 0}),
            json!({"sites_max_requests": 1025}),
            json!({"sites_refresh_seconds": 4}),
            json!({"sites_refresh_seconds": "60"}),
        ] {
            let (ext, errs) = run(bad.clone());
            assert!(ext.is_none() && errs.len() == 1, "{bad}: {errs:?}");
        }
    }

    #[test]
    fn retention_is_off_by_default_and_validated() {
        let d = Ext::default();
        assert!(d.retention.is_off());
        assert_eq!(d.retention_interval_minutes, 60);
        for bad in [
            json!({"retention_interval_minutes": 0}),
            json!({"retention_interval_minutes": 1441}),
            json!({"retention": {"old_days": 36501}}),
            json!({"retention": "30"}),
        ] {
            let (ext, errs) = run(bad.clone());
            assert!(ext.is_none() && errs.len() == 1, "{bad}: {errs:?}");
        }
        // Every error of the object at once.
        let (ext, errs) = run(json!({"retention": {"old_days": -1, "inbox": 3,
            "domains": {"a..b": {}, "c.ru": {"old_days": "x"}}}}));
        assert!(ext.is_none());
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    #[test]
    fn a_list_merges_in_order() {
        let (ext, errs) = run(json!([{"sip_port": 5070, "http_port": 8081}, {"sip_port": 5080}]));
        assert!(errs.is_empty());
        let ext = ext.unwrap();
        assert_eq!((ext.sip_port, ext.http_port), (5080, 8081));
    }

    #[test]
    fn a_bad_list_element_is_named() {
        let (ext, errs) = run(json!([{"sip_port": 5070}, 7, {"sip_port": "x"}]));
        assert!(ext.is_none());
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("field `ext[1]`: must be an object"),
            "{errs:?}"
        );
        assert!(errs[1].contains("field `ext[2].sip_port`"), "{errs:?}");
    }

    #[test]
    fn unknown_keys_and_typos() {
        let (_, errs) = run(json!({"sip_prot": 1, "colour": 2}));
        assert_eq!(errs.len(), 2);
        assert!(errs
            .iter()
            .any(|e| e.contains("`ext.sip_prot`: unknown key (did you mean `sip_port`?)")));
        assert!(errs
            .iter()
            .any(|e| e.ends_with("`ext.colour`: unknown key")));
    }

    #[test]
    fn sanity_rules() {
        let cases = [
            (
                json!({"rtp_port_min": 30000, "rtp_port_max": 30000}),
                "at least 2 ports",
            ),
            (
                json!({"rtp_port_min": 30001, "rtp_port_max": 30000}),
                "at least 2 ports",
            ),
            (json!({"sip_port": 0}), "from 1 to 65535"),
            (json!({"http_port": 70000}), "from 1 to 65535"),
            (
                json!({"min_message_seconds": 10, "max_message_seconds": 5}),
                "must not exceed",
            ),
            (json!({"sip_transports": []}), "must not be empty"),
            (json!({"sip_transports": ["tls"]}), "\"udp\" or \"tcp\""),
            (json!({"language": "../etc"}), "language code"),
            (json!({"language": "EN"}), "language code"),
            (json!({"codecs": []}), "must not be empty"),
            (json!({"codecs": ["opus", "iLBC"]}), "codecs[1]"),
            (json!({"codecs": "opus"}), "list"),
            (json!({"access_numbers": []}), "must not be empty"),
            (json!({"access_numbers": [""]}), "access_numbers[0]"),
            (
                json!({"access_numbers": ["*98", "a b"]}),
                "access_numbers[1]",
            ),
            (json!({"access_numbers": ["../x"]}), "access_numbers[0]"),
            (json!({"api_tokens": ["has space"]}), "visible ASCII"),
            (json!({"mwi_notify": ["http://x"]}), "sip: URI over UDP"),
            (
                json!({"mwi_notify": ["sips:pbx.example.com"]}),
                "sip: URI over UDP",
            ),
            (
                json!({"mwi_notify": ["sip:pbx.example.com;transport=tcp"]}),
                "sip: URI over UDP",
            ),
            (
                json!({"mwi_min_expires": 600, "mwi_max_expires": 300}),
                "mwi_min_expires (600) must not exceed",
            ),
            (json!({"timezone": "Mars/Olympus_Mons"}), "IANA zone name"),
            (json!({"timezone": "+25:00"}), "IANA zone name"),
            (json!({"siteshare": ""}), "non-empty path"),
            (json!({"sip_port": 20000}), "inside the RTP port range"),
            (json!({"http_port": 5060}), "equals sip_port"),
            (json!({"sip_tls_port": 5061}), "tls_cert`: is required"),
            (
                json!({"sip_tls_port": 5061, "tls_cert": "/nonexistent/c.pem"}),
                "tls_key`: is required",
            ),
            (
                json!({"sip_tls_port": 5061, "tls_cert": "/nonexistent/c.pem", "tls_key": "/nonexistent/k.pem"}),
                "cannot read certificate file /nonexistent/c.pem",
            ),
            (
                json!({"sip_tls_port": 5060, "tls_cert": "/nonexistent/c.pem", "tls_key": "/nonexistent/k.pem"}),
                "already taken by sip_port or http_port",
            ),
            (json!({"tls_cert": ""}), "non-empty path"),
            (json!({"http_tls": true}), "tls_cert`: is required"),
            (json!({"http_tls": 1}), "true or false"),
            (
                json!({"http_tls": true, "tls_cert": "/nonexistent/c.pem", "tls_key": "/nonexistent/k.pem"}),
                "cannot read certificate file /nonexistent/c.pem",
            ),
            (json!({"srtp_over_insecure": "yes"}), "true or false"),
            (json!({"lease_ms": 100}), "from 500 to 600000"),
            (json!({"auto_create_mailboxes": "yes"}), "true or false"),
            (
                json!({"demo_mailboxes": [{"user": "1001", "domain": "a..b", "pin": "1"}]}),
                "4 to 16 digits",
            ),
            (
                json!({"demo_mailboxes": [{"user": "1001", "domain": "a.ru", "pin": "1234", "pn": 1}]}),
                "unknown key",
            ),
            (
                json!({"demo_mailboxes": [{"user": "1", "domain": "a.ru", "pin": "1234"}, {"user": "1", "domain": "A.ru", "pin": "5678"}]}),
                "listed twice",
            ),
            (json!("sip_port"), "an object or a list of objects"),
        ];
        for (v, expect) in cases {
            let (ext, errs) = run(v.clone());
            assert!(ext.is_none(), "{v} passed");
            assert!(errs.iter().any(|e| e.contains(expect)), "{v}: {errs:?}");
        }
        // SIP over UDP only: http_port may equal sip_port
        let (ext, errs) = run(json!({"sip_transports": ["udp"], "http_port": 5060}));
        assert!(ext.is_some(), "{errs:?}");
        // SIP over TCP only: sip_port may lie inside the (UDP) RTP range
        let (ext, errs) = run(json!({"sip_transports": ["tcp"], "sip_port": 20000}));
        assert!(ext.is_some(), "{errs:?}");
    }

    #[test]
    fn codecs_restrict_and_order() {
        use crate::media::Codec;
        let (ext, errors) = run(json!({"codecs": ["G722", "pcmu", "G722"]}));
        assert!(errors.is_empty(), "{errors:?}");
        let ext = ext.unwrap();
        assert_eq!(ext.codecs, vec![Codec::G722, Codec::Pcmu]);
        assert!(ext.codecs_ordered);
        let d = Ext::default();
        assert_eq!(d.codecs.len(), 5);
        assert!(!d.codecs_ordered);
    }

    #[test]
    fn languages_and_users() {
        for ok in ["en", "ru", "en-US", "pt_BR", "deu"] {
            assert!(is_language(ok), "{ok}");
        }
        for bad in ["", "e", "english", "en/", "en-", "..", "en-US-x"] {
            assert!(!is_language(bad), "{bad}");
        }
        for ok in ["*98", "voicemail", "1001", "+74951234567", "a.b"] {
            assert!(is_sip_user(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".x", "a/b", "a@b", "a b", "#1"] {
            assert!(!is_sip_user(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn sip_uri_check_never_panics(rest in "[ -~]{0,40}", scheme in "(sip|sips|SIP|tel):") {
            let _ = is_sip_uri(&format!("{scheme}{rest}"));
        }

        #[test]
        fn timezone_check_never_panics(s in "\\PC{0,8}") {
            let _ = parse_timezone(&s);
        }
    }
}
