//! The DHT on a testnet of this process's own (three nodes on 127.0.0.1): what a node
//! announces is found under the swarm's key, and a private swarm's key is found by nobody
//! without its secret.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::StreamExt;

use crate::config::{DhtSetting, Endpoint};
use crate::dht::{self, Node};
use crate::identity::PeerId;
use crate::manifest::SwarmId;
use crate::ticket::Ticket;

const SWARM: SwarmId = SwarmId([7; 32]);

async fn node_on(net: &mainline::Testnet) -> Node {
    let nodes: Vec<Endpoint> = net.bootstrap.iter().map(|b| b.parse().unwrap()).collect();
    dht::start(DhtSetting::Nodes(nodes), Ipv4Addr::LOCALHOST.into(), 0)
        .await
        .unwrap()
}

async fn found(node: &Node, key: [u8; 20]) -> Vec<std::net::SocketAddr> {
    node.lookup(key).collect().await
}

#[tokio::test]
async fn a_private_swarm_is_found_under_its_secret_key_and_under_no_other() {
    let net = mainline::Testnet::builder(3).build().unwrap();
    let (a, b, c) = (node_on(&net).await, node_on(&net).await, node_on(&net).await);
    let ticket = Ticket::generate(SWARM, PeerId([1; 16]), Vec::new());
    let other = Ticket::generate(SWARM, PeerId([1; 16]), Vec::new());
    assert!(a.announce(ticket.dht_key(), 4242).await);
    // Others announce under what an outsider can compute (the swarm ID), and under the
    // same swarm with another secret.
    assert!(c.announce(dht::open_key(SWARM), 4243).await);
    assert!(c.announce(other.dht_key(), 4244).await);
    let here = found(&b, ticket.dht_key()).await;
    let ports = |found: &[std::net::SocketAddr]| found.iter().map(|a| a.port()).collect::<Vec<_>>();
    assert_eq!(ports(&here), vec![4242], "under the ticket's key: {here:?}");
    assert_eq!(ports(&found(&b, dht::open_key(SWARM)).await), vec![4243]);
    assert_eq!(ports(&found(&b, other.dht_key()).await), vec![4244]);
}

#[tokio::test]
async fn an_open_swarm_is_found_under_its_swarm_id_and_a_lookup_ends_in_time() {
    let net = mainline::Testnet::builder(3).build().unwrap();
    let (a, b) = (node_on(&net).await, node_on(&net).await);
    assert!(a.announce(dht::open_key(SWARM), 4243).await);
    let started = std::time::Instant::now();
    let here = found(&b, dht::open_key(SWARM)).await;
    assert!(here.iter().any(|addr| addr.port() == 4243), "{here:?}");
    assert!(started.elapsed() <= dht::LOOKUP_TIME + Duration::from_secs(1));
    assert_ne!(dht::open_key(SWARM), dht::open_key(SwarmId([8; 32])));
}

#[tokio::test]
async fn a_dht_that_is_off_starts_nothing() {
    assert!(dht::start(DhtSetting::Off, Ipv4Addr::LOCALHOST.into(), 0)
        .await
        .is_none());
}
