//! Meeting the swarm through the DHT ([`crate::dht`]), so that a swarm whose every address
//! changed (the owner gone, everyone restarted elsewhere) finds itself again.
//!
//! Once its store is open, a peer announces the port it listens on under the swarm's key
//! (again every [`dht::ANNOUNCE_EVERY`], or at once when what it announces changes; nothing
//! while nobody can reach it, see [`super::standing`]) and looks the key up: soon again
//! while it knows no peer first-hand ([`LOOKUP_SOON`], doubling), every [`LOOKUP_EVERY`]
//! once it does.
//! Each address found that the book does not hold is **met**: dialled with a short FETCH
//! session whose handshake proves who is there and of which swarm; only then does it go
//! into the book (as proven), with the peers its `PEERS` answer names (as gossip). At most
//! [`MEET_PER_ROUND`] addresses are met per lookup, [`MEET_AT_ONCE`] at a time, each
//! within [`MEET_TIME`]; an address that failed is not dialled again for
//! [`FORGET_FAILED`]. So a DHT full of lies costs a few short dials a minute.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Me;
use crate::activity;
use crate::config::Endpoint;
use crate::dht;
use crate::error::PeerError;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::task;

/// Lookups while the peer knows nobody first-hand: this long after the first, twice as
/// long after each next, up to [`LOOKUP_EVERY`].
pub(crate) const LOOKUP_SOON: Duration = Duration::from_secs(1);
/// Lookups after that.
pub(crate) const LOOKUP_EVERY: Duration = Duration::from_secs(60);
/// The most addresses met after one lookup.
const MEET_PER_ROUND: usize = 16;
/// The most addresses of one IP met after one lookup.
const MEET_PER_IP: usize = 2;
/// Meetings at once.
const MEET_AT_ONCE: usize = 8;
/// How long one meeting may take.
const MEET_TIME: Duration = Duration::from_secs(3);
/// How long an address that failed is left alone.
const FORGET_FAILED: Duration = Duration::from_secs(10 * 60);
/// Failed addresses remembered.
const MAX_FAILED: usize = 1024;

/// Announces and looks up `key` until `token` is cancelled.
pub(crate) async fn run(me: Me, holdings: Arc<Holdings>, key: [u8; 20], token: CancellationToken) {
    let Some(node) = started(&me, &token).await else {
        return;
    };
    let mut failed = Failed::default();
    let mut announced: Option<(u16, Instant)> = None;
    let mut alone = LOOKUP_SOON;
    loop {
        // Everything a round waits on ends with the node's token: no exit waits for it.
        tokio::select! {
            _ = token.cancelled() => return,
            () = round(&me, &holdings, &node, key, &mut failed, &mut announced) => {}
        }
        let wait = if me.book.vouched_len() == 0 {
            let next = (alone * 2).min(LOOKUP_EVERY);
            std::mem::replace(&mut alone, next)
        } else {
            alone = LOOKUP_SOON;
            LOOKUP_EVERY
        };
        if !task::sleep(&token, wait).await {
            return;
        }
    }
}

/// Announces if due, looks up, and meets whom the lookup found.
async fn round(
    me: &Me,
    holdings: &Holdings,
    node: &dht::Node,
    key: [u8; 20],
    failed: &mut Failed,
    announced: &mut Option<(u16, Instant)>,
) {
    let port = me.standing.announced(me.port);
    let due = announced.is_none_or(|(p, at)| p != port || at.elapsed() >= dht::ANNOUNCE_EVERY);
    let announce = async {
        if port != 0 && due && node.announce(key, port).await {
            *announced = Some((port, Instant::now()));
        }
    };
    // Whom the lookup finds is met as the DHT's answers arrive, while we announce.
    let mut found = 0;
    let failed_before: &Failed = failed;
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    let meetings = node
        .lookup(key)
        .inspect(|_| found += 1)
        .filter(|&a| std::future::ready(!me.book.knows_addr(a) && !failed_before.recent(a)))
        // One address cannot take a round's dials (nor make us dial one host many times).
        .filter(move |a| {
            let n = per_ip.entry(a.ip()).or_default();
            *n += 1;
            std::future::ready(*n <= MEET_PER_IP)
        })
        .take(MEET_PER_ROUND)
        .map(|addr| async move { (addr, meet(me, holdings, addr).await) })
        .buffer_unordered(MEET_AT_ONCE)
        .collect::<Vec<(SocketAddr, bool)>>();
    let ((), met) = tokio::join!(announce, meetings);
    for &(addr, ok) in &met {
        if !ok {
            failed.add(addr);
        }
    }
    if found > 0 {
        activity::dht_lookup(found, met.iter().filter(|(_, ok)| *ok).count());
    }
}

/// The DHT node, once started (`None` if it is off, could not start, or `token` ends).
async fn started(me: &Me, token: &CancellationToken) -> Option<dht::Node> {
    let mut watch = me.dht.clone();
    tokio::select! {
        _ = token.cancelled() => None,
        got = watch.wait_for(|n| n.is_some()) => got.ok().and_then(|n| n.clone()),
    }
}

/// Dials `addr` and, if a peer of this swarm answers there, puts it in the book with the
/// peers it names. Whether anyone of the swarm answered.
async fn meet(me: &Me, holdings: &Holdings, addr: SocketAddr) -> bool {
    let swap = async {
        let opened = FetchLink::open_two_way(
            &Endpoint::from_addr(addr),
            holdings.manifest(),
            me.standing.announced(me.port),
            &me.creds,
            false,
            false,
        )
        .await?;
        let mut link = opened.link;
        let id = link.peer_id();
        if id == me.id {
            me.book.myself(addr);
            return Ok(false);
        }
        // The owner is dialled as the owner, never as a neighbor: left alone like a miss.
        if link.is_owner() {
            return Ok(false);
        }
        me.book.proven(id, addr);
        activity::dht_met(addr, id);
        if let Ok(peers) = link.peers_now().await {
            me.book.learn_all(id, &peers);
        }
        Ok::<_, PeerError>(true)
    };
    match tokio::time::timeout(MEET_TIME, swap).await {
        Ok(Ok(met)) => met,
        // Busy proves no swarm: left alone like a miss (the book hears of it otherwise).
        Ok(Err(e)) => {
            debug!(%addr, cause = %e, "DHT: nobody of the swarm answered there");
            false
        }
        Err(_) => {
            debug!(%addr, "DHT: the meeting timed out");
            false
        }
    }
}

/// Addresses that failed lately, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct Failed {
    at: HashMap<SocketAddr, Instant>,
    order: VecDeque<SocketAddr>,
}

impl Failed {
    pub(super) fn recent(&self, addr: SocketAddr) -> bool {
        self.at.get(&addr).is_some_and(|t| t.elapsed() < FORGET_FAILED)
    }

    pub(super) fn add(&mut self, addr: SocketAddr) {
        if self.at.insert(addr, Instant::now()).is_none() {
            self.order.push_back(addr);
        }
        while self.order.len() > MAX_FAILED {
            if let Some(old) = self.order.pop_front() {
                self.at.remove(&old);
            }
        }
    }
}
