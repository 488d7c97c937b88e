//! When the download side stops waiting for its neighbor and asks the owner instead.
//!
//! Pure policy with the clock passed in, so it is tested without sockets or sleeps. The
//! seed's neighbor is the first source and the owner a last resort; the owner is asked
//! only when the neighbor is not *delivering*:
//!
//! * a neighbor never reached gets [`NEVER_REACHED_GRACE`] from the start of the download,
//!   because peers start one by one and the neighbor is usually not up yet;
//! * once it has been reached, the clock restarts only when a chunk *from it* is stored.
//!   Listing chunks it then cannot deliver (NOT_HAVE, a bad hash, a dropped connection)
//!   does not count, and neither does reconnecting, so a neighbor that only talks cannot
//!   keep a peer away from the owner. After [`STALL`] without a delivery, the owner is
//!   asked until the neighbor delivers again;
//! * a neighbor that delivers, but fewer than [`RATE_FLOOR`] chunks in [`RATE_WINDOW`]
//!   (about 100 KiB/s), is too slow to rely on: a drip of one chunk every 1.9 s must not
//!   keep a peer from the owner for hours. The owner is asked alongside it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a neighbor that has been reached may go without delivering a chunk.
pub const STALL: Duration = Duration::from_secs(2);
/// How long a neighbor that has never been reached may take to come up.
pub const NEVER_REACHED_GRACE: Duration = Duration::from_secs(10);

/// The window over which a connected neighbor's delivery rate is judged.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The fewest chunks a neighbor must deliver per [`RATE_WINDOW`] to be relied on alone.
pub const RATE_FLOOR: usize = 10;

/// The fallback clock.
#[derive(Debug, Clone)]
pub struct Fallback {
    started: Instant,
    /// When the neighbor was first reached.
    connected_at: Option<Instant>,
    /// The later of the first connection and the last delivery, once connected.
    last_progress: Option<Instant>,
    /// The last [`RATE_FLOOR`] deliveries.
    recent: VecDeque<Instant>,
    stall: Duration,
    grace: Duration,
}

impl Fallback {
    /// A clock started at `now` with the default limits.
    pub fn new(now: Instant) -> Fallback {
        Fallback::with_limits(now, STALL, NEVER_REACHED_GRACE)
    }

    /// A clock with explicit limits.
    pub fn with_limits(now: Instant, stall: Duration, grace: Duration) -> Fallback {
        Fallback {
            started: now,
            connected_at: None,
            last_progress: None,
            recent: VecDeque::with_capacity(RATE_FLOOR),
            stall,
            grace,
        }
    }

    /// The neighbor's connection is up. Only the first one starts the clocks.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at.get_or_insert(now);
        self.last_progress.get_or_insert(now);
    }

    /// A chunk from the neighbor was verified and stored.
    pub fn delivered(&mut self, now: Instant) {
        self.last_progress = Some(now);
        if self.recent.len() == RATE_FLOOR {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
    }

    /// Whether the owner should be asked now.
    pub fn use_owner(&self, now: Instant) -> bool {
        let (Some(connected), Some(progress)) = (self.connected_at, self.last_progress) else {
            return now.saturating_duration_since(self.started) >= self.grace;
        };
        if now.saturating_duration_since(progress) >= self.stall {
            return true;
        }
        // Judged only once the neighbor has had a whole window to prove itself.
        let judged = now.saturating_duration_since(connected) >= RATE_WINDOW;
        let in_window = self
            .recent
            .iter()
            .filter(|&&t| now.saturating_duration_since(t) < RATE_WINDOW)
            .count();
        judged && in_window < RATE_FLOOR
    }
}
