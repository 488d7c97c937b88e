//! Knowing where we stand: whether others can dial this peer where it listens.
//!
//! Soon after it starts, and every [`RECHECK`] after, the peer asks a node it knows (the
//! owner first, else peers it has met) to dial it back at its port (`REACH_REQUEST`,
//! PROTOCOL.md §3). While the last answer says nobody reached it there, its hellos announce
//! no port (0): nobody records an address that answers nothing, and it still gives what it
//! has over the links it dials (two-way links). An answer that could not be checked, or no
//! answer, changes nothing and is asked again after [`RETRY`].

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
pub(crate) const RETRY: Duration = Duration::from_secs(30);
/// How long one question may take (a dial-back takes up to 5 s, and may wait as long for
/// a free probe).
const ASK_TIME: Duration = Duration::from_secs(15);
/// How many nodes are asked, in turn, until one answers.
const ASK_AT_MOST: usize = 3;

const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

/// What the last answer said: nothing yet (0), reachable, unreachable.
#[derive(Debug, Default)]
pub(crate) struct Standing(AtomicU8);

impl Standing {
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
        self.0.swap(new, Ordering::AcqRel) != new
    }
}

/// Asks, now and then, until `token` is cancelled.
pub(super) async fn keep_track(
    me: Me,
    holdings: Arc<Holdings>,
    owner: Option<Endpoint>,
    token: CancellationToken,
) {
    let mut wait = FIRST;
    while task::sleep(&token, wait).await {
        wait = match ask(&me, &holdings, owner.as_ref()).await {
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

/// The first answer of the owner, or else of peers we met: whether we were reached, by
/// whom, and where it sees us.
async fn ask(
    me: &Me,
    holdings: &Holdings,
    owner: Option<&Endpoint>,
) -> Option<(bool, SocketAddr, SocketAddr)> {
    let peers = me.book.sample_any(ASK_AT_MOST, me.id);
    let asked = owner
        .cloned()
        .into_iter()
        .chain(peers.iter().map(|p| Endpoint::from_addr(p.addr)))
        .take(ASK_AT_MOST);
    for endpoint in asked {
        let question = async {
            let announced = me.standing.announced(me.port);
            let mut link =
                FetchLink::open(&endpoint, holdings.manifest(), announced, &me.creds, false).await?;
            let (found, seen) = link.reach_now(me.port).await?;
            Ok::<_, PeerError>((found, link.addr(), seen))
        };
        match tokio::time::timeout(ASK_TIME, question).await {
            Ok(Ok((Reached::Yes, by, seen))) => return Some((true, by, seen)),
            Ok(Ok((Reached::No, by, seen))) => return Some((false, by, seen)),
            Ok(Ok((Reached::Unchecked, by, _))) => debug!(%by, "reach: not checked now"),
            Ok(Err(e)) => debug!(%endpoint, cause = %e, "reach: no answer"),
            Err(_) => debug!(%endpoint, "reach: timed out"),
        }
    }
    None
}
