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
//!   delivering (the fallback clock). The owner's link judges with the patient view
//!   ([`Session::expected_once`]): a held-up head request counts once, not against every
//!   request queued behind it.

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
    /// Judge with the patient view ([`Session::expected_once`]): for the owner's link, so
    /// the owner is asked for what a neighbor is truly behind with, not for what a
    /// moment's hiccup at the head of its queue seems to hold up.
    pub(crate) patient: bool,
}

impl Others<'_> {
    /// When `s`'s `i`-th outstanding request is expected.
    fn eta(&self, s: &Session, i: usize) -> Time {
        if self.patient {
            s.expected_once(i, self.now, self.typical)
        } else {
            s.expected(i, self.now, self.typical)
        }
    }

    /// When a request made of `s` now would arrive.
    fn eta_new(&self, s: &Session) -> Time {
        if self.patient {
            s.expected_new_once(self.now, self.typical)
        } else {
            s.expected_new(self.now, self.typical)
        }
    }

    /// The soonest a neighbor offering `chunk` would bring it if asked now.
    fn best_new(&self, chunk: ChunkId) -> Option<Time> {
        self.sessions
            .iter()
            .filter(|s| !s.owner && s.offers(chunk))
            .map(|s| self.eta_new(s))
            .min()
    }
}

/// A chunk in flight elsewhere that this link (its session `me`) would bring sooner by at
/// least `margin` (`None`: half its own expected time). `usable` says whether a chunk is
/// still wanted and may take another copy (so it has exactly one request out, whose
/// expected arrival is the chunk's).
pub(crate) fn late(
    me: &Session,
    others: &Others<'_>,
    margin: Option<Duration>,
    usable: impl Fn(ChunkId) -> bool,
) -> Option<ChunkId> {
    let now = others.now;
    let mine = others.eta_new(me);
    let need = margin.unwrap_or_else(|| (mine - now).max(STEAL_MARGIN * 2) / 2);
    let threshold = mine + need;
    let mut best: Option<(ChunkId, Time)> = None;
    for s in &others.sessions {
        let n = s.requests.len();
        // Expected arrivals grow along a queue: skip a session whose last is not late
        // enough, and start at the first request that is.
        if n == 0 || others.eta(s, n - 1) <= threshold {
            continue;
        }
        let first = (0..n).find(|&i| others.eta(s, i) > threshold).unwrap_or(n);
        for (i, r) in s.requests.iter().enumerate().skip(first) {
            if !me.offers(r.chunk) || me.has_request(r.chunk) || !usable(r.chunk) {
                continue;
            }
            let eta = others.eta(s, i);
            if best.is_none_or(|(_, t)| eta > t) {
                best = Some((r.chunk, eta));
            }
        }
    }
    best.map(|(c, _)| c)
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
    let eta = others.eta_new(owner);
    // Only slow neighbors make offered chunks the owner's: none, and no fallback, no pick.
    let slow_any = others
        .sessions
        .iter()
        .any(|s| !s.owner && others.eta_new(s).saturating_sub(eta) > OWNER_PATIENCE);
    if !fallback && !slow_any {
        return None;
    }
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
