//! The address book: the peers a node knows of, keyed by [`PeerId`], each with the last
//! address it was seen listening on and how we know it.
//!
//! Three kinds of knowledge, strongest first:
//! * **proven**: we dialled the address and the node there answered with that ID;
//! * **heard**: the node connected to us and its hello announced the port (the IP is the
//!   connection's, the port only claimed);
//! * **gossip**: another node's `PEERS` answer named it. Gossip is *unproven*: it never
//!   overwrites or refreshes a first-hand address, it is never passed on (a `PEERS` answer
//!   lists first-hand entries only, so a lie travels one hop at most), at most
//!   [`MAX_PER_SOURCE`] entries of one source are kept, and a source whose entries keep
//!   failing ([`Source::believed`]) is not listened to any more and its entries go.
//!
//! A dial that fails removes an unproven entry (not the owner's word) and remembers the pair, so the same lie is
//! not taken twice; an address where we reached ourselves, or where a proven peer already
//! listens under another ID, is never taken from gossip. Bounded: beyond [`MAX_KNOWN`]
//! entries gossip goes first, then the longest-unseen. No clock: recency is a counter, so
//! the simulator drives the very same book.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::identity::PeerId;
use crate::wire::PeerAddr;
use entries::{Entry, Inner};

mod entries;

/// The most peers a book remembers.
pub(crate) const MAX_KNOWN: usize = 1024;
/// The most unproven entries one source may have in the book at once.
pub(crate) const MAX_PER_SOURCE: usize = 64;
/// Failed (ID, address) pairs remembered, so gossip cannot hand the same one back.
const MAX_FAILED: usize = 4096;
/// The most entries at one IP address: a host running many identities (or claiming to)
/// cannot fill the book.
pub(crate) const MAX_PER_IP: usize = 64;
/// Sources whose record is kept.
const MAX_SOURCES: usize = 1024;

/// How the book knows an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// We dialled it and it answered with its ID.
    Proven,
    /// Its own hello, on a connection it opened to us.
    Heard,
    /// Another node's peer list named it.
    Gossip(PeerId),
}

impl Known {
    fn first_hand(self) -> bool {
        !matches!(self, Known::Gossip(_))
    }

    fn rank(self) -> u8 {
        match self {
            Known::Proven => 2,
            Known::Heard => 1,
            Known::Gossip(_) => 0,
        }
    }
}

/// A peer the book offers for dialling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Its ID.
    pub(crate) id: PeerId,
    /// Where it listens, as far as we know.
    pub(crate) addr: SocketAddr,
    /// How we know.
    pub(crate) known: Known,
}

/// What a source's gossip has been worth: of the entries it gave that were dialled, how
/// many answered as named.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Source {
    good: u32,
    bad: u32,
}

impl Source {
    /// Believed until its failures reach 3 and outnumber twice its successes.
    pub(crate) fn believed(&self) -> bool {
        self.bad < 3 || self.bad <= 2 * self.good
    }
}

/// The peers a node knows.
#[derive(Debug)]
pub(crate) struct AddressBook {
    me: PeerId,
    inner: Mutex<Inner>,
    /// Signalled whenever a peer not in the book before is added.
    added: tokio::sync::Notify,
}

impl AddressBook {
    /// An empty book for the node `me` (never listed in it).
    pub(crate) fn new(me: PeerId) -> AddressBook {
        AddressBook {
            me,
            inner: Mutex::new(Inner::default()),
            added: tokio::sync::Notify::new(),
        }
    }

    /// This node's ID.
    pub(crate) fn me(&self) -> PeerId {
        self.me
    }

    /// Never doubts `source` (the owner): its failures do not make it unbelieved.
    pub(crate) fn trust(&self, source: PeerId) {
        let mut inner = self.lock();
        if inner.trusted != Some(source) {
            inner.trusted = Some(source);
            inner.vouched = inner.entries.values().filter(|e| inner.vouches(e)).count();
        }
    }

    /// How many IP addresses the book knows peers at.
    pub(crate) fn addresses(&self) -> usize {
        self.lock().ips.len()
    }

    /// How many peers the book knows first-hand or from the trusted source (the owner):
    /// what a growing swarm adds, and what no liar can inflate.
    pub(crate) fn vouched_len(&self) -> usize {
        self.lock().vouched
    }

    /// `id`'s own hello, on a connection it opened, says it listens on `addr`.
    pub(crate) fn learn(&self, id: PeerId, addr: SocketAddr) {
        self.record(id, addr, Known::Heard);
    }

    /// We dialled `addr` and `id` answered: the strongest knowledge there is.
    pub(crate) fn proven(&self, id: PeerId, addr: SocketAddr) {
        let source = {
            let inner = self.lock();
            match inner.entries.get(&id) {
                Some(e) if e.addr == addr => match e.known {
                    Known::Gossip(s) => Some(s),
                    _ => None,
                },
                _ => None,
            }
        };
        if let Some(s) = source {
            self.lock().sources.entry(s).or_default().good += 1;
        }
        self.record(id, addr, Known::Proven);
    }

    /// Records every entry of `source`'s `PEERS` answer (second hand), unless `source` is
    /// no longer believed.
    pub(crate) fn learn_all(&self, source: PeerId, peers: &[PeerAddr]) {
        if !self.believes(source) {
            return;
        }
        for p in peers {
            self.record(p.id, p.addr, Known::Gossip(source));
        }
    }

    /// Whether `source`'s gossip is still taken.
    pub(crate) fn believes(&self, source: PeerId) -> bool {
        let inner = self.lock();
        inner.trusted == Some(source) || inner.sources.get(&source).is_none_or(Source::believed)
    }

    /// A dial to `id` at `addr` failed (nothing answered there, or another node did). An
    /// unproven entry goes, counted against its source; a first-hand one, or the owner's
    /// word, stays (the peer may be restarting) for the dialler's backoff to handle, or moves to where its own
    /// hello last said it listens.
    pub(crate) fn unreachable(&self, id: PeerId, addr: SocketAddr) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get(&id).copied() else {
            return;
        };
        if entry.addr != addr {
            return;
        }
        let Known::Gossip(source) = entry.known else {
            // First-hand: kept (it may be restarting), unless its own hello said it moved.
            if let Some(to) = entry.moved {
                inner.put(
                    id,
                    Entry {
                        addr: to,
                        known: Known::Heard,
                        moved: None,
                        ..entry
                    },
                );
            }
            return;
        };
        // The owner's word is kept like a first-hand entry: a peer it named that does not
        // answer yet (still starting) is dialled again after the dialler's backoff, not
        // forgotten until the owner names it again.
        if inner.trusted == Some(source) {
            return;
        }
        inner.take(id);
        if inner.failed.insert((id, addr)) {
            inner.failed_order.push_back((id, addr));
            if inner.failed_order.len() > MAX_FAILED {
                if let Some(old) = inner.failed_order.pop_front() {
                    inner.failed.remove(&old);
                }
            }
        }
        if inner.sources.len() >= MAX_SOURCES && !inner.sources.contains_key(&source) {
            return;
        }
        let score = inner.sources.entry(source).or_default();
        score.bad += 1;
        let believed = score.believed() || inner.trusted == Some(source);
        if !believed {
            // Everything it told us goes with it.
            let told: Vec<PeerId> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.known == Known::Gossip(source))
                .map(|(id, _)| *id)
                .collect();
            for id in told {
                inner.take(id);
            }
        }
    }

    /// We reached ourselves at `addr`: never take it from gossip again.
    pub(crate) fn myself(&self, addr: SocketAddr) {
        let mut inner = self.lock();
        if inner.mine.len() < 64 {
            inner.mine.insert(addr);
        }
    }

    fn record(&self, id: PeerId, addr: SocketAddr, known: Known) {
        if id == self.me || id == PeerId::NONE || addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        let mut inner = self.lock();
        match known {
            Known::Gossip(source) if !inner.accepts_gossip(id, addr, source) => return,
            Known::Gossip(_) => {}
            // A claim never displaces a stronger one by another ID at the same address.
            _ => {
                let holder = inner
                    .by_addr
                    .get(&addr)
                    .and_then(|other| inner.entries.get(other).map(|e| (*other, e.known)));
                if holder.is_some_and(|(other, k)| other != id && k.rank() > known.rank()) {
                    return;
                }
            }
        }
        inner.clock += 1;
        let now = inner.clock;
        let crowded = inner.ips.get(&addr.ip()).is_some_and(|&n| n >= MAX_PER_IP);
        let new = match inner.entries.get(&id).copied() {
            Some(old) => {
                // Gossip about a peer neither overwrites first-hand knowledge nor makes it
                // fresher; first-hand knowledge replaces anything weaker or older.
                if !known.first_hand() && (old.known.first_hand() || old.addr == addr) {
                    return;
                }
                if old.known == Known::Proven && known == Known::Heard && old.addr != addr {
                    // A hello says it moved: believed once the proven address fails.
                    if let Some(e) = inner.entries.get_mut(&id) {
                        e.moved = Some(addr);
                    }
                    return;
                }
                if crowded && old.addr.ip() != addr.ip() {
                    return;
                }
                let seen = if known.first_hand() { now } else { old.seen };
                let known = if known.first_hand() && old.known.rank() > known.rank() && old.addr == addr {
                    old.known
                } else {
                    known
                };
                inner.put(
                    id,
                    Entry {
                        addr,
                        seen,
                        known,
                        moved: None,
                    },
                );
                false
            }
            None => {
                if crowded || !inner.make_room(known) {
                    return;
                }
                inner.put(
                    id,
                    Entry {
                        addr,
                        seen: now,
                        known,
                        moved: None,
                    },
                );
                true
            }
        };
        drop(inner);
        if new {
            self.added.notify_waiters();
        }
    }

    /// Completes when a peer not known before is added after this call (call it before
    /// looking in the book, so an addition in between is not missed).
    pub(crate) fn peer_added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    /// Where `id` was last seen listening.
    pub(crate) fn addr_of(&self, id: PeerId) -> Option<SocketAddr> {
        self.lock().entries.get(&id).map(|e| e.addr)
    }

    /// Whether a peer is known first-hand at `addr`, or it is one of our own addresses.
    pub(crate) fn knows_addr(&self, addr: SocketAddr) -> bool {
        let inner = self.lock();
        inner.by_addr.contains_key(&addr) || inner.mine.contains(&addr)
    }

    /// Every peer known, for the dialler to choose from.
    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        self.lock()
            .entries
            .iter()
            .map(|(id, e)| Candidate {
                id: *id,
                addr: e.addr,
                known: e.known,
            })
            .collect()
    }

    /// Up to `n` first-hand peers other than `except`, chosen at random: a `PEERS`
    /// answer. Random, so that over a few answers every peer is heard of, not only the
    /// latest to arrive; gossip is never passed on.
    pub(crate) fn gossip(&self, n: usize, except: PeerId, rng: &mut impl rand::Rng) -> Vec<PeerAddr> {
        let inner = self.lock();
        let all: Vec<PeerAddr> = inner
            .entries
            .iter()
            .filter(|(id, e)| **id != except && e.known.first_hand())
            .map(|(id, e)| PeerAddr {
                id: *id,
                addr: e.addr,
            })
            .collect();
        drop(inner);
        rand::seq::IndexedRandom::choose_multiple(all.as_slice(), rng, n)
            .copied()
            .collect()
    }

    /// Up to `n` first-hand peers other than `except`, most recently seen first: whom the
    /// owner's census counts.
    pub(crate) fn sample(&self, n: usize, except: PeerId) -> Vec<PeerAddr> {
        self.recent(n, except, true)
    }

    /// Up to `n` peers other than `except`, first-hand or not, most recently seen first:
    /// for a complete peer's announcements, whose dials prove what they reach.
    pub(crate) fn sample_any(&self, n: usize, except: PeerId) -> Vec<PeerAddr> {
        self.recent(n, except, false)
    }

    fn recent(&self, n: usize, except: PeerId, first_hand_only: bool) -> Vec<PeerAddr> {
        let inner = self.lock();
        let mut all: Vec<(&PeerId, &Entry)> = inner
            .entries
            .iter()
            .filter(|(id, e)| **id != except && (e.known.first_hand() || !first_hand_only))
            .collect();
        all.sort_by_key(|(_, e)| std::cmp::Reverse(e.seen));
        all.into_iter()
            .take(n)
            .map(|(id, e)| PeerAddr {
                id: *id,
                addr: e.addr,
            })
            .collect()
    }

    /// How many peers the book holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
