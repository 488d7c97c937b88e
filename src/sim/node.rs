//! What the simulated world is made of: nodes (the owner, peers, idle identities), the
//! connections between them with their queues of requests, and the messages they carry.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::NodeId;
use crate::book::AddressBook;
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::long_poll::Patience;
use crate::manifest::ChunkId;
use crate::scheduler::{LinkId, Scheduler, Target, Time};
use crate::wire::PeerAddr;

pub(super) type ConnId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Owner,
    Peer,
    /// Answers the hello, then nothing.
    Sybil,
}

#[derive(Debug)]
pub(super) enum Ask {
    Chunk(ChunkId),
    List(Option<Duration>),
    Peers,
    /// A chunk of the owner's batch, sent unasked.
    Push(ChunkId),
}

#[derive(Debug)]
pub(super) enum Reply {
    Chunk(ChunkId),
    NotHave(ChunkId),
    List(ChunkSet),
    Peers(Vec<PeerAddr>),
    Pushed(ChunkId),
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) id: PeerId,
    pub(super) addr: SocketAddr,
    pub(super) kind: Kind,
    pub(super) alive: bool,
    /// Bumped when the node leaves, so its stale events are ignored.
    pub(super) gen: u64,
    pub(super) book: Arc<AddressBook>,
    pub(super) held: ChunkSet,
    pub(super) sched: Option<Scheduler>,
    pub(super) links: Vec<Option<ConnId>>,
    /// Long polls this node holds as a server.
    pub(super) waiters: Vec<ConnId>,
    pub(super) tick_at: Option<Time>,
    pub(super) completed: Option<Time>,
    pub(super) churns: bool,
    /// The owner's batch connection, while it streams.
    pub(super) batch: Option<ConnId>,
    /// Chunks sent.
    pub(super) sent: u64,
    /// Fetch sessions of peers this node serves now (its downloader seats).
    pub(super) seated: Vec<ConnId>,
}

#[derive(Debug)]
pub(super) enum Serving {
    Idle,
    /// Sending a chunk (pushed: part of the owner's batch); the version names the event.
    Sending(ChunkId, bool, u64),
    Wait(u64),
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) client: NodeId,
    /// The client's link, or `None` for the owner's batch.
    pub(super) link: Option<LinkId>,
    pub(super) server: NodeId,
    pub(super) queue: VecDeque<Ask>,
    pub(super) serving: Serving,
    pub(super) listed: u32,
    /// When the last list went (`None`: none yet).
    pub(super) listed_at: Option<Time>,
    /// How patient the server is with this client's long polls.
    pub(super) patience: Patience,
    pub(super) alive: bool,
    /// When the client last asked for something (a downloader seat in use).
    pub(super) last_ask: Time,
}

#[derive(Debug)]
pub(super) enum Ev {
    Join(NodeId),
    Dialed {
        client: NodeId,
        gen: u64,
        link: LinkId,
        target: Target,
    },
    Arrive {
        conn: ConnId,
        ask: Ask,
    },
    Reply {
        conn: ConnId,
        reply: Reply,
    },
    Sent {
        conn: ConnId,
        version: u64,
    },
    WaitOver {
        conn: ConnId,
        version: u64,
    },
    Tick {
        node: NodeId,
        at: Time,
    },
    Gone {
        conn: ConnId,
    },
    Leave(NodeId),
    Return(NodeId),
}
