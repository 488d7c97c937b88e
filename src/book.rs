//! The address book: the peers a node knows of, keyed by [`PeerId`], each with the last
//! address it was seen listening on.
//!
//! Fed by the hellos of incoming connections (the sender's IP and announced listening
//! port), by the hellos of connections we open, and by `PEERS` answers. A peer that comes
//! back from another address is the same entry with a new address. What a peer's own hello
//! says (first hand) outranks gossip: a `PEERS` answer adds peers we do not know and may
//! correct gossip, but never overwrites or refreshes a first-hand address, so a stale
//! address cannot flap back after a peer moved. Bounded: beyond [`MAX_KNOWN`] entries the
//! longest-unseen is forgotten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::identity::PeerId;
use crate::wire::PeerAddr;

/// The most peers a book remembers.
pub const MAX_KNOWN: usize = 1024;

/// The peers a node knows.
#[derive(Debug)]
pub struct AddressBook {
    me: PeerId,
    entries: Mutex<HashMap<PeerId, Entry>>,
    /// Signalled whenever a peer not in the book before is added.
    added: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddr,
    seen: Instant,
    first_hand: bool,
}

impl AddressBook {
    /// An empty book for the node `me` (never listed in it).
    pub fn new(me: PeerId) -> AddressBook {
        AddressBook {
            me,
            entries: Mutex::new(HashMap::new()),
            added: tokio::sync::Notify::new(),
        }
    }

    /// This node's ID.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// Records that `id` listens on `addr` now, first hand (from its own hello). Ignores
    /// this node, unnamed peers and port 0.
    pub fn learn(&self, id: PeerId, addr: SocketAddr) {
        self.record(id, addr, true);
    }

    /// Records every entry of a `PEERS` answer (second hand).
    pub fn learn_all(&self, peers: &[PeerAddr]) {
        for p in peers {
            self.record(p.id, p.addr, false);
        }
    }

    fn record(&self, id: PeerId, addr: SocketAddr, first_hand: bool) {
        if id == self.me || id == PeerId::NONE || addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        let mut entries = self.lock();
        let new = !entries.contains_key(&id);
        if let Some(known) = entries.get(&id) {
            if known.first_hand && !first_hand {
                return;
            }
        } else if entries.len() >= MAX_KNOWN {
            if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.seen).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        let seen = match (first_hand, entries.get(&id)) {
            // Gossip about a peer does not make it fresher.
            (false, Some(known)) => known.seen,
            _ => Instant::now(),
        };
        entries.insert(
            id,
            Entry {
                addr,
                seen,
                first_hand,
            },
        );
        drop(entries);
        if new {
            self.added.notify_waiters();
        }
    }

    /// Completes when a peer not known before is added after this call (call it before
    /// looking in the book, so an addition in between is not missed).
    pub fn peer_added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    /// Where `id` was last seen listening.
    pub fn addr_of(&self, id: PeerId) -> Option<SocketAddr> {
        self.lock().get(&id).map(|e| e.addr)
    }

    /// Up to `n` peers other than `except`, most recently seen first.
    pub fn sample(&self, n: usize, except: PeerId) -> Vec<PeerAddr> {
        let entries = self.lock();
        let mut all: Vec<(&PeerId, &Entry)> = entries.iter().filter(|(id, _)| **id != except).collect();
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
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
