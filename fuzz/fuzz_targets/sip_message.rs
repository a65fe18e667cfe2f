//! A SIP message as a UDP datagram: parsing, the endpoint's own answers
//! (400/501/483/420/405, retransmissions, CANCEL) and the server's answers
//! to the requests it is given, then the timers. The same bytes are then
//! given again (a retransmission) and as a TCP message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmail::sip::{ConnId, Peer};

#[path = "sip_harness.rs"]
mod sip_harness;
use sip_harness::{remote, t0, Harness};

fuzz_target!(|data: &[u8]| {
    let now = t0();
    let mut h = Harness::new();
    h.input(now, Peer::udp(remote()), data);
    h.input(now, Peer::udp(remote()), data);
    h.input(now, Peer::tcp(remote(), ConnId(1)), data);
    h.run_timers(now);
});
