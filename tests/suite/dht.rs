//! Discovery through the Mainline DHT (issue 18), on a DHT testnet of this process's own
//! (five nodes on 127.0.0.1; no internet): a private swarm whose owner is gone and whose
//! peers all restart on new ports, with only the ticket and their directories, finds
//! itself again and completes.

use std::time::{Duration, Instant};

use super::private::ticket_of;
use super::swarm::{events_of, Swarm};
use super::util::{free_port, wait_until};

/// The testnet's bootstrap list, as `--dht-bootstrap` takes it.
fn testnet() -> (mainline::Testnet, String) {
    let net = mainline::Testnet::builder(5)
        .build()
        .expect("a DHT testnet on 127.0.0.1");
    let bootstrap = net.bootstrap.join(",");
    (net, bootstrap)
}

/// How many peers found in the DHT peer `i` met.
fn meetings(swarm: &mut Swarm, i: usize) -> usize {
    events_of(swarm.peer(i))
        .iter()
        .filter(|e| e["event"] == "dht_met")
        .count()
}

#[test]
fn a_private_swarm_whose_every_address_changed_finds_itself_through_the_dht() {
    let (_net, bootstrap) = testnet();
    // Peers 1-3 trade and restart; peer 4 comes last, new, with only the ticket.
    let mut swarm = Swarm::new(4_000_000, 4, 1801);
    swarm.owner_args = ["--private", "--dht-bootstrap", &bootstrap]
        .map(String::from)
        .to_vec();
    swarm.start_owner(3);
    let ticket = ticket_of(swarm.owner.as_ref().expect("owner started"));
    // Slow trading: when the owner's batches are all in, nobody is complete yet.
    for i in 0..3 {
        let port = swarm.ports[i].to_string();
        let extra = [
            "--ticket",
            &ticket,
            "--dht-bootstrap",
            &bootstrap,
            "--download-limit",
            "100KB",
        ];
        swarm.start_peer_with(i, &[port], &extra.map(String::from));
    }
    let chunks = 40; // 4,000,000 bytes in chunks of 102,400
    assert!(
        wait_until(Duration::from_secs(60), || swarm.received_by(&[0, 1, 2]).len()
            >= chunks),
        "the peers never held every chunk between them"
    );
    // Everyone stops at once: the owner for good, the peers to come back elsewhere.
    swarm.owner.as_mut().expect("owner started").kill9();
    for i in 0..3 {
        swarm.peer(i).kill9();
    }
    let incomplete = (0..3).filter(|&i| !swarm.peer_file(i).exists()).count();
    assert!(
        incomplete > 0,
        "every peer completed before the stop; nothing left to find"
    );

    // Back on new ports, with the ticket (whose only address is dead) and the directory.
    let restarted = Instant::now();
    for i in 0..3 {
        swarm.ports[i] = free_port();
        let port = swarm.ports[i].to_string();
        let extra = ["--ticket", &ticket, "--dht-bootstrap", &bootstrap];
        swarm.start_peer_with(i, &[port], &extra.map(String::from));
    }
    swarm.wait_complete(&[0, 1, 2], Duration::from_secs(60));
    eprintln!("all complete {:?} after the restart", restarted.elapsed());
    // Nothing but the DHT knew where anyone was now: the address books start empty, the
    // ticket's address is dead. Someone met someone there.
    let met: usize = (0..3).map(|i| meetings(&mut swarm, i)).sum();
    assert!(met > 0, "nobody met anybody through the DHT");

    // A new peer with only the ticket, whose one address is dead: it joins through a peer
    // the DHT names.
    let port = swarm.ports[3].to_string();
    let extra = ["--ticket", &ticket, "--dht-bootstrap", &bootstrap];
    swarm.start_peer_with(3, &[port], &extra.map(String::from));
    swarm.wait_complete(&[3], Duration::from_secs(60));
    assert!(
        swarm
            .peer(3)
            .output()
            .contains("joined through a peer found in the DHT"),
        "peer4 did not join through the DHT"
    );
}

#[test]
fn a_node_whose_dht_is_still_starting_stops_at_once() {
    // A bootstrap node that never answers (TEST-NET-1): the DHT's first bootstrap waits
    // for it; SIGTERM must not.
    let dir = tempfile::tempdir().unwrap();
    let (owner, port) = (free_port(), free_port());
    let args = [
        "peer",
        &owner.to_string(),
        &port.to_string(),
        "--dir",
        dir.path().to_str().unwrap(),
        "--dht-bootstrap",
        "192.0.2.1:6881",
    ];
    let mut peer = super::util::Proc::start(dir.path(), "peer", &args);
    std::thread::sleep(Duration::from_millis(700));
    let asked = Instant::now();
    let status = peer.terminate(Duration::from_secs(10));
    assert!(status.is_some(), "the peer did not stop within 10 s of SIGTERM");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the peer took {:?} to stop",
        asked.elapsed()
    );
}
