//! `ManifestError`: why a manifest was refused, each variant naming what is wrong.

use super::{entries, LayoutError, TREE_VERSION, VERSION};

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Fewer bytes than the fixed header.
    #[error("manifest is truncated: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The first four bytes are not `SWMF`.
    #[error("not a swarmshare manifest (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported manifest version {0} (this build reads versions {VERSION} and {TREE_VERSION}; a directory made by another swarmshare version must start over)")]
    UnsupportedVersion(u8),
    /// The reserved byte is not zero.
    #[error("manifest reserved byte is {0}, expected 0")]
    Reserved(u8),
    /// The declared size cannot be split.
    #[error("manifest declares an unusable file size: {0}")]
    Layout(#[from] LayoutError),
    /// Chunk size or count disagree with the split rule for the declared size.
    #[error("manifest declares {chunk_count} chunks of {chunk_size} bytes, but a {file_size}-byte file has {expected_count} chunks of {expected_size} bytes")]
    LayoutMismatch {
        /// Declared file size.
        file_size: u64,
        /// Declared chunk size.
        chunk_size: u32,
        /// Declared chunk count.
        chunk_count: u32,
        /// Chunk size the rule gives.
        expected_size: u32,
        /// Chunk count the rule gives.
        expected_count: u32,
    },
    /// The total length disagrees with the declared name length and chunk count.
    #[error("manifest is {len} bytes, its header implies {expected}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes the header implies.
        expected: usize,
    },
    /// The file name is not one plain file name.
    #[error("manifest file name {name:?} is refused: {reason}")]
    BadName {
        /// The name, lossily decoded.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An entry of a tree cannot be created safely as it stands.
    #[error("manifest entry {path:?} is refused: {reason}")]
    BadEntry {
        /// The entry's path, lossily decoded (printed escaped).
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A tree lists more entries than [`entries::MAX_ENTRIES`].
    #[error("manifest lists {0} entries, more than the {max} allowed", max = entries::MAX_ENTRIES)]
    TooManyEntries(usize),
    /// A tree's table cannot be parsed.
    #[error("manifest entry table is malformed: {0}")]
    BadTable(&'static str),
    /// A tree's files add up to a size other than the one its header declares.
    #[error("manifest declares {declared} bytes, its files add up to {listed}")]
    TreeSize {
        /// The header's size.
        declared: u64,
        /// The table's sizes summed.
        listed: u64,
    },
}
