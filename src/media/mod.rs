//! The media layer of vmail (SPEC §5, §6): pure RTP processing, no sockets
//! and no clock.
//!
//! - [`RtpReceiver`]: one per call; the shell pushes each received datagram
//!   and drains in-order PCM (jitter buffer, gaps as silence so the recording
//!   is as long as the media time) plus RFC 4733 digits.
//! - [`RtpPacketizer`]: the outgoing stream (prompts, beeps) for the pacing timer.
//! - [`SilenceDetector`]: "N seconds of silence ends the recording".
//! - [`SourceLatch`]: which source's RTP is the caller's, and where to send.
//! - [`PortPool`]: even RTP ports, picked at random.
//! - [`AudioDecoder`]/[`AudioEncoder`]: G.711, G.722, G.729, Opus;
//! - [`SrtpRx`]/[`SrtpTx`]: SRTP unprotect/protect of a call's packets;
//!   G.711 [`encode`]/[`decode`], [`tone`] and [`dtmf_tone`] generators.
//!
//! In-band DTMF (Goertzel) will sit next to [`SilenceDetector`] as another
//! consumer of the drained PCM.

mod codec;
mod coder;
mod digits;
mod dtmf;
mod error;
mod inband;
mod latch;
mod packetizer;
mod ports;
mod receiver;
mod silence;
mod srtp;
mod tone;

#[cfg(test)]
mod tests;

pub use codec::{decode, encode, Codec, ALL_CODECS, DEFAULT_OPUS_PT};
pub use coder::{opus_answer_fmtp, AudioDecoder, AudioEncoder, OpusParams};
pub use digits::{DigitDeduper, DigitSource, DEFAULT_DEDUP_WINDOW};
pub use dtmf::{digit_to_event, event_to_digit, DtmfEvent};
pub use error::MediaError;
pub use inband::{InbandDetector, InbandDigit};
pub use latch::{usable_ip as usable_media_ip, DropReason, SourceLatch, Verdict};
pub use packetizer::{RtpPacketizer, RTP_HEADER_LEN};
pub use ports::PortPool;
pub use receiver::{IgnoreReason, PushResult, RtpReceiver, RxConfig, RxStats};
pub use silence::{SilenceDetector, DEFAULT_SILENCE_DBFS};
pub use srtp::{SrtpDrop, SrtpRx, SrtpTx, REPLAY_WINDOW};
pub use tone::{dtmf_frequencies, dtmf_tone, tone};
