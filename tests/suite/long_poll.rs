//! `LIST_WAIT`, the long poll, against the real binary: a server holds the answer until it
//! has a chunk its last list on that connection did not name, answers at once when it
//! already has, and never holds it past its cap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use swarmshare::blocking::SecureStream;
use swarmshare::manifest::hash_file;

use super::hostile::{fetch_session, frame};
use super::protocol::Msg;
use super::swarm::Swarm;

/// Sends `msg` and reads the LIST that answers it: (chunks listed, seconds it took).
pub(super) fn ask(s: &mut SecureStream, msg: &Msg) -> (u32, f64) {
    // A regression fails the test instead of hanging the suite.
    s.socket()
        .set_read_timeout(Some(Duration::from_secs(70)))
        .unwrap();
    let t0 = Instant::now();
    s.write_all(&frame(msg)).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).unwrap();
    match Msg::decode(&payload) {
        Some(list @ Msg::List { .. }) => (list.listed().unwrap_or(0), t0.elapsed().as_secs_f64()),
        other => panic!("expected LIST, got {other:?}"),
    }
}

#[test]
fn list_wait_is_answered_when_the_server_gains_a_chunk() {
    let mut swarm = Swarm::new(3_000_000, 2, 77);
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    let (id, chunks) = (manifest.swarm_id(), manifest.layout().chunk_count());
    swarm.start_owner(2);
    let up = Instant::now();
    while TcpStream::connect(("127.0.0.1", swarm.owner_port)).is_err() {
        assert!(up.elapsed() < Duration::from_secs(30), "the owner never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The owner holds everything and never gains a chunk.
    let mut s = fetch_session(swarm.owner_port, id);
    let (n, secs) = ask(&mut s, &Msg::ListWait(5_000));
    assert_eq!(n, chunks, "the owner lists every chunk");
    assert!(secs < 2.0, "a first LIST_WAIT is answered at once ({secs:.2} s)");
    let (n, secs) = ask(&mut s, &Msg::ListWait(400));
    assert_eq!(n, chunks);
    assert!(
        secs >= 0.35,
        "with nothing new the answer is held for the wait ({secs:.2} s)"
    );
    let (_, secs) = ask(&mut s, &Msg::ListWait(u32::MAX));
    assert!(
        (4.5..9.0).contains(&secs),
        "a huge wait is cut to the 5 s cap ({secs:.2} s)"
    );

    // Peer 0 holds its batch and waits for peer 1, its neighbor, which is not up yet.
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_joined(0);
    let mut p = fetch_session(swarm.ports[0], id);
    // Its whole batch (half the chunks), and nothing more until peer 1 comes.
    let batch = chunks.div_ceil(2);
    let t0 = Instant::now();
    let before = loop {
        let (n, _) = ask(&mut p, &Msg::ListRequest);
        if n >= batch || t0.elapsed() > Duration::from_secs(30) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(before, batch, "peer 0 holds its batch only");
    let waiting = std::thread::spawn(move || ask(&mut p, &Msg::ListWait(60_000)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "nothing new: the long poll is held");
    swarm.start_peer(1, swarm.ports[0]);
    let (after, secs) = waiting.join().unwrap();
    assert!(
        after > before,
        "the answer names the new chunks ({before} -> {after})"
    );
    assert!(
        secs < 30.0,
        "answered as chunks arrived, not at a timeout ({secs:.2} s)"
    );
    swarm.wait_all_complete(Duration::from_secs(60));

    // Plain LIST_REQUESTs over and over: one list per 50 ms at most, however fast asked.
    for port in [swarm.ports[0], swarm.owner_port] {
        let mut s = fetch_session(port, id);
        let t0 = Instant::now();
        let mut lists = 0;
        while t0.elapsed() < Duration::from_secs(1) {
            ask(&mut s, &Msg::ListRequest);
            lists += 1;
        }
        assert!(
            (2..=22).contains(&lists),
            "{lists} lists in a second on port {port}"
        );
    }
}
