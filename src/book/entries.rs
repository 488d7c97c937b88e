//! The book's entries and the indexes kept beside them (the first-hand owner of each
//! address, each source's count of gossip, the vouched count, entries per IP), changed only
//! through [`Inner::put`] and [`Inner::take`] so they never drift apart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use super::{Known, Source, MAX_KNOWN, MAX_PER_SOURCE};
use crate::identity::PeerId;

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) addr: SocketAddr,
    pub(super) seen: u64,
    pub(super) known: Known,
    /// A hello's claim that a proven peer now listens elsewhere: taken when the proven
    /// address stops answering (a claim alone does not move a proven peer).
    pub(super) moved: Option<SocketAddr>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) entries: HashMap<PeerId, Entry>,
    /// The first-hand entry at each address.
    pub(super) by_addr: HashMap<SocketAddr, PeerId>,
    /// How many gossip entries each source has in the book.
    pub(super) per_source: HashMap<PeerId, usize>,
    /// Entries known first-hand or from the trusted source.
    pub(super) vouched: usize,
    /// How many entries are at each IP address.
    pub(super) ips: HashMap<std::net::IpAddr, usize>,
    pub(super) sources: HashMap<PeerId, Source>,
    /// Gossiped (ID, address) pairs that failed to answer as named.
    pub(super) failed: HashSet<(PeerId, SocketAddr)>,
    pub(super) failed_order: VecDeque<(PeerId, SocketAddr)>,
    /// Addresses where we reached ourselves.
    pub(super) mine: HashSet<SocketAddr>,
    /// A source whose word is never doubted (the owner).
    pub(super) trusted: Option<PeerId>,
    pub(super) clock: u64,
}

impl Inner {
    pub(super) fn accepts_gossip(&self, id: PeerId, addr: SocketAddr, source: PeerId) -> bool {
        if self.mine.contains(&addr) || self.failed.contains(&(id, addr)) {
            return false;
        }
        // Two nodes cannot listen on one address: a first-hand owner of it wins.
        if self.by_addr.get(&addr).is_some_and(|other| *other != id) {
            return false;
        }
        let from_source = self.per_source.get(&source).copied().unwrap_or(0);
        from_source < MAX_PER_SOURCE || self.entries.contains_key(&id)
    }

    pub(super) fn vouches(&self, e: &Entry) -> bool {
        match e.known {
            Known::Gossip(source) => self.trusted == Some(source),
            _ => true,
        }
    }

    pub(super) fn put(&mut self, id: PeerId, entry: Entry) {
        self.take(id);
        if self.vouches(&entry) {
            self.vouched += 1;
        }
        *self.ips.entry(entry.addr.ip()).or_default() += 1;
        match entry.known {
            Known::Gossip(source) => *self.per_source.entry(source).or_default() += 1,
            _ => {
                if let Some(old) = self.by_addr.insert(entry.addr, id) {
                    // Someone else was heard there before: the newer word wins.
                    if old != id {
                        self.take(old);
                        self.by_addr.insert(entry.addr, id);
                    }
                }
            }
        }
        self.entries.insert(id, entry);
    }

    pub(super) fn take(&mut self, id: PeerId) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if self.vouches(&entry) {
            self.vouched -= 1;
        }
        if let Some(n) = self.ips.get_mut(&entry.addr.ip()) {
            *n -= 1;
            if *n == 0 {
                self.ips.remove(&entry.addr.ip());
            }
        }
        match entry.known {
            Known::Gossip(source) => {
                if let Some(n) = self.per_source.get_mut(&source) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_source.remove(&source);
                    }
                }
            }
            _ => {
                if self.by_addr.get(&entry.addr) == Some(&id) {
                    self.by_addr.remove(&entry.addr);
                }
            }
        }
        Some(entry)
    }

    /// Frees a place for a new entry of kind `known` if the book is full: the oldest
    /// gossip first, then the oldest heard entry; proven entries only for another proven.
    /// False if there is no room for it.
    pub(super) fn make_room(&mut self, known: Known) -> bool {
        if self.entries.len() < MAX_KNOWN {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.known.rank() <= known.rank())
            .min_by_key(|(_, e)| (e.known.rank(), e.seen))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.take(id);
                true
            }
            None => false,
        }
    }
}
