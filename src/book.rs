//! The address book: the peers a node knows of, keyed by [`PeerId`], each with the last
//! address it was seen listening on.
//!
//! Fed by the hellos of incoming connections (the sender's IP and announced listening
//! port), by the hellos of connections we open, and by `PEERS` answers. A peer that comes
//! back from another address is the same entry with a new address. Bounded: beyond
//! [`MAX_KNOWN`] entries the longest-unseen is forgotten.

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
    entries: Mutex<HashMap<PeerId, (SocketAddr, Instant)>>,
}

impl AddressBook {
    /// An empty book for the node `me` (never listed in it).
    pub fn new(me: PeerId) -> AddressBook {
        AddressBook {
            me,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// This node's ID.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// Records that `id` listens on `addr` now. Ignores this node, unnamed peers and
    /// port 0.
    pub fn learn(&self, id: PeerId, addr: SocketAddr) {
        if id == self.me || id == PeerId::NONE || addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_KNOWN && !entries.contains_key(&id) {
            if let Some(oldest) = entries.iter().min_by_key(|(_, (_, seen))| *seen).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(id, (addr, Instant::now()));
    }

    /// Records every entry of a `PEERS` answer.
    pub fn learn_all(&self, peers: &[PeerAddr]) {
        for p in peers {
            self.learn(p.id, p.addr);
        }
    }

    /// Where `id` was last seen listening.
    pub fn addr_of(&self, id: PeerId) -> Option<SocketAddr> {
        self.lock().get(&id).map(|(addr, _)| *addr)
    }

    /// Up to `n` peers other than `except`, most recently seen first.
    pub fn sample(&self, n: usize, except: PeerId) -> Vec<PeerAddr> {
        let entries = self.lock();
        let mut all: Vec<(&PeerId, &(SocketAddr, Instant))> =
            entries.iter().filter(|(id, _)| **id != except).collect();
        all.sort_by_key(|(_, (_, seen))| std::cmp::Reverse(*seen));
        all.into_iter()
            .take(n)
            .map(|(id, (addr, _))| PeerAddr { id: *id, addr: *addr })
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, (SocketAddr, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
