//! The download side's decisions, with no sockets, no tasks and no clock: a sans-IO core
//! in the manner of quinn-proto, driven by the peer's link tasks in real time and by the
//! simulator ([`crate::sim`]) in simulated time, the same code in both.
//!
//! The caller reports what happened with [`Scheduler::handle`] (a link came up, a list or
//! a chunk arrived, a chunk was stored or failed, a link closed) and the passing of time
//! with [`Scheduler::handle_timeout`]; it asks each link what to do next with
//! [`Scheduler::poll`] (dial whom, request which chunk, ask for a list or peers, close) and
//! when to call again with [`Scheduler::next_timeout`]. Links whose next action may have
//! changed are reported by [`Scheduler::take_woken`]. Time is a [`Duration`] since an
//! epoch the caller picks.
//!
//! The policy, judged on what peers deliver and never on what they claim:
//! * **Links**: neighbor slots (one may be pinned to the seed's download neighbor) and one
//!   owner link. A link is `Vacant`, `Dialing` or `Up` ([`link::State`]).
//! * **Which chunk** ([`pick`]): rarest first among what a neighbor offers and nobody is
//!   fetching; a chunk requested elsewhere when this link would clearly bring it sooner
//!   (the soonest copy wins); the owner for chunks no neighbor would bring within
//!   [`OWNER_PATIENCE`] of it, and for chunks nobody offers while the neighbors are not
//!   delivering ([`fallback`]).
//! * **How many in flight**: a window per link from its measured pace ([`link::Session`]).
//! * **When a link goes**: it must answer its first list within [`FIRST_LIST_LATE`]
//!   and later ones within [`LIST_LATE`] (plus the long poll), and its head request within
//!   [`STALL_FACTOR`] times its pace (at least [`STALL_MIN`]); otherwise it is closed and
//!   its peer backs off. An unpinned slot moves on from a neighbor that offers nothing new
//!   for [`ROTATE_USELESS`] or delivers nothing new for [`ROTATE_AFTER`], and with
//!   probability (new / known) when the book grows, so the choice stays uniform.
//! * **Whom to dial** ([`choose`]): spread across addresses, suspect addresses last, peers
//!   in backoff or banned never ([`judge`]).

mod choose;
mod drive;
mod event;
pub(crate) mod fallback;
mod handle;
mod judge;
mod link;
mod pick;
mod rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inbound;
mod timeouts;

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::book::{AddressBook, Known};
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::ChunkId;
pub(crate) use event::{Action, DialFailure, Event, Outcome, Stats};
use fallback::Fallback;
use judge::Judge;
pub(crate) use link::{Close, Role, Target};
use link::{Request, Session, State};
use pick::MAX_COPIES;
pub(crate) use rules::*;

/// A point in time: since an epoch the caller chose.
pub(crate) type Time = Duration;
/// A link, by its index in the roles the scheduler was made with.
pub(crate) type LinkId = usize;

#[derive(Debug)]
struct Link {
    role: Role,
    state: State,
    /// Redial delay for a configured endpoint; reset by a stored chunk.
    retry: Duration,
    pex_every: Duration,
    /// When the server on this link is next asked for peers (kept across reconnections,
    /// so a server that drops us does not get asked at once again).
    next_pex: Time,
}

/// A set of links (at most 64: a node has at most 32 neighbor slots and the owner's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Woken(u64);

impl Woken {
    /// Links `0..n`.
    pub(crate) fn all(n: usize) -> Woken {
        Woken(if n >= 64 { u64::MAX } else { (1u64 << n) - 1 })
    }

    /// Whether it holds no link.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The links, ascending.
    pub(crate) fn iter(self) -> impl Iterator<Item = LinkId> {
        (0..64).filter(move |l| self.0 & (1 << l) != 0)
    }
}

/// The download side's decisions for one node.
#[derive(Debug)]
pub(crate) struct Scheduler {
    me: PeerId,
    book: Arc<AddressBook>,
    links: Vec<Link>,
    held: ChunkSet,
    /// Held, arriving or requested: what a fresh pick must avoid.
    taken: ChunkSet,
    inflight: Vec<u8>,
    arriving: Vec<u8>,
    judge: Judge,
    fallback: Fallback,
    owner: Option<PeerId>,
    /// What a delivering link's chunk takes, averaged over every link.
    typical: Duration,
    rng: SmallRng,
    /// Links woken since the last [`Scheduler::take_woken`], one bit each.
    woken: u64,
    neighbor_slots: usize,
    stats: Stats,
    batch: Batch,
    last_slow_check: Time,
    /// The last time a neighbor had a chunk request of ours outstanding.
    last_busy: Time,
}

/// The owner's batch as this node receives it: whether it is still coming, and the pace
/// of its chunks (what the owner gives each peer while it hands out the file).
#[derive(Debug, Default)]
struct Batch {
    streaming: bool,
    last: Option<Time>,
    pace: Option<Duration>,
}

impl Scheduler {
    /// A scheduler for links with `roles` (at most one owner), holding `held` at `now`.
    pub(crate) fn new(
        me: PeerId,
        book: Arc<AddressBook>,
        roles: &[Role],
        held: ChunkSet,
        seed: u64,
        now: Time,
    ) -> Scheduler {
        let chunks = held.len() as usize;
        let links = roles
            .iter()
            .map(|&role| Link {
                role,
                state: State::Vacant { retry_at: now },
                retry: Duration::from_millis(100),
                pex_every: OWNER_PEX_FIRST,
                next_pex: now,
            })
            .collect();
        Scheduler {
            me,
            book,
            links,
            taken: held.clone(),
            held,
            inflight: vec![0; chunks],
            arriving: vec![0; chunks],
            judge: Judge::default(),
            fallback: Fallback::new(now),
            owner: None,
            typical: DEFAULT_PACE,
            rng: SmallRng::seed_from_u64(seed),
            woken: Woken::all(roles.len()).0,
            neighbor_slots: roles
                .iter()
                .filter(|r| matches!(r, Role::Neighbor | Role::Pinned))
                .count(),
            stats: Stats::default(),
            batch: Batch::default(),
            last_slow_check: now,
            last_busy: now,
        }
    }

    /// What is held.
    pub(crate) fn held(&self) -> &ChunkSet {
        &self.held
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// Tells the scheduler the owner's ID before any link met it (from the join).
    pub(crate) fn set_owner(&mut self, owner: PeerId) {
        self.owner = Some(owner);
        self.book.trust(owner);
    }

    /// The peer `link` is connected to, if it is up.
    pub(crate) fn peer_of(&self, link: LinkId) -> Option<PeerId> {
        match &self.links.get(link)?.state {
            State::Up(s) => Some(s.peer),
            _ => None,
        }
    }

    /// Links whose next action may have changed since the last call.
    pub(crate) fn take_woken(&mut self) -> Woken {
        Woken(std::mem::take(&mut self.woken))
    }

    fn wake(&mut self, link: LinkId) {
        self.woken |= 1 << link;
    }

    fn wake_all(&mut self) {
        self.woken = Woken::all(self.links.len()).0;
    }

    fn refresh(&mut self, c: ChunkId) {
        let i = c as usize;
        if self.held.contains(c) || self.arriving[i] > 0 || self.inflight[i] > 0 {
            self.taken.insert(c);
        } else {
            self.taken.remove(c);
        }
    }

    fn release(&mut self, requests: impl IntoIterator<Item = Request>) {
        for r in requests {
            let i = r.chunk as usize;
            self.inflight[i] = self.inflight[i].saturating_sub(1);
            self.refresh(r.chunk);
        }
        self.wake_all();
    }

    fn session(&mut self, link: LinkId) -> Option<&mut Session> {
        match &mut self.links.get_mut(link)?.state {
            State::Up(s) => Some(s),
            _ => None,
        }
    }

    fn endgame(&self) -> bool {
        let missing = (self.held.len() - self.held.count()) as usize;
        self.taken.is_complete() || missing <= self.neighbor_slots.max(2)
    }
}
