//! `/metrics` of the real binary: Prometheus text (version 0.0.4) whose
//! counters equal the calls a test made (sipp deposits and a refused
//! INVITE).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

/// Deposits the test makes.
const DEPOSITS: usize = 3;

/// One sample: series name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The metrics of one scrape.
struct Scrape {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// The value of the series `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape"))
    }
}

/// A strict parser of the Prometheus text format 0.0.4: every family has
/// one `# HELP` and one `# TYPE` line before its samples, every sample
/// belongs to a family of a known type, names and label names are valid,
/// label values are quoted with the format's escapes, values are numbers,
/// and no series appears twice.
fn parse(text: &str) -> Scrape {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut seen: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name), "HELP of {name:?}");
            assert!(helps.insert(name.to_owned()), "two HELP lines for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "TYPE of {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "type {kind:?} of {name}"
            );
            assert!(helps.contains(name), "TYPE of {name} before its HELP");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "two TYPE lines for {name}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        assert!(!line.is_empty(), "empty line in the exposition");
        let (name, labels, value) = parse_sample(line);
        let family = family_of(&name, &types)
            .unwrap_or_else(|| panic!("sample {name} of no TYPEd family: {line}"));
        if types[&family] == "counter" {
            assert!(value >= 0.0, "negative counter: {line}");
        }
        assert!(
            seen.insert((name.clone(), labels.clone())),
            "series twice: {line}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    Scrape { samples, types }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The family a sample line belongs to (a histogram's `_bucket`, `_sum`
/// and `_count` belong to the histogram).
fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_owned());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        matches!(types.get(base).map(String::as_str), Some("histogram")).then(|| base.to_owned())
    })
}

/// `name{k="v",...} value`.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let end = line.find(['{', ' ']).expect("a sample name");
    let name = &line[..end];
    assert!(valid_name(name), "sample name {name:?}");
    let mut labels = BTreeMap::new();
    let mut rest = &line[end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed;
        loop {
            // A label name, '=', a quoted value; then ',' or '}'.
            let mut key = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == '=' {
                    break;
                }
                key.push(c);
                chars.next();
            }
            if key.is_empty() {
                if let Some((i, '}')) = chars.next() {
                    consumed = i + 1;
                    break;
                }
                panic!("bad label list: {line}");
            }
            assert!(
                valid_name(&key) && !key.contains(':'),
                "label {key:?}: {line}"
            );
            assert_eq!(chars.next().map(|(_, c)| c), Some('='), "{line}");
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}: {line}"),
                    },
                    Some('\n') | None => panic!("unterminated label value: {line}"),
                    Some(c) => value.push(c),
                }
            }
            assert!(
                labels.insert(key.clone(), value).is_none(),
                "label {key} twice: {line}"
            );
            match chars.next() {
                Some((_, ',')) => {
                    // A trailing comma before '}' is allowed.
                    if let Some(&(i, '}')) = chars.peek() {
                        consumed = i + 1;
                        break;
                    }
                }
                Some((i, '}')) => {
                    consumed = i + 1;
                    break;
                }
                _ => panic!("bad label list: {line}"),
            }
        }
        rest = &after[consumed..];
    }
    let rest = rest.strip_prefix(' ').expect("a space before the value");
    let mut fields = rest.split(' ');
    let value = fields.next().expect("a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("value {v:?} is not a number: {line}")),
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad timestamp: {line}"));
    }
    assert!(fields.next().is_none(), "trailing fields: {line}");
    (name.to_owned(), labels, value)
}

/// `GET path` over HTTP/1.1 on a plain TCP connection: status, headers
/// (lower-case names), body (chunked transfer decoded).
fn http_get11(addr: SocketAddr, path: &str) -> Option<(u16, HashMap<String, String>, String)> {
    let wait = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, wait).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.set_write_timeout(Some(wait)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.take(16 * 1024 * 1024).read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8(raw[..split].to_vec()).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some((status, headers, String::from_utf8(body).ok()?))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// A scrape of `/metrics`, checked for status, content type and syntax.
fn scrape(v: &Vmail) -> Scrape {
    let (status, headers, body) =
        http_get11(v.http_addr(), "/metrics").expect("GET /metrics answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some(vmail::metrics::CONTENT_TYPE)
    );
    parse(&body)
}

/// Families present from the start: no labels, or fixed label values.
const FIXED_FAMILIES: &[(&str, &str)] = &[
    ("vmail_calls_active", "gauge"),
    ("vmail_calls_total", "counter"),
    ("vmail_messages_stored_total", "counter"),
    ("vmail_messages_discarded_total", "counter"),
    ("vmail_messages_failed_total", "counter"),
    ("vmail_messages_recovered_total", "counter"),
    ("vmail_recorded_seconds_total", "counter"),
    ("vmail_rtp_received_total", "counter"),
    ("vmail_rtp_lost_total", "counter"),
    ("vmail_rtp_late_total", "counter"),
    ("vmail_rtp_ignored_total", "counter"),
    ("vmail_rtp_sent_total", "counter"),
    ("vmail_rtp_send_errors_total", "counter"),
    ("vmail_dtmf_digits_total", "counter"),
    ("vmail_mwi_notify_total", "counter"),
    ("vmail_invite_answer_seconds", "histogram"),
];

/// Families that appear with their first sample (label values seen).
const LABELLED_FAMILIES: &[(&str, &str)] = &[
    ("vmail_calls_refused_total", "counter"),
    ("vmail_sip_requests_total", "counter"),
    ("vmail_sip_responses_total", "counter"),
];

fn check_types(m: &Scrape, families: &[(&str, &str)]) {
    for (name, kind) in families {
        assert_eq!(
            m.types.get(*name).map(String::as_str),
            Some(*kind),
            "family {name}"
        );
    }
}

#[test]
fn metrics_count_the_calls_made() {
    let demo = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| ext["demo_mailboxes"] = demo)
        .start();
    // A short greeting: recording starts about half a second after the
    // answer (100 ms greeting, 400 ms beep).
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("store");
    let id = MailboxId::new("1001", DOMAIN).expect("mailbox id");
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .expect("greeting");

    // Before any call: the families without variable labels are there,
    // at zero.
    let before = scrape(&v);
    check_types(&before, FIXED_FAMILIES);
    assert_eq!(
        before.value("vmail_calls_total", &[("kind", "deposit")]),
        0.0
    );
    assert_eq!(before.value("vmail_messages_stored_total", &[]), 0.0);
    assert_eq!(
        before.get("vmail_sip_requests_total", &[("method", "INVITE")]),
        None
    );

    // DEPOSITS deposits at once, and one INVITE for a mailbox that does
    // not exist.
    let mut children = Vec::new();
    for _ in 0..DEPOSITS {
        let sipp = Sipp::uac("deposit.xml", v.sip_addr())
            .mailbox("1001")
            .hold_ms(3000);
        let Some(child) = sipp.spawn() else { return };
        children.push(child);
    }
    let refused = Sipp::uac("expect_status.xml", v.sip_addr())
        .mailbox("9999")
        .set("expected", "404");
    let Some(refused) = refused.run() else { return };
    refused.assert_success("expect_status.xml 9999 → 404");
    for child in children {
        child.wait().assert_success("deposit.xml");
    }
    let inbox = v.mailbox_dir("1001", DOMAIN).join("INBOX");
    let wavs = wait_for_files(&inbox, ".wav", DEPOSITS, Duration::from_secs(20));
    let stored_seconds: f64 = wavs
        .iter()
        .map(|wav| {
            let meta: Value = serde_json::from_str(
                &fs::read_to_string(wav.with_extension("json")).expect("metadata"),
            )
            .expect("metadata is JSON");
            meta["duration_ms"].as_f64().expect("duration_ms") / 1000.0
        })
        .sum();

    // The calls' counts are folded in when they end: wait until none is
    // in progress.
    let m = wait_for(Duration::from_secs(20), "the calls to end", || {
        let m = scrape(&v);
        (m.value("vmail_calls_active", &[("kind", "deposit")]) == 0.0
            && m.value("vmail_messages_stored_total", &[]) == DEPOSITS as f64)
            .then_some(m)
    });
    check_types(&m, FIXED_FAMILIES);
    check_types(&m, LABELLED_FAMILIES);
    let n = DEPOSITS as f64;
    assert_eq!(m.value("vmail_calls_total", &[("kind", "deposit")]), n);
    assert_eq!(m.value("vmail_calls_total", &[("kind", "retrieval")]), 0.0);
    assert_eq!(m.value("vmail_calls_active", &[("kind", "retrieval")]), 0.0);
    assert_eq!(
        m.value("vmail_calls_refused_total", &[("reason", "no_mailbox")]),
        1.0
    );
    assert_eq!(m.value("vmail_messages_stored_total", &[]), n);
    assert_eq!(m.value("vmail_messages_discarded_total", &[]), 0.0);
    assert_eq!(m.value("vmail_messages_failed_total", &[]), 0.0);
    let recorded = m.value("vmail_recorded_seconds_total", &[]);
    assert!(
        (recorded - stored_seconds).abs() < 0.01,
        "recorded {recorded} s, the store holds {stored_seconds} s"
    );
    // One INVITE per call (sipp may retransmit one over UDP, never fewer).
    let invites = m.value("vmail_sip_requests_total", &[("method", "INVITE")]);
    assert!(invites >= n + 1.0, "{invites} INVITEs counted");
    assert_eq!(
        m.value(
            "vmail_sip_responses_total",
            &[("method", "INVITE"), ("code", "200")]
        ),
        n
    );
    assert_eq!(
        m.value(
            "vmail_sip_responses_total",
            &[("method", "INVITE"), ("code", "404")]
        ),
        1.0
    );
    assert!(m.value("vmail_sip_requests_total", &[("method", "ACK")]) >= n);
    assert!(m.value("vmail_sip_requests_total", &[("method", "BYE")]) >= n);
    assert_eq!(
        m.value(
            "vmail_sip_responses_total",
            &[("method", "BYE"), ("code", "200")]
        ),
        n
    );
    // Every call received the capture and heard its greeting and beep.
    let received = m.value("vmail_rtp_received_total", &[]);
    assert!(received >= n * 100.0, "{received} RTP packets received");
    let sent = m.value("vmail_rtp_sent_total", &[]);
    assert!(sent >= n * 20.0, "{sent} RTP packets sent");
    assert_eq!(m.value("vmail_invite_answer_seconds_count", &[]), n);
    assert_eq!(
        m.value("vmail_invite_answer_seconds_bucket", &[("le", "+Inf")]),
        n
    );
    assert_eq!(
        m.value("vmail_mwi_notify_total", &[("outcome", "failed")]),
        0.0
    );
}
