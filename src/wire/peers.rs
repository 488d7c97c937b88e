//! The body of a `PEERS` message: the peers a node knows, with their current addresses
//! (and the address encoding `REACH` shares).
//!
//! `count` (u16, at most [`MAX_PEERS`]), then per peer: its 16-byte peer ID, the address
//! family (`4` or `6`), the IP (4 or 16 bytes) and the listening port (u16). Big-endian,
//! no padding; the body's length must be exactly what the entries need.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, BytesMut};

use super::error::MessageError;
use crate::identity::{PeerId, PEER_ID_LEN};

/// The most peers one `PEERS` message carries.
pub(crate) const MAX_PEERS: usize = 64;
/// The longest `PEERS` body: every entry an IPv6 one.
pub(crate) const MAX_PEERS_BODY_LEN: usize = 2 + MAX_PEERS * (PEER_ID_LEN + 1 + 16 + 2);

/// A peer and where it listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeerAddr {
    /// Its identity.
    pub id: PeerId,
    /// Its listening address.
    pub addr: SocketAddr,
}

/// The encoded length of `peers`' body.
pub(crate) fn body_len(peers: &[PeerAddr]) -> usize {
    2 + peers.iter().map(entry_len).sum::<usize>()
}

fn entry_len(p: &PeerAddr) -> usize {
    PEER_ID_LEN + addr_len(&p.addr)
}

/// Appends the body for `peers` (the caller keeps it to [`MAX_PEERS`]).
pub(crate) fn encode(peers: &[PeerAddr], dst: &mut BytesMut) {
    dst.put_u16(peers.len() as u16);
    for p in peers {
        dst.put_slice(&p.id.0);
        encode_addr(&p.addr, dst);
    }
}

/// The encoded length of an address: family, IP, port.
pub(crate) fn addr_len(addr: &SocketAddr) -> usize {
    1 + if addr.is_ipv4() { 4 } else { 16 } + 2
}

/// Appends `addr`: its family (`4` or `6`), the IP (4 or 16 bytes), the port (u16).
pub(crate) fn encode_addr(addr: &SocketAddr, dst: &mut BytesMut) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            dst.put_u8(4);
            dst.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            dst.put_u8(6);
            dst.put_slice(&ip.octets());
        }
    }
    dst.put_u16(addr.port());
}

/// The address at the front of `rest` (as [`encode_addr`] writes it) and what follows it;
/// `body` is the whole body and `name` its message's, for the error.
pub(crate) fn decode_addr<'a>(
    rest: &'a [u8],
    body: &[u8],
    name: &'static str,
) -> Result<(SocketAddr, &'a [u8]), MessageError> {
    let short = |more: usize| MessageError::BadLength {
        name,
        expected: body.len() + more,
        got: body.len(),
    };
    let (ip, after) = match rest.split_first() {
        Some((4, a)) => match a.split_first_chunk::<4>() {
            Some((ip, a)) => (IpAddr::V4(Ipv4Addr::from(*ip)), a),
            None => return Err(short(4)),
        },
        Some((6, a)) => match a.split_first_chunk::<16>() {
            Some((ip, a)) => (IpAddr::V6(Ipv6Addr::from(*ip)), a),
            None => return Err(short(16)),
        },
        Some((&family, _)) => return Err(MessageError::AddressFamily(family)),
        None => return Err(short(1)),
    };
    let Some((port, after)) = after.split_first_chunk::<2>() else {
        return Err(short(2));
    };
    Ok((SocketAddr::new(ip, u16::from_be_bytes(*port)), after))
}

fn bad(expected: usize, got: usize) -> MessageError {
    MessageError::BadLength {
        name: "PEERS",
        expected,
        got,
    }
}

/// Parses a `PEERS` body.
pub(crate) fn decode(body: &[u8]) -> Result<Vec<PeerAddr>, MessageError> {
    let Some((count, mut rest)) = body.split_first_chunk::<2>() else {
        return Err(bad(2, body.len()));
    };
    let count = usize::from(u16::from_be_bytes(*count));
    if count > MAX_PEERS {
        return Err(MessageError::TooManyPeers {
            got: count,
            max: MAX_PEERS,
        });
    }
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((id, after)) = rest.split_first_chunk::<PEER_ID_LEN>() else {
            return Err(bad(body.len() + PEER_ID_LEN, body.len()));
        };
        let (addr, after) = decode_addr(after, body, "PEERS")?;
        peers.push(PeerAddr {
            id: PeerId(*id),
            addr,
        });
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad(body.len() - rest.len(), body.len()));
    }
    Ok(peers)
}
