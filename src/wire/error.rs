//! Why bytes from the wire are not a message: the errors of [`super::frame`],
//! [`super::message`] and [`super::peers`], kept apart so those modules need not name
//! each other's.

use super::frame::FrameError;
use crate::chunk_set::ChunkSetError;

/// Why a payload is not a valid message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// A type byte this version does not know.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The body's length is wrong for its type.
    #[error("{name} body must be {expected} bytes, got {got}")]
    BadLength {
        /// Message name.
        name: &'static str,
        /// Required length (a minimum for variable-length bodies).
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A `PEERS` message with more entries than allowed.
    #[error("PEERS lists {got} peers, at most {max} are allowed")]
    TooManyPeers {
        /// Entries listed.
        got: usize,
        /// The most allowed.
        max: usize,
    },
    /// A `PEERS` entry with an address family other than 4 or 6.
    #[error("PEERS entry has address family {0}, expected 4 or 6")]
    AddressFamily(u8),
    /// A `REACH` whose result is not 0, 1 or 2.
    #[error("REACH result {0}, expected 0, 1 or 2")]
    Reached(u8),
    /// A flag byte that is neither 0 nor 1.
    #[error("{name} has flag byte {got}, expected 0 or 1")]
    Flag {
        /// Message name.
        name: &'static str,
        /// The byte.
        got: u8,
    },
    /// A chunk ID list that does not parse.
    #[error("bad chunk ID list: {0}")]
    List(#[from] ChunkSetError),
}

/// Why the bytes at the start of a buffer are not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Framing failed, or more bytes are needed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame is complete but its payload is invalid.
    #[error(transparent)]
    Message(#[from] MessageError),
}
