//! What the SIP task and a call's driver tell each other.

use std::net::SocketAddr;

use crate::media::RxConfig;

/// What the SIP side tells a call.
#[derive(Debug)]
pub enum CallCommand {
    /// BYE or CANCEL from the caller, or vmail is shutting down.
    Hangup,
    /// A re-INVITE changed the media: new receive settings, the address the
    /// SDP names, and whether vmail may send (false on hold).
    Media(RxConfig, Option<SocketAddr>, bool),
    /// A re-INVITE gave the caller's SRTP stream a new key.
    SrtpKey(Box<crate::media::SrtpRx>),
    /// A DTMF digit from SIP INFO.
    Dtmf(char),
    /// The ACK of the 200 arrived from where the INVITE came from.
    Ack,
    /// The transfer (REFER) the call asked for ended: `true` when the
    /// caller reached the target (a `2xx` sipfrag), `false` when the REFER
    /// was refused, failed or was not answered.
    TransferEnded(bool),
}

/// What a call tells the SIP side.
#[derive(Debug)]
pub enum CallEvent {
    /// Send BYE for this call.
    Hangup { call: u64 },
    /// Send REFER in this call's dialog: the caller is asked to call
    /// `target`, referred by `referred_by` (both `sip:` URIs).
    Transfer {
        call: u64,
        target: String,
        referred_by: String,
    },
    /// The call's task has ended; its resources are released.
    Ended { call: u64 },
}
