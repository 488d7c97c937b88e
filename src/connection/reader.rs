//! The receiving half of a connection: ciphertext in, frames out. Buffers grow only as
//! bytes actually arrive, for frames within the limit in force; every wait has a bound.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;

use super::{Keys, FRAME_STALL, FRAME_TIMEOUT, MIN_FRAME_RATE};
use crate::error::PeerError;
use crate::manifest::CHUNK_SIZE;
use crate::secure::{self, LEN_PREFIX};
use crate::wire::{self, DecodeError, FrameError, Message, HELLO_LEN};

/// The smallest read-buffer growth: an idle connection holds no more than this.
const READ_MIN: usize = 4 * 1024;
/// The most the read buffer grows by in one step.
const READ_STEP: usize = 256 * 1024;
/// The frame limit before the handshake sets one: enough for any hello-stage message.
const DEFAULT_MAX_FRAME: usize = 64;

/// A connection's receiving half.
#[derive(Debug)]
pub(super) struct Reader {
    pub(super) stream: OwnedReadHalf,
    /// Decrypted bytes not yet decoded.
    rbuf: BytesMut,
    /// Received bytes not yet decrypted (at most part of one transport message).
    cbuf: BytesMut,
    max_frame: usize,
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

impl Reader {
    pub(super) fn new(stream: OwnedReadHalf) -> Reader {
        Reader {
            stream,
            rbuf: BytesMut::new(),
            cbuf: BytesMut::new(),
            max_frame: DEFAULT_MAX_FRAME,
            frame: None,
            last_byte: Instant::now(),
            sized_frame: false,
        }
    }

    /// The socket and the bytes received but not opened (the other side's, once a relay
    /// forwards them as they are); `None` if opened bytes are left unread.
    pub(super) fn into_raw(self) -> Option<(OwnedReadHalf, BytesMut)> {
        self.rbuf.is_empty().then_some((self.stream, self.cbuf))
    }

    /// Bytes to read before the socket's (a relayed socket's first ones).
    pub(super) fn prepend(&mut self, bytes: BytesMut) {
        self.cbuf = bytes;
    }

    /// Sets the largest frame accepted from now on.
    pub(super) fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// Reads exactly `len` bytes of the handshake, in clear.
    pub(super) async fn read_exact_handshake(&mut self, len: usize) -> Result<Vec<u8>, PeerError> {
        let mut bytes = vec![0u8; len];
        // A relayed socket's first bytes may have come with the relay's last message.
        let early = self.cbuf.len().min(len);
        bytes[..early].copy_from_slice(&self.cbuf.split_to(early));
        self.stream
            .read_exact(&mut bytes[early..])
            .await
            .map_err(|e| PeerError::from_read(e, "reading the handshake"))?;
        Ok(bytes)
    }

    /// The other side's hello: the first plaintext after the handshake.
    pub(super) async fn read_hello(&mut self, keys: &Keys) -> Result<[u8; HELLO_LEN], PeerError> {
        while self.rbuf.len() < HELLO_LEN {
            if !self.fill(keys).await? {
                return Err(PeerError::Closed("during the handshake"));
            }
        }
        let mut theirs = [0u8; HELLO_LEN];
        theirs.copy_from_slice(&self.rbuf.split_to(HELLO_LEN));
        Ok(theirs)
    }

    /// Reads what the socket has into the decrypted buffer; `false` on a clean close.
    async fn fill(&mut self, keys: &Keys) -> Result<bool, PeerError> {
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
        self.open_received(keys, false)?;
        Ok(true)
    }

    /// Decrypts the whole transport messages received so far: all of them, or with
    /// `one_frame` only until a whole frame (or a bad one) is at the front of `rbuf`, so
    /// that it is decoded, and a chunk's bytes split off, before the next frame is opened
    /// behind them. Returns whether it opened any.
    fn open_received(&mut self, keys: &Keys, one_frame: bool) -> Result<bool, PeerError> {
        let mut transport = super::lock(keys);
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
            match secure::open_one(&mut transport, &mut self.cbuf, &mut self.rbuf)? {
                secure::Opened::One => opened = true,
                secure::Opened::Short(_) => return Ok(opened),
            }
        }
    }

    /// Reads the next message. The first byte of the next frame must arrive within
    /// `idle` (the caller's state decides: an answer to a request, a client's next
    /// request); once a frame has begun, the whole frame must arrive within
    /// [`FRAME_TIMEOUT`] plus its length at [`MIN_FRAME_RATE`], so a peer trickling bytes
    /// cannot hold the connection while a large manifest on a slow link still can arrive.
    /// `None` on a clean close between frames. Cancel-safe: a frame half read is finished
    /// by the next call.
    pub(super) async fn read_message(
        &mut self,
        keys: &Keys,
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
                Err(DecodeError::Frame(FrameError::Incomplete { .. }))
                    if self.open_received(keys, true)? =>
                {
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
            self.open_received(keys, true)?;
            self.last_byte = Instant::now();
            if self.frame.is_none() {
                self.frame = Some((self.last_byte + FRAME_TIMEOUT, false));
            }
        }
    }
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
