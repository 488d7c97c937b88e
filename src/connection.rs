//! `Connection`: the only code that touches a `TcpStream`.
//!
//! It owns the socket and its buffers, and exposes the handshake, `read_message` and
//! `write_message`. Every connection is encrypted: the handshake first runs Noise
//! ([`crate::secure`]) and the hellos travel inside it, so the ID in the other side's
//! hello is the one its key proves. Frames are decoded by the pure functions in
//! [`crate::wire`] from the decrypted bytes; the buffers grow only as bytes actually
//! arrive, for frames within the limit in force.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::chunk_store::ChunkBody;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, CHUNK_SIZE};
use crate::secure::{self, Credentials, SecureError, LEN_PREFIX, PREAMBLE_LEN};
use crate::wire::{self, DecodeError, FrameError, Hello, Message, HELLO_LEN};

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
/// The smallest read-buffer growth: an idle connection holds no more than this.
const READ_MIN: usize = 4 * 1024;
/// The most the read buffer grows by in one step.
const READ_STEP: usize = 256 * 1024;
/// How much plaintext is sealed and written at a time (16 transport messages).
const SEAL_STEP: usize = 16 * secure::MAX_PLAINTEXT;
/// Write buffers larger than this (a manifest went out) are let go afterwards.
const KEEP_BUFFER: usize = 2 * SEAL_STEP;
/// The frame limit before the handshake sets one: enough for any hello-stage message.
const DEFAULT_MAX_FRAME: usize = 64;

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
    Ready {
        transport: Box<snow::TransportState>,
        remote: PeerId,
    },
}

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noise::Pending(_) => f.write_str("Pending"),
            Noise::Ready { remote, .. } => write!(f, "Ready({remote})"),
        }
    }
}

/// One TCP connection speaking the swarmshare protocol.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// Decrypted bytes not yet decoded.
    rbuf: BytesMut,
    /// Received bytes not yet decrypted (at most part of one transport message).
    cbuf: BytesMut,
    /// A message being encoded.
    wbuf: BytesMut,
    /// A chunk's bytes being read from the data file to be sent: kept at its
    /// longest length, so it is not zeroed again for every chunk.
    pbuf: Vec<u8>,
    /// Encrypted bytes on their way out (kept at its longest length too).
    obuf: Vec<u8>,
    noise: Noise,
    /// The listener answered our first handshake message (so a close after this is not a
    /// refusal of our proof).
    answered: bool,
    /// A client's hello read ahead of the answer (see [`Connection::read_client_hello`]).
    pending_hello: Option<Hello>,
    max_frame: usize,
    remote: SocketAddr,
    /// The frame being read, if one has begun: its deadline (kept across calls, so a
    /// caller that gives up and comes back does not restart the clock) and whether its
    /// length has been allowed for.
    frame: Option<(Instant, bool)>,
    /// When the last byte arrived.
    last_byte: Instant,
    /// The frame at the front of `rbuf` is a chunk's being opened into a buffer of its own,
    /// sized to it ([`size_chunk_frame`]).
    sized_frame: bool,
}

impl Connection {
    /// Wraps an accepted or connected stream; `creds` are what its handshake proves.
    pub(crate) fn new(stream: TcpStream, remote: SocketAddr, creds: Arc<Credentials>) -> Connection {
        // Request/response traffic: don't let Nagle hold back small requests.
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            rbuf: BytesMut::new(),
            cbuf: BytesMut::new(),
            wbuf: BytesMut::with_capacity(1024),
            pbuf: Vec::new(),
            obuf: Vec::new(),
            noise: Noise::Pending(creds),
            answered: false,
            pending_hello: None,
            max_frame: DEFAULT_MAX_FRAME,
            remote,
            frame: None,
            last_byte: Instant::now(),
            sized_frame: false,
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

    /// Sets the largest frame accepted from now on.
    pub(crate) fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
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
        self.wbuf.clear();
        self.wbuf.extend_from_slice(&hello.encode());
        self.flush_sealed().await.map_err(PeerError::io("sending hello"))
    }

    /// The other side's hello, whose ID must be the one its key proved.
    async fn read_hello(&mut self) -> Result<Hello, PeerError> {
        while self.rbuf.len() < HELLO_LEN {
            if !self.fill().await? {
                return Err(PeerError::Closed("during the handshake"));
            }
        }
        let mut theirs = [0u8; HELLO_LEN];
        theirs.copy_from_slice(&self.rbuf.split_to(HELLO_LEN));
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
        self.stream
            .write_all(bytes)
            .await
            .map_err(PeerError::io("sending the handshake"))
    }

    /// The handshake is done: the transport from now on, and the ID the other side proved.
    fn become_ready(&mut self, state: snow::HandshakeState) -> Result<(), PeerError> {
        let (transport, remote) = secure::finish(state)?;
        self.noise = Noise::Ready {
            transport: Box::new(transport),
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
        let mut bytes = vec![0u8; len];
        self.stream
            .read_exact(&mut bytes)
            .await
            .map_err(|e| PeerError::from_read(e, "reading the handshake"))?;
        Ok(bytes)
    }

    /// Turns a connection away at the connection limit, before its handshake: reads what
    /// has arrived of it (so the close is a clean one), says the node is at its limit, and
    /// closes. Never waits.
    /// In a private swarm nothing is said: an intruder gets no byte, not even this one.
    pub(crate) fn refuse_at_limit(self) {
        if matches!(&self.noise, Noise::Pending(c) if c.access == secure::Access::Open) {
            let mut sink = [0u8; 512];
            let _ = self.stream.try_read(&mut sink);
            let _ = self.stream.try_write(&secure::AT_LIMIT);
        }
    }

    /// Reads what the socket has into the decrypted buffer; `false` on a clean close.
    async fn fill(&mut self) -> Result<bool, PeerError> {
        self.cbuf.reserve(READ_MIN);
        let n = self
            .stream
            .read_buf(&mut self.cbuf)
            .await
            .map_err(PeerError::io("reading"))?;
        if n == 0 {
            return Ok(false);
        }
        self.last_byte = Instant::now();
        self.open_received(false)?;
        Ok(true)
    }

    /// Decrypts the whole transport messages received so far: all of them, or with
    /// `one_frame` only until a whole frame (or a bad one) is at the front of `rbuf`, so
    /// that it is decoded, and a chunk's bytes split off, before the next frame is opened
    /// behind them. Returns whether it opened any.
    fn open_received(&mut self, one_frame: bool) -> Result<bool, PeerError> {
        let Noise::Ready { transport, .. } = &mut self.noise else {
            return Err(PeerError::Secure(SecureError::Local(
                "no handshake yet".to_owned(),
            )));
        };
        let mut opened = false;
        loop {
            if one_frame
                && !matches!(
                    wire::frame::parse(&self.rbuf, self.max_frame),
                    Err(FrameError::Incomplete { .. })
                )
            {
                return Ok(opened);
            }
            if one_frame && !self.sized_frame {
                self.sized_frame = size_chunk_frame(&mut self.rbuf, self.max_frame);
            }
            match secure::open_one(transport, &mut self.cbuf, &mut self.rbuf)? {
                secure::Opened::One => opened = true,
                secure::Opened::Short(_) => return Ok(opened),
            }
        }
    }

    /// Encrypts `wbuf` and writes it, leaving `wbuf` empty (written, failed or cancelled).
    /// A large message (a manifest) is sealed and written a step at a time, and leaves no
    /// large buffer behind.
    async fn flush_sealed(&mut self) -> io::Result<()> {
        let mut plain = std::mem::take(&mut self.wbuf);
        let written = seal_and_write(&mut self.noise, &mut self.stream, &mut self.obuf, &[&plain]).await;
        if plain.capacity() <= KEEP_BUFFER {
            plain.clear();
            self.wbuf = plain;
        }
        if self.obuf.len() > KEEP_BUFFER {
            self.obuf = Vec::new();
        }
        written
    }

    /// Reads the next message. The first byte of the next frame must arrive within
    /// `idle` (the caller's state decides: an answer to a request, a client's next
    /// request); once a frame has begun, the whole frame must arrive within
    /// [`FRAME_TIMEOUT`] plus its length at [`MIN_FRAME_RATE`], so a peer trickling bytes
    /// cannot hold the connection while a large manifest on a slow link still can arrive.
    /// `None` on a clean close between frames.
    pub(crate) async fn read_message(
        &mut self,
        idle: Duration,
        state: &'static str,
    ) -> Result<Option<Message>, PeerError> {
        let idle_deadline = Instant::now() + idle;
        if self.rbuf.is_empty() && self.cbuf.is_empty() {
            self.frame = None;
        } else if self.frame.is_none() {
            // The start of the next frame came with the last one (decrypted, or still in
            // a transport message that is only partly here).
            self.frame = Some((Instant::now() + FRAME_TIMEOUT, false));
            self.last_byte = Instant::now();
        }
        loop {
            match wire::decode_front(&mut self.rbuf, self.max_frame) {
                Ok(msg) => {
                    self.frame = None;
                    // Opened into a buffer of its own, and nothing opened past its end
                    // (which would have grown that buffer).
                    let sized = std::mem::take(&mut self.sized_frame) && self.rbuf.is_empty();
                    return Ok(Some(match msg {
                        // Not opened into a buffer of its own (its header came with
                        // bytes of it, or the next frame with its end): copied into one,
                        // so whoever keeps the chunk holds its bytes and no more.
                        Message::Chunk { id, data } if !sized => Message::Chunk {
                            id,
                            data: bytes::Bytes::copy_from_slice(&data),
                        },
                        msg => msg,
                    }));
                }
                Err(DecodeError::Frame(FrameError::Incomplete { .. })) if self.open_received(true)? => {
                    // More of the frame was here already, still sealed.
                    continue;
                }
                Err(DecodeError::Frame(FrameError::Incomplete { needed })) => {
                    // Grow only as bytes are due, in steps: a claimed length costs nothing
                    // until the bytes actually arrive.
                    let sealing = (needed / secure::MAX_PLAINTEXT + 1) * (LEN_PREFIX + secure::TAG_LEN);
                    self.cbuf.reserve((needed + sealing).clamp(READ_MIN, READ_STEP));
                    if let Some((deadline, sized @ false)) = self.frame.as_mut() {
                        if self.rbuf.len() >= wire::LEN_PREFIX {
                            // The length is known (and within the limit): allow for it.
                            *sized = true;
                            let len = (self.rbuf.len() + needed) as u64;
                            *deadline += Duration::from_millis(len.saturating_mul(1000) / MIN_FRAME_RATE);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
            // Within a frame, bytes must also keep coming: a link that died mid-frame is
            // noticed after FRAME_STALL, not at the end of the frame's whole allowance.
            let limit = match self.frame {
                Some((deadline, _)) => deadline.min(self.last_byte + FRAME_STALL),
                None => idle_deadline,
            };
            let read = tokio::time::timeout_at(limit, self.stream.read_buf(&mut self.cbuf));
            let n = match read.await {
                Ok(result) => result.map_err(PeerError::io("reading"))?,
                Err(_) if self.frame.is_some() => return Err(PeerError::Timeout("in the middle of a frame")),
                Err(_) => return Err(PeerError::Timeout(state)),
            };
            if n == 0 {
                return if self.rbuf.is_empty() && self.cbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(PeerError::Closed("in the middle of a frame"))
                };
            }
            self.open_received(true)?;
            self.last_byte = Instant::now();
            if self.frame.is_none() {
                self.frame = Some((self.last_byte + FRAME_TIMEOUT, false));
            }
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
        wire::encode(msg, &mut self.wbuf);
    }

    /// Writes the queued messages within [`WRITE_TIMEOUT`].
    pub(crate) async fn flush(&mut self) -> Result<(), PeerError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        with_timeout("writing", WRITE_TIMEOUT, async {
            self.flush_sealed().await.map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Writes chunk `id` as one `CHUNK` frame within [`WRITE_TIMEOUT`]. Encryption needs
    /// the bytes in hand: bytes in memory are sealed where they lie (the header in a
    /// transport message of its own); a chunk's range of the data file is read in behind
    /// the header and sealed.
    pub(crate) async fn write_chunk(&mut self, id: ChunkId, body: &ChunkBody) -> Result<(), PeerError> {
        self.flush().await?;
        let header = wire::message::chunk_header(id, body.len());
        with_timeout("writing", WRITE_TIMEOUT, async {
            let (noise, stream, obuf) = (&mut self.noise, &mut self.stream, &mut self.obuf);
            let sealed = match body {
                ChunkBody::Memory(data) => seal_and_write(noise, stream, obuf, &[&header, data]).await,
                ChunkBody::File { file, offset, .. } => {
                    let end = body.len();
                    if self.pbuf.len() < end {
                        self.pbuf.resize(end, 0);
                    }
                    read_file(file, *offset, &mut self.pbuf[..end])
                        .map_err(PeerError::io("reading a chunk from the data file"))?;
                    seal_and_write(noise, stream, obuf, &[&header, &self.pbuf[..end]]).await
                }
            };
            sealed.map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Seals `bytes` and writes only the first `cut` bytes of the ciphertext (tests: a
    /// transport message that stops midway).
    #[cfg(test)]
    pub(crate) async fn write_cut_for_test(&mut self, bytes: &[u8], cut: usize) -> io::Result<()> {
        let Noise::Ready { transport, .. } = &mut self.noise else {
            return Err(io::Error::other("no handshake yet"));
        };
        self.obuf.clear();
        secure::seal(transport, bytes, &mut self.obuf).map_err(io::Error::other)?;
        self.stream
            .write_all(&self.obuf[..cut.min(self.obuf.len())])
            .await
    }

    /// Seals `bytes` as they are, whatever they hold (tests: half frames, bad frames).
    #[cfg(test)]
    pub(crate) async fn write_raw_for_test(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(bytes);
        self.flush_sealed().await
    }
}

/// Seals `parts`, one after the other, and writes them through `obuf`, [`SEAL_STEP`] of
/// ciphertext at a time (a small message in one write, a manifest in steps).
async fn seal_and_write(
    noise: &mut Noise,
    stream: &mut TcpStream,
    obuf: &mut Vec<u8>,
    parts: &[&[u8]],
) -> io::Result<()> {
    let Noise::Ready { transport, .. } = noise else {
        return Err(io::Error::other("no handshake yet"));
    };
    let mut end = 0;
    for step in parts.iter().flat_map(|part| part.chunks(SEAL_STEP)) {
        end = secure::seal_at(transport, step, obuf, end).map_err(io::Error::other)?;
        if end >= SEAL_STEP {
            stream.write_all(&obuf[..end]).await?;
            end = 0;
        }
    }
    if end > 0 {
        stream.write_all(&obuf[..end]).await?;
    }
    Ok(())
}

/// If `rbuf` holds a chunk frame's header and nothing else, moves it into a buffer of its
/// own with room for the whole frame (and a tag: see [`secure::open_one`]), so that the
/// chunk's bytes, once split off, hold that allocation and no other, and `true`. Senders
/// seal a chunk's header in a transport message of its own for this. Only a frame no
/// longer than a chunk's is sized so, and only one at a time (the one at the front).
fn size_chunk_frame(rbuf: &mut BytesMut, max_frame: usize) -> bool {
    // No larger than a chunk's frame, whatever the limit (a fetch reading the manifest
    // allows far more): a claimed length beyond that grows the buffer only as bytes come.
    let most = max_frame.min(wire::CHUNK_HEADER_LEN + CHUNK_SIZE as usize);
    let Some(len) = wire::message::chunk_frame_len(rbuf, most) else {
        return false;
    };
    let mut own = BytesMut::with_capacity(len + secure::TAG_LEN);
    own.extend_from_slice(rbuf);
    *rbuf = own;
    true
}

/// Fills `buf` from `file` at `offset`. A file that ends early is an error: the header
/// promised these bytes. Read in place, on the runtime's thread: a chunk that is sent was
/// mostly written or read a moment ago and is in the page cache (a hand-off to the
/// blocking pool for every chunk cost more than the read).
fn read_file(file: &std::fs::File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the data file ended early")
        }
        _ => e,
    })
}
