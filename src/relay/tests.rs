//! The relay's bounds and rules, driven directly: reservations per relay and per address,
//! who is introduced to whom (and with which addresses), which nonce opens which circuit;
//! and, over real sockets, a circuit whose relay changes a byte or holds the other side's
//! first bytes together with `RELAYING`.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::connection::Connection;
use crate::manifest::SwarmId;
use crate::secure::Credentials;
use crate::wire::{handshake, Role};

fn at(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn peer(n: u8) -> PeerId {
    PeerId([n; 16])
}

#[test]
fn reservations_are_capped_in_all_and_per_address() {
    let relay = Relay::new(None);
    let mut held = Vec::new();
    for n in 0..RESERVATIONS_PER_IP as u8 {
        held.push(relay.reserve(
            peer(n),
            at([10, 0, 0, 1], 1000 + u16::from(n)),
            at([192, 168, 1, 2], 7),
        ));
    }
    assert!(held.iter().all(Option::is_some));
    // One more from that address: refused; its own again (a renewal): taken.
    assert!(relay
        .reserve(peer(200), at([10, 0, 0, 1], 999), at([192, 168, 1, 2], 7))
        .is_none());
    let renewed = relay.reserve(peer(0), at([10, 0, 0, 1], 998), at([192, 168, 1, 2], 7));
    assert!(renewed.is_some());
    held.push(renewed);
    for n in RESERVATIONS_PER_IP as u8..MAX_RESERVATIONS as u8 {
        held.push(relay.reserve(peer(n), at([10, 0, 1, n], 1000), at([192, 168, 1, 2], 7)));
    }
    assert_eq!(relay.lock().held.len(), MAX_RESERVATIONS);
    assert!(relay
        .reserve(peer(201), at([10, 0, 2, 1], 1000), at([192, 168, 1, 2], 7))
        .is_none());
    // One given up makes room.
    held.pop();
    assert!(relay
        .reserve(peer(201), at([10, 0, 2, 1], 1000), at([192, 168, 1, 2], 7))
        .is_some());
}

#[test]
fn two_are_introduced_once_and_only_they_open_their_circuit() {
    let relay = Relay::new(None);
    let (_a, mut to_a) = relay
        .reserve(peer(1), at([10, 0, 0, 1], 4000), at([192, 168, 1, 10], 7400))
        .unwrap();
    let (_b, mut to_b) = relay
        .reserve(peer(2), at([10, 0, 0, 2], 5000), at([192, 168, 2, 10], 7400))
        .unwrap();
    let (_c, mut to_c) = relay
        .reserve(peer(3), at([10, 0, 0, 1], 4001), at([192, 168, 1, 11], 7400))
        .unwrap();
    relay.introduce(peer(1));
    let (a1, a2) = (to_a.try_recv().unwrap(), to_a.try_recv().unwrap());
    let (b, c) = (to_b.try_recv().unwrap(), to_c.try_recv().unwrap());
    // To b, across NATs: where a's reservation comes from, nothing of a's own network.
    assert_eq!(
        (b.peer, b.initiator, b.seen, b.local),
        (peer(1), false, at([10, 0, 0, 1], 4000), None)
    );
    // To c, behind the same address as a: a's own network's address too.
    assert_eq!(c.local, Some(at([192, 168, 1, 10], 7400)));
    for intro in [a1, a2] {
        assert!(intro.initiator);
        let other = if intro.peer == peer(2) { b } else { c };
        assert_eq!(intro.nonce, other.nonce);
    }
    // Not again within a minute.
    relay.introduce(peer(1));
    relay.introduce(peer(2));
    assert!(to_a.try_recv().is_err());
    // b's nonce opens a circuit for a and b only, each side once.
    assert!(relay.circuit(b.nonce, peer(3)).is_none());
    assert!(matches!(relay.circuit(b.nonce, peer(2)), Some(Side::First(_))));
    assert!(relay.circuit(b.nonce, peer(2)).is_none());
    assert!(matches!(relay.circuit(b.nonce, peer(1)), Some(Side::Second(_))));
    assert!(relay.circuit(b.nonce, peer(1)).is_none());
    assert!(relay.circuit(12345, peer(1)).is_none());
}

#[test]
fn reserving_again_does_not_earn_new_introductions_nor_more_circuits() {
    let relay = Relay::new(None);
    let (_b, mut to_b) = relay
        .reserve(peer(2), at([10, 0, 0, 2], 5000), at([192, 168, 2, 10], 7400))
        .unwrap();
    for _ in 0..5 {
        let (_a, _to_a) = relay
            .reserve(peer(1), at([10, 0, 0, 1], 4000), at([192, 168, 1, 10], 7400))
            .unwrap();
        relay.introduce(peer(1));
    }
    assert!(to_b.try_recv().is_ok(), "introduced once");
    assert!(
        to_b.try_recv().is_err(),
        "and only once, however often a reserves again"
    );
    // Circuits: at most CIRCUITS_PER_PEER places for one node, whoever the other is.
    let places: Vec<_> = (10..20)
        .filter_map(|n| relay.take_place(&[peer(1), peer(n)]))
        .collect();
    assert_eq!(places.len(), CIRCUITS_PER_PEER);
    drop(places);
    assert!(
        relay.take_place(&[peer(1), peer(30)]).is_some(),
        "places come back"
    );
}

/// A session between two fresh nodes through a relay `forward` task over real sockets:
/// what the listening side's handshake gives.
async fn through(
    forward: impl FnOnce(TcpStream, TcpStream) -> tokio::task::JoinHandle<()>,
) -> Result<(), PeerError> {
    let (a, b) = (Credentials::fresh(), Credentials::fresh());
    let (a_id, b_id) = (a.key.id(), b.key.id());
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server_at, relay_at) = (server.local_addr().unwrap(), relay.local_addr().unwrap());
    let client = tokio::spawn(async move {
        let mut conn = Connection::connect(relay_at, a).await?;
        let mine = handshake::fetch_hello(0, SwarmId([7; 32]), a_id, false);
        conn.handshake(&mine).await?;
        conn.write_message(&Message::ListRequest).await
    });
    let (inbound, _) = relay.accept().await.unwrap();
    let outbound = TcpStream::connect(server_at).await.unwrap();
    let pump = forward(inbound, outbound);
    let (stream, remote) = server.accept().await.unwrap();
    let mut conn = Connection::new(stream, remote, b);
    let served = async {
        conn.answer_handshake(|_| handshake::server_hello(Role::Peer, 1, SwarmId([7; 32]), b_id))
            .await?;
        match conn
            .read_message(std::time::Duration::from_secs(5), "a request")
            .await?
        {
            Some(Message::ListRequest) => Ok(()),
            _ => Err(PeerError::Closed("no request")),
        }
    }
    .await;
    pump.abort();
    let _ = client.await;
    served
}

#[tokio::test]
async fn a_relay_that_changes_a_byte_only_ends_the_session() {
    // A faithful relay first: the session works.
    let faithful = |a: TcpStream, b: TcpStream| {
        tokio::spawn(async move {
            let rate = RateLimit::new(RELAY_RATE);
            splice::forward(
                (a, BytesMut::new()),
                (b, BytesMut::new()),
                &rate,
                &Limits::default(),
            )
            .await;
        })
    };
    assert!(through(faithful).await.is_ok());
    // One that flips a byte deep in what the client sends: the session fails its check.
    for at in [10usize, 100, 200] {
        let flipping = move |a: TcpStream, b: TcpStream| {
            tokio::spawn(async move {
                let (mut ar, mut aw) = a.into_split();
                let (mut br, mut bw) = b.into_split();
                let up = async {
                    let mut seen = 0usize;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = ar.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if (seen..seen + n).contains(&at) {
                            buf[at - seen] ^= 0x20;
                        }
                        seen += n;
                        if bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = tokio::io::copy(&mut br, &mut aw);
                let _ = tokio::join!(up, down);
            })
        };
        assert!(
            through(flipping).await.is_err(),
            "a byte changed at {at} went unnoticed"
        );
    }
}

#[tokio::test]
async fn bytes_that_came_with_relaying_start_the_next_session() {
    // The other side's first bytes can arrive in one read with RELAYING: they are kept
    // for the session that follows, not lost.
    let (mut x, mut y) = crate::tests::connection::pair().await;
    x.write_message(&Message::Relaying).await.unwrap();
    x.write_message(&Message::ListRequest).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(matches!(
        y.read_message(std::time::Duration::from_secs(5), "relaying")
            .await,
        Ok(Some(Message::Relaying))
    ));
    let (_stream, early) = y.into_raw().unwrap();
    assert!(
        !early.is_empty(),
        "the sealed LIST_REQUEST behind RELAYING was kept"
    );
    drop(x);
}

#[test]
fn the_owner_holds_more_reservations_and_knows_whom_from_where() {
    let owner = Relay::introducer();
    let mut held = Vec::new();
    for n in 0..MAX_INTRODUCED {
        let ip = [10, 1, (n / 200) as u8, (n % 200) as u8];
        let id = PeerId([n as u8, (n >> 8) as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        held.push((id, ip, owner.reserve(id, at(ip, 1000), at([192, 168, 1, 2], 7))));
    }
    assert!(
        held.iter().all(|(_, _, h)| h.is_some()),
        "the owner holds {MAX_INTRODUCED}"
    );
    assert!(owner
        .reserve(peer(9), at([10, 2, 0, 1], 1000), at([192, 168, 1, 2], 7))
        .is_none());
    // Per address as any relay.
    let (id, ip, _) = held[0];
    assert!(owner.holds(id, ip.into()));
    assert!(
        !owner.holds(id, [10, 9, 9, 9].into()),
        "only from the address it reserved from"
    );
    assert!(!owner.holds(peer(9), ip.into()));
    // Given up: trusted no longer.
    held.remove(0);
    assert!(!owner.holds(id, ip.into()));
}

#[test]
fn a_reservation_cannot_move_onto_a_full_address_and_a_v6_64_is_one_address() {
    let relay = Relay::new(None);
    let full: Vec<_> = (0..RESERVATIONS_PER_IP as u8)
        .map(|n| {
            relay.reserve(
                peer(n),
                at([10, 0, 0, 1], 1000 + u16::from(n)),
                at([192, 168, 1, 2], 7),
            )
        })
        .collect();
    assert!(full.iter().all(Option::is_some));
    let elsewhere = relay.reserve(peer(100), at([10, 0, 0, 2], 1000), at([192, 168, 1, 2], 7));
    assert!(elsewhere.is_some());
    assert!(
        relay
            .reserve(peer(100), at([10, 0, 0, 1], 999), at([192, 168, 1, 2], 7))
            .is_none(),
        "moved onto an address that holds its share"
    );
    // Hosts of one IPv6 /64 share one address's reservations.
    let v6 =
        |host: u16| SocketAddr::from((std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, host), 1000));
    let local = at([192, 168, 1, 2], 7);
    let sixes: Vec<_> = (0..RESERVATIONS_PER_IP as u16)
        .map(|h| relay.reserve(peer(120 + h as u8), v6(h + 1), local))
        .collect();
    assert!(sixes.iter().all(Option::is_some));
    assert!(relay.reserve(peer(140), v6(999), local).is_none());
    let other_64 = SocketAddr::from((std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1), 1000));
    assert!(relay.reserve(peer(141), other_64, local).is_some());
}
