//! Dialling back the address a client announced, to see who answers there: the owner's
//! proof of an identity (decided on in `owner::gate`), and any node's answer to a
//! `REACH_REQUEST` ("can you reach me at this port?", PROTOCOL.md §3).
//!
//! A probe goes only to the IP address the asking connection comes from, so nobody can
//! point it at a third party, and probes are bounded: [`MAX_PROBES`] at once in all,
//! [`MAX_PROBES_PER_IP`] to one address, each within [`PROBE_TIME`] ([`Prover`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::debug;

use crate::connection::Connection;
use crate::identity::PeerId;
use crate::manifest::SwarmId;
use crate::per_ip::{PerIp, PerIpCounts};
use crate::secure::Credentials;
use crate::wire::handshake;

/// How long a probe may take, connection and hellos together.
pub(crate) const PROBE_TIME: Duration = Duration::from_secs(5);
/// The most probes out at once; a client waits for one at most [`PROBE_TIME`].
pub(crate) const MAX_PROBES: usize = 32;
/// The most probes out at once to one IP address, so one host cannot take them all.
pub(crate) const MAX_PROBES_PER_IP: usize = 4;

/// How long to wait before asking again an address that took the connection but did not
/// answer (a joiner busy with others' connections, say).
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Who answers at `addr` for swarm `swarm`, within [`PROBE_TIME`] (asked twice if something
/// there takes the connection without answering; still nothing is [`Asked::Silent`]: a
/// node at its connection limit, one too busy). The probe is a fetch hello that does not
/// listen and asks for nothing: the node answers (busy or not) and the prober hangs up.
async fn probe(addr: SocketAddr, swarm: SwarmId, creds: &Arc<Credentials>) -> Asked {
    let probe = async {
        for attempt in 0..2 {
            match ask(addr, swarm, creds).await {
                Asked::Silent if attempt == 0 => tokio::time::sleep(RETRY_AFTER).await,
                found => return found,
            }
        }
        Asked::Silent
    };
    tokio::time::timeout(PROBE_TIME, probe)
        .await
        .unwrap_or(Asked::Silent)
}

/// What one probe connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// A node of the swarm, under this ID.
    Answered(PeerId),
    /// Nobody took the connection, or someone not of this swarm answered.
    NoOne,
    /// The connection was taken but closed (or timed out) without a hello.
    Silent,
}

async fn ask(addr: SocketAddr, swarm: SwarmId, creds: &Arc<Credentials>) -> Asked {
    let Ok(mut conn) = Connection::connect(addr, Arc::clone(creds)).await else {
        return Asked::NoOne;
    };
    let me = creds.key.id();
    match conn.handshake(&handshake::fetch_hello(0, swarm, me, false)).await {
        Ok(theirs) => handshake::answered_as(&theirs, swarm).map_or(Asked::NoOne, Asked::Answered),
        Err(_) => Asked::Silent,
    }
}

/// How long what a `REACH_REQUEST`'s dial-back found is given again without dialling.
pub(crate) const RECALL: Duration = Duration::from_secs(10);
/// The least time between two new `REACH_REQUEST` dial-backs to one IP address (so at most
/// 4 a second, however many connections ask).
pub(crate) const REACH_GAP: Duration = Duration::from_millis(250);
/// The most `REACH_REQUEST` dial-backs out at once.
pub(crate) const MAX_REACH_PROBES: usize = 8;
/// The most addresses remembered for either.
const REMEMBERED: usize = 4096;

/// A node's dial-backs, within their bounds.
#[derive(Debug)]
pub(crate) struct Prover {
    creds: Arc<Credentials>,
    swarm: SwarmId,
    probes: Semaphore,
    /// `REACH_REQUEST` dial-backs out: a pool of their own, so they never take the gate's.
    reach_probes: Semaphore,
    /// Probes out per IP address (at most [`MAX_PROBES_PER_IP`]).
    probing: PerIpCounts,
    /// What `REACH_REQUEST` dial-backs found lately, and when each IP was last dialled.
    recent: std::sync::Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    found: HashMap<SocketAddr, (Option<PeerId>, Instant)>,
    dialled: HashMap<IpAddr, Instant>,
}

impl Recent {
    /// Forgets what is older than `keep` once `map` is full, and everything if that is not
    /// enough: memory stays bounded whatever asks.
    fn room<K, V>(map: &mut HashMap<K, V>, keep: Duration, at: impl Fn(&V) -> Instant) {
        if map.len() >= REMEMBERED {
            map.retain(|_, v| at(v).elapsed() < keep);
            if map.len() >= REMEMBERED {
                map.clear();
            }
        }
    }
}

/// No answer to give: too many probes were out (to that address, or in all) for one within
/// [`PROBE_TIME`], or (a `REACH_REQUEST`) it was too soon or the address took the
/// connection without a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

impl Prover {
    /// Dial-backs made with `creds`, for swarm `swarm`.
    pub(crate) fn new(creds: Arc<Credentials>, swarm: SwarmId) -> Prover {
        Prover {
            creds,
            swarm,
            probes: Semaphore::new(MAX_PROBES),
            reach_probes: Semaphore::new(MAX_REACH_PROBES),
            probing: PerIpCounts::default(),
            recent: std::sync::Mutex::default(),
        }
    }

    /// A `REACH_REQUEST`'s dial-back to `addr`: what was found there in the last
    /// [`RECALL`] if anything, else a new dial-back from a pool of its own
    /// ([`MAX_REACH_PROBES`]), at most one per [`REACH_GAP`] to one IP address. So a flood
    /// of requests, from any number of connections on one address, makes this node dial
    /// that address a few times a second at most, and never holds up the owner's gate.
    /// [`TooMany`] when not checked: too soon, no free probe, or something there took the
    /// connection without a hello (a node at its connection limit is not "nobody").
    pub(crate) async fn reach(&self, addr: SocketAddr) -> Result<Option<PeerId>, TooMany> {
        {
            let mut recent = self.recent();
            if let Some(&(found, at)) = recent.found.get(&addr) {
                if at.elapsed() < RECALL {
                    return Ok(found);
                }
            }
            let ip = addr.ip();
            if recent.dialled.get(&ip).is_some_and(|at| at.elapsed() < REACH_GAP) {
                return Err(TooMany);
            }
            Recent::room(&mut recent.dialled, REACH_GAP, |at| *at);
            recent.dialled.insert(ip, Instant::now());
        }
        let found = {
            let _slot = self.slot(addr, &self.reach_probes).await?;
            match probe(addr, self.swarm, &self.creds).await {
                Asked::Answered(id) => Some(id),
                Asked::NoOne => None,
                Asked::Silent => return Err(TooMany),
            }
        };
        let mut recent = self.recent();
        Recent::room(&mut recent.found, RECALL, |(_, at)| *at);
        recent.found.insert(addr, (found, Instant::now()));
        Ok(found)
    }

    /// The ID a node of the swarm gives at `addr` (nothing there, or silence, is `None`:
    /// the gate trusts only an answer), once a probe slot is free; [`TooMany`] if none is
    /// within [`PROBE_TIME`].
    pub(crate) async fn who_answers(&self, addr: SocketAddr) -> Result<Option<PeerId>, TooMany> {
        let _slot = self.slot(addr, &self.probes).await?;
        match probe(addr, self.swarm, &self.creds).await {
            Asked::Answered(id) => Ok(Some(id)),
            Asked::NoOne | Asked::Silent => Ok(None),
        }
    }

    /// One of `addr`'s probe slots (one host's dropped SYNs hold only its own) and one of
    /// `pool`'s, each waited for at most [`PROBE_TIME`].
    async fn slot<'a>(
        &self,
        addr: SocketAddr,
        pool: &'a Semaphore,
    ) -> Result<(PerIp, SemaphorePermit<'a>), TooMany> {
        let ip = addr.ip();
        let waited = Instant::now();
        let per_ip = loop {
            if let Some(slot) = PerIp::acquire(&self.probing, ip, MAX_PROBES_PER_IP) {
                break slot;
            }
            if waited.elapsed() >= PROBE_TIME {
                debug!(%addr, "no probe: too many probes out to this address");
                return Err(TooMany);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match tokio::time::timeout(PROBE_TIME, pool.acquire()).await {
            Ok(Ok(permit)) => Ok((per_ip, permit)),
            _ => {
                debug!(%addr, "no probe: too many probes out");
                Err(TooMany)
            }
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two distinct ports on 127.0.0.1 nobody listens at (both held until both are known).
    fn closed_ports() -> (SocketAddr, SocketAddr) {
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (l1.local_addr().unwrap(), l2.local_addr().unwrap())
    }

    #[tokio::test]
    async fn reach_requests_dial_one_address_a_few_times_a_second_at_most() {
        let prover = Prover::new(Credentials::fresh(), SwarmId([1; 32]));
        let (a, b) = closed_ports();
        assert_eq!(prover.reach(a).await, Ok(None), "nobody there");
        // Asked again: from memory, however often.
        for _ in 0..1000 {
            assert_eq!(prover.reach(a).await, Ok(None));
        }
        // Another port of the same address, at once: not dialled.
        assert_eq!(prover.reach(b).await, Err(TooMany));
        tokio::time::sleep(REACH_GAP).await;
        assert_eq!(prover.reach(b).await, Ok(None));
    }
}
