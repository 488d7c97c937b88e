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
pub(crate) mod fallback;
mod judge;
mod link;
mod pick;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::book::{AddressBook, Known};
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::ChunkId;
use fallback::Fallback;
use judge::{Judge, Struck};
pub(crate) use link::{Close, Role, Target};
use link::{Request, Session, State};
use pick::MAX_COPIES;

/// A point in time: since an epoch the caller chose.
pub(crate) type Time = Duration;
/// A link, by its index in the roles the scheduler was made with.
pub(crate) type LinkId = usize;

/// Requests in flight at once on one link, at most (1.6 MB of chunks).
pub(crate) const PIPELINE: usize = 16;
/// Requests in flight on a link before its pace is known.
pub(crate) const PIPELINE_START: usize = 4;
/// How much of a link's pace is kept in flight: enough that the server always has the next
/// request, few enough that a slow server is not handed chunks another could bring sooner.
pub(crate) const IN_FLIGHT_TIME: Duration = Duration::from_millis(100);
/// The pace assumed before any link has delivered.
pub(crate) const DEFAULT_PACE: Duration = Duration::from_millis(20);
/// How much sooner the neighbors must be expected to bring a chunk than the owner before
/// the owner is left alone; past it, the owner is asked.
pub(crate) const OWNER_PATIENCE: Duration = Duration::from_millis(500);
/// How long a new link may take to answer its first list request.
pub(crate) const FIRST_LIST_LATE: Duration = Duration::from_secs(1);
/// How long a later list request may take, on top of the long poll's wait.
pub(crate) const LIST_LATE: Duration = Duration::from_secs(3);
/// How long a server may hold a list request until it has something new.
pub(crate) const LIST_WAIT: Duration = Duration::from_secs(1);
/// A link whose head request waited this many times its pace is stalled...
pub(crate) const STALL_FACTOR: u32 = 8;
/// ...but never before this long.
pub(crate) const STALL_MIN: Duration = Duration::from_secs(2);
/// An unpinned neighbor that delivers nothing new this long is swapped for another.
pub(crate) const ROTATE_AFTER: Duration = Duration::from_secs(3);
/// An unpinned neighbor whose list offers nothing we lack this long is swapped sooner.
pub(crate) const ROTATE_USELESS: Duration = Duration::from_secs(1);
/// How often a neighbor is asked which peers it knows.
pub(crate) const PEX_EVERY: Duration = Duration::from_secs(5);
/// The owner is asked for peers after this, then twice as long each time...
pub(crate) const OWNER_PEX_FIRST: Duration = Duration::from_millis(100);
/// ...up to this.
pub(crate) const OWNER_PEX_EVERY: Duration = Duration::from_secs(2);
/// How often a peer looks for its slowest neighbor...
pub(crate) const SLOW_EVERY: Duration = Duration::from_secs(2);
/// ...and swaps it for another when it is this many times slower than the median: a
/// busy server's clients move away, an idle one's come, so load evens out.
pub(crate) const SLOW_RATIO: f64 = 2.0;
/// Missing chunks that no neighbor offers are asked of the owner once no neighbor has had
/// a request of ours for this long: the neighbors have nothing left we lack (chunks only a
/// slow or departed peer holds, say).
pub(crate) const STARVED_AFTER: Duration = Duration::from_millis(300);
/// How often the scheduler wants [`Scheduler::handle_timeout`] while downloading.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// How long a slot with no candidate waits before looking again (a new peer in the book
/// wakes it sooner).
pub(crate) const VACANT_RETRY: Duration = Duration::from_millis(300);
/// Dial timeout for an address someone else told us of.
pub(crate) const UNPROVEN_DIAL: Duration = Duration::from_secs(2);
/// Dial timeout for a first-hand or configured address.
pub(crate) const DIAL: Duration = Duration::from_secs(5);

/// Why a dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialFailure {
    /// Nothing answered (refused, timed out, unreachable).
    Unreachable,
    /// Something answered, but not a node of this swarm.
    Refused,
    /// We reached ourselves.
    Myself,
    /// Another peer answered there.
    WrongPeer(PeerId),
    /// The peer answered, but serves as many downloaders as it takes right now.
    Busy,
}

/// What storing a received chunk came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Verified and stored: new to us.
    New,
    /// Verified, but another copy was stored first.
    Duplicate,
    /// It failed verification.
    Bad,
}

/// What happened on a link.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// The dial reached `peer` at `addr` (hellos exchanged); `owner` from its role.
    Connected {
        peer: PeerId,
        addr: SocketAddr,
        owner: bool,
    },
    /// The dial failed.
    DialFailed(DialFailure),
    /// The connection ended; `violation` if the other side broke the protocol.
    Closed { violation: bool },
    /// The server's chunk ID list.
    List(&'a ChunkSet),
    /// The bytes of a requested chunk arrived and are being verified and stored.
    Arrived(ChunkId),
    /// The server does not hold a requested chunk.
    NotHave(ChunkId),
    /// A peer list arrived (the caller put it in the book).
    Peers,
    /// A request the scheduler handed out was not sent after all (the download cap).
    Unsent(ChunkId),
}

/// What a link should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Connect and exchange hellos, within `timeout`.
    Dial { target: Target, timeout: Duration },
    /// Send `REQUEST(chunk)`.
    Request(ChunkId),
    /// Ask for the chunk ID list; with a wait, a long poll.
    AskList(Option<Duration>),
    /// Ask which peers the server knows.
    AskPeers,
    /// Close the connection.
    Close(Close),
}

/// Counters for reports and the simulator.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// New chunks from the owner (its batch included).
    pub(crate) from_owner: u32,
    /// New chunks from neighbors.
    pub(crate) from_neighbor: u32,
    /// Chunks that arrived after another copy was stored.
    pub(crate) duplicates: u32,
    /// Requests for chunks already requested elsewhere.
    pub(crate) second_requests: u32,
}

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
    woken: Vec<bool>,
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
            woken: vec![true; roles.len()],
            neighbor_slots: roles.iter().filter(|r| **r != Role::Owner).count(),
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
    pub(crate) fn take_woken(&mut self) -> Vec<LinkId> {
        let woken = (0..self.woken.len()).filter(|&l| self.woken[l]).collect();
        self.woken.fill(false);
        woken
    }

    fn wake_all(&mut self) {
        self.woken.fill(true);
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

    /// Records what happened on `link` at `now`.
    pub(crate) fn handle(&mut self, now: Time, link: LinkId, event: Event<'_>) {
        if link >= self.links.len() {
            return;
        }
        self.woken[link] = true;
        match event {
            Event::Connected { peer, addr, owner } => self.connected(now, link, peer, addr, owner),
            Event::DialFailed(why) => self.dial_failed(now, link, why),
            Event::Closed { violation } => self.closed(now, link, violation),
            Event::List(list) => {
                let fits = list.len() == self.held.len();
                let useless = self.held.sample_wanted(Some(list), 0, 1).is_empty();
                let Some(s) = self.session(link) else { return };
                s.list_asked = None;
                if !fits {
                    return;
                }
                s.useless_since = if useless {
                    s.useless_since.or(Some(now))
                } else {
                    None
                };
                s.list = Some(list.clone());
            }
            Event::Arrived(c) => {
                let typical = self.typical;
                let Some(s) = self.session(link) else { return };
                if !s.answered(c, now, true) {
                    return;
                }
                let pace = s.pace.measured().unwrap_or(typical);
                self.typical = typical.mul_f64(0.9) + pace.mul_f64(0.1);
                self.inflight[c as usize] = self.inflight[c as usize].saturating_sub(1);
                self.arriving[c as usize] = self.arriving[c as usize].saturating_add(1);
                self.refresh(c);
            }
            Event::NotHave(c) | Event::Unsent(c) => {
                let unsent = matches!(event, Event::Unsent(_));
                let Some(s) = self.session(link) else { return };
                if !s.answered(c, now, false) {
                    return;
                }
                let listed = !unsent && !s.owner && s.offers(c);
                if let Some(l) = s.list.as_mut().filter(|_| !unsent) {
                    l.remove(c);
                }
                let peer = s.peer;
                self.release([Request { chunk: c, sent: now }]);
                if listed {
                    self.strike(peer);
                }
            }
            Event::Peers => {
                if let Some(s) = self.session(link) {
                    s.peers_asked = false;
                }
                self.book_grew(now);
            }
        }
    }

    fn connected(&mut self, now: Time, link: LinkId, peer: PeerId, addr: SocketAddr, owner: bool) {
        let role = self.links[link].role;
        if owner {
            self.set_owner(peer);
        }
        let elsewhere = self
            .links
            .iter()
            .enumerate()
            .any(|(i, l)| i != link && matches!(&l.state, State::Up(s) if s.peer == peer));
        let is_owner = owner || self.owner == Some(peer);
        if role == Role::Pinned {
            // The seed's neighbor has its own slot: an unpinned one holding it moves on.
            for l in &mut self.links {
                if let (Role::Neighbor, State::Up(s)) = (l.role, &mut l.state) {
                    if s.peer == peer {
                        s.closing = Some(Close::Duplicate);
                    }
                }
            }
        }
        let closing = match role {
            Role::Neighbor | Role::Pinned if is_owner => Some(Close::IsOwner),
            Role::Neighbor if elsewhere => Some(Close::Duplicate),
            _ if self.judge.banned(peer) => Some(Close::Banned),
            _ => None,
        };
        if !is_owner {
            self.book.proven(peer, addr);
        }
        if role != Role::Owner && closing.is_none() {
            self.fallback.connected(now);
        }
        let mut s = Session::new(peer, addr.ip(), is_owner, self.held.len(), now);
        s.closing = closing;
        s.book_seen = self.book.vouched_len();
        s.next_pex = self.links[link].next_pex;
        if is_owner {
            s.prior = self.batch.pace;
        }
        self.links[link].state = State::Up(Box::new(s));
    }

    fn dial_failed(&mut self, now: Time, link: LinkId, why: DialFailure) {
        let State::Dialing { target, .. } = self.links[link].state else {
            return;
        };
        let retry_at = match target {
            Target::Peer { id, addr } => {
                match why {
                    DialFailure::Myself => self.book.myself(addr),
                    DialFailure::WrongPeer(actual) if Some(actual) != self.owner && actual != self.me => {
                        self.book.proven(actual, addr);
                    }
                    DialFailure::Busy => {
                        // Alive and honest, only full: the book keeps it, others go first.
                        self.book.proven(id, addr);
                        self.judge.rested(id, now);
                        self.links[link].state = State::Vacant { retry_at: now };
                        return;
                    }
                    _ => {}
                }
                self.book.unreachable(id, addr);
                self.judge.failed(id, None, now);
                now
            }
            Target::Configured => {
                let l = &mut self.links[link];
                let delay = l.retry.mul_f64(self.rng.random_range(0.5..=1.0));
                l.retry = (l.retry * 2).min(Duration::from_secs(2));
                let long = matches!(why, DialFailure::Myself);
                now + if long { Duration::from_secs(60) } else { delay }
            }
        };
        self.links[link].state = State::Vacant { retry_at };
    }

    fn closed(&mut self, now: Time, link: LinkId, violation: bool) {
        let l = &mut self.links[link];
        let retry_at = match l.role {
            Role::Neighbor => now,
            Role::Pinned | Role::Owner => {
                let delay = l.retry;
                l.retry = (l.retry * 2).min(Duration::from_secs(2));
                now + delay
            }
        };
        let old = std::mem::replace(&mut l.state, State::Vacant { retry_at });
        let State::Up(s) = old else { return };
        if violation {
            self.strike(s.peer);
        }
        if s.delivered == 0 && !s.owner {
            self.judge.failed(s.peer, Some(s.ip), now);
        }
        self.release(s.requests);
    }

    /// Whether `peer` is banned for the rest of the run.
    pub(crate) fn banned(&self, peer: PeerId) -> bool {
        self.judge.banned(peer)
    }

    fn strike(&mut self, peer: PeerId) {
        if self.judge.banned(peer) {
            return;
        }
        match self.judge.strike(peer) {
            Struck::Warned(n) => {
                tracing::warn!(peer = %peer.short(), strikes = n, "strike: a bad chunk or a protocol violation");
                return;
            }
            Struck::Banned => {}
        }
        for l in &mut self.links {
            if let State::Up(s) = &mut l.state {
                if s.peer == peer {
                    s.closing = Some(Close::Banned);
                }
            }
        }
        self.wake_all();
    }

    /// The book may hold new peers: vacant neighbor slots look again now.
    pub(crate) fn book_grew(&mut self, now: Time) {
        for (i, l) in self.links.iter_mut().enumerate() {
            if let (Role::Neighbor, State::Vacant { retry_at }) = (l.role, &mut l.state) {
                *retry_at = (*retry_at).min(now);
                self.woken[i] = true;
            }
        }
    }

    /// The owner's batch is coming (from `now`), or has ended.
    pub(crate) fn batch_streaming(&mut self, streaming: bool, now: Time) {
        self.batch.streaming = streaming;
        self.batch.last = Some(now);
    }

    /// The owner's batch brought `chunk` (not requested) at `now`: it is being stored.
    pub(crate) fn pushed(&mut self, chunk: ChunkId, now: Time) {
        if let Some(last) = self.batch.last {
            let sample = now.saturating_sub(last);
            let pace = self
                .batch
                .pace
                .map_or(sample, |p| p.mul_f64(0.7) + sample.mul_f64(0.3));
            self.batch.pace = Some(pace);
            for l in &mut self.links {
                if let (Role::Owner, State::Up(s)) = (l.role, &mut l.state) {
                    s.prior = Some(pace);
                }
            }
        }
        self.batch.last = Some(now);
        if let Some(a) = self.arriving.get_mut(chunk as usize) {
            *a = a.saturating_add(1);
            self.refresh(chunk);
        }
    }

    /// A received chunk (requested from `from`, or pushed in the owner's batch) was
    /// stored, or refused.
    pub(crate) fn stored(&mut self, now: Time, chunk: ChunkId, from: PeerId, outcome: Outcome) {
        let Some(a) = self.arriving.get_mut(chunk as usize) else {
            return;
        };
        *a = a.saturating_sub(1);
        let from_owner = self.owner == Some(from);
        match outcome {
            Outcome::New => {
                self.held.insert(chunk);
                if from_owner {
                    self.stats.from_owner += 1;
                } else {
                    self.stats.from_neighbor += 1;
                    self.fallback.delivered(now);
                }
                let mut first = None;
                for l in &mut self.links {
                    if let State::Up(s) = &mut l.state {
                        if s.peer == from {
                            s.delivered += 1;
                            s.last_useful = now;
                            if s.delivered == 1 {
                                first = Some(s.ip);
                            }
                            if l.role != Role::Neighbor {
                                l.retry = Duration::from_millis(100);
                            }
                        }
                    }
                }
                if let Some(ip) = first {
                    self.judge.delivered(from, ip);
                }
            }
            Outcome::Duplicate => self.stats.duplicates += 1,
            // Bad bytes: the chunk is wanted again, from anyone.
            Outcome::Bad => {
                self.strike(from);
                self.wake_all();
            }
        }
        let endgame = self.endgame();
        self.refresh(chunk);
        if self.endgame() && !endgame {
            // The last few chunks: every link may now help with what others are fetching.
            self.wake_all();
        }
    }
}

mod drive;
