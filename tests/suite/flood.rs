//! A JOIN flood (issue 14) against a running swarm: hundreds of JOINs under fresh IDs,
//! from the honest peers' own address and from others, some asking for every chunk. The
//! owner may send them together no more than the allowance PROTOCOL.md states for clients
//! it cannot dial back (2 MiB + 1 MiB/s, beyond one hello per JOIN); the honest swarm
//! completes, and the owner sends it what it would have without the flood.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::protocol::HELLO_LEN;
use super::swarm::{complete_event, events_of, Swarm};
use super::util::wait_until;
use super::wild::attacker;

/// PROTOCOL.md §3, "The owner's gate": what all unproven clients together may be sent
/// beyond their hellos.
const ALL_BURST: f64 = 2.0 * 1024.0 * 1024.0;
const ALL_RATE: f64 = 1024.0 * 1024.0;

const SIZE: usize = 8_000_000;
const PEERS: usize = 4;

fn flood(owner: u16, binds: &str, joins: usize, request: bool) -> super::wild::Attacker {
    let mut args: Vec<String> = [
        "join-flood",
        &owner.to_string(),
        "--bind",
        binds,
        "--joins",
        &joins.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if request {
        args.push("--request".into());
    }
    attacker(&args)
}

#[test]
fn a_join_flood_costs_the_owner_only_its_allowance_and_the_swarm_nothing() {
    let mut swarm = Swarm::new(SIZE, PEERS, 61);
    swarm.start_owner(PEERS);
    assert!(wait_until(Duration::from_secs(20), || events_of(
        swarm.owner.as_ref().unwrap()
    )
    .iter()
    .any(|e| e["event"] == "owner_start")));
    let owner_port = swarm.owner_port;
    // From the honest peers' own address and from two others; half ask for every chunk.
    let asking = flood(owner_port, "127.0.0.1,127.0.0.2", 60, true);
    let joining = flood(owner_port, "127.0.0.1,127.0.0.3", 150, false);
    for i in 0..PEERS {
        swarm.start_swarm_peer(i);
    }
    swarm.wait_all_complete(Duration::from_secs(90));
    let summaries: Vec<Value> = [asking, joining]
        .into_iter()
        .map(|a| serde_json::from_str(&a.last_line(Duration::from_secs(120))).unwrap())
        .collect();
    let total = |k: &str| summaries.iter().map(|s| s[k].as_f64().unwrap()).sum::<f64>();
    let (joins, sent, received) = (total("joins"), total("sent"), total("received"));
    let secs = summaries
        .iter()
        .map(|s| s["secs"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(joins >= 400.0, "the flood made {joins} JOINs");
    // One hello per JOIN (and the flooder's own probe of the swarm), then the allowance.
    let bound = (joins + 2.0) * HELLO_LEN as f64 + ALL_BURST + ALL_RATE * (secs + 1.0);
    eprintln!(
        "join flood: {joins} JOINs in {secs:.1} s, {sent} bytes sent, {received} received from the owner: amplification {:.2} (bound {bound:.0} bytes)",
        received / sent
    );
    assert!(
        received <= bound,
        "the flood got {received} bytes from the owner, more than the bound {bound:.0}"
    );

    // The honest swarm: complete, trading among itself, and the owner's bytes to it as
    // without a flood (each chunk about once).
    let honest: BTreeSet<String> = swarm.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let to_honest: u64 = events_of(swarm.owner.as_ref().unwrap())
        .iter()
        .filter(|e| e["event"] == "chunk_sent" && honest.contains(e["peer"].as_str().unwrap_or("")))
        .filter_map(|e| e["bytes"].as_u64())
        .sum();
    assert!(
        to_honest as f64 <= 1.2 * SIZE as f64,
        "the owner sent the honest peers {to_honest} bytes for a {SIZE}-byte file"
    );
    // The honest peers were proven, each given its share of the first round, and the
    // shares are the file once.
    let owner_events = events_of(swarm.owner.as_ref().unwrap());
    let shares: Vec<u64> = owner_events
        .iter()
        .filter(|e| e["event"] == "owner_batch" && honest.contains(e["peer"].as_str().unwrap_or("")))
        .filter_map(|e| e["chunks"].as_u64())
        .collect();
    let chunks = SIZE.div_ceil(102_400) as u64;
    assert_eq!(shares.len(), PEERS, "every honest peer got a batch: {shares:?}");
    assert!(shares.iter().all(|&n| n > 0), "each a share: {shares:?}");
    assert_eq!(shares.iter().sum::<u64>(), chunks, "the shares are the file once");
    for i in 0..PEERS {
        let done = complete_event(swarm.peer(i));
        assert!(
            done["from_neighbor"].as_u64().unwrap_or(0) > 0,
            "peer {i} traded: {done}"
        );
    }
}
