//! The sending half of a connection: messages in, sealed transport messages out, each
//! write within [`WRITE_TIMEOUT`].

use std::io;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use super::{lock, with_timeout, Keys, WRITE_TIMEOUT};
use crate::chunk_store::ChunkBody;
use crate::error::PeerError;
use crate::manifest::ChunkId;
use crate::secure;
use crate::wire::{self, Message};

/// How much plaintext is sealed and written at a time (16 transport messages).
const SEAL_STEP: usize = 16 * secure::MAX_PLAINTEXT;
/// Write buffers larger than this (a manifest went out) are let go afterwards.
const KEEP_BUFFER: usize = 2 * SEAL_STEP;

/// A connection's sending half.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) stream: OwnedWriteHalf,
    /// Messages being encoded.
    wbuf: BytesMut,
    /// A chunk's bytes being read from the data file to be sent: kept at its longest
    /// length, so it is not zeroed again for every chunk.
    pbuf: Vec<u8>,
    /// Encrypted bytes on their way out (kept at its longest length too).
    obuf: Vec<u8>,
    /// A write began and did not finish (it failed, timed out or was cancelled): the
    /// stream may end inside a transport message, so nothing more may follow.
    cut: bool,
}

impl Writer {
    /// Whether nothing is waiting to go out and no write was cut short.
    pub(super) fn is_idle(&self) -> bool {
        self.wbuf.is_empty() && !self.cut
    }

    pub(super) fn new(stream: OwnedWriteHalf) -> Writer {
        Writer {
            stream,
            wbuf: BytesMut::with_capacity(1024),
            pbuf: Vec::new(),
            obuf: Vec::new(),
            cut: false,
        }
    }

    /// Writes handshake bytes as they are.
    pub(super) async fn write_handshake(&mut self, bytes: &[u8]) -> Result<(), PeerError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(PeerError::io("sending the handshake"))
    }

    /// Encodes a message to go out with the next [`Writer::flush`].
    pub(super) fn queue(&mut self, msg: &Message) {
        wire::encode(msg, &mut self.wbuf);
    }

    /// Adds bytes already encoded (another sender's queued messages).
    pub(super) fn queue_encoded(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Writes the queued messages within [`WRITE_TIMEOUT`].
    pub(super) async fn flush(&mut self, keys: &Keys) -> Result<(), PeerError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        with_timeout("writing", WRITE_TIMEOUT, async {
            self.flush_sealed(keys).await.map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Encrypts `wbuf` and writes it, leaving `wbuf` empty (written, failed or cancelled).
    /// A large message (a manifest) is sealed and written a step at a time, and leaves no
    /// large buffer behind.
    pub(super) async fn flush_sealed(&mut self, keys: &Keys) -> io::Result<()> {
        let mut plain = std::mem::take(&mut self.wbuf);
        let written = self.seal_and_write(keys, &[&plain]).await;
        if plain.capacity() <= KEEP_BUFFER {
            plain.clear();
            self.wbuf = plain;
        }
        if self.obuf.len() > KEEP_BUFFER {
            self.obuf = Vec::new();
        }
        written
    }

    /// Writes chunk `id` as one `CHUNK` frame within [`WRITE_TIMEOUT`], after anything
    /// queued. Encryption needs the bytes in hand: bytes in memory are sealed where they
    /// lie (the header in a transport message of its own); a chunk's range of the data
    /// file is read in behind the header and sealed.
    pub(super) async fn write_chunk(
        &mut self,
        keys: &Keys,
        id: ChunkId,
        body: &ChunkBody,
    ) -> Result<(), PeerError> {
        self.flush(keys).await?;
        let header = wire::message::chunk_header(id, body.len());
        with_timeout("writing", WRITE_TIMEOUT, async {
            let sealed = match body {
                ChunkBody::Memory(data) => self.seal_and_write(keys, &[&header, data]).await,
                ChunkBody::File { file, offset, .. } => {
                    let end = body.len();
                    let mut pbuf = std::mem::take(&mut self.pbuf);
                    if pbuf.len() < end {
                        pbuf.resize(end, 0);
                    }
                    read_file(file, *offset, &mut pbuf[..end])
                        .map_err(PeerError::io("reading a chunk from the data file"))?;
                    let sealed = self.seal_and_write(keys, &[&header, &pbuf[..end]]).await;
                    self.pbuf = pbuf;
                    sealed
                }
            };
            sealed.map_err(PeerError::io("writing"))
        })
        .await
    }

    /// Seals `parts`, one after the other, and writes them through `obuf`, [`SEAL_STEP`]
    /// of ciphertext at a time (a small message in one write, a manifest in steps). The
    /// keys are held while sealing only, never across a write.
    async fn seal_and_write(&mut self, keys: &Keys, parts: &[&[u8]]) -> io::Result<()> {
        if self.cut {
            return Err(io::Error::other("an earlier write was cut short"));
        }
        self.cut = true;
        let mut end = 0;
        for step in parts.iter().flat_map(|part| part.chunks(SEAL_STEP)) {
            end = secure::seal_at(&mut lock(keys), step, &mut self.obuf, end).map_err(io::Error::other)?;
            if end >= SEAL_STEP {
                self.stream.write_all(&self.obuf[..end]).await?;
                end = 0;
            }
        }
        if end > 0 {
            self.stream.write_all(&self.obuf[..end]).await?;
        }
        self.cut = false;
        Ok(())
    }

    /// Ends our direction of the connection: nothing more is written.
    pub(super) async fn shutdown(&mut self) {
        self.cut = true;
        let _ = self.stream.shutdown().await;
    }

    /// Seals `bytes` and writes only the first `cut` bytes of the ciphertext (tests: a
    /// transport message that stops midway).
    #[cfg(test)]
    pub(super) async fn write_cut_for_test(
        &mut self,
        keys: &Keys,
        bytes: &[u8],
        cut: usize,
    ) -> io::Result<()> {
        self.obuf.clear();
        secure::seal(&mut lock(keys), bytes, &mut self.obuf).map_err(io::Error::other)?;
        self.stream
            .write_all(&self.obuf[..cut.min(self.obuf.len())])
            .await
    }
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
