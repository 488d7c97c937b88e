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
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::DhtSetting;
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
/// How long a bootstrap node's name may take to resolve.
const RESOLVE_TIME: Duration = Duration::from_secs(5);
/// How soon names that resolved to nothing are tried again.
const RESOLVE_RETRY: Duration = Duration::from_secs(60);
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
    /// Builds a DHT node bootstrapping from `nodes`, bound to `bind` (when it is a given
    /// IPv4 address; else every interface), on UDP port `port` if it is free, else any.
    /// Blocks (the crate starts its thread and binds): call it off the runtime.
    fn build(nodes: &[SocketAddrV4], bind: IpAddr, port: u16) -> std::io::Result<Node> {
        let mut builder = Dht::builder();
        let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        builder.bootstrap(&nodes);
        let ip = match bind {
            IpAddr::V4(ip) if !ip.is_unspecified() => {
                builder.bind_address(ip);
                ip
            }
            _ => Ipv4Addr::UNSPECIFIED,
        };
        // Whether the TCP port's number is free, asked first: the crate's own failure to
        // bind is not a clean error in every case.
        let free = std::net::UdpSocket::bind((ip, port)).is_ok();
        builder.port(if free { port } else { 0 });
        Ok(Node {
            dht: builder.build()?.as_async(),
        })
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
                    biased;
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

/// The bootstrap nodes `setting` names, resolved (IPv4 only: the Mainline DHT's), each
/// name within [`RESOLVE_TIME`]. Names that do not resolve are left out.
async fn bootstrap_nodes(setting: &DhtSetting) -> Vec<SocketAddrV4> {
    let names: Vec<(String, u16)> = match setting {
        DhtSetting::Off => Vec::new(),
        DhtSetting::Public => mainline::DEFAULT_BOOTSTRAP_NODES
            .iter()
            .filter_map(|n| n.rsplit_once(':'))
            .filter_map(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
            .collect(),
        DhtSetting::Nodes(nodes) => nodes.iter().map(|n| (n.host().to_owned(), n.port())).collect(),
    };
    let lookups = names.iter().map(|(host, port)| async move {
        match tokio::time::timeout(RESOLVE_TIME, tokio::net::lookup_host((host.as_str(), *port))).await {
            Ok(Ok(addrs)) => addrs
                .filter_map(|a| match a {
                    SocketAddr::V4(a) => Some(a),
                    SocketAddr::V6(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    });
    let mut nodes: Vec<SocketAddrV4> = futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Starts the DHT node: `None` when it is off or could not start (said on the log: the
/// node carries on without it). While no bootstrap node's name resolves (no network yet),
/// it says so once and tries again every [`RESOLVE_RETRY`]; the caller ends the wait with
/// its token. The crate's blocking start runs on a thread of its own, which nothing waits
/// for at exit.
pub(crate) async fn start(setting: DhtSetting, bind: IpAddr, port: u16) -> Option<Node> {
    if setting == DhtSetting::Off {
        return None;
    }
    let mut said = false;
    let nodes = loop {
        let nodes = bootstrap_nodes(&setting).await;
        if !nodes.is_empty() {
            break nodes;
        }
        if !std::mem::replace(&mut said, true) {
            info!(
                event = "dht",
                joined = false,
                "DHT: no bootstrap node's name resolves (IPv4); carrying on with the other ways of meeting peers, trying again every minute"
            );
        }
        tokio::time::sleep(RESOLVE_RETRY).await;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("dht-start".into())
        .spawn(move || {
            let built = std::panic::catch_unwind(|| Node::build(&nodes, bind, port));
            let _ = tx.send(built);
        });
    let failed = match (spawned, rx.await) {
        (Ok(_), Ok(Ok(Ok(node)))) => return Some(node),
        (Ok(_), Ok(Ok(Err(e)))) => e.to_string(),
        (Err(e), _) => e.to_string(),
        _ => "the DHT crate's start failed".to_owned(),
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
            "DHT: no bootstrap node answered; carrying on with the other ways of meeting peers (the DHT node asks them again while it knows no other)"
        );
    }
}

/// Starts the DHT node and announces `port` under `key` until `token` is cancelled: the
/// owner's part (it looks nobody up).
pub(crate) async fn keep_announced(
    setting: DhtSetting,
    (bind, port): (IpAddr, u16),
    key: [u8; 20],
    token: CancellationToken,
) {
    let node = tokio::select! {
        _ = token.cancelled() => return,
        node = start(setting, bind, port) => node,
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
