//! A held chunk's bytes as the store hands them out to be sent: in memory, or a file the
//! connection passes to the kernel.

use std::sync::Arc;

use bytes::Bytes;

/// A chunk's bytes on their way out.
#[derive(Debug)]
pub enum ChunkBody {
    /// In memory.
    Memory(Bytes),
    /// `len` bytes of a file at `offset`: the chunk's range of the data file, read
    /// straight into the connection's buffer to be sealed.
    File {
        /// The data file, open for reading.
        file: Arc<std::fs::File>,
        /// Where the chunk starts in it.
        offset: u64,
        /// Its length, checked when it was opened: the frame header promises it.
        len: usize,
    },
}

impl ChunkBody {
    /// The chunk's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            ChunkBody::Memory(data) => data.len(),
            ChunkBody::File { len, .. } => *len,
        }
    }

    /// Whether the chunk has no bytes (never, for a chunk of a valid manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
