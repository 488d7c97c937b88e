//! Inbound slots: links that peers dialled and offered both ways. Only adoption fills
//! them, never a dial; one peer is never on two links; the address such a link came from
//! is not taken for where the peer listens; a slot whose peer brings nothing moves on.

use std::sync::Arc;

use super::tests::{actions, addr, connect, id, ms, requests, set};
use super::*;
use crate::book::AddressBook;
use crate::chunk_set::ChunkSet;

/// Node 1 with one neighbor slot (link 0), the owner (link 1) and two inbound slots.
fn with_inbound(book: &Arc<AddressBook>) -> Scheduler {
    let roles = [Role::Neighbor, Role::Owner, Role::Inbound, Role::Inbound];
    let mut s = Scheduler::new(
        id(1),
        Arc::clone(book),
        &roles,
        ChunkSet::empty(40),
        7,
        Time::ZERO,
    );
    s.set_owner(id(200));
    s
}

#[test]
fn inbound_slots_are_filled_by_adoption_only() {
    let book = Arc::new(AddressBook::new(id(1)));
    book.learn(id(9), addr([10, 0, 0, 9], 7000));
    let mut s = with_inbound(&book);
    // However much time passes, an inbound slot never dials.
    for link in [2, 3] {
        assert_eq!(actions(&mut s, link, ms(0)), vec![]);
        s.handle_timeout(ms(5_000));
        assert_eq!(actions(&mut s, link, ms(5_000)), vec![]);
    }
    // A peer that dialled us takes the first; the same peer again, us, the owner: none.
    let from = addr([10, 0, 0, 5], 41_000);
    assert_eq!(s.adopt(ms(20), id(5), from), Some(2));
    assert_eq!(s.adopt(ms(20), id(5), from), None, "one link per peer");
    assert_eq!(s.adopt(ms(20), id(1), from), None);
    assert_eq!(s.adopt(ms(20), id(200), from), None);
    assert_eq!(s.adopt(ms(20), id(6), addr([10, 0, 0, 6], 41_001)), Some(3));
    assert_eq!(
        s.adopt(ms(20), id(7), addr([10, 0, 0, 7], 41_002)),
        None,
        "both slots taken"
    );
    // One that did not come up frees its slot, and nobody is judged for it.
    s.handle(ms(10), 3, Event::DialFailed(DialFailure::Unreachable));
    assert_eq!(s.adopt(ms(20), id(7), addr([10, 0, 0, 7], 41_002)), Some(3));
}

#[test]
fn an_adopted_link_is_fetched_from_and_its_address_is_not_where_it_listens() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = with_inbound(&book);
    let from = addr([10, 0, 0, 5], 41_000);
    let link = s.adopt(ms(20), id(5), from).unwrap();
    let asked = connect(&mut s, link, id(5), from, &set(0..10), ms(0));
    assert!(
        !requests(&asked).is_empty(),
        "asks it for what it offers: {asked:?}"
    );
    assert!(requests(&asked).iter().all(|&c| c < 10));
    assert_eq!(
        book.addr_of(id(5)),
        None,
        "its end of the link is no address to dial"
    );
    // A neighbor slot that dials the same peer later closes as a duplicate.
    s.handle(
        ms(1),
        0,
        Event::Connected {
            peer: id(5),
            addr: addr([10, 0, 0, 5], 7000),
            owner: false,
        },
    );
    assert!(actions(&mut s, 0, ms(1)).contains(&Action::Close(Close::Duplicate)));
}

#[test]
fn an_inbound_peer_that_brings_nothing_gives_its_slot_to_the_next_offer() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = with_inbound(&book);
    // Both slots taken: one peer offers nothing we lack, the other what we need.
    let (idle, busy) = (addr([10, 0, 0, 5], 41_000), addr([10, 0, 0, 6], 41_001));
    let first = s.adopt(ms(0), id(5), idle).unwrap();
    connect(&mut s, first, id(5), idle, &set([]), ms(0));
    let second = s.adopt(ms(0), id(6), busy).unwrap();
    connect(&mut s, second, id(6), busy, &set(0..10), ms(0));
    // Time alone moves nobody: the idle one does not dial us again if let go.
    let later = ROTATE_USELESS.max(ROTATE_AFTER) + ms(100);
    s.handle_timeout(later);
    assert!(!actions(&mut s, first, later).contains(&Action::Close(Close::Rotate)));
    // A third offer finds no slot, but the idle peer's is freed for the next.
    let third = addr([10, 0, 0, 7], 41_002);
    assert_eq!(s.adopt(later, id(7), third), None);
    assert!(actions(&mut s, first, later).contains(&Action::Close(Close::Rotate)));
    assert!(!actions(&mut s, second, later).contains(&Action::Close(Close::Rotate)));
    assert_eq!(s.adopt(later, id(7), third), Some(first));
}

#[test]
fn one_address_takes_at_most_half_the_inbound_slots() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = with_inbound(&book);
    let nat = |port| addr([10, 0, 0, 5], port);
    assert!(s.adopt(ms(0), id(5), nat(41_000)).is_some());
    assert_eq!(
        s.adopt(ms(0), id(6), nat(41_001)),
        None,
        "a second identity at that address"
    );
    assert!(s.adopt(ms(0), id(7), addr([10, 0, 0, 7], 41_002)).is_some());
}

#[test]
fn a_complete_node_adopts_nothing() {
    let book = Arc::new(AddressBook::new(id(1)));
    let roles = [Role::Neighbor, Role::Inbound];
    let mut s = Scheduler::new(
        id(1),
        Arc::clone(&book),
        &roles,
        ChunkSet::full(40),
        7,
        Time::ZERO,
    );
    assert_eq!(s.adopt(ms(20), id(5), addr([10, 0, 0, 5], 41_000)), None);
}
