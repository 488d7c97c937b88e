//! A held chunk's bytes as the store hands them out to be sent: in memory, or a file the
//! connection passes to the kernel.

use std::sync::Arc;

use bytes::Bytes;

/// A chunk's bytes on their way out.
#[derive(Debug)]
pub enum ChunkBody {
    /// In memory.
    Memory(Bytes),
    /// `len` bytes of a file from its start: on Linux handed to the socket by the kernel
    /// (`sendfile`), the pages going from the page cache to the socket without passing
    /// through here; elsewhere read on the blocking pool first.
    File {
        /// The chunk file (or staged file), open for reading; never written again.
        file: Arc<std::fs::File>,
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
