//! The scheduler in simulated time: hand-driven events for each rule, and property tests
//! over whole simulated swarms (the simulator runs this same scheduler).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;

use super::*;
use crate::book::AddressBook;
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::sim::{self, SimConfig};

const CHUNKS: u32 = 40;

pub(super) fn id(n: u8) -> PeerId {
    PeerId([n; 16])
}

pub(super) fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

pub(super) fn set(ids: impl IntoIterator<Item = u32>) -> ChunkSet {
    let mut s = ChunkSet::empty(CHUNKS);
    for i in ids {
        s.insert(i);
    }
    s
}

pub(super) fn ms(n: u64) -> Time {
    Duration::from_millis(n)
}

/// A scheduler for node 1 with `slots` neighbor slots and an owner link (the last link).
fn scheduler(slots: usize, book: &Arc<AddressBook>) -> Scheduler {
    let mut roles = vec![Role::Neighbor; slots];
    roles.push(Role::Owner);
    let mut s = Scheduler::new(
        id(1),
        Arc::clone(book),
        &roles,
        ChunkSet::empty(CHUNKS),
        7,
        Time::ZERO,
    );
    s.set_owner(id(200));
    s
}

/// Every action `link` has now.
pub(super) fn actions(s: &mut Scheduler, link: LinkId, now: Time) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = s.poll(link, now) {
        out.push(a);
        if out.len() > 100 {
            break;
        }
    }
    out
}

pub(super) fn requests(actions: &[Action]) -> Vec<ChunkId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// The owner (peer 200) comes up on `link`.
fn connect_owner(s: &mut Scheduler, link: LinkId, now: Time) {
    let (peer, addr, owner) = (id(200), addr([10, 0, 0, 200], 1), true);
    s.handle(now, link, Event::Connected { peer, addr, owner });
}

fn dial_target(actions: &[Action]) -> Option<PeerId> {
    actions.iter().find_map(|a| match a {
        Action::Dial {
            target: Target::Peer { id, .. },
            ..
        } => Some(*id),
        _ => None,
    })
}

/// Brings `link` up to `peer` (which lists `list`), answering its first list request.
pub(super) fn connect(
    s: &mut Scheduler,
    link: LinkId,
    peer: PeerId,
    at: SocketAddr,
    list: &ChunkSet,
    now: Time,
) -> Vec<Action> {
    s.handle(
        now,
        link,
        Event::Connected {
            peer,
            addr: at,
            owner: false,
        },
    );
    let first = actions(s, link, now);
    assert!(
        first.contains(&Action::AskList(None)),
        "a new link asks for a list: {first:?}"
    );
    s.handle(now, link, Event::List(list));
    actions(s, link, now)
}

#[test]
fn a_chunk_is_requested_once_while_links_keep_pace() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(2, &book);
    let all = set(0..CHUNKS);
    let peers = [id(2), id(3)];
    let mut queues = [
        requests(&connect(&mut s, 0, peers[0], addr([10, 0, 0, 2], 1), &all, ms(0))),
        requests(&connect(&mut s, 1, peers[1], addr([10, 0, 0, 3], 1), &all, ms(0))),
    ];
    let mut asked: Vec<ChunkId> = queues.iter().flatten().copied().collect();
    // Both links answer one chunk every 5 ms, in order: nobody is late.
    let mut t = ms(0);
    while !s.held().is_complete() && t < ms(2000) {
        t += ms(5);
        for link in 0..2 {
            if !queues[link].is_empty() {
                let c = queues[link].remove(0);
                s.handle(t, link, Event::Arrived(c));
                s.stored(t, c, peers[link], Outcome::New);
            }
            let next = requests(&actions(&mut s, link, t));
            asked.extend(&next);
            queues[link].extend(next);
        }
        s.handle_timeout(t);
    }
    assert!(s.held().is_complete(), "every chunk arrived");
    let before_endgame = asked.len() - s.stats().second_requests as usize;
    assert!(before_endgame >= CHUNKS as usize);
    let mut seen = std::collections::BTreeSet::new();
    let repeats = asked.iter().filter(|c| !seen.insert(**c)).count();
    assert_eq!(
        repeats,
        s.stats().second_requests as usize,
        "a chunk asked twice only as a late request"
    );
    assert!(repeats <= 2 * 2, "at most the endgame's few: {repeats}");
}

#[test]
fn a_late_chunk_is_asked_of_the_owner_and_the_first_copy_wins() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(1, &book);
    let owner_link = 1;
    // The only neighbor offers chunk 5 and never answers.
    let asked = requests(&connect(
        &mut s,
        0,
        id(2),
        addr([10, 0, 0, 2], 1),
        &set([5]),
        ms(0),
    ));
    assert_eq!(asked, vec![5]);
    connect_owner(&mut s, owner_link, ms(0));
    let early = requests(&actions(&mut s, owner_link, ms(10)));
    assert!(!early.contains(&5), "not before the neighbor is late");
    let mut t = ms(10);
    let mut from_owner = Vec::new();
    while t < ms(1500) && !from_owner.contains(&5) {
        t += TICK;
        s.handle_timeout(t);
        let asked = requests(&actions(&mut s, owner_link, t));
        // The owner answers at once; the late chunk's copy is checked below.
        for &c in asked.iter().filter(|&&c| c != 5) {
            s.handle(t, owner_link, Event::Arrived(c));
            s.stored(t, c, id(200), Outcome::New);
        }
        from_owner.extend(asked);
    }
    // (The chunks nobody offers are asked of it too, once the neighbor has given nothing
    // for a while.)
    assert!(
        from_owner.contains(&5),
        "the late chunk from the owner: {from_owner:?}"
    );
    // Late: waited past the owner patience, plus the owner's own pace (answers every tick).
    assert!(t <= OWNER_PATIENCE + TICK * 5, "asked of the owner after {t:?}");
    // The owner's copy arrives first and wins; the neighbor's, later, is a duplicate.
    s.handle(t, owner_link, Event::Arrived(5));
    s.stored(t, 5, id(200), Outcome::New);
    assert!(s.held().contains(5));
    s.handle(t + ms(100), 0, Event::Arrived(5));
    s.stored(t + ms(100), 5, id(2), Outcome::Duplicate);
    assert_eq!(s.stats().duplicates, 1);
    assert_eq!(s.stats().from_owner as usize, from_owner.len());
}

#[test]
fn a_moments_hiccup_at_a_neighbor_does_not_send_its_queue_to_the_owner() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(1, &book);
    let owner_link = 1;
    let mut queue = requests(&connect(
        &mut s,
        0,
        id(2),
        addr([10, 0, 0, 2], 1),
        &set(0..CHUNKS),
        ms(0),
    ));
    connect_owner(&mut s, owner_link, ms(0));
    // The neighbor delivers a chunk every 2 ms for 60 ms: its pace is known, its window full.
    let mut t = ms(0);
    while t < ms(60) {
        t += ms(2);
        if !queue.is_empty() {
            let c = queue.remove(0);
            s.handle(t, 0, Event::Arrived(c));
            s.stored(t, c, id(2), Outcome::New);
        }
        queue.extend(requests(&actions(&mut s, 0, t)));
        assert!(requests(&actions(&mut s, owner_link, t)).is_empty());
    }
    assert!(queue.len() >= 4, "a queue is out: {queue:?}");
    // Then 150 ms of nothing (a busy host): its head is late, the rest only behind it.
    let pause_end = t + ms(150);
    while t < pause_end {
        t += ms(10);
        s.handle_timeout(t);
        let asked = requests(&actions(&mut s, owner_link, t));
        assert!(
            asked.is_empty(),
            "asked the owner for {asked:?} after {:?} of silence",
            t - ms(60)
        );
    }
    // A neighbor that really stops is still left behind (the rule of the test above).
    let mut from_owner = Vec::new();
    while t < ms(2000) && from_owner.is_empty() {
        t += TICK;
        s.handle_timeout(t);
        from_owner = requests(&actions(&mut s, owner_link, t));
    }
    assert!(
        !from_owner.is_empty(),
        "a silent neighbor's chunks go to the owner in time"
    );
}

#[test]
fn a_slow_holder_does_not_keep_a_chunk_from_a_fast_one() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(2, &book);
    let all = set(0..CHUNKS);
    let slow = requests(&connect(&mut s, 0, id(2), addr([10, 0, 0, 2], 1), &all, ms(0)));
    let fast = requests(&connect(&mut s, 1, id(3), addr([10, 0, 0, 3], 1), &all, ms(0)));
    // The fast link answers everything at once, 2 ms a chunk; the slow one nothing.
    let mut t = ms(0);
    let mut pending: Vec<ChunkId> = fast;
    let mut stolen = None;
    while t < ms(3000) {
        t += ms(2);
        if let Some(c) = pending.first().copied() {
            pending.remove(0);
            s.handle(t, 1, Event::Arrived(c));
            s.stored(t, c, id(3), Outcome::New);
        }
        if t.as_millis() % 50 == 0 {
            s.handle_timeout(t);
        }
        let next = requests(&actions(&mut s, 1, t));
        if let Some(c) = next.iter().find(|c| slow.contains(c)) {
            stolen = Some((*c, t));
            break;
        }
        pending.extend(next);
    }
    let (c, at) = stolen.expect("the fast link takes over a chunk the slow one holds");
    assert!(slow.contains(&c));
    // The fast link would bring it in a few ms: the slow one may keep it only until it is
    // later than the fast one by half the fast one's expected time, plus the stall floor.
    assert!(at < ms(500), "taken over after {at:?}");
}

#[test]
fn a_neighbor_that_does_not_answer_its_first_list_loses_its_slot() {
    let book = Arc::new(AddressBook::new(id(1)));
    book.learn(id(2), addr([10, 0, 0, 2], 1));
    book.learn(id(3), addr([10, 0, 0, 3], 1));
    let mut s = scheduler(1, &book);
    let first = dial_target(&actions(&mut s, 0, ms(0))).expect("a dial");
    s.handle(
        ms(1),
        0,
        Event::Connected {
            peer: first,
            addr: book.addr_of(first).unwrap(),
            owner: false,
        },
    );
    assert!(actions(&mut s, 0, ms(1)).contains(&Action::AskList(None)));
    let mut t = ms(1);
    let mut after = Vec::new();
    while t < ms(3000) && !after.contains(&Action::Close(Close::Idle)) {
        t += TICK;
        s.handle_timeout(t);
        after = actions(&mut s, 0, t);
    }
    assert!(after.contains(&Action::Close(Close::Idle)), "closed as idle");
    assert!(t <= FIRST_LIST_LATE + TICK * 3, "after {t:?}");
    let next = dial_target(&after).expect("another dial");
    assert_ne!(next, first, "the idle peer waits its backoff; the other is tried");
}

#[test]
fn a_neighbor_that_stops_delivering_is_replaced() {
    let book = Arc::new(AddressBook::new(id(1)));
    book.learn(id(2), addr([10, 0, 0, 2], 1));
    book.learn(id(3), addr([10, 0, 0, 3], 1));
    let mut s = scheduler(1, &book);
    let first = dial_target(&actions(&mut s, 0, ms(0))).expect("a dial");
    let at = book.addr_of(first).unwrap();
    let asked = requests(&connect(&mut s, 0, first, at, &set(0..CHUNKS), ms(1)));
    // Two chunks come, then nothing.
    for (i, &c) in asked.iter().take(2).enumerate() {
        let t = ms(10 + i as u64 * 10);
        s.handle(t, 0, Event::Arrived(c));
        s.stored(t, c, first, Outcome::New);
    }
    let mut t = ms(30);
    let mut after = Vec::new();
    while t < ms(10_000) && !after.iter().any(|a| matches!(a, Action::Close(_))) {
        t += TICK;
        s.handle_timeout(t);
        after = actions(&mut s, 0, t);
    }
    assert!(after.contains(&Action::Close(Close::Stalled)), "{after:?}");
    assert!(t <= ms(20) + STALL_MIN + TICK * 3, "after {t:?}");
    let next = dial_target(&after).expect("another dial");
    assert_ne!(next, first);
    assert!(s.taken.count() == 2, "its claims were released");
}

#[test]
fn many_ids_at_one_address_take_no_more_than_its_share_of_slots() {
    let book = Arc::new(AddressBook::new(id(1)));
    for i in 0..30u8 {
        book.learn(id(100 + i), addr([10, 9, 9, 9], 1000 + u16::from(i)));
    }
    for i in 0..6u8 {
        book.learn(id(10 + i), addr([10, 0, 0, 10 + i], 1));
    }
    let mut s = scheduler(4, &book);
    let targets: Vec<PeerId> = (0..4)
        .filter_map(|l| dial_target(&actions(&mut s, l, ms(0))))
        .collect();
    assert_eq!(targets.len(), 4);
    let at_sybil = targets.iter().filter(|t| t.0[0] >= 100).count();
    // Seven addresses (the sybils' and six honest ones) for four slots: one slot each.
    assert!(at_sybil <= 1, "{at_sybil} slots to one address");
    // Once the sybils have failed twice, their address gets no slot while others can.
    let mut t = ms(10);
    for _ in 0..3 {
        for l in 0..4 {
            if s.peer_of(l).is_none() {
                // Every dial answers; the sybils then say nothing.
                if let State::Dialing {
                    target: Target::Peer { id: p, addr: a },
                } = s.links[l].state
                {
                    s.handle(
                        t,
                        l,
                        Event::Connected {
                            peer: p,
                            addr: a,
                            owner: false,
                        },
                    );
                    let _ = actions(&mut s, l, t);
                    if p.0[0] < 100 {
                        s.handle(t, l, Event::List(&set([])));
                    }
                }
            }
        }
        t += FIRST_LIST_LATE + TICK * 2;
        s.handle_timeout(t);
        for l in 0..4 {
            let _ = actions(&mut s, l, t);
        }
    }
    assert!(
        s.judge.suspect("10.9.9.9".parse().unwrap()),
        "the sybils' address is suspect"
    );
    // From then on a suspect address gets a slot only when no other address has a peer
    // to offer.
    let candidates = book.candidates();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    for busy_honest in 0..6u8 {
        let busy: Vec<choose::Busy> = (0..busy_honest)
            .map(|i| choose::Busy {
                peer: Some(id(10 + i)),
                ip: Some(format!("10.0.0.{}", 10 + i).parse().unwrap()),
            })
            .collect();
        let choice = choose::Choice {
            candidates: &candidates,
            busy: &busy,
            judge: &s.judge,
            excluded: &[id(1)],
            slots: 8,
            // Long after every backoff.
            now: Time::from_secs(3600),
            addresses: 7,
        };
        for _ in 0..50 {
            let c = choice.pick(&mut rng).expect("a candidate");
            assert!(
                c.id.0[0] < 100,
                "a sybil chosen with {busy_honest} honest peers busy"
            );
        }
    }
}

#[test]
fn gossip_from_a_source_whose_entries_fail_is_no_longer_taken() {
    let book = Arc::new(AddressBook::new(id(1)));
    let liar = id(50);
    let lies: Vec<crate::wire::PeerAddr> = (0..10u8)
        .map(|i| crate::wire::PeerAddr {
            id: id(60 + i),
            addr: addr([10, 5, 5, i], 1),
        })
        .collect();
    book.learn_all(liar, &lies);
    assert_eq!(book.len(), 10);
    for l in &lies[..3] {
        book.unreachable(l.id, l.addr);
    }
    assert!(!book.believes(liar));
    assert_eq!(book.len(), 0, "everything the liar said is gone");
    book.learn_all(liar, &lies);
    assert_eq!(book.len(), 0, "and its next answer is not taken");
    // A failed pair is not taken again from anyone else either.
    book.learn_all(id(51), &lies[..1]);
    assert_eq!(book.len(), 0);
}

#[test]
fn gossip_never_overwrites_what_a_peer_said_itself_and_is_not_passed_on() {
    let me = id(1);
    let (p, q) = (id(2), id(3));
    let book = AddressBook::new(me);
    book.learn(p, addr([10, 0, 0, 23], 7003));
    book.learn_all(
        id(9),
        &[
            crate::wire::PeerAddr {
                id: p,
                addr: addr([10, 0, 0, 13], 7003),
            },
            crate::wire::PeerAddr {
                id: q,
                addr: addr([10, 0, 0, 14], 7004),
            },
            crate::wire::PeerAddr {
                id: me,
                addr: addr([10, 0, 0, 1], 7001),
            },
        ],
    );
    assert_eq!(
        book.addr_of(p),
        Some(addr([10, 0, 0, 23], 7003)),
        "the stale address stays out"
    );
    assert_eq!(
        book.addr_of(q),
        Some(addr([10, 0, 0, 14], 7004)),
        "gossip adds unknown peers"
    );
    assert_eq!(book.addr_of(me), None, "never itself");
    let passed = book.gossip(64, id(77), &mut rand::rng());
    assert_eq!(
        passed.len(),
        1,
        "only first-hand entries are passed on: {passed:?}"
    );
    book.learn(p, addr([10, 0, 0, 33], 7003));
    assert_eq!(book.addr_of(p), Some(addr([10, 0, 0, 33], 7003)));
}

#[tokio::test]
async fn a_peer_new_to_the_book_wakes_a_waiter_and_a_known_one_does_not() {
    let book = AddressBook::new(id(1));
    book.learn(id(2), addr([10, 0, 0, 2], 7002));
    let waiting = Duration::from_millis(100);
    let added = book.peer_added();
    book.learn(id(2), addr([10, 0, 0, 22], 7002));
    book.learn(id(1), addr([10, 0, 0, 1], 7001));
    assert!(tokio::time::timeout(waiting, added).await.is_err());
    let added = book.peer_added();
    book.learn_all(
        id(9),
        &[crate::wire::PeerAddr {
            id: id(3),
            addr: addr([10, 0, 0, 3], 7003),
        }],
    );
    assert!(tokio::time::timeout(waiting, added).await.is_ok());
}

#[test]
fn rarest_first_among_what_the_neighbors_offer() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let taken = set([0]);
    let theirs = set([0, 1, 2, 3]);
    let (a, b, c) = (set([1, 2, 3]), set([1, 2]), set([1, 2, 9]));
    for _ in 0..100 {
        assert_eq!(pick::rarest(&taken, &theirs, &[&a, &b, &c], &mut rng), Some(3));
    }
    let seen: std::collections::BTreeSet<u32> = (0..300)
        .filter_map(|_| pick::rarest(&taken, &theirs, &[&a], &mut rng))
        .collect();
    assert_eq!(seen, [1, 2, 3].into(), "random among equals");
    assert_eq!(pick::rarest(&set(0..CHUNKS), &theirs, &[], &mut rng), None);
}

fn small_swarm(peers: usize, seed: u64) -> SimConfig {
    SimConfig {
        peers,
        size: 10_000_000,
        upload: 5e6,
        latency: Duration::from_millis(2),
        join_window: Duration::from_millis(300),
        seed,
        limit: Duration::from_secs(600),
        ..SimConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every peer completes while the owner (a live holder of everything) is there; among
    /// equal peers the owner hands out hardly more than the file (with slow peers it may
    /// fill in for them); few chunks arrive twice.
    #[test]
    fn simulated_swarms_complete(peers in 2usize..24, seed in any::<u64>(), slow in prop_oneof![Just(0.0), 0.0f64..0.5]) {
        let config = SimConfig { slow_fraction: slow, ..small_swarm(peers, seed) };
        let r = sim::run(&config);
        prop_assert_eq!(r.incomplete, 0, "{:?}", r);
        if slow == 0.0 {
            prop_assert!(r.owner_upload_ratio <= 1.25, "{:?}", r);
        }
        // Second copies come from late requests and the endgame, where each missing chunk
        // may be asked of two links: a few per peer beyond a small share of the file.
        // With slow peers, their late chunks are fetched again elsewhere.
        let slots = crate::config::DEFAULT_NEIGHBORS as f64;
        let share = if slow == 0.0 { 0.1 } else { 0.25 };
        prop_assert!(r.duplicates as f64 <= (share * f64::from(r.chunks) + slots) * peers as f64, "{:?}", r);
    }

    /// Idle identities at one address and peers leaving and coming back do not stop it.
    #[test]
    fn simulated_swarms_with_sybils_and_churn_complete(peers in 4usize..16, seed in any::<u64>(), sybils in 0usize..40) {
        let config = SimConfig {
            idle_sybils: sybils,
            churn: 0.25,
            away: Duration::from_secs(2),
            ..small_swarm(peers, seed)
        };
        let r = sim::run(&config);
        prop_assert_eq!(r.incomplete, 0, "{:?}", r);
    }
}

#[test]
fn a_request_held_back_by_the_download_cap_does_not_hide_a_stall() {
    let book = Arc::new(AddressBook::new(id(1)));
    book.learn(id(3), addr([10, 0, 0, 3], 1));
    let mut s = scheduler(1, &book);
    let asked = requests(&connect(
        &mut s,
        0,
        id(2),
        addr([10, 0, 0, 2], 1),
        &set(0..CHUNKS),
        ms(0),
    ));
    assert!(asked.len() >= 2);
    // The server never answers; every new request is handed back by the cap.
    let mut t = ms(0);
    let mut closed = false;
    while t < ms(4000) && !closed {
        t += TICK;
        s.handle_timeout(t);
        for a in actions(&mut s, 0, t) {
            match a {
                Action::Close(Close::Stalled) => closed = true,
                Action::Request(c) => s.handle(t, 0, Event::Unsent(c)),
                _ => {}
            }
        }
    }
    assert!(closed, "a capped link that never answers is still found stalled");
    assert!(t <= STALL_MIN + TICK * 3, "after {t:?}");
}

#[test]
fn a_link_waiting_on_its_answers_is_not_woken_on_every_tick() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(1, &book);
    let owner_link = 1;
    connect_owner(&mut s, owner_link, ms(0));
    assert!(actions(&mut s, owner_link, ms(0)).contains(&Action::AskPeers));
    let _ = s.take_woken();
    // The peer list never comes: nothing for the link to do until it does.
    let mut woken = 0;
    for t in (50..=5_000).step_by(50) {
        s.handle_timeout(ms(t));
        if s.take_woken().iter().any(|l| l == owner_link) {
            woken += 1;
            let _ = actions(&mut s, owner_link, ms(t));
        }
    }
    assert!(woken <= 5, "woken {woken} times in 100 ticks");
}

#[test]
fn requests_go_out_in_twos_while_the_server_has_two_to_answer() {
    let book = Arc::new(AddressBook::new(id(1)));
    let mut s = scheduler(1, &book);
    let first = requests(&connect(
        &mut s,
        0,
        id(2),
        addr([10, 0, 0, 2], 1),
        &set(0..CHUNKS),
        ms(0),
    ));
    assert_eq!(
        first.len(),
        PIPELINE_START + REFILL - 1,
        "a new link fills its window (and one more, refilling in twos) at once"
    );
    let mut asked = first.len();
    let mut queue = first;
    let mut batches = Vec::new();
    // One chunk every 50 ms: a window of 2 + 100 ms / 50 ms = 4, so 5 in flight at most,
    // refilled in twos once 3 are left. (Until the list is nearly used up: a last single
    // chunk goes out alone.)
    let mut t = ms(0);
    while asked + REFILL < CHUNKS as usize && t < ms(3000) {
        t += ms(50);
        let c = queue.remove(0);
        s.handle(t, 0, Event::Arrived(c));
        s.stored(t, c, id(2), Outcome::New);
        let next = requests(&actions(&mut s, 0, t));
        batches.push(next.len());
        asked += next.len();
        queue.extend(next);
    }
    assert!(batches.len() > 10, "the link ran a while: {batches:?}");
    assert!(
        batches.iter().all(|&n| n == 0 || n >= REFILL),
        "no request goes out alone while two are queued: {batches:?}"
    );
    assert!(batches.contains(&REFILL), "{batches:?}");
}
