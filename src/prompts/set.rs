//! The loaded prompt set: every prompt of every language, decoded once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, PrimitiveDateTime};

use super::decode::{decode_prompt, SAMPLE_RATE};
use super::error::PromptError;
use super::speak::{self, Gender};

/// The language every other one falls back to.
pub const FALLBACK_LANGUAGE: &str = "en";

/// File extensions taken as audio; other files in a prompt folder are
/// skipped with a warning (the content, not the extension, picks the codec).
const AUDIO_EXTENSIONS: &[&str] = &["wav", "wave", "flac", "mp3", "ogg", "oga"];

/// How deep prompt folders may nest (also stops symlink loops).
const MAX_DEPTH: usize = 8;

/// The prompts the deposit flow cannot work without.
const REQUIRED: &[&str] = &[
    "greeting-intro",
    "is-busy",
    "is-unavailable",
    "leave-message",
    "beep",
    "message-saved",
    "mailbox-full",
    "max-length",
    "cannot-take",
    "goodbye",
    "digits/0",
    "digits/1",
    "digits/2",
    "digits/3",
    "digits/4",
    "digits/5",
    "digits/6",
    "digits/7",
    "digits/8",
    "digits/9",
];

/// Words the number/date speakers use; a language missing some is only
/// warned about (those words fall back to English or are left out).
const VOCABULARY: &[&str] = &[
    "star",
    "pound",
    "numbers/10",
    "numbers/11",
    "numbers/12",
    "numbers/13",
    "numbers/14",
    "numbers/15",
    "numbers/16",
    "numbers/17",
    "numbers/18",
    "numbers/19",
    "numbers/20",
    "numbers/30",
    "numbers/40",
    "numbers/50",
    "numbers/60",
    "numbers/70",
    "numbers/80",
    "numbers/90",
    "numbers/thousand",
    "at",
    "today",
    "yesterday",
];

/// One decoded prompt, mono 16-bit, held at 8 kHz for narrowband calls
/// and at 16 kHz for wideband ones (G.722, Opus): both are made once, when
/// the prompt is made, never per call. Cloning is cheap.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    samples: Arc<[i16]>,
    wide: Arc<[i16]>,
}

impl Prompt {
    /// A prompt from 8 kHz mono samples (e.g. a recorded greeting).
    pub fn new(samples: impl Into<Arc<[i16]>>) -> Self {
        let samples: Arc<[i16]> = samples.into();
        let wide = resample_i16(&samples, SAMPLE_RATE, WIDE_RATE).into();
        Prompt { samples, wide }
    }

    /// A prompt from mono samples at `rate` (8000 or 16000, e.g. a
    /// recording of a wideband call; other rates are resampled too).
    pub fn at_rate(samples: Vec<i16>, rate: u32) -> Self {
        if rate == SAMPLE_RATE {
            return Prompt::new(samples);
        }
        let narrow = resample_i16(&samples, rate, SAMPLE_RATE).into();
        let wide = if rate == WIDE_RATE {
            samples.into()
        } else {
            resample_i16(&samples, rate, WIDE_RATE).into()
        };
        Prompt {
            samples: narrow,
            wide,
        }
    }

    /// `ms` milliseconds of silence.
    pub fn silence(ms: u32) -> Self {
        let n = (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
        Prompt {
            samples: vec![0i16; n].into(),
            wide: vec![0i16; 2 * n].into(),
        }
    }

    /// The samples, 8000 per second.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The samples at `rate`: 16000 per second for 16 kHz, else 8000.
    pub fn samples_at(&self, rate: u32) -> &[i16] {
        if rate == WIDE_RATE {
            &self.wide
        } else {
            &self.samples
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when the prompt holds no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Playing time in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }
}

/// The rate of the wideband copy of a prompt.
pub const WIDE_RATE: u32 = 16000;

/// `x` resampled from `from` to `to` Hz (rubato); should the resampler
/// refuse, samples are repeated or dropped instead.
pub fn resample_i16(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let f: Vec<f32> = x.iter().map(|&s| f32::from(s) / 32768.0).collect();
    match super::decode::resample_to(&f, from, to) {
        Ok(y) => y
            .iter()
            .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect(),
        Err(e) => {
            tracing::warn!("resampling failed, using a plain rate change: {e}");
            let n = (x.len() as u64 * u64::from(to) / u64::from(from.max(1))) as usize;
            (0..n)
                .map(|i| x[(i as u64 * u64::from(from) / u64::from(to)) as usize % x.len()])
                .collect()
        }
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prompt({} ms)", self.duration_ms())
    }
}

/// All prompts of the configured languages. Cloning is cheap (shared).
#[derive(Clone)]
pub struct PromptSet {
    inner: Arc<BTreeMap<String, HashMap<String, Prompt>>>,
}

impl fmt::Debug for PromptSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (lang, prompts) in self.inner.iter() {
            m.entry(lang, &prompts.len());
        }
        m.finish()
    }
}

impl PromptSet {
    /// Load every audio file under `<dir>/<language>/` recursively; a
    /// prompt's name is its relative path without extension (`digits/4`).
    /// Files are decoded with symphonia (WAV, FLAC, MP3, Ogg/Vorbis), mixed
    /// to mono and resampled to 8 kHz. `en` is loaded as the fallback when
    /// present even if not asked for; an empty `languages` loads every
    /// language folder. A file that does not decode, a missing language
    /// folder, or required prompts (see [`PromptSet::required`]) that a
    /// language has not even through `en` are errors naming them all.
    pub fn load(dir: &Path, languages: &[&str]) -> Result<PromptSet, PromptError> {
        let mut wanted: Vec<String> = if languages.is_empty() {
            list_language_dirs(dir)?
        } else {
            languages.iter().map(|l| l.to_string()).collect()
        };
        for lang in &wanted {
            check_language(lang)?;
            let path = dir.join(lang);
            if !path.is_dir() {
                return Err(PromptError::LanguageMissing {
                    language: lang.clone(),
                    path,
                });
            }
        }
        if !wanted.iter().any(|l| l == FALLBACK_LANGUAGE) && dir.join(FALLBACK_LANGUAGE).is_dir() {
            wanted.push(FALLBACK_LANGUAGE.to_string());
        }
        wanted.sort();
        wanted.dedup();
        // Languages decode on threads of their own: start-up takes as long
        // as the largest language, not their sum.
        let loaded: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = wanted
                .iter()
                .map(|lang| {
                    let path = dir.join(lang);
                    (lang, scope.spawn(move || load_language(&path, lang)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(lang, h)| {
                    let loaded = h.join().unwrap_or_else(|_| {
                        Err(PromptError::LoaderPanicked {
                            language: lang.clone(),
                        })
                    });
                    (lang.clone(), loaded)
                })
                .collect()
        });
        let mut all = BTreeMap::new();
        for (lang, prompts) in loaded {
            let prompts = prompts?;
            let total_ms: u64 = prompts.values().map(Prompt::duration_ms).sum();
            tracing::info!(language = %lang, prompts = prompts.len(), total_ms, "prompts loaded");
            all.insert(lang, prompts);
        }
        let set = PromptSet {
            inner: Arc::new(all),
        };
        set.check_required()?;
        set.warn_vocabulary();
        Ok(set)
    }

    /// Every language folder under `dir` (so that each mailbox hears its
    /// own language), which must include `default`, the instance's
    /// `ext.language`.
    pub fn load_all(dir: &Path, default: &str) -> Result<PromptSet, PromptError> {
        check_language(default)?;
        let path = dir.join(default);
        if !path.is_dir() {
            return Err(PromptError::LanguageMissing {
                language: default.to_owned(),
                path,
            });
        }
        Self::load(dir, &[])
    }

    /// A set from prompts already in memory: `(language, name, prompt)`.
    /// Nothing is checked (meant for tests and tools).
    pub fn from_prompts(prompts: impl IntoIterator<Item = (String, String, Prompt)>) -> PromptSet {
        let mut all: BTreeMap<String, HashMap<String, Prompt>> = BTreeMap::new();
        for (lang, name, prompt) in prompts {
            all.entry(lang).or_default().insert(name, prompt);
        }
        PromptSet {
            inner: Arc::new(all),
        }
    }

    /// The prompt names the deposit flow needs (greetings, beep, goodbyes,
    /// digits for the default greeting).
    pub fn required() -> &'static [&'static str] {
        REQUIRED
    }

    /// The loaded languages, sorted.
    pub fn languages(&self) -> Vec<String> {
        self.inner.keys().cloned().collect()
    }

    /// The prompt `name` in `language`; a regional tag (`ru-RU`) falls back
    /// to its base (`ru`), and any language falls back to `en`.
    pub fn get(&self, language: &str, name: &str) -> Option<Prompt> {
        let base = language.split(['-', '_']).next().unwrap_or(language);
        [language, base, FALLBACK_LANGUAGE]
            .into_iter()
            .find_map(|l| self.inner.get(l).and_then(|p| p.get(name)))
            .cloned()
    }

    /// A playlist of the named prompts; names that exist nowhere are left
    /// out (and logged).
    pub fn playlist<S: AsRef<str>>(&self, language: &str, names: &[S]) -> Vec<Prompt> {
        names
            .iter()
            .filter_map(|n| {
                let n = n.as_ref();
                let p = self.get(language, n);
                if p.is_none() {
                    tracing::debug!(language, name = n, "prompt missing from playlist");
                }
                p
            })
            .collect()
    }

    /// Read a key string aloud: `"1001"` → one, zero, zero, one; `*` and
    /// `#` → star, pound; other characters are skipped.
    pub fn digits(&self, language: &str, s: &str) -> Vec<Prompt> {
        self.playlist(language, &speak::digit_names(s))
    }

    /// Say `n` as a number ("two thousand three hundred forty one").
    pub fn number(&self, language: &str, n: u32) -> Vec<Prompt> {
        self.number_gendered(language, n, Gender::Masculine)
    }

    /// Say `n` agreeing with a word of `gender` (matters in Russian).
    pub fn number_gendered(&self, language: &str, n: u32, gender: Gender) -> Vec<Prompt> {
        self.playlist(language, &speak::number_names(language, n, gender))
    }

    /// The form of a counted word that goes after `n`: `one` is the
    /// singular name, `many` the plural (Russian adds `<many>-few` and
    /// `<many>-many`). E.g. `counted("en", 3, "message", "messages")`.
    pub fn counted(&self, language: &str, n: u32, one: &str, many: &str) -> Option<Prompt> {
        speak::counted_names(language, n, one, many)
            .iter()
            .find_map(|name| self.get(language, name))
    }

    /// The day of the month as an ordinal ("twenty first"), 1..=31.
    pub fn ordinal(&self, language: &str, day: u8) -> Option<Prompt> {
        speak::ordinal_name(day).and_then(|n| self.get(language, n))
    }

    /// Say when something happened ("yesterday at ten oh five P.M."); see
    /// [`date_time_names`](super::date_time_names). `at` and `today` are in
    /// the listener's local time.
    pub fn date_time(&self, language: &str, at: PrimitiveDateTime, today: Date) -> Vec<Prompt> {
        self.playlist(language, &speak::date_time_names(language, at, today))
    }

    fn check_required(&self) -> Result<(), PromptError> {
        let mut missing = Vec::new();
        for lang in self.inner.keys() {
            for name in REQUIRED {
                if self.get(lang, name).is_none() {
                    missing.push(format!("{lang}/{name}"));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PromptError::MissingRequired(missing))
        }
    }

    fn warn_vocabulary(&self) {
        for (lang, prompts) in self.inner.iter() {
            let absent: Vec<&str> = VOCABULARY
                .iter()
                .copied()
                .filter(|n| !prompts.contains_key(*n))
                .collect();
            if !absent.is_empty() {
                tracing::warn!(language = %lang, missing = ?absent, "prompt language lacks words for numbers and dates; English is used for them");
            }
        }
    }
}

/// A language name is a folder name: no separators, no dots.
fn check_language(lang: &str) -> Result<(), PromptError> {
    let ok = !lang.is_empty()
        && lang.len() <= 32
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PromptError::InvalidLanguage(lang.to_string()))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PromptError + '_ {
    move |source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn list_language_dirs(dir: &Path) -> Result<Vec<String>, PromptError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if let Some(name) = entry.file_name().to_str() {
            if path.is_dir() && check_language(name).is_ok() {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every audio file under `root`, as (prompt name, path), sorted.
fn find_audio(root: &Path) -> Result<Vec<(String, PathBuf)>, PromptError> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(path = %path.display(), "skipping prompt file with a non-UTF-8 name");
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    tracing::warn!(path = %path.display(), "prompt folders nest too deep; skipped");
                } else {
                    stack.push((path, format!("{prefix}{file_name}/"), depth + 1));
                }
                continue;
            }
            let p = Path::new(&file_name);
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let stem = p.file_stem().and_then(|s| s.to_str());
            match (ext, stem) {
                (Some(ext), Some(stem)) if AUDIO_EXTENSIONS.contains(&ext.as_str()) => {
                    out.push((format!("{prefix}{stem}"), path));
                }
                _ => tracing::warn!(path = %path.display(), "not an audio file; skipped"),
            }
        }
    }
    out.sort();
    Ok(out)
}

fn load_language(root: &Path, lang: &str) -> Result<HashMap<String, Prompt>, PromptError> {
    let mut prompts = HashMap::new();
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    for (name, path) in find_audio(root)? {
        if let Some(first) = paths.get(&name) {
            return Err(PromptError::Duplicate {
                language: lang.to_string(),
                name,
                first: first.clone(),
                second: path,
            });
        }
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let ext = path.extension().and_then(|e| e.to_str());
        let prompt = decode_prompt(bytes, ext).map_err(|e| PromptError::File {
            path: path.clone(),
            source: Box::new(e),
        })?;
        if prompt.is_empty() {
            return Err(PromptError::File {
                path,
                source: Box::new(PromptError::Empty),
            });
        }
        prompts.insert(name.clone(), prompt);
        paths.insert(name, path);
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn prompts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }

    /// The committed prompts, loaded once for all tests.
    fn committed() -> &'static PromptSet {
        static SET: OnceLock<PromptSet> = OnceLock::new();
        SET.get_or_init(|| PromptSet::load(&prompts_dir(), &["en", "ru"]).unwrap())
    }

    fn write_wav(path: &Path, samples: &[i16], rate: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    /// A folder with every required prompt as a short click.
    fn minimal_dir(lang: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for name in REQUIRED {
            write_wav(
                &tmp.path().join(lang).join(format!("{name}.wav")),
                &[1000; 80],
                8000,
            );
        }
        tmp
    }

    #[test]
    fn committed_prompts_are_complete_and_plausible() {
        let set = committed();
        assert_eq!(set.languages(), ["en", "ru"]);
        for lang in ["en", "ru"] {
            let prompts = set.inner.get(lang).unwrap();
            for name in PromptSet::required() {
                assert!(prompts.contains_key(*name), "{lang}/{name} missing");
            }
            for name in VOCABULARY {
                assert!(prompts.contains_key(*name), "{lang}/{name} missing");
            }
            for name in crate::call::EXTRA_PROMPTS {
                assert!(prompts.contains_key(*name), "{lang}/{name} missing");
            }
            for (name, p) in prompts {
                let ms = p.duration_ms();
                assert!((100..20_000).contains(&ms), "{lang}/{name}: {ms} ms");
                let peak = p.samples().iter().map(|s| s.unsigned_abs()).max().unwrap();
                // Normalised to -3 dBFS (23197); lossy and resampled files vary a bit.
                assert!(
                    (18_000..=32_767).contains(&peak),
                    "{lang}/{name}: peak {peak}"
                );
            }
        }
        // Long menus are long, single words short.
        assert!(set.get("en", "main-menu").unwrap().duration_ms() > 4000);
        assert!(set.get("en", "digits/4").unwrap().duration_ms() < 1200);
    }

    #[test]
    fn committed_beep_is_a_1khz_tone() {
        // beep.flac is stored at 16 kHz, so this checks the real resample path.
        let beep = committed().get("en", "beep").unwrap();
        assert!((395..=405).contains(&beep.duration_ms()), "{:?}", beep);
        let x: Vec<f32> = beep.samples()[400..2800]
            .iter()
            .map(|&s| f32::from(s))
            .collect();
        let crossings = x
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        // 2400 samples = 0.3 s of 1 kHz = 600 crossings.
        assert!(
            (590..=610).contains(&crossings),
            "{crossings} zero crossings"
        );
        // goodbye.ogg (Vorbis, 16 kHz) decodes to about its length.
        let bye = committed().get("en", "goodbye").unwrap();
        assert!((400..1500).contains(&bye.duration_ms()), "{bye:?}");
    }

    #[test]
    fn speaking_numbers_uses_the_committed_words() {
        let set = committed();
        let len = |v: Vec<Prompt>| v.len();
        assert_eq!(len(set.number("en", 0)), 1);
        assert_eq!(len(set.number("en", 2341)), 6);
        assert_eq!(len(set.number("ru", 2341)), 5);
        assert_eq!(len(set.number("en", 9999)), 6);
        assert_eq!(len(set.digits("en", "1001#")), 5);
        assert_eq!(
            set.number("en", 7),
            vec![set.get("en", "digits/7").unwrap()]
        );
        assert_eq!(
            set.number("ru", 7),
            vec![set.get("ru", "digits/7").unwrap()]
        );
        assert_ne!(set.get("en", "digits/7"), set.get("ru", "digits/7"));
        assert_eq!(
            set.counted("en", 2, "message", "messages"),
            set.get("en", "messages")
        );
        assert_eq!(
            set.counted("ru", 2, "message", "messages"),
            set.get("ru", "messages-few")
        );
        assert_eq!(set.counted("ru", 1, "new", "new"), set.get("ru", "new"));
        assert_eq!(set.ordinal("en", 31), set.get("en", "ordinals/31st"));
        assert!(set.ordinal("en", 0).is_none());
        let today = time::macros::date!(2024 - 03 - 14);
        let at = time::macros::datetime!(2024-03-13 22:05);
        // yesterday at ten oh five P.M.
        assert_eq!(set.date_time("en", at, today).len(), 6);
        // вчера в двадцать два часа пять минут
        assert_eq!(set.date_time("ru", at, today).len(), 7);
    }

    #[test]
    fn fallback_to_base_language_and_english() {
        let set = committed();
        // Russian has no A.M. (24-hour clock): English fills in.
        assert_eq!(set.get("ru", "am"), set.get("en", "am"));
        assert_eq!(set.get("ru-RU", "beep"), set.get("ru", "beep"));
        assert_eq!(set.get("de", "beep"), set.get("en", "beep"));
        assert!(set.get("en", "no-such-prompt").is_none());
        // Unknown names are left out of playlists.
        assert_eq!(set.playlist("en", &["beep", "nope"]).len(), 1);
    }

    #[test]
    fn resampled_and_nested_files_load() {
        let tmp = minimal_dir("en");
        // A 44.1 kHz nested prompt, a stray README, a hidden file.
        let tone: Vec<i16> = (0..44100)
            .map(|i| {
                (10000.0 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44100.0).sin()) as i16
            })
            .collect();
        write_wav(&tmp.path().join("en/extra/deep/tone.wav"), &tone, 44100);
        std::fs::write(tmp.path().join("en/README.txt"), "notes").unwrap();
        std::fs::write(tmp.path().join("en/.hidden.wav"), "junk").unwrap();
        let set = PromptSet::load(tmp.path(), &[]).unwrap();
        let p = set.get("en", "extra/deep/tone").unwrap();
        assert!((p.len() as i64 - 8000).abs() <= 1, "{}", p.len());
        assert_eq!(p.duration_ms(), 1000);
        let crossings = p.samples()[100..7900]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((1945..=1955).contains(&crossings), "{crossings}");
        assert_eq!(set.get("en", "beep").unwrap().len(), 80);
    }

    #[test]
    fn missing_required_prompts_are_listed() {
        let tmp = minimal_dir("en");
        std::fs::remove_file(tmp.path().join("en/beep.wav")).unwrap();
        std::fs::remove_file(tmp.path().join("en/digits/3.wav")).unwrap();
        let err = PromptSet::load(tmp.path(), &["en"]).unwrap_err();
        match &err {
            PromptError::MissingRequired(m) => assert_eq!(m, &["en/beep", "en/digits/3"]),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("en/beep, en/digits/3"));
        // Another language may lean on English for what it lacks.
        let tmp = minimal_dir("en");
        write_wav(&tmp.path().join("fr/beep.wav"), &[5; 10], 8000);
        let set = PromptSet::load(tmp.path(), &["fr"]).unwrap();
        assert_eq!(set.languages(), ["en", "fr"]);
        assert_eq!(set.get("fr", "beep").unwrap().len(), 10);
        assert_eq!(set.get("fr", "goodbye").unwrap().len(), 80);
    }

    #[test]
    fn an_instance_loads_every_language_folder() {
        let tmp = minimal_dir("en");
        write_wav(&tmp.path().join("fr/beep.wav"), &[5; 10], 8000);
        write_wav(&tmp.path().join("ru/beep.wav"), &[7; 12], 8000);
        let set = PromptSet::load_all(tmp.path(), "en").unwrap();
        assert_eq!(set.languages(), ["en", "fr", "ru"]);
        assert_eq!(set.get("ru", "beep").unwrap().len(), 12);
        let set = PromptSet::load_all(tmp.path(), "fr").unwrap();
        assert_eq!(set.languages(), ["en", "fr", "ru"]);
        // The instance's own language must be there.
        let err = PromptSet::load_all(tmp.path(), "de").unwrap_err();
        assert!(matches!(err, PromptError::LanguageMissing { .. }), "{err}");
        // A broken file in any language stops the load, naming it.
        std::fs::write(tmp.path().join("ru/broken.wav"), b"RIFF junk").unwrap();
        let err = PromptSet::load_all(tmp.path(), "en").unwrap_err();
        assert!(err.to_string().contains("broken.wav"), "{err}");
    }

    #[test]
    fn bad_files_and_folders_are_errors_naming_them() {
        let tmp = minimal_dir("en");
        std::fs::write(
            tmp.path().join("en/broken.wav"),
            b"RIFF garbage, not a wave",
        )
        .unwrap();
        let err = PromptSet::load(tmp.path(), &["en"]).unwrap_err();
        assert!(matches!(err, PromptError::File { .. }), "{err}");
        assert!(err.to_string().contains("broken.wav"), "{err}");

        let tmp = minimal_dir("en");
        write_wav(&tmp.path().join("en/beep.flac"), &[1; 10], 8000);
        let err = PromptSet::load(tmp.path(), &["en"]).unwrap_err();
        assert!(matches!(err, PromptError::Duplicate { .. }), "{err}");

        let tmp = minimal_dir("en");
        write_wav(&tmp.path().join("en/empty.wav"), &[], 8000);
        assert!(PromptSet::load(tmp.path(), &["en"]).is_err());

        let tmp = minimal_dir("en");
        let err = PromptSet::load(tmp.path(), &["de"]).unwrap_err();
        assert!(matches!(err, PromptError::LanguageMissing { .. }), "{err}");
        for bad in ["../en", "", "en/x", "."] {
            let err = PromptSet::load(tmp.path(), &[bad]).unwrap_err();
            assert!(
                matches!(err, PromptError::InvalidLanguage(_)),
                "{bad}: {err}"
            );
        }
        let err = PromptSet::load(&tmp.path().join("nowhere"), &[]).unwrap_err();
        assert!(matches!(err, PromptError::Io { .. }), "{err}");
    }

    #[test]
    fn prompts_are_kept_at_both_rates() {
        // An 8 kHz prompt: its 16 kHz copy is as long and carries the tone.
        let p = Prompt::new(crate::media::tone(1000.0, 500, 8000, 8000));
        assert_eq!(p.samples_at(8000).len(), 4000);
        assert_eq!(p.samples_at(16000).len(), 8000);
        let crossings = p.samples_at(16000)[800..7200]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((790..=810).contains(&crossings), "{crossings}");
        // A 16 kHz recording keeps its wideband copy as it is.
        let wide = crate::media::tone(6000.0, 500, 8000, 16000);
        let p = Prompt::at_rate(wide.clone(), 16000);
        assert_eq!(p.samples_at(16000), &wide[..]);
        assert_eq!(p.samples_at(8000).len(), 4000);
        // 6 kHz cannot be in the 8 kHz copy.
        let peak = p.samples_at(8000)[400..3600]
            .iter()
            .map(|s| s.unsigned_abs())
            .max();
        assert!(peak < Some(800), "{peak:?}");
        let s = Prompt::silence(100);
        assert_eq!(
            (s.samples_at(8000).len(), s.samples_at(16000).len()),
            (800, 1600)
        );
    }

    #[test]
    fn prompt_basics() {
        let p = Prompt::silence(250);
        assert_eq!(p.len(), 2000);
        assert_eq!(p.duration_ms(), 250);
        assert!(p.samples().iter().all(|&s| s == 0));
        assert!(Prompt::new(Vec::new()).is_empty());
        let set = PromptSet::from_prompts([("en".to_string(), "x".to_string(), p.clone())]);
        assert_eq!(set.get("en", "x"), Some(p));
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<PromptSet>();
        shareable::<Prompt>();
    }
}
