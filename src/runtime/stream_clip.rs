//! Audio that is still arriving, played by the pacer as it comes: the
//! audio of a message kept at another site.
//!
//! [`StreamClip`] is the pacer's end: a channel of PCM chunks the pacer
//! pulls from with `try_recv`, never waiting. When nothing has arrived in
//! time for a frame (an underrun) the rest of that frame is silence and the
//! clip goes on: the RTP timing stays regular and the caller hears a short
//! pause, never a stretched or repeated sound. The clip ends once its
//! channel is closed and drained.
//!
//! [`spawn_feed`] is the other end: one task per played message (not per
//! frame) that waits for the audio, resamples it to the call's rate with the
//! same resampler as the local messages (rubato), and pushes it to the clip.
//! Nothing is written to the store. When the clip is dropped (the caller
//! pressed a key, hung up) the task stops and drops the fetch with it.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use rubato::{FftFixedIn, Resampler};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::{debug, info, warn};

/// Chunks of 20 ms kept between the fetch and the pacer: the fetch runs
/// at most this far ahead of the playback (2 s; the site's answer waits
/// in its own small buffer and the connection meanwhile).
const FEED_CHUNKS: usize = 100;

/// A message that sends nothing for this long is ended (logged): its
/// site stalled mid-stream.
pub const STALL: Duration = Duration::from_secs(10);

/// The pacer's end of a stream of audio at `rate`.
pub struct StreamClip {
    rate: u32,
    rx: mpsc::Receiver<Vec<i16>>,
    buf: VecDeque<i16>,
    closed: bool,
    /// Rate conversion by the pacer (the call's rate changed after the
    /// stream was made): output samples made, source samples taken.
    made: u64,
    taken: u64,
    last: i16,
}

impl std::fmt::Debug for StreamClip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamClip({} Hz)", self.rate)
    }
}

impl StreamClip {
    /// A clip of samples at `rate` and the sender that feeds it.
    pub fn channel(rate: u32) -> (mpsc::Sender<Vec<i16>>, StreamClip) {
        let (tx, rx) = mpsc::channel(FEED_CHUNKS);
        let clip = StreamClip {
            rate: rate.max(1),
            rx,
            buf: VecDeque::new(),
            closed: false,
            made: 0,
            taken: 0,
            last: 0,
        };
        (tx, clip)
    }

    /// Takes what has arrived, without waiting.
    fn pull(&mut self) -> bool {
        while self.buf.is_empty() && !self.closed {
            match self.rx.try_recv() {
                Ok(chunk) => self.buf.extend(chunk),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => self.closed = true,
            }
        }
        !self.buf.is_empty()
    }

    /// Fills the start of `out` with the samples that have arrived, at
    /// `rate` (converted by nearest sample when it is not the stream's);
    /// returns how many. Never waits.
    pub fn read(&mut self, out: &mut [i16], rate: u32) -> usize {
        let rate = rate.max(1);
        let mut n = 0;
        if rate == self.rate {
            while n < out.len() && self.pull() {
                let take = (out.len() - n).min(self.buf.len());
                for (o, s) in out[n..n + take].iter_mut().zip(self.buf.drain(..take)) {
                    *o = s;
                }
                n += take;
            }
            return n;
        }
        while n < out.len() {
            // Output sample `made` is source sample `made * from / to`.
            let want = self.made * u64::from(self.rate) / u64::from(rate);
            while self.taken <= want {
                if !self.pull() {
                    return n;
                }
                self.last = self.buf.pop_front().unwrap_or(0);
                self.taken += 1;
            }
            out[n] = self.last;
            n += 1;
            self.made += 1;
        }
        n
    }

    /// True once everything has been played and nothing more will come.
    pub fn is_finished(&mut self) -> bool {
        !self.pull() && self.closed
    }
}

/// Audio as the fetch delivers it: its rate, then chunks of mono PCM; the
/// channel closes at the end.
pub struct Incoming {
    pub sample_rate: u32,
    pub chunks: mpsc::Receiver<Vec<i16>>,
}

/// Starts a task that awaits `fetch` and feeds what it delivers, resampled
/// to `rate`, to the returned clip. `what` names the message in the logs.
pub fn spawn_feed<F>(fetch: F, rate: u32, what: String) -> StreamClip
where
    F: Future<Output = Result<Incoming, String>> + Send + 'static,
{
    let (tx, clip) = StreamClip::channel(rate);
    tokio::spawn(feed(fetch, rate, tx, what));
    clip
}

async fn feed<F>(fetch: F, rate: u32, tx: mpsc::Sender<Vec<i16>>, what: String)
where
    F: Future<Output = Result<Incoming, String>>,
{
    let incoming = tokio::select! {
        r = fetch => r,
        // The clip was dropped before the audio came: not wanted any more.
        () = tx.closed() => return,
    };
    let mut incoming = match incoming {
        Ok(i) => i,
        Err(e) => {
            warn!(message = %what, "remote message audio unavailable: {e}");
            return;
        }
    };
    let mut conv = Converter::new(incoming.sample_rate, rate);
    let mut samples: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(STALL, incoming.chunks.recv()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                warn!(message = %what, samples, "remote message audio stalled; ended early");
                break;
            }
        };
        samples += chunk.len() as u64;
        let out = conv.push(&chunk);
        if send_frames(&tx, out, rate).await.is_err() {
            debug!(message = %what, "remote message no longer played; fetch dropped");
            return;
        }
    }
    let _ = send_frames(&tx, conv.finish(), rate).await;
    info!(message = %what, samples, rate = incoming.sample_rate, "remote message audio ended");
}

/// Sends `pcm` in 20 ms pieces (at `rate`), so that the channel's bound
/// is a bound in time whatever the size of the chunks that came.
async fn send_frames(tx: &mpsc::Sender<Vec<i16>>, pcm: Vec<i16>, rate: u32) -> Result<(), ()> {
    let piece = (rate as usize / 50).max(1);
    for p in pcm.chunks(piece) {
        tx.send(p.to_vec()).await.map_err(drop)?;
    }
    Ok(())
}

/// Streaming rate conversion (rubato's FFT resampler, as for the local
/// messages); passes the samples through when the rates are equal, and
/// converts by nearest sample should the resampler refuse the rates.
struct Converter {
    r: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    /// Output samples still to drop (the filter's delay).
    skip: usize,
    from: u32,
    to: u32,
    taken: u64,
    made: u64,
}

impl Converter {
    fn new(from: u32, to: u32) -> Converter {
        let r = if from == to || from == 0 || to == 0 {
            None
        } else {
            let g = gcd(from as usize, to as usize);
            let block = from as usize / g;
            // About 20 ms of input per round, a multiple of the block.
            let per_round = (from as usize / 50).max(1);
            let chunk = per_round.div_ceil(block) * block;
            match FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 1, 1) {
                Ok(r) => Some(r),
                Err(e) => {
                    warn!(from, to, "streaming resampler refused the rates: {e}");
                    None
                }
            }
        };
        let skip = r.as_ref().map_or(0, |r| r.output_delay());
        Converter {
            r,
            pending: Vec::new(),
            skip,
            from,
            to,
            taken: 0,
            made: 0,
        }
    }

    fn emit(&mut self, y: Vec<f32>, out: &mut Vec<i16>) {
        let drop = self.skip.min(y.len());
        self.skip -= drop;
        for s in &y[drop..] {
            out.push((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
        }
    }

    fn push(&mut self, x: &[i16]) -> Vec<i16> {
        let Some(r) = self.r.as_mut() else {
            return self.nearest(x);
        };
        self.taken += x.len() as u64;
        self.pending
            .extend(x.iter().map(|&s| f32::from(s) / 32768.0));
        let mut out = Vec::new();
        let mut produced = Vec::new();
        loop {
            let need = r.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            match r.process(&[&self.pending[..need]], None) {
                Ok(y) => produced.push(y.into_iter().next().unwrap_or_default()),
                Err(e) => {
                    warn!("streaming resampling failed: {e}");
                    self.pending.clear();
                    break;
                }
            }
            self.pending.drain(..need);
        }
        for y in produced {
            self.emit(y, &mut out);
        }
        self.made += out.len() as u64;
        out
    }

    /// Conversion by nearest sample (no resampler): output sample `made`
    /// is input sample `made * from / to`.
    fn nearest(&mut self, x: &[i16]) -> Vec<i16> {
        if self.from == self.to || self.from == 0 || self.to == 0 {
            return x.to_vec();
        }
        let first = self.taken;
        self.taken += x.len() as u64;
        let mut out = Vec::new();
        loop {
            let src = self.made * u64::from(self.from) / u64::from(self.to);
            if src >= self.taken {
                break;
            }
            let i = usize::try_from(src - first).unwrap_or(usize::MAX);
            out.push(x.get(i).copied().unwrap_or(0));
            self.made += 1;
        }
        out
    }

    /// The rest: what is pending and the filter's tail, cut to the length
    /// the input calls for.
    fn finish(&mut self) -> Vec<i16> {
        let Some(r) = self.r.as_mut() else {
            return Vec::new();
        };
        let expected = self.taken * u64::from(self.to) / u64::from(self.from.max(1));
        let mut produced = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            match r.process_partial(Some(&[&pending[..]]), None) {
                Ok(y) => produced.push(y.into_iter().next().unwrap_or_default()),
                Err(e) => warn!("streaming resampling failed: {e}"),
            }
        }
        let mut tail = Vec::new();
        for y in produced {
            self.emit(y, &mut tail);
        }
        let mut rounds = 0;
        while self.made + (tail.len() as u64) < expected && rounds < 64 {
            let Some(r) = self.r.as_mut() else { break };
            match r.process_partial::<&[f32]>(None, None) {
                Ok(y) => {
                    let y = y.into_iter().next().unwrap_or_default();
                    self.emit(y, &mut tail);
                }
                Err(_) => break,
            }
            rounds += 1;
        }
        let room = expected.saturating_sub(self.made);
        tail.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        self.made += tail.len() as u64;
        tail
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_plays_what_arrived_and_ends_when_closed() {
        let (tx, mut clip) = StreamClip::channel(8000);
        let mut out = [0i16; 160];
        // Nothing yet: an underrun, not the end.
        assert_eq!(clip.read(&mut out, 8000), 0);
        assert!(!clip.is_finished());
        tx.try_send(vec![7; 100]).unwrap();
        tx.try_send(vec![9; 100]).unwrap();
        assert_eq!(clip.read(&mut out, 8000), 160);
        assert_eq!(out[99], 7);
        assert_eq!(out[100], 9);
        assert_eq!(clip.read(&mut out, 8000), 40);
        assert!(!clip.is_finished());
        drop(tx);
        assert!(clip.is_finished());
    }

    #[test]
    fn a_stream_at_another_rate_is_converted_by_the_reader() {
        let (tx, mut clip) = StreamClip::channel(16000);
        tx.try_send((0..320).map(|i| i as i16).collect()).unwrap();
        drop(tx);
        let mut out = [0i16; 200];
        assert_eq!(clip.read(&mut out, 8000), 160);
        assert_eq!(&out[..4], &[0, 2, 4, 6]);
        assert!(clip.is_finished());
    }

    fn tone(freq: f32, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn the_converter_streams_to_the_expected_length() {
        for (from, to) in [(8000, 16000), (16000, 8000), (8000, 8000)] {
            let mut c = Converter::new(from, to);
            let x = tone(440.0, from, from as usize); // one second
            let mut y = Vec::new();
            for chunk in x.chunks(333) {
                y.extend(c.push(chunk));
            }
            y.extend(c.finish());
            assert_eq!(y.len(), to as usize, "{from}->{to}");
            // The tone is there, not silence: the middle has energy.
            let mid = &y[y.len() / 4..y.len() / 2];
            let peak = mid.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 6000, "{from}->{to}: peak {peak}");
        }
    }

    #[test]
    fn the_fallback_conversion_keeps_the_length() {
        let mut c = Converter::new(8000, 16000);
        c.r = None;
        let mut y = Vec::new();
        for chunk in (0..8000).map(|i| i as i16).collect::<Vec<_>>().chunks(333) {
            y.extend(c.push(chunk));
        }
        y.extend(c.finish());
        assert_eq!(y.len(), 16000);
        assert_eq!(&y[..5], &[0, 0, 1, 1, 2]);
        assert_eq!(y[15999], 7999);
    }

    #[tokio::test]
    async fn the_feed_resamples_and_a_failed_fetch_ends_the_clip() {
        let (tx, rx) = mpsc::channel(8);
        let fetch = async move {
            Ok(Incoming {
                sample_rate: 8000,
                chunks: rx,
            })
        };
        let mut clip = spawn_feed(fetch, 16000, "m1".into());
        tx.send(tone(440.0, 8000, 800)).await.unwrap();
        drop(tx);
        let mut got = 0;
        let mut out = [0i16; 320];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !clip.is_finished() {
            got += clip.read(&mut out, 16000);
            assert!(tokio::time::Instant::now() < deadline, "no end");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(got, 1600);

        let mut failed = spawn_feed(async { Err("down".to_string()) }, 8000, "m2".into());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !failed.is_finished() {
            assert!(tokio::time::Instant::now() < deadline, "no end");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A site that stops sending mid-message (without closing) ends the
    /// message after [`STALL`]; what came before was played.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_ends() {
        let (tx, rx) = mpsc::channel(8);
        let fetch = async move {
            Ok(Incoming {
                sample_rate: 8000,
                chunks: rx,
            })
        };
        let mut clip = spawn_feed(fetch, 8000, "m3".into());
        tx.send(vec![5; 400]).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut got = 0;
        let mut out = [0i16; 160];
        while !clip.is_finished() {
            got += clip.read(&mut out, 8000);
            assert!(start.elapsed() < STALL * 2, "no end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got, 400);
        assert!(start.elapsed() >= STALL);
        drop(tx);
    }
}
