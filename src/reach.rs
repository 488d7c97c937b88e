//! Dialling back the address a client announced, to see who answers there: the owner's
//! proof of an identity (decided on in `owner::gate`), and any node's answer to a
//! `REACH_REQUEST` ("can you reach me at this port?", PROTOCOL.md §3).
//!
//! A probe goes only to the IP address the asking connection comes from, so nobody can
//! point it at a third party, and probes are bounded: [`MAX_PROBES`] at once in all,
//! [`MAX_PROBES_PER_IP`] to one address, each within [`PROBE_TIME`] ([`Prover`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
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

/// The ID a node of swarm `swarm` gives at `addr`, if one answers within [`PROBE_TIME`]
/// (asked twice if something there takes the connection without answering). The probe is
/// a fetch hello that does not listen and asks for nothing: the node answers (busy or not)
/// and the owner hangs up.
pub(crate) async fn who_answers(
    addr: SocketAddr,
    swarm: SwarmId,
    creds: &Arc<Credentials>,
) -> Option<PeerId> {
    let probe = async {
        for attempt in 0..2 {
            match ask(addr, swarm, creds).await {
                Asked::Answered(id) => return Some(id),
                Asked::NoOne => return None,
                Asked::Silent if attempt == 0 => tokio::time::sleep(RETRY_AFTER).await,
                Asked::Silent => {}
            }
        }
        None
    };
    tokio::time::timeout(PROBE_TIME, probe).await.ok().flatten()
}

/// What one probe connection found.
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

/// A node's dial-backs, within their bounds.
#[derive(Debug)]
pub(crate) struct Prover {
    creds: Arc<Credentials>,
    swarm: SwarmId,
    probes: Semaphore,
    /// Probes out per IP address (at most [`MAX_PROBES_PER_IP`]).
    probing: PerIpCounts,
}

/// Too many probes were out (to that address, or in all) for one within [`PROBE_TIME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

impl Prover {
    /// Dial-backs made with `creds`, for swarm `swarm`.
    pub(crate) fn new(creds: Arc<Credentials>, swarm: SwarmId) -> Prover {
        Prover {
            creds,
            swarm,
            probes: Semaphore::new(MAX_PROBES),
            probing: PerIpCounts::default(),
        }
    }

    /// The ID a node of the swarm gives at `addr` ([`who_answers`]), once a probe slot is
    /// free (one host's dropped SYNs hold only its own slots); [`TooMany`] if none is
    /// within [`PROBE_TIME`].
    pub(crate) async fn who_answers(&self, addr: SocketAddr) -> Result<Option<PeerId>, TooMany> {
        let ip = addr.ip();
        let waited = Instant::now();
        let _per_ip = loop {
            if let Some(slot) = PerIp::acquire(&self.probing, ip, MAX_PROBES_PER_IP) {
                break slot;
            }
            if waited.elapsed() >= PROBE_TIME {
                debug!(%addr, "no probe: too many probes out to this address");
                return Err(TooMany);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let permit = tokio::time::timeout(PROBE_TIME, self.probes.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            debug!(%addr, "no probe: too many probes out");
            return Err(TooMany);
        };
        Ok(who_answers(addr, self.swarm, &self.creds).await)
    }
}
