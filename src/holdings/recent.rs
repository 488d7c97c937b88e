//! The chunks a node stored last, kept in memory for a moment so they are sent from there
//! rather than read back from the data file.
//!
//! In a swarm, a peer's neighbors ask for a chunk mostly soon after it arrived: they learn
//! of it from the next list (in a capped swarm of 10, nine in ten chunks a peer sent had
//! arrived less than 0.26 s before). Sending from memory skips a `pread` per chunk. Only
//! verified, written chunks are kept, at most [`RECENT`] of them.
//!
//! Each is a copy, in a buffer of its own, recycled: the buffer of the chunk let go holds
//! the next one unless a send still has it. Keeping the buffers the chunks were received
//! in instead would hold their whole read buffers (a peer's peak RSS at 1 GiB went from
//! 14 to 20-23 MiB), and a fresh allocation per chunk makes the allocator hand pages back
//! and fault them in again; a copy into a warm buffer costs a fraction of the read it
//! saves. So the memory is [`RECENT`] chunks (3.2 MiB), and no more.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::manifest::ChunkId;

/// How many stored chunks are kept: about a third of a second's worth at 10 MB/s
/// (3.2 MiB of 100 KiB chunks).
pub(crate) const RECENT: usize = 32;

/// The last [`RECENT`] chunks stored, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    chunks: VecDeque<(ChunkId, Bytes)>,
}

impl Recent {
    /// Keeps a copy of `data`, verified and stored as chunk `id`, in place of the oldest
    /// (in its buffer, if no send holds it still).
    pub(crate) fn keep(&mut self, id: ChunkId, data: &[u8]) {
        let spare = if self.chunks.len() >= RECENT {
            self.chunks
                .pop_front()
                .and_then(|(_, old)| old.try_into_mut().ok())
        } else {
            None
        };
        let mut buf = match spare {
            Some(mut buf) if buf.capacity() >= data.len() => {
                buf.clear();
                buf
            }
            _ => BytesMut::with_capacity(data.len()),
        };
        buf.extend_from_slice(data);
        self.chunks.push_back((id, buf.freeze()));
    }

    /// Chunk `id`'s bytes, if it is among the last stored.
    pub(crate) fn get(&self, id: ChunkId) -> Option<Bytes> {
        self.chunks
            .iter()
            .rev()
            .find(|(c, _)| *c == id)
            .map(|(_, data)| data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_few_and_no_more() {
        let mut recent = Recent::default();
        for id in 0..(RECENT as u32 + 5) {
            recent.keep(id, &[id as u8; 3]);
        }
        assert_eq!(recent.chunks.len(), RECENT);
        for id in 0..5 {
            assert_eq!(recent.get(id), None, "chunk {id} was let go");
        }
        let last = RECENT as u32 + 4;
        assert_eq!(recent.get(last), Some(Bytes::from(vec![last as u8; 3])));
        assert_eq!(recent.get(5), Some(Bytes::from(vec![5u8; 3])));
    }

    #[test]
    fn a_buffer_is_reused_unless_a_send_still_holds_it() {
        let mut recent = Recent::default();
        for id in 0..RECENT as u32 {
            recent.keep(id, &[1; 100]);
        }
        let first = recent.get(0).unwrap().as_ptr();
        let held = recent.get(1).unwrap();
        // Chunk 0's buffer is free: chunk 32 goes into it.
        recent.keep(32, &[2; 100]);
        let reused = recent.get(32).unwrap();
        assert_eq!(reused.as_ptr(), first);
        assert_eq!(&reused[..], &[2; 100]);
        drop(reused);
        // Chunk 1's bytes are being sent: they stay as they are, chunk 33 gets a buffer of
        // its own.
        recent.keep(33, &[3; 100]);
        assert_eq!(&held[..], &[1; 100]);
        assert_ne!(recent.get(33).unwrap().as_ptr(), held.as_ptr());
        // A larger chunk never goes into a smaller buffer.
        recent.keep(34, &[4; 300]);
        assert_eq!(&recent.get(34).unwrap()[..], &[4; 300]);
    }
}
