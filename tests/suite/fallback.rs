//! When a peer asks the owner instead of its download neighbor: real processes against
//! neighbors that are late, lie, send bad bytes or say nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use swarmshare::blocking::{Mode, SecureStream};

/// PROTOCOL.md: "At 3 strikes the client closes the connection and does not dial that
/// node again".
const MAX_STRIKES: u32 = 3;

use swarmshare::manifest::{hash_file, Manifest};

use super::protocol::{hello, Msg, HELLO_LEN, MSG_LIST_REQUEST, MSG_REQUEST, ROLE_PEER};
use super::swarm::{complete_event, events_of, Swarm};

#[derive(Clone, Copy, Debug)]
enum Liar {
    /// Lists every chunk, answers every request with NOT_HAVE.
    NotHave,
    /// Lists every chunk, answers every request with zeros of the right length.
    BadBytes,
    /// Completes the handshake, then never answers.
    Silent,
    /// Lists every chunk, answers a request for chunk N with chunk N+1 (correct bytes).
    Unrequested,
    /// Answers the first MAX_STRIKES requests of a connection with zeros, then honestly.
    BadThenGood,
}

/// A fake download neighbor for `manifest`'s swarm that behaves like `liar` on every
/// connection. Its threads end when the test process does.
fn fake_neighbor(manifest: Manifest, file: std::path::PathBuf, liar: Liar) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (manifest, file) = (manifest.clone(), file.clone());
            std::thread::spawn(move || {
                let _ = serve_lies(stream, &manifest, &file, port, liar);
            });
        }
    });
    port
}

fn serve_lies(
    s: TcpStream,
    manifest: &Manifest,
    file: &std::path::Path,
    port: u16,
    liar: Liar,
) -> std::io::Result<()> {
    let mut s = SecureStream::accept(s, &Mode::Open, Duration::from_secs(60))?;
    let mine = hello(ROLE_PEER, port, Some(manifest.swarm_id()), s.id());
    s.write_all(&mine)?;
    s.read_exact(&mut [0u8; HELLO_LEN])?;
    let layout = manifest.layout();
    let mut requests = 0u32;
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut payload)?;
        let answer = match (liar, payload.first().copied()) {
            (Liar::Silent, _) => continue,
            (_, Some(MSG_LIST_REQUEST)) => Msg::full_list(layout.chunk_count()),
            (Liar::NotHave, Some(MSG_REQUEST)) => Msg::NotHave(id_of(&payload)),
            (Liar::Unrequested, Some(MSG_REQUEST)) => {
                let id = (id_of(&payload) + 1) % layout.chunk_count();
                let (start, len) = (
                    u64::from(id) * u64::from(layout.chunk_size()),
                    layout.chunk_len(id).unwrap(),
                );
                let data = std::fs::read(file).unwrap();
                Msg::Chunk {
                    id,
                    data: data[start as usize..][..len as usize].to_vec(),
                }
            }
            (Liar::BadThenGood, Some(MSG_REQUEST)) => {
                requests += 1;
                let id = id_of(&payload);
                let (start, len) = (
                    u64::from(id) * u64::from(layout.chunk_size()),
                    layout.chunk_len(id).unwrap(),
                );
                let data = if requests <= MAX_STRIKES {
                    vec![0u8; len as usize]
                } else {
                    std::fs::read(file).unwrap()[start as usize..][..len as usize].to_vec()
                };
                Msg::Chunk { id, data }
            }
            (Liar::BadBytes, Some(MSG_REQUEST)) => {
                let id = id_of(&payload);
                let len = layout.chunk_len(id).unwrap() as usize;
                Msg::Chunk {
                    id,
                    data: vec![0u8; len],
                }
            }
            _ => return Ok(()),
        };
        s.write_all(&answer.frame())?;
    }
}

fn id_of(request: &[u8]) -> u32 {
    u32::from_be_bytes(request[1..5].try_into().unwrap())
}

#[test]
fn peers_whose_neighbor_lies_or_stays_silent_complete_from_the_owner() {
    let liars = [Liar::NotHave, Liar::BadBytes, Liar::Silent, Liar::Unrequested];
    let mut swarm = Swarm::new(1_500_000, liars.len(), 11).pure_ring();
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    swarm.start_owner(10);
    for (i, liar) in liars.iter().enumerate() {
        let port = fake_neighbor(manifest.clone(), swarm.file.clone(), *liar);
        swarm.start_peer(i, port);
    }
    swarm.wait_all_complete(Duration::from_secs(90));
    let chunks = manifest.layout().chunk_count();
    for (i, liar) in liars.iter().enumerate() {
        let done = complete_event(swarm.peer(i));
        assert_eq!(done["from_neighbor"], 0, "{liar:?}: {done}");
        assert_eq!(done["from_owner"], chunks, "{liar:?}: {done}");
    }
    // Bad bytes are strikes; at the limit the sender is dropped for good.
    let log = events_of(swarm.peer(1));
    let failures = log.iter().filter(|e| e["event"] == "hash_failure").count();
    assert_eq!(
        failures as u32, MAX_STRIKES,
        "one hash failure per strike, then a ban"
    );
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("banned"))),
        "the ban was logged"
    );
    let unrequested = events_of(swarm.peer(3));
    assert!(
        unrequested
            .iter()
            .any(|e| e["cause"].as_str().is_some_and(|c| c.contains("but requested"))),
        "the unrequested chunk was refused and logged"
    );
}

#[test]
fn a_neighbor_that_comes_up_late_is_waited_for() {
    // Two peers, batches sized for two: between them they hold every chunk. Peer 1's
    // neighbor starts 4 s later (longer than the stall limit, shorter than the grace), so
    // peer 1 must get the other half from it, not from the owner.
    let mut swarm = Swarm::new(2_000_000, 2, 12).pure_ring();
    swarm.start_owner(2);
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_joined(0);
    std::thread::sleep(Duration::from_secs(4));
    swarm.start_peer(1, swarm.ports[0]);
    swarm.wait_all_complete(Duration::from_secs(60));
    let done = complete_event(swarm.peer(0));
    let batch = 10; // ceil(20 chunks / 2)
    assert_eq!(done["from_owner"], batch, "only the batch from the owner: {done}");
    assert_eq!(done["from_neighbor"], 20 - batch, "{done}");
}

/// A pinned neighbor that serves at a trickle may hold a full window of requests; once
/// every chunk still missing is in flight there, the other neighbors fetch them too (the
/// endgame), so the slow one cannot set the pace for the last chunks.
#[test]
fn a_slow_pinned_neighbor_does_not_hold_up_the_last_chunks() {
    let mut swarm = Swarm::new(2_000_000, 3, 61);
    let (a, b, c) = (0, 1, 2);
    // B and C each get the whole file in the owner's batch (batches sized for one peer).
    swarm.start_owner(1);
    let (owner, pa, pb, pc) = (swarm.owner_port, swarm.ports[a], swarm.ports[b], swarm.ports[c]);
    swarm.start_peer_with(
        b,
        &[owner.to_string(), pb.to_string()],
        &["--upload-limit".into(), "30KB".into()],
    );
    swarm.start_peer_with(c, &[owner.to_string(), pc.to_string()], &[]);
    swarm.wait_complete(&[b, c], Duration::from_secs(60));
    // B must know C (from the owner's peer list) before the owner goes.
    std::thread::sleep(Duration::from_secs(3));
    swarm.owner.as_mut().unwrap().kill9();
    // A joins through B, pinned to B (30 KB/s: 3.4 s a chunk), and learns C from B.
    swarm.start_peer_with(
        a,
        &[owner.to_string(), pa.to_string(), pb.to_string()],
        &["--join".into(), format!("127.0.0.1:{pb}")],
    );
    swarm.wait_complete(&[a], Duration::from_secs(120));
    let from_b = events_of(swarm.peer(a))
        .iter()
        .filter(|e| e["event"] == "chunk_received" && e["peer"] == format!("127.0.0.1:{pb}"))
        .count();
    let report = complete_event(swarm.peer(a));
    println!("A: {from_b} chunks from the slow neighbor; {report}");
    let _ = std::fs::copy(&swarm.peer(a).stdout, "/tmp/slowA.out");
    assert!(
        from_b <= 2,
        "the slow pinned neighbor delivered {from_b} of A's chunks"
    );
}

#[test]
fn a_ban_mid_pipeline_leaves_no_stored_chunk_unrecorded() {
    let mut swarm = Swarm::new(3_000_000, 1, 12).pure_ring();
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    swarm.start_owner(10);
    let port = fake_neighbor(manifest.clone(), swarm.file.clone(), Liar::BadThenGood);
    swarm.start_peer(0, port);
    swarm.wait_all_complete(Duration::from_secs(90));
    let chunks = manifest.layout().chunk_count();
    let done = complete_event(swarm.peer(0));
    let log = events_of(swarm.peer(0));
    let received = log.iter().filter(|e| e["event"] == "chunk_received").count();
    let failures = log.iter().filter(|e| e["event"] == "hash_failure").count();
    assert_eq!(
        failures as u32, MAX_STRIKES,
        "the bad chunks, each counted once: {done}"
    );
    let total = done["from_neighbor"].as_u64().unwrap() + done["from_owner"].as_u64().unwrap();
    assert_eq!(total, u64::from(chunks), "every chunk counted once: {done}");
    assert_eq!(received as u32, chunks, "one chunk_received per chunk");
}
