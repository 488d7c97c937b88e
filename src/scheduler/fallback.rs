//! When the download side asks the owner for chunks no neighbor offers.
//!
//! Pure policy with the clock passed in, so it is tested without sockets or sleeps. The
//! neighbors are the first source and the owner a last resort for chunks none of them
//! offers; those are asked of the owner only when the neighbors are not *delivering*
//! (chunks a neighbor offers but would bring late are the scheduler's lateness rule):
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
use std::time::Duration;

use super::Time;

/// How long a neighbor that has been reached may go without delivering a chunk.
pub(crate) const STALL: Duration = Duration::from_secs(2);
/// How long a neighbor that has never been reached may take to come up.
pub(crate) const NEVER_REACHED_GRACE: Duration = Duration::from_secs(10);

/// The window over which a connected neighbor's delivery rate is judged.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The fewest chunks a neighbor must deliver per [`RATE_WINDOW`] to be relied on alone.
pub(crate) const RATE_FLOOR: usize = 10;

/// The fallback clock.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    started: Time,
    /// When the neighbor was first reached.
    connected_at: Option<Time>,
    /// The later of the first connection and the last delivery, once connected.
    last_progress: Option<Time>,
    /// The last [`RATE_FLOOR`] deliveries.
    recent: VecDeque<Time>,
    stall: Duration,
    grace: Duration,
}

impl Fallback {
    /// A clock started at `now` with the default limits.
    pub(crate) fn new(now: Time) -> Fallback {
        Fallback::with_limits(now, STALL, NEVER_REACHED_GRACE)
    }

    /// A clock with explicit limits.
    pub(crate) fn with_limits(now: Time, stall: Duration, grace: Duration) -> Fallback {
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
    pub(crate) fn connected(&mut self, now: Time) {
        self.connected_at.get_or_insert(now);
        self.last_progress.get_or_insert(now);
    }

    /// A chunk from the neighbor was verified and stored.
    pub(crate) fn delivered(&mut self, now: Time) {
        self.last_progress = Some(now);
        if self.recent.len() == RATE_FLOOR {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
    }

    /// Whether the owner should be asked now.
    pub(crate) fn use_owner(&self, now: Time) -> bool {
        let (Some(connected), Some(progress)) = (self.connected_at, self.last_progress) else {
            return now.saturating_sub(self.started) >= self.grace;
        };
        if now.saturating_sub(progress) >= self.stall {
            return true;
        }
        // Judged only once the neighbor has had a whole window to prove itself.
        let judged = now.saturating_sub(connected) >= RATE_WINDOW;
        let in_window = self
            .recent
            .iter()
            .filter(|&&t| now.saturating_sub(t) < RATE_WINDOW)
            .count();
        judged && in_window < RATE_FLOOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(2);
    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_neighbor_never_reached_gets_the_grace_period() {
        let t0 = Duration::from_secs(100);
        let f = Fallback::with_limits(t0, STALL, GRACE);
        assert!(
            !f.use_owner(t0 + STALL * 3),
            "stall does not apply before a connection"
        );
        assert!(!f.use_owner(t0 + GRACE - Duration::from_millis(1)));
        assert!(f.use_owner(t0 + GRACE));
    }

    #[test]
    fn a_reached_neighbor_must_deliver_and_reconnecting_does_not_count() {
        let t0 = Duration::from_secs(100);
        let mut f = Fallback::with_limits(t0, STALL, GRACE);
        f.connected(t0 + Duration::from_secs(1));
        assert!(!f.use_owner(t0 + Duration::from_millis(2900)));
        assert!(
            f.use_owner(t0 + Duration::from_secs(3)),
            "connected, then nothing for STALL"
        );
        // A neighbor that drops and reconnects without delivering stays stalled.
        f.connected(t0 + Duration::from_secs(4));
        assert!(f.use_owner(t0 + Duration::from_secs(4)));
        f.delivered(t0 + Duration::from_secs(5));
        assert!(
            !f.use_owner(t0 + Duration::from_secs(6)),
            "a delivery restarts the clock"
        );
        assert!(f.use_owner(t0 + Duration::from_secs(7)));
    }

    #[test]
    fn a_neighbor_that_drips_chunks_does_not_keep_the_owner_away() {
        let t0 = Duration::from_secs(100);
        let mut f = Fallback::with_limits(t0, STALL, GRACE);
        f.connected(t0);
        // One chunk every 1.9 s: never a 2 s stall, but far below the rate floor.
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_millis(1900);
            f.delivered(t);
        }
        assert!(t - t0 >= RATE_WINDOW - Duration::from_millis(500));
        assert!(f.use_owner(t + Duration::from_millis(600)), "too slow to rely on");
        // A neighbor delivering well is relied on alone, however long it runs.
        let mut g = Fallback::with_limits(t0, STALL, GRACE);
        g.connected(t0);
        let mut t = t0;
        for _ in 0..300 {
            t += Duration::from_millis(100);
            g.delivered(t);
            assert!(!g.use_owner(t));
        }
    }
}
