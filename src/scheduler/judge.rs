//! What the download side has learnt of each peer and each address, from what they
//! delivered, never from what they said: strikes and bans, redial backoff, and per-address
//! scores that keep many identities at one address from filling many slots.
//!
//! * A peer that breaks the protocol or sends a bad chunk gets a strike; at
//!   [`MAX_STRIKES`] it is banned for the rest of the run.
//! * A peer that cannot be dialled, or that holds a slot without answering, is not dialled
//!   again before its backoff has passed (doubling, up to [`MAX_BACKOFF`]); one that was
//!   merely rotated away waits [`ROTATED_REST`], so others get their turn.
//! * An address is **suspect** once its peers failed at least twice and more than twice as
//!   often as they delivered: its peers get a slot only when no other address has one to
//!   offer. Sessions that delivered are what count as success.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::Time;
use crate::identity::PeerId;

/// Bad chunks or violations a peer may commit before it is banned for good.
pub(crate) const MAX_STRIKES: u32 = 3;
/// The longest a failing peer waits before it is dialled again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a peer rotated away from rests before it may be chosen again.
pub(crate) const ROTATED_REST: Duration = Duration::from_secs(2);
/// Peers remembered at most (the book holds at most 1,024; bans outlive entries).
const MAX_PEERS: usize = 8192;
/// Addresses remembered at most.
const MAX_ADDRS: usize = 4096;

#[derive(Debug, Default, Clone, Copy)]
struct PeerRecord {
    strikes: u32,
    banned: bool,
    /// Failures since it last delivered.
    failures: u32,
    retry_at: Time,
}

#[derive(Debug, Default, Clone, Copy)]
struct AddrRecord {
    good: u32,
    bad: u32,
}

/// The judgments.
#[derive(Debug, Default)]
pub(crate) struct Judge {
    peers: HashMap<PeerId, PeerRecord>,
    addrs: HashMap<IpAddr, AddrRecord>,
}

/// What a strike led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Struck {
    /// Counted; `n` strikes so far.
    Warned(u32),
    /// The peer is banned from now on.
    Banned,
}

impl Judge {
    fn peer(&mut self, id: PeerId) -> &mut PeerRecord {
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&id) {
            // Forget the ones that never did anything wrong first; if the bans alone fill
            // it (a flood of fresh identities), they are forgotten too: a bound, not a
            // blacklist.
            self.peers.retain(|_, r| r.banned || r.strikes > 0);
            if self.peers.len() >= MAX_PEERS / 2 {
                self.peers.clear();
            }
        }
        self.peers.entry(id).or_default()
    }

    fn addr(&mut self, ip: IpAddr) -> &mut AddrRecord {
        if self.addrs.len() >= MAX_ADDRS && !self.addrs.contains_key(&ip) {
            self.addrs.retain(|_, r| r.bad > r.good);
            if self.addrs.len() >= MAX_ADDRS / 2 {
                self.addrs.clear();
            }
        }
        self.addrs.entry(ip).or_default()
    }

    /// Whether `id` may be dialled at `now`.
    pub(crate) fn ready(&self, id: PeerId, now: Time) -> bool {
        self.peers.get(&id).is_none_or(|r| !r.banned && r.retry_at <= now)
    }

    /// Whether `id` is banned.
    pub(crate) fn banned(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|r| r.banned)
    }

    /// Whether `ip`'s peers have failed far more than they delivered.
    pub(crate) fn suspect(&self, ip: IpAddr) -> bool {
        self.addrs
            .get(&ip)
            .is_some_and(|r| r.bad >= 2 && r.bad > 2 * r.good)
    }

    /// A strike against `id`.
    pub(crate) fn strike(&mut self, id: PeerId) -> Struck {
        let r = self.peer(id);
        r.strikes += 1;
        if r.strikes >= MAX_STRIKES {
            r.banned = true;
            Struck::Banned
        } else {
            Struck::Warned(r.strikes)
        }
    }

    /// `id` at `ip` failed: a dial that found nothing, or a slot held without answering.
    /// `ip` is `None` when nothing answered at all (the address may be a lie about
    /// someone else's host, so it is not held against that host).
    pub(crate) fn failed(&mut self, id: PeerId, ip: Option<IpAddr>, now: Time) {
        let r = self.peer(id);
        r.failures = r.failures.saturating_add(1);
        let backoff = Duration::from_secs(1) * 2u32.saturating_pow(r.failures.min(7) - 1);
        r.retry_at = now + backoff.min(MAX_BACKOFF);
        if let Some(ip) = ip {
            let a = self.addr(ip);
            a.bad = a.bad.saturating_add(1);
        }
    }

    /// A session with `id` at `ip` delivered its first new chunk.
    pub(crate) fn delivered(&mut self, id: PeerId, ip: IpAddr) {
        self.peer(id).failures = 0;
        let a = self.addr(ip);
        a.good = a.good.saturating_add(1);
    }

    /// We moved away from `id`: let the others have a turn first.
    pub(crate) fn rested(&mut self, id: PeerId, now: Time) {
        let r = self.peer(id);
        r.retry_at = r.retry_at.max(now + ROTATED_REST);
    }
}
