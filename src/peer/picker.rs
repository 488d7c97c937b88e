//! The picker: which chunk to ask for next, and from whom. Pure, so it is tested
//! without sockets.
//!
//! The seed's rule first: a random chunk the download neighbor has and we lack. Only when
//! the neighbor has had nothing for us for a while (or is unreachable) does the caller set
//! `fallback`, and then a random chunk we lack is asked of the owner instead: the owner is
//! a last resort, never the first source.

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Request this chunk from the download neighbor.
    Neighbor(ChunkId),
    /// Request this chunk from the owner.
    Owner(ChunkId),
    /// Nothing to request now; ask the neighbor for a fresh list later.
    Wait,
}

/// Picks the next request. `neighbor` is the neighbor's last list, if connected.
pub fn pick(mine: &ChunkSet, neighbor: Option<&ChunkSet>, fallback: bool, rng: &mut impl Rng) -> Pick {
    if let Some(theirs) = neighbor {
        if let Some(&id) = mine.wanted_from(theirs).choose(rng) {
            return Pick::Neighbor(id);
        }
    }
    if fallback {
        let missing: Vec<ChunkId> = mine.missing().collect();
        if let Some(&id) = missing.choose(rng) {
            return Pick::Owner(id);
        }
    }
    Pick::Wait
}
