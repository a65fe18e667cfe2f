//! Addresses and datagrams exchanged with the runtime shell.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The transport a message came in on or goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// Datagrams; the SIP layer retransmits.
    Udp,
    /// A stream; the runtime frames messages with [`super::StreamFramer`].
    Tcp,
    /// A TCP stream inside TLS, framed like [`Transport::Tcp`].
    Tls,
}

impl Transport {
    /// Whether the transport delivers reliably (no SIP-level retransmission).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// The token used in a Via header (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether messages travel encrypted and authenticated (TLS): only
    /// then may SDES keys (RFC 4568) be exchanged in the SDP.
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls)
    }
}

/// A TCP connection, named by the runtime shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// The other end of a message: transport, address and, for TCP, the
/// connection it arrived on (responses go back on that connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peer {
    /// UDP or TCP.
    pub transport: Transport,
    /// The remote socket address.
    pub addr: SocketAddr,
    /// The TCP connection, when known.
    pub conn: Option<ConnId>,
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Self {
        Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
        }
    }

    /// A TLS peer on a known connection.
    pub fn tls(addr: SocketAddr, conn: ConnId) -> Self {
        Peer {
            transport: Transport::Tls,
            addr,
            conn: Some(conn),
        }
    }

    /// A TCP peer on a known connection.
    pub fn tcp(addr: SocketAddr, conn: ConnId) -> Self {
        Peer {
            transport: Transport::Tcp,
            addr,
            conn: Some(conn),
        }
    }
}

/// Bytes the runtime shell must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send them.
    pub to: Peer,
    /// One complete SIP message.
    pub bytes: Vec<u8>,
}

/// Names one server or client transaction of an [`super::Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey(pub(crate) u64);
