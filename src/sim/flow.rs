//! Bandwidth as swarmshare spends it: a node's upload cap is a token bucket that lets one
//! whole chunk through at a time (`--upload-limit` takes a chunk's worth of tokens before
//! the chunk is written, and the chunk then goes at line rate), so a node's uploads are
//! served one after another, in the order they were asked for, each taking
//! `chunk / upload`. A download cap paces the same way on the receiving side: a chunk
//! arrives no sooner than `chunk / download` after the one before it.

use super::NodeId;
use crate::scheduler::Time;

/// When each node's upload and download are next free.
#[derive(Debug, Default)]
pub(super) struct Links {
    up_cap: Vec<f64>,
    down_cap: Vec<f64>,
    up_free: Vec<Time>,
    down_free: Vec<Time>,
}

fn secs(bytes: f64, rate: f64) -> Time {
    if rate.is_infinite() || bytes <= 0.0 {
        Time::ZERO
    } else {
        Time::from_secs_f64((bytes / rate).min(1e9))
    }
}

impl Links {
    /// A node with these caps in bytes per second (`f64::INFINITY`: none).
    pub(super) fn add_node(&mut self, up: f64, down: f64) {
        self.up_cap.push(up);
        self.down_cap.push(down);
        self.up_free.push(Time::ZERO);
        self.down_free.push(Time::ZERO);
    }

    /// Sends `bytes` from `src` to `dst`, asked for at `now`: when the last byte leaves.
    pub(super) fn send(&mut self, now: Time, src: NodeId, dst: NodeId, bytes: f64) -> Time {
        let start = now.max(self.up_free[src]);
        let sent = start + secs(bytes, self.up_cap[src]);
        self.up_free[src] = sent;
        if self.down_cap[dst].is_infinite() {
            return sent;
        }
        // Requests are paced in the order they are made, as `--download-limit` does.
        let received = sent.max(self.down_free[dst] + secs(bytes, self.down_cap[dst]));
        self.down_free[dst] = received;
        received
    }
}
