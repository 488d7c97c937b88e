//! The picker: which chunk to ask for next. Pure, so it is tested without sockets.
//!
//! `taken` is every chunk we hold or are already fetching, so no two requests for one
//! chunk are in flight at once (except in the endgame). From a neighbor: a chunk it has
//! and we lack, **rarest first** among what all our neighbors offer (the chunk the fewest
//! of them have is the one most at risk of being hard to get later), random among equals.
//! The owner, a last resort, is asked first for chunks no neighbor offers, so the
//! neighbors keep doing what they can.

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// How many candidates a pick compares for rarity.
pub const RARITY_SAMPLE: usize = 64;

/// A random chunk in `theirs` that is not `taken`.
pub fn from_neighbor(taken: &ChunkSet, theirs: &ChunkSet, rng: &mut impl Rng) -> Option<ChunkId> {
    rarest(taken, theirs, &[], rng)
}

/// A chunk in `theirs` that is not `taken`, offered by the fewest of `offers` (every
/// neighbor's last list), random among equals; among at most [`RARITY_SAMPLE`] random
/// candidates.
pub fn rarest(
    taken: &ChunkSet,
    theirs: &ChunkSet,
    offers: &[Option<ChunkSet>],
    rng: &mut impl Rng,
) -> Option<ChunkId> {
    let wanted = taken.wanted_from(theirs);
    // Rarity is judged on a random sample of the candidates, so a pick costs the same
    // for a file of 2 million chunks as for one of 20.
    let sample: Vec<ChunkId> = wanted.choose_multiple(rng, RARITY_SAMPLE).copied().collect();
    let offers: Vec<&ChunkSet> = offers.iter().flatten().collect();
    let copies = |id: ChunkId| offers.iter().filter(|o| o.contains(id)).count();
    let fewest = sample.iter().map(|&id| copies(id)).min()?;
    let rarest: Vec<ChunkId> = sample.into_iter().filter(|&id| copies(id) == fewest).collect();
    rarest.choose(rng).copied()
}

/// A random chunk that is not `taken`, preferring one no neighbor's offer has (judged on a
/// random sample of the missing chunks, as in [`rarest`]).
pub fn from_owner(taken: &ChunkSet, offers: &[Option<ChunkSet>], rng: &mut impl Rng) -> Option<ChunkId> {
    let all_missing: Vec<ChunkId> = taken.missing().collect();
    let missing: Vec<ChunkId> = all_missing
        .choose_multiple(rng, RARITY_SAMPLE * 4)
        .copied()
        .collect();
    let elsewhere: Vec<ChunkId> = missing
        .iter()
        .copied()
        .filter(|&id| !offers.iter().flatten().any(|o| o.contains(id)))
        .collect();
    let pool = if elsewhere.is_empty() {
        &missing
    } else {
        &elsewhere
    };
    pool.choose(rng).copied()
}
