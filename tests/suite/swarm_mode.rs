//! Beyond the ring: peers without a named neighbor, joined at staggered times, finding
//! each other through the owner and through gossip, finishing after the owner leaves; a
//! ring that loses a peer and the owner; a late joiner that comes in through a peer.

use std::time::Duration;

use swarmshare::manifest::hash_file;

use super::swarm::{complete_event, events_of, Swarm};
use super::util::wait_until;

fn chunk_count(swarm: &Swarm) -> u64 {
    u64::from(
        hash_file(&swarm.file, "payload.bin")
            .unwrap()
            .layout()
            .chunk_count(),
    )
}

/// Waits until the peers `which` together hold every chunk (from their logs).
fn wait_swarm_holds_all(swarm: &Swarm, which: &[usize], limit: Duration) {
    let total = chunk_count(swarm);
    let all = wait_until(limit, || swarm.received_by(which).len() as u64 == total);
    assert!(all, "the peers {which:?} never held every chunk between them");
}

#[test]
fn twelve_peers_in_swarm_mode_finish_after_the_owner_leaves() {
    let n = 12;
    let mut swarm = Swarm::new(8_000_000, n, 51);
    swarm.start_owner(n);
    for i in 0..n {
        swarm.start_swarm_peer(i);
        std::thread::sleep(Duration::from_millis(150));
    }
    // The owner's census says when every chunk has a copy among the peers.
    let owner = swarm.owner.as_ref().unwrap();
    let safe = wait_until(Duration::from_secs(60), || {
        events_of(owner).iter().any(|e| e["event"] == "safe_to_leave")
    });
    assert!(safe, "the owner never said it was safe to leave");
    assert!(owner.errors().contains("safe to leave"), "{}", owner.errors());
    let everyone: Vec<usize> = (0..n).collect();
    assert_eq!(
        swarm.received_by(&everyone).len() as u64,
        chunk_count(&swarm),
        "it was right"
    );
    swarm.owner.as_mut().unwrap().kill9();
    swarm.wait_all_complete(Duration::from_secs(120));
    let from_neighbors: u64 = (0..n)
        .map(|i| {
            complete_event(swarm.peer(i))["from_neighbor"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(from_neighbors > 0, "the peers traded among themselves");
}

#[test]
fn a_ring_that_loses_a_peer_and_the_owner_completes_through_gossip() {
    let mut swarm = Swarm::new(4_000_000, 5, 52);
    swarm.start_owner(5);
    for i in 0..5 {
        swarm.start_peer(i, swarm.ring_neighbor(i));
    }
    swarm.wait_joined(2);
    swarm.peer(2).kill9();
    let rest = [0, 1, 3, 4];
    wait_swarm_holds_all(&swarm, &rest, Duration::from_secs(60));
    swarm.owner.as_mut().unwrap().kill9();
    // Peer 2's named neighbor (peer 3) is gone for good: it finishes from the peers
    // it learned of.
    swarm.wait_complete(&rest, Duration::from_secs(90));
}

#[test]
fn a_late_joiner_comes_in_through_a_peer_after_the_owner_left() {
    let mut swarm = Swarm::new(3_000_000, 4, 53);
    swarm.start_owner(3);
    for i in 0..3 {
        swarm.start_swarm_peer(i);
    }
    swarm.wait_complete(&[0, 1, 2], Duration::from_secs(60));
    swarm.owner.as_mut().unwrap().kill9();
    // No owner on its command line at all: only a peer to join through.
    let positional = [swarm.ports[3].to_string()];
    let join = ["--join".to_owned(), format!("127.0.0.1:{}", swarm.ports[0])];
    swarm.start_peer_with(3, &positional, &join);
    swarm.wait_all_complete(Duration::from_secs(60));
    let done = complete_event(swarm.peer(3));
    assert_eq!(done["from_owner"], 0, "{done}");
    assert_eq!(
        done["from_neighbor"].as_u64(),
        Some(chunk_count(&swarm)),
        "{done}"
    );
}

#[test]
fn capped_peers_with_exit_when_done_complete_and_exit_cleanly() {
    let mut swarm = Swarm::new(3_000_000, 3, 54);
    swarm.peer_args = [
        "--exit-when-done",
        "--upload-limit",
        "4MB",
        "--download-limit",
        "8MB",
    ]
    .map(String::from)
    .to_vec();
    swarm.owner_args = ["--upload-limit", "2MB"].map(String::from).to_vec();
    swarm.start_owner(3);
    let started = std::time::Instant::now();
    for i in 0..3 {
        swarm.start_swarm_peer(i);
    }
    swarm.wait_all_complete(Duration::from_secs(60));
    let took = started.elapsed();
    for i in 0..3 {
        let p = swarm.peer(i);
        let status = p
            .wait_for(Duration::from_secs(60))
            .expect("exits on its own once done");
        assert!(
            status.success(),
            "peer{} exited with {status}: {}",
            i + 1,
            p.errors()
        );
    }
    // Every copy is still complete: nobody left while a neighbor still needed it.
    swarm.wait_all_complete(Duration::from_secs(1));
    // Every byte came out of the owner once, at no more than 2 MB/s (less a 50 ms burst):
    // a lower bound, so a slow machine cannot make this fail.
    let floor = Duration::from_secs_f64(3_000_000.0 / 2_000_000.0 - 0.05);
    assert!(took >= floor, "the owner beat its cap: all complete in {took:?}");
}

/// A peer that completes before anyone has asked it for anything still stays 3 s (its
/// chunks may be the only copies others have yet to find), then exits 0.
#[test]
fn exit_when_done_stays_three_seconds_after_completing() {
    let mut swarm = Swarm::new(1_000_000, 1, 55);
    // A lone peer with a batch sized for 5: it finishes from the owner after the 10 s
    // grace for neighbors, and nobody asks it anything meanwhile.
    swarm.peer_args = vec!["--exit-when-done".into()];
    swarm.start_owner(5);
    swarm.start_swarm_peer(0);
    let status = swarm
        .peer(0)
        .wait_for(Duration::from_secs(60))
        .expect("exits once done");
    assert!(status.success(), "{}", swarm.peer(0).errors());
    let events = super::swarm::events_of(swarm.peer(0));
    let at = |name: &str| {
        let e = events
            .iter()
            .find(|e| e["message"] == name)
            .unwrap_or_else(|| panic!("no {name:?} line"));
        let t = e["timestamp"].as_str().unwrap().to_owned();
        // RFC 3339 with a Z: seconds of the day are enough within one short test.
        let clock = &t[t.find('T').unwrap() + 1..t.len() - 1];
        let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    let stayed = at("done: exiting (--exit-when-done)") - at("download complete, file verified");
    assert!(stayed >= 2.9, "left {stayed:.2} s after completing");
}
