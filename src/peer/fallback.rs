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
//!   asked until the neighbor delivers again.

use std::time::{Duration, Instant};

/// How long a neighbor that has been reached may go without delivering a chunk.
pub const STALL: Duration = Duration::from_secs(2);
/// How long a neighbor that has never been reached may take to come up.
pub const NEVER_REACHED_GRACE: Duration = Duration::from_secs(10);

/// The fallback clock.
#[derive(Debug, Clone)]
pub struct Fallback {
    started: Instant,
    /// The later of the first connection and the last delivery, once connected.
    last_progress: Option<Instant>,
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
            last_progress: None,
            stall,
            grace,
        }
    }

    /// The neighbor's connection is up. Only the first one starts the stall clock.
    pub fn connected(&mut self, now: Instant) {
        self.last_progress.get_or_insert(now);
    }

    /// A chunk from the neighbor was verified and stored.
    pub fn delivered(&mut self, now: Instant) {
        self.last_progress = Some(now);
    }

    /// Whether the owner should be asked now.
    pub fn use_owner(&self, now: Instant) -> bool {
        match self.last_progress {
            None => now.saturating_duration_since(self.started) >= self.grace,
            Some(at) => now.saturating_duration_since(at) >= self.stall,
        }
    }
}
