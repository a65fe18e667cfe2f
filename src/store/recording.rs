//! Recording a message: audio goes to `tmp/<id>.wav` as it arrives and is
//! put into `INBOX/` when the call ends.
//!
//! Fencing: a recording belongs to the epoch its store's fence held when it
//! began. Every write (each append, the buffer's flushes, the header, the
//! sidecar, the commit) asks the fence first and is refused once the lease
//! ran out or the epoch changed; the first refusal is final, and the files
//! stay in `tmp/` for the recovery of the group's next active instance.
//! Even a writer dropped after its lease ran out writes nothing: its
//! buffer's last flush asks the fence too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::StoreError;
use super::fs::FsStore;
use super::fs::TMP_DIR;
use super::fsutil::{create_dir_all, remove_if_exists, write_json_atomic};
use super::ids::{new_message_id, rfc3339};
use super::names::{Folder, MailboxId};
use super::types::{MailboxRecord, MailboxSettings, MessageMeta, RecordingInfo, Sidecar};
use super::wav;
use crate::cluster::FenceError;

/// Write buffer of a recording (about 1 s of 8 kHz audio).
const BUFFER_BYTES: usize = 16 * 1024;

/// Keeps a temporary WAV in the store's set of live recordings, so that
/// `recover` in this process leaves it alone.
struct LiveGuard {
    store: FsStore,
    path: PathBuf,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = self
            .store
            .inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        live.remove(&self.path);
    }
}

/// The temporary WAV of a recording: every write asks the store's fence
/// first (buffer flushes included), for the epoch the recording began
/// with. The first refusal is final.
struct AudioFile {
    file: File,
    store: FsStore,
    /// The epoch the recording began with (`None`: the store had no fence).
    epoch: Option<u64>,
    refused: Option<FenceError>,
}

impl AudioFile {
    /// Whether the recording may still write.
    fn allowed(&mut self) -> Result<(), FenceError> {
        if let Some(e) = &self.refused {
            return Err(e.clone());
        }
        let Some(fence) = self.store.fence() else {
            return Ok(());
        };
        let verdict = match (fence.check(), self.epoch) {
            (Ok(now), Some(ours)) if now == ours => Ok(()),
            (Ok(_), Some(ours)) => Err(FenceError::Superseded { ours }),
            // Begun before the store had a fence.
            (Ok(_), None) => Err(FenceError::NotActive),
            (Err(e), _) => Err(e),
        };
        if let Err(e) = &verdict {
            self.refused = Some(e.clone());
        }
        verdict
    }
}

impl Write for AudioFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.allowed().map_err(io::Error::other)?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A write error of a recording; a refusal of the fence is logged.
fn write_error(mailbox: &MailboxId, op: &'static str, path: &Path, e: io::Error) -> StoreError {
    match StoreError::io_or_fenced("write", path, e) {
        StoreError::Fenced(f) => FsStore::refused(op, Some(mailbox), f),
        other => other,
    }
}

/// A message being recorded. Dropping it without [`finish`](Self::finish)
/// or [`discard`](Self::discard) leaves the files in `tmp/`, and the next
/// `recover` completes them.
pub struct RecordingWriter {
    store: FsStore,
    mailbox: MailboxId,
    wav_path: PathBuf,
    sidecar_path: PathBuf,
    sidecar: Sidecar,
    out: BufWriter<AudioFile>,
    samples: u64,
    samples_in_header: u64,
    /// The staged mailbox the recording is in, when the mailbox does not
    /// exist yet: it is put in place with this message by `finish`.
    staged: Option<PathBuf>,
    _live: LiveGuard,
}

impl std::fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("mailbox", &self.mailbox)
            .field("id", &self.sidecar.id)
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl FsStore {
    /// Starts recording a message for `id`, received at `now`.
    pub fn begin_recording(
        &self,
        id: &MailboxId,
        info: RecordingInfo,
        now: SystemTime,
    ) -> Result<RecordingWriter, StoreError> {
        if !wav::valid_rate(info.sample_rate) {
            return Err(StoreError::InvalidValue {
                what: "sample_rate",
                reason: "unsupported sample rate",
            });
        }
        self.require_mailbox(id)?;
        self.begin_in(id, self.tmp_dir(id), None, info, now)
    }

    /// Starts recording the first message of a mailbox that does not exist
    /// yet (`auto_create_mailboxes`): the mailbox is created with
    /// `settings` only when the message is stored ([`RecordingWriter::finish`]),
    /// never before and never half. When the mailbox exists, the same as
    /// [`begin_recording`](Self::begin_recording).
    pub fn begin_recording_creating(
        &self,
        id: &MailboxId,
        settings: MailboxSettings,
        info: RecordingInfo,
        now: SystemTime,
    ) -> Result<RecordingWriter, StoreError> {
        if self.mailbox_exists(id) {
            return self.begin_recording(id, info, now);
        }
        if !wav::valid_rate(info.sample_rate) {
            return Err(StoreError::InvalidValue {
                what: "sample_rate",
                reason: "unsupported sample rate",
            });
        }
        settings.validate()?;
        let record = MailboxRecord {
            version: 1,
            settings,
            pin_hash: None,
            created: rfc3339(now),
            epoch: 0,
        };
        let staged = self.stage_mailbox(id, &record)?;
        let started = self.begin_in(id, staged.join(TMP_DIR), Some(staged.clone()), info, now);
        if started.is_err() {
            self.drop_staged(&staged);
        }
        started
    }

    fn begin_in(
        &self,
        id: &MailboxId,
        tmp: PathBuf,
        staged: Option<PathBuf>,
        mut info: RecordingInfo,
        now: SystemTime,
    ) -> Result<RecordingWriter, StoreError> {
        let epoch = self.fence_check("start recording", Some(id))?;
        if let Some(e) = epoch {
            info.epoch = e;
        }
        create_dir_all(&tmp)?;
        let mut attempt = 0;
        let (msg_id, wav_path, file) = loop {
            let msg_id = new_message_id(now, &info.instance);
            let wav_path = tmp.join(format!("{msg_id}.wav"));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&wav_path)
            {
                Ok(f) => break (msg_id, wav_path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(StoreError::io("create", &wav_path, e)),
            }
        };
        let sidecar_path = tmp.join(format!("{msg_id}.json"));
        let sidecar = Sidecar {
            id: msg_id.clone(),
            received: rfc3339(now),
            urgent: false,
            info,
        };
        let audio = AudioFile {
            file,
            store: self.clone(),
            epoch,
            refused: None,
        };
        let started = (|| {
            write_json_atomic(&sidecar_path, &sidecar)?;
            let mut out = BufWriter::with_capacity(BUFFER_BYTES, audio);
            out.write_all(&wav::header(sidecar.info.sample_rate, 0))
                .map_err(|e| write_error(id, "start recording", &wav_path, e))?;
            Ok(out)
        })();
        let out = match started {
            Ok(out) => out,
            Err(e) => {
                let _ = fs::remove_file(&wav_path);
                let _ = fs::remove_file(&sidecar_path);
                return Err(e);
            }
        };
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(wav_path.clone());
        tracing::debug!(mailbox = %id, message = %msg_id, "recording started");
        Ok(RecordingWriter {
            store: self.clone(),
            mailbox: id.clone(),
            _live: LiveGuard {
                store: self.clone(),
                path: wav_path.clone(),
            },
            wav_path,
            sidecar_path,
            sidecar,
            out,
            samples: 0,
            samples_in_header: 0,
            staged,
        })
    }
}

impl RecordingWriter {
    /// The message id it will have.
    pub fn id(&self) -> &str {
        &self.sidecar.id
    }

    /// The mailbox it is for.
    pub fn mailbox(&self) -> &MailboxId {
        &self.mailbox
    }

    /// Sample rate of the audio.
    pub fn sample_rate(&self) -> u32 {
        self.sidecar.info.sample_rate
    }

    /// Samples appended so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Audio length so far.
    pub fn duration_ms(&self) -> u64 {
        wav::duration_ms(self.samples, self.sample_rate())
    }

    /// Asks the fence before the write `op` (the first refusal is logged,
    /// and final).
    fn guard(&mut self, op: &'static str) -> Result<(), StoreError> {
        let first = self.out.get_ref().refused.is_none();
        match self.out.get_mut().allowed() {
            Ok(()) => Ok(()),
            Err(e) if first => Err(FsStore::refused(op, Some(&self.mailbox), e)),
            Err(e) => Err(StoreError::Fenced(e)),
        }
    }

    /// Marks the message urgent (or not); kept in the sidecar so that a
    /// recovered message keeps it too.
    pub fn set_urgent(&mut self, urgent: bool) -> Result<(), StoreError> {
        if self.sidecar.urgent != urgent {
            self.guard("mark message urgent")?;
            self.sidecar.urgent = urgent;
            write_json_atomic(&self.sidecar_path, &self.sidecar)?;
        }
        Ok(())
    }

    /// The audio recorded so far (the caller listens to it in review):
    /// the buffer is written out first (a fenced write), then the samples
    /// are read back from the temporary file.
    pub fn audio(&mut self) -> Result<Vec<i16>, StoreError> {
        self.update_header()?;
        let len = usize::try_from(self.samples.saturating_mul(2)).map_err(|_| {
            StoreError::InvalidValue {
                what: "recording",
                reason: "too long to read back",
            }
        })?;
        let mut bytes = vec![0u8; len];
        self.out
            .get_ref()
            .file
            .read_exact_at(&mut bytes, wav::HEADER_LEN)
            .map_err(|e| StoreError::io("read", &self.wav_path, e))?;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect())
    }

    /// Appends PCM samples (buffered). After every second of audio the
    /// WAV header is brought up to date, so a killed process leaves a
    /// readable file.
    pub fn append(&mut self, pcm: &[i16]) -> Result<(), StoreError> {
        if pcm.is_empty() {
            return Ok(());
        }
        self.guard("append audio")?;
        let total = self.samples + pcm.len() as u64;
        if total.saturating_mul(2) > wav::MAX_DATA_LEN {
            return Err(StoreError::InvalidValue {
                what: "recording",
                reason: "too long for a WAV file",
            });
        }
        // Little-endian bytes through a stack buffer (a 20 ms frame is one
        // chunk): no per-sample bounds checks or growth, nothing kept per call.
        let mut bytes = [0u8; 640];
        for chunk in pcm.chunks(bytes.len() / 2) {
            for (d, s) in bytes.chunks_exact_mut(2).zip(chunk) {
                d.copy_from_slice(&s.to_le_bytes());
            }
            let filled = bytes.get(..chunk.len() * 2).unwrap_or_default();
            self.out
                .write_all(filled)
                .map_err(|e| write_error(&self.mailbox, "append audio", &self.wav_path, e))?;
        }
        self.samples = total;
        if self.samples - self.samples_in_header >= u64::from(self.sample_rate()) {
            self.update_header()?;
        }
        Ok(())
    }

    /// Flushes the buffer, then rewrites the header for the data on disk
    /// (a positioned write: the file position stays at the end).
    fn update_header(&mut self) -> Result<(), StoreError> {
        let (path, mailbox) = (&self.wav_path, &self.mailbox);
        let io = |e| write_error(mailbox, "append audio", path, e);
        self.out.flush().map_err(io)?;
        self.guard("append audio")?;
        let header = wav::header(self.sidecar.info.sample_rate, self.samples * 2);
        self.out
            .get_ref()
            .file
            .write_all_at(&header, 0)
            .map_err(|e| StoreError::io("write", &self.wav_path, e))?;
        self.samples_in_header = self.samples;
        Ok(())
    }

    /// Completes the message: final header, fsync, metadata into `INBOX/`
    /// (atomic), then the WAV by rename, then directory fsyncs. On error
    /// the recording stays in `tmp/` and the next `recover` completes it
    /// (when the fence refuses, the buffered tail is dropped unwritten).
    /// A recording without audio is discarded and reported as an error.
    pub fn finish(mut self) -> Result<MessageMeta, StoreError> {
        // The coordination store is asked too before anything is flushed:
        // a group that moved on may be recovering this file already.
        let allowed = self.guard("finish recording").and_then(|()| {
            self.store
                .fence_confirm("finish recording", Some(&self.mailbox))
                .map(drop)
        });
        if let Err(e) = allowed {
            self.abandon();
            return Err(e);
        }
        let RecordingWriter {
            store,
            mailbox,
            wav_path,
            sidecar_path,
            sidecar,
            out,
            staged,
            _live,
            ..
        } = self;
        let mut audio = out
            .into_inner()
            .map_err(|e| write_error(&mailbox, "finish recording", &wav_path, e.into_error()))?;
        audio
            .allowed()
            .map_err(|e| FsStore::refused("finish recording", Some(&mailbox), e))?;
        let data_len = finalize_wav(&mut audio.file, &wav_path, sidecar.info.sample_rate)?;
        drop(audio);
        if data_len == 0 {
            remove_if_exists(&wav_path)?;
            remove_if_exists(&sidecar_path)?;
            if let Some(staged) = &staged {
                store.drop_staged(staged);
            }
            return Err(StoreError::InvalidValue {
                what: "recording",
                reason: "no audio",
            });
        }
        let meta = meta_from_sidecar(&sidecar, data_len, false);
        let meta = match &staged {
            None => store.commit_message(&mailbox, meta, &wav_path, Some(&sidecar_path))?,
            Some(staged) => {
                store.commit_first_message(&mailbox, staged, meta, &wav_path, &sidecar_path)?
            }
        };
        tracing::debug!(mailbox = %mailbox, message = %meta.id, duration_ms = meta.duration_ms, "message committed");
        Ok(meta)
    }

    /// Drops the recording (too short, caller hung up during the greeting).
    /// Refused by the fence like any write: the files then stay in `tmp/`
    /// for the group's active instance to recover.
    pub fn discard(mut self) -> Result<(), StoreError> {
        if let Err(e) = self.guard("discard recording") {
            self.abandon();
            return Err(e);
        }
        let RecordingWriter {
            store,
            wav_path,
            sidecar_path,
            out,
            staged,
            _live,
            ..
        } = self;
        // The buffered tail is of no interest.
        let _ = out.into_parts();
        if let Some(staged) = staged {
            // Never seen by anyone: the whole staged mailbox goes.
            store.drop_staged(&staged);
            return Ok(());
        }
        remove_if_exists(&wav_path)?;
        remove_if_exists(&sidecar_path)?;
        Ok(())
    }

    /// Leaves the files as they are on disk: the buffered tail is dropped
    /// unwritten.
    fn abandon(self) {
        let RecordingWriter { out, _live, .. } = self;
        let _ = out.into_parts();
    }

    /// Simulates `kill -9`: the buffered tail is lost, nothing is closed
    /// properly.
    #[cfg(test)]
    pub(super) fn simulate_kill(self) {
        self.abandon();
    }
}

/// Truncates a WAV written by the store to whole samples, writes the
/// header for the data present and fsyncs. Returns the data length.
pub(super) fn finalize_wav(
    file: &mut File,
    path: &std::path::Path,
    sample_rate: u32,
) -> Result<u64, StoreError> {
    let io = |op| move |e| StoreError::io(op, path, e);
    let len = file.metadata().map_err(io("stat"))?.len();
    let data_len = (len.saturating_sub(wav::HEADER_LEN) & !1).min(wav::MAX_DATA_LEN);
    if len < wav::HEADER_LEN || len != wav::HEADER_LEN + data_len {
        file.set_len(wav::HEADER_LEN + data_len)
            .map_err(io("truncate"))?;
    }
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    file.write_all(&wav::header(sample_rate, data_len))
        .map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    Ok(data_len)
}

/// Message metadata for a recording described by its sidecar.
pub(super) fn meta_from_sidecar(s: &Sidecar, data_len: u64, recovered: bool) -> MessageMeta {
    let i = &s.info;
    MessageMeta {
        id: s.id.clone(),
        folder: Folder::Inbox,
        caller_uri: i.caller_uri.clone(),
        caller_name: i.caller_name.clone(),
        called_uri: i.called_uri.clone(),
        cause: i.cause.clone(),
        received: s.received.clone(),
        duration_ms: wav::duration_ms(data_len / 2, i.sample_rate),
        codec: i.codec.clone(),
        site: i.site.clone(),
        instance: i.instance.clone(),
        epoch: i.epoch,
        heard: false,
        urgent: s.urgent,
        recovered,
        forwarded_by: None,
        sample_rate: i.sample_rate,
    }
}
