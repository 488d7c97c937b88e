//! `Connection`: the only code that touches a `TcpStream`.
//!
//! It owns the socket and its buffers, and exposes the handshake, `read_message` and
//! `write_message`. Every connection is encrypted: the handshake first runs Noise
//! ([`crate::secure`]) and the hellos travel inside it, so the ID in the other side's
//! hello is the one its key proves. Frames are decoded by the pure functions in
//! [`crate::wire`] from the decrypted bytes; the buffers grow only as bytes actually
//! arrive, for frames within the limit in force.

mod duplex;
mod raw;
mod reader;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::chunk_store::ChunkBody;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::manifest::ChunkId;
use crate::secure::{self, Credentials, SecureError, LEN_PREFIX, PREAMBLE_LEN};
use crate::wire::{Hello, Message};
#[cfg(test)]
pub(crate) use duplex::Duplex;
pub(crate) use duplex::Pump;
use duplex::{Routed, Shared};
pub(crate) use raw::{connect_reusable, punch};
use reader::Reader;
use writer::Writer;

/// How long a TCP connect may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the other side's hello may take to arrive.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing one message may take.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the rest of a frame may take once its first byte has arrived.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest a frame that has begun may go without a single new byte.
pub(crate) const FRAME_STALL: Duration = Duration::from_secs(5);
/// The slowest rate, in bytes per second, a frame's bytes may arrive at once it began.
pub(crate) const MIN_FRAME_RATE: u64 = 64 * 1024;

/// The transport's keys once the handshake is done, shared by the two halves of the
/// connection (each direction has its own nonce inside). Held only while sealing or
/// opening, never across an await.
type Keys = Arc<Mutex<snow::TransportState>>;

fn lock(keys: &Keys) -> MutexGuard<'_, snow::TransportState> {
    keys.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `fut`, turning a timeout into `PeerError::Timeout(what)`.
pub(crate) async fn with_timeout<T>(
    what: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(PeerError::Timeout(what)))
}

/// The connection's encryption: before the handshake, what it will prove with; after,
/// the transport and the ID the other side proved.
enum Noise {
    Pending(Arc<Credentials>),
    Ready { keys: Keys, remote: PeerId },
}

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noise::Pending(_) => f.write_str("Pending"),
            Noise::Ready { remote, .. } => write!(f, "Ready({remote})"),
        }
    }
}

/// Where a connection's messages come from: its own socket, or (one side of a two-way
/// link, [`duplex`]) the pump that reads the socket for both sides.
#[derive(Debug)]
enum Inbound {
    Socket(Reader),
    Routed(Routed),
}

/// Where its messages go: its own socket, or the writer both sides of a two-way link share.
#[derive(Debug)]
enum Outbound {
    Socket(Writer),
    Shared(Shared),
}

/// One TCP connection speaking the swarmshare protocol (or one side of a two-way link:
/// see [`Connection::into_duplex`]).
#[derive(Debug)]
pub(crate) struct Connection {
    inbound: Inbound,
    outbound: Outbound,
    noise: Noise,
    /// The listener answered our first handshake message (so a close after this is not a
    /// refusal of our proof).
    answered: bool,
    /// A client's hello read ahead of the answer (see [`Connection::read_client_hello`]).
    pending_hello: Option<Hello>,
    remote: SocketAddr,
    /// The fetching side of a two-way link: how many requests it sent are unanswered
    /// (the pump takes an answer only while one is due).
    asked: Option<Arc<AtomicUsize>>,
    /// One side of a two-way link: ends the whole link ([`Connection::abort`]).
    abort: Option<tokio_util::sync::CancellationToken>,
    /// A connection made another way than through our listener (punched, relayed): the
    /// only peer that may be on it ([`Connection::expect_peer`]).
    expected: Option<PeerId>,
}

impl Connection {
    /// Wraps an accepted or connected stream; `creds` are what its handshake proves.
    pub(crate) fn new(stream: TcpStream, remote: SocketAddr, creds: Arc<Credentials>) -> Connection {
        // Request/response traffic: don't let Nagle hold back small requests.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Connection {
            inbound: Inbound::Socket(Reader::new(read)),
            outbound: Outbound::Socket(Writer::new(write)),
            noise: Noise::Pending(creds),
            answered: false,
            pending_hello: None,
            remote,
            asked: None,
            abort: None,
            expected: None,
        }
    }

    /// Connects to `addr` within [`CONNECT_TIMEOUT`].
    pub(crate) async fn connect(addr: SocketAddr, creds: Arc<Credentials>) -> Result<Connection, PeerError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout("connecting"))?
            .map_err(PeerError::Connect)?;
        Ok(Connection::new(stream, addr, creds))
    }

    /// One side of a two-way link found the other side hostile: the whole link closes,
    /// not only this side (a one-way connection closes when it is dropped).
    pub(crate) fn abort(&self) {
        if let Some(abort) = &self.abort {
            abort.cancel();
        }
    }

    /// One side of a two-way link: the failure the pump handed over and this side has not
    /// read yet, if any.
    pub(crate) fn failure(&mut self) -> Option<PeerError> {
        match &mut self.inbound {
            Inbound::Routed(r) => r.failure(),
            Inbound::Socket(_) => None,
        }
    }

    /// The other side's socket address.
    pub(crate) fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Whether the listener answered our first handshake message (it took our proof).
    pub(crate) fn answered(&self) -> bool {
        self.answered
    }

    /// The ID the other side's key proved, once the handshake has run.
    pub(crate) fn remote_id(&self) -> Option<PeerId> {
        match &self.noise {
            Noise::Ready { remote, .. } => Some(*remote),
            Noise::Pending(_) => None,
        }
    }

    /// Sets the largest frame accepted from now on (one side of a two-way link: the
    /// pump's limit holds, set when the link was split).
    pub(crate) fn set_max_frame(&mut self, max: usize) {
        if let Inbound::Socket(r) = &mut self.inbound {
            r.set_max_frame(max);
        }
    }

    /// The keys, once the handshake has run.
    fn keys(noise: &Noise) -> Result<&Keys, PeerError> {
        match noise {
            Noise::Ready { keys, .. } => Ok(keys),
            Noise::Pending(_) => Err(PeerError::Secure(SecureError::Local(
                "no handshake yet".to_owned(),
            ))),
        }
    }

    /// The socket's own halves (a connection is split only after its handshake).
    fn socket(&mut self) -> Result<(&mut Reader, &mut Writer), PeerError> {
        match (&mut self.inbound, &mut self.outbound) {
            (Inbound::Socket(r), Outbound::Socket(w)) => Ok((r, w)),
            _ => Err(PeerError::Secure(SecureError::Local(
                "the connection is already split".to_owned(),
            ))),
        }
    }

    /// Reads the client's hello, then sends the one `answer` makes of it, within
    /// [`HANDSHAKE_TIMEOUT`] (a server: its hello may depend on what the client wants).
    pub(crate) async fn answer_handshake(
        &mut self,
        answer: impl FnOnce(&Hello) -> Hello,
    ) -> Result<Hello, PeerError> {
        with_timeout("in the handshake", HANDSHAKE_TIMEOUT, async {
            let theirs = match self.pending_hello.take() {
                Some(hello) => hello,
                None => {
                    self.secure_as_listener().await?;
                    self.read_hello().await?
                }
            };
            if self.expected.is_some_and(|id| id != theirs.peer) {
                return Err(PeerError::Relay("not the introduced peer"));
            }
            self.send_hello(&answer(&theirs)).await?;
            Ok(theirs)
        })
        .await
    }

    /// Runs the listener's side of the handshake and reads the client's hello, leaving the
    /// answer to a later [`Connection::answer_handshake`], within [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn read_client_hello(&mut self) -> Result<Hello, PeerError> {
        let hello = with_timeout("in the handshake", HANDSHAKE_TIMEOUT, async {
            self.secure_as_listener().await?;
            self.read_hello().await
        })
        .await?;
        self.pending_hello = Some(hello);
        Ok(hello)
    }

    /// Sends our hello and reads theirs, within [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn handshake(&mut self, mine: &Hello) -> Result<Hello, PeerError> {
        with_timeout("in the handshake", HANDSHAKE_TIMEOUT, async {
            self.secure_as_dialer().await?;
            self.send_hello(mine).await?;
            self.read_hello().await
        })
        .await
    }

    async fn send_hello(&mut self, hello: &Hello) -> Result<(), PeerError> {
        let keys = Self::keys(&self.noise)?.clone();
        let (_, w) = self.socket()?;
        w.queue_encoded(&hello.encode());
        w.flush_sealed(&keys)
            .await
            .map_err(PeerError::io("sending hello"))
    }

    /// The other side's hello, whose ID must be the one its key proved.
    async fn read_hello(&mut self) -> Result<Hello, PeerError> {
        let keys = Self::keys(&self.noise)?.clone();
        let (r, _) = self.socket()?;
        let theirs = r.read_hello(&keys).await?;
        let hello = Hello::decode(&theirs)?;
        match self.remote_id() {
            Some(proven) if proven == hello.peer => Ok(hello),
            proven => Err(PeerError::Secure(SecureError::Auth(format!(
                "its hello claims peer {} but its key proves {}",
                hello.peer,
                proven.map_or("nothing".to_owned(), |p| p.to_string())
            )))),
        }
    }

    /// The dialer's side of the Noise handshake: preamble and first message, the
    /// listener's answer, our last message.
    async fn secure_as_dialer(&mut self) -> Result<(), PeerError> {
        let Noise::Pending(creds) = &self.noise else {
            return Ok(());
        };
        let mut state = secure::start(creds, true)?;
        let mut out = secure::preamble(&creds.access).to_vec();
        secure::write_handshake(&mut state, &mut out)?;
        self.send_handshake(&out).await?;
        let msg = self.read_answer_message().await?;
        secure::read_handshake(&mut state, &msg)?;
        self.answered = true;
        out.clear();
        secure::write_handshake(&mut state, &mut out)?;
        self.send_handshake(&out).await?;
        self.become_ready(state)
    }

    /// The listener's side: the dialer's preamble and first message (in a private swarm,
    /// proof of the secret before anything is sent), our answer, the dialer's last.
    async fn secure_as_listener(&mut self) -> Result<(), PeerError> {
        let Noise::Pending(creds) = &self.noise else {
            return Ok(());
        };
        let creds = Arc::clone(creds);
        let preamble = self.read_exact_handshake(PREAMBLE_LEN).await?;
        let preamble: &[u8; PREAMBLE_LEN] = preamble
            .first_chunk()
            .ok_or(SecureError::BadLength(preamble.len()))?;
        secure::check_preamble(preamble, &creds.access)?;
        let mut state = secure::start(&creds, false)?;
        let msg = self.read_handshake_message().await?;
        secure::read_handshake(&mut state, &msg)?;
        let mut out = Vec::with_capacity(secure::MAX_HANDSHAKE_MESSAGE);
        secure::write_handshake(&mut state, &mut out)?;
        self.send_handshake(&out).await?;
        let msg = self.read_handshake_message().await?;
        secure::read_handshake(&mut state, &msg)?;
        self.become_ready(state)
    }

    async fn send_handshake(&mut self, bytes: &[u8]) -> Result<(), PeerError> {
        self.socket()?.1.write_handshake(bytes).await
    }

    /// The handshake is done: the transport from now on, and the ID the other side proved.
    fn become_ready(&mut self, state: snow::HandshakeState) -> Result<(), PeerError> {
        let (transport, remote) = secure::finish(state)?;
        self.noise = Noise::Ready {
            keys: Arc::new(Mutex::new(transport)),
            remote,
        };
        Ok(())
    }

    /// The listener's answer: its handshake message, or word that it is at its limit.
    async fn read_answer_message(&mut self) -> Result<Vec<u8>, PeerError> {
        let head = self.read_exact_handshake(LEN_PREFIX).await?;
        if head[..] == secure::AT_LIMIT[..LEN_PREFIX] {
            let rest = self.read_exact_handshake(PREAMBLE_LEN - LEN_PREFIX).await?;
            if rest[..] == secure::AT_LIMIT[LEN_PREFIX..] {
                return Err(SecureError::AtLimit.into());
            }
        }
        self.read_message_body(&head).await
    }

    /// One handshake message (its length first, bounded).
    async fn read_handshake_message(&mut self) -> Result<Vec<u8>, PeerError> {
        let head = self.read_exact_handshake(LEN_PREFIX).await?;
        self.read_message_body(&head).await
    }

    /// The message whose length prefix is `head`, refused above the handshake's bound.
    async fn read_message_body(&mut self, head: &[u8]) -> Result<Vec<u8>, PeerError> {
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        if len > secure::MAX_HANDSHAKE_MESSAGE {
            return Err(SecureError::BadLength(len).into());
        }
        self.read_exact_handshake(len).await
    }

    async fn read_exact_handshake(&mut self, len: usize) -> Result<Vec<u8>, PeerError> {
        self.socket()?.0.read_exact_handshake(len).await
    }

    /// Turns a connection away at the connection limit, before its handshake: reads what
    /// has arrived of it (so the close is a clean one), says the node is at its limit, and
    /// closes. Never waits.
    /// In a private swarm nothing is said: an intruder gets no byte, not even this one.
    pub(crate) fn refuse_at_limit(mut self) {
        let open = matches!(&self.noise, Noise::Pending(c) if c.access == secure::Access::Open);
        if let (true, Ok((r, w))) = (open, self.socket()) {
            let mut sink = [0u8; 512];
            let _ = r.stream.try_read(&mut sink);
            let _ = w.stream.try_write(&secure::AT_LIMIT);
        }
    }

    /// Reads the next message: see [`reader::Reader::read_message`] for the limits (`idle`
    /// for the first byte of the next frame, then the frame's own). `None` on a clean close
    /// between frames. Cancel-safe.
    pub(crate) async fn read_message(
        &mut self,
        idle: Duration,
        state: &'static str,
    ) -> Result<Option<Message>, PeerError> {
        match &mut self.inbound {
            Inbound::Socket(r) => r.read_message(Self::keys(&self.noise)?, idle, state).await,
            Inbound::Routed(r) => r.recv(idle, state).await,
        }
    }

    /// Writes one message within [`WRITE_TIMEOUT`] (with any queued before it).
    pub(crate) async fn write_message(&mut self, msg: &Message) -> Result<(), PeerError> {
        if let Message::Chunk { id, data } = msg {
            return self.write_chunk(*id, &ChunkBody::Memory(data.clone())).await;
        }
        self.queue_message(msg);
        self.flush().await
    }

    /// Encodes a message to go out with the next [`Connection::flush`]: messages queued
    /// together are sealed and written together (one system call here, one wake-up there).
    pub(crate) fn queue_message(&mut self, msg: &Message) {
        if let Some(asked) = &self.asked {
            if msg.is_request() {
                asked.fetch_add(1, Ordering::AcqRel);
            }
        }
        match &mut self.outbound {
            Outbound::Socket(w) => w.queue(msg),
            Outbound::Shared(s) => s.queue(msg),
        }
    }

    /// Writes the queued messages within [`WRITE_TIMEOUT`].
    pub(crate) async fn flush(&mut self) -> Result<(), PeerError> {
        let keys = Self::keys(&self.noise)?;
        match &mut self.outbound {
            Outbound::Socket(w) => w.flush(keys).await,
            Outbound::Shared(s) => s.flush(keys).await,
        }
    }

    /// Writes chunk `id` as one `CHUNK` frame within [`WRITE_TIMEOUT`] (after anything
    /// queued).
    pub(crate) async fn write_chunk(&mut self, id: ChunkId, body: &ChunkBody) -> Result<(), PeerError> {
        let keys = Self::keys(&self.noise)?;
        match &mut self.outbound {
            Outbound::Socket(w) => w.write_chunk(keys, id, body).await,
            Outbound::Shared(s) => s.write_chunk(keys, id, body).await,
        }
    }

    /// Seals `bytes` and writes only the first `cut` bytes of the ciphertext (tests: a
    /// transport message that stops midway).
    #[cfg(test)]
    pub(crate) async fn write_cut_for_test(&mut self, bytes: &[u8], cut: usize) -> std::io::Result<()> {
        let keys = Self::keys(&self.noise).map_err(std::io::Error::other)?.clone();
        let (_, w) = self.socket().map_err(std::io::Error::other)?;
        w.write_cut_for_test(&keys, bytes, cut).await
    }

    /// Seals `bytes` as they are, whatever they hold (tests: half frames, bad frames).
    #[cfg(test)]
    pub(crate) async fn write_raw_for_test(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let keys = Self::keys(&self.noise).map_err(std::io::Error::other)?.clone();
        let (_, w) = self.socket().map_err(std::io::Error::other)?;
        w.queue_encoded(bytes);
        w.flush_sealed(&keys).await
    }
}
