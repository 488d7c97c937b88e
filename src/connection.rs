//! `Connection`: the only code that touches a `TcpStream`.
//!
//! It owns the socket and a read buffer, and exposes the handshake, `read_message` and
//! `write_message`. Frames are decoded by the pure functions in [`crate::wire`]; the
//! buffer grows only as bytes actually arrive, for frames within the limit in force.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::chunk_store::ChunkBody;
use crate::error::PeerError;
use crate::manifest::ChunkId;
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

/// Whether a non-blocking socket call should simply be made again: the socket was not
/// ready after all, or a signal interrupted the call.
#[cfg(target_os = "linux")]
fn try_again(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

/// One TCP connection speaking the swarmshare protocol.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    max_frame: usize,
    remote: SocketAddr,
    /// The frame being read, if one has begun: its deadline (kept across calls, so a
    /// caller that gives up and comes back does not restart the clock) and whether its
    /// length has been allowed for.
    frame: Option<(Instant, bool)>,
    /// When the last byte arrived.
    last_byte: Instant,
}

impl Connection {
    /// Wraps an accepted or connected stream.
    pub(crate) fn new(stream: TcpStream, remote: SocketAddr) -> Connection {
        // Request/response traffic: don't let Nagle hold back small requests.
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::with_capacity(1024),
            max_frame: DEFAULT_MAX_FRAME,
            remote,
            frame: None,
            last_byte: Instant::now(),
        }
    }

    /// Connects to `addr` within [`CONNECT_TIMEOUT`].
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Connection, PeerError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout("connecting"))?
            .map_err(PeerError::Connect)?;
        Ok(Connection::new(stream, addr))
    }

    /// The other side's socket address.
    pub(crate) fn remote(&self) -> SocketAddr {
        self.remote
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
            let theirs = self.read_hello().await?;
            self.stream
                .write_all(&answer(&theirs).encode())
                .await
                .map_err(PeerError::io("sending hello"))?;
            Ok(theirs)
        })
        .await
    }

    async fn read_hello(&mut self) -> Result<Hello, PeerError> {
        let mut theirs = [0u8; HELLO_LEN];
        self.stream
            .read_exact(&mut theirs)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => PeerError::Closed("during the handshake"),
                _ => PeerError::Io {
                    what: "reading hello",
                    source: e,
                },
            })?;
        Ok(Hello::decode(&theirs)?)
    }

    /// Sends our hello and reads theirs, within [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn handshake(&mut self, mine: &Hello) -> Result<Hello, PeerError> {
        with_timeout("in the handshake", HANDSHAKE_TIMEOUT, async {
            self.stream
                .write_all(&mine.encode())
                .await
                .map_err(PeerError::io("sending hello"))?;
            self.read_hello().await
        })
        .await
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
        if self.rbuf.is_empty() {
            self.frame = None;
        } else if self.frame.is_none() {
            // The start of the next frame came with the last one.
            self.frame = Some((Instant::now() + FRAME_TIMEOUT, false));
            self.last_byte = Instant::now();
        }
        loop {
            match wire::decode_front(&mut self.rbuf, self.max_frame) {
                Ok(msg) => {
                    self.frame = None;
                    return Ok(Some(msg));
                }
                Err(DecodeError::Frame(FrameError::Incomplete { needed })) => {
                    // Grow only as bytes are due, in steps: a claimed length costs nothing
                    // until the bytes actually arrive.
                    self.rbuf.reserve(needed.clamp(READ_MIN, READ_STEP));
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
            let read = tokio::time::timeout_at(limit, self.stream.read_buf(&mut self.rbuf));
            let n = match read.await {
                Ok(result) => result.map_err(PeerError::io("reading"))?,
                Err(_) if self.frame.is_some() => return Err(PeerError::Timeout("in the middle of a frame")),
                Err(_) => return Err(PeerError::Timeout(state)),
            };
            if n == 0 {
                return if self.rbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(PeerError::Closed("in the middle of a frame"))
                };
            }
            self.last_byte = Instant::now();
            if self.frame.is_none() {
                self.frame = Some((self.last_byte + FRAME_TIMEOUT, false));
            }
        }
    }

    /// Writes one message within [`WRITE_TIMEOUT`]. A `CHUNK` goes header and bytes in one
    /// system call, straight from its buffer.
    pub(crate) async fn write_message(&mut self, msg: &Message) -> Result<(), PeerError> {
        if let Message::Chunk { id, data } = msg {
            return self.write_chunk(*id, &ChunkBody::Memory(data.clone())).await;
        }
        with_timeout("writing", WRITE_TIMEOUT, async {
            self.wbuf.clear();
            wire::encode(msg, &mut self.wbuf);
            self.stream
                .write_all(&self.wbuf)
                .await
                .map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Writes chunk `id` as one `CHUNK` frame within [`WRITE_TIMEOUT`].
    pub(crate) async fn write_chunk(&mut self, id: ChunkId, body: &ChunkBody) -> Result<(), PeerError> {
        let header = wire::message::chunk_header(id, body.len());
        with_timeout("writing", WRITE_TIMEOUT, async {
            match body {
                ChunkBody::Memory(data) => self.write_pair(&header, data).await,
                ChunkBody::File { file, len } => self.send_file(&header, file, *len).await,
            }
            .map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Writes `head` then `body` with as few system calls as the socket allows.
    async fn write_pair(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < head.len() {
            let parts = [IoSlice::new(&head[done..]), IoSlice::new(body)];
            match self.stream.write_vectored(&parts).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => done += n,
            }
        }
        self.stream.write_all(&body[done - head.len()..]).await
    }

    /// Writes `head` (marked "more follows", so it shares a segment with the data) and then
    /// `len` bytes of `file` with `sendfile`. A file that ends early is an error: the header
    /// promised `len` bytes.
    #[cfg(target_os = "linux")]
    async fn send_file(&mut self, head: &[u8], file: &std::fs::File, len: usize) -> io::Result<()> {
        use rustix::net::SendFlags;
        use tokio::io::Interest;
        let stream = &self.stream;
        let mut sent = 0;
        while sent < head.len() {
            stream.writable().await?;
            let more = || rustix::net::send(stream, &head[sent..], SendFlags::MORE | SendFlags::NOSIGNAL);
            match stream.try_io(Interest::WRITABLE, || more().map_err(io::Error::from)) {
                Ok(n) => sent += n,
                Err(e) if try_again(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let mut offset = 0u64;
        while (offset as usize) < len {
            stream.writable().await?;
            let rest = len - offset as usize;
            let send =
                || rustix::fs::sendfile(stream, file, Some(&mut offset), rest).map_err(io::Error::from);
            match stream.try_io(Interest::WRITABLE, send) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the chunk file ended early",
                    ))
                }
                Ok(_) => {}
                Err(e) if try_again(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Without `sendfile`: reads the file on the blocking pool, then writes it like a chunk
    /// in memory.
    #[cfg(not(target_os = "linux"))]
    async fn send_file(&mut self, head: &[u8], file: &Arc<std::fs::File>, len: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(file);
        let data = tokio::task::spawn_blocking(move || {
            let mut data = vec![0; len];
            file.read_exact_at(&mut data, 0).map(|()| data)
        })
        .await
        .map_err(io::Error::other)??;
        self.write_pair(head, &data).await
    }
}
