//! The receive clock of the calls' RTP: a call's driver reads its socket
//! when its phase of the clock ticks, not when a datagram arrives.
//!
//! Waking a task for every 20 ms packet cost a readiness event, a task
//! wake-up and often a thread wake-up per packet, and a second `recvfrom`
//! that only said "empty" (about 12 µs of CPU per packet at 1,000 calls;
//! docs/performance.md). Instead the RTP sockets are plain non-blocking
//! sockets, not registered with the reactor: every [`PERIOD`] each call
//! reads what has arrived (usually two packets), then sleeps again. The
//! jitter buffer works on media time, so reading a packet up to one period
//! late changes nothing in the recording; a digit is seen at most one
//! period later.
//!
//! The calls are spread over [`PHASES`] phases, ticked in turn, so one tick
//! wakes only a share of them. A call whose last reads found nothing (the
//! caller is silent and sends nothing, or on hold) waits for the slow tick
//! of its phase instead, every [`SLOW`] periods, so idle calls cost
//! (almost) nothing. The first packets after such a pause wait in the
//! socket's buffer for at most a slow period; nothing is lost.
//!
//! The clock's task runs on the tokio workers with the call drivers, so
//! how late its ticks run is how far the receive path is behind: it
//! publishes that lag (`admission::MediaLag`) beside the pacer's.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::admission::{LagMeter, MediaLag, LAG_WINDOW};

/// How often a call reads its RTP socket: two 20 ms frames a read. At
/// 1,000 calls vmail spent 9.3 µs a packet with 20 ms and 7.1 µs with
/// 40 ms (docs/performance.md); 40 ms stays well inside the 60 ms jitter
/// buffer's media-time window and is not heard in digit handling.
pub const PERIOD: Duration = Duration::from_millis(40);
/// Phases of the period; calls are assigned round-robin.
pub const PHASES: usize = 4;
/// A call that is receiving nothing reads every `SLOW` periods.
pub const SLOW: usize = 4;

/// The clock: per phase, one [`Notify`] every period and one every
/// [`SLOW`] periods.
pub struct MediaClock {
    phases: Vec<Notify>,
    slow: Vec<Notify>,
}

impl MediaClock {
    /// Starts the clock on the current tokio runtime. It stops when the
    /// last handle is dropped. With `lag`, it publishes how late its ticks
    /// run as that source.
    pub fn start(lag: Option<(Arc<MediaLag>, usize)>) -> Arc<MediaClock> {
        let clock = Arc::new(MediaClock {
            phases: (0..PHASES).map(|_| Notify::new()).collect(),
            slow: (0..PHASES).map(|_| Notify::new()).collect(),
        });
        let weak: Weak<MediaClock> = Arc::downgrade(&clock);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(PERIOD / PHASES as u32);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut tick = 0usize;
            let mut meter = LagMeter::new(LAG_WINDOW);
            loop {
                let due = interval.tick().await;
                if let Some((lag, source)) = &lag {
                    let now = tokio::time::Instant::now();
                    if let Some(mean) = meter.tick(due.into_std(), now.into_std()) {
                        super::pacer::publish_lag(lag, *source, now.into_std(), mean);
                    }
                }
                let Some(clock) = weak.upgrade() else {
                    return;
                };
                let phase = tick % PHASES;
                if let Some(n) = clock.phases.get(phase) {
                    n.notify_waiters();
                }
                if (tick / PHASES).is_multiple_of(SLOW) {
                    if let Some(n) = clock.slow.get(phase) {
                        n.notify_waiters();
                    }
                }
                tick = (tick + 1) % (PHASES * SLOW);
            }
        });
        clock
    }

    /// The phase call `call` waits on.
    pub fn subscribe(self: &Arc<Self>, call: u64) -> MediaTick {
        MediaTick {
            clock: self.clone(),
            phase: (call % PHASES as u64) as usize,
        }
    }
}

/// One call's view of the clock.
pub struct MediaTick {
    clock: Arc<MediaClock>,
    phase: usize,
}

impl MediaTick {
    /// Resolves at the call's next tick, or with `slow` at its next slow
    /// tick.
    pub async fn tick(&self, slow: bool) {
        let list = if slow {
            &self.clock.slow
        } else {
            &self.clock.phases
        };
        match list.get(self.phase) {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_phase_ticks_once_per_period() {
        let clock = MediaClock::start(None);
        let ticks: Vec<MediaTick> = (0..PHASES as u64).map(|c| clock.subscribe(c)).collect();
        for t in &ticks {
            t.tick(false).await;
            let start = tokio::time::Instant::now();
            t.tick(false).await;
            // Two ticks of one phase are a period apart.
            assert_eq!(start.elapsed(), PERIOD);
            t.tick(true).await;
            let start = tokio::time::Instant::now();
            t.tick(true).await;
            assert_eq!(start.elapsed(), PERIOD * SLOW as u32);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_with_the_last_handle() {
        let clock = MediaClock::start(None);
        let weak = Arc::downgrade(&clock);
        drop(clock);
        tokio::time::sleep(PERIOD * 2).await;
        assert!(weak.upgrade().is_none());
    }
}
