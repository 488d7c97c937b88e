//! Where a received chunk is verified and written: on the runtime's own thread, or on the
//! blocking pool. A rule without a clock (the caller passes the time), so tests drive it.
//!
//! Handing a chunk to the pool costs two thread switches (wake a pool thread; it wakes
//! the runtime back), which under a rate limit, when chunks arrive every few
//! milliseconds, was the largest part of a peer's CPU per chunk. Doing the work in place
//! costs one hash and one copy into the page cache (tens of microseconds) but blocks the
//! runtime while it runs. So a store runs in place while stores are quick and rare, and
//! goes to the pool when:
//! - their CPU time was more than [`MAX_DUTY`] of the last [`WINDOW`] (the node is busy:
//!   hashing on another core is worth the switches), or
//! - one of a store's writes took longer than [`SLOW_STORE`] and the store slept (the disk
//!   pushes back: dirty-page throttling, a congested device), and then for
//!   [`SLOW_BACKOFF`] after it.
//!
//! A store's [`Cost`] tells its CPU time from its wall time: on a host with more busy
//! threads than cores a store is often preempted, and counting that as work sent stores
//! to the pool exactly when no core was free for it (a 1 GiB swarm of five on two cores
//! then spent 10-80% more CPU and took longer than storing in place). Nor does a sleep
//! for another store (see [`crate::thread_usage`]) count, and a store whose writes were
//! all quick is not pushed back whatever else it waited for (a directory, the descriptor
//! table); one with a slow write that slept elsewhere is, even if the write was only
//! preempted: a rare miss, on the side of the pool.

use std::time::{Duration, Instant};

use crate::thread_usage::{ThreadUsage, Waits};

/// How often the rule looks at how busy stores kept the node.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);
/// The share of a window that stores may take and still run in place.
pub(crate) const MAX_DUTY: f64 = 0.25;
/// A store's write slower than this (and the store slept) means the disk is pushing back.
pub(crate) const SLOW_STORE: Duration = Duration::from_millis(2);
/// How long after a slow store every store goes to the pool.
pub(crate) const SLOW_BACKOFF: Duration = Duration::from_secs(2);

/// Where one store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// On the calling (runtime) thread.
    Inline,
    /// On the blocking pool.
    Pool,
}

/// What one store cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    /// Its slowest write into the page cache (where the disk pushes back).
    pub(crate) write: Duration,
    /// The thread's CPU time in it (`wall` where the platform cannot tell).
    pub(crate) cpu: Duration,
    /// Whether the thread slept in it other than for our own locks (waited for the disk,
    /// say), as opposed to only being preempted (`true` where the platform cannot tell).
    pub(crate) slept: bool,
}

impl Cost {
    /// What a store cost that took `wall`, waited for `waits`, and ran on a thread whose
    /// usage was `before` when it began and `after` when it ended: its sleeps for our own
    /// locks do not count as sleeping.
    pub(crate) fn of(
        before: Option<ThreadUsage>,
        after: Option<ThreadUsage>,
        wall: Duration,
        waits: Waits,
    ) -> Cost {
        match (before, after) {
            (Some(a), Some(b)) => Cost {
                write: waits.slowest_write,
                cpu: b.cpu.saturating_sub(a.cpu).min(wall),
                slept: b.sleeps - a.sleeps > waits.lock_sleeps,
            },
            _ => Cost {
                write: waits.slowest_write,
                cpu: wall.saturating_sub(waits.locks),
                slept: true,
            },
        }
    }

    /// A store that worked through all of `wall` without being preempted (tests).
    #[cfg(test)]
    pub(crate) fn busy(wall: Duration) -> Cost {
        Cost {
            write: wall,
            cpu: wall,
            slept: false,
        }
    }
}

/// The rule's state: the current window and what stores cost in it.
#[derive(Debug)]
pub(crate) struct Placement {
    window: Instant,
    busy: Duration,
    /// Decided at the end of the last window.
    mode: Place,
    pool_until: Option<Instant>,
}

impl Placement {
    /// A node starts storing in place.
    pub(crate) fn new(now: Instant) -> Placement {
        Placement {
            window: now,
            busy: Duration::ZERO,
            mode: Place::Inline,
            pool_until: None,
        }
    }

    /// Where the next store runs.
    pub(crate) fn place(&mut self, now: Instant) -> Place {
        self.roll(now);
        if self.pool_until.is_some_and(|until| now < until) {
            return Place::Pool;
        }
        if self.busy.as_secs_f64() > MAX_DUTY * WINDOW.as_secs_f64() {
            // Busy already in this window: no need to wait for its end.
            return Place::Pool;
        }
        self.mode
    }

    /// A store that ended at `now` cost `cost`, wherever it ran.
    pub(crate) fn record(&mut self, now: Instant, cost: Cost) {
        self.roll(now);
        self.busy += cost.cpu;
        let took = cost.write;
        if took > SLOW_STORE && cost.slept {
            if self.pool_until.is_none_or(|until| now >= until) {
                tracing::debug!(
                    write_ms = took.as_secs_f64() * 1e3,
                    "a slow write: stores go to the blocking pool"
                );
            }
            self.pool_until = Some(now + SLOW_BACKOFF);
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window);
        if elapsed >= WINDOW {
            let duty = self.busy.as_secs_f64() / elapsed.as_secs_f64();
            self.mode = if duty > MAX_DUTY {
                Place::Pool
            } else {
                Place::Inline
            };
            self.window = now;
            self.busy = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    #[test]
    fn rare_quick_stores_run_in_place() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        // 100 chunks a second (10 MB/s), 60 µs each.
        for i in 0..300 {
            let at = t0 + i * 10 * MS;
            assert_eq!(p.place(at), Place::Inline, "store {i}");
            p.record(at + 60 * US, Cost::busy(60 * US));
        }
    }

    #[test]
    fn a_busy_node_stores_on_the_pool_until_it_is_quiet() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        // Back to back, 60 µs each, one every 100 µs: 60% of the time.
        let mut at = t0;
        let mut pooled = 0;
        for _ in 0..3000 {
            if p.place(at) == Place::Pool {
                pooled += 1;
            }
            p.record(at + 60 * US, Cost::busy(60 * US));
            at += 100 * US;
        }
        assert!(pooled > 2500, "{pooled} of 3000 went to the pool");
        // Then a quiet spell: in place again.
        at += 2 * WINDOW;
        assert_eq!(p.place(at), Place::Inline);
    }

    #[test]
    fn within_a_window_the_pool_takes_over_once_the_share_is_spent() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        // 30 ms of stores in the first 40 ms of a window (no single store is slow).
        for i in 0..20 {
            let at = t0 + i * 2 * MS;
            let place = p.place(at);
            p.record(at + 1500 * US, Cost::busy(1500 * US));
            if i >= 17 {
                assert_eq!(place, Place::Pool, "store {i}");
            }
        }
    }

    #[test]
    fn one_slow_store_sends_the_next_seconds_to_the_pool() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        p.record(
            t0 + 30 * MS,
            Cost {
                write: 30 * MS,
                cpu: MS,
                slept: true,
            },
        );
        let mut at = t0 + 40 * MS;
        while at < t0 + 30 * MS + SLOW_BACKOFF {
            assert_eq!(p.place(at), Place::Pool);
            p.record(at + 60 * US, Cost::busy(60 * US));
            at += 10 * MS;
        }
        at += WINDOW;
        assert_eq!(p.place(at), Place::Inline);
    }

    #[test]
    fn preempted_stores_are_counted_by_the_work_they_did() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        // A host with more busy threads than cores: each store of 60 µs of work takes
        // 3 ms of wall time, one every 5 ms. Neither busy nor pushed back by the disk.
        let mut at = t0;
        for i in 0..400 {
            assert_eq!(p.place(at), Place::Inline, "store {i}");
            let cost = Cost {
                write: 3 * MS,
                cpu: 60 * US,
                slept: false,
            };
            p.record(at + 3 * MS, cost);
            at += 5 * MS;
        }
    }

    fn usage(cpu: Duration, sleeps: i64) -> Option<ThreadUsage> {
        Some(ThreadUsage { cpu, sleeps })
    }

    #[test]
    fn a_store_that_slept_only_for_other_stores_is_not_slow() {
        let t0 = Instant::now();
        let mut p = Placement::new(t0);
        // Stores on the pool waiting 8 ms for each other's writes into one file: quick
        // writes once their turn came, no sleep but in the wait.
        let mut at = t0;
        for i in 0..400 {
            let waits = Waits {
                locks: 8 * MS,
                lock_sleeps: 2,
                slowest_write: 40 * US,
            };
            let cost = Cost::of(usage(MS, 10), usage(MS + 70 * US, 12), 9 * MS, waits);
            assert!(!cost.slept, "{cost:?}");
            p.record(at + 9 * MS, cost);
            assert_eq!(p.place(at + 9 * MS), Place::Inline, "store {i}");
            at += 10 * MS;
        }
        // One whose write took 20 ms and that slept besides its waits for locks: the disk.
        let waits = Waits {
            locks: MS,
            lock_sleeps: 1,
            slowest_write: 20 * MS,
        };
        let cost = Cost::of(usage(MS, 10), usage(MS + 80 * US, 12), 21 * MS, waits);
        assert!(cost.slept, "{cost:?}");
        p.record(at + 21 * MS, cost);
        assert_eq!(p.place(at + 22 * MS), Place::Pool);
    }
}
