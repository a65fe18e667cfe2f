//! Recovery of an interrupted recording: `tmp/<id>.wav` with arbitrary
//! bytes (and, when the input asks for one, a `tmp/<id>.json` sidecar with
//! arbitrary bytes), completed by `FsStore::recover` into `INBOX/`.
//!
//! Input: a 2-byte little-endian sidecar length `n`, then `n` bytes of
//! sidecar (none when `n` is 0), then the WAV file. One store per process
//! (under `$TMPDIR`, best on a tmpfs), one mailbox; each recovered message is
//! checked and deleted, so every input starts from the same store.
//! Invariants: a file of at least a header and one sample is recovered,
//! anything shorter removed; `tmp/` is left empty; the recovered WAV reads
//! back as 16-bit mono PCM at the rate and duration its metadata says.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use vmail::store::{new_message_id, Folder, FsStore, MailboxId, MailboxSettings};

struct Fixture {
    store: FsStore,
    mailbox: MailboxId,
    tmp: PathBuf,
    msg_id: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vmail-fuzz-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FsStore::open(&dir).expect("store");
        let mailbox = MailboxId::parse("1001@fuzz.example").expect("mailbox id");
        store
            .create_mailbox(&mailbox, MailboxSettings::default(), None)
            .expect("mailbox");
        let tmp = store.root().join("domains/fuzz.example/1001/tmp");
        assert!(tmp.is_dir(), "store layout changed: {}", tmp.display());
        let msg_id = new_message_id(UNIX_EPOCH + Duration::from_secs(1_800_000_000), "fuzz");
        Fixture {
            store,
            mailbox,
            tmp,
            msg_id,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (n, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let (sidecar, wav) = rest.split_at(n.min(rest.len()));
    let wav_path = f.tmp.join(format!("{}.wav", f.msg_id));
    std::fs::write(&wav_path, wav).expect("write wav");
    if !sidecar.is_empty() {
        std::fs::write(f.tmp.join(format!("{}.json", f.msg_id)), sidecar).expect("write sidecar");
    }

    let recovered = f.store.recover().expect("recover");
    let leftovers: Vec<_> = std::fs::read_dir(&f.tmp)
        .expect("tmp dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");
    assert_eq!(
        recovered.len(),
        usize::from(wav.len() >= 46),
        "{recovered:?}"
    );

    for (mailbox, id) in &recovered {
        assert_eq!(mailbox, &f.mailbox);
        let meta = f
            .store
            .message(mailbox, id)
            .expect("read metadata")
            .expect("recovered message listed");
        assert!(meta.recovered && meta.folder == Folder::Inbox);
        let path = f
            .store
            .message_audio_path(mailbox, id)
            .expect("audio path")
            .expect("recovered audio");
        let reader = hound::WavReader::open(&path).expect("recovered WAV readable");
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(spec.sample_rate, meta.sample_rate);
        let samples = u64::from(reader.duration());
        assert_eq!(samples, (wav.len() as u64 - 44) / 2);
        assert_eq!(
            meta.duration_ms,
            samples * 1000 / u64::from(spec.sample_rate)
        );
        drop(reader);
        f.store.delete_message(mailbox, id).expect("delete");
    }
});
