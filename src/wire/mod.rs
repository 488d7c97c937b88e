//! The swarmshare wire protocol, version 5 ([`handshake::VERSION`]). `PROTOCOL.md` is the byte-exact specification;
//! this module implements it as pure functions on byte slices (no I/O, no async), so it can
//! be unit-tested, property-tested and fuzzed.
//!
//! # Participants
//! * the **owner**, which has the whole file and the manifest;
//! * **peers**, which hold some chunks and serve them to whoever asks.
//!
//! # Shape of a connection
//! 1. The client sends a fixed 56-byte [`Hello`](handshake::Hello): magic, version, role,
//!    listening port, swarm ID and peer ID ([`handshake`]); the server reads it and answers
//!    with its own (`BUSY` when it serves as many downloaders as it takes).
//! 2. Then length-prefixed frames ([`frame`]) carrying one [`Message`](message::Message)
//!    each ([`message`]). A `JOIN` connection to the owner first receives the manifest and
//!    a batch of chunks; after that, and on every `FETCH` connection, the client asks
//!    (`LIST_REQUEST`, `LIST_WAIT`, `REQUEST`, `PEERS_REQUEST`) and the server answers (`LIST`,
//!    `CHUNK`, `NOT_HAVE`, `PEERS`: the peers it knows, [`peers`]).
//!
//! # Bounds
//! A frame's length is checked against a maximum *before* anything is buffered for it:
//! [`max_frame_len`] for the swarm once the manifest is known, and
//! [`MAX_MANIFEST_FRAME_LEN`] only while a joining peer waits for the manifest.
//!
//! # Non-goals
//! Encryption and authentication of peers: integrity comes from the manifest's hashes.

pub(crate) mod error;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod message;
pub(crate) mod peers;
pub(crate) mod relay;

use crate::chunk_set::bitfield_len;
use crate::manifest::{Layout, MAX_MANIFEST_LEN};

pub(crate) use frame::{FrameError, LEN_PREFIX};
pub(crate) use handshake::{HandshakeError, Hello, Role, HELLO_LEN};
pub(crate) use message::{decode, decode_front, encode, DecodeError, Message, Reached};
pub(crate) use peers::{PeerAddr, MAX_PEERS};

/// Bytes of a message's fixed part after the length prefix: type byte + chunk ID.
pub(crate) const CHUNK_HEADER_LEN: usize = 1 + 4;

/// The largest frame a server reads from a client: a `REQUEST` (type byte + chunk ID).
pub(crate) const MAX_REQUEST_FRAME_LEN: usize = 1 + 4;

/// The largest frame (type byte and body, without the length prefix) that can carry a
/// manifest.
pub(crate) const MAX_MANIFEST_FRAME_LEN: usize = 1 + MAX_MANIFEST_LEN;

/// The largest frame a client reads in a swarm with this layout: a full chunk, the chunk
/// ID list or a full `PEERS`, whichever is longest.
pub(crate) fn max_frame_len(layout: &Layout) -> usize {
    let chunk = CHUNK_HEADER_LEN + layout.chunk_size() as usize;
    let list = 1 + 4 + bitfield_len(layout.chunk_count());
    chunk.max(list).max(1 + peers::MAX_PEERS_BODY_LEN)
}
