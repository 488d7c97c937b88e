//! What goes into the scheduler ([`Event`], [`Outcome`], [`DialFailure`]) and what comes out
//! ([`Action`], [`Stats`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::link::{Close, Target};
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::ChunkId;

/// Why a dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialFailure {
    /// Nothing answered (refused, timed out, unreachable).
    Unreachable,
    /// Something answered, but not a node of this swarm.
    Refused,
    /// We reached ourselves.
    Myself,
    /// Another peer answered there.
    WrongPeer(PeerId),
    /// The peer answered, but serves as many downloaders as it takes right now.
    Busy,
}

/// What storing a received chunk came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Verified and stored: new to us.
    New,
    /// Verified, but another copy was stored first.
    Duplicate,
    /// It failed verification.
    Bad,
}

/// What happened on a link.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// The dial reached `peer` at `addr` (hellos exchanged); `owner` from its role.
    Connected {
        peer: PeerId,
        addr: SocketAddr,
        owner: bool,
    },
    /// The dial failed.
    DialFailed(DialFailure),
    /// The connection ended; `violation` if the other side broke the protocol.
    Closed { violation: bool },
    /// The server's chunk ID list.
    List(&'a ChunkSet),
    /// The bytes of a requested chunk arrived and are being verified and stored.
    Arrived(ChunkId),
    /// The server does not hold a requested chunk.
    NotHave(ChunkId),
    /// A peer list arrived (the caller put it in the book).
    Peers,
    /// A request the scheduler handed out was not sent after all (the download cap).
    Unsent(ChunkId),
}

/// What a link should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Connect and exchange hellos, within `timeout`.
    Dial { target: Target, timeout: Duration },
    /// Send `REQUEST(chunk)`.
    Request(ChunkId),
    /// Ask for the chunk ID list; with a wait, a long poll.
    AskList(Option<Duration>),
    /// Ask which peers the server knows.
    AskPeers,
    /// Close the connection.
    Close(Close),
}

/// Counters for reports and the simulator.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// New chunks from the owner (its batch included).
    pub(crate) from_owner: u32,
    /// New chunks from neighbors.
    pub(crate) from_neighbor: u32,
    /// Chunks that arrived after another copy was stored.
    pub(crate) duplicates: u32,
    /// Requests for chunks already requested elsewhere.
    pub(crate) second_requests: u32,
}
