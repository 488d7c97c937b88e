//! Connections for relays and hole punching: sockets whose local port can be shared, and
//! a connection turned back into the bare socket once a relay starts forwarding.
//!
//! A node nobody can dial opens its reservation at a relay from a port of its own choosing
//! with `SO_REUSEADDR` ([`connect_reusable`]): the relay sees the NAT's mapping of that
//! port, and tells it to others. To punch a hole, both sides then connect at the same
//! time from their reserved ports to each other's mapping ([`punch`]): each side's first
//! packet out opens its NAT for the other's, and TCP's simultaneous open makes one
//! connection of the two attempts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpSocket, TcpStream};

use super::{Connection, Inbound, Outbound, CONNECT_TIMEOUT};
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::secure::Credentials;

/// A socket bound to `local` (port 0: any) with `SO_REUSEADDR`, so other sockets may bind
/// its port too.
fn reusable(local: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = match local {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(local)?;
    Ok(socket)
}

/// The unspecified address of `to`'s family, at `port`.
fn any(to: SocketAddr, port: u16) -> SocketAddr {
    let ip = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, port)
}

/// Connects to `addr` from a port other sockets may share, within [`CONNECT_TIMEOUT`]:
/// the connection and that local port.
pub(crate) async fn connect_reusable(
    addr: SocketAddr,
    creds: Arc<Credentials>,
) -> Result<(Connection, u16), PeerError> {
    let socket = reusable(any(addr, 0)).map_err(PeerError::Connect)?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| PeerError::Timeout("connecting"))?
        .map_err(PeerError::Connect)?;
    let port = stream.local_addr().map_err(PeerError::Connect)?.port();
    Ok((Connection::new(stream, addr, creds), port))
}

/// One attempt to connect to `to` from local port `port` (shared with the reservation),
/// within `limit`.
pub(crate) async fn punch(port: u16, to: SocketAddr, limit: Duration) -> std::io::Result<TcpStream> {
    let socket = reusable(any(to, port))?;
    match tokio::time::timeout(limit, socket.connect(to)).await {
        Ok(connected) => connected,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

impl Connection {
    /// The bare socket, for forwarding as it is once a relay circuit is up, with the bytes
    /// that came behind the last message read (the other side's, already forwarded). No
    /// decrypted byte may be left unread, nor any write unfinished: else the other side (or
    /// this one) broke the protocol.
    pub(crate) fn into_raw(self) -> Result<(TcpStream, BytesMut), PeerError> {
        let (Inbound::Socket(reader), Outbound::Socket(writer)) = (self.inbound, self.outbound) else {
            return Err(PeerError::Relay("a circuit on a two-way link"));
        };
        let Some((read, leftover)) = reader.into_raw() else {
            return Err(PeerError::Relay("bytes sealed after RELAYING"));
        };
        if !writer.is_idle() {
            return Err(PeerError::Relay("a write cut short before RELAYING"));
        }
        let stream = read
            .reunite(writer.stream)
            .map_err(|_| PeerError::Relay("a socket's halves that do not match"))?;
        Ok((stream, leftover))
    }

    /// Only `peer` may answer on this connection, which reached us another way than
    /// through our listener: its hello must prove that ID, and where it comes from is not
    /// where it listens.
    pub(crate) fn expect_peer(&mut self, peer: PeerId) {
        self.expected = Some(peer);
    }

    /// Whether it reached us another way than through our listener.
    pub(crate) fn came_another_way(&self) -> bool {
        self.expected.is_some()
    }

    /// Our end's address (`None` once split for a two-way link).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inbound {
            Inbound::Socket(reader) => reader.stream.local_addr().ok(),
            Inbound::Routed(_) => None,
        }
    }

    /// A new connection on a relayed socket whose first bytes, `leftover`, were already
    /// read (see [`Connection::into_raw`]).
    pub(crate) fn relayed(
        stream: TcpStream,
        remote: SocketAddr,
        creds: Arc<Credentials>,
        leftover: BytesMut,
    ) -> Connection {
        let mut conn = Connection::new(stream, remote, creds);
        if let Inbound::Socket(reader) = &mut conn.inbound {
            reader.prepend(leftover);
        }
        conn
    }
}
