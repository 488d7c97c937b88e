//! End to end: the real binary as separate processes on ephemeral loopback ports.

use std::time::Duration;

use super::protocol::Msg;
use super::scripted;
use super::swarm::{complete_event, event_names, events_of, Swarm};
use super::util::{free_port, random_file, Proc};

const SEED_EVENTS: [&str; 6] = [
    "chunk_received",
    "chunk_sent",
    "chunk_list_received",
    "chunk_list_sent",
    "chunk_request_sent",
    "chunk_request_received",
];

fn run_ring(size: usize, n: usize, seed: u64) -> Swarm {
    let mut swarm = Swarm::new(size, n, seed);
    swarm.start_owner(n);
    for i in 0..n {
        let neighbor = swarm.ring_neighbor(i);
        swarm.start_peer(i, neighbor);
    }
    swarm.wait_all_complete(Duration::from_secs(90));
    swarm
}

#[test]
fn ring_of_five_3mb_logs_all_six_events_and_shuts_down_cleanly() {
    let mut swarm = run_ring(3_000_000, 5, 1);
    for i in 0..5 {
        let names = event_names(swarm.peer(i));
        for event in SEED_EVENTS {
            assert!(
                names.contains(event),
                "peer{} never logged {event}; saw {names:?}",
                i + 1
            );
        }
        for e in events_of(swarm.peer(i))
            .iter()
            .filter(|e| e["event"] == "chunk_received")
        {
            assert!(
                e["chunk"].is_u64() && e["peer"].is_string() && e["timestamp"].is_string(),
                "bad event {e}"
            );
        }
        let done = complete_event(swarm.peer(i));
        assert!(
            done["from_neighbor"].as_u64().unwrap() > 0,
            "peer{} got nothing from its neighbor: {done}",
            i + 1
        );
    }
    // The summary file lists every chunk.
    let summary = std::fs::read_to_string(swarm.peer_dir(0).join(".swarmshare/summary")).unwrap();
    let ids: Vec<u32> = summary
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(ids, (0..30).collect::<Vec<u32>>());
    for i in 0..5 {
        let status = swarm
            .peer(i)
            .terminate(Duration::from_secs(10))
            .expect("peer exits on SIGTERM");
        assert!(status.success(), "peer{} exited with {status}", i + 1);
    }
    let owner = swarm.owner.as_mut().unwrap();
    let start = events_of(owner)
        .into_iter()
        .find(|e| e["event"] == "owner_start")
        .expect("owner_start logged");
    let swarm_id = start["swarm"].as_str().expect("swarm ID in owner_start");
    assert_eq!(swarm_id.len(), 64, "{start}");
    assert!(
        owner.errors().contains(&format!("is swarm {swarm_id}")),
        "swarm ID printed on stderr: {}",
        owner.errors()
    );
    assert!(owner
        .terminate(Duration::from_secs(10))
        .expect("owner exits")
        .success());
}

#[test]
fn ring_of_five_25mb() {
    let swarm = run_ring(25_000_000, 5, 2);
    let from_neighbors: u64 = swarm
        .peers
        .iter()
        .flatten()
        .map(|p| complete_event(p)["from_neighbor"].as_u64().unwrap())
        .sum();
    // 245 chunks; each peer gets ceil(245/5) = 49 from the owner's batch, the rest
    // (196 each) should mostly come around the ring, not from the owner.
    assert!(
        from_neighbors >= 5 * 150,
        "ring carried only {from_neighbors} chunks"
    );
}

#[test]
fn ring_of_two() {
    // --peers 2 on the owner: each of the two gets half the chunks in its batch.
    let mut swarm = Swarm::new(1_500_000, 2, 3);
    swarm.start_owner(2);
    swarm.start_peer(0, swarm.ports[1]);
    swarm.start_peer(1, swarm.ports[0]);
    swarm.wait_all_complete(Duration::from_secs(60));
}

#[test]
fn ring_without_fsync_completes_with_a_true_summary() {
    let mut swarm = Swarm::new(2_500_000, 3, 31);
    swarm.peer_args = vec!["--no-fsync".into()];
    swarm.start_owner(3);
    for i in 0..3 {
        let neighbor = swarm.ring_neighbor(i);
        swarm.start_peer(i, neighbor);
    }
    swarm.wait_all_complete(Duration::from_secs(60));
    // Complete means the summary lists every chunk and the partial file is the file now.
    let chunks = swarmshare::manifest::Layout::for_size(2_500_000)
        .unwrap()
        .chunk_count();
    for i in 0..3 {
        let store = swarm.peer_dir(i).join(".swarmshare");
        let text = std::fs::read_to_string(store.join("summary")).unwrap();
        let listed = super::protocol::summary_ids(&text);
        assert_eq!(
            listed,
            (0..chunks).collect::<Vec<u32>>(),
            "peer {i}'s summary lists every chunk"
        );
        assert!(
            !store.join("partial").exists(),
            "peer {i}'s partial file became the finished file"
        );
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "nothing left in tmp/"
        );
    }
}

#[test]
fn peers_started_in_reverse_order_then_the_owner() {
    let mut swarm = Swarm::new(2_000_000, 4, 4);
    for i in (0..4).rev() {
        let neighbor = swarm.ring_neighbor(i);
        swarm.start_peer(i, neighbor);
        std::thread::sleep(Duration::from_millis(300));
    }
    swarm.start_owner(4);
    swarm.wait_all_complete(Duration::from_secs(90));
}

#[test]
fn open_chain_tail_falls_back_to_the_owner() {
    // peer1 <- peer2 <- peer3 <- (nobody listens). The owner sizes batches for 5 peers,
    // so 2/5 of the chunks are in no batch: only the owner can supply them.
    let mut swarm = Swarm::new(2_000_000, 3, 5).pure_ring();
    let dead = free_port();
    swarm.start_owner(5);
    swarm.start_peer(2, dead);
    swarm.start_peer(1, swarm.ports[2]);
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_all_complete(Duration::from_secs(90));
    let tail = complete_event(swarm.peer(2));
    let batch = 4; // ceil(20 chunks / 5)
    assert_eq!(tail["from_neighbor"], 0, "{tail}");
    assert_eq!(
        tail["from_owner"], 20,
        "the tail must get every chunk from the owner: {tail}"
    );
    assert!(tail["from_owner"].as_u64().unwrap() > batch);
}

#[test]
fn peer_naming_its_own_port_as_neighbor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut p = Proc::start(
        dir.path(),
        "self",
        &[
            "peer",
            "5000",
            &port,
            &port,
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let status = p.wait_for(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("own port"), "{err}");
    assert!(!dir.path().join(".swarmshare").exists(), "nothing written");
}

#[test]
fn peer_on_a_busy_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let mut p = Proc::start(
        dir.path(),
        "busy",
        &[
            "peer",
            "5000",
            &port,
            "5002",
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let status = p.wait_for(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("already in use"), "{err}");
}

#[test]
fn owner_on_a_busy_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    random_file(&file, 600_000, 6);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let mut p = Proc::start(
        dir.path(),
        "owner",
        &[
            "owner",
            &port,
            file.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let status = p.wait_for(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    assert!(p.errors().contains("already in use"), "{}", p.errors());
}

#[test]
fn demo_subcommand_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(
        dir.path(),
        "demo",
        &["demo", "--peers", "3", "--size", "1MiB", "--timeout", "60"],
    );
    let status = p.wait_for(Duration::from_secs(90)).expect("demo exits");
    assert!(status.success(), "demo failed: {}", p.errors());
    let out = p.output();
    assert!(out.contains("all 3 copies are byte-identical"), "{out}");
    for name in ["peer1", "peer2", "peer3"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(name)),
            "no summary row for {name}"
        );
    }
}

#[test]
fn peer_refuses_a_manifest_whose_name_is_a_path() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("escape");
    random_file(&src, 1000, 7);
    let good = swarmshare::manifest::hash_file(&src, "escape")
        .unwrap()
        .encoded()
        .to_vec();
    for bad_name in [&b"../esc"[..], b"/etc/x"] {
        // Same length as "escape", so only the name changes; the name starts at byte 56.
        let mut bytes = good.clone();
        bytes[56..62].copy_from_slice(bad_name);
        let (port, owner) = scripted::owner(bytes, scripted::until_closed);
        let dir = root.path().join("peer");
        let mut p = scripted::peer_of(root.path(), port);
        let status = p.wait_for(Duration::from_secs(20)).expect("peer exits");
        owner.join().unwrap();
        assert_eq!(status.code(), Some(1), "stderr: {}", p.errors());
        let err = p.errors();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("refuses") && err.contains("path separator"), "{err}");
        assert!(
            !dir.join(".swarmshare").exists(),
            "nothing written for a refused manifest"
        );
        let entries: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            entries.iter().all(|n| n != "esc" && n != "x"),
            "wrote outside its directory: {entries:?}"
        );
    }
}

#[test]
fn a_peer_port_given_as_the_owner_is_refused() {
    let mut swarm = Swarm::new(600_000, 2, 13);
    swarm.start_owner(2);
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_joined(0);
    // Peer 2 names peer 1's port where the owner's belongs.
    swarm.owner_port = swarm.ports[0];
    swarm.start_peer(1, swarm.ports[0]);
    let p = swarm.peer(1);
    let status = p.wait_for(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(2), "stderr: {}", p.errors());
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a swarmshare owner"), "{err}");
}

#[test]
fn a_directory_in_the_way_of_the_file_is_refused_before_downloading() {
    let mut swarm = Swarm::new(600_000, 1, 14);
    std::fs::create_dir_all(swarm.peer_dir(0).join("payload.bin")).unwrap();
    swarm.start_owner(1);
    swarm.start_peer(0, free_port());
    let p = swarm.peer(0);
    let status = p.wait_for(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(2), "stderr: {}", p.errors());
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("payload.bin") && err.contains("already exists"),
        "{err}"
    );
    assert!(
        !swarm.peer_dir(0).join(".swarmshare").exists(),
        "nothing downloaded"
    );
}

#[test]
fn a_batch_chunk_is_logged_when_stored_not_when_the_next_frame_comes() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("payload.bin");
    random_file(&src, 600_000, 17);
    let manifest = swarmshare::manifest::hash_file(&src, "payload.bin").unwrap();
    let first = std::fs::read(&src).unwrap()[..102_400].to_vec();
    let log = root.path().join("peer.out");
    let watched = log.clone();
    let (tx, seen) = std::sync::mpsc::channel();
    // The owner sends one chunk of its batch and then nothing until the peer has logged
    // it: a peer that records a chunk only when the next frame arrives never does.
    let (port, owner) = scripted::owner(manifest.encoded().to_vec(), move |s| {
        use std::io::Write;
        s.write_all(&Msg::Chunk { id: 0, data: first }.frame()).unwrap();
        let logged = super::util::wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&watched).is_ok_and(|out| out.contains("chunk received"))
        });
        tx.send(logged).unwrap();
        let _ = s.write_all(&Msg::BatchEnd(1).frame());
        scripted::until_closed(s);
    });
    let peer = scripted::peer_of(root.path(), port);
    let logged = seen.recv_timeout(Duration::from_secs(30)).unwrap_or(false);
    assert!(
        logged,
        "chunk 0 was not logged while the owner held its batch open: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(peer);
    owner.join().unwrap();
}
