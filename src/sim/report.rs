//! What a simulation comes to: the figures of [`SimReport`], and the per-second trace.

use super::node::{Kind, Node};
use super::world::World;
use super::{quantile, SimReport};

impl World {
    pub(super) fn trace(&self) {
        let peers = self.nodes.iter().filter(|n| n.kind == Kind::Peer);
        let held: u64 = peers.clone().map(|n| u64::from(n.held.count())).sum();
        let done = peers.filter(|n| n.completed.is_some()).count();
        eprintln!(
            "t={:>6.1}s held={held} done={done} owner_sent/F={:.3} dups={} queue={}",
            self.now.as_secs_f64(),
            self.owner_sent / self.layout.file_size() as f64,
            self.duplicates,
            self.queue.len()
        );
        let mut indeg = vec![0usize; self.nodes.len()];
        for c in self
            .conns
            .iter()
            .filter(|c| c.alive && c.link.is_some() && c.server != 0)
        {
            indeg[c.server] += 1;
        }
        let mut d: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == Kind::Peer && n.alive)
            .map(|(i, _)| indeg[i])
            .collect();
        d.sort_unstable();
        if !d.is_empty() {
            eprintln!(
                "  in-degree: min {} p10 {} p50 {} p90 {} max {}",
                d[0],
                d[d.len() / 10],
                d[d.len() / 2],
                d[d.len() * 9 / 10],
                d[d.len() - 1]
            );
            if let Some(low) = (1..self.nodes.len())
                .filter(|&i| self.nodes[i].kind == Kind::Peer && self.nodes[i].alive)
                .min_by_key(|&i| indeg[i])
            {
                let id = self.nodes[low].id;
                let knowers = self.nodes.iter().filter(|n| n.book.addr_of(id).is_some()).count();
                let books: Vec<usize> = self.nodes.iter().take(6).map(|n| n.book.len()).collect();
                eprintln!(
                    "  lowest node {low} known by {knowers}; book sizes {books:?}; held {}",
                    self.nodes[low].held.count()
                );
                if let Some(s) = self.nodes[low].sched.as_ref() {
                    eprintln!("    {}", s.describe(self.now));
                }
            }
        }
    }

    pub(super) fn report(&self, wall: f64) -> SimReport {
        if self.config.trace {
            eprintln!("events by kind: {:?}", self.by_kind);
        }
        if self.config.trace {
            let mut sent: Vec<u64> = self
                .nodes
                .iter()
                .filter(|n| n.kind == Kind::Peer)
                .map(|n| n.sent)
                .collect();
            sent.sort_unstable();
            let q = |f: f64| sent[((sent.len() - 1) as f64 * f) as usize];
            eprintln!(
                "chunks sent per peer: min {} p10 {} p50 {} p90 {} max {}",
                q(0.0),
                q(0.1),
                q(0.5),
                q(0.9),
                q(1.0)
            );
            let mut by: Vec<(u64, usize)> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.kind == Kind::Peer)
                .map(|(i, n)| (n.sent, i))
                .collect();
            by.sort_unstable();
            for (sent, i) in by.iter().take(6) {
                let servers = self
                    .conns
                    .iter()
                    .filter(|c| c.server == *i && c.link.is_some())
                    .count();
                eprintln!(
                    "  node {i}: sent {sent}, served {servers} connections in all, done {:?}",
                    self.nodes[*i].completed
                );
            }
        }
        let peers: Vec<&Node> = self.nodes.iter().filter(|n| n.kind == Kind::Peer).collect();
        let ratio = |n: &&Node| {
            n.completed
                .map_or(f64::INFINITY, |t| t.as_secs_f64() / self.bound)
        };
        let mut all: Vec<f64> = peers.iter().map(ratio).collect();
        all.sort_by(f64::total_cmp);
        let mut stayers: Vec<f64> = peers.iter().filter(|n| !n.churns).map(ratio).collect();
        stayers.sort_by(f64::total_cmp);
        let incomplete = peers.iter().filter(|n| n.completed.is_none()).count();
        let last = peers.iter().filter_map(|n| n.completed).max();
        let fast: Vec<&&Node> = peers.iter().skip(self.slow).collect();
        let fast_last = fast.iter().filter_map(|n| n.completed).max();
        let fast_done = fast.iter().all(|n| n.completed.is_some());
        SimReport {
            peers: peers.len(),
            chunks: self.layout.chunk_count(),
            bound: self.bound,
            all_complete: (incomplete == 0).then(|| last.map_or(0.0, |t| t.as_secs_f64())),
            fast_complete: fast_done.then(|| fast_last.map_or(0.0, |t| t.as_secs_f64())),
            p50_ratio: quantile(&all, 0.5),
            p90_ratio: quantile(&all, 0.9),
            p99_ratio: quantile(&all, 0.99),
            max_ratio: quantile(&all, 1.0),
            p99_ratio_stayers: quantile(&stayers, 0.99),
            owner_upload_ratio: self.owner_sent / self.layout.file_size() as f64,
            duplicates: self.duplicates,
            messages: self.messages,
            incomplete,
            events: self.events,
            wall_secs: wall,
            completions: all,
        }
    }
}
