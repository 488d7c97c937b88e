//! The owner's hand-out policy: which chunks each of the first peers gets unasked.
//!
//! The first `N` peers (the owner's `--peers`) get near-equal shares of the file
//! (`floor` or `ceil` of `chunks / N`; with more peers than chunks some get none), which
//! together hand out every chunk exactly once. Later peers get no batch: by then the file
//! is in the swarm, and they fetch what they need like everyone else (from the owner too,
//! on request). So the owner pushes the file once in all, however many peers join. Pure
//! and deterministic.

use crate::manifest::ChunkId;

/// Hands out the first round's shares.
#[derive(Debug, Clone)]
pub struct BatchPlanner {
    chunks: u32,
    peers: u32,
    batches: u32,
}

impl BatchPlanner {
    /// A planner for `chunk_count` chunks in a first round of `peers` shares.
    pub fn new(chunk_count: u32, peers: u32) -> BatchPlanner {
        BatchPlanner {
            chunks: chunk_count,
            peers: peers.max(1),
            batches: 0,
        }
    }

    /// How many peers the first round is for.
    pub fn round(&self) -> u32 {
        self.peers
    }

    /// The next peer's batch, ascending: share `k` of the first round for the `k`-th call,
    /// empty once the round is over.
    pub fn next_batch(&mut self) -> Vec<ChunkId> {
        if self.batches >= self.peers {
            return Vec::new();
        }
        let (k, p, n) = (
            u64::from(self.batches),
            u64::from(self.peers),
            u64::from(self.chunks),
        );
        self.batches += 1;
        // Share k of `peers` near-equal shares: the round adds up to the whole file.
        let (from, to) = (k * n / p, (k + 1) * n / p);
        (from as ChunkId..to as ChunkId).collect()
    }
}
