//! A TCP byte stream: `StreamFramer` cuts it into messages (fed in chunks of
//! varying size, as reads return them) and each message goes to the
//! endpoint as the TCP reader hands it over; the first byte picks the chunk
//! sizes. Invariant: the messages cut from one chunking are the messages cut
//! when the whole stream arrives at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmail::sip::{ConnId, Frame, Peer, StreamFramer};

#[path = "sip_harness.rs"]
mod sip_harness;
use sip_harness::{remote, t0, Harness};

/// Small enough that the limits are reached by fuzz inputs.
const MAX_MESSAGE: usize = 4096;

/// Frames cut from `data` read in chunks of the sizes `sizes` cycles
/// through, and whether the framer refused the stream.
fn frames(data: &[u8], sizes: &[usize]) -> (Vec<Frame>, bool) {
    let mut framer = StreamFramer::new(MAX_MESSAGE);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some(&seed) = data.first() else {
        return;
    };
    let sizes = [
        1 + usize::from(seed % 13),
        1,
        2 + usize::from(seed / 13),
        3,
        512,
    ];
    let (chunked, failed) = frames(data, &sizes);
    let (whole, failed_whole) = frames(data, &[data.len()]);
    assert_eq!(
        (&chunked, failed),
        (&whole, failed_whole),
        "framing depends on how the stream was read"
    );

    let now = t0();
    let mut h = Harness::new();
    let peer = Peer::tcp(remote(), ConnId(1));
    for f in &chunked {
        if let Frame::Message(m) = f {
            h.input(now, peer, m);
        }
    }
    h.run_timers(now);
});
