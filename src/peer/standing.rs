//! Knowing where we stand: whether others can dial this peer where it listens.
//!
//! Soon after it starts, and every [`RECHECK`] after, the peer asks nodes it knows to dial
//! it back at its port (`REACH_REQUEST`, PROTOCOL.md §3): the owner first, then peers it
//! met first-hand. A "yes" settles it (we answered there); a "no" settles it from the owner,
//! but from peers only when two at different addresses say so, so one lying or badly
//! placed peer cannot make a reachable node hide. While the last verdict is "no", its
//! hellos announce no port (0): nobody records an address that answers nothing, and it
//! still gives what it has over the links it dials (two-way links). No verdict changes
//! nothing and is sought again after [`RETRY`]. The question itself is asked with a hello
//! that announces no port, so it takes no downloader seat and sets off no other dial-back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Me;
use crate::activity;
use crate::config::Endpoint;
use crate::error::PeerError;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::task;
use crate::wire::Reached;

/// How long after the start the first question is asked.
const FIRST: Duration = Duration::from_secs(1);
/// How often a peer asks again once it has an answer (its address may change).
pub(crate) const RECHECK: Duration = Duration::from_secs(300);
/// How soon it asks again without one.
pub(crate) const RETRY: Duration = Duration::from_secs(10);
/// How long one question may take: the connection, and a dial-back that may wait 5 s for
/// a probe slot of the address, 5 s for one of the pool, and take 5 s.
const ASK_TIME: Duration = Duration::from_secs(25);
/// How many peers (besides the owner) are asked, in turn, until there is a verdict.
const ASK_AT_MOST: usize = 4;

const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

/// What the last answer said: nothing yet (0), reachable, unreachable; and who waits for
/// it to change.
#[derive(Debug, Default)]
pub(crate) struct Standing(AtomicU8, tokio::sync::Notify);

impl Standing {
    /// Whether it is known that nobody can dial this node.
    pub(crate) fn is_unreachable(&self) -> bool {
        self.0.load(Ordering::Acquire) == UNREACHABLE
    }

    /// The port to announce for one listening at `port`: none while nobody can reach it.
    pub(crate) fn announced(&self, port: u16) -> u16 {
        if self.0.load(Ordering::Acquire) == UNREACHABLE {
            0
        } else {
            port
        }
    }

    /// Records an answer; whether it changed what we knew.
    fn set(&self, reachable: bool) -> bool {
        let new = if reachable { REACHABLE } else { UNREACHABLE };
        let changed = self.0.swap(new, Ordering::AcqRel) != new;
        if changed {
            self.1.notify_waiters();
        }
        changed
    }

    /// Resolves when an answer changes what we knew (from when it is enabled or first
    /// polled).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.1.notified()
    }
}

/// Asks, now and then, until `token` is cancelled.
pub(super) async fn keep_track(
    me: Me,
    holdings: Arc<Holdings>,
    owner: Option<Endpoint>,
    token: CancellationToken,
) {
    // Spread out, so peers started together do not ask one node at the same moment (it
    // dials one address at most every 250 ms).
    let mut wait = FIRST.mul_f64(rand::random_range(0.5..1.5));
    while task::sleep(&token, wait).await {
        let verdict = tokio::select! {
            // A question may take a while (a node that holds the connection and says
            // nothing): it never holds up the node's exit.
            () = token.cancelled() => return,
            verdict = ask(&me, &holdings, owner.as_ref()) => verdict,
        };
        wait = match verdict {
            Some((reachable, by, seen)) => {
                if me.standing.set(reachable) {
                    activity::reachability(me.port, reachable, by, seen);
                }
                RECHECK
            }
            None => RETRY,
        };
    }
}

/// A verdict: whether we were reached, by whom it was settled, and where it sees us.
async fn ask(
    me: &Me,
    holdings: &Holdings,
    owner: Option<&Endpoint>,
) -> Option<(bool, SocketAddr, SocketAddr)> {
    let peers = me.book.sample(ASK_AT_MOST, me.id);
    let asked = owner
        .cloned()
        .map(|e| (e, true))
        .into_iter()
        .chain(peers.iter().map(|p| (Endpoint::from_addr(p.addr), false)));
    let mut said_no: Vec<std::net::IpAddr> = Vec::new();
    for (endpoint, is_owner) in asked {
        let question = async {
            let mut link = FetchLink::open(&endpoint, holdings.manifest(), 0, &me.creds, false).await?;
            let (found, seen) = link.reach_now(me.port).await?;
            Ok::<_, PeerError>((found, link.addr(), seen))
        };
        match tokio::time::timeout(ASK_TIME, question).await {
            Ok(Ok((Reached::Yes, by, seen))) => return Some((true, by, seen)),
            Ok(Ok((Reached::No, by, seen))) => {
                if !said_no.contains(&by.ip()) {
                    said_no.push(by.ip());
                }
                if is_owner || said_no.len() >= 2 {
                    return Some((false, by, seen));
                }
            }
            Ok(Ok((Reached::Unchecked, by, _))) => debug!(%by, "reach: not checked now"),
            Ok(Err(e)) => debug!(%endpoint, cause = %e, "reach: no answer"),
            Err(_) => debug!(%endpoint, "reach: timed out"),
        }
    }
    None
}
