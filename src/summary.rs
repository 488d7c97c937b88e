//! The summary file: the human-readable list of chunk IDs a node holds.
//!
//! The seed asks each peer to write one after its first chunks arrive; swarmshare rewrites
//! it atomically as chunks arrive (see [`crate::holdings`] for how often). It is a report
//! for people and scripts, never the source of truth: on start-up the chunk files are
//! verified against the manifest.
//!
//! Format (UTF-8 text): comment lines start with `#`; every other non-empty line is one
//! chunk ID in decimal, ascending.
//!
//! ```text
//! # swarmshare summary: chunk IDs this node holds, one per line
//! # swarm 3f0c…
//! # 3 of 41 chunks
//! 0
//! 7
//! 12
//! ```

use std::fmt::Write as _;

use crate::chunk_set::ChunkSet;
use crate::manifest::SwarmId;

/// Why a summary file does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SummaryError {
    /// A line that is neither a comment nor a chunk ID.
    #[error("line {line}: {text:?} is not a chunk ID")]
    NotAnId {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A chunk ID past the swarm's last chunk.
    #[error("line {line}: chunk {id} is out of range (the swarm has {count} chunks)")]
    OutOfRange {
        /// 1-based line number.
        line: usize,
        /// The ID.
        id: u32,
        /// The swarm's chunk count.
        count: u32,
    },
}

/// Renders the summary of `have` for swarm `swarm`.
pub(crate) fn render(swarm: SwarmId, have: &ChunkSet) -> String {
    let mut out = String::with_capacity(96 + have.count() as usize * 7);
    out.push_str("# swarmshare summary: chunk IDs this node holds, one per line\n");
    let _ = writeln!(out, "# swarm {swarm}");
    let _ = writeln!(out, "# {} of {} chunks", have.count(), have.len());
    for id in have.iter() {
        let _ = writeln!(out, "{id}");
    }
    out
}

/// Parses a summary for a swarm of `count` chunks.
pub(crate) fn parse(text: &str, count: u32) -> Result<ChunkSet, SummaryError> {
    let mut set = ChunkSet::empty(count);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id: u32 = line.parse().map_err(|_| SummaryError::NotAnId {
            line: i + 1,
            text: line.chars().take(40).collect(),
        })?;
        if id >= count {
            return Err(SummaryError::OutOfRange {
                line: i + 1,
                id,
                count,
            });
        }
        set.insert(id);
    }
    Ok(set)
}
