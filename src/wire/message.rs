//! The messages carried in frames, and their exact-length encoding.
//!
//! Each frame's payload is one type byte and a body whose length is fixed by the type
//! (or, for `LIST` and `CHUNK`, by a count inside the body). Anything else, trailing
//! bytes included, is a named [`MessageError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub(crate) use super::error::{DecodeError, MessageError};
use super::frame::{self, FrameError, LEN_PREFIX};
use super::peers::{self, PeerAddr};
use super::relay;
use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// Type byte of [`Message::Manifest`].
pub(crate) const MSG_MANIFEST: u8 = 1;
/// Type byte of [`Message::BatchEnd`].
pub(crate) const MSG_BATCH_END: u8 = 2;
/// Type byte of [`Message::ListRequest`].
pub(crate) const MSG_LIST_REQUEST: u8 = 3;
/// Type byte of [`Message::List`].
pub(crate) const MSG_LIST: u8 = 4;
/// Type byte of [`Message::Request`].
pub(crate) const MSG_REQUEST: u8 = 5;
/// Type byte of [`Message::Chunk`].
pub(crate) const MSG_CHUNK: u8 = 6;
/// Type byte of [`Message::NotHave`].
pub(crate) const MSG_NOT_HAVE: u8 = 7;
/// Type byte of [`Message::PeersRequest`].
pub(crate) const MSG_PEERS_REQUEST: u8 = 8;
/// Type byte of [`Message::Peers`].
pub(crate) const MSG_PEERS: u8 = 9;
/// Type byte of [`Message::ListWait`].
pub(crate) const MSG_LIST_WAIT: u8 = 10;
/// Type byte of [`Message::ReachRequest`].
pub(crate) const MSG_REACH_REQUEST: u8 = 11;
/// Type byte of [`Message::Reach`].
pub(crate) const MSG_REACH: u8 = 12;

/// What a dial-back found (the first byte of `REACH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reached {
    /// Nobody of the swarm answered there under the asker's ID.
    No = 0,
    /// The asker answered there.
    Yes = 1,
    /// Not checked now (too many dial-backs out): ask again later.
    Unchecked = 2,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Owner → joining peer: the encoded manifest.
    Manifest(Bytes),
    /// Owner → joining peer: the batch of `count` chunks just sent is complete.
    BatchEnd {
        /// Chunks in the batch.
        count: u32,
    },
    /// Client → server: send me your chunk ID list.
    ListRequest,
    /// Server → client: the chunk IDs I hold.
    List(ChunkSet),
    /// Client → server: send me this chunk.
    Request(ChunkId),
    /// Server → client: a chunk's bytes (never empty).
    Chunk {
        /// Which chunk.
        id: ChunkId,
        /// Its bytes.
        data: Bytes,
    },
    /// Server → client: I do not hold the chunk you requested.
    NotHave(ChunkId),
    /// Client → server: which peers do you know?
    PeersRequest,
    /// Server → client: peers I know, with their listening addresses (at most
    /// [`MAX_PEERS`](super::peers::MAX_PEERS)).
    Peers(Vec<PeerAddr>),
    /// Client → server: send me your chunk ID list once you hold a chunk that was not in
    /// the last list you sent me, or after at most this many milliseconds (a long poll;
    /// the server caps the wait).
    ListWait(u32),
    /// Client → server: dial me back at this port of the address this connection comes
    /// from, and tell me who answered.
    ReachRequest(u16),
    /// Server → client: what that dial-back found, and the address the connection comes
    /// from as the server sees it.
    Reach {
        /// What answered.
        found: Reached,
        /// The asker's address as seen from here.
        seen: std::net::SocketAddr,
    },
    /// Client → relay: keep this connection as my reservation, and introduce me to the
    /// others you hold one for; I listen at this address on my own network.
    Reserve(std::net::SocketAddr),
    /// Relay → client: reservation taken; your connection comes from this address as the
    /// relay sees it.
    Reserved(std::net::SocketAddr),
    /// Relay → client (on a reservation): another node behind a NAT, to connect to.
    Introduce(super::relay::Introduction),
    /// Client → relay: join me to the other side of this introduction through you.
    Relay(u64),
    /// Relay → client: from the next byte on, this connection carries the other side's
    /// bytes, as they are.
    Relaying,
}

impl Message {
    /// Whether it is a request (a client's: `LIST_REQUEST`, `LIST_WAIT`, `REQUEST`,
    /// `PEERS_REQUEST`, `REACH_REQUEST`), which a server answers; on a two-way link this is how a side tells
    /// the other's requests from its answers.
    pub(crate) fn is_request(&self) -> bool {
        matches!(
            self,
            Message::ListRequest
                | Message::ListWait(_)
                | Message::Request(_)
                | Message::PeersRequest
                | Message::ReachRequest(_)
                | Message::Reserve(_)
                | Message::Relay(_)
        )
    }

    /// Whether it answers a request (`LIST`, `CHUNK`, `NOT_HAVE`, `PEERS`, `REACH`).
    pub(crate) fn is_answer(&self) -> bool {
        matches!(
            self,
            Message::List(_)
                | Message::Chunk { .. }
                | Message::NotHave(_)
                | Message::Peers(_)
                | Message::Reach { .. }
                | Message::Reserved(_)
                | Message::Introduce(_)
                | Message::Relaying
        )
    }

    /// The message's name as written in `PROTOCOL.md`, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Message::Manifest(_) => "MANIFEST",
            Message::BatchEnd { .. } => "BATCH_END",
            Message::ListRequest => "LIST_REQUEST",
            Message::List(_) => "LIST",
            Message::Request(_) => "REQUEST",
            Message::Chunk { .. } => "CHUNK",
            Message::NotHave(_) => "NOT_HAVE",
            Message::PeersRequest => "PEERS_REQUEST",
            Message::Peers(_) => "PEERS",
            Message::ListWait(_) => "LIST_WAIT",
            Message::ReachRequest(_) => "REACH_REQUEST",
            Message::Reach { .. } => "REACH",
            Message::Reserve(_) => "RESERVE",
            Message::Reserved(_) => "RESERVED",
            Message::Introduce(_) => "INTRODUCE",
            Message::Relay(_) => "RELAY",
            Message::Relaying => "RELAYING",
        }
    }
}

/// Decodes the frame at the start of `buf`, whose length may not exceed `max`.
/// Returns the message and how many bytes of `buf` it used.
pub(crate) fn decode(buf: &[u8], max: usize) -> Result<(Message, usize), DecodeError> {
    let range = frame::parse(buf, max)?;
    let used = range.end;
    Ok((decode_payload(&buf[range])?, used))
}

/// Decodes one frame from the front of `buf` and removes it from `buf`, like [`decode`];
/// a `CHUNK`'s bytes are split off `buf`, not copied. On an error `buf` is unchanged.
pub(crate) fn decode_front(buf: &mut BytesMut, max: usize) -> Result<Message, DecodeError> {
    let range = frame::parse(buf, max)?;
    let body = range.start + 1;
    if buf.get(range.start) == Some(&MSG_CHUNK) && range.end > body + 4 {
        let id = read_u32("CHUNK", &buf[body..])?;
        let frame = buf.split_to(range.end).freeze();
        return Ok(Message::Chunk {
            id,
            data: frame.slice(body + 4..),
        });
    }
    let msg = decode_payload(&buf[range.clone()])?;
    buf.advance(range.end);
    Ok(msg)
}

fn exact(name: &'static str, body: &[u8], expected: usize) -> Result<(), MessageError> {
    if body.len() == expected {
        Ok(())
    } else {
        Err(MessageError::BadLength {
            name,
            expected,
            got: body.len(),
        })
    }
}

fn read_u32(name: &'static str, body: &[u8]) -> Result<u32, MessageError> {
    let Some(b) = body.get(..4) else {
        return Err(MessageError::BadLength {
            name,
            expected: 4,
            got: body.len(),
        });
    };
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a frame's payload (type byte and body).
pub(crate) fn decode_payload(payload: &[u8]) -> Result<Message, MessageError> {
    let Some((&kind, body)) = payload.split_first() else {
        return Err(MessageError::UnknownType(0));
    };
    let msg = match kind {
        MSG_MANIFEST => Message::Manifest(Bytes::copy_from_slice(body)),
        MSG_BATCH_END => {
            exact("BATCH_END", body, 4)?;
            Message::BatchEnd {
                count: read_u32("BATCH_END", body)?,
            }
        }
        MSG_LIST_REQUEST => {
            exact("LIST_REQUEST", body, 0)?;
            Message::ListRequest
        }
        MSG_LIST => {
            let len = read_u32("LIST", body)?;
            Message::List(ChunkSet::from_bitfield(len, &body[4..])?)
        }
        MSG_REQUEST => {
            exact("REQUEST", body, 4)?;
            Message::Request(read_u32("REQUEST", body)?)
        }
        MSG_CHUNK => {
            if body.len() < 5 {
                return Err(MessageError::BadLength {
                    name: "CHUNK",
                    expected: 5,
                    got: body.len(),
                });
            }
            Message::Chunk {
                id: read_u32("CHUNK", body)?,
                data: Bytes::copy_from_slice(&body[4..]),
            }
        }
        MSG_NOT_HAVE => {
            exact("NOT_HAVE", body, 4)?;
            Message::NotHave(read_u32("NOT_HAVE", body)?)
        }
        MSG_PEERS_REQUEST => {
            exact("PEERS_REQUEST", body, 0)?;
            Message::PeersRequest
        }
        MSG_PEERS => Message::Peers(peers::decode(body)?),
        MSG_LIST_WAIT => {
            exact("LIST_WAIT", body, 4)?;
            Message::ListWait(read_u32("LIST_WAIT", body)?)
        }
        MSG_REACH_REQUEST => {
            exact("REACH_REQUEST", body, 2)?;
            Message::ReachRequest(u16::from_be_bytes([body[0], body[1]]))
        }
        MSG_REACH => {
            let found = match body.first() {
                Some(0) => Reached::No,
                Some(1) => Reached::Yes,
                Some(2) => Reached::Unchecked,
                Some(&other) => return Err(MessageError::Reached(other)),
                None => {
                    return Err(MessageError::BadLength {
                        name: "REACH",
                        expected: 8,
                        got: 0,
                    })
                }
            };
            let (seen, rest) = peers::decode_addr(&body[1..], body, "REACH")?;
            if !rest.is_empty() {
                return Err(MessageError::BadLength {
                    name: "REACH",
                    expected: body.len() - rest.len(),
                    got: body.len(),
                });
            }
            Message::Reach { found, seen }
        }
        relay::MSG_RESERVE => Message::Reserve(relay::one_addr("RESERVE", body)?),
        relay::MSG_RESERVED => Message::Reserved(relay::one_addr("RESERVED", body)?),
        relay::MSG_INTRODUCE => Message::Introduce(relay::introduction(body)?),
        relay::MSG_RELAY => Message::Relay(relay::nonce(body)?),
        relay::MSG_RELAYING => relay::empty(body).map(|()| Message::Relaying)?,
        other => return Err(MessageError::UnknownType(other)),
    };
    Ok(msg)
}

/// The length prefix, type byte and chunk ID of a `CHUNK` frame whose data is
/// `data_len` bytes; the data follows it on the wire.
pub(crate) fn chunk_header(id: ChunkId, data_len: usize) -> [u8; LEN_PREFIX + 5] {
    let mut out = [0u8; LEN_PREFIX + 5];
    out[..LEN_PREFIX].copy_from_slice(&frame::prefix(5 + data_len));
    out[LEN_PREFIX] = MSG_CHUNK;
    out[LEN_PREFIX + 1..].copy_from_slice(&id.to_be_bytes());
    out
}

/// The whole length of the `CHUNK` frame whose header, and nothing more, `buf` holds (as
/// [`chunk_header`] writes it), if its length is within `max`; `None` for anything else.
/// A receiver sizes the buffer the chunk's bytes will arrive in from it.
pub(crate) fn chunk_frame_len(buf: &[u8], max: usize) -> Option<usize> {
    if buf.len() != LEN_PREFIX + super::CHUNK_HEADER_LEN || buf[LEN_PREFIX] != MSG_CHUNK {
        return None;
    }
    match frame::parse(buf, max) {
        Err(FrameError::Incomplete { needed }) => Some(buf.len() + needed),
        _ => None,
    }
}

/// Appends `msg` as one whole frame to `dst`.
pub(crate) fn encode(msg: &Message, dst: &mut BytesMut) {
    let (kind, body_len) = match msg {
        Message::Manifest(m) => (MSG_MANIFEST, m.len()),
        Message::BatchEnd { .. } => (MSG_BATCH_END, 4),
        Message::ListRequest => (MSG_LIST_REQUEST, 0),
        Message::List(set) => (MSG_LIST, 4 + set.as_bitfield().len()),
        Message::Request(_) => (MSG_REQUEST, 4),
        Message::Chunk { data, .. } => (MSG_CHUNK, 4 + data.len()),
        Message::NotHave(_) => (MSG_NOT_HAVE, 4),
        Message::PeersRequest => (MSG_PEERS_REQUEST, 0),
        Message::Peers(list) => (MSG_PEERS, peers::body_len(list)),
        Message::ListWait(_) => (MSG_LIST_WAIT, 4),
        Message::ReachRequest(_) => (MSG_REACH_REQUEST, 2),
        Message::Reach { seen, .. } => (MSG_REACH, 1 + peers::addr_len(seen)),
        Message::Reserve(local) => (relay::MSG_RESERVE, peers::addr_len(local)),
        Message::Reserved(seen) => (relay::MSG_RESERVED, peers::addr_len(seen)),
        Message::Introduce(i) => (relay::MSG_INTRODUCE, i.body_len()),
        Message::Relay(_) => (relay::MSG_RELAY, 8),
        Message::Relaying => (relay::MSG_RELAYING, 0),
    };
    dst.reserve(LEN_PREFIX + 1 + body_len);
    dst.put_slice(&frame::prefix(1 + body_len));
    dst.put_u8(kind);
    match msg {
        Message::Manifest(m) => dst.put_slice(m),
        Message::BatchEnd { count } => dst.put_u32(*count),
        Message::ListRequest => {}
        Message::List(set) => {
            dst.put_u32(set.len());
            dst.put_slice(set.as_bitfield());
        }
        Message::Request(id) | Message::NotHave(id) => dst.put_u32(*id),
        Message::ListWait(ms) => dst.put_u32(*ms),
        Message::Chunk { id, data } => {
            dst.put_u32(*id);
            dst.put_slice(data);
        }
        Message::PeersRequest => {}
        Message::Peers(list) => peers::encode(list, dst),
        Message::ReachRequest(port) => dst.put_u16(*port),
        Message::Reach { found, seen } => {
            dst.put_u8(*found as u8);
            peers::encode_addr(seen, dst);
        }
        Message::Reserve(addr) | Message::Reserved(addr) => peers::encode_addr(addr, dst),
        Message::Introduce(i) => i.encode(dst),
        Message::Relay(nonce) => dst.put_u64(*nonce),
        Message::Relaying => {}
    }
}
