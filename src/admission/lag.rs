//! Admission by measured media lag: how late the threads that carry the
//! calls' audio run, and whether new calls should wait because of it.
//!
//! `max_calls` is a count; what a box can carry depends on the codecs, the
//! prompts playing and whatever else runs on it. When the media threads
//! fall behind, the callers hear it first: greetings stretch, frames are
//! sent in bursts. So the shell measures, in each thread that runs on a
//! schedule (the prompt pacer's shards, the RTP receive clock), how late
//! each tick runs against the instant it was due ([`LagMeter`]), and
//! publishes the mean of every window ([`MediaLag`]). A [`LagGate`] with
//! hysteresis turns the worst of those figures into a yes or no for new
//! INVITEs: refuse once the lag has stayed over the limit for the hold
//! time, take calls again once it has stayed under half the limit as
//! long. Calls already taken are never touched.
//!
//! Sans-IO: time comes in as arguments; the shell reads the clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window over which a thread's lateness is averaged.
pub const LAG_WINDOW: Duration = Duration::from_millis(250);

/// The lateness of one thread's ticks, summed per window.
#[derive(Debug, Clone)]
pub struct LagMeter {
    window: Duration,
    start: Option<Instant>,
    sum: Duration,
    ticks: u32,
}

impl LagMeter {
    /// A meter that reports the mean lateness of every `window`.
    pub fn new(window: Duration) -> LagMeter {
        LagMeter {
            window: window.max(Duration::from_millis(1)),
            start: None,
            sum: Duration::ZERO,
            ticks: 0,
        }
    }

    /// A tick due at `due` ran at `now`; returns the mean lateness of the
    /// window when this tick closes one.
    pub fn tick(&mut self, due: Instant, now: Instant) -> Option<Duration> {
        let start = *self.start.get_or_insert(now);
        self.sum += now.saturating_duration_since(due);
        self.ticks = self.ticks.saturating_add(1);
        if now.saturating_duration_since(start) < self.window {
            return None;
        }
        let mean = self.sum / self.ticks.max(1);
        self.start = Some(now);
        self.sum = Duration::ZERO;
        self.ticks = 0;
        Some(mean)
    }
}

/// Whether new calls are taken, with hysteresis.
#[derive(Debug, Clone)]
pub struct LagGate {
    limit: Duration,
    hold: Duration,
    refusing: bool,
    /// Since when the lag has been on the other side of the line.
    since: Option<Instant>,
}

impl LagGate {
    /// Refuse once the lag stayed over `limit` for `hold`; take calls
    /// again once it stayed under `limit / 2` for `hold`. A zero `limit`
    /// never refuses.
    pub fn new(limit: Duration, hold: Duration) -> LagGate {
        LagGate {
            limit,
            hold,
            refusing: false,
            since: None,
        }
    }

    /// A new figure of the lag at `now`; returns whether new calls are
    /// refused from now on.
    pub fn observe(&mut self, now: Instant, lag: Duration) -> bool {
        if self.limit.is_zero() {
            self.refusing = false;
            return false;
        }
        let crossing = if self.refusing {
            lag < self.limit / 2
        } else {
            lag > self.limit
        };
        if !crossing {
            self.since = None;
            return self.refusing;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.hold {
            self.refusing = !self.refusing;
            self.since = None;
        }
        self.refusing
    }

    /// Whether new calls are refused.
    pub fn refusing(&self) -> bool {
        self.refusing
    }

    /// New limits (a reload); the state is kept.
    pub fn set_limits(&mut self, limit: Duration, hold: Duration) {
        self.limit = limit;
        self.hold = hold;
        self.since = None;
        if limit.is_zero() {
            self.refusing = false;
        }
    }
}

/// A change of the gate, for the shell to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagChange {
    /// New calls are refused from now on; the lag that decided it.
    Refusing(Duration),
    /// New calls are taken again.
    Admitting(Duration),
}

/// The lag figures of every measured thread and the gate over them;
/// shared by the threads (which publish) and the SIP task (which asks).
#[derive(Debug)]
pub struct MediaLag {
    /// Latest window mean of each source, in microseconds.
    sources: Vec<AtomicU64>,
    gate: Mutex<LagGate>,
    refusing: AtomicBool,
}

impl MediaLag {
    /// `sources` threads publish; the gate uses `limit` and `hold`.
    pub fn new(sources: usize, limit: Duration, hold: Duration) -> MediaLag {
        MediaLag {
            sources: (0..sources).map(|_| AtomicU64::new(0)).collect(),
            gate: Mutex::new(LagGate::new(limit, hold)),
            refusing: AtomicBool::new(false),
        }
    }

    /// Source `source` measured `lag` over the window ending at `now`;
    /// returns the gate's change, if this figure made one.
    pub fn publish(&self, source: usize, now: Instant, lag: Duration) -> Option<LagChange> {
        if let Some(s) = self.sources.get(source) {
            s.store(
                u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        let worst = self.worst();
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let before = gate.refusing();
        let after = gate.observe(now, worst);
        drop(gate);
        self.refusing.store(after, Ordering::Relaxed);
        match (before, after) {
            (false, true) => Some(LagChange::Refusing(worst)),
            (true, false) => Some(LagChange::Admitting(worst)),
            _ => None,
        }
    }

    /// The worst latest figure of all sources.
    pub fn worst(&self) -> Duration {
        let us = self
            .sources
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    /// Whether new calls are refused now.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// New limits (a reload): see [`LagGate::set_limits`].
    pub fn set_limits(&self, limit: Duration, hold: Duration) {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.set_limits(limit, hold);
        self.refusing.store(gate.refusing(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_meter_reports_the_mean_lateness_of_each_window() {
        let t0 = Instant::now();
        let mut m = LagMeter::new(10 * MS);
        // Ticks every 2 ms, each 1 ms late, then 3 ms late.
        let mut out = Vec::new();
        for i in 0..12u32 {
            let due = t0 + 2 * MS * i;
            let late = if i < 6 { MS } else { 3 * MS };
            if let Some(mean) = m.tick(due, due + late) {
                out.push(mean);
            }
        }
        // The first window closes at the tick 10 ms after the first (six
        // ticks of 1 ms late), the second 10 ms later (four of 3 ms).
        assert_eq!(out, vec![MS, 3 * MS]);
        // A tick that ran early counts as on time.
        let mut m = LagMeter::new(MS);
        assert_eq!(m.tick(t0 + 5 * MS, t0), None);
        assert_eq!(m.tick(t0 + 2 * MS, t0 + 2 * MS), Some(Duration::ZERO));
    }

    #[test]
    fn the_gate_refuses_only_after_the_lag_stayed_high_for_the_hold_time() {
        let t0 = Instant::now();
        let mut g = LagGate::new(20 * MS, 1000 * MS);
        // A single bad window (a steal burst) changes nothing.
        assert!(!g.observe(t0, 80 * MS));
        assert!(!g.observe(t0 + 250 * MS, 2 * MS));
        assert!(!g.observe(t0 + 500 * MS, 30 * MS));
        assert!(!g.observe(t0 + 750 * MS, 30 * MS));
        assert!(!g.observe(t0 + 1250 * MS, 30 * MS));
        // Over the limit for the whole hold time: refused.
        assert!(g.observe(t0 + 1500 * MS, 30 * MS));
        assert!(g.refusing());
    }

    #[test]
    fn the_gate_admits_again_only_after_the_lag_stayed_under_half_the_limit() {
        let t0 = Instant::now();
        let mut g = LagGate::new(20 * MS, 1000 * MS);
        assert!(!g.observe(t0, 30 * MS));
        assert!(g.observe(t0 + 1000 * MS, 30 * MS));
        // Under the limit but over half of it: still refusing (hysteresis).
        for i in 1..10 {
            assert!(g.observe(t0 + 1000 * MS + 250 * MS * i, 15 * MS));
        }
        // Under half: refusing until it stayed there for the hold time.
        let t1 = t0 + 4000 * MS;
        assert!(g.observe(t1, 5 * MS));
        assert!(g.observe(t1 + 500 * MS, 5 * MS));
        // A relapse restarts the count.
        assert!(g.observe(t1 + 750 * MS, 12 * MS));
        assert!(g.observe(t1 + 1000 * MS, 5 * MS));
        assert!(g.observe(t1 + 1750 * MS, 5 * MS));
        assert!(!g.observe(t1 + 2000 * MS, 5 * MS));
        assert!(!g.refusing());
    }

    #[test]
    fn a_zero_limit_never_refuses() {
        let t0 = Instant::now();
        let mut g = LagGate::new(Duration::ZERO, 100 * MS);
        for i in 0..10 {
            assert!(!g.observe(t0 + 100 * MS * i, 10_000 * MS));
        }
    }

    #[test]
    fn the_worst_source_decides_and_changes_are_reported_once() {
        let t0 = Instant::now();
        let lag = MediaLag::new(3, 20 * MS, 500 * MS);
        assert_eq!(lag.publish(0, t0, 2 * MS), None);
        // The receive clock (source 2) runs late; the pacer shards do not.
        assert_eq!(lag.publish(2, t0 + 250 * MS, 40 * MS), None);
        assert_eq!(lag.publish(1, t0 + 500 * MS, MS), None);
        assert_eq!(lag.worst(), 40 * MS);
        assert!(!lag.refusing());
        assert_eq!(
            lag.publish(0, t0 + 750 * MS, 3 * MS),
            Some(LagChange::Refusing(40 * MS))
        );
        assert!(lag.refusing());
        assert_eq!(lag.publish(1, t0 + 1000 * MS, MS), None);
        // The receive clock recovers.
        assert_eq!(lag.publish(2, t0 + 1250 * MS, MS), None);
        assert_eq!(lag.publish(0, t0 + 1500 * MS, MS), None);
        assert_eq!(
            lag.publish(1, t0 + 1750 * MS, MS),
            Some(LagChange::Admitting(MS))
        );
        assert!(!lag.refusing());
        // An unknown source index is ignored, not a panic.
        assert_eq!(lag.publish(9, t0 + 2000 * MS, 99 * MS), None);
    }
}
