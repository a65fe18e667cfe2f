//! One task per answered deposit call: receives the caller's RTP, feeds the
//! jitter buffer, the DTMF decoder and the recording, and carries out what
//! the [`Deposit`] state machine asks. Prompts are sent by the [`Pacer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::call::{Action, Clip, Deposit, DepositPrompts, Opening, RecordingOutcome};
use crate::media::{RxConfig, SilenceDetector};
use crate::metrics::Metrics;
use crate::prompts::{GreetingCache, PromptSet};
use crate::store::{FsStore, MailboxId, RecordingInfo, RecordingWriter};

use super::call_messages::{CallCommand, CallEvent};
use super::media_clock::MediaTick;
use super::media_io::{
    wait_for_send_address, CallFlow, CallInputs, MediaIo, RtpSocket, Wake, SEND_ADDRESS_WAIT,
};
use super::menu_driver::{self, Logins, MenuCall};
use super::pacer::{PacerSlot, PlaybackDone, RemoteAddr};
use super::plan::DepositPlan;
use crate::ivr::{Menu, MenuConfig};

/// Everything a deposit call's driver needs.
pub struct CallSetup {
    pub call: u64,
    pub mailbox: MailboxId,
    /// Where the INVITE came from.
    pub peer: SocketAddr,
    pub socket: RtpSocket,
    pub tick: MediaTick,
    pub remote: RemoteAddr,
    pub rx: RxConfig,
    pub plan: DepositPlan,
    pub prompts: PromptSet,
    /// Decoded personal greetings, shared by the calls.
    pub greetings: Arc<GreetingCache>,
    pub store: FsStore,
    pub recording: RecordingInfo,
    pub slot: PacerSlot,
    pub done_rx: mpsc::UnboundedReceiver<PlaybackDone>,
    pub commands: mpsc::UnboundedReceiver<CallCommand>,
    pub events: mpsc::UnboundedSender<CallEvent>,
    pub metrics: Arc<Metrics>,
    /// Where `0` transfers the caller (`None`: nowhere, the key does
    /// nothing).
    pub operator: Option<String>,
    /// What `*` during the greeting needs to become the login of this
    /// mailbox (`None`: the mailbox does not exist yet, `*` does nothing).
    pub login: Option<LoginSetup>,
    /// SRTP: how the caller's packets are unprotected.
    pub srtp: Option<crate::media::SrtpRx>,
}

/// The menu settings of a deposit call whose caller may press `*`.
pub struct LoginSetup {
    pub time_zone: crate::config::TimeZone,
    pub lockout_failures: u32,
    pub lockout_seconds: u64,
    pub max_greeting: Duration,
    pub logins: Arc<Logins>,
    /// The sites serving the domain (the menu lists their messages too).
    pub sites: Arc<crate::sites::Sites>,
    /// Counts the login against the access-number rate limit of the
    /// caller's address (`Err`: refused).
    pub access: Arc<dyn Fn(std::net::IpAddr) -> Result<(), u64> + Send + Sync>,
}

struct Recording {
    writer: RecordingWriter,
    silence: SilenceDetector,
    silence_limit_ms: u64,
    max_samples: u64,
    limit_reported: bool,
    /// Review or transfer: the caller's audio is not written.
    paused: bool,
}

/// Runs the call to its end.
pub async fn drive(setup: CallSetup) {
    let CallSetup {
        call,
        mailbox,
        peer,
        socket,
        tick,
        remote,
        rx: rx_config,
        plan,
        prompts,
        greetings,
        store,
        recording: info,
        slot,
        done_rx,
        commands,
        events,
        metrics,
        operator,
        login,
        srtp,
    } = setup;
    let menu_prompts = prompts.clone();
    let language = plan.language.clone();
    let mut to_menu = false;
    let mut media = MediaIo::new(socket, remote, rx_config, peer.ip()).with_srtp(srtp);
    // The recording's rate: the caller's codec's (8000, or 16000 for
    // G.722 and Opus).
    let rate = media.receiver.sample_rate();
    let mut recording: Option<Recording> = None;
    let mut recording_started = false;
    let create = plan.create.clone();
    let mut inputs = CallInputs::new(tick, done_rx, commands);

    // Greetings are files of the mailbox: read and decode them off the
    // async threads.
    let (mut deposit, opening) = {
        let store = store.clone();
        let mailbox = mailbox.clone();
        let limits = plan.limits.clone();
        match tokio::task::spawn_blocking(move || {
            plan.prepare(&store, &prompts, &greetings, &mailbox)
        })
        .await
        {
            Ok((p, opening)) => (Deposit::new(limits, p), opening),
            Err(e) => {
                warn!("preparing the call failed: {e}");
                (
                    Deposit::new(limits, DepositPrompts::default()),
                    Opening::StoreUnavailable,
                )
            }
        }
    };
    // The greeting waits (a little) until vmail knows where to send it.
    let digits = wait_for_send_address(&mut inputs, &mut media, &metrics, SEND_ADDRESS_WAIT).await;
    let now = Instant::now().into_std();
    deposit.start(now, opening);
    for d in digits {
        deposit.on_dtmf(now, d);
    }
    if inputs.hung_up {
        deposit.on_hangup(now);
    }
    loop {
        // Carry out what the flow asks.
        while let Some(action) = deposit.poll_action() {
            debug!(?action, "deposit action");
            match action {
                Action::Play(clips) => {
                    inputs.generation += 1;
                    slot.play(clips, inputs.generation);
                }
                Action::StopPlayback => {
                    inputs.generation += 1;
                    slot.stop();
                }
                Action::StartRecording { silence, max } => {
                    recording_started = true;
                    let now = SystemTime::now();
                    let begun = match &create {
                        Some(settings) => store.begin_recording_creating(
                            &mailbox,
                            settings.clone(),
                            info.clone(),
                            now,
                        ),
                        None => store.begin_recording(&mailbox, info.clone(), now),
                    };
                    match begun {
                        Ok(writer) => {
                            // The message's notifications are queued before it exists.
                            store_notifier(&mailbox, writer.id());
                            recording = Some(Recording {
                                writer,
                                silence: SilenceDetector::new(rate),
                                silence_limit_ms: silence.as_millis() as u64,
                                max_samples: max.as_millis() as u64 * u64::from(rate / 1000),
                                limit_reported: false,
                                paused: false,
                            });
                        }
                        Err(e) => {
                            warn!("cannot start recording: {e}");
                            deposit.on_store_error(Instant::now().into_std());
                        }
                    }
                }
                Action::StopRecording { min } => {
                    let outcome = match recording.take() {
                        Some(mut rec) => {
                            if !rec.paused {
                                media.receiver.flush(&mut |pcm| {
                                    let _ = rec.writer.append(pcm);
                                });
                            }
                            close_recording(rec.writer, min, &metrics).await
                        }
                        None => RecordingOutcome::Failed,
                    };
                    deposit.on_recording_closed(Instant::now().into_std(), outcome);
                }
                Action::PauseRecording => {
                    if let Some(rec) = recording.as_mut() {
                        // What the jitter buffer holds was said before the key.
                        if !rec.paused {
                            media.receiver.flush(&mut |pcm| {
                                let _ = rec.writer.append(pcm);
                            });
                        }
                        rec.paused = true;
                    }
                }
                Action::ResumeRecording => {
                    if let Some(rec) = recording.as_mut() {
                        // What came during the transfer is not part of it.
                        media.drain(&mut |_| {});
                        rec.paused = false;
                        rec.silence = SilenceDetector::new(rate);
                    }
                }
                Action::DiscardRecording => {
                    if let Some(rec) = recording.take() {
                        let writer = rec.writer;
                        match tokio::task::spawn_blocking(move || writer.discard()).await {
                            Ok(Ok(())) => info!("recording discarded"),
                            Ok(Err(e)) => warn!("discarding the recording failed: {e}"),
                            Err(e) => warn!("discarding the recording failed: {e}"),
                        }
                    }
                }
                Action::PlayRecording => {
                    let audio = match recording.take() {
                        Some(mut rec) => {
                            let read = tokio::task::spawn_blocking(move || {
                                let audio = rec.writer.audio();
                                (rec, audio)
                            })
                            .await;
                            match read {
                                Ok((rec, audio)) => {
                                    recording = Some(rec);
                                    audio.map_err(|e| e.to_string())
                                }
                                // The writer is gone with the task; its
                                // files stay in tmp/ for the recovery.
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        None => Ok(Vec::new()),
                    };
                    match audio {
                        Ok(pcm) if !pcm.is_empty() => {
                            inputs.generation += 1;
                            slot.play(vec![Clip::at_rate(pcm, rate)], inputs.generation);
                        }
                        Ok(_) => deposit.on_playback_done(Instant::now().into_std()),
                        Err(e) => {
                            warn!("reading the recording back failed: {e}");
                            if recording.is_some() {
                                deposit.on_playback_done(Instant::now().into_std());
                            } else {
                                deposit.on_store_error(Instant::now().into_std());
                            }
                        }
                    }
                }
                Action::SetUrgent(urgent) => {
                    if let Some(rec) = recording.as_mut() {
                        match rec.writer.set_urgent(urgent) {
                            Ok(()) => info!(urgent, "message urgency set by the caller"),
                            Err(e) => warn!("marking the message urgent failed: {e}"),
                        }
                    }
                }
                Action::Transfer => match &operator {
                    Some(target) => {
                        info!(%target, "caller asked for the operator: transferring");
                        let _ = events.send(CallEvent::Transfer {
                            call,
                            target: target.clone(),
                            referred_by: format!("sip:{}@{}", mailbox.user(), mailbox.domain()),
                        });
                    }
                    None => deposit.on_transfer(Instant::now().into_std(), false),
                },
                Action::Login => {
                    let now = Instant::now().into_std();
                    match &login {
                        Some(l) if (l.access)(peer.ip()).is_ok() => to_menu = true,
                        Some(_) => {
                            info!("* in the greeting: login refused by the rate limit");
                            deposit.on_login_refused(now);
                        }
                        None => deposit.on_login_refused(now),
                    }
                }
                Action::Hangup => {
                    if !inputs.hung_up {
                        inputs.hung_up = true;
                        let _ = events.send(CallEvent::Hangup { call });
                    }
                }
                Action::Done => {}
            }
            if to_menu {
                break;
            }
        }
        if to_menu || deposit.is_done() {
            break;
        }

        let deadline = deposit.poll_timeout();
        let wake = inputs.next(&mut deposit, &mut media, deadline).await;
        if wake == Wake::Other {
            continue;
        }
        let now = Instant::now().into_std();
        match media.try_recv(&metrics) {
            Some(is_media) => {
                inputs.read_on(wake);
                if is_media {
                    deposit.on_media(now);
                }
                take_audio(&mut media, &mut recording, &mut deposit, &metrics, now);
                while let Some(digit) = media.poll_digit(now) {
                    deposit.on_dtmf(now, digit);
                }
            }
            None if wake == Wake::Hangup => {
                if !recording_started && opening == Opening::Record {
                    info!("caller hung up before the beep: no message to store");
                }
                deposit.on_hangup(now);
            }
            None => {}
        }
    }
    if let (true, Some(l)) = (to_menu, login) {
        // `*` in the greeting: the login of this mailbox, and only of it
        // (the menu asks its PIN; no other mailbox, no dial-out).
        info!("* in the greeting: to the login of the mailbox");
        let domain = mailbox.domain().to_string();
        let mut cfg = MenuConfig::new(domain.clone());
        cfg.max_greeting = l.max_greeting;
        let menu_call = MenuCall {
            call,
            domain,
            menu: Menu::new(cfg, Some(mailbox.user().to_string())),
            peer,
            language,
            time_zone: l.time_zone,
            lockout_failures: l.lockout_failures,
            lockout_seconds: l.lockout_seconds,
            logins: l.logins,
            prompts: menu_prompts,
            store,
            sites: l.sites,
            slot,
            events,
            metrics,
        };
        menu_driver::run(menu_call, media, inputs, Vec::new()).await;
        return;
    }
    media.fold_metrics(&metrics);
    let stats = media.receiver.stats();
    info!(
        received = stats.received,
        lost = stats.lost,
        late = stats.late,
        "call ended"
    );
    slot.unregister();
    let _ = events.send(CallEvent::Ended { call });
}

/// Audio released by the jitter buffer: into the recording, if one is
/// running, and past its silence and length limits.
fn take_audio(
    media: &mut MediaIo,
    recording: &mut Option<Recording>,
    deposit: &mut Deposit,
    metrics: &Metrics,
    now: std::time::Instant,
) {
    let Some(rec) = recording.as_mut().filter(|r| !r.paused) else {
        media.drain(&mut |_| {});
        return;
    };
    let mut failed = false;
    media.drain(&mut |pcm| {
        rec.silence.feed(pcm);
        if rec.writer.append(pcm).is_err() {
            failed = true;
        }
    });
    if failed {
        warn!("writing the recording failed");
        if let Some(rec) = recording.take() {
            let _ = rec.writer.discard();
        }
        metrics.messages_failed.inc();
        deposit.on_store_error(now);
    } else if !rec.limit_reported {
        if rec.silence.silent_ms() >= rec.silence_limit_ms {
            rec.limit_reported = true;
            deposit.on_silence(now);
        } else if rec.writer.samples() >= rec.max_samples {
            rec.limit_reported = true;
            deposit.on_max_length(now);
        }
    }
}

/// Completes (or drops) a recording off the async threads: fsync and renames.
async fn close_recording(
    writer: RecordingWriter,
    min: Duration,
    metrics: &Metrics,
) -> RecordingOutcome {
    // No audio at all (the caller hung up at the beep) is nothing to
    // store, whatever the configured minimum.
    let too_short = writer.samples() == 0 || writer.duration_ms() < min.as_millis() as u64;
    let result = tokio::task::spawn_blocking(move || {
        let mailbox = writer.mailbox().clone();
        let id = writer.id().to_string();
        let notifier = crate::notify::installed();
        let r = if too_short {
            writer.discard().map(|()| None)
        } else {
            writer.finish().map(Some)
        };
        match (&r, notifier) {
            (Ok(Some(meta)), Some(n)) => n.message_stored(&mailbox, meta),
            (Ok(None), Some(n)) => n.message_dropped(&mailbox, &id),
            _ => {}
        }
        r
    })
    .await;
    match result {
        Ok(Ok(Some(meta))) => {
            metrics.message_stored(Duration::from_millis(meta.duration_ms));
            info!(id = %meta.id, duration_ms = meta.duration_ms, "message stored");
            RecordingOutcome::Stored
        }
        Ok(Ok(None)) => {
            metrics.messages_discarded.inc();
            info!("message shorter than the minimum: dropped");
            RecordingOutcome::Discarded
        }
        Ok(Err(e)) => {
            metrics.messages_failed.inc();
            warn!("storing the message failed: {e}");
            RecordingOutcome::Failed
        }
        Err(e) => {
            metrics.messages_failed.inc();
            warn!("storing the message failed: {e}");
            RecordingOutcome::Failed
        }
    }
}

/// Queues the notifications of the message `id` whose recording started.
fn store_notifier(mailbox: &crate::store::MailboxId, id: &str) {
    if let Some(n) = crate::notify::installed() {
        n.message_recording(mailbox, id);
    }
}

impl CallFlow for Deposit {
    fn digit(&mut self, now: std::time::Instant, digit: char) {
        self.on_dtmf(now, digit);
    }
    fn playback_done(&mut self, now: std::time::Instant) {
        self.on_playback_done(now);
    }
    fn timeout(&mut self, now: std::time::Instant) {
        self.handle_timeout(now);
    }
    fn transfer_ended(&mut self, now: std::time::Instant, succeeded: bool) {
        self.on_transfer(now, succeeded);
    }
}
