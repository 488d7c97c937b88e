//! A scripted hostile peer against the real binary over real TCP: oversized length
//! prefixes, truncated frames, garbage, wrong swarm IDs, out-of-range chunk IDs, unsolicited
//! messages, request floods, idle and trickling connections. After all of them at once, the
//! honest peers complete with byte-identical files and the victims are alive and serving.
//! (A neighbor that sends wrong or unrequested chunks is in `fallback`.)

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use swarmshare::blocking::{Mode, SecureStream};
use swarmshare::manifest::{hash_file, SwarmId};

use super::protocol::{hello, Msg, BOTH, HELLO_LEN, ROLE_FETCH, ROLE_JOIN, ROLE_PEER};
use super::swarm::{events_of, Swarm};

/// The upload server's connection limit (PROTOCOL.md, "Timeouts and limits").
const LIMIT: usize = 256;

/// A plain TCP connection: nothing of the handshake sent.
fn dial(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// A connection whose encrypted handshake is done, under a fresh key.
pub(super) fn secure(port: u16) -> SecureStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    SecureStream::connect(addr, &Mode::Open, Duration::from_secs(60)).unwrap()
}

/// A valid FETCH hello for `swarm` from a client that does not listen.
fn fetch_hello(s: &SecureStream, swarm: SwarmId) -> [u8; HELLO_LEN] {
    hello(ROLE_FETCH, 0, Some(swarm), s.id())
}

/// Dials and completes a FETCH handshake for `swarm`.
pub(super) fn fetch_session(port: u16, swarm: SwarmId) -> SecureStream {
    let mut s = secure(port);
    let mine = fetch_hello(&s, swarm);
    s.write_all(&mine).unwrap();
    let mut theirs = [0u8; HELLO_LEN];
    s.read_exact(&mut theirs).unwrap();
    s
}

pub(super) fn frame(msg: &Msg) -> Vec<u8> {
    msg.frame()
}

/// Reads until the other side closes; true if it did within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Whether the other side has closed, without waiting: drains what is readable now.
fn is_closed_now(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// A 4 GiB length prefix, then bytes until the victim hangs up; returns bytes sent.
fn huge_prefix(port: u16, swarm: SwarmId) -> u64 {
    let mut s = fetch_session(port, swarm);
    let junk = vec![0xAB; 64 * 1024];
    let mut sent = 0u64;
    if s.write_all(&u32::MAX.to_be_bytes()).is_err() {
        return 0;
    }
    while sent < 256 * 1024 * 1024 {
        match s.write(&junk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    sent
}

/// The attacks that each end with the victim closing the connection.
fn one_shot_attacks(port: u16, swarm: SwarmId, chunks: u32) -> Vec<(&'static str, bool)> {
    let mut rng = SmallRng::seed_from_u64(99);
    let mut garbage = vec![0u8; 64 * 1024];
    rng.fill_bytes(&mut garbage);
    let mut results = Vec::new();
    let mut raw = dial(port);
    let _ = raw.write_all(&garbage);
    results.push((
        "garbage before the handshake",
        closed_within(&mut raw, Duration::from_secs(20)),
    ));
    let preamble = [b'S', b'W', b'S', b'H', super::protocol::VERSION, 0, 0, 0];
    let mut truncated = dial(port);
    let _ = truncated.write_all(&[&preamble[..], &[0, 48], &garbage[..20]].concat());
    let _ = truncated.shutdown(Shutdown::Write);
    results.push((
        "a handshake cut short",
        closed_within(&mut truncated, Duration::from_secs(20)),
    ));
    let mut oversized = dial(port);
    let _ = oversized.write_all(&[&preamble[..], &[0xFF, 0xFF], &garbage[..]].concat());
    results.push((
        "an oversized handshake message",
        closed_within(&mut oversized, Duration::from_secs(20)),
    ));
    let mut forged = dial(port);
    let _ = forged.write_all(&[&preamble[..], &[0, 48], &garbage[..48]].concat());
    results.push((
        "a forged first handshake message",
        closed_within(&mut forged, Duration::from_secs(20)),
    ));
    let mut unsealed = fetch_session(port, swarm);
    let _ = unsealed.socket().write_all(&garbage);
    results.push((
        "unsealed garbage after the handshake",
        closed_within(unsealed.socket(), Duration::from_secs(20)),
    ));
    let mut attack = |name: &'static str, mut s: SecureStream, bytes: &[u8]| {
        let _ = s.write_all(bytes);
        results.push((name, closed_within(s.socket(), Duration::from_secs(20))));
    };
    attack(
        "garbage after the handshake",
        fetch_session(port, swarm),
        &garbage,
    );
    let s = secure(port);
    let wrong = hello(ROLE_FETCH, 0, Some(SwarmId([7; 32])), s.id());
    attack("wrong swarm ID", s, &wrong);
    attack(
        "chunk ID = count",
        fetch_session(port, swarm),
        &frame(&Msg::Request(chunks)),
    );
    attack(
        "chunk ID = u32::MAX",
        fetch_session(port, swarm),
        &frame(&Msg::Request(u32::MAX)),
    );
    let unsolicited = Msg::Chunk {
        id: 0,
        data: vec![0u8; 1000],
    };
    attack(
        "unrequested CHUNK sent to a server",
        fetch_session(port, swarm),
        &frame(&unsolicited),
    );
    // A REQUEST frame one byte longer than any request may be.
    attack(
        "frame over the request limit",
        fetch_session(port, swarm),
        &[0, 0, 0, 6, 5, 0, 0, 0, 1, 0],
    );
    let mut truncated = frame(&Msg::Request(1));
    truncated.truncate(6);
    let mut s = fetch_session(port, swarm);
    let _ = s.write_all(&truncated);
    let _ = s.socket().shutdown(Shutdown::Write);
    results.push((
        "truncated frame then EOF",
        closed_within(s.socket(), Duration::from_secs(20)),
    ));
    results
}

/// Dials and offers a two-way link (a FETCH hello with the `0x80` bit, listen port 0);
/// returns the stream and whether the server took the offer.
fn two_way_session(port: u16, swarm: SwarmId) -> (SecureStream, bool) {
    let mut s = secure(port);
    let mine = hello(ROLE_FETCH | BOTH, 0, Some(swarm), s.id());
    s.write_all(&mine).unwrap();
    let mut theirs = [0u8; HELLO_LEN];
    s.read_exact(&mut theirs).unwrap();
    (s, theirs[5] == ROLE_PEER | BOTH)
}

/// Attacks on two-way links (each ends with the victim closing): the name, whether the
/// victim took the offer, and whether it closed.
fn two_way_attacks(port: u16, swarm: SwarmId) -> Vec<(&'static str, bool, bool)> {
    let mut results = Vec::new();
    let mut attack = |name: &'static str, bytes: &[u8]| {
        let (mut s, took) = two_way_session(port, swarm);
        let _ = s.write_all(bytes);
        results.push((name, took, closed_within(s.socket(), Duration::from_secs(20))));
    };
    attack(
        "an answer to no request on a two-way link",
        &frame(&Msg::NotHave(0)),
    );
    attack(
        "a MANIFEST on a two-way link",
        &frame(&Msg::Manifest(vec![0u8; 64])),
    );
    // Requests sent without reading a byte of the answers: the victim's answers stop
    // on TCP flow control, and past 64 unanswered requests the link is closed.
    let flood: Vec<u8> = (0..400).flat_map(|_| frame(&Msg::Request(0))).collect();
    attack("400 requests unanswered on a two-way link", &flood);
    let mut s = secure(port);
    let join_both = hello(ROLE_JOIN | BOTH, 0, None, s.id());
    let _ = s.write_all(&join_both);
    results.push((
        "a JOIN hello with the two-way bit",
        true,
        closed_within(s.socket(), Duration::from_secs(20)),
    ));
    results
}

/// A frame of type `kind` with `body`, whatever this build thinks of it.
fn raw_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// The role byte of a relay's client (PROTOCOL.md, "Relays and hole punching").
const ROLE_RELAY: u8 = 7;
/// 127.0.0.1:7000 as an address body: family, IP, port.
const AN_ADDRESS: [u8; 7] = [4, 127, 0, 0, 1, 0x1b, 0x58];

/// A connection to `port` as a relay's client; whether the relay answered as a peer.
fn relay_session(port: u16, swarm: SwarmId) -> (SecureStream, bool) {
    let mut s = secure(port);
    let mine = hello(ROLE_RELAY, 0, Some(swarm), s.id());
    s.write_all(&mine).unwrap();
    let mut theirs = [0u8; HELLO_LEN];
    s.read_exact(&mut theirs).unwrap();
    (s, theirs[5] == ROLE_PEER)
}

/// Attacks on a peer as a relay (each ends with it closing): the name, whether it took
/// the connection as a relay, and whether it closed.
fn relay_attacks(port: u16, swarm: SwarmId) -> Vec<(&'static str, bool, bool)> {
    let mut results = Vec::new();
    let mut attack = |name: &'static str, bytes: Vec<u8>| {
        let (mut s, took) = relay_session(port, swarm);
        let _ = s.write_all(&bytes);
        results.push((name, took, closed_within(s.socket(), Duration::from_secs(20))));
    };
    attack(
        "a RELAY naming no introduction",
        raw_frame(16, &7u64.to_be_bytes()),
    );
    attack("RELAYING sent to a relay", raw_frame(17, &[]));
    attack("a REQUEST sent to a relay", frame(&Msg::Request(0)));
    let mut intro = 1u64.to_be_bytes().to_vec();
    intro.push(1);
    intro.extend_from_slice(&[9u8; 16]);
    intro.extend_from_slice(&AN_ADDRESS);
    intro.push(0);
    let on_reservation = [raw_frame(13, &AN_ADDRESS), raw_frame(15, &intro)].concat();
    attack("an INTRODUCE sent on a reservation", on_reservation);
    attack(
        "a RESERVE with a bad address family",
        raw_frame(13, &[5, 1, 2, 3, 4, 0, 1]),
    );
    results
}

/// Opens `n` reservations at once from this host (each under its own key), and counts
/// those the relay took (answered `RESERVED`).
fn reservations(port: u16, swarm: SwarmId, n: usize) -> usize {
    let mut held = Vec::new();
    let mut taken = 0;
    for _ in 0..n {
        let (mut s, took) = relay_session(port, swarm);
        if !took {
            continue;
        }
        s.write_all(&raw_frame(13, &AN_ADDRESS)).unwrap();
        let mut head = [0u8; 5];
        if s.read_exact(&mut head).is_ok() && head[4] == 14 {
            taken += 1;
        }
        held.push(s);
    }
    taken
}

/// Pipelines `n` requests of every kind while draining the answers; returns answers read.
fn flood(port: u16, swarm: SwarmId, chunks: u32, n: u32) -> u64 {
    let s = fetch_session(port, swarm);
    let mut reader = s.try_clone().unwrap();
    let drain = thread::spawn(move || {
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(k) = reader.read(&mut buf) {
            if k == 0 {
                break;
            }
            total += k as u64;
        }
        total
    });
    let mut w = s;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(frame(&Msg::Request(i % chunks)));
        batch.extend(frame(&Msg::ListRequest));
    }
    let _ = w.write_all(&batch);
    thread::sleep(Duration::from_secs(3));
    let _ = w.socket().shutdown(Shutdown::Both);
    drain.join().unwrap()
}

/// Opens `n` connections that never speak; returns how many the victim still held after
/// a second (the rest were refused) and whether all were closed within `limit`.
fn idle_connections(port: u16, n: usize, limit: Duration) -> (usize, bool) {
    let mut conns: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    thread::sleep(Duration::from_secs(1));
    let mut held = 0;
    for s in &mut conns {
        // An accepted connection waits for our handshake; a refused one is closed.
        held += usize::from(!is_closed_now(s));
    }
    let all_closed = conns.iter_mut().all(|s| closed_within(s, limit));
    (held, all_closed)
}

/// Starts a frame after the handshake and then sends nothing; true if the victim hung up
/// within `limit`.
fn stalled_frame(port: u16, swarm: SwarmId, limit: Duration) -> bool {
    let mut s = fetch_session(port, swarm);
    let _ = s.write_all(&[0, 0]);
    closed_within(s.socket(), limit)
}

/// Sends the handshake's preamble and then zeros one byte every 2 s; true if the victim
/// hung up before the end.
fn trickle(port: u16) -> bool {
    let mut s = dial(port);
    let mut bytes = b"SWSH".to_vec();
    bytes.extend([super::protocol::VERSION, 0, 0, 0]);
    bytes.extend([0u8; 24]);
    for b in bytes {
        if s.write_all(&[b]).is_err() {
            return true;
        }
        thread::sleep(Duration::from_secs(2));
        if is_closed_now(&mut s) {
            return true;
        }
    }
    false
}

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::spawn(f)
}

/// What a peer holds after its batch alone: ceil(chunks / 3) for the owner's `--peers 3`.
fn manifest_batch(chunks: u32) -> u32 {
    chunks.div_ceil(3)
}

/// The victim's answer to a fresh LIST_REQUEST: how many chunks it lists.
fn listed(port: u16, swarm: SwarmId) -> u32 {
    super::long_poll::ask(&mut fetch_session(port, swarm), &Msg::ListRequest).0
}

#[test]
fn hostile_peers_do_not_stop_the_swarm() {
    let mut swarm = Swarm::new(6_000_000, 3, 21);
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    let (id, chunks) = (manifest.swarm_id(), manifest.layout().chunk_count());
    swarm.start_owner(3);
    // The victim: peer 1, whose download neighbor (peer 2) is not up yet.
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_joined(0);
    let (victim, owner) = (swarm.ports[0], swarm.owner_port);

    // Phase 0: two-way links, one at a time (each takes a downloader seat, and the victim,
    // still downloading, an inbound slot for each).
    for (attack, took, closed) in two_way_attacks(victim, id) {
        assert!(took, "the victim did not take the two-way offer of: {attack}");
        assert!(closed, "the victim did not close the connection after: {attack}");
    }

    // The victim as a relay: messages out of place, and reservations from one address
    // beyond its share (8).
    for (attack, took, closed) in relay_attacks(victim, id) {
        assert!(took, "the victim did not take the relay connection of: {attack}");
        assert!(closed, "the victim did not close the connection after: {attack}");
    }
    let taken = reservations(victim, id, 12);
    assert_eq!(taken, 8, "reservations taken from one address");

    // Phase 1, all at once: every attack that ends with the victim hanging up.
    let prefix: Vec<_> = [victim, owner].map(|p| spawn(move || huge_prefix(p, id))).into();
    let shots: Vec<_> = [victim, owner]
        .map(|p| spawn(move || one_shot_attacks(p, id, chunks)))
        .into();
    let flood = spawn(move || flood(victim, id, chunks, 20_000));
    let trickle = spawn(move || trickle(victim));
    let stalled = spawn(move || stalled_frame(victim, id, Duration::from_secs(30)));
    for (h, who) in prefix.into_iter().zip(["peer", "owner"]) {
        let sent = h.join().unwrap();
        println!("{who}: took {sent} bytes of a 4 GiB frame before hanging up");
        assert!(
            sent < 64 << 20,
            "{who} read {sent} bytes of a 4 GiB frame before hanging up"
        );
    }
    for (h, who) in shots.into_iter().zip(["peer", "owner"]) {
        for (attack, closed) in h.join().unwrap() {
            assert!(closed, "{who} did not close the connection after: {attack}");
        }
    }
    assert!(flood.join().unwrap() > 0, "the flood got answers");
    assert!(trickle.join().unwrap(), "a trickled hello was cut off");
    assert!(stalled.join().unwrap(), "a stalled frame was cut off");
    let held = listed(victim, id);
    assert!(
        held >= manifest_batch(chunks),
        "the victim serves after phase 1 ({held} listed)"
    );

    // Phase 2: 500 silent connections to each, and the honest peers arrive meanwhile.
    let idle: Vec<_> = [victim, owner]
        .map(|p| spawn(move || idle_connections(p, 500, Duration::from_secs(25))))
        .into();
    thread::sleep(Duration::from_millis(500));
    swarm.start_peer(1, swarm.ports[2]);
    swarm.start_peer(2, swarm.ports[0]);
    for (h, who) in idle.into_iter().zip(["peer", "owner"]) {
        let (held, all_closed) = h.join().unwrap();
        println!("{who}: held {held} of 500 idle connections (limit {LIMIT})");
        assert!(held > 0 && held <= LIMIT, "{who} held {held} idle connections");
        assert!(
            all_closed,
            "{who} kept idle connections past the handshake timeout"
        );
    }

    swarm.wait_all_complete(Duration::from_secs(120));
    let hwm = swarm.peer(0).status_kib("VmHWM").unwrap_or(0);
    println!("victim peer peak RSS: {:.1} MiB", hwm as f64 / 1024.0);
    assert!(hwm < 64 * 1024, "victim peak RSS {hwm} KiB");
    assert!(swarm.peer(0).is_alive(), "victim peer alive");
    assert!(swarm.owner.as_mut().unwrap().is_alive(), "owner alive");
    assert_eq!(
        listed(victim, id),
        chunks,
        "the victim still serves its full list"
    );
    assert_eq!(listed(owner, id), chunks, "the owner still serves");

    // Every violation was logged with the other side's address and the reason.
    let causes: Vec<String> = events_of(swarm.peer(0))
        .iter()
        .filter(|e| e["message"] == "connection closed" && e["remote"].is_string())
        .filter_map(|e| e["cause"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        "exceeds the maximum",
        "out of range",
        "swarm mismatch",
        "bad magic",
        "timed out",
    ] {
        assert!(
            causes.iter().any(|c| c.contains(expected)),
            "no logged violation mentions {expected:?}: {causes:?}"
        );
    }
}
