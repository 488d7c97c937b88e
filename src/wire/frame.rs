//! Length-prefixed framing: a big-endian `u32` length, then that many bytes.
//!
//! The length counts the bytes after the prefix (the message type and body) and must be
//! between 1 and the caller's maximum. It is checked before the caller buffers anything,
//! so a hostile 4 GiB prefix costs four bytes of memory.

/// Bytes of the length prefix.
pub(crate) const LEN_PREFIX: usize = 4;

/// What a buffer holds at its start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is not all there yet; `needed` more bytes are required at least.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete {
        /// Missing bytes.
        needed: usize,
    },
    /// The length prefix exceeds the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// The maximum in force.
        max: usize,
    },
    /// A zero length prefix: every frame carries at least a type byte.
    #[error("empty frame")]
    Empty,
}

/// Finds the frame at the start of `buf`: returns the payload's range as
/// `(LEN_PREFIX, LEN_PREFIX + len)` when the whole frame is present.
pub(crate) fn parse(buf: &[u8], max: usize) -> Result<std::ops::Range<usize>, FrameError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Err(FrameError::Incomplete {
            needed: LEN_PREFIX - buf.len(),
        });
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= max)
        .ok_or(FrameError::TooLarge {
            len: u64::from(len),
            max,
        })?;
    // len <= max, and max is far below usize::MAX - LEN_PREFIX.
    let end = LEN_PREFIX + len;
    if buf.len() < end {
        return Err(FrameError::Incomplete {
            needed: end - buf.len(),
        });
    }
    Ok(LEN_PREFIX..end)
}

/// Writes the length prefix for a frame whose type and body are `len` bytes.
pub(crate) fn prefix(len: usize) -> [u8; LEN_PREFIX] {
    // Callers encode at most a manifest frame, far below u32::MAX.
    (len as u32).to_be_bytes()
}
