//! What the passing of time decides ([`Scheduler::handle_timeout`]): answers that are late,
//! links that stalled, neighbors to rotate away from, links that may now take a late chunk;
//! and when to be asked next ([`Scheduler::next_timeout`]).

use std::time::Duration;

use rand::Rng;

use super::link::{Session, State};
use super::{
    Close, LinkId, Role, Scheduler, Time, FIRST_LIST_LATE, LIST_LATE, ROTATE_AFTER, ROTATE_USELESS,
    SLOW_EVERY, SLOW_RATIO, STALL_FACTOR, STALL_MIN, STARVED_AFTER, TICK,
};

impl Scheduler {
    /// Decides what time alone decides: late answers, stalled links, rotation; and wakes
    /// links that may now have something to do.
    pub(crate) fn handle_timeout(&mut self, now: Time) {
        if self.held.is_complete() {
            return;
        }
        let typical = self.typical;
        let in_flight = self.taken.count() > self.held.count();
        let owner_wanted = self.owner_fallback(now);
        // A big swarm's list is not late for being big.
        let list_bytes = crate::chunk_set::bitfield_len(self.held.len()) as u64;
        let list_time = Duration::from_millis(list_bytes * 1000 / super::LIST_RATE);
        let known = self.book.vouched_len();
        // Busy: a neighbor is bringing us something (a request out that is not stuck).
        let busy = self.links.iter().any(|l| {
            l.role != Role::Owner
                && matches!(&l.state, State::Up(s) if !s.requests.is_empty() && s.silence(now) < STARVED_AFTER)
        });
        if busy {
            self.last_busy = now;
        }
        for link in 0..self.links.len() {
            let role = self.links[link].role;
            let closing = match &mut self.links[link].state {
                State::Vacant { retry_at } => {
                    if *retry_at <= now && role != Role::Inbound {
                        self.woken |= 1 << link;
                    }
                    continue;
                }
                State::Dialing { .. } => continue,
                State::Up(s) if s.closing.is_some() => continue,
                State::Up(s) => {
                    let judged = matches!(role, Role::Neighbor | Role::Inbound);
                    let closing = late_or_stalled(s, now, typical, judged, list_time);
                    // Woken only if time may have given it something to send: a peer list
                    // due, or room while some request is out (it may be late by now) or,
                    // for the owner, while the owner may be asked for what nobody offers.
                    let pex_due = s.next_pex <= now && !s.peers_asked;
                    let room = s.room() && (in_flight || (s.owner && owner_wanted));
                    if !s.polling() && (room || pex_due) {
                        self.woken |= 1 << link;
                    }
                    let idle = s
                        .useless_since
                        .is_some_and(|t| now.saturating_sub(t) >= ROTATE_USELESS)
                        || now.saturating_sub(s.last_useful) >= ROTATE_AFTER;
                    // An inbound peer that brings nothing keeps its slot until another
                    // offers a link (`adopt`): it does not dial us again.
                    if closing.is_some() || role != Role::Neighbor {
                        closing
                    } else {
                        let grown = known > s.book_seen;
                        let seen = s.book_seen;
                        s.book_seen = s.book_seen.max(known);
                        // The book has grown since this neighbor was chosen: move with
                        // probability (known - seen) / known, so the choice stays uniform
                        // over every peer known and late joiners get downloaders too.
                        let moved = grown && self.rng.random_range(0..known) >= seen;
                        (idle || moved).then_some(Close::Rotate)
                    }
                }
            };
            let Some(close) = closing else { continue };
            if close == Close::Rotate {
                let Some(peer) = self.peer_of(link) else { continue };
                if !self.could_move(link, peer, now) {
                    if let Some(s) = self.session(link) {
                        s.last_useful = now;
                        s.useless_since = s.useless_since.map(|_| now);
                    }
                    continue;
                }
            }
            if let Some(s) = self.session(link) {
                s.closing = Some(close);
            }
            self.woken |= 1 << link;
        }
        self.rotate_slowest(now);
    }

    /// Every [`SLOW_EVERY`], swaps the slowest unpinned neighbor for another peer if it is
    /// [`SLOW_RATIO`] times slower than the median of the others.
    fn rotate_slowest(&mut self, now: Time) {
        if now.saturating_sub(self.last_slow_check) < SLOW_EVERY {
            return;
        }
        self.last_slow_check = now;
        let mut paces: Vec<(LinkId, Duration)> = Vec::new();
        for (i, l) in self.links.iter().enumerate() {
            if let (Role::Neighbor, State::Up(s)) = (l.role, &l.state) {
                if let Some(p) = s.pace.measured() {
                    if s.closing.is_none() && now.saturating_sub(s.since) >= SLOW_EVERY {
                        paces.push((i, p));
                    }
                }
            }
        }
        if paces.len() < 3 {
            return;
        }
        paces.sort_by_key(|&(_, p)| p);
        let median = paces[paces.len() / 2].1;
        let Some(&(link, slowest)) = paces.last() else {
            return;
        };
        if slowest.as_secs_f64() <= median.as_secs_f64() * SLOW_RATIO {
            return;
        }
        let Some(peer) = self.peer_of(link) else { return };
        if self.could_move(link, peer, now) {
            if let Some(s) = self.session(link) {
                s.closing = Some(Close::Rotate);
            }
            self.woken |= 1 << link;
        }
    }

    /// When [`Scheduler::handle_timeout`] should run next.
    pub(crate) fn next_timeout(&self, now: Time) -> Option<Time> {
        (!self.held.is_complete()).then_some(now + TICK)
    }
}

/// Whether a session missed an answer: a list request past its limit, or (with
/// `judge_stall`) a head request silent for [`STALL_FACTOR`] times the link's pace (at
/// least [`STALL_MIN`]).
fn late_or_stalled(
    s: &Session,
    now: Time,
    typical: Duration,
    judge_stall: bool,
    list_time: Duration,
) -> Option<Close> {
    if let Some((at, wait)) = s.list_asked {
        let limit = wait
            + list_time
            + if s.list.is_none() {
                FIRST_LIST_LATE
            } else {
                LIST_LATE
            };
        if now.saturating_sub(at) > limit {
            return Some(Close::Idle);
        }
    }
    // The seed's neighbor and the owner are kept however slow (the connection's own limits
    // end a dead one); the others must keep pace or give their slot to someone else.
    let stall = STALL_MIN.max(s.per_chunk(typical) * STALL_FACTOR);
    (judge_stall && s.silence(now) > stall).then_some(Close::Stalled)
}
