//! The split arithmetic: how a file of a given size is cut into chunks. Pure, and
//! tested at its boundaries (5 bytes, 499,999, 512,000, exact multiples of 100 KiB).

/// A chunk's index in the file, from 0 to `chunk_count - 1`.
pub type ChunkId = u32;

/// The chunk size for files of at least [`MIN_CHUNKS`] × 100 KiB: 102,400 bytes.
pub const CHUNK_SIZE: u32 = 102_400;
/// No file is split into fewer chunks than this.
pub const MIN_CHUNKS: u64 = 5;
/// The largest chunk count a manifest may declare (200 GiB at 100 KiB a chunk).
pub const MAX_CHUNKS: u32 = 1 << 21;

/// How a file of a given size is cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    file_size: u64,
    chunk_size: u32,
    chunk_count: u32,
}

/// Why a file cannot be split into chunks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Fewer bytes than the minimum number of non-empty chunks.
    #[error(
        "file is too small to share: {size} bytes, at least {MIN_CHUNKS} are needed for {MIN_CHUNKS} chunks"
    )]
    TooSmall {
        /// The file's size.
        size: u64,
    },
    /// More chunks than a manifest may declare.
    #[error("file is too large to share: {size} bytes, at most {} are supported", u64::from(MAX_CHUNKS) * u64::from(CHUNK_SIZE))]
    TooLarge {
        /// The file's size.
        size: u64,
    },
}

impl Layout {
    /// The layout for a file of `file_size` bytes.
    ///
    /// Files of at least 5 × 100 KiB use 100 KiB chunks, the last one smaller. Smaller files
    /// are cut into 5 chunks of `ceil(size / 5)` bytes; for the few tiny sizes where that
    /// would leave fewer than 5 chunks (6, 7, 8, 11, 12 and 16 bytes) the chunk size is
    /// `floor(size / 5)` instead: one chunk per byte for 6, 7 and 8 bytes, 6 chunks for 11,
    /// 12 and 16 bytes.
    pub fn for_size(file_size: u64) -> Result<Layout, LayoutError> {
        if file_size < MIN_CHUNKS {
            return Err(LayoutError::TooSmall { size: file_size });
        }
        let chunk_size = if file_size >= MIN_CHUNKS * u64::from(CHUNK_SIZE) {
            u64::from(CHUNK_SIZE)
        } else {
            let ceil = file_size.div_ceil(MIN_CHUNKS);
            if file_size.div_ceil(ceil) >= MIN_CHUNKS {
                ceil
            } else {
                file_size / MIN_CHUNKS
            }
        };
        let chunk_count = file_size.div_ceil(chunk_size);
        let chunk_count = u32::try_from(chunk_count)
            .ok()
            .filter(|&n| n <= MAX_CHUNKS)
            .ok_or(LayoutError::TooLarge { size: file_size })?;
        let chunk_size = u32::try_from(chunk_size).map_err(|_| LayoutError::TooLarge { size: file_size })?;
        Ok(Layout {
            file_size,
            chunk_size,
            chunk_count,
        })
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The size of every chunk but the last.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// The byte offset of chunk `id` in the file, or `None` if `id` is out of range.
    pub fn chunk_offset(&self, id: ChunkId) -> Option<u64> {
        (id < self.chunk_count).then(|| u64::from(id) * u64::from(self.chunk_size))
    }

    /// The length of chunk `id`, or `None` if `id` is out of range.
    pub fn chunk_len(&self, id: ChunkId) -> Option<u32> {
        let offset = self.chunk_offset(id)?;
        let rest = self.file_size - offset;
        // `rest` is at least 1 for every valid id, and the min fits in u32.
        Some(rest.min(u64::from(self.chunk_size)) as u32)
    }
}
