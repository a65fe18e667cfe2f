//! Process-wide metrics on `prometheus-client`, rendered in the Prometheus
//! text format (version 0.0.4, [`CONTENT_TYPE`]).
//!
//! Counters of the per-packet path (RTP received, ignored, lost, late,
//! sent; DTMF digits) are not touched per packet: each call keeps them in
//! plain integers ([`CallCounts`]) and folds what it counted into the
//! process-wide counters at its end and every [`FOLD_INTERVAL`] while it
//! lasts, so a scrape during a long call is at most that stale.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use rsipstack::sip::{HeadersExt, Method, Response};

use crate::admission::Refusal;
use crate::media::DigitSource;

/// The `Content-Type` of [`Metrics::render`]'s output: the Prometheus text
/// format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How often a call in progress folds its per-packet counts into the
/// process-wide counters (it also does at its end).
pub const FOLD_INTERVAL: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of the INVITE-to-200 histogram's buckets.
const ANSWER_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One label with a fixed value.
type Label = [(&'static str, &'static str); 1];
/// A label with a number for value.
type CodeLabel = [(&'static str, u16); 1];
/// The labels of an API request: route pattern and status.
type RouteLabels = ([(&'static str, String); 1], CodeLabel);

/// A monotonically increasing counter.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter<u64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.inc_by(n);
        }
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The kind of a call, a label of the call metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Leaving a message.
    Deposit,
    /// The phone menu (listening to messages).
    Retrieval,
}

impl CallKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Deposit => "deposit",
            CallKind::Retrieval => "retrieval",
        }
    }
}

/// What one call counted on its per-packet path since it last folded
/// (see [`Metrics::fold`]). Plain integers: owned by the call's task.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCounts {
    /// Datagrams read from the call's socket.
    pub rtp_received: u64,
    /// Packets lost (gaps filled with silence).
    pub rtp_lost: u64,
    /// Packets too late for the jitter buffer.
    pub rtp_late: u64,
    /// Datagrams ignored (other sources, wrong payload type, malformed).
    pub rtp_ignored: u64,
    /// Packets sent (prompts).
    pub rtp_sent: u64,
    /// Sends that failed.
    pub rtp_send_errors: u64,
    /// Digits accepted, by source: RFC 4733, SIP INFO, in-band.
    pub digits_rfc4733: u64,
    pub digits_info: u64,
    pub digits_inband: u64,
    /// SRTP packets dropped: authentication failed (wrong key, altered).
    pub srtp_auth_failed: u64,
    /// SRTP packets dropped: replayed (already received, or too old).
    pub srtp_replayed: u64,
}

impl CallCounts {
    /// Counts an accepted digit.
    pub fn digit(&mut self, source: DigitSource) {
        match source {
            DigitSource::Rfc4733 => self.digits_rfc4733 += 1,
            DigitSource::Info => self.digits_info += 1,
            DigitSource::Inband => self.digits_inband += 1,
        }
    }

    /// What `self` counted beyond `before` (counts only grow; a smaller
    /// value gives 0).
    pub fn since(&self, before: &CallCounts) -> CallCounts {
        CallCounts {
            rtp_received: self.rtp_received.saturating_sub(before.rtp_received),
            rtp_lost: self.rtp_lost.saturating_sub(before.rtp_lost),
            rtp_late: self.rtp_late.saturating_sub(before.rtp_late),
            rtp_ignored: self.rtp_ignored.saturating_sub(before.rtp_ignored),
            rtp_sent: self.rtp_sent.saturating_sub(before.rtp_sent),
            rtp_send_errors: self.rtp_send_errors.saturating_sub(before.rtp_send_errors),
            digits_rfc4733: self.digits_rfc4733.saturating_sub(before.digits_rfc4733),
            digits_info: self.digits_info.saturating_sub(before.digits_info),
            digits_inband: self.digits_inband.saturating_sub(before.digits_inband),
            srtp_auth_failed: self
                .srtp_auth_failed
                .saturating_sub(before.srtp_auth_failed),
            srtp_replayed: self.srtp_replayed.saturating_sub(before.srtp_replayed),
        }
    }
}

/// Every metric vmail exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls_active: Family<Label, PromGauge<i64>>,
    calls_answered: Family<Label, PromCounter<u64>>,
    calls_refused: Family<Label, PromCounter<u64>>,
    /// Messages stored.
    pub messages_stored: Counter,
    /// Messages dropped as too short.
    pub messages_discarded: Counter,
    /// Recordings that failed in the store.
    pub messages_failed: Counter,
    /// Messages recovered from `tmp/` at start.
    pub messages_recovered: Counter,
    /// Messages removed by retention (older than their folder's period).
    pub messages_expired: Counter,
    recorded_seconds: PromCounter<f64, std::sync::atomic::AtomicU64>,
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
    /// SRTP packets dropped because their authentication tag was wrong.
    pub srtp_auth_failed: Counter,
    /// SRTP packets dropped as replayed.
    pub srtp_replayed: Counter,
    /// TLS handshakes completed on the SIP/TLS listener.
    pub tls_handshakes: Counter,
    tls_handshakes_failed: Family<Label, PromCounter<u64>>,
    /// TLS handshakes completed on the HTTP port (`ext.http_tls`).
    pub https_handshakes: Counter,
    https_handshakes_failed: Family<Label, PromCounter<u64>>,
    digits: Family<Label, PromCounter<u64>>,
    sip_requests: Family<Label, PromCounter<u64>>,
    sip_responses: Family<(Label, CodeLabel), PromCounter<u64>>,
    mwi_notifies: Family<Label, PromCounter<u64>>,
    api_requests: Family<RouteLabels, PromCounter<u64>>,
    notify_sent: Family<[(&'static str, &'static str); 2], PromCounter<u64>>,
    notify_queue: Family<Label, PromGauge<i64>>,
    site_requests: Family<[(&'static str, String); 2], PromCounter<u64>>,
    answer_time: Histogram,
    /// Times this instance became the active one of its group.
    pub takeovers: Counter,
    /// Times it gave the role up (lease lost, superseded, stopping).
    pub step_downs: Counter,
    /// Backend operations of the lease that failed or timed out.
    pub lease_failures: Counter,
    /// 1 while this instance is the active one of its group, else 0.
    pub role_active: PromGauge<i64>,
    /// The epoch it holds (or last held).
    pub epoch: PromGauge<i64>,
    /// How long the last takeover waited for the group to have no live
    /// active, milliseconds.
    pub last_takeover_ms: PromGauge<i64>,
    /// How late the media threads run (the worst quarter-second mean of
    /// the pacer shards and the receive clock), microseconds.
    pub media_lag_us: PromGauge<i64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics at zero, registered for [`Self::render`].
    pub fn new() -> Self {
        let mut r = Registry::default();
        let calls_active = Family::<Label, PromGauge<i64>>::default();
        r.register(
            "vmail_calls_active",
            "Calls in progress (answered or about to be), by kind.",
            calls_active.clone(),
        );
        let calls_answered = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_calls",
            "Calls answered, by kind.",
            calls_answered.clone(),
        );
        let calls_refused = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_calls_refused",
            "INVITEs refused, by reason.",
            calls_refused.clone(),
        );
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.0.clone());
            c
        };
        let messages_stored = counter(&mut r, "vmail_messages_stored", "Messages stored.");
        let messages_discarded = counter(
            &mut r,
            "vmail_messages_discarded",
            "Messages dropped as shorter than the minimum.",
        );
        let messages_failed = counter(
            &mut r,
            "vmail_messages_failed",
            "Recordings the store could not take.",
        );
        let messages_recovered = counter(
            &mut r,
            "vmail_messages_recovered",
            "Messages recovered from tmp/ (at takeover).",
        );
        let messages_expired = counter(
            &mut r,
            "vmail_messages_expired",
            "Messages removed by retention (older than their folder's period).",
        );
        let recorded_seconds = PromCounter::<f64, std::sync::atomic::AtomicU64>::default();
        r.register_with_unit(
            "vmail_recorded",
            "Seconds of audio in the messages stored.",
            Unit::Seconds,
            recorded_seconds.clone(),
        );
        let rtp_received = counter(
            &mut r,
            "vmail_rtp_received",
            "RTP datagrams received (folded in per call).",
        );
        let rtp_lost = counter(
            &mut r,
            "vmail_rtp_lost",
            "RTP packets lost: gaps filled with silence (folded in per call).",
        );
        let rtp_late = counter(
            &mut r,
            "vmail_rtp_late",
            "RTP packets too late for the jitter buffer (folded in per call).",
        );
        let rtp_ignored = counter(
            &mut r,
            "vmail_rtp_ignored",
            "RTP datagrams ignored: other sources, payload types, malformed (folded in per call).",
        );
        let rtp_sent = counter(
            &mut r,
            "vmail_rtp_sent",
            "RTP packets sent (folded in per call).",
        );
        let rtp_send_errors = counter(
            &mut r,
            "vmail_rtp_send_errors",
            "RTP sends that failed (folded in per call).",
        );
        let srtp_auth_failed = counter(
            &mut r,
            "vmail_srtp_auth_failed",
            "SRTP packets dropped: authentication tag wrong (folded in per call).",
        );
        let srtp_replayed = counter(
            &mut r,
            "vmail_srtp_replayed",
            "SRTP packets dropped as replayed (folded in per call).",
        );
        let tls_handshakes = counter(
            &mut r,
            "vmail_tls_handshakes",
            "TLS handshakes completed on the SIP/TLS listener.",
        );
        let tls_handshakes_failed = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_tls_handshakes_failed",
            "TLS handshakes failed on the SIP/TLS listener, by reason (timeout, protocol, io).",
            tls_handshakes_failed.clone(),
        );
        let https_handshakes = counter(
            &mut r,
            "vmail_https_handshakes",
            "TLS handshakes completed on the HTTP port (ext.http_tls).",
        );
        let https_handshakes_failed = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_https_handshakes_failed",
            "TLS handshakes failed on the HTTP port, by reason (timeout, protocol, io).",
            https_handshakes_failed.clone(),
        );
        let digits = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_dtmf_digits",
            "DTMF digits accepted, by source (rfc4733, info, inband).",
            digits.clone(),
        );
        let sip_requests = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_sip_requests",
            "SIP requests received, by method.",
            sip_requests.clone(),
        );
        let sip_responses = Family::<(Label, CodeLabel), PromCounter<u64>>::default();
        r.register(
            "vmail_sip_responses",
            "SIP responses sent, by the request's method and status code.",
            sip_responses.clone(),
        );
        let mwi_notifies = Family::<Label, PromCounter<u64>>::default();
        r.register(
            "vmail_mwi_notify",
            "MWI NOTIFYs by outcome: sent (answered 2xx) or failed.",
            mwi_notifies.clone(),
        );
        let api_requests =
            Family::<([(&'static str, String); 1], CodeLabel), PromCounter<u64>>::default();
        r.register(
            "vmail_api_requests",
            "HTTP API requests, by route pattern and status.",
            api_requests.clone(),
        );
        let notify_sent = Family::<[(&'static str, &'static str); 2], PromCounter<u64>>::default();
        r.register(
            "vmail_notify_sent",
            "Notification attempts by channel (email, webhook) and outcome: sent, failed (to be retried), given_up, dropped.",
            notify_sent.clone(),
        );
        let notify_queue = Family::<Label, PromGauge<i64>>::default();
        r.register(
            "vmail_notify_queue",
            "Notifications waiting in the store's queue, by channel.",
            notify_queue.clone(),
        );
        let site_requests = Family::<[(&'static str, String); 2], PromCounter<u64>>::default();
        r.register(
            "vmail_site_requests",
            "Requests to peer sites (docs/sites.md) by site and outcome: answered, refused (the site's API said no), unreachable (no instance answered in time).",
            site_requests.clone(),
        );
        let answer_time = Histogram::new(ANSWER_BUCKETS);
        r.register_with_unit(
            "vmail_invite_answer",
            "Time from an INVITE's arrival to its 200 sent.",
            Unit::Seconds,
            answer_time.clone(),
        );
        let takeovers = counter(
            &mut r,
            "vmail_cluster_takeovers",
            "Times this instance became the active one of its group.",
        );
        let step_downs = counter(
            &mut r,
            "vmail_cluster_step_downs",
            "Times this instance gave up the active role.",
        );
        let lease_failures = counter(
            &mut r,
            "vmail_cluster_backend_failures",
            "Lease operations on the coordination store that failed or timed out.",
        );
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = PromGauge::<i64>::default();
            r.register(name, help, g.clone());
            g
        };
        let role_active = gauge(
            &mut r,
            "vmail_cluster_active",
            "1 while this instance is the active one of its group.",
        );
        let epoch = gauge(
            &mut r,
            "vmail_cluster_epoch",
            "The group epoch this instance holds or last held.",
        );
        let last_takeover_ms = gauge(
            &mut r,
            "vmail_cluster_last_takeover_milliseconds",
            "How long the group was without a live active before this instance's last takeover.",
        );
        let media_lag_us = gauge(
            &mut r,
            "vmail_media_lag_microseconds",
            "How late the media threads run against their schedule (the worst of the pacer shards and the receive clock, mean over a quarter second).",
        );
        let m = Metrics {
            registry: r,
            media_lag_us,
            takeovers,
            step_downs,
            lease_failures,
            role_active,
            epoch,
            last_takeover_ms,
            calls_active,
            calls_answered,
            calls_refused,
            messages_stored,
            messages_discarded,
            messages_failed,
            messages_recovered,
            messages_expired,
            recorded_seconds,
            rtp_received,
            rtp_lost,
            rtp_late,
            rtp_ignored,
            rtp_sent,
            rtp_send_errors,
            srtp_auth_failed,
            srtp_replayed,
            tls_handshakes,
            tls_handshakes_failed,
            https_handshakes,
            https_handshakes_failed,
            digits,
            sip_requests,
            sip_responses,
            mwi_notifies,
            api_requests,
            notify_sent,
            notify_queue,
            site_requests,
            answer_time,
        };
        // The fixed label values appear at 0 from the start, so a rate
        // over them has a first sample.
        for kind in [CallKind::Deposit, CallKind::Retrieval] {
            drop(m.calls_active.get_or_create(&[("kind", kind.as_str())]));
            drop(m.calls_answered.get_or_create(&[("kind", kind.as_str())]));
        }
        for reason in ["timeout", "protocol", "io"] {
            drop(m.tls_handshakes_failed.get_or_create(&[("reason", reason)]));
            drop(
                m.https_handshakes_failed
                    .get_or_create(&[("reason", reason)]),
            );
        }
        for source in ["rfc4733", "info", "inband"] {
            drop(m.digits.get_or_create(&[("source", source)]));
        }
        for outcome in ["sent", "failed"] {
            drop(m.mwi_notifies.get_or_create(&[("outcome", outcome)]));
        }
        for channel in ["email", "webhook"] {
            drop(m.notify_queue.get_or_create(&[("channel", channel)]));
            for outcome in ["sent", "failed"] {
                drop(
                    m.notify_sent
                        .get_or_create(&[("channel", channel), ("outcome", outcome)]),
                );
            }
        }
        m
    }

    /// A request to the peer site `site` ended with `outcome` (`answered`,
    /// `refused`, `unreachable`).
    pub fn site_request(&self, site: &str, outcome: &'static str) {
        self.site_requests
            .get_or_create(&[("site", site.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
    }

    /// Requests to `site` that ended with `outcome`.
    pub fn site_requests(&self, site: &str, outcome: &'static str) -> u64 {
        self.site_requests
            .get_or_create(&[("site", site.to_owned()), ("outcome", outcome.to_owned())])
            .get()
    }

    /// A TLS handshake on the SIP/TLS listener failed; `reason` is
    /// `timeout`, `protocol` or `io`.
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_handshakes_failed
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A TLS handshake on the HTTP port failed; `reason` as for
    /// [`Metrics::tls_handshake_failed`].
    pub fn https_handshake_failed(&self, reason: &'static str) {
        self.https_handshakes_failed
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// TLS handshakes that failed for `reason`.
    pub fn tls_handshakes_failed(&self, reason: &'static str) -> u64 {
        self.tls_handshakes_failed
            .get_or_create(&[("reason", reason)])
            .get()
    }

    /// A notification attempt of `channel` ended with `outcome`.
    pub fn notify_outcome(&self, channel: &'static str, outcome: &'static str) {
        self.notify_sent
            .get_or_create(&[("channel", channel), ("outcome", outcome)])
            .inc();
    }

    /// Notifications of `channel` waiting in the queue.
    pub fn set_notify_queue(&self, channel: &'static str, n: i64) {
        self.notify_queue
            .get_or_create(&[("channel", channel)])
            .set(n);
    }

    /// A call was accepted: it is in progress until [`Self::call_ended`].
    pub fn call_started(&self, kind: CallKind) {
        self.calls_active
            .get_or_create(&[("kind", kind.as_str())])
            .inc();
    }

    /// A call accepted by [`Self::call_started`] is over.
    pub fn call_ended(&self, kind: CallKind) {
        self.calls_active
            .get_or_create(&[("kind", kind.as_str())])
            .dec();
    }

    /// Calls of `kind` in progress.
    pub fn calls_in_progress(&self, kind: CallKind) -> i64 {
        self.calls_active
            .get_or_create(&[("kind", kind.as_str())])
            .get()
    }

    /// A call was answered (its 200 sent), `since_invite` after its
    /// INVITE arrived.
    pub fn call_answered(&self, kind: CallKind, since_invite: Duration) {
        self.calls_answered
            .get_or_create(&[("kind", kind.as_str())])
            .inc();
        self.answer_time.observe(since_invite.as_secs_f64());
    }

    /// Calls of `kind` answered since start.
    #[cfg(test)]
    pub fn calls_answered(&self, kind: CallKind) -> u64 {
        self.calls_answered
            .get_or_create(&[("kind", kind.as_str())])
            .get()
    }

    /// An INVITE was refused, for `reason` (see [`refusal_label`]).
    pub fn call_refused(&self, reason: &'static str) {
        self.calls_refused
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A message of `duration` was stored.
    pub fn message_stored(&self, duration: Duration) {
        self.messages_stored.inc();
        self.recorded_seconds.inc_by(duration.as_secs_f64());
    }

    /// Folds what a call counted on its per-packet path (since its last
    /// fold) into the process-wide counters.
    pub fn fold(&self, c: &CallCounts) {
        self.rtp_received.add(c.rtp_received);
        self.rtp_lost.add(c.rtp_lost);
        self.rtp_late.add(c.rtp_late);
        self.rtp_ignored.add(c.rtp_ignored);
        self.rtp_sent.add(c.rtp_sent);
        self.rtp_send_errors.add(c.rtp_send_errors);
        self.srtp_auth_failed.add(c.srtp_auth_failed);
        self.srtp_replayed.add(c.srtp_replayed);
        for (source, n) in [
            ("rfc4733", c.digits_rfc4733),
            ("info", c.digits_info),
            ("inband", c.digits_inband),
        ] {
            if n > 0 {
                self.digits.get_or_create(&[("source", source)]).inc_by(n);
            }
        }
    }

    /// Counts a SIP request received.
    pub fn sip_request(&self, method: &Method) {
        self.sip_requests
            .get_or_create(&[("method", method_label(method))])
            .inc();
    }

    /// Counts a SIP response sent to a request of `method`.
    pub fn sip_response(&self, method: &Method, code: u16) {
        self.sip_responses
            .get_or_create(&([("method", method_label(method))], [("code", code)]))
            .inc();
    }

    /// Counts a SIP response sent, by its status code and the method of
    /// its request (its CSeq's).
    pub fn sip_response_sent(&self, response: &Response) {
        let code = response.status_code.code();
        let method = response
            .cseq_header()
            .ok()
            .and_then(|c| c.method().ok())
            .map_or("unknown", |m| method_label(&m));
        self.sip_responses
            .get_or_create(&([("method", method)], [("code", code)]))
            .inc();
    }

    /// Counts an MWI NOTIFY by its outcome: answered 2xx (`sent`), or
    /// refused / timed out.
    pub fn mwi_notify(&self, sent: bool) {
        let outcome = if sent { "sent" } else { "failed" };
        self.mwi_notifies
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// Counts an HTTP API request by its route pattern (`/api/v1/...` as
    /// routed, not the raw path) and response status.
    pub fn api_request(&self, route: &str, status: u16) {
        self.api_requests
            .get_or_create(&([("route", route.to_owned())], [("status", status)]))
            .inc();
    }

    /// The Prometheus text exposition (version 0.0.4) of all metrics.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Err(e) = prometheus_text::encode(&mut s, &self.registry) {
            // Writing into a String does not fail; keep what was written.
            tracing::warn!("encoding the metrics failed: {e}");
        }
        s
    }
}

/// The `reason` label of a refused INVITE.
pub fn refusal_label(r: &Refusal) -> &'static str {
    match r {
        Refusal::Merged => "merged",
        Refusal::ShuttingDown => "shutting_down",
        Refusal::Overloaded => "overload",
        Refusal::MediaLag => "media_lag",
        Refusal::InvalidMailbox(_) | Refusal::NoSuchMailbox(_) => "no_mailbox",
        Refusal::DomainNotServed(_) => "domain_not_served",
        Refusal::StoreUnavailable(_) => "store_unavailable",
        Refusal::BadRequest(_) => "bad_request",
        Refusal::NotAcceptable(_) => "not_acceptable",
        Refusal::RateLimited { .. } => "rate_limit",
        Refusal::NotActive { .. } => "passive",
    }
}

/// The `method` label of a SIP method.
fn method_label(m: &Method) -> &'static str {
    match m {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Info => "INFO",
        Method::Invite => "INVITE",
        Method::Message => "MESSAGE",
        Method::Notify => "NOTIFY",
        Method::Options => "OPTIONS",
        Method::PRack => "PRACK",
        Method::Publish => "PUBLISH",
        Method::Refer => "REFER",
        Method::Register => "REGISTER",
        Method::Subscribe => "SUBSCRIBE",
        Method::Update => "UPDATE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples of `text`, as `name{labels} value` lines, after checking
    /// each family has its HELP and TYPE lines first.
    fn samples(text: &str) -> Vec<(String, f64)> {
        let mut typed = std::collections::HashSet::new();
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().expect("name");
                typed.insert(name.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let name = series.split('{').next().expect("name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{name} without a TYPE line");
            out.push((series.to_owned(), value.parse().expect("a number")));
        }
        out
    }

    fn value(text: &str, series: &str) -> f64 {
        samples(text)
            .into_iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{series} not in\n{text}"))
    }

    #[test]
    fn render_has_every_family_with_its_labels() {
        let m = Metrics::new();
        m.call_started(CallKind::Deposit);
        m.call_started(CallKind::Retrieval);
        m.call_ended(CallKind::Retrieval);
        m.call_answered(CallKind::Deposit, Duration::from_millis(30));
        m.call_refused(refusal_label(&Refusal::Overloaded));
        m.call_refused("no_media_port");
        m.message_stored(Duration::from_millis(2500));
        m.messages_discarded.inc();
        m.messages_failed.inc();
        m.messages_recovered.add(3);
        m.messages_expired.add(2);
        m.sip_request(&Method::Invite);
        m.sip_response(&Method::Invite, 200);
        m.mwi_notify(true);
        m.mwi_notify(false);
        m.mwi_notify(false);
        m.api_request("/api/v1/mailboxes/{domain}", 404);
        m.fold(&CallCounts {
            rtp_received: 10,
            rtp_lost: 1,
            rtp_late: 2,
            rtp_ignored: 3,
            rtp_sent: 4,
            rtp_send_errors: 5,
            digits_rfc4733: 6,
            digits_info: 7,
            digits_inband: 8,
            srtp_auth_failed: 9,
            srtp_replayed: 10,
        });
        m.tls_handshake_failed("timeout");
        let t = m.render();
        for (series, v) in [
            ("vmail_calls_active{kind=\"deposit\"}", 1.0),
            ("vmail_calls_active{kind=\"retrieval\"}", 0.0),
            ("vmail_calls_total{kind=\"deposit\"}", 1.0),
            ("vmail_calls_total{kind=\"retrieval\"}", 0.0),
            ("vmail_calls_refused_total{reason=\"overload\"}", 1.0),
            ("vmail_calls_refused_total{reason=\"no_media_port\"}", 1.0),
            ("vmail_messages_stored_total", 1.0),
            ("vmail_srtp_auth_failed_total", 9.0),
            ("vmail_srtp_replayed_total", 10.0),
            ("vmail_tls_handshakes_failed_total{reason=\"timeout\"}", 1.0),
            (
                "vmail_tls_handshakes_failed_total{reason=\"protocol\"}",
                0.0,
            ),
            ("vmail_messages_discarded_total", 1.0),
            ("vmail_messages_failed_total", 1.0),
            ("vmail_messages_recovered_total", 3.0),
            ("vmail_messages_expired_total", 2.0),
            ("vmail_recorded_seconds_total", 2.5),
            ("vmail_rtp_received_total", 10.0),
            ("vmail_rtp_lost_total", 1.0),
            ("vmail_rtp_late_total", 2.0),
            ("vmail_rtp_ignored_total", 3.0),
            ("vmail_rtp_sent_total", 4.0),
            ("vmail_rtp_send_errors_total", 5.0),
            ("vmail_dtmf_digits_total{source=\"rfc4733\"}", 6.0),
            ("vmail_dtmf_digits_total{source=\"info\"}", 7.0),
            ("vmail_dtmf_digits_total{source=\"inband\"}", 8.0),
            ("vmail_sip_requests_total{method=\"INVITE\"}", 1.0),
            (
                "vmail_sip_responses_total{method=\"INVITE\",code=\"200\"}",
                1.0,
            ),
            ("vmail_mwi_notify_total{outcome=\"sent\"}", 1.0),
            ("vmail_mwi_notify_total{outcome=\"failed\"}", 2.0),
            (
                "vmail_api_requests_total{route=\"/api/v1/mailboxes/{domain}\",status=\"404\"}",
                1.0,
            ),
            ("vmail_invite_answer_seconds_count", 1.0),
            ("vmail_invite_answer_seconds_bucket{le=\"0.025\"}", 0.0),
            ("vmail_invite_answer_seconds_bucket{le=\"0.05\"}", 1.0),
            ("vmail_invite_answer_seconds_bucket{le=\"+Inf\"}", 1.0),
        ] {
            assert_eq!(value(&t, series), v, "{series}");
        }
        assert!(t.contains("# TYPE vmail_invite_answer_seconds histogram\n"));
        assert!(t.contains("# TYPE vmail_calls_active gauge\n"));
        assert!(t.contains("# TYPE vmail_rtp_received_total counter\n"));
        assert_eq!(m.calls_in_progress(CallKind::Deposit), 1);
        assert_eq!(m.calls_answered(CallKind::Deposit), 1);
    }

    #[test]
    fn a_fresh_instance_shows_its_fixed_labels_at_zero() {
        let t = Metrics::default().render();
        for series in [
            "vmail_calls_active{kind=\"deposit\"}",
            "vmail_calls_total{kind=\"retrieval\"}",
            "vmail_dtmf_digits_total{source=\"inband\"}",
            "vmail_mwi_notify_total{outcome=\"failed\"}",
            "vmail_rtp_received_total",
            "vmail_invite_answer_seconds_count",
        ] {
            assert_eq!(value(&t, series), 0.0, "{series}");
        }
    }

    #[test]
    fn folding_adds_only_what_was_counted_since_the_last_fold() {
        let m = Metrics::new();
        let mut call = CallCounts::default();
        let mut folded = CallCounts::default();
        call.rtp_received = 100;
        call.rtp_lost = 2;
        call.digit(DigitSource::Rfc4733);
        m.fold(&call.since(&folded));
        folded = call;
        call.rtp_received = 150;
        call.rtp_late = 1;
        call.digit(DigitSource::Inband);
        call.digit(DigitSource::Inband);
        m.fold(&call.since(&folded));
        folded = call;
        // Nothing new: nothing added.
        m.fold(&call.since(&folded));
        assert_eq!(m.rtp_received.get(), 150);
        assert_eq!(m.rtp_lost.get(), 2);
        assert_eq!(m.rtp_late.get(), 1);
        let t = m.render();
        assert_eq!(
            value(&t, "vmail_dtmf_digits_total{source=\"rfc4733\"}"),
            1.0
        );
        assert_eq!(value(&t, "vmail_dtmf_digits_total{source=\"inband\"}"), 2.0);
        assert_eq!(value(&t, "vmail_dtmf_digits_total{source=\"info\"}"), 0.0);
    }

    #[test]
    fn a_response_is_counted_under_its_requests_method() {
        let m = Metrics::new();
        let raw = "SIP/2.0 486 Busy Here\r\n\
                   Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
                   From: <sip:a@example.com>;tag=1\r\n\
                   To: <sip:b@example.com>;tag=2\r\n\
                   Call-ID: x\r\n\
                   CSeq: 7 SUBSCRIBE\r\n\
                   Content-Length: 0\r\n\r\n";
        let response = Response::try_from(raw.as_bytes()).expect("a response");
        m.sip_response_sent(&response);
        let t = m.render();
        assert_eq!(
            value(
                &t,
                "vmail_sip_responses_total{method=\"SUBSCRIBE\",code=\"486\"}"
            ),
            1.0
        );
    }
}
