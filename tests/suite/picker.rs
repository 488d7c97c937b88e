//! The picker: random among what the neighbor offers; the owner for what it does not.

use std::collections::BTreeSet;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use swarmshare::chunk_set::ChunkSet;
use swarmshare::peer::picker::{from_neighbor, from_owner, rarest};

fn set(len: u32, ids: &[u32]) -> ChunkSet {
    let mut s = ChunkSet::empty(len);
    for &id in ids {
        s.insert(id);
    }
    s
}

#[test]
fn neighbor_pick_is_random_among_what_it_offers_and_we_have_not_taken() {
    let mut rng = SmallRng::seed_from_u64(3);
    let taken = set(64, &[9]);
    let theirs = set(64, &[3, 9, 27, 40, 63]);
    let seen: BTreeSet<u32> = (0..500)
        .map(|_| from_neighbor(&taken, &theirs, &mut rng).unwrap())
        .collect();
    assert_eq!(seen, BTreeSet::from([3, 27, 40, 63]));
}

#[test]
fn neighbor_with_nothing_new_gives_no_pick() {
    let mut rng = SmallRng::seed_from_u64(1);
    let taken = set(10, &[0, 1, 5]);
    assert_eq!(from_neighbor(&taken, &set(10, &[0, 5]), &mut rng), None);
    assert_eq!(
        from_neighbor(&taken, &set(11, &[7]), &mut rng),
        None,
        "other swarm size"
    );
}

#[test]
fn owner_pick_prefers_chunks_the_neighbor_does_not_offer() {
    let mut rng = SmallRng::seed_from_u64(2);
    let taken = set(10, &[0, 1, 2]);
    let offer = set(10, &[3, 4, 5, 6, 7, 8]);
    for _ in 0..100 {
        assert_eq!(from_owner(&taken, &[Some(offer.clone())], &mut rng), Some(9));
    }
    // Everything missing is on offer: any missing chunk will do.
    let all = set(10, &[3, 4, 5, 6, 7, 8, 9]);
    let seen: BTreeSet<u32> = (0..500)
        .map(|_| from_owner(&taken, &[Some(all.clone())], &mut rng).unwrap())
        .collect();
    assert_eq!(seen, (3..10).collect());
    let seen: BTreeSet<u32> = (0..500)
        .map(|_| from_owner(&taken, &[], &mut rng).unwrap())
        .collect();
    assert_eq!(seen, (3..10).collect());
}

#[test]
fn nothing_missing_gives_no_owner_pick() {
    let mut rng = SmallRng::seed_from_u64(4);
    assert_eq!(from_owner(&ChunkSet::full(10), &[None], &mut rng), None);
}

#[test]
fn rarest_first_among_what_the_neighbors_offer() {
    let mut rng = SmallRng::seed_from_u64(5);
    let taken = set(10, &[0]);
    let theirs = set(10, &[0, 1, 2, 3]);
    // Chunk 3 is offered by one neighbor, 1 and 2 by three.
    let offers = [
        Some(set(10, &[1, 2, 3])),
        Some(set(10, &[1, 2])),
        Some(set(10, &[1, 2, 9])),
        None,
    ];
    for _ in 0..100 {
        assert_eq!(rarest(&taken, &theirs, &offers, &mut rng), Some(3));
    }
    let even = [Some(set(10, &[1, 2, 3]))];
    let seen: BTreeSet<u32> = (0..300)
        .map(|_| rarest(&taken, &theirs, &even, &mut rng).unwrap())
        .collect();
    assert_eq!(seen, BTreeSet::from([1, 2, 3]), "random among equals");
}
