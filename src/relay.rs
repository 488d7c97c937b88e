//! A reachable peer as a relay for nodes nobody can dial: reservations, introductions and
//! circuits (PROTOCOL.md, "Relays and hole punching").
//!
//! A node behind a NAT keeps a **reservation** here: a connection (hello role `RELAY`,
//! then `RESERVE`) the relay holds open. The relay **introduces** the nodes it holds
//! reservations for to each other (`INTRODUCE`, to both at once): where each one's
//! reservation comes from (the NAT's mapping of the port it reserved from, which is where
//! a hole can be punched) and, for two behind the same address, where the other listens on
//! their own network. They then try to connect directly; when they cannot, both come back
//! with `RELAY(nonce)` and the relay joins their two connections into a **circuit**,
//! forwarding the bytes as they are. Those bytes are the two nodes' own Noise session
//! (they run the handshake end to end, through the circuit): the relay cannot read or
//! change them unnoticed.
//!
//! Everything is bounded: [`MAX_RESERVATIONS`] (and [`RESERVATIONS_PER_IP`]), introductions
//! to [`INTRODUCE_TO`] others at a time and the same two at most once per
//! [`REINTRODUCE`], [`MAX_CIRCUITS`] circuits at once, each for [`CIRCUIT_TIME`] and
//! [`CIRCUIT_BYTES`] at most, all of them together at [`RELAY_RATE`] or half the node's
//! `--upload-limit`, whichever is less. Forwarding is uploading: it counts against the cap
//! too, paid by the node's own chunks after it (a circuit's messages are not held up
//! behind them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::debug;

use crate::connection::Connection;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::rate::{Limits, RateLimit};
use crate::wire::relay::Introduction;
use crate::wire::Message;

mod splice;
#[cfg(test)]
mod tests;

/// The most reservations a relay holds.
pub(crate) const MAX_RESERVATIONS: usize = 32;
/// The most reservations the owner holds: it only introduces (an idle connection each),
/// and in a swarm where no peer can be dialled every peer meets the others there. Well
/// below the owner's connections (256), as each such peer fetches over one more.
pub(crate) const MAX_INTRODUCED: usize = 96;
/// The most reservations from one IP address (one NAT, many nodes behind it).
pub(crate) const RESERVATIONS_PER_IP: usize = 8;
/// How many others a reservation is introduced to at a time.
pub(crate) const INTRODUCE_TO: usize = 4;
/// How often the same two are introduced at most (a pair whose punching failed tries
/// again this soon; peers already linked directly ignore the introduction).
pub(crate) const REINTRODUCE: Duration = Duration::from_secs(30);
/// How often a relay looks for introductions to make for a reservation.
pub(crate) const INTRODUCE_EVERY: Duration = Duration::from_secs(15);
/// The most introductions whose nonce is still good, and pairs remembered as met.
const MAX_PAIRS: usize = 1024;
const MAX_MET: usize = 4096;
/// The most circuits one node takes part in at once.
pub(crate) const CIRCUITS_PER_PEER: usize = 2;
/// How long an introduction's nonce opens a circuit.
pub(crate) const PAIR_TIME: Duration = Duration::from_secs(30);
/// How long the first side of a circuit waits for the second.
pub(crate) const CIRCUIT_WAIT: Duration = Duration::from_secs(10);
/// The most circuits at once.
pub(crate) const MAX_CIRCUITS: usize = 8;
/// How long one circuit lasts at most (then its nodes are introduced again, and may punch).
pub(crate) const CIRCUIT_TIME: Duration = Duration::from_secs(120);
/// The most bytes one circuit carries, both ways together.
pub(crate) const CIRCUIT_BYTES: u64 = 64 << 20;
/// Every circuit's bytes together, per second.
pub(crate) const RELAY_RATE: u64 = 4_000_000;
/// How long a reservation may stay silent (its holder sends `RESERVE` again well within).
pub(crate) const RESERVATION_IDLE: Duration = Duration::from_secs(120);
/// How long a client has for its first message.
const FIRST_MESSAGE: Duration = Duration::from_secs(10);

/// A reservation held, as the relay knows it.
#[derive(Debug)]
struct Held {
    seen: SocketAddr,
    local: SocketAddr,
    tell: mpsc::Sender<Introduction>,
    serial: u64,
}

/// An introduction whose nonce may open a circuit.
#[derive(Debug, Clone, Copy)]
struct Pair {
    initiator: PeerId,
    responder: PeerId,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    held: HashMap<PeerId, Held>,
    pairs: HashMap<u64, Pair>,
    /// When each two (the smaller ID first) were last introduced.
    met: HashMap<(PeerId, PeerId), Instant>,
    /// The first side of a circuit, waiting for the second.
    waiting: HashMap<u64, (PeerId, oneshot::Sender<Joining>)>,
    /// How many circuits each node takes part in.
    in_circuits: HashMap<PeerId, usize>,
    serial: u64,
}

/// A node's relay: whom it holds reservations for, and its circuits.
#[derive(Debug)]
pub(crate) struct Relay {
    /// Whether it forwards circuits (the owner only introduces: forwarding would cost it
    /// as much upload as serving the chunks itself).
    forwards: bool,
    /// The most reservations it holds.
    max_held: usize,
    inner: Mutex<Inner>,
    circuits: Arc<Semaphore>,
    rate: RateLimit,
    nonce: AtomicU64,
}

impl Relay {
    /// A relay for a node whose upload is capped at `upload` bytes per second, if it is:
    /// forwarding gets [`RELAY_RATE`], or half the cap if that is less.
    pub(crate) fn new(upload: Option<u64>) -> Relay {
        let rate = upload.map_or(RELAY_RATE, |cap| RELAY_RATE.min(cap / 2));
        Relay {
            forwards: true,
            max_held: MAX_RESERVATIONS,
            inner: Mutex::default(),
            circuits: Arc::new(Semaphore::new(MAX_CIRCUITS)),
            rate: RateLimit::new(rate),
            nonce: AtomicU64::new(rand::random()),
        }
    }
}

/// A reservation taken: gone from the relay when dropped.
struct Reservation<'a> {
    relay: &'a Relay,
    peer: PeerId,
    serial: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // Who met whom stays (it expires with time): a node that reserves again is not
        // introduced again sooner.
        let mut inner = self.relay.lock();
        if inner
            .held
            .get(&self.peer)
            .is_some_and(|h| h.serial == self.serial)
        {
            inner.held.remove(&self.peer);
        }
    }
}

impl Relay {
    /// A relay that introduces and forwards nothing (the owner's).
    pub(crate) fn introducer() -> Relay {
        Relay {
            forwards: false,
            max_held: MAX_INTRODUCED,
            ..Relay::new(None)
        }
    }

    /// Whether `peer` holds a reservation here from `ip`.
    pub(crate) fn holds(&self, peer: PeerId, ip: std::net::IpAddr) -> bool {
        self.lock().held.get(&peer).is_some_and(|h| h.seen.ip() == ip)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `peer`'s reservation (replacing an earlier one of its), unless the relay is
    /// full or its address holds its share already.
    fn reserve(
        &self,
        peer: PeerId,
        seen: SocketAddr,
        local: SocketAddr,
    ) -> Option<(Reservation<'_>, mpsc::Receiver<Introduction>)> {
        let mut inner = self.lock();
        // Its own earlier reservation does not count against it (but it may not move one
        // onto an address that holds its share).
        let others = inner.held.iter().filter(|(id, _)| **id != peer);
        let same_ip = others.clone().filter(|(_, h)| same_network(h.seen, seen)).count();
        if others.count() >= self.max_held || same_ip >= RESERVATIONS_PER_IP {
            return None;
        }
        inner.serial += 1;
        let serial = inner.serial;
        let (tell, told) = mpsc::channel(INTRODUCE_TO * 2);
        inner.held.insert(
            peer,
            Held {
                seen,
                local,
                tell,
                serial,
            },
        );
        Some((
            Reservation {
                relay: self,
                peer,
                serial,
            },
            told,
        ))
    }

    /// Introduces `peer` to up to [`INTRODUCE_TO`] others it has not met through us for
    /// [`REINTRODUCE`]; `peer` opens the connections.
    fn introduce(&self, peer: PeerId) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.pairs.retain(|_, p| now.duration_since(p.at) < PAIR_TIME);
        inner.met.retain(|_, at| now.duration_since(*at) < REINTRODUCE);
        let Some(mine) = inner.held.get(&peer).map(|h| (h.seen, h.local)) else {
            return;
        };
        if inner.pairs.len() >= MAX_PAIRS || inner.met.len() >= MAX_MET {
            return;
        }
        // A random few of those it has not met lately: over the rounds, everyone.
        let unmet = inner
            .held
            .iter()
            .filter(|(id, _)| **id != peer && !inner.met.contains_key(&ordered(peer, **id)))
            .map(|(id, h)| (*id, h.seen, h.local));
        let others: Vec<(PeerId, SocketAddr, SocketAddr)> =
            rand::seq::IteratorRandom::choose_multiple(unmet, &mut rand::rng(), INTRODUCE_TO);
        for (other, seen, local) in others {
            let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
            // Their own network's addresses only for two behind the same one.
            let lan = seen.ip() == mine.0.ip();
            let to_peer = Introduction {
                nonce,
                initiator: true,
                peer: other,
                seen,
                local: lan.then_some(local),
            };
            let to_other = Introduction {
                nonce,
                initiator: false,
                peer,
                seen: mine.0,
                local: lan.then_some(mine.1),
            };
            // Both told, or neither: one alone would punch at nobody.
            let room = [peer, other]
                .iter()
                .all(|who| inner.held.get(who).is_some_and(|h| h.tell.capacity() > 0));
            if room {
                for (who, intro) in [(peer, to_peer), (other, to_other)] {
                    if let Some(h) = inner.held.get(&who) {
                        let _ = h.tell.try_send(intro);
                    }
                }
                inner.met.insert(ordered(peer, other), now);
                // Only a relay that forwards has circuits for the nonce to open.
                if !self.forwards {
                    continue;
                }
                inner.pairs.insert(
                    nonce,
                    Pair {
                        initiator: peer,
                        responder: other,
                        at: now,
                    },
                );
            }
        }
    }

    /// Where `peer`'s side of circuit `nonce` goes: to the side already waiting, or to wait
    /// for the other. `None` if `nonce` names no introduction of `peer`'s, or this side
    /// came already.
    fn circuit(&self, nonce: u64, peer: PeerId) -> Option<Side> {
        let mut inner = self.lock();
        let pair = inner.pairs.get(&nonce).copied()?;
        if Instant::now().duration_since(pair.at) >= PAIR_TIME
            || (peer != pair.initiator && peer != pair.responder)
        {
            return None;
        }
        match inner.waiting.remove(&nonce) {
            Some((first, to)) if first != peer => {
                inner.pairs.remove(&nonce);
                Some(Side::Second(to))
            }
            Some(first) => {
                inner.waiting.insert(nonce, first);
                None
            }
            None => {
                let (to, from) = oneshot::channel();
                inner.waiting.insert(nonce, (peer, to));
                Some(Side::First(from))
            }
        }
    }

    fn forget_waiting(&self, nonce: u64) {
        self.lock().waiting.remove(&nonce);
    }

    /// Serves `conn` from `peer` (its hello said `RELAY`; ours is sent): a reservation, or
    /// one side of a circuit. `usable` says whether this node may still relay (it can be
    /// dialled).
    pub(crate) async fn serve(
        &self,
        mut conn: Connection,
        peer: PeerId,
        limits: &Limits,
        usable: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), PeerError> {
        match conn
            .read_message(FIRST_MESSAGE, "waiting for RESERVE or RELAY")
            .await?
        {
            None => Ok(()),
            Some(Message::Reserve(local)) => self.hold(conn, peer, local, usable).await,
            Some(Message::Relay(nonce)) => self.join(conn, peer, nonce, limits).await,
            Some(other) => Err(PeerError::UnexpectedMessage {
                state: "waiting for RESERVE or RELAY",
                got: other.name(),
            }),
        }
    }

    async fn hold(
        &self,
        mut conn: Connection,
        peer: PeerId,
        local: SocketAddr,
        usable: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), PeerError> {
        let seen = conn.remote();
        let Some((_held, mut told)) = self.reserve(peer, seen, local) else {
            debug!(%seen, "relay: no room for another reservation");
            return Ok(());
        };
        conn.write_message(&Message::Reserved(seen)).await?;
        debug!(%seen, "relay: reservation taken");
        self.introduce(peer);
        let mut round = tokio::time::interval(INTRODUCE_EVERY);
        round.reset();
        // One deadline for the holder's next word, kept across the loop's turns.
        let mut heard = tokio::time::Instant::now();
        loop {
            let silent = (heard + RESERVATION_IDLE).saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                intro = told.recv() => match intro {
                    Some(intro) => conn.write_message(&Message::Introduce(intro)).await?,
                    // Replaced by a newer reservation of the same node.
                    None => return Ok(()),
                },
                _ = round.tick() => {
                    // A node nobody can reach any more is no relay.
                    if !usable() {
                        return Ok(());
                    }
                    self.introduce(peer);
                }
                read = conn.read_message(silent, "holding a reservation") => match read? {
                    None => return Ok(()),
                    Some(Message::Reserve(_)) => {
                        heard = tokio::time::Instant::now();
                        conn.write_message(&Message::Reserved(seen)).await?;
                    }
                    Some(other) => return Err(PeerError::UnexpectedMessage {
                        state: "holding a reservation",
                        got: other.name(),
                    }),
                },
            }
        }
    }

    async fn join(
        &self,
        conn: Connection,
        peer: PeerId,
        nonce: u64,
        limits: &Limits,
    ) -> Result<(), PeerError> {
        if !self.forwards {
            debug!("relay: this node introduces, it forwards nothing");
            return Ok(());
        }
        let first = match self.circuit(nonce, peer) {
            None => return Err(PeerError::Relay("RELAY with a nonce of no introduction of its")),
            Some(Side::Second(to)) => {
                // The first side's task forwards for both; this one keeps its connection's
                // place (the node's limits count it) until the circuit ends.
                let (done, ended) = oneshot::channel::<()>();
                if to.send((conn, done)).is_ok() {
                    let _ = ended.await;
                }
                return Ok(());
            }
            Some(Side::First(from)) => from,
        };
        let (other, _done) = match tokio::time::timeout(CIRCUIT_WAIT, first).await {
            Ok(Ok(other)) => other,
            _ => {
                self.forget_waiting(nonce);
                debug!("relay: the other side of a circuit never came");
                return Ok(());
            }
        };
        // Both came: a circuit's place, if there is one for both.
        let Some(_place) = self.take_place(&[peer, other.remote_id().unwrap_or(PeerId::NONE)]) else {
            debug!("relay: no circuit free for these two");
            return Ok(());
        };
        let (mut a, mut b) = (conn, other);
        a.write_message(&Message::Relaying).await?;
        b.write_message(&Message::Relaying).await?;
        let (a, b) = (a.into_raw()?, b.into_raw()?);
        splice::forward(a, b, &self.rate, limits).await;
        Ok(())
    }

    /// A circuit's place for `peers`: within [`MAX_CIRCUITS`], and [`CIRCUITS_PER_PEER`]
    /// for each of them.
    fn take_place(&self, peers: &[PeerId]) -> Option<Place<'_>> {
        let permit = Arc::clone(&self.circuits).try_acquire_owned().ok()?;
        let mut inner = self.lock();
        if peers
            .iter()
            .any(|p| inner.in_circuits.get(p).copied().unwrap_or(0) >= CIRCUITS_PER_PEER)
        {
            return None;
        }
        for p in peers {
            *inner.in_circuits.entry(*p).or_default() += 1;
        }
        Some(Place {
            relay: self,
            peers: peers.to_vec(),
            _permit: permit,
        })
    }
}

/// A circuit's place, given back when dropped.
struct Place<'a> {
    relay: &'a Relay,
    peers: Vec<PeerId>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut inner = self.relay.lock();
        for p in &self.peers {
            if let Some(n) = inner.in_circuits.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    inner.in_circuits.remove(p);
                }
            }
        }
    }
}

/// The second side of a circuit, handed to the first: its connection, and what tells it
/// the circuit ended.
type Joining = (Connection, oneshot::Sender<()>);

/// One side of a circuit: the first waits for the second's connection.
enum Side {
    First(oneshot::Receiver<Joining>),
    Second(oneshot::Sender<Joining>),
}

/// Whether two addresses count as one place: the same IPv4 address, or the same IPv6 /64
/// (a host is given a whole /64).
fn same_network(a: SocketAddr, b: SocketAddr) -> bool {
    match (a.ip().to_canonical(), b.ip().to_canonical()) {
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        (a, b) => a == b,
    }
}

fn ordered(a: PeerId, b: PeerId) -> (PeerId, PeerId) {
    if a.0 <= b.0 {
        (a, b)
    } else {
        (b, a)
    }
}
