//! The address book: first-hand addresses outrank gossip, so a moved peer does not flap
//! back to its old address.

use std::net::SocketAddr;

use swarmshare::book::AddressBook;
use swarmshare::identity::PeerId;
use swarmshare::wire::PeerAddr;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn gossip_never_overwrites_what_a_peer_said_itself() {
    let me = PeerId([1; 16]);
    let (p, q) = (PeerId([2; 16]), PeerId([3; 16]));
    let book = AddressBook::new(me);
    book.learn(p, addr("10.0.0.23:7003"));
    book.learn_all(&[
        PeerAddr {
            id: p,
            addr: addr("10.0.0.13:7003"),
        },
        PeerAddr {
            id: q,
            addr: addr("10.0.0.14:7004"),
        },
        PeerAddr {
            id: me,
            addr: addr("10.0.0.1:7001"),
        },
    ]);
    assert_eq!(
        book.addr_of(p),
        Some(addr("10.0.0.23:7003")),
        "the stale address stays out"
    );
    assert_eq!(
        book.addr_of(q),
        Some(addr("10.0.0.14:7004")),
        "gossip adds unknown peers"
    );
    assert_eq!(book.addr_of(me), None, "never itself");
    // Gossip may correct gossip; a first-hand hello corrects anything.
    book.learn_all(&[PeerAddr {
        id: q,
        addr: addr("10.0.0.24:7004"),
    }]);
    assert_eq!(book.addr_of(q), Some(addr("10.0.0.24:7004")));
    book.learn(p, addr("10.0.0.33:7003"));
    assert_eq!(book.addr_of(p), Some(addr("10.0.0.33:7003")));
    assert_eq!(book.len(), 2);
}

#[tokio::test]
async fn a_peer_new_to_the_book_wakes_a_waiter_and_a_known_one_does_not() {
    let (me, p, q) = (PeerId([1; 16]), PeerId([2; 16]), PeerId([3; 16]));
    let book = AddressBook::new(me);
    book.learn(p, addr("10.0.0.2:7002"));
    let waiting = std::time::Duration::from_millis(100);

    let added = book.peer_added();
    book.learn(p, addr("10.0.0.22:7002"));
    book.learn(me, addr("10.0.0.1:7001"));
    assert!(
        tokio::time::timeout(waiting, added).await.is_err(),
        "a known peer's new address and this node itself are not new peers"
    );

    // Learned after the waiter was made but before it is awaited: still seen.
    let added = book.peer_added();
    book.learn_all(&[PeerAddr {
        id: q,
        addr: addr("10.0.0.3:7003"),
    }]);
    assert!(
        tokio::time::timeout(waiting, added).await.is_ok(),
        "a new peer wakes the waiter"
    );
}
