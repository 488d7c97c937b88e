//! The owner's hand-out policy: which chunks each arriving peer gets first.
//!
//! The first `N` peers (the owner's `--peers`) get near-equal shares of the file
//! (`floor` or `ceil` of `chunks / N`; with more peers than chunks some get none), which
//! together hand out every chunk exactly once; later peers get `ceil(chunks / N)` chunks,
//! least-handed-out first (ties to the lowest ID). Pure and deterministic.

use crate::manifest::ChunkId;

/// Tracks how often each chunk has been handed out in a batch.
#[derive(Debug, Clone)]
pub struct BatchPlanner {
    handed_out: Vec<u32>,
    batch_size: u32,
    peers: u32,
    batches: u32,
}

impl BatchPlanner {
    /// A planner for `chunk_count` chunks and batches sized for `peers` peers:
    /// `ceil(chunk_count / peers)` chunks each.
    pub fn new(chunk_count: u32, peers: u32) -> BatchPlanner {
        BatchPlanner {
            handed_out: vec![0; chunk_count as usize],
            batch_size: chunk_count.div_ceil(peers.max(1)),
            peers: peers.max(1),
            batches: 0,
        }
    }

    /// Chunks per batch once the first round is handed out (and at most in it).
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }

    /// The next peer's batch, ascending, and records it as handed out.
    pub fn next_batch(&mut self) -> Vec<ChunkId> {
        let mut ids: Vec<ChunkId> = (0..self.handed_out.len() as u32).collect();
        // Stable sort: among equals, the lower ID first.
        ids.sort_by_key(|&id| self.handed_out[id as usize]);
        let size = if self.batches < self.peers {
            // Share k of `peers` near-equal shares: the round adds up to the whole file.
            let (k, p, n) = (
                u64::from(self.batches),
                u64::from(self.peers),
                self.handed_out.len() as u64,
            );
            ((k + 1) * n / p - k * n / p) as usize
        } else {
            self.batch_size as usize
        };
        self.batches = self.batches.saturating_add(1);
        ids.truncate(size);
        ids.sort_unstable();
        for &id in &ids {
            self.handed_out[id as usize] += 1;
        }
        ids
    }

    /// How often each chunk was handed out.
    pub fn handed_out(&self) -> &[u32] {
        &self.handed_out
    }
}
