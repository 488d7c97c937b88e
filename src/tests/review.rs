//! Regressions found by review: a stalled frame noticed however often its read restarts,
//! hellos that cannot take over the book, a busy server named as such, seats in use never
//! taken.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admission::{admit, Admit, Seat, IDLE_EVICT, MAX_DOWNLOADERS};
use crate::book::{AddressBook, MAX_PER_IP};
use crate::connection::Connection;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::secure::Credentials;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A server that sends the first 20 bytes of a 1,009-byte CHUNK frame, then nothing; with
/// `cut_message`, only part of the transport message that holds them.
async fn half_frame_server(cut_message: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, remote) = l.accept().await.unwrap();
        let creds = Credentials::fresh();
        let id = creds.key.id();
        let mut conn = Connection::new(s, remote, creds);
        let swarm = crate::manifest::SwarmId([7; 32]);
        conn.answer_handshake(|_| {
            crate::wire::handshake::server_hello(crate::wire::Role::Peer, 1, swarm, id)
        })
        .await
        .unwrap();
        let mut buf = 1005u32.to_be_bytes().to_vec();
        buf.push(6);
        buf.extend_from_slice(&[0u8; 15]);
        if cut_message {
            // The frame's start is in a transport message that stops midway.
            conn.write_cut_for_test(&buf, 12).await.unwrap();
        } else {
            conn.write_raw_for_test(&buf).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(conn);
    });
    a
}

#[tokio::test]
async fn a_frame_stalled_midway_is_noticed_however_often_its_read_restarts() {
    stalled_midway(false).await;
}

#[tokio::test]
async fn a_transport_message_stalled_midway_is_noticed_however_often_its_read_restarts() {
    stalled_midway(true).await;
}

async fn stalled_midway(cut_message: bool) {
    let creds = Credentials::fresh();
    let id = creds.key.id();
    let mut c = Connection::connect(half_frame_server(cut_message).await, creds)
        .await
        .unwrap();
    let swarm = crate::manifest::SwarmId([7; 32]);
    c.handshake(&crate::wire::handshake::fetch_hello(1, swarm, id, false))
        .await
        .unwrap();
    c.set_max_frame(1 << 20);
    let t0 = tokio::time::Instant::now();
    // As a link task does: the read dropped and taken up again on every wake-up.
    let outcome = loop {
        tokio::select! {
            r = c.read_message(Duration::from_secs(60), "x") => break r,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "the stall was never noticed"
        );
    };
    assert!(
        matches!(outcome, Err(PeerError::Timeout("in the middle of a frame"))),
        "{outcome:?}"
    );
    assert!(t0.elapsed() < crate::connection::FRAME_STALL + Duration::from_secs(2));
}

#[test]
fn a_hello_cannot_move_a_proven_peer_until_its_address_fails() {
    let book = AddressBook::new(PeerId([1; 16]));
    let p = PeerId([2; 16]);
    let (honest, claimed) = (addr("10.0.0.2:5000"), addr("10.9.9.9:6666"));
    book.proven(p, honest);
    book.learn(p, claimed);
    assert_eq!(book.addr_of(p), Some(honest), "a claim alone does not move it");
    // It really moved: the old address stops answering, and the claim is taken.
    book.unreachable(p, honest);
    assert_eq!(book.addr_of(p), Some(claimed));
}

#[test]
fn one_address_cannot_fill_the_book() {
    let book = AddressBook::new(PeerId([1; 16]));
    let owner = PeerId([200; 16]);
    book.trust(owner);
    let honest: Vec<crate::wire::PeerAddr> = (0..64u8)
        .map(|i| crate::wire::PeerAddr {
            id: PeerId([10, i, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
            addr: SocketAddr::from(([10, 1, 0, i], 5000)),
        })
        .collect();
    book.learn_all(owner, &honest);
    for i in 0..1100u32 {
        let b = i.to_be_bytes();
        let id = PeerId([66, b[0], b[1], b[2], b[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        book.learn(id, SocketAddr::from(([10, 9, 9, 9], 10_000 + i as u16)));
    }
    let at_attacker = book
        .candidates()
        .iter()
        .filter(|c| c.addr.ip() == "10.9.9.9".parse::<std::net::IpAddr>().unwrap())
        .count();
    assert_eq!(at_attacker, MAX_PER_IP, "one address holds at most its cap");
    assert_eq!(book.len(), 64 + MAX_PER_IP, "every honest entry is still there");
}

#[tokio::test]
async fn a_busy_peer_is_named_busy_not_unreachable() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let layout = crate::manifest::Layout::for_size(1_000_000).unwrap();
    let hashes = vec![[0u8; 32]; layout.chunk_count() as usize];
    let manifest = Arc::new(crate::manifest::Manifest::new("f.bin".into(), layout, [0; 32], hashes).unwrap());
    let swarm = manifest.swarm_id();
    let server = Credentials::fresh();
    let busy = server.key.id();
    tokio::spawn(async move {
        let (s, remote) = l.accept().await.unwrap();
        let mut conn = Connection::new(s, remote, server);
        let hello = crate::wire::handshake::server_hello(crate::wire::Role::Busy, at.port(), swarm, busy);
        conn.answer_handshake(|_| hello).await.unwrap();
    });
    let e = crate::fetch::FetchLink::open(
        &crate::config::Endpoint::from_addr(at),
        &manifest,
        1,
        &Credentials::fresh(),
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PeerError::Busy(id) if id == busy), "{e:?}");
}

#[test]
fn a_seat_in_use_is_never_taken_and_an_idle_neighbor_seat_is() {
    let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
    // Every seat busy answering (idle zero) at distinct addresses: a newcomer waits.
    let busy: Vec<Seat> = (0..MAX_DOWNLOADERS as u8)
        .map(|i| Seat {
            ip: ip(i),
            neighbor: false,
            idle: Duration::ZERO,
        })
        .collect();
    assert_eq!(admit(&busy, ip(100), false), Admit::Busy);
    // Neighbor seats all held, one of them idle: a new neighbor client takes that one.
    let mut seats = busy.clone();
    for i in 0..crate::admission::NEIGHBOR_SEATS as u8 {
        seats.push(Seat {
            ip: ip(50 + i),
            neighbor: true,
            idle: if i == 2 { IDLE_EVICT * 2 } else { Duration::ZERO },
        });
    }
    assert_eq!(admit(&seats, ip(101), true), Admit::Evict(MAX_DOWNLOADERS + 2));
}
