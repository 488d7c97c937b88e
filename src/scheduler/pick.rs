//! Which chunk to ask a link for. Pure functions over the scheduler's state.
//!
//! * **Fresh chunks, rarest first**: among a random sample of the chunks the server offers
//!   that are neither held nor claimed, the one the fewest neighbors offer (the one most
//!   at risk of being hard to get later), random among equals.
//! * **Late chunks elsewhere**: a chunk already requested on another link may be asked of
//!   this one too when this one is expected to bring it sooner by a clear margin (half its
//!   own expected time; the owner's margin is [`OWNER_PATIENCE`]); whichever copy arrives
//!   first wins. In the endgame (every missing chunk claimed, or only a few missing) any
//!   gain will do. A chunk is never asked of more than [`MAX_COPIES`] links at once.
//! * **From the owner**: a chunk no neighbor would bring within [`OWNER_PATIENCE`] of what
//!   the owner would; chunks no neighbor offers only while the neighbors are not
//!   delivering (the fallback clock).

use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::link::Session;
use super::{Time, OWNER_PATIENCE};
use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// How many candidates a pick compares for rarity.
pub(crate) const RARITY_SAMPLE: usize = 64;
/// The most links one chunk is requested on at once.
pub(crate) const MAX_COPIES: u8 = 2;
/// The smallest gain worth a second request outside the endgame.
pub(crate) const STEAL_MARGIN: Duration = Duration::from_millis(50);

/// A chunk `theirs` offers that is not `taken`, offered by the fewest of `lists`, random
/// among equals; judged on at most [`RARITY_SAMPLE`] candidates from a random place, so a
/// pick costs the same for two million chunks as for twenty.
pub(crate) fn rarest(
    taken: &ChunkSet,
    theirs: &ChunkSet,
    lists: &[&ChunkSet],
    rng: &mut impl Rng,
) -> Option<ChunkId> {
    let sample = taken.sample_wanted(Some(theirs), rng.random::<u32>() as usize, RARITY_SAMPLE);
    let copies = |id: ChunkId| lists.iter().filter(|o| o.contains(id)).count();
    let fewest = sample.iter().map(|&id| copies(id)).min()?;
    let rarest: Vec<ChunkId> = sample.into_iter().filter(|&id| copies(id) == fewest).collect();
    rarest.choose(rng).copied()
}

/// What the other links are doing, for the late-chunk and owner choices.
pub(crate) struct Others<'a> {
    /// Every other connected link's session.
    pub(crate) sessions: Vec<&'a Session>,
    /// The pace of a link that has not delivered yet.
    pub(crate) typical: Duration,
    pub(crate) now: Time,
}

impl Others<'_> {
    /// When each chunk requested on another link is expected, the soonest copy counting.
    fn in_flight(&self) -> Vec<(ChunkId, Time)> {
        let mut out: Vec<(ChunkId, Time)> = Vec::new();
        for s in &self.sessions {
            for (i, r) in s.requests.iter().enumerate() {
                let eta = s.expected(i, self.now, self.typical);
                match out.iter_mut().find(|(c, _)| *c == r.chunk) {
                    Some((_, t)) => *t = (*t).min(eta),
                    None => out.push((r.chunk, eta)),
                }
            }
        }
        out
    }

    /// The soonest a neighbor offering `chunk` would bring it if asked now.
    fn best_new(&self, chunk: ChunkId) -> Option<Time> {
        self.sessions
            .iter()
            .filter(|s| !s.owner && s.offers(chunk))
            .map(|s| s.expected_new(self.now, self.typical))
            .min()
    }
}

/// A chunk in flight elsewhere that `link` (its session `me`) would bring sooner by at
/// least `margin` (`None`: half its own expected time). `usable` says whether a chunk is
/// still wanted and may take another copy.
pub(crate) fn late(
    me: &Session,
    others: &Others<'_>,
    margin: Option<Duration>,
    usable: impl Fn(ChunkId) -> bool,
) -> Option<ChunkId> {
    let mine = me.expected_new(others.now, others.typical);
    let need = margin.unwrap_or_else(|| (mine - others.now).max(STEAL_MARGIN * 2) / 2);
    others
        .in_flight()
        .into_iter()
        .filter(|&(c, _)| me.offers(c) && !me.has_request(c) && usable(c))
        .filter_map(|(c, eta)| {
            eta.checked_sub(mine)
                .filter(|gain| *gain > need)
                .map(|gain| (c, gain))
        })
        .max_by_key(|&(_, gain)| gain)
        .map(|(c, _)| c)
}

/// A chunk to ask the owner (its session `owner`) for that is not `taken`: one no
/// neighbor would bring within [`OWNER_PATIENCE`] of the owner, or, with `fallback`, one
/// no neighbor offers at all (preferred then).
pub(crate) fn from_owner(
    owner: &Session,
    others: &Others<'_>,
    taken: &ChunkSet,
    fallback: bool,
    rng: &mut impl Rng,
) -> Option<ChunkId> {
    let eta = owner.expected_new(others.now, others.typical);
    let sample = taken.sample_wanted(None, rng.random::<u32>() as usize, RARITY_SAMPLE);
    let mut unoffered = Vec::new();
    let mut slow = Vec::new();
    for c in sample {
        match others.best_new(c) {
            None => unoffered.push(c),
            Some(t) if t.saturating_sub(eta) > OWNER_PATIENCE => slow.push((c, t)),
            Some(_) => {}
        }
    }
    if fallback {
        if let Some(&c) = unoffered.choose(rng) {
            return Some(c);
        }
    }
    slow.into_iter().max_by_key(|&(_, t)| t).map(|(c, _)| c)
}
