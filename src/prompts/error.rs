//! The prompt module's error type.

use std::path::PathBuf;

/// Everything that can go wrong while decoding audio or loading prompts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A prompt file could not be decoded; `source` says why.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: Box<PromptError>,
    },
    /// The bytes are not in a container/codec that the decoder recognises.
    #[error("unrecognised or unsupported audio format ({source})")]
    Format {
        /// The decoder's reason.
        #[source]
        source: symphonia::core::errors::Error,
    },
    /// The stream was recognised but decoding it failed.
    #[error("audio decoding failed: {source}")]
    Decode {
        /// The decoder's reason.
        #[source]
        source: symphonia::core::errors::Error,
    },
    /// The container holds no audio track that can be decoded.
    #[error("no decodable audio track")]
    NoAudioTrack,
    /// The stream decoded to no samples at all.
    #[error("the audio holds no samples")]
    Empty,
    /// The stream declares an unusable sample rate or channel layout.
    #[error("unusable audio parameters: {0}")]
    BadParameters(String),
    /// The decoded audio is longer than vmail accepts.
    #[error("the audio is longer than {max_seconds} s")]
    TooLong {
        /// The limit.
        max_seconds: u32,
    },
    /// The resampler could not be built or failed.
    #[error("resampling {from} Hz to {to} Hz failed: {reason}")]
    Resample {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// The resampler's reason.
        reason: String,
    },
    /// A language name that cannot be a prompt folder.
    #[error("invalid prompt language {0:?} (letters, digits, '-' and '_' only)")]
    InvalidLanguage(String),
    /// The folder of a requested language does not exist.
    #[error("no prompts for language {language:?}: {} is not a folder", path.display())]
    LanguageMissing {
        /// The language asked for.
        language: String,
        /// The folder looked at.
        path: PathBuf,
    },
    /// The thread loading a language's prompts panicked.
    #[error("loading the prompts of language {language:?} failed unexpectedly")]
    LoaderPanicked {
        /// The language being loaded.
        language: String,
    },
    /// Two files map to the same prompt name (e.g. `beep.wav` and `beep.flac`).
    #[error("prompt {language}/{name} is given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// Language folder.
        language: String,
        /// Prompt name.
        name: String,
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// Required prompts are absent (`language/name`, all of them).
    #[error("required prompts missing: {}", .0.join(", "))]
    MissingRequired(Vec<String>),
}
