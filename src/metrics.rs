//! Process-wide counters and gauges, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every metric vmail exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Calls in progress (deposit).
    pub calls_active: Gauge,
    /// Deposit calls answered since start.
    pub calls_total: Counter,
    /// INVITEs refused for overload.
    pub calls_rejected_overload: Counter,
    /// Access-number INVITEs refused by the per-source rate limit.
    pub calls_rejected_rate_limit: Counter,
    /// Messages stored.
    pub messages_stored: Counter,
    /// Messages dropped as too short.
    pub messages_discarded: Counter,
    /// Recordings that failed in the store.
    pub messages_failed: Counter,
    /// Messages recovered from `tmp/` at start.
    pub messages_recovered: Counter,
    /// RTP packets received.
    pub rtp_received: Counter,
    /// RTP packets lost (gaps filled with silence).
    pub rtp_lost: Counter,
    /// RTP packets arriving too late for the jitter buffer.
    pub rtp_late: Counter,
    /// RTP packets ignored (wrong source, payload type, malformed).
    pub rtp_ignored: Counter,
    /// RTP packets sent (prompts).
    pub rtp_sent: Counter,
    /// RTP sends that failed.
    pub rtp_send_errors: Counter,
    /// SIP requests received.
    pub sip_requests: Counter,
    /// SIP final responses sent, by class.
    pub sip_responses_2xx: Counter,
    /// 3xx responses sent.
    pub sip_responses_3xx: Counter,
    /// 4xx responses sent.
    pub sip_responses_4xx: Counter,
    /// 5xx/6xx responses sent.
    pub sip_responses_5xx: Counter,
    /// MWI NOTIFYs answered with 2xx.
    pub mwi_notify_sent: Counter,
    /// MWI NOTIFYs refused or unanswered.
    pub mwi_notify_failed: Counter,
    /// HTTP API requests by route pattern and status.
    api_requests: std::sync::Mutex<std::collections::BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    /// Counts a final response by its status code.
    pub fn count_response(&self, code: u16) {
        match code {
            200..=299 => self.sip_responses_2xx.inc(),
            300..=399 => self.sip_responses_3xx.inc(),
            400..=499 => self.sip_responses_4xx.inc(),
            500..=699 => self.sip_responses_5xx.inc(),
            _ => {}
        }
    }

    /// Counts an MWI NOTIFY by its outcome: answered 2xx (`sent`), or
    /// refused / timed out.
    pub fn mwi_notify(&self, sent: bool) {
        if sent {
            self.mwi_notify_sent.inc();
        } else {
            self.mwi_notify_failed.inc();
        }
    }

    /// Counts an HTTP API request by its route pattern (`/api/v1/...` as
    /// routed, not the raw path) and response status.
    pub fn api_request(&self, route: &str, status: u16) {
        let mut map = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// The Prometheus text exposition of all metrics.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut g = |name: &str, help: &str, v: i64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        g(
            "vmail_calls_active",
            "Calls in progress.",
            self.calls_active.get(),
        );
        let counters: [(&str, &str, &Counter); 14] = [
            (
                "vmail_calls_total",
                "Deposit calls answered.",
                &self.calls_total,
            ),
            (
                "vmail_calls_rejected_overload_total",
                "INVITEs refused for overload.",
                &self.calls_rejected_overload,
            ),
            (
                "vmail_calls_rejected_rate_limit_total",
                "Access-number INVITEs refused by the per-source rate limit.",
                &self.calls_rejected_rate_limit,
            ),
            (
                "vmail_messages_stored_total",
                "Messages stored.",
                &self.messages_stored,
            ),
            (
                "vmail_messages_discarded_total",
                "Messages dropped as too short.",
                &self.messages_discarded,
            ),
            (
                "vmail_messages_failed_total",
                "Recordings the store could not take.",
                &self.messages_failed,
            ),
            (
                "vmail_messages_recovered_total",
                "Messages recovered from tmp/.",
                &self.messages_recovered,
            ),
            (
                "vmail_rtp_received_total",
                "RTP packets received.",
                &self.rtp_received,
            ),
            ("vmail_rtp_lost_total", "RTP packets lost.", &self.rtp_lost),
            (
                "vmail_rtp_late_total",
                "RTP packets too late for the jitter buffer.",
                &self.rtp_late,
            ),
            (
                "vmail_rtp_ignored_total",
                "RTP packets ignored.",
                &self.rtp_ignored,
            ),
            ("vmail_rtp_sent_total", "RTP packets sent.", &self.rtp_sent),
            (
                "vmail_rtp_send_errors_total",
                "RTP sends that failed.",
                &self.rtp_send_errors,
            ),
            (
                "vmail_sip_requests_total",
                "SIP requests received.",
                &self.sip_requests,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let _ = writeln!(
            s,
            "# HELP vmail_sip_responses_total SIP final responses sent by class.\n# TYPE vmail_sip_responses_total counter"
        );
        for (class, c) in [
            ("2xx", &self.sip_responses_2xx),
            ("3xx", &self.sip_responses_3xx),
            ("4xx", &self.sip_responses_4xx),
            ("5xx", &self.sip_responses_5xx),
        ] {
            let _ = writeln!(
                s,
                "vmail_sip_responses_total{{class=\"{class}\"}} {}",
                c.get()
            );
        }
        let _ = writeln!(
            s,
            "# HELP vmail_mwi_notify_total MWI NOTIFYs by outcome.\n# TYPE vmail_mwi_notify_total counter\n\
             vmail_mwi_notify_total{{outcome=\"sent\"}} {}\nvmail_mwi_notify_total{{outcome=\"failed\"}} {}",
            self.mwi_notify_sent.get(),
            self.mwi_notify_failed.get()
        );
        let _ = writeln!(
            s,
            "# HELP vmail_api_requests_total HTTP API requests by route and status.\n# TYPE vmail_api_requests_total counter"
        );
        let map = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in map.iter() {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                s,
                "vmail_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        s
    }
}
