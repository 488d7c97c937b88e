//! The scheduler's inputs: what happened on a link ([`Scheduler::handle`]), and what the
//! storage made of a received chunk ([`Scheduler::stored`], [`Scheduler::pushed`]).

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;

use super::judge::Struck;
use super::link::{Answered, Request, Session, State};
use super::{
    Close, DialFailure, Event, LinkId, Outcome, Role, Scheduler, Target, Time, ROTATE_AFTER, ROTATE_USELESS,
};
use crate::identity::PeerId;
use crate::manifest::ChunkId;

impl Scheduler {
    /// Records what happened on `link` at `now`.
    pub(crate) fn handle(&mut self, now: Time, link: LinkId, event: Event<'_>) {
        if link >= self.links.len() {
            return;
        }
        self.wake(link);
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
                if !s.answered(c, now, Answered::Chunk) {
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
                let how = if unsent {
                    Answered::Unsent
                } else {
                    Answered::NotHave
                };
                if !s.answered(c, now, how) {
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

    /// A peer that dialled us from `addr` offers a two-way link (it may be out of reach
    /// otherwise): the vacant inbound slot that takes it, if one may. Not while we lack
    /// nothing; never us, the owner, a peer on another link of ours, one the judge has
    /// banned or is resting, nor more than half the inbound slots for one address. With
    /// every slot taken, an inbound peer that has brought nothing new for a while is let
    /// go, so the next offer finds its slot. The slot is dialing until the driver reports
    /// the link up ([`Event::Connected`]) or not ([`Event::DialFailed`]).
    pub(crate) fn adopt(&mut self, now: Time, peer: PeerId, addr: SocketAddr) -> Option<LinkId> {
        if self.held.is_complete()
            || peer == self.me
            || Some(peer) == self.owner
            || !self.judge.ready(peer, now)
        {
            return None;
        }
        let mut from_ip = 0usize;
        let mut slots = 0usize;
        for l in &self.links {
            let (id, ip) = match &l.state {
                State::Up(s) => (s.peer, s.ip),
                State::Dialing {
                    target: Target::Peer { id, addr },
                } => (*id, addr.ip()),
                _ => (PeerId::NONE, addr.ip()),
            };
            if id == peer {
                return None;
            }
            if l.role == Role::Inbound {
                slots += 1;
                from_ip += usize::from(id != PeerId::NONE && ip == addr.ip());
            }
        }
        if from_ip >= slots.div_ceil(2) {
            return None;
        }
        let vacant = self
            .links
            .iter()
            .position(|l| l.role == Role::Inbound && matches!(l.state, State::Vacant { .. }));
        let Some(link) = vacant else {
            self.let_idle_inbound_go(now);
            return None;
        };
        self.links[link].state = State::Dialing {
            target: Target::Peer { id: peer, addr },
        };
        self.wake(link);
        Some(link)
    }

    /// Closes the inbound link whose peer has brought nothing new the longest, if that is
    /// longer than [`ROTATE_AFTER`] (or it has offered nothing for [`ROTATE_USELESS`]).
    fn let_idle_inbound_go(&mut self, now: Time) {
        let idle = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match (&l.state, l.role) {
                (State::Up(s), Role::Inbound) if s.closing.is_none() => Some((i, s)),
                _ => None,
            })
            .filter(|(_, s)| {
                s.useless_since
                    .is_some_and(|t| now.saturating_sub(t) >= ROTATE_USELESS)
                    || now.saturating_sub(s.last_useful) >= ROTATE_AFTER
            })
            .min_by_key(|(_, s)| s.last_useful)
            .map(|(i, _)| i);
        if let Some(link) = idle {
            if let Some(s) = self.session(link) {
                s.closing = Some(Close::Rotate);
            }
            self.wake(link);
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
                if let (Role::Neighbor | Role::Inbound, State::Up(s)) = (l.role, &mut l.state) {
                    if s.peer == peer {
                        s.closing = Some(Close::Duplicate);
                    }
                }
            }
        }
        let closing = match role {
            Role::Neighbor | Role::Pinned if is_owner => Some(Close::IsOwner),
            Role::Neighbor | Role::Inbound if elsewhere => Some(Close::Duplicate),
            _ if self.judge.banned(peer) => Some(Close::Banned),
            _ => None,
        };
        // An inbound link's address is the peer's end of a connection it dialled, not one
        // it listens at.
        if !is_owner && role != Role::Inbound {
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
        if self.links[link].role == Role::Inbound {
            // An offered link that did not come up: nothing to judge by.
            self.links[link].state = State::Vacant { retry_at: now };
            return;
        }
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
            Role::Neighbor | Role::Inbound => now,
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

    /// Whether a link with `peer` is up (and, with `staying`, not closing).
    pub(crate) fn linked_with(&self, peer: PeerId, staying: bool) -> bool {
        self.links
            .iter()
            .any(|l| matches!(&l.state, State::Up(s) if s.peer == peer && (!staying || s.closing.is_none())))
    }

    /// Closes the links with `peer` whole: a direct connection to it replaces them.
    pub(crate) fn upgraded(&mut self, peer: PeerId) {
        for link in 0..self.links.len() {
            if let State::Up(s) = &mut self.links[link].state {
                if s.peer == peer && s.closing.is_none() {
                    s.closing = Some(Close::Upgraded);
                    self.wake(link);
                }
            }
        }
    }

    /// Whether `peer` is banned for the rest of the run.
    pub(crate) fn banned(&self, peer: PeerId) -> bool {
        self.judge.banned(peer)
    }

    /// `peer` broke the protocol where the download side could not see it (on our serving
    /// side of a two-way link): a strike, as for a violation on a link.
    pub(crate) fn violation_by(&mut self, peer: PeerId) {
        self.strike(peer);
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
                self.woken |= 1 << i;
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
