//! `FetchLink`: the client end of a fetch session, used by a peer's links, the owner's
//! census and a complete peer's presence announcements.
//!
//! It owns one connection and the answers it still expects, in the order the server will
//! send them (the server answers requests one by one, in order): a request goes out with
//! [`FetchLink::send`], and [`FetchLink::read_answer`] reads the next answer and checks it
//! is the one expected (a `CHUNK` for the chunk requested, a `LIST` over the swarm's chunk
//! count); anything else is a [`PeerError`] violation. Reading is cancel-safe: an answer
//! half read when the caller gives up is finished by the next call, and the time limit
//! counts from when the request was sent, not from each call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::activity;
use crate::chunk_set::ChunkSet;
use crate::config::Endpoint;
use crate::connection::{Connection, Pump};
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, Manifest};
use crate::secure::Credentials;
use crate::wire::handshake::HelloRefused;
use crate::wire::{self, handshake, Message, PeerAddr, Reached, Role};

/// How long the owner may take to send the next chunk of its batch.
pub(crate) const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may wait for its answer (a long poll: plus its wait).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request sent to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// `LIST_REQUEST`, or `LIST_WAIT` with the wait.
    List(Option<Duration>),
    /// `REQUEST(chunk)`.
    Chunk(ChunkId),
    /// `PEERS_REQUEST`.
    Peers,
    /// `REACH_REQUEST(port)`.
    Reach(u16),
}

/// An answer, checked against the request it answers.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The server's chunk ID list.
    List(ChunkSet),
    /// The chunk's bytes, not yet verified.
    Chunk(ChunkId, Bytes),
    /// The server does not hold the chunk.
    NotHave(ChunkId),
    /// Peers the server knows.
    Peers(Vec<PeerAddr>),
    /// What the server's dial-back found, and where it sees us.
    Reach(Reached, SocketAddr),
}

/// A fetch session just opened and, on a two-way link, our serving side of the same
/// connection with the pump that reads it for both.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The fetch session.
    pub(crate) link: FetchLink,
    /// Ours to serve, if the server took the offer of a two-way link.
    pub(crate) serving: Option<(Connection, Pump)>,
}

/// A fetch session's client end.
#[derive(Debug)]
pub(crate) struct FetchLink {
    conn: Connection,
    chunk_count: u32,
    server: PeerId,
    owner: bool,
    /// The owner's batch is still arriving on this (JOIN) connection.
    in_batch: bool,
    expected: VecDeque<(Ask, Instant)>,
    /// When the last answer arrived: the next one's clock starts no earlier.
    last_answer: Instant,
    /// Requests queued since the last flush (the newest in `expected`).
    unflushed: usize,
}

impl FetchLink {
    /// Dials `endpoint` and opens a fetch session for `manifest`'s swarm, announcing
    /// `listen_port` (0: not a peer to download from) and `me`; `neighbor` if the server is
    /// our configured download neighbor.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        manifest: &Manifest,
        listen_port: u16,
        creds: &Arc<Credentials>,
        neighbor: bool,
    ) -> Result<FetchLink, PeerError> {
        let opened = FetchLink::open_two_way(endpoint, manifest, listen_port, creds, neighbor, false).await?;
        Ok(opened.link)
    }

    /// As [`FetchLink::open`], offering with `both` to answer the server's requests on this
    /// connection too (a two-way link, [`crate::connection::Duplex`]): if the server takes
    /// the offer, our serving side comes back with the link, to be served.
    pub(crate) async fn open_two_way(
        endpoint: &Endpoint,
        manifest: &Manifest,
        listen_port: u16,
        creds: &Arc<Credentials>,
        neighbor: bool,
        both: bool,
    ) -> Result<Opened, PeerError> {
        let addr = endpoint.resolve().await?;
        let conn = Connection::connect(addr, Arc::clone(creds)).await?;
        FetchLink::over(conn, manifest, (creds.key.id(), listen_port), neighbor, both).await
    }

    /// As [`FetchLink::open_two_way`], on a connection made another way (punched through a
    /// NAT, or through a relay), whose handshake is still to run.
    /// `me` is our ID and the port we announce.
    pub(crate) async fn over(
        mut conn: Connection,
        manifest: &Manifest,
        (me, listen_port): (PeerId, u16),
        neighbor: bool,
        both: bool,
    ) -> Result<Opened, PeerError> {
        let swarm = manifest.swarm_id();
        let mut hello = handshake::fetch_hello(listen_port, swarm, me, neighbor);
        hello.both = both;
        let theirs = conn.handshake(&hello).await?;
        handshake::check_server(&theirs, swarm)?;
        if theirs.both && !both {
            return Err(HelloRefused::Role {
                expected: "a one-way PEER (no two-way link was offered)",
                got: theirs.role,
            }
            .into());
        }
        let owner = theirs.role == Role::Owner;
        let (conn, serving) = if theirs.both {
            let duplex = conn.into_duplex(wire::max_frame_len(manifest.layout()))?;
            (duplex.fetching, Some((duplex.serving, duplex.pump)))
        } else {
            (conn, None)
        };
        let mut link = FetchLink::from_connection(conn, manifest, theirs.peer);
        link.owner = owner;
        Ok(Opened { link, serving })
    }

    /// The fetching side of a two-way link a peer dialled (its server is that peer).
    pub(crate) fn adopted(conn: Connection, manifest: &Manifest, server: PeerId) -> FetchLink {
        FetchLink::from_connection(conn, manifest, server)
    }

    /// Continues on a connection whose handshake is done, with the server's peer ID.
    fn from_connection(mut conn: Connection, manifest: &Manifest, server: PeerId) -> FetchLink {
        conn.set_max_frame(wire::max_frame_len(manifest.layout()));
        FetchLink {
            conn,
            chunk_count: manifest.layout().chunk_count(),
            server,
            owner: false,
            in_batch: false,
            expected: VecDeque::new(),
            last_answer: Instant::now(),
            unflushed: 0,
        }
    }

    /// Continues on a JOIN connection to the owner whose batch has not been read yet; the
    /// caller reads it with [`FetchLink::batch_chunk`].
    pub(crate) fn joining(conn: Connection, manifest: &Manifest, server: PeerId) -> FetchLink {
        let mut link = FetchLink::from_connection(conn, manifest, server);
        link.owner = true;
        link.in_batch = true;
        link
    }

    /// The next chunk of the owner's batch, or `None` at `BATCH_END` (logged). Each
    /// message must begin within [`BATCH_TIMEOUT`] of the one before; cancel-safe, and a
    /// cancelled call does not restart that clock.
    pub(crate) async fn batch_chunk(&mut self) -> Result<Option<(ChunkId, Bytes)>, PeerError> {
        const STATE: &str = "receiving the owner's batch";
        if !self.in_batch {
            return Ok(None);
        }
        let idle = (self.last_answer + BATCH_TIMEOUT).saturating_duration_since(Instant::now());
        let msg = self
            .conn
            .read_message(idle, STATE)
            .await?
            .ok_or(PeerError::Closed(STATE))?;
        self.last_answer = Instant::now();
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

    /// Ends the whole connection, on a two-way link our serving side too (the server broke
    /// the protocol, or is banned).
    pub(crate) fn abort(&self) {
        self.conn.abort();
    }

    /// On a two-way link: why the link failed, if it did before this side read it (a
    /// violation the pump found while no answer was due).
    pub(crate) fn failure(&mut self) -> Option<PeerError> {
        self.conn.failure()
    }

    /// Whether the server is the owner (from its hello).
    pub(crate) fn is_owner(&self) -> bool {
        self.owner
    }

    /// The server's peer ID, as its hello gave it.
    pub(crate) fn peer_id(&self) -> PeerId {
        self.server
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.conn.remote()
    }

    /// Whether an answer is still to come.
    pub(crate) fn expecting(&self) -> bool {
        !self.expected.is_empty()
    }

    /// Chunk requests still unanswered.
    pub(crate) fn chunks_outstanding(&self) -> usize {
        self.expected
            .iter()
            .filter(|(a, _)| matches!(a, Ask::Chunk(_)))
            .count()
    }

    /// Sends a request (with any queued before it); its answer comes in order.
    pub(crate) async fn send(&mut self, ask: Ask) -> Result<(), PeerError> {
        self.queue(ask);
        self.flush().await
    }

    /// Queues a request to go out with the next [`FetchLink::flush`] (logging a chunk
    /// request); its answer comes in order. Requests queued together leave in one write.
    pub(crate) fn queue(&mut self, ask: Ask) {
        let msg = match ask {
            Ask::List(None) => Message::ListRequest,
            Ask::List(Some(w)) => Message::ListWait(u32::try_from(w.as_millis()).unwrap_or(u32::MAX)),
            Ask::Chunk(id) => Message::Request(id),
            Ask::Peers => Message::PeersRequest,
            Ask::Reach(port) => Message::ReachRequest(port),
        };
        self.conn.queue_message(&msg);
        if let Ask::Chunk(id) = ask {
            activity::request_sent(self.addr(), id);
        }
        self.expected.push_back((ask, Instant::now()));
        self.unflushed += 1;
    }

    /// Writes the queued requests (their answers' clocks started when they were queued:
    /// callers flush before anything that waits).
    pub(crate) async fn flush(&mut self) -> Result<(), PeerError> {
        self.conn.flush().await?;
        // The answers' clocks start now: on a two-way link our requests may have waited
        // behind chunks we were sending.
        let now = Instant::now();
        for (_, sent) in self.expected.iter_mut().rev().take(self.unflushed) {
            *sent = now;
        }
        self.unflushed = 0;
        Ok(())
    }

    /// Reads the answer to the oldest request, within [`REQUEST_TIMEOUT`] (plus a long
    /// poll's wait) of when it was sent or the answer before it arrived, whichever is
    /// later (a server answers one request at a time). Logs a received list.
    pub(crate) async fn read_answer(&mut self) -> Result<Answer, PeerError> {
        const STATE: &str = "waiting for an answer";
        let Some(&(ask, sent)) = self.expected.front() else {
            return Err(PeerError::Closed("(no request outstanding)"));
        };
        let limit = REQUEST_TIMEOUT
            + match ask {
                Ask::List(Some(w)) => w,
                // A dial-back may wait for a probe, then take one.
                Ask::Reach(_) => 2 * crate::reach::PROBE_TIME,
                _ => Duration::ZERO,
            };
        let idle = (sent.max(self.last_answer) + limit).saturating_duration_since(Instant::now());
        let msg = self
            .conn
            .read_message(idle, STATE)
            .await?
            .ok_or(PeerError::Closed(STATE))?;
        self.expected.pop_front();
        self.last_answer = Instant::now();
        let answer = match (ask, msg) {
            (Ask::List(_), Message::List(list)) if list.len() == self.chunk_count => {
                activity::list_received(self.addr(), list.count());
                Answer::List(list)
            }
            (Ask::List(_), Message::List(list)) => {
                return Err(PeerError::ListLength {
                    expected: self.chunk_count,
                    got: list.len(),
                })
            }
            (Ask::Chunk(id), Message::Chunk { id: got, data }) if got == id => Answer::Chunk(id, data),
            (Ask::Chunk(id), Message::NotHave(got)) if got == id => Answer::NotHave(id),
            (Ask::Chunk(requested), Message::Chunk { id: got, .. } | Message::NotHave(got)) => {
                return Err(PeerError::Unrequested { requested, got })
            }
            (Ask::Peers, Message::Peers(peers)) => Answer::Peers(peers),
            (Ask::Reach(_), Message::Reach { found, seen }) => Answer::Reach(found, seen),
            (_, other) => {
                return Err(PeerError::UnexpectedMessage {
                    state: STATE,
                    got: other.name(),
                })
            }
        };
        Ok(answer)
    }

    /// Asks for the server's list and waits for it (one request at a time).
    pub(crate) async fn list_now(&mut self) -> Result<ChunkSet, PeerError> {
        self.send(Ask::List(None)).await?;
        match self.read_answer().await? {
            Answer::List(list) => Ok(list),
            _ => Err(PeerError::Closed("(expected a list)")),
        }
    }

    /// Asks the server to dial us back at `port` and waits for what it found (its
    /// dial-back may take seconds).
    pub(crate) async fn reach_now(&mut self, port: u16) -> Result<(Reached, SocketAddr), PeerError> {
        self.send(Ask::Reach(port)).await?;
        match self.read_answer().await? {
            Answer::Reach(found, seen) => Ok((found, seen)),
            _ => Err(PeerError::Closed("(expected a reach answer)")),
        }
    }

    /// Asks which peers the server knows and waits for the answer.
    pub(crate) async fn peers_now(&mut self) -> Result<Vec<PeerAddr>, PeerError> {
        self.send(Ask::Peers).await?;
        match self.read_answer().await? {
            Answer::Peers(peers) => Ok(peers),
            _ => Err(PeerError::Closed("(expected a peer list)")),
        }
    }
}
