//! `FetchLink`: the client side of a fetch session, to a download neighbor or the owner.
//!
//! It owns one connection and the last chunk ID list the server sent. Each call is one
//! request and its answer, logged in the activity log; any protocol violation ends the
//! link with a [`PeerError`] and the caller decides whether and when to reconnect.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::activity;
use crate::chunk_set::ChunkSet;
use crate::config::Endpoint;
use crate::connection::Connection;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, Manifest};
use crate::wire::{self, Hello, Message, PeerAddr, Role};

/// How long the owner may take to send the next chunk of its batch.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A fetch session's client end.
#[derive(Debug)]
pub struct FetchLink {
    conn: Connection,
    list: ChunkSet,
    chunk_count: u32,
    server: PeerId,
    owner: bool,
    /// The owner's batch is still arriving on this (JOIN) connection.
    in_batch: bool,
    /// A list has arrived on this link (so the next ask may be a long poll).
    listed: bool,
}

/// The answer to a chunk request.
#[derive(Debug)]
pub enum Fetched {
    /// The chunk's bytes, not yet verified.
    Chunk(Bytes),
    /// The server does not hold it.
    NotHave,
}

impl FetchLink {
    /// Dials `endpoint` and opens a fetch session for `manifest`'s swarm.
    pub async fn open(
        endpoint: &Endpoint,
        manifest: &Manifest,
        listen_port: u16,
        me: PeerId,
    ) -> Result<FetchLink, PeerError> {
        let addr = endpoint.resolve().await?;
        let mut conn = Connection::connect(addr).await?;
        let swarm = manifest.swarm_id();
        let hello = Hello {
            role: Role::Fetch,
            listen_port,
            swarm: Some(swarm),
            peer: me,
        };
        let theirs = conn.handshake(&hello).await?;
        if !matches!(theirs.role, Role::Owner | Role::Peer) {
            return Err(PeerError::UnexpectedRole {
                expected: "OWNER or PEER",
                got: theirs.role,
            });
        }
        if theirs.swarm != Some(swarm) {
            return Err(PeerError::SwarmMismatch {
                ours: swarm,
                theirs: theirs.swarm,
            });
        }
        let mut link = FetchLink::from_connection(conn, manifest, theirs.peer);
        link.owner = theirs.role == Role::Owner;
        Ok(link)
    }

    /// Continues on a connection whose handshake is done (the join connection), with the
    /// server's peer ID from its hello.
    pub fn from_connection(mut conn: Connection, manifest: &Manifest, server: PeerId) -> FetchLink {
        let chunk_count = manifest.layout().chunk_count();
        conn.set_max_frame(wire::max_frame_len(manifest.layout()));
        FetchLink {
            conn,
            list: ChunkSet::empty(chunk_count),
            chunk_count,
            server,
            owner: false,
            in_batch: false,
            listed: false,
        }
    }

    /// Continues on a JOIN connection to the owner whose batch has not been read yet; the
    /// caller reads it with [`FetchLink::batch_chunk`] before any request.
    pub fn joining(conn: Connection, manifest: &Manifest, server: PeerId) -> FetchLink {
        let mut link = FetchLink::from_connection(conn, manifest, server);
        link.owner = true;
        link.in_batch = true;
        link
    }

    /// Whether the owner's batch is still to be read.
    pub fn in_batch(&self) -> bool {
        self.in_batch
    }

    /// The next chunk of the owner's batch, or `None` at `BATCH_END` (logged), after which
    /// the link is an ordinary fetch session.
    pub async fn batch_chunk(&mut self) -> Result<Option<(ChunkId, Bytes)>, PeerError> {
        const STATE: &str = "receiving the owner's batch";
        let msg = self
            .conn
            .read_message(BATCH_TIMEOUT, STATE)
            .await?
            .ok_or(PeerError::Closed(STATE))?;
        match msg {
            Message::Chunk { id, .. } if id >= self.chunk_count => Err(PeerError::ChunkOutOfRange {
                id,
                count: self.chunk_count,
            }),
            Message::Chunk { id, data } => Ok(Some((id, data))),
            Message::BatchEnd { count } => {
                self.in_batch = false;
                activity::owner_batch(self.addr(), count, None, None);
                Ok(None)
            }
            other => Err(PeerError::UnexpectedMessage {
                state: STATE,
                got: other.name(),
            }),
        }
    }

    /// Whether the server is the owner (from its hello).
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// The server's peer ID, as its hello gave it.
    pub fn peer_id(&self) -> PeerId {
        self.server
    }

    /// Asks the server which peers it knows.
    pub async fn peers(&mut self) -> Result<Vec<PeerAddr>, PeerError> {
        self.conn.write_message(&Message::PeersRequest).await?;
        match self.answer("waiting for a peer list").await? {
            Message::Peers(peers) => Ok(peers),
            other => Err(PeerError::UnexpectedMessage {
                state: "waiting for a peer list",
                got: other.name(),
            }),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.conn.remote()
    }

    /// The last chunk ID list received (empty before the first).
    pub fn list(&self) -> &ChunkSet {
        &self.list
    }

    /// Whether the server has sent a list on this link yet.
    pub fn has_list(&self) -> bool {
        self.listed
    }

    /// Asks for the server's chunk ID list; with `wait`, a long poll: the server answers
    /// once it holds a chunk its last list on this link did not name, or after `wait`.
    pub async fn refresh_list(&mut self, wait: Option<Duration>) -> Result<&ChunkSet, PeerError> {
        let (request, extra) = match wait {
            Some(w) => {
                let ms = u32::try_from(w.as_millis()).unwrap_or(u32::MAX);
                (Message::ListWait(ms), w)
            }
            None => (Message::ListRequest, Duration::ZERO),
        };
        self.conn.write_message(&request).await?;
        match self
            .answer_within(REQUEST_TIMEOUT + extra, "waiting for a chunk ID list")
            .await?
        {
            Message::List(list) if list.len() == self.chunk_count => {
                activity::list_received(self.addr(), list.count());
                self.list = list;
                self.listed = true;
                Ok(&self.list)
            }
            Message::List(list) => Err(PeerError::ListLength {
                expected: self.chunk_count,
                got: list.len(),
            }),
            other => Err(PeerError::UnexpectedMessage {
                state: "waiting for a chunk ID list",
                got: other.name(),
            }),
        }
    }

    /// Requests chunk `id` and waits for the answer.
    pub async fn fetch(&mut self, id: ChunkId) -> Result<Fetched, PeerError> {
        self.request(id).await?;
        self.answer_for(id).await
    }

    /// Sends a request for chunk `id` without waiting: several may be in flight, and the
    /// server answers them in order (see [`FetchLink::answer_for`]).
    pub async fn request(&mut self, id: ChunkId) -> Result<(), PeerError> {
        self.conn.write_message(&Message::Request(id)).await?;
        activity::request_sent(self.addr(), id);
        Ok(())
    }

    /// Reads the answer to the oldest outstanding request, which was for chunk `id`.
    pub async fn answer_for(&mut self, id: ChunkId) -> Result<Fetched, PeerError> {
        match self.answer("waiting for a chunk").await? {
            Message::Chunk { id: got, data } if got == id => Ok(Fetched::Chunk(data)),
            Message::Chunk { id: got, .. } => Err(PeerError::Unrequested { requested: id, got }),
            Message::NotHave(got) if got == id => {
                self.list.remove(id);
                Ok(Fetched::NotHave)
            }
            Message::NotHave(got) => Err(PeerError::Unrequested { requested: id, got }),
            other => Err(PeerError::UnexpectedMessage {
                state: "waiting for a chunk",
                got: other.name(),
            }),
        }
    }

    async fn answer(&mut self, state: &'static str) -> Result<Message, PeerError> {
        self.answer_within(REQUEST_TIMEOUT, state).await
    }

    async fn answer_within(&mut self, limit: Duration, state: &'static str) -> Result<Message, PeerError> {
        self.conn
            .read_message(limit, state)
            .await?
            .ok_or(PeerError::Closed(state))
    }
}
