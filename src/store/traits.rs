//! The store as a trait, so that the call, menu and API layers can run on
//! another backend (a remote site, a test double).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::StoreError;
use super::fs::{FsStore, Observer};
use super::names::{Folder, GreetingKind, MailboxId};
use super::recording::RecordingWriter;
use super::types::{
    Counts, LoginAttempt, LoginState, Mailbox, MailboxSettings, MessageMeta, RecordingInfo,
};
use crate::cluster::Fence;

/// A recording in progress (see [`RecordingWriter`]).
pub trait MessageRecorder: Send {
    /// The message id it will have.
    fn id(&self) -> &str;
    /// Appends PCM samples.
    fn append(&mut self, pcm: &[i16]) -> Result<(), StoreError>;
    /// Samples appended so far.
    fn samples(&self) -> u64;
    /// Audio length so far.
    fn duration_ms(&self) -> u64;
    /// Marks the message urgent.
    fn set_urgent(&mut self, urgent: bool) -> Result<(), StoreError>;
    /// Completes the message into `INBOX`.
    fn finish(self: Box<Self>) -> Result<MessageMeta, StoreError>;
    /// Drops the recording.
    fn discard(self: Box<Self>) -> Result<(), StoreError>;
}

/// Mailbox storage: the operations of [`FsStore`], object-safe.
pub trait MailboxStore: Send + Sync {
    /// See [`FsStore::create_mailbox`].
    fn create_mailbox(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
        pin: Option<&str>,
    ) -> Result<Mailbox, StoreError>;
    /// See [`FsStore::mailbox`].
    fn mailbox(&self, id: &MailboxId) -> Result<Option<Mailbox>, StoreError>;
    /// See [`FsStore::update_settings`].
    fn update_settings(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
    ) -> Result<Mailbox, StoreError>;
    /// See [`FsStore::remove_mailbox`].
    fn remove_mailbox(&self, id: &MailboxId) -> Result<(), StoreError>;
    /// See [`FsStore::list_mailboxes`].
    fn list_mailboxes(&self, domain: Option<&str>) -> Result<Vec<MailboxId>, StoreError>;
    /// See [`FsStore::set_pin`].
    fn set_pin(&self, id: &MailboxId, pin: &str) -> Result<(), StoreError>;
    /// See [`FsStore::verify_pin`].
    fn verify_pin(&self, id: &MailboxId, pin: &str) -> Result<bool, StoreError>;
    /// See [`FsStore::counts`].
    fn counts(&self, id: &MailboxId) -> Result<Counts, StoreError>;
    /// See [`FsStore::list_messages`].
    fn list_messages(&self, id: &MailboxId, folder: Folder)
        -> Result<Vec<MessageMeta>, StoreError>;
    /// See [`FsStore::message`].
    fn message(&self, id: &MailboxId, msg_id: &str) -> Result<Option<MessageMeta>, StoreError>;
    /// See [`FsStore::message_audio_path`].
    fn message_audio_path(
        &self,
        id: &MailboxId,
        msg_id: &str,
    ) -> Result<Option<PathBuf>, StoreError>;
    /// See [`FsStore::move_message`].
    fn move_message(&self, id: &MailboxId, msg_id: &str, to: Folder) -> Result<(), StoreError>;
    /// See [`FsStore::set_heard`].
    fn set_heard(&self, id: &MailboxId, msg_id: &str, heard: bool) -> Result<(), StoreError>;
    /// See [`FsStore::delete_message`].
    fn delete_message(&self, id: &MailboxId, msg_id: &str) -> Result<(), StoreError>;
    /// See [`FsStore::copy_message`].
    fn copy_message(
        &self,
        from: &MailboxId,
        msg_id: &str,
        to: &MailboxId,
        forwarded_by: &str,
    ) -> Result<String, StoreError>;
    /// See [`FsStore::greeting_path`].
    fn greeting_path(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
    ) -> Result<Option<PathBuf>, StoreError>;
    /// See [`FsStore::store_greeting`].
    fn store_greeting(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
        pcm: &[i16],
        sample_rate: u32,
    ) -> Result<(), StoreError>;
    /// See [`FsStore::delete_greeting`].
    fn delete_greeting(&self, id: &MailboxId, kind: GreetingKind) -> Result<(), StoreError>;
    /// See [`FsStore::begin_recording`].
    fn begin_recording(
        &self,
        id: &MailboxId,
        info: RecordingInfo,
        now: SystemTime,
    ) -> Result<Box<dyn MessageRecorder>, StoreError>;
    /// See [`FsStore::recover`].
    fn recover(&self) -> Result<Vec<(MailboxId, String)>, StoreError>;
    /// See [`FsStore::set_observer`].
    fn set_observer(&self, f: Observer);
    /// See [`FsStore::set_fence`].
    fn set_fence(&self, fence: Arc<Fence>);
    /// See [`FsStore::login_state`].
    fn login_state(&self, id: &MailboxId) -> Result<LoginState, StoreError>;
    /// See [`FsStore::reserve_login_attempt`].
    fn reserve_login_attempt(
        &self,
        id: &MailboxId,
        now: SystemTime,
        lockout_failures: u32,
        lockout_seconds: u64,
    ) -> Result<LoginAttempt, StoreError>;
    /// See [`FsStore::record_login_success`].
    fn record_login_success(&self, id: &MailboxId) -> Result<(), StoreError>;
}

impl MessageRecorder for RecordingWriter {
    fn id(&self) -> &str {
        RecordingWriter::id(self)
    }
    fn append(&mut self, pcm: &[i16]) -> Result<(), StoreError> {
        RecordingWriter::append(self, pcm)
    }
    fn samples(&self) -> u64 {
        RecordingWriter::samples(self)
    }
    fn duration_ms(&self) -> u64 {
        RecordingWriter::duration_ms(self)
    }
    fn set_urgent(&mut self, urgent: bool) -> Result<(), StoreError> {
        RecordingWriter::set_urgent(self, urgent)
    }
    fn finish(self: Box<Self>) -> Result<MessageMeta, StoreError> {
        RecordingWriter::finish(*self)
    }
    fn discard(self: Box<Self>) -> Result<(), StoreError> {
        RecordingWriter::discard(*self)
    }
}

impl MailboxStore for FsStore {
    fn create_mailbox(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
        pin: Option<&str>,
    ) -> Result<Mailbox, StoreError> {
        FsStore::create_mailbox(self, id, settings, pin)
    }
    fn mailbox(&self, id: &MailboxId) -> Result<Option<Mailbox>, StoreError> {
        FsStore::mailbox(self, id)
    }
    fn update_settings(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
    ) -> Result<Mailbox, StoreError> {
        FsStore::update_settings(self, id, settings)
    }
    fn remove_mailbox(&self, id: &MailboxId) -> Result<(), StoreError> {
        FsStore::remove_mailbox(self, id)
    }
    fn list_mailboxes(&self, domain: Option<&str>) -> Result<Vec<MailboxId>, StoreError> {
        FsStore::list_mailboxes(self, domain)
    }
    fn set_pin(&self, id: &MailboxId, pin: &str) -> Result<(), StoreError> {
        FsStore::set_pin(self, id, pin)
    }
    fn verify_pin(&self, id: &MailboxId, pin: &str) -> Result<bool, StoreError> {
        FsStore::verify_pin(self, id, pin)
    }
    fn counts(&self, id: &MailboxId) -> Result<Counts, StoreError> {
        FsStore::counts(self, id)
    }
    fn list_messages(
        &self,
        id: &MailboxId,
        folder: Folder,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        FsStore::list_messages(self, id, folder)
    }
    fn message(&self, id: &MailboxId, msg_id: &str) -> Result<Option<MessageMeta>, StoreError> {
        FsStore::message(self, id, msg_id)
    }
    fn message_audio_path(
        &self,
        id: &MailboxId,
        msg_id: &str,
    ) -> Result<Option<PathBuf>, StoreError> {
        FsStore::message_audio_path(self, id, msg_id)
    }
    fn move_message(&self, id: &MailboxId, msg_id: &str, to: Folder) -> Result<(), StoreError> {
        FsStore::move_message(self, id, msg_id, to)
    }
    fn set_heard(&self, id: &MailboxId, msg_id: &str, heard: bool) -> Result<(), StoreError> {
        FsStore::set_heard(self, id, msg_id, heard)
    }
    fn delete_message(&self, id: &MailboxId, msg_id: &str) -> Result<(), StoreError> {
        FsStore::delete_message(self, id, msg_id)
    }
    fn copy_message(
        &self,
        from: &MailboxId,
        msg_id: &str,
        to: &MailboxId,
        forwarded_by: &str,
    ) -> Result<String, StoreError> {
        FsStore::copy_message(self, from, msg_id, to, forwarded_by)
    }
    fn greeting_path(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
    ) -> Result<Option<PathBuf>, StoreError> {
        FsStore::greeting_path(self, id, kind)
    }
    fn store_greeting(
        &self,
        id: &MailboxId,
        kind: GreetingKind,
        pcm: &[i16],
        sample_rate: u32,
    ) -> Result<(), StoreError> {
        FsStore::store_greeting(self, id, kind, pcm, sample_rate)
    }
    fn delete_greeting(&self, id: &MailboxId, kind: GreetingKind) -> Result<(), StoreError> {
        FsStore::delete_greeting(self, id, kind)
    }
    fn begin_recording(
        &self,
        id: &MailboxId,
        info: RecordingInfo,
        now: SystemTime,
    ) -> Result<Box<dyn MessageRecorder>, StoreError> {
        Ok(Box::new(FsStore::begin_recording(self, id, info, now)?))
    }
    fn recover(&self) -> Result<Vec<(MailboxId, String)>, StoreError> {
        FsStore::recover(self)
    }
    fn set_observer(&self, f: Observer) {
        FsStore::set_observer(self, f)
    }
    fn set_fence(&self, fence: Arc<Fence>) {
        FsStore::set_fence(self, fence)
    }
    fn login_state(&self, id: &MailboxId) -> Result<LoginState, StoreError> {
        FsStore::login_state(self, id)
    }
    fn reserve_login_attempt(
        &self,
        id: &MailboxId,
        now: SystemTime,
        lockout_failures: u32,
        lockout_seconds: u64,
    ) -> Result<LoginAttempt, StoreError> {
        FsStore::reserve_login_attempt(self, id, now, lockout_failures, lockout_seconds)
    }
    fn record_login_success(&self, id: &MailboxId) -> Result<(), StoreError> {
        FsStore::record_login_success(self, id)
    }
}
