//! The bodies of the relay messages (types 13 to 17): a node nobody can dial keeps a
//! *reservation* at a reachable peer, which introduces such nodes to each other so they
//! can open a direct connection, or forwards the bytes of a circuit between them when they
//! cannot (PROTOCOL.md, "Relays and hole punching").
//!
//! Addresses are encoded as in `PEERS` ([`super::peers::encode_addr`]).

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};

use super::error::MessageError;
use super::peers;
use crate::identity::{PeerId, PEER_ID_LEN};

/// Type byte of `Message::Reserve`.
pub(crate) const MSG_RESERVE: u8 = 13;
/// Type byte of `Message::Reserved`.
pub(crate) const MSG_RESERVED: u8 = 14;
/// Type byte of `Message::Introduce`.
pub(crate) const MSG_INTRODUCE: u8 = 15;
/// Type byte of `Message::Relay`.
pub(crate) const MSG_RELAY: u8 = 16;
/// Type byte of `Message::Relaying`.
pub(crate) const MSG_RELAYING: u8 = 17;

/// Another node behind a NAT, as a relay introduces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Introduction {
    /// Names this introduction (and the circuit, if it comes to one).
    pub(crate) nonce: u64,
    /// Whether we open the connection (the other side answers it).
    pub(crate) initiator: bool,
    /// Who the other node is.
    pub(crate) peer: PeerId,
    /// Where the relay sees its reservation come from: where to punch to.
    pub(crate) seen: SocketAddr,
    /// Where it listens on its own network, given only when it is behind the same
    /// address as we are (the same NAT).
    pub(crate) local: Option<SocketAddr>,
}

impl Introduction {
    /// Its body's length on the wire.
    pub(crate) fn body_len(&self) -> usize {
        8 + 1 + PEER_ID_LEN + peers::addr_len(&self.seen) + 1 + self.local.as_ref().map_or(0, peers::addr_len)
    }

    /// Appends its body.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.nonce);
        dst.put_u8(u8::from(self.initiator));
        dst.put_slice(&self.peer.0);
        peers::encode_addr(&self.seen, dst);
        match &self.local {
            Some(local) => {
                dst.put_u8(1);
                peers::encode_addr(local, dst);
            }
            None => dst.put_u8(0),
        }
    }
}

/// The nonce of a `RELAY` body.
pub(crate) fn nonce(body: &[u8]) -> Result<u64, MessageError> {
    <[u8; 8]>::try_from(body)
        .map(u64::from_be_bytes)
        .map_err(|_| bad("RELAY", 8, body.len()))
}

/// A `RELAYING` body: empty.
pub(crate) fn empty(body: &[u8]) -> Result<(), MessageError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(bad("RELAYING", 0, body.len()))
    }
}

fn bad(name: &'static str, expected: usize, got: usize) -> MessageError {
    MessageError::BadLength { name, expected, got }
}

/// The one address of a `RESERVE` or `RESERVED` body (`name`).
pub(crate) fn one_addr(name: &'static str, body: &[u8]) -> Result<SocketAddr, MessageError> {
    let (addr, rest) = peers::decode_addr(body, body, name)?;
    if !rest.is_empty() {
        return Err(bad(name, body.len() - rest.len(), body.len()));
    }
    Ok(addr)
}

/// An `INTRODUCE` body.
pub(crate) fn introduction(body: &[u8]) -> Result<Introduction, MessageError> {
    const NAME: &str = "INTRODUCE";
    let short = || bad(NAME, 8 + 1 + PEER_ID_LEN + 8, body.len());
    let (nonce, rest) = body.split_first_chunk::<8>().ok_or_else(short)?;
    let (&initiator, rest) = rest.split_first().ok_or_else(short)?;
    let initiator = match initiator {
        0 => false,
        1 => true,
        other => {
            return Err(MessageError::Flag {
                name: NAME,
                got: other,
            })
        }
    };
    let (peer, rest) = rest.split_first_chunk::<PEER_ID_LEN>().ok_or_else(short)?;
    let (seen, rest) = peers::decode_addr(rest, body, NAME)?;
    let (local, rest) = match rest.split_first() {
        Some((0, rest)) => (None, rest),
        Some((1, rest)) => {
            let (local, rest) = peers::decode_addr(rest, body, NAME)?;
            (Some(local), rest)
        }
        Some((&other, _)) => {
            return Err(MessageError::Flag {
                name: NAME,
                got: other,
            })
        }
        None => return Err(short()),
    };
    if !rest.is_empty() {
        return Err(bad(NAME, body.len() - rest.len(), body.len()));
    }
    Ok(Introduction {
        nonce: u64::from_be_bytes(*nonce),
        initiator,
        peer: PeerId(*peer),
        seen,
        local,
    })
}
