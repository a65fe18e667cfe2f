//! IVR prompts: loading `prompts/<language>/` once at start (any format
//! symphonia decodes, converted to mono i16 at 8 kHz and 16 kHz), looking prompts up with
//! a fallback to English, and building playlists that speak digits,
//! numbers, dates and times.
//!
//! The prompt files and the script that makes them live in the top-level
//! `prompts/` folder (see its README).

mod decode;
mod error;
mod greeting_cache;
mod set;
mod speak;

pub use decode::{decode_prompt, decode_to_8k, resample_to, MAX_DECODED_SECONDS, SAMPLE_RATE};
pub use error::PromptError;
pub use greeting_cache::GreetingCache;
pub use set::{resample_i16, Prompt, PromptSet, FALLBACK_LANGUAGE, WIDE_RATE};
pub use speak::{
    counted_names, date_time_names, digit_names, number_names, ordinal_name, plural, Gender, Plural,
};
