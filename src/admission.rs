//! Which downloaders a peer serves: at most [`MAX_DOWNLOADERS`] fetch sessions of other
//! peers at once (as many as a peer downloads from by default), so that downloaders spread
//! over the swarm instead of piling onto the peers everyone heard of first; one more is
//! told the peer is busy (a `BUSY` hello) and tries another.
//!
//! The seats are shared fairly and go to those who use them:
//! * at most `ceil(MAX_DOWNLOADERS / addresses)` seats per IP address while others want
//!   one, so many identities at one address hold no more than their address's share;
//! * a newcomer may take the seat of a session that has asked for nothing for
//!   [`IDLE_EVICT`], or of an address holding more than its share;
//! * a client that names this peer as its configured download neighbor (the seed's ring)
//!   may use one of [`NEIGHBOR_SEATS`] extra seats, one per address, taken back too when
//!   idle, so a ring's link is not refused because others came first;
//! * a seat is in use while its request is being answered (a chunk written at a slow
//!   node's pace, a long poll held), and idle only from the end of its last answer;
//! * a client that does not listen (port 0) needs no seat for lists and peer lists, but
//!   takes one before its first chunk.
//!
//! [`admit`] is the pure decision; [`Downloaders`] holds the seats of a running node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::DEFAULT_NEIGHBORS;

/// The most fetch sessions of other peers a peer serves at once (beyond the neighbor
/// seats).
pub(crate) const MAX_DOWNLOADERS: usize = DEFAULT_NEIGHBORS;
/// Extra seats for clients that name this peer as their download neighbor.
pub(crate) const NEIGHBOR_SEATS: usize = 4;
/// A session that asked for nothing this long may lose its seat to a newcomer.
pub(crate) const IDLE_EVICT: Duration = Duration::from_secs(2);

/// A seat taken, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seat {
    pub(crate) ip: IpAddr,
    /// In one of the neighbor seats.
    pub(crate) neighbor: bool,
    /// Since its last request.
    pub(crate) idle: Duration,
}

/// What to do with a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Seat it (`neighbor`: in a neighbor seat).
    Yes { neighbor: bool },
    /// Seat it in place of seat `i`, which is closed.
    Evict(usize),
    /// Tell it the peer is busy.
    Busy,
}

/// Whether a newcomer at `ip` (naming this peer as its download neighbor if `neighbor`)
/// gets a seat among `seats`.
pub(crate) fn admit(seats: &[Seat], ip: IpAddr, neighbor: bool) -> Admit {
    let general: Vec<(usize, &Seat)> = seats.iter().enumerate().filter(|(_, s)| !s.neighbor).collect();
    if neighbor && !seats.iter().any(|s| s.neighbor && s.ip == ip) {
        let neighbors: Vec<(usize, &Seat)> = seats.iter().enumerate().filter(|(_, s)| s.neighbor).collect();
        if neighbors.len() < NEIGHBOR_SEATS {
            return Admit::Yes { neighbor: true };
        }
        // A neighbor seat its holder does not use goes to one that will.
        if let Some((i, _)) = neighbors
            .iter()
            .filter(|(_, s)| s.idle >= IDLE_EVICT)
            .max_by_key(|(_, s)| s.idle)
        {
            return Admit::Evict(*i);
        }
    }
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    for (_, s) in &general {
        *per_ip.entry(s.ip).or_default() += 1;
    }
    let mine = per_ip.get(&ip).copied().unwrap_or(0);
    let addresses = per_ip.len() + usize::from(mine == 0);
    let share = MAX_DOWNLOADERS.div_ceil(addresses.max(1));
    if general.len() < MAX_DOWNLOADERS && mine < share {
        return Admit::Yes { neighbor: false };
    }
    // A seat to free: an address over its share (when the newcomer's is under it) first,
    // then whoever has been idle longest past the limit.
    let crowded = per_ip
        .iter()
        .filter(|(a, n)| **n > share && **a != ip)
        .max_by_key(|(_, n)| **n)
        .map(|(a, _)| *a);
    let victim = match crowded.filter(|_| mine < share) {
        Some(a) => general
            .iter()
            .filter(|(_, s)| s.ip == a)
            .max_by_key(|(_, s)| s.idle),
        None => general
            .iter()
            .filter(|(_, s)| s.idle >= IDLE_EVICT && (mine < share || s.ip == ip))
            .max_by_key(|(_, s)| s.idle),
    };
    victim.map_or(Admit::Busy, |(i, _)| Admit::Evict(*i))
}

#[derive(Debug)]
struct Held {
    key: u64,
    ip: IpAddr,
    neighbor: bool,
    last: Instant,
    /// Answering a request right now (a chunk being written, a long poll held): in use.
    busy: bool,
    evict: CancellationToken,
}

/// The seats of a running peer.
#[derive(Debug, Default)]
pub(crate) struct Downloaders {
    seats: Mutex<(u64, Vec<Held>)>,
}

/// A seat held by one session; given back when dropped. Its token is cancelled if the
/// seat is taken from it.
#[derive(Debug)]
pub(crate) struct Ticket {
    owner: Arc<Downloaders>,
    key: u64,
    pub(crate) evicted: CancellationToken,
}

impl Downloaders {
    fn lock(&self) -> MutexGuard<'_, (u64, Vec<Held>)> {
        self.seats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A seat for a session from `ip`, or `None`: busy.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, neighbor: bool) -> Option<Ticket> {
        self.seat(ip, neighbor, true)
    }

    /// A free seat for `ip`, taking none from anyone: for a peer we offer to serve, which
    /// may not take the offer.
    pub(crate) fn admit_free(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        self.seat(ip, false, false)
    }

    fn seat(self: &Arc<Self>, ip: IpAddr, neighbor: bool, may_evict: bool) -> Option<Ticket> {
        let mut guard = self.lock();
        let (next, seats) = &mut *guard;
        let now = Instant::now();
        let view: Vec<Seat> = seats
            .iter()
            .map(|h| Seat {
                ip: h.ip,
                neighbor: h.neighbor,
                idle: if h.busy {
                    Duration::ZERO
                } else {
                    now.saturating_duration_since(h.last)
                },
            })
            .collect();
        let neighbor = match admit(&view, ip, neighbor) {
            Admit::Busy => return None,
            Admit::Evict(_) if !may_evict => return None,
            Admit::Yes { neighbor } => neighbor,
            Admit::Evict(i) => {
                let old = seats.swap_remove(i);
                old.evict.cancel();
                old.neighbor
            }
        };
        *next += 1;
        let evicted = CancellationToken::new();
        seats.push(Held {
            key: *next,
            ip,
            neighbor,
            last: now,
            busy: false,
            evict: evicted.clone(),
        });
        Some(Ticket {
            owner: Arc::clone(self),
            key: *next,
            evicted,
        })
    }
}

impl Ticket {
    /// The session is answering a request: its seat is in use until the guard goes.
    pub(crate) fn serving(&self) -> InUse<'_> {
        self.set(true);
        InUse(self)
    }

    fn set(&self, busy: bool) {
        if let Some(h) = self.owner.lock().1.iter_mut().find(|h| h.key == self.key) {
            h.last = Instant::now();
            h.busy = busy;
        }
    }
}

/// A seat in use while a request is answered; idle again (from now) when dropped.
#[derive(Debug)]
pub(crate) struct InUse<'a>(&'a Ticket);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.owner.lock().1.retain(|h| h.key != self.key);
    }
}
