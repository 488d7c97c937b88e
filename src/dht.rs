//! Finding a swarm without a known address: the Mainline DHT (BEP 5), through the
//! `mainline` crate.
//!
//! Every node (unless `--no-dht`) runs one DHT node: a thread of the crate's, one UDP
//! socket on the number of its TCP port when that is free (one number to forward), any
//! other when not. It announces its TCP port under the swarm's **key** and looks peers up
//! there. The key is 20 bytes of a BLAKE3 key derivation: from the swarm ID for an open
//! swarm ([`open_key`]), from the ticket's secret for a private one
//! ([`crate::ticket::Ticket::dht_key`]), so nobody without the ticket can find a private
//! swarm's nodes, or tell that two of them belong to one swarm.
//!
//! What the DHT returns is a claim of anyone's: [`Node::lookup`] keeps at most
//! [`MAX_FOUND`] addresses of one lookup, drops the ones nobody can dial, and the caller
//! dials each, which must then prove in its handshake that it is a node of this swarm
//! before it enters the address book. When no bootstrap node answers (a machine without
//! internet, say) the node says so once and the swarm carries on with its other means.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::{DhtSetting, Endpoint};
use crate::manifest::SwarmId;
use crate::task;

/// The derivation context of an open swarm's key.
const OPEN_CONTEXT: &str = "swarmshare 2026-12 open swarm DHT key";
/// The most addresses one lookup yields.
pub(crate) const MAX_FOUND: usize = 64;
/// How long one lookup may take.
pub(crate) const LOOKUP_TIME: Duration = Duration::from_secs(15);
/// How long one announcement may take.
const ANNOUNCE_TIME: Duration = Duration::from_secs(30);
/// How often a node announces itself again (DHT nodes forget after about 30 min).
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(10 * 60);
/// How soon an announcement that failed is tried again.
pub(crate) const ANNOUNCE_RETRY: Duration = Duration::from_secs(30);

/// The key an open swarm's nodes announce themselves under.
pub(crate) fn open_key(swarm: SwarmId) -> [u8; 20] {
    let full = blake3::derive_key(OPEN_CONTEXT, &swarm.0);
    let mut key = [0u8; 20];
    key.copy_from_slice(&full[..20]);
    key
}

/// One node's place in the DHT.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    dht: AsyncDht,
}

impl Node {
    /// Starts a DHT node as `setting` says (`None` for [`DhtSetting::Off`]), on UDP port
    /// `port` if it is free. The bootstrap nodes' names are resolved here, so this blocks:
    /// call it off the runtime.
    pub(crate) fn start(setting: &DhtSetting, port: u16) -> std::io::Result<Option<Node>> {
        let mut builder = Dht::builder();
        match setting {
            DhtSetting::Off => return Ok(None),
            DhtSetting::Public => {}
            DhtSetting::Nodes(nodes) => {
                let names: Vec<String> = nodes.iter().map(Endpoint::to_string).collect();
                builder.bootstrap(&names);
            }
        }
        // The TCP port's number when it is free; else any.
        let dht = match builder.clone().port(port).build() {
            Ok(dht) => dht,
            Err(e) => {
                debug!(port, cause = %e, "DHT: that UDP port is taken; using another");
                builder.port(0).build()?
            }
        };
        Ok(Some(Node { dht: dht.as_async() }))
    }

    /// Waits for the first bootstrap to end: whether any node of the DHT answered.
    pub(crate) async fn bootstrapped(&self) -> bool {
        self.dht.bootstrapped().await
    }

    /// The UDP address the node listens on.
    pub(crate) async fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.dht.info().await.local_addr())
    }

    /// Announces TCP port `port` under `key`, at the address the DHT sees us at.
    pub(crate) async fn announce(&self, key: [u8; 20], port: u16) -> bool {
        match tokio::time::timeout(ANNOUNCE_TIME, self.dht.announce_peer(Id::from(key), Some(port))).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                debug!(cause = %e, "DHT: the announcement failed");
                false
            }
            Err(_) => {
                debug!("DHT: the announcement timed out");
                false
            }
        }
    }

    /// The addresses announced under `key`, as the DHT's answers arrive: at most
    /// [`MAX_FOUND`], each once, none that cannot be dialled, none after [`LOOKUP_TIME`].
    pub(crate) fn lookup(&self, key: [u8; 20]) -> impl Stream<Item = SocketAddr> + Send + use<> {
        let mut seen = HashSet::new();
        let found = self
            .dht
            .get_peers(Id::from(key))
            .flat_map(stream::iter)
            .filter(|a| std::future::ready(dialable(*a)))
            .filter(move |a| std::future::ready(seen.insert(*a)))
            .map(SocketAddr::V4)
            .take(MAX_FOUND);
        let deadline = tokio::time::sleep(LOOKUP_TIME);
        stream::unfold(
            (Box::pin(found), Box::pin(deadline)),
            |(mut found, mut deadline)| async move {
                tokio::select! {
                    () = &mut deadline => None,
                    next = found.next() => next.map(|a| (a, (found, deadline))),
                }
            },
        )
    }
}

/// Whether an address from the DHT names something a node could listen on.
fn dialable(addr: SocketAddrV4) -> bool {
    let ip = IpAddr::V4(*addr.ip());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !addr.ip().is_broadcast()
}

/// Starts the DHT node off the runtime: `None` when it is off or could not start (said on
/// the log: the node carries on without it).
pub(crate) async fn start(setting: DhtSetting, port: u16) -> Option<Node> {
    let started = tokio::task::spawn_blocking(move || Node::start(&setting, port)).await;
    let failed = match started {
        Ok(Ok(node)) => return node,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    info!(event = "dht", cause = %failed, "DHT: could not start; carrying on without it");
    None
}

/// Says once whether the node's first bootstrap found the DHT.
pub(crate) async fn report(node: &Node) {
    let udp = node.local_addr().await;
    if node.bootstrapped().await {
        info!(event = "dht", %udp, joined = true, "DHT: joined");
    } else {
        info!(
            event = "dht",
            %udp,
            joined = false,
            "DHT: no bootstrap node answered; carrying on with the other ways of meeting peers (trying again now and then)"
        );
    }
}

/// Starts the DHT node and announces `port` under `key` until `token` is cancelled: the
/// owner's part (it looks nobody up).
pub(crate) async fn keep_announced(setting: DhtSetting, key: [u8; 20], port: u16, token: CancellationToken) {
    let node = tokio::select! {
        _ = token.cancelled() => return,
        node = start(setting, port) => node,
    };
    let Some(node) = node else { return };
    let mut first = true;
    loop {
        let announce = async {
            if std::mem::take(&mut first) {
                report(&node).await;
            }
            node.announce(key, port).await
        };
        let wait = tokio::select! {
            _ = token.cancelled() => return,
            done = announce => if done { ANNOUNCE_EVERY } else { ANNOUNCE_RETRY },
        };
        if !task::sleep(&token, wait).await {
            return;
        }
    }
}
