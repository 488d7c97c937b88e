//! Which peer a vacant neighbor slot dials. Pure: the book's candidates, what the other
//! slots hold and the judgments go in, one candidate comes out.
//!
//! Slots are spread across addresses, not identities: an address is chosen first, uniformly
//! among those below their share of the slots (`ceil(slots / addresses)`), then a peer at
//! it, uniformly. Suspect addresses (their peers failed far more than they delivered) are
//! left out while any other has a candidate. So thirty identities at one address take at
//! most that address's share of the slots, and lose even that once they have failed, while
//! peers that share one address honestly (a host running several, a loopback test) still
//! fill every slot when nobody else is there.

use std::collections::HashMap;
use std::net::IpAddr;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::judge::Judge;
use super::Time;
use crate::book::Candidate;
use crate::identity::PeerId;

/// What the other slots hold: a peer (if known yet) and the address it is at (`None` for
/// a link the peer dialled: it takes no share of the slots we dial).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub(crate) peer: Option<PeerId>,
    pub(crate) ip: Option<IpAddr>,
}

/// Everything a choice looks at.
pub(crate) struct Choice<'a> {
    pub(crate) candidates: &'a [Candidate],
    pub(crate) busy: &'a [Busy],
    pub(crate) judge: &'a Judge,
    /// Never a neighbor: this node, the owner.
    pub(crate) excluded: &'a [PeerId],
    pub(crate) slots: usize,
    pub(crate) now: Time,
    /// How many addresses the book knows peers at (for the cheap sampled choice).
    pub(crate) addresses: usize,
}

impl Choice<'_> {
    fn eligible(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| {
            !self.excluded.contains(&c.id)
                && !self.busy.iter().any(|b| b.peer == Some(c.id))
                && self.judge.ready(c.id, self.now)
        })
    }

    /// Whether some peer could be chosen now.
    pub(crate) fn any(&self) -> bool {
        self.pick_exact(&mut NoRng).is_some()
    }

    /// A peer for the slot, if any may be dialled now.
    pub(crate) fn pick(&self, rng: &mut impl Rng) -> Option<Candidate> {
        self.pick_sampled(rng).or_else(|| self.pick_exact(rng))
    }

    /// The common case, cheaply: a few random candidates, the first that is eligible, not
    /// suspect, and at an address below its share (counted over the addresses the book
    /// knows) wins. `None` sends the choice to [`Choice::pick_exact`].
    fn pick_sampled(&self, rng: &mut impl Rng) -> Option<Candidate> {
        if self.candidates.len() < 64 || self.addresses == 0 {
            return None;
        }
        let share = self.slots.div_ceil(self.addresses).max(1);
        for _ in 0..16 {
            let c = self.candidates[rng.random_range(0..self.candidates.len())];
            let ip = c.addr.ip();
            let eligible = !self.excluded.contains(&c.id)
                && !self.busy.iter().any(|b| b.peer == Some(c.id))
                && self.judge.ready(c.id, self.now)
                && !self.judge.suspect(ip)
                && self.busy.iter().filter(|b| b.ip == Some(ip)).count() < share;
            if eligible {
                return Some(c);
            }
        }
        None
    }

    /// Every candidate weighed: addresses first, then a peer at the chosen one.
    fn pick_exact(&self, rng: &mut impl Rng) -> Option<Candidate> {
        let mut by_ip: HashMap<IpAddr, Vec<&Candidate>> = HashMap::new();
        for c in self.eligible() {
            by_ip.entry(c.addr.ip()).or_default().push(c);
        }
        if by_ip.is_empty() {
            return None;
        }
        if by_ip.keys().any(|ip| !self.judge.suspect(*ip)) {
            by_ip.retain(|ip, _| !self.judge.suspect(*ip));
        }
        let mut ips: Vec<IpAddr> = by_ip.keys().copied().collect();
        for b in self.busy {
            if let Some(ip) = b.ip.filter(|ip| !ips.contains(ip) && !self.judge.suspect(*ip)) {
                ips.push(ip);
            }
        }
        let share = self.slots.div_ceil(ips.len().max(1)).max(1);
        let used = |ip: &IpAddr| self.busy.iter().filter(|b| b.ip == Some(*ip)).count();
        let mut open: Vec<IpAddr> = by_ip.keys().copied().filter(|ip| used(ip) < share).collect();
        // A fixed order, so a seeded choice is the same choice every run.
        open.sort_unstable();
        let ip = *open.choose(rng)?;
        let mut at = by_ip.remove(&ip)?;
        at.sort_unstable_by_key(|c| c.id.0);
        at.choose(rng).map(|c| **c)
    }
}

/// An `Rng` for "is there any": always the first choice.
struct NoRng;

impl rand::RngCore for NoRng {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(0);
    }
}
