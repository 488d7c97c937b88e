//! Neighbor slots: each slot task keeps one neighbor, fetches from it, and moves on to
//! another known peer when its neighbor cannot be reached, is banned, serves a peer
//! another slot already has, or has had nothing to give for [`ROTATE_AFTER`]. Slot 0 may
//! be pinned to the neighbor named on the command line; a pinned slot never moves.

use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand::SeedableRng;
use tracing::debug;

use super::download::{
    lock, Claim, Ctx, GIVE_UP_AFTER, LIST_WAIT, PEX_EVERY, POLL, ROTATE_AFTER, ROTATE_USELESS,
};
use super::fetch::FetchLink;
use super::picker;
use super::server::{Server, Target};
use crate::activity::Source;
use crate::book::MAX_KNOWN;
use crate::chunk_set::ChunkSet;
use crate::config::Endpoint;
use crate::error::Error;
use crate::identity::PeerId;

impl Ctx {
    /// A peer from the book for `slot`: not this peer, the owner, banned, or in a slot.
    fn assign(&self, slot: usize) -> Option<PeerId> {
        let candidates = self.me.book.sample(MAX_KNOWN, self.me.id);
        let mut shared = lock(&self.shared);
        let free: Vec<PeerId> = candidates
            .iter()
            .map(|p| p.id)
            .filter(|id| {
                Some(*id) != shared.owner_id
                    && !shared.banned.contains(id)
                    && !shared.assigned.contains(&Some(*id))
            })
            .collect();
        let id = *free.choose(&mut rand::rng())?;
        shared.assigned[slot] = Some(id);
        Some(id)
    }

    /// Frees `slot`; a banned peer is never assigned again.
    fn release(&self, slot: usize, server: &Server) {
        self.forget_offer(slot, server);
        lock(&self.shared).assigned[slot] = None;
    }

    /// Drops `slot`'s old neighbor's offer when the slot moves on (a banned one stays
    /// banned).
    fn forget_offer(&self, slot: usize, old: &Server) {
        let mut shared = lock(&self.shared);
        shared.offers[slot] = None;
        if let (true, Some(id)) = (old.is_banned(), old.peer_id()) {
            shared.banned.insert(id);
        }
    }

    /// Records which peer `slot` reached; false if another slot already serves it (an
    /// unpinned slot then gives it up).
    fn bind(&self, slot: usize, id: PeerId, pinned: bool) -> bool {
        let mut shared = lock(&self.shared);
        let elsewhere = shared
            .assigned
            .iter()
            .enumerate()
            .any(|(i, a)| i != slot && *a == Some(id));
        if elsewhere && !pinned {
            return false;
        }
        shared.assigned[slot] = Some(id);
        true
    }

    pub(super) async fn slot_loop(
        self: Arc<Self>,
        slot: usize,
        pinned: Option<Endpoint>,
    ) -> Result<(), Error> {
        let is_pinned = pinned.is_some();
        let mut rng = SmallRng::from_os_rng();
        let mut server = pinned.map(|e| Server::new(Target::Endpoint(e), None, "download neighbor"));
        let mut last_pex: Option<Instant> = None;
        let mut last_useful = Instant::now();
        // How many peers the book held when this slot's neighbor was chosen.
        let mut book_seen = 0;
        while self.running() {
            let Some(s) = server.as_mut() else {
                // Before looking, so a peer learned in between still wakes this slot.
                let added = self.me.book.peer_added();
                book_seen = self.me.book.len();
                server = self
                    .assign(slot)
                    .map(|id| Server::new(Target::Peer(id), None, "neighbor"));
                last_pex = None;
                last_useful = Instant::now();
                if server.is_none() && !self.idle_or(POLL * 3, added).await {
                    break;
                }
                continue;
            };
            let hopeless = s.is_banned() || (s.link.is_none() && s.failures() >= GIVE_UP_AFTER);
            if hopeless && !is_pinned {
                self.release(slot, s);
                server = None;
                continue;
            }
            if !s.connect(&self.holdings, &self.me).await {
                lock(&self.shared).offers[slot] = None;
                if !self.idle(POLL).await {
                    break;
                }
                continue;
            }
            let Some(id) = s.peer_id() else { continue };
            if s.link.as_ref().is_some_and(FetchLink::is_owner) {
                // The owner is not a neighbor (the owner task asks it on fallback).
                lock(&self.shared).owner_id = Some(id);
                if !is_pinned {
                    self.release(slot, s);
                    server = None;
                }
                if !self.idle(POLL).await {
                    break;
                }
                continue;
            }
            if !self.bind(slot, id, is_pinned) {
                self.release(slot, s);
                server = None;
                continue;
            }
            lock(&self.shared).fallback.connected(Instant::now());
            if last_pex.is_none_or(|t| t.elapsed() >= PEX_EVERY) {
                last_pex = Some(Instant::now());
                self.exchange_peers(s).await;
            }
            let fetched = self.neighbor_turn(slot, s, &mut rng).await?;
            // A neighbor whose list holds nothing this peer lacks is given up sooner than
            // one whose chunks are merely being fetched by other slots.
            let useless = s
                .link
                .as_ref()
                .is_some_and(|l| l.has_list() && self.holdings.snapshot().wanted_from(l.list()).is_empty());
            let patience = if useless { ROTATE_USELESS } else { ROTATE_AFTER };
            if fetched {
                last_useful = Instant::now();
            } else if !is_pinned && last_useful.elapsed() >= patience {
                // Nothing from this one for a while: meet another known peer, if any.
                if self.rotate(slot, &mut server) {
                    last_pex = None;
                }
                last_useful = Instant::now();
            }
            let known = self.me.book.len();
            if !is_pinned && known > book_seen {
                // The book has grown since this neighbor was chosen (peers still joining).
                // Move with probability (known - seen) / known, so the choice stays uniform
                // over every peer known: otherwise the first peers to join would be every
                // slot's neighbor and the last ones would serve nobody.
                let stay = rng.random_range(0..known) < book_seen;
                book_seen = known;
                if !stay && self.rotate(slot, &mut server) {
                    last_pex = None;
                    last_useful = Instant::now();
                }
            }
            if !fetched && !self.idle(POLL).await {
                break;
            }
        }
        if let Some(s) = &server {
            self.release(slot, s);
        }
        Ok(())
    }

    /// Moves `slot` from its neighbor to another known peer no slot has, if there is one.
    fn rotate(&self, slot: usize, server: &mut Option<Server>) -> bool {
        let Some(next) = self.assign(slot) else {
            return false;
        };
        debug!(slot, "rotating to another neighbor");
        if let Some(old) = server.take() {
            self.forget_offer(slot, &old);
        }
        *server = Some(Server::new(Target::Peer(next), None, "neighbor"));
        true
    }

    /// Fetches from a connected neighbor what its last list offers, first asking for a
    /// newer list (a long poll) when it offers nothing; returns whether a new chunk was
    /// stored.
    async fn neighbor_turn(&self, slot: usize, s: &mut Server, rng: &mut SmallRng) -> Result<bool, Error> {
        let Some(mut list) = s.link.as_ref().map(|l| l.list().clone()) else {
            return Ok(false);
        };
        let mut first = self.claim_from(&list, rng, true);
        if first.is_none() {
            if !self.refresh_list(slot, s).await {
                return Ok(false);
            }
            match s.link.as_ref() {
                Some(link) => list = link.list().clone(),
                None => return Ok(false),
            }
        }
        self.fetch(s, Source::Neighbor, |idle| {
            first.take().or_else(|| self.claim_from(&list, rng, idle))
        })
        .await
    }

    /// The rarest chunk `list` offers that is neither held nor in flight; with `idle` (no
    /// request of this stream in flight), in the endgame, one already in flight elsewhere.
    fn claim_from(&self, list: &ChunkSet, rng: &mut SmallRng, idle: bool) -> Option<Claim> {
        let rng = std::cell::RefCell::new(rng);
        self.claim_with(
            |taken, shared| picker::rarest(taken, list, &shared.offers, &mut *rng.borrow_mut()),
            idle,
        )
    }

    /// Asks the neighbor for its list; false if the link failed (and was dropped).
    async fn refresh_list(&self, slot: usize, s: &mut Server) -> bool {
        let Some(link) = s.link.as_mut() else {
            return false;
        };
        let wait = link.has_list().then_some(LIST_WAIT);
        let (id, addr) = (link.peer_id(), link.addr());
        match link.refresh_list(wait).await {
            Ok(list) => {
                if let Some(view) = &self.me.view {
                    // The address it listens on, as the book has it (not our dial's port).
                    let listen = self.me.book.addr_of(id).unwrap_or(addr);
                    view.observe(id, listen, list);
                }
                lock(&self.shared).offers[slot] = Some(list.clone());
                true
            }
            Err(e) => {
                s.fault(&e);
                false
            }
        }
    }

    /// Asks a connected server which peers it knows, into the address book.
    pub(super) async fn exchange_peers(&self, s: &mut Server) {
        let Some(link) = s.link.as_mut() else { return };
        match link.peers().await {
            Ok(peers) => {
                debug!(server = %link.addr(), peers = peers.len(), "peer list received");
                self.me.book.learn_all(&peers);
            }
            Err(e) => s.fault(&e),
        }
    }
}
