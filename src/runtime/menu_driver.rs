//! One task per answered call to an access number: runs the mailbox menu
//! ([`Menu`]), renders what it wants said into prompts, carries out its
//! store operations off the async threads (one at a time, in order), and
//! records greetings into memory until the subscriber accepts one.
//!
//! Sites (SPEC §10): the message list is this site's merged with the other
//! sites' that serve the domain ([`Sites::list`]); each listed message
//! remembers where it is kept. The audio of a message kept at another site
//! is streamed to the caller as it arrives ([`StreamClip`]), its fetch
//! started while "Message N" plays; its changes go to its site, and a site
//! that cannot be reached changes nothing (the menu says so).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::call::Clip;
use crate::ivr::{Action, Audio, ForwardError, Menu, PinReply, StoreOp, StoreReply, WAIT_PROMPT};
use crate::media::RxConfig;
use crate::metrics::Metrics;
use crate::prompts::PromptSet;
use crate::sites::{Home, RemoteError, Sites};
use crate::store::{Folder, FsStore, MailboxId, StoreError};

use super::call_messages::{CallCommand, CallEvent};
use super::media_clock::MediaTick;
use super::media_io::{
    wait_for_send_address, CallFlow, CallInputs, MediaIo, RtpSocket, Wake, SEND_ADDRESS_WAIT,
};
use super::pacer::{PacerSlot, Playable, PlaybackDone, RemoteAddr};
use super::pin_login::{self, Lockout, LoggedIn, PinLogin};
use super::pin_pool::{self, PinPermit, PinPool};
use super::stream_clip::{spawn_feed, Incoming, StreamClip};

/// Everything a menu call's driver needs.
pub struct MenuSetup {
    pub call: u64,
    pub domain: String,
    pub menu: Menu,
    pub peer: SocketAddr,
    pub socket: RtpSocket,
    pub tick: MediaTick,
    pub remote: RemoteAddr,
    pub rx: RxConfig,
    pub language: String,
    pub time_zone: crate::config::TimeZone,
    pub lockout_failures: u32,
    pub lockout_seconds: u64,
    pub logins: Arc<Logins>,
    pub prompts: PromptSet,
    pub store: FsStore,
    /// The sites serving the domain (messages kept elsewhere).
    pub sites: Arc<Sites>,
    pub slot: PacerSlot,
    pub done_rx: mpsc::UnboundedReceiver<PlaybackDone>,
    pub commands: mpsc::UnboundedReceiver<CallCommand>,
    pub events: mpsc::UnboundedSender<CallEvent>,
    pub metrics: Arc<Metrics>,
    /// SRTP: how the caller's packets are unprotected.
    pub srtp: Option<crate::media::SrtpRx>,
}

/// What every menu call of the process shares for PIN logins.
pub struct Logins {
    /// The bounded pool the PIN checks run in.
    pub pool: Arc<PinPool>,
}

impl Logins {
    /// `workers` PIN checks at once (0: a few per core), `queue` waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        Logins {
            pool: PinPool::new(workers, queue),
        }
    }
}

/// Who is logged in, and how they want to hear things.
#[derive(Clone)]
struct Session {
    logins: Arc<Logins>,
    domain: String,
    mailbox: Option<MailboxId>,
    language: String,
    time_zone: crate::config::TimeZone,
    lockout_failures: u32,
    lockout_seconds: u64,
    peer: SocketAddr,
}

/// Runs the menu call to its end.
pub async fn drive(setup: MenuSetup) {
    let MenuSetup {
        call,
        domain,
        menu,
        peer,
        socket,
        tick,
        remote,
        rx,
        language,
        time_zone,
        lockout_failures,
        lockout_seconds,
        logins,
        prompts,
        store,
        sites,
        slot,
        done_rx,
        commands,
        events,
        metrics,
        srtp,
    } = setup;
    let mut media = MediaIo::new(socket, remote, rx, peer.ip()).with_srtp(srtp);
    let mut inputs = CallInputs::new(tick, done_rx, commands);
    // The first prompt waits (a little) until vmail knows where to send it.
    let digits = wait_for_send_address(&mut inputs, &mut media, &metrics, SEND_ADDRESS_WAIT).await;
    let menu_call = MenuCall {
        call,
        domain,
        menu,
        peer,
        language,
        time_zone,
        lockout_failures,
        lockout_seconds,
        logins,
        prompts,
        store,
        sites,
        slot,
        events,
        metrics,
    };
    run(menu_call, media, inputs, digits).await;
}

/// A menu call without its media: what a deposit call hands over when
/// its caller presses `*` during the greeting.
pub struct MenuCall {
    pub call: u64,
    pub domain: String,
    pub menu: Menu,
    pub peer: SocketAddr,
    pub language: String,
    pub time_zone: crate::config::TimeZone,
    pub lockout_failures: u32,
    pub lockout_seconds: u64,
    pub logins: Arc<Logins>,
    pub prompts: PromptSet,
    pub store: FsStore,
    pub sites: Arc<Sites>,
    pub slot: PacerSlot,
    pub events: mpsc::UnboundedSender<CallEvent>,
    pub metrics: Arc<Metrics>,
}

/// Runs the menu on a call whose media is up (`digits`: keys already
/// pressed) to the call's end.
pub async fn run(c: MenuCall, mut media: MediaIo, mut inputs: CallInputs, digits: Vec<char>) {
    let MenuCall {
        call,
        domain,
        mut menu,
        peer,
        language,
        time_zone,
        lockout_failures,
        lockout_seconds,
        logins,
        prompts,
        store,
        sites,
        slot,
        events,
        metrics,
    } = c;
    let mut session = Session {
        logins,
        domain,
        mailbox: None,
        language,
        time_zone,
        lockout_failures,
        lockout_seconds,
        peer,
    };
    // Greeting recording: in memory until accepted.
    let mut recording: Option<(Vec<i16>, usize)> = None;
    let mut last_recording: Vec<i16> = Vec::new();
    // Recordings (greetings) are kept at the rate the caller's codec
    // decodes to: 8000, or 16000 for G.722 and Opus.
    let rate = media.receiver.sample_rate();
    let per_ms = (rate / 1000).max(1) as usize;
    // Ops the menu emitted; run one at a time in order.
    let mut ops: std::collections::VecDeque<StoreOp> = std::collections::VecDeque::new();
    // Where the listed messages kept at other sites are, by id; the audio
    // of one fetched ahead of its playing.
    let mut remote = Remote {
        sites,
        homes: std::collections::HashMap::new(),
        prefetched: None,
        rate: stream_rate(rate),
    };

    let now = Instant::now().into_std();
    menu.start(now);
    for d in digits {
        menu.digit(now, d);
    }
    if inputs.hung_up {
        menu.on_hangup(now);
    }
    loop {
        while let Some(action) = menu.poll_action() {
            debug!(?action, "menu action");
            match action {
                Action::Play(items) => {
                    inputs.generation += 1;
                    let clips = render(
                        &items,
                        &prompts,
                        &store,
                        &session,
                        &mut remote,
                        (&last_recording, rate),
                    )
                    .await;
                    slot.play_items(clips, inputs.generation);
                }
                Action::Prefetch(msg) => remote.prefetch(&session, &msg),
                Action::StopPlayback => {
                    inputs.generation += 1;
                    slot.stop();
                }
                Action::StartRecording { max } => {
                    let max_samples = (max.as_millis() as usize) * per_ms;
                    recording = Some((Vec::with_capacity(per_ms * 10_000), max_samples));
                }
                Action::StopRecording => {
                    if let Some((pcm, _)) = recording.take() {
                        let ms = (pcm.len() / per_ms) as u64;
                        last_recording = pcm;
                        menu.on_recording_done(Instant::now().into_std(), ms);
                    }
                }
                Action::Store(op) => ops.push_back(op),
                Action::Hangup => {
                    if !inputs.hung_up {
                        inputs.hung_up = true;
                        let _ = events.send(CallEvent::Hangup { call });
                    }
                }
                Action::Done => {}
            }
            // Store operations, in order, each answered before the next.
            while let Some(op) = ops.pop_front() {
                let reply_expected = !matches!(op, StoreOp::Delete { .. });
                // Every argon2 hash runs in the pool: PIN checks (bounded
                // queue) and PIN changes (they wait).
                let login = matches!(op, StoreOp::VerifyPin { .. });
                let permit = if login || matches!(op, StoreOp::SetPin { .. }) {
                    let turn = Turn {
                        prompts: &prompts,
                        slot: &slot,
                        session: &session,
                        bounded: login,
                    };
                    match turn.take(&mut inputs, &mut media).await {
                        PinTurn::Go(p) => Some(p),
                        PinTurn::Busy => {
                            let reply = if login {
                                StoreReply::Pin(PinReply::Busy)
                            } else {
                                StoreReply::Failed
                            };
                            menu.on_store(Instant::now().into_std(), reply);
                            continue;
                        }
                        PinTurn::HungUp => {
                            if !menu.is_done() {
                                menu.on_hangup(Instant::now().into_std());
                            }
                            continue;
                        }
                    }
                } else {
                    None
                };
                let reply = match remote.site_of(&op) {
                    Some(site) => remote.run_op(op, &site, &store, &session).await,
                    None if op == StoreOp::LoadMessages => remote.load(&store, &session).await,
                    None => run_op(op, &store, &mut session, (&last_recording, rate), permit).await,
                };
                if reply_expected && !menu.is_done() {
                    menu.on_store(Instant::now().into_std(), reply);
                }
            }
        }
        if menu.is_done() {
            break;
        }
        let deadline = menu.poll_timeout();
        let wake = inputs.next(&mut menu, &mut media, deadline).await;
        if wake == Wake::Other {
            continue;
        }
        let now = Instant::now().into_std();
        if media.try_recv(&metrics).is_none() {
            if wake == Wake::Hangup {
                menu.on_hangup(now);
            }
            continue;
        }
        inputs.read_on(wake);
        let mut full = false;
        media.drain(&mut |pcm| {
            if let Some((buf, max)) = recording.as_mut() {
                let room = max.saturating_sub(buf.len());
                buf.extend_from_slice(pcm.get(..room.min(pcm.len())).unwrap_or(&[]));
                full = buf.len() >= *max;
            }
        });
        if full {
            if let Some((pcm, _)) = recording.take() {
                let ms = (pcm.len() / per_ms) as u64;
                last_recording = pcm;
                menu.on_recording_done(now, ms);
            }
        }
        while let Some(digit) = media.poll_digit(now) {
            menu.on_digit(now, digit);
        }
    }
    media.fold_metrics(&metrics);
    info!(mailbox = ?session.mailbox.as_ref().map(|m| m.to_string()), "menu call ended");
    slot.unregister();
    let _ = events.send(CallEvent::Ended { call });
}

/// Runs one store operation off the async threads.
async fn run_op(
    op: StoreOp,
    store: &FsStore,
    session: &mut Session,
    (last_recording, rate): (&[i16], u32),
    permit: Option<PinPermit>,
) -> StoreReply {
    let store = store.clone();
    let s = session.clone();
    let recording = match op {
        StoreOp::SaveGreeting { .. } => last_recording.to_vec(),
        _ => Vec::new(),
    };
    let result = tokio::task::spawn_blocking(move || {
        // A PIN check holds its turn in the pool until it is done.
        let _permit = permit;
        blocking_op(op, &store, s, &recording, rate)
    })
    .await;
    match result {
        Ok((reply, Some(logged_in))) => {
            session.mailbox = Some(logged_in.mailbox);
            if let Some(lang) = logged_in.language {
                session.language = lang;
            }
            if let Some(zone) = logged_in.time_zone {
                session.time_zone = zone;
            }
            reply
        }
        Ok((reply, None)) => reply,
        Err(e) => {
            warn!("store operation panicked: {e}");
            StoreReply::Failed
        }
    }
}

fn blocking_op(
    op: StoreOp,
    store: &FsStore,
    s: Session,
    recording: &[i16],
    rate: u32,
) -> (StoreReply, Option<LoggedIn>) {
    let fail = |what: &str, e: StoreError| {
        warn!("{what} failed: {e}");
        StoreReply::Failed
    };
    if let StoreOp::VerifyPin { mailbox, pin } = op {
        return verify_pin(store, &s, &mailbox, &pin);
    }
    let Some(id) = s.mailbox.clone() else {
        return (StoreReply::Failed, None);
    };
    let reply = match op {
        StoreOp::VerifyPin { .. } => StoreReply::Failed,
        // Listed through the sites (`Remote::load`).
        StoreOp::LoadMessages => StoreReply::Failed,
        StoreOp::MoveTo { msg, folder } => {
            let r = store
                .move_message(&id, &msg, folder)
                .and_then(|()| store.set_heard(&id, &msg, !folder.is_new()));
            match r {
                Ok(()) => {
                    info!(mailbox = %id, id = %msg, folder = %folder, "message saved to a folder");
                    StoreReply::Done
                }
                Err(e) => fail("saving a message to a folder", e),
            }
        }
        StoreOp::MoveToOld { msg } => {
            let was_heard = store.message(&id, &msg).ok().flatten().map(|m| m.heard);
            let r = store
                .move_message(&id, &msg, Folder::Old)
                .and_then(|()| store.set_heard(&id, &msg, true));
            match r {
                Ok(()) => {
                    crate::notify::heard_if_new(store, &id, &msg, was_heard);
                    StoreReply::Done
                }
                Err(e) => fail("moving a message to Old", e),
            }
        }
        StoreOp::Delete { msg } | StoreOp::DeleteNow { msg } => {
            match crate::notify::delete_message(store, &id, &msg) {
                Ok(()) => StoreReply::Done,
                Err(e) if e.is_not_found() => StoreReply::Done,
                Err(e) => fail("deleting a message", e),
            }
        }
        StoreOp::Forward { msg, to_user } => {
            let to = match MailboxId::new(&to_user, &s.domain) {
                Ok(to) => to,
                Err(_) => {
                    return (
                        StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)),
                        None,
                    )
                }
            };
            match store.mailbox(&to) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return (
                        StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)),
                        None,
                    )
                }
                Err(e) => {
                    warn!("forward lookup failed: {e}");
                    return (StoreReply::Forwarded(Err(ForwardError::Failed)), None);
                }
            }
            match store.copy_message(&id, &msg, &to, &id.to_string()) {
                Ok(new_id) => {
                    info!(from = %id, to = %to, id = %new_id, "message forwarded");
                    crate::notify::forwarded(store, &to, &new_id);
                    StoreReply::Forwarded(Ok(()))
                }
                Err(e) => {
                    warn!("forwarding failed: {e}");
                    StoreReply::Forwarded(Err(ForwardError::Failed))
                }
            }
        }
        StoreOp::SaveGreeting { kind } => match store.store_greeting(&id, kind, recording, rate) {
            Ok(()) => StoreReply::Done,
            Err(e) => fail("saving a greeting", e),
        },
        StoreOp::DeleteGreeting { kind } => match store.delete_greeting(&id, kind) {
            Ok(()) => StoreReply::Done,
            Err(e) if e.is_not_found() => StoreReply::Done,
            Err(e) => fail("deleting a greeting", e),
        },
        StoreOp::SetPin { pin } => match store.set_pin(&id, &pin) {
            Ok(()) => {
                info!(mailbox = %id, "PIN changed");
                StoreReply::Done
            }
            Err(e) => fail("setting the PIN", e),
        },
    };
    (reply, None)
}

/// The outcome of waiting for a turn in the PIN hashing pool.
enum PinTurn {
    Go(PinPermit),
    /// The queue is full (or the pool is gone): nothing is checked.
    Busy,
    /// The caller hung up while waiting.
    HungUp,
}

/// What a call needs to wait for its PIN check's turn.
struct Turn<'a> {
    prompts: &'a PromptSet,
    slot: &'a PacerSlot,
    session: &'a Session,
    /// Refuse when the queue is full (a PIN check), or wait (a PIN change).
    bounded: bool,
}

impl Turn<'_> {
    /// Takes a turn in the hashing pool. When the call has to wait, it
    /// hears "please wait" meanwhile, and a hang-up leaves the queue.
    async fn take(&self, inputs: &mut CallInputs, media: &mut MediaIo) -> PinTurn {
        let pool = &self.session.logins.pool;
        let entry = if self.bounded {
            pool.enter()
        } else {
            pool.enter_unbounded()
        };
        let queued = match entry {
            pin_pool::Entry::Ready(p) => return PinTurn::Go(p),
            pin_pool::Entry::Full => {
                warn!(
                    peer = %self.session.peer,
                    workers = pool.workers(),
                    waiting = pool.waiting(),
                    "PIN check refused: the hashing queue is full"
                );
                return PinTurn::Busy;
            }
            pin_pool::Entry::Queued(q) => q,
        };
        debug!(
            waiting = pool.waiting(),
            "PIN check waits for a hashing turn"
        );
        inputs.generation += 1;
        let clips = self
            .prompts
            .get(&self.session.language, WAIT_PROMPT)
            .into_iter()
            .collect();
        self.slot.play(clips, inputs.generation);
        let turn = queued.turn();
        tokio::pin!(turn);
        let outcome = loop {
            tokio::select! {
                permit = &mut turn => break permit.map_or(PinTurn::Busy, PinTurn::Go),
                cmd = inputs.commands.recv() => match cmd {
                    Some(CallCommand::Hangup) | None => {
                        inputs.hung_up = true;
                        break PinTurn::HungUp;
                    }
                    Some(CallCommand::Media(cfg, addr, sends)) => media.apply(cfg, addr, sends),
                    Some(CallCommand::Ack) => media.on_ack(),
                    Some(CallCommand::SrtpKey(rx)) => media.set_srtp(*rx),
                    // Keys while the PIN is checked are dropped; the menu
                    // transfers nothing.
                    Some(CallCommand::Dtmf(_) | CallCommand::TransferEnded(_)) => {}
                },
            }
        };
        // The wait prompt ends here; its "done" is stale.
        inputs.generation += 1;
        self.slot.stop();
        outcome
    }
}

/// The phone's PIN login: [`pin_login::verify_pin`] with the call's
/// domain and lockout, its answer as the menu's reply.
fn verify_pin(
    store: &FsStore,
    s: &Session,
    user: &str,
    pin: &str,
) -> (StoreReply, Option<LoggedIn>) {
    let lockout = Lockout {
        failures: s.lockout_failures,
        seconds: s.lockout_seconds,
    };
    match pin_login::verify_pin(store, &s.domain, user, pin, lockout, &s.peer) {
        PinLogin::Ok(logged_in) => (StoreReply::Pin(PinReply::Ok), Some(logged_in)),
        PinLogin::Wrong => (StoreReply::Pin(PinReply::Wrong), None),
        PinLogin::NoSuchMailbox => (StoreReply::Pin(PinReply::NoSuchMailbox), None),
        PinLogin::Locked { until } => (StoreReply::Pin(PinReply::Locked { until }), None),
        PinLogin::Failed => (StoreReply::Failed, None),
    }
}

/// Turns what the menu wants said into audio clips.
async fn render(
    items: &[Audio],
    prompts: &PromptSet,
    store: &FsStore,
    s: &Session,
    remote: &mut Remote,
    (last_recording, rate): (&[i16], u32),
) -> Vec<Playable> {
    let mut out: Vec<Playable> = Vec::new();
    let mut clips: Vec<Clip> = Vec::new();
    for item in items {
        if let Audio::Message(id) = item {
            if remote.homes.contains_key(id) {
                out.extend(clips.drain(..).map(Playable::Clip));
                if let Some(stream) = remote.stream(s, id) {
                    out.push(Playable::Stream(stream));
                }
                continue;
            }
        }
        clips.extend(render_local(item, prompts, store, s, (last_recording, rate)).await);
    }
    out.extend(clips.into_iter().map(Playable::Clip));
    out
}

/// One item of a playlist, decoded (all but a remote message's audio).
async fn render_local(
    item: &Audio,
    prompts: &PromptSet,
    store: &FsStore,
    s: &Session,
    (last_recording, rate): (&[i16], u32),
) -> Vec<Clip> {
    let lang = s.language.as_str();
    let mut out: Vec<Clip> = Vec::new();
    {
        match item {
            Audio::Prompt(name) => out.extend(prompts.get(lang, name)),
            Audio::Digits(d) => out.extend(prompts.digits(lang, d)),
            Audio::Number(n) => out.extend(prompts.number(lang, *n)),
            Audio::NumberGendered(n, g) => out.extend(prompts.number_gendered(lang, *n, *g)),
            Audio::Counted { n, one, many } => out.extend(prompts.counted(lang, *n, one, many)),
            Audio::Message(id) => {
                if let Some(clip) = load_message(store, s, id).await {
                    out.push(clip);
                }
            }
            Audio::DateTime(received) => {
                let Ok(at) = time::OffsetDateTime::parse(
                    received,
                    &time::format_description::well_known::Rfc3339,
                ) else {
                    return out;
                };
                let local = s.time_zone.local(at);
                let today = s.time_zone.local(time::OffsetDateTime::now_utc()).date();
                out.extend(prompts.date_time(
                    lang,
                    time::PrimitiveDateTime::new(local.date(), local.time()),
                    today,
                ));
            }
            Audio::LastRecording => {
                if !last_recording.is_empty() {
                    out.push(Clip::at_rate(last_recording.to_vec(), rate));
                }
            }
        }
    }
    out
}

async fn load_message(store: &FsStore, s: &Session, msg: &str) -> Option<Clip> {
    let id = s.mailbox.clone()?;
    let store = store.clone();
    let msg = msg.to_owned();
    tokio::task::spawn_blocking(move || {
        let path = store.message_audio_path(&id, &msg).ok()??;
        let bytes = std::fs::read(path).ok()?;
        crate::prompts::decode_prompt(bytes, Some("wav")).ok()
    })
    .await
    .ok()
    .flatten()
}

/// The rate the audio of a remote message is streamed at: the call's
/// (16 kHz for wideband codecs, 8 kHz for the others), as the pacer plays
/// decoded clips (`Clip::samples_at`).
fn stream_rate(call_rate: u32) -> u32 {
    if call_rate == crate::prompts::WIDE_RATE {
        crate::prompts::WIDE_RATE
    } else {
        crate::prompts::SAMPLE_RATE
    }
}

/// A call's view of the messages kept at other sites.
struct Remote {
    sites: Arc<Sites>,
    /// Site of every listed message kept elsewhere, by id.
    homes: std::collections::HashMap<String, String>,
    /// A remote message's audio, fetched since its "Message N" started.
    prefetched: Option<(String, StreamClip)>,
    /// The rate streams are made at.
    rate: u32,
}

impl Remote {
    /// The site of the remote message `op` changes, if it is one.
    fn site_of(&self, op: &StoreOp) -> Option<String> {
        let msg = match op {
            StoreOp::MoveToOld { msg }
            | StoreOp::MoveTo { msg, .. }
            | StoreOp::Delete { msg }
            | StoreOp::DeleteNow { msg }
            | StoreOp::Forward { msg, .. } => msg,
            _ => return None,
        };
        self.homes.get(msg).cloned()
    }

    /// The merged listing: this site's and the other sites' messages.
    async fn load(&mut self, store: &FsStore, s: &Session) -> StoreReply {
        let Some(id) = s.mailbox.clone() else {
            return StoreReply::Failed;
        };
        let merged = match self.sites.list(store, &id, None).await {
            Ok(m) => m,
            Err(e) => {
                warn!(mailbox = %id, "listing messages failed: {e}");
                return StoreReply::Failed;
            }
        };
        if merged.partial() {
            info!(
                mailbox = %id,
                unreachable = ?merged.unreachable,
                "message listing is partial: some sites cannot be reached"
            );
        }
        self.homes.clear();
        let partial = merged.partial();
        let mut new = Vec::new();
        let mut old = Vec::new();
        let mut remote = Vec::new();
        for m in merged.messages {
            if let Home::Remote(site) = m.home {
                remote.push(m.meta.id.clone());
                self.homes.insert(m.meta.id.clone(), site);
            }
            if m.meta.folder.is_new() {
                new.push(m.meta);
            } else {
                old.push(m.meta);
            }
        }
        StoreReply::Messages {
            new,
            old,
            remote,
            partial,
        }
    }

    /// Starts fetching a remote message's audio now (it plays next).
    fn prefetch(&mut self, s: &Session, msg: &str) {
        if self.prefetched.as_ref().is_some_and(|(id, _)| id == msg) {
            return;
        }
        // An earlier prefetch not played is dropped (its fetch stops).
        self.prefetched = self.fetch(s, msg).map(|clip| (msg.to_owned(), clip));
    }

    /// The stream of a remote message: the prefetched one, or a new fetch.
    fn stream(&mut self, s: &Session, msg: &str) -> Option<StreamClip> {
        match self.prefetched.take() {
            Some((id, clip)) if id == msg => Some(clip),
            _ => self.fetch(s, msg),
        }
    }

    fn fetch(&self, s: &Session, msg: &str) -> Option<StreamClip> {
        let site = self.homes.get(msg)?.clone();
        let mailbox = s.mailbox.clone()?;
        let sites = self.sites.clone();
        let what = format!("{mailbox}/{msg}@{site}");
        let msg = msg.to_owned();
        let fetch = async move {
            match sites.audio(&site, &mailbox, &msg).await {
                Ok(a) => Ok(Incoming {
                    sample_rate: a.sample_rate,
                    chunks: a.chunks,
                }),
                Err(e) => Err(e.to_string()),
            }
        };
        Some(spawn_feed(fetch, self.rate, what))
    }

    /// A change of a remote message, applied at `site`; nothing is changed
    /// when the site cannot be reached (the menu says so).
    async fn run_op(
        &mut self,
        op: StoreOp,
        site: &str,
        store: &FsStore,
        s: &Session,
    ) -> StoreReply {
        let Some(id) = s.mailbox.clone() else {
            return StoreReply::Failed;
        };
        let sites = &self.sites;
        let (what, msg, result) = match &op {
            // Folder and heard flag in one request: both or neither.
            StoreOp::MoveToOld { msg } => {
                let r = sites
                    .update(site, &id, msg, Some(true), Some(Folder::Old))
                    .await
                    .map(drop);
                ("marking a remote message heard", msg, r)
            }
            StoreOp::MoveTo { msg, folder } => {
                let r = sites
                    .update(site, &id, msg, Some(!folder.is_new()), Some(*folder))
                    .await
                    .map(drop);
                ("saving a remote message to a folder", msg, r)
            }
            StoreOp::Delete { msg } | StoreOp::DeleteNow { msg } => {
                let r = match sites.delete(site, &id, msg).await {
                    Err(RemoteError::NotFound) => Ok(()),
                    r => r,
                };
                ("deleting a remote message", msg, r)
            }
            StoreOp::Forward { msg, to_user } => {
                let to = match MailboxId::new(to_user, &s.domain) {
                    Ok(to) => to,
                    Err(_) => return StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)),
                };
                // The target is a mailbox of the domain: every site knows it.
                let known = {
                    let store = store.clone();
                    let to = to.clone();
                    tokio::task::spawn_blocking(move || store.mailbox(&to)).await
                };
                match known {
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => return StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)),
                    Ok(Err(e)) => {
                        warn!("forward lookup failed: {e}");
                        return StoreReply::Forwarded(Err(ForwardError::Failed));
                    }
                    Err(e) => {
                        warn!("forward lookup panicked: {e}");
                        return StoreReply::Forwarded(Err(ForwardError::Failed));
                    }
                }
                let r = sites.forward(site, &id, msg, &to).await;
                if r.is_ok() {
                    info!(from = %id, to = %to, id = %msg, %site, "remote message forwarded");
                    return StoreReply::Forwarded(Ok(()));
                }
                ("forwarding a remote message", msg, r)
            }
            _ => return StoreReply::Failed,
        };
        match result {
            Ok(()) => {
                debug!(mailbox = %id, id = %msg, %site, "{what}: done at its site");
                if matches!(op, StoreOp::Delete { .. } | StoreOp::DeleteNow { .. }) {
                    info!(mailbox = %id, id = %msg, %site, "remote message deleted");
                }
                StoreReply::Done
            }
            Err(e) => {
                warn!(mailbox = %id, id = %msg, %site, "{what}: not done: {e}");
                StoreReply::Unreachable
            }
        }
    }
}

impl CallFlow for Menu {
    fn digit(&mut self, now: std::time::Instant, digit: char) {
        self.on_digit(now, digit);
    }
    fn playback_done(&mut self, now: std::time::Instant) {
        self.on_playback_done(now);
    }
    fn timeout(&mut self, now: std::time::Instant) {
        self.handle_timeout(now);
    }
}
