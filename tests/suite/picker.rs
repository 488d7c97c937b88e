//! The picker: neighbor first, owner only on fallback, random among candidates.

use std::collections::BTreeSet;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use swarmshare::chunk_set::ChunkSet;
use swarmshare::peer::picker::{pick, Pick};

fn set(len: u32, ids: &[u32]) -> ChunkSet {
    let mut s = ChunkSet::empty(len);
    for &id in ids {
        s.insert(id);
    }
    s
}

#[test]
fn prefers_the_neighbor_even_when_fallback_is_allowed() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mine = set(10, &[0, 1]);
    let theirs = set(10, &[0, 1, 5]);
    for fallback in [false, true] {
        assert_eq!(pick(&mine, Some(&theirs), fallback, &mut rng), Pick::Neighbor(5));
    }
}

#[test]
fn waits_without_fallback_and_asks_the_owner_with_it() {
    let mut rng = SmallRng::seed_from_u64(2);
    let mine = set(10, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let theirs = set(10, &[0]);
    assert_eq!(pick(&mine, Some(&theirs), false, &mut rng), Pick::Wait);
    assert_eq!(pick(&mine, None, false, &mut rng), Pick::Wait);
    assert_eq!(pick(&mine, Some(&theirs), true, &mut rng), Pick::Owner(9));
    assert_eq!(pick(&mine, None, true, &mut rng), Pick::Owner(9));
    assert_eq!(
        pick(&ChunkSet::full(10), None, true, &mut rng),
        Pick::Wait,
        "nothing missing"
    );
}

#[test]
fn picks_randomly_among_what_the_neighbor_offers() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mine = set(64, &[]);
    let theirs = set(64, &[3, 9, 27, 40, 63]);
    let seen: BTreeSet<u32> = (0..500)
        .map(|_| match pick(&mine, Some(&theirs), false, &mut rng) {
            Pick::Neighbor(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seen, BTreeSet::from([3, 9, 27, 40, 63]));
}
