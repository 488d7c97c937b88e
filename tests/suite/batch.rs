//! The owner's batches: least-handed-out first, every chunk once before any twice.

use std::collections::BTreeSet;

use swarmshare::owner::batch::BatchPlanner;

#[test]
fn first_n_batches_cover_every_chunk_before_any_repeats() {
    let mut p = BatchPlanner::new(41, 5);
    assert_eq!(p.batch_size(), 9);
    let batches: Vec<Vec<u32>> = (0..5).map(|_| p.next_batch()).collect();
    assert!(batches.iter().all(|b| b.len() == 9));
    // The first four are disjoint; the fifth holds the 5 never handed out, topped up with
    // 4 handed out once.
    let first_four: BTreeSet<u32> = batches[..4].iter().flatten().copied().collect();
    assert_eq!(first_four.len(), 36);
    let all: BTreeSet<u32> = batches.iter().flatten().copied().collect();
    assert_eq!(all, (0..41).collect());
    assert_eq!(p.handed_out().iter().filter(|&&n| n == 2).count(), 4);
    // The sixth peer gets chunks handed out once, never one handed out twice.
    let sixth = p.next_batch();
    assert!(sixth.iter().all(|&id| p.handed_out()[id as usize] == 2));
    assert!(p.handed_out().iter().all(|&n| n == 1 || n == 2));
    assert_eq!(p.handed_out().iter().filter(|&&n| n == 2).count(), 13);
}

#[test]
fn more_peers_than_chunks() {
    let mut p = BatchPlanner::new(5, 8);
    assert_eq!(p.batch_size(), 1);
    let firsts: Vec<u32> = (0..8).map(|_| p.next_batch()[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3, 4, 0, 1, 2]);
}
