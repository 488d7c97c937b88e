//! The owner's batches: least-handed-out first, every chunk once before any twice.

use std::collections::BTreeSet;

use crate::owner::batch::BatchPlanner;

#[test]
fn first_n_batches_cover_every_chunk_before_any_repeats() {
    let mut p = BatchPlanner::new(41, 5);
    assert_eq!(p.batch_size(), 9);
    let batches: Vec<Vec<u32>> = (0..5).map(|_| p.next_batch()).collect();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [8, 8, 8, 8, 9], "near-equal shares of 41");
    // The first five are disjoint and cover the file: every chunk handed out exactly once.
    let all: BTreeSet<u32> = batches.iter().flatten().copied().collect();
    assert_eq!(all, (0..41).collect());
    assert!(p.handed_out().iter().all(|&n| n == 1));
    // The sixth peer gets a full batch of chunks handed out once, never one twice.
    let sixth = p.next_batch();
    assert_eq!(sixth.len(), 9);
    assert!(sixth.iter().all(|&id| p.handed_out()[id as usize] == 2));
    assert!(p.handed_out().iter().all(|&n| n == 1 || n == 2));
    assert_eq!(p.handed_out().iter().filter(|&&n| n == 2).count(), 9);
}

#[test]
fn more_peers_than_chunks() {
    let mut p = BatchPlanner::new(5, 8);
    assert_eq!(p.batch_size(), 1);
    // The first round hands each chunk out once, spread over the eight; three get none.
    let round: Vec<Vec<u32>> = (0..8).map(|_| p.next_batch()).collect();
    assert_eq!(round.iter().filter(|b| b.is_empty()).count(), 3);
    let all: Vec<u32> = round.into_iter().flatten().collect();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    // After the round, one chunk each, least-handed-out first.
    assert_eq!(p.next_batch(), vec![0]);
    assert_eq!(p.next_batch(), vec![1]);
}
