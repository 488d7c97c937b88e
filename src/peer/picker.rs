//! The picker: which chunk to ask for next. Pure, so it is tested without sockets.
//!
//! `taken` is every chunk we hold or are already fetching, so the two sources (the
//! download neighbor and, on fallback, the owner) never ask for the same chunk at once.
//! The seed's rule for the neighbor: a random chunk it has and we lack. The owner, a last
//! resort, is asked first for chunks the neighbor does not offer, so the neighbor keeps
//! doing what it can.

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// A random chunk in `theirs` that is not `taken`.
pub fn from_neighbor(taken: &ChunkSet, theirs: &ChunkSet, rng: &mut impl Rng) -> Option<ChunkId> {
    taken.wanted_from(theirs).choose(rng).copied()
}

/// A random chunk that is not `taken`, preferring one the neighbor's `offer` lacks.
pub fn from_owner(taken: &ChunkSet, offer: Option<&ChunkSet>, rng: &mut impl Rng) -> Option<ChunkId> {
    let missing: Vec<ChunkId> = taken.missing().collect();
    let elsewhere: Vec<ChunkId> = match offer {
        Some(offer) => missing
            .iter()
            .copied()
            .filter(|&id| !offer.contains(id))
            .collect(),
        None => Vec::new(),
    };
    let pool = if elsewhere.is_empty() {
        &missing
    } else {
        &elsewhere
    };
    pool.choose(rng).copied()
}
