//! The bodies of the relay messages (types 13 to 17): a node nobody can dial keeps a
//! *reservation* at a reachable peer, which introduces such nodes to each other so they
//! can open a direct connection, or forwards the bytes of a circuit between them when they
//! cannot (PROTOCOL.md, "Relays and hole punching").
//!
//! Addresses are encoded as in `PEERS` ([`super::peers::encode_addr`]).

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};

use super::error::MessageError;
use super::message::Message;
use super::peers;
use crate::identity::{PeerId, PEER_ID_LEN};

/// Type byte of [`Message::Reserve`].
pub(crate) const MSG_RESERVE: u8 = 13;
/// Type byte of [`Message::Reserved`].
pub(crate) const MSG_RESERVED: u8 = 14;
/// Type byte of [`Message::Introduce`].
pub(crate) const MSG_INTRODUCE: u8 = 15;
/// Type byte of [`Message::Relay`].
pub(crate) const MSG_RELAY: u8 = 16;
/// Type byte of [`Message::Relaying`].
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

/// The type byte and body length of a relay message, `None` for another.
pub(crate) fn head(msg: &Message) -> Option<(u8, usize)> {
    Some(match msg {
        Message::Reserve(local) => (MSG_RESERVE, peers::addr_len(local)),
        Message::Reserved(seen) => (MSG_RESERVED, peers::addr_len(seen)),
        Message::Introduce(i) => (
            MSG_INTRODUCE,
            8 + 1 + PEER_ID_LEN + peers::addr_len(&i.seen) + 1 + i.local.as_ref().map_or(0, peers::addr_len),
        ),
        Message::Relay(_) => (MSG_RELAY, 8),
        Message::Relaying => (MSG_RELAYING, 0),
        _ => return None,
    })
}

/// Appends the body of a relay message (nothing for another).
pub(crate) fn encode_body(msg: &Message, dst: &mut BytesMut) {
    match msg {
        Message::Reserve(addr) | Message::Reserved(addr) => peers::encode_addr(addr, dst),
        Message::Introduce(i) => {
            dst.put_u64(i.nonce);
            dst.put_u8(u8::from(i.initiator));
            dst.put_slice(&i.peer.0);
            peers::encode_addr(&i.seen, dst);
            match &i.local {
                Some(local) => {
                    dst.put_u8(1);
                    peers::encode_addr(local, dst);
                }
                None => dst.put_u8(0),
            }
        }
        Message::Relay(nonce) => dst.put_u64(*nonce),
        _ => {}
    }
}

/// Decodes the body of relay message `kind` (`None` if `kind` is not one).
pub(crate) fn decode(kind: u8, body: &[u8]) -> Option<Result<Message, MessageError>> {
    let msg = match kind {
        MSG_RESERVE => one_addr("RESERVE", body).map(Message::Reserve),
        MSG_RESERVED => one_addr("RESERVED", body).map(Message::Reserved),
        MSG_INTRODUCE => introduction(body).map(Message::Introduce),
        MSG_RELAY => match <[u8; 8]>::try_from(body) {
            Ok(nonce) => Ok(Message::Relay(u64::from_be_bytes(nonce))),
            Err(_) => Err(bad("RELAY", 8, body.len())),
        },
        MSG_RELAYING if body.is_empty() => Ok(Message::Relaying),
        MSG_RELAYING => Err(bad("RELAYING", 0, body.len())),
        _ => return None,
    };
    Some(msg)
}

fn bad(name: &'static str, expected: usize, got: usize) -> MessageError {
    MessageError::BadLength { name, expected, got }
}

fn one_addr(name: &'static str, body: &[u8]) -> Result<SocketAddr, MessageError> {
    let (addr, rest) = peers::decode_addr(body, body, name)?;
    if !rest.is_empty() {
        return Err(bad(name, body.len() - rest.len(), body.len()));
    }
    Ok(addr)
}

fn introduction(body: &[u8]) -> Result<Introduction, MessageError> {
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
