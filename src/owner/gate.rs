//! The owner's gate: whom it trusts with more than a hello's worth of bytes.
//!
//! A hello is a claim: any client can announce any peer ID and listening port. Before the
//! owner sends a joiner its manifest and batch, or serves a fetching client beyond a small
//! allowance, it dials back the address the client announced (its connection's IP, its
//! hello's port) and checks that a node of this swarm answers there under the claimed ID.
//! This module holds the decisions, without sockets or clocks (time is a `Duration` since
//! the owner started):
//!
//! * [`Gate::verdict`]: proven already, probe now, or unproven (listens nowhere, its address
//!   failed or answered as someone else within the last [`RECHECK_AFTER`]);
//! * [`Gate::record`]: what a probe found, remembered per address (bounded);
//! * [`Gate::take_share`]: whether a proven identity gets one of the first round's shares
//!   (each identity at most once, only while the round lasts);
//! * [`Gate::first_manifest`]: whether a proven identity's manifest is free (its first in
//!   [`PROOF_HOLDS`]; any more are paid from the allowance, like an unproven client's).
//!
//! An unproven client is still served, from the owner's allowance for the unproven
//! ([`crate::allowance`]), so a peer nobody can dial completes, slowly.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::PeerId;

/// How long a proof of an address holds before it is checked again.
pub(crate) const PROOF_HOLDS: Duration = Duration::from_secs(600);
/// How long an address that failed a probe, or answered under another ID, is not probed
/// again.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(10);
/// The most addresses remembered (proven and failed each); the oldest are forgotten.
pub(crate) const MAX_REMEMBERED: usize = 4096;

/// What the owner makes of a client's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A node answered at that address under that ID recently.
    Proven,
    /// Dial the address back and see who answers.
    Probe,
    /// Not to be trusted: served from the allowance for the unproven only.
    Unproven,
}

/// The owner's memory of who answered where, and of the shares handed out.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Who answered at an address, and when.
    answered: HashMap<SocketAddr, (PeerId, Duration)>,
    /// When a probe of an address found nobody of this swarm.
    failed: HashMap<SocketAddr, Duration>,
    /// Identities that got a share of the first round.
    shared: HashSet<PeerId>,
    /// When each proven identity last got the manifest free.
    manifests: HashMap<PeerId, Duration>,
}

impl Gate {
    /// What to make of `peer` claiming to listen at `addr` (port 0: it listens nowhere).
    pub(crate) fn verdict(&self, addr: SocketAddr, peer: PeerId, now: Duration) -> Verdict {
        if addr.port() == 0 {
            return Verdict::Unproven;
        }
        if let Some(&at) = self.failed.get(&addr) {
            if now.saturating_sub(at) < RECHECK_AFTER {
                return Verdict::Unproven;
            }
        }
        match self.answered.get(&addr) {
            Some(&(who, at)) if who == peer && now.saturating_sub(at) < PROOF_HOLDS => Verdict::Proven,
            Some(&(who, at)) if who != peer && now.saturating_sub(at) < RECHECK_AFTER => Verdict::Unproven,
            _ => Verdict::Probe,
        }
    }

    /// A probe of `addr` found `answered` (the ID a node of this swarm gave there), or
    /// nobody.
    pub(crate) fn record(&mut self, addr: SocketAddr, answered: Option<PeerId>, now: Duration) {
        match answered {
            Some(who) => {
                self.failed.remove(&addr);
                insert_bounded(&mut self.answered, addr, (who, now), |&(_, at)| at);
            }
            None => {
                self.answered.remove(&addr);
                insert_bounded(&mut self.failed, addr, now, |&at| at);
            }
        }
    }

    /// Whether proven `peer` gets a share of the first round: once per identity, while
    /// fewer than `round` identities have had one.
    pub(crate) fn take_share(&mut self, peer: PeerId, round: u32) -> bool {
        if self.shared.contains(&peer) || self.shared.len() >= round as usize {
            return false;
        }
        self.shared.insert(peer)
    }
}

impl Gate {
    /// Whether proven `peer` gets the manifest without paying for it: the first time in
    /// [`PROOF_HOLDS`] (a peer needs it once; a restart after a crash resumes from its
    /// directory).
    pub(crate) fn first_manifest(&mut self, peer: PeerId, now: Duration) -> bool {
        match self.manifests.get(&peer) {
            Some(&at) if now.saturating_sub(at) < PROOF_HOLDS => false,
            _ => {
                insert_bounded(&mut self.manifests, peer, now, |&at| at);
                true
            }
        }
    }
}

/// Inserts into a map of at most [`MAX_REMEMBERED`] entries, forgetting the oldest first.
fn insert_bounded<K: std::hash::Hash + Eq + Copy, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    at: impl Fn(&V) -> Duration,
) {
    if map.len() >= MAX_REMEMBERED && !map.contains_key(&key) {
        if let Some(oldest) = map.iter().min_by_key(|(_, v)| at(v)).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_claim_is_probed_once_then_trusted_while_the_proof_holds() {
        let mut gate = Gate::default();
        let me = PeerId([1; 16]);
        assert_eq!(
            gate.verdict(addr(0), me, S(0)),
            Verdict::Unproven,
            "listens nowhere"
        );
        assert_eq!(gate.verdict(addr(7000), me, S(0)), Verdict::Probe);
        gate.record(addr(7000), Some(me), S(1));
        assert_eq!(gate.verdict(addr(7000), me, S(2)), Verdict::Proven);
        assert_eq!(gate.verdict(addr(7000), me, S(1) + PROOF_HOLDS), Verdict::Probe);
    }

    #[test]
    fn an_address_that_answered_as_another_or_not_at_all_is_not_probed_again_soon() {
        let mut gate = Gate::default();
        let (honest, liar) = (PeerId([1; 16]), PeerId([2; 16]));
        gate.record(addr(7000), Some(honest), S(0));
        assert_eq!(gate.verdict(addr(7000), liar, S(1)), Verdict::Unproven);
        assert_eq!(gate.verdict(addr(7000), honest, S(1)), Verdict::Proven);
        assert_eq!(
            gate.verdict(addr(7000), liar, S(0) + RECHECK_AFTER),
            Verdict::Probe
        );
        gate.record(addr(7001), None, S(5));
        assert_eq!(gate.verdict(addr(7001), liar, S(6)), Verdict::Unproven);
        assert_eq!(
            gate.verdict(addr(7001), liar, S(5) + RECHECK_AFTER),
            Verdict::Probe
        );
    }

    #[test]
    fn shares_go_to_distinct_identities_while_the_round_lasts() {
        let mut gate = Gate::default();
        assert!(gate.take_share(PeerId([1; 16]), 2));
        assert!(!gate.take_share(PeerId([1; 16]), 2), "once per identity");
        assert!(gate.take_share(PeerId([2; 16]), 2));
        assert!(!gate.take_share(PeerId([3; 16]), 2), "the round is over");
    }

    #[test]
    fn a_proven_identity_gets_the_manifest_free_once() {
        let mut gate = Gate::default();
        let me = PeerId([1; 16]);
        assert!(gate.first_manifest(me, S(0)));
        assert!(!gate.first_manifest(me, S(1)), "a second JOIN pays");
        assert!(gate.first_manifest(PeerId([2; 16]), S(1)));
        assert!(gate.first_manifest(me, PROOF_HOLDS), "after a while, free again");
    }

    #[test]
    fn memory_is_bounded() {
        let mut gate = Gate::default();
        let addr =
            |i: u32| SocketAddr::from(([10, 0, (i >> 16) as u8, (i >> 8) as u8], (i & 0xff) as u16 + 1));
        let n = MAX_REMEMBERED as u32 + 100;
        for i in 0..n {
            gate.record(addr(i), None, Duration::from_millis(u64::from(i)));
        }
        for i in n..2 * n {
            gate.record(
                addr(i),
                Some(PeerId([3; 16])),
                Duration::from_millis(u64::from(i)),
            );
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            gate.first_manifest(PeerId(id), Duration::from_millis(u64::from(i)));
        }
        assert_eq!(gate.failed.len(), MAX_REMEMBERED);
        assert_eq!(gate.answered.len(), MAX_REMEMBERED);
        assert_eq!(gate.manifests.len(), MAX_REMEMBERED);
        // The newest are the ones kept.
        assert!(gate.failed.contains_key(&addr(n - 1)) && !gate.failed.contains_key(&addr(0)));
    }
}
