//! The owner's batches: the first round hands every chunk out once, later peers get none.

use std::collections::BTreeSet;

use crate::owner::batch::BatchPlanner;

#[test]
fn the_first_round_covers_every_chunk_once_and_later_peers_get_nothing() {
    let mut p = BatchPlanner::new(41, 5);
    assert_eq!(p.round(), 5);
    let batches: Vec<Vec<u32>> = (0..5).map(|_| p.next_batch()).collect();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [8, 8, 8, 8, 9], "near-equal shares of 41");
    // Disjoint and covering the file: every chunk handed out exactly once.
    let all: Vec<u32> = batches.iter().flatten().copied().collect();
    assert_eq!(all.len(), 41);
    assert_eq!(all.iter().copied().collect::<BTreeSet<u32>>(), (0..41).collect());
    assert!(p.next_batch().is_empty(), "the sixth peer gets no batch");
    assert!(p.next_batch().is_empty());
}

#[test]
fn more_peers_than_chunks() {
    let mut p = BatchPlanner::new(5, 8);
    // The first round hands each chunk out once, spread over the eight; three get none.
    let round: Vec<Vec<u32>> = (0..8).map(|_| p.next_batch()).collect();
    assert_eq!(round.iter().filter(|b| b.is_empty()).count(), 3);
    let all: Vec<u32> = round.into_iter().flatten().collect();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    assert!(p.next_batch().is_empty());
}
