//! Menu tests on simulated time: a small harness that renders actions as
//! short strings ("play: enter-pin", "stop", "VerifyPin { .. }").

use std::time::{Duration, Instant};

use crate::store::MessageMeta;

use super::{Action, Audio, Menu, MenuConfig, PinReply, StoreReply};

mod browse;
mod hangup;
mod login;
mod options;
mod props;
mod sites;
mod timers;

pub(super) fn cfg() -> MenuConfig {
    MenuConfig::new("example.com")
}

pub(super) fn meta(id: &str, caller: &str) -> MessageMeta {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "caller_uri": caller,
        "received": "2024-05-01T10:05:00Z",
    }))
    .unwrap()
}

pub(super) fn metas(ids: &[&str]) -> Vec<MessageMeta> {
    ids.iter()
        .map(|id| meta(id, "sip:5551234@example.com"))
        .collect()
}

fn audio(a: &Audio) -> String {
    match a {
        Audio::Prompt(p) => (*p).to_string(),
        Audio::Digits(d) => format!("digits:{d}"),
        Audio::Number(n) | Audio::NumberGendered(n, _) => n.to_string(),
        Audio::Counted { n, one, many } => if *n == 1 { *one } else { *many }.to_string(),
        Audio::Message(id) => format!("msg:{id}"),
        Audio::DateTime(t) => format!("date:{t}"),
        Audio::LastRecording => "recording".to_string(),
    }
}

/// One action as a short string.
pub(super) fn render(a: &Action) -> String {
    match a {
        Action::Play(items) => {
            let v: Vec<String> = items.iter().map(audio).collect();
            format!("play: {}", v.join(" "))
        }
        Action::StopPlayback => "stop".into(),
        Action::StartRecording { max } => format!("record {}s", max.as_secs()),
        Action::StopRecording => "stop-recording".into(),
        Action::Store(op) => format!("{op:?}"),
        Action::Hangup => "hangup".into(),
        Action::Done => "done".into(),
        Action::Prefetch(id) => format!("prefetch:{id}"),
    }
}

/// A menu and a simulated clock.
pub(super) struct H {
    pub m: Menu,
    pub t0: Instant,
    pub now: Instant,
}

impl H {
    pub fn new(known: Option<&str>) -> H {
        H::with(cfg(), known)
    }

    pub fn with(cfg: MenuConfig, known: Option<&str>) -> H {
        let t0 = Instant::now();
        H {
            m: Menu::new(cfg, known.map(str::to_string)),
            t0,
            now: t0,
        }
    }

    pub fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.m.poll_action())
            .map(|a| render(&a))
            .collect()
    }

    pub fn start(&mut self) -> Vec<String> {
        self.m.start(self.now);
        self.drain()
    }

    /// Keys, one by one; all actions.
    pub fn keys(&mut self, s: &str) -> Vec<String> {
        for d in s.chars() {
            self.m.on_digit(self.now, d);
        }
        self.drain()
    }

    pub fn done(&mut self) -> Vec<String> {
        self.m.on_playback_done(self.now);
        self.drain()
    }

    pub fn reply(&mut self, r: StoreReply) -> Vec<String> {
        self.m.on_store(self.now, r);
        self.drain()
    }

    pub fn recorded(&mut self, ms: u64) -> Vec<String> {
        self.m.on_recording_done(self.now, ms);
        self.drain()
    }

    pub fn hangup(&mut self) -> Vec<String> {
        self.m.on_hangup(self.now);
        self.drain()
    }

    /// Let `secs` pass and fire the timer if due.
    pub fn wait(&mut self, secs: u64) -> Vec<String> {
        self.now += Duration::from_secs(secs);
        self.m.handle_timeout(self.now);
        self.drain()
    }

    /// Logged in as 1001 with these messages, the intro played; in the
    /// main menu with its prompt finished.
    pub fn logged_in(new: &[&str], old: &[&str]) -> H {
        H::logged_in_with(metas(new), metas(old))
    }

    /// [`H::logged_in`] with full metadata.
    pub fn logged_in_with(new: Vec<MessageMeta>, old: Vec<MessageMeta>) -> H {
        let mut h = H::new(Some("1001"));
        h.start();
        h.keys("1234#");
        h.reply(StoreReply::Pin(PinReply::Ok));
        h.reply(StoreReply::Messages {
            new,
            old,
            remote: vec![],
            partial: false,
        });
        h.done();
        h
    }
}

pub(super) fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}
