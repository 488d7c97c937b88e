//! What a piece of work cost the thread that ran it: its CPU time and how often it slept,
//! from the kernel (`getrusage(RUSAGE_THREAD)`), and what it waited for ([`Waits`]): locks
//! of the node's own that another thread held, and its slowest write into the page cache.
//!
//! The store placement rule (`holdings::placement`) sends stores to the blocking pool when
//! the disk pushes back: a write that waits (dirty-page throttling, a full device queue).
//! A store sleeps for other reasons too, none of them the disk: waiting for another store's
//! write into the same file (stores on the pool, side by side, wait for each other), for
//! a directory another thread is creating or renaming files in, for the kernel to grow
//! the descriptor table. Counting those kept a tree's stores on the pool for the whole
//! download, each one then costing two thread switches and a copy from another core's
//! cache (a tree of 20,000 files took a fifth longer on two cores: BENCHMARKS.md,
//! 2026-12-06c). So a store counts as pushed back only when one of its writes took long
//! and it slept outside our own locks.

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// A thread's CPU time and voluntary switches so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadUsage {
    /// User and system time.
    pub(crate) cpu: Duration,
    /// Voluntary context switches: times it slept.
    pub(crate) sleeps: i64,
}

impl ThreadUsage {
    /// The calling thread's usage (Linux; `None` elsewhere or if the kernel does not say).
    pub(crate) fn now() -> Option<ThreadUsage> {
        #[cfg(target_os = "linux")]
        {
            let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
            // SAFETY: `usage` is a valid, writable `rusage`; the call fills it in and keeps
            // no pointer to it.
            let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
            if rc != 0 {
                return None;
            }
            // SAFETY: the call succeeded, so it filled the (zeroed, hence initialised anyway)
            // struct.
            let usage = unsafe { usage.assume_init() };
            let micros = |t: libc::timeval| {
                u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
            };
            // `c_long` is 32 bits on some targets.
            #[allow(clippy::useless_conversion)]
            let sleeps = i64::from(usage.ru_nvcsw);
            Some(ThreadUsage {
                cpu: Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime)),
                sleeps,
            })
        }
        #[cfg(not(target_os = "linux"))]
        None
    }
}

/// What one piece of work waited for: locks of ours held by other threads (how long, and
/// how many times it slept for them), and the slowest of its writes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waits {
    pub(crate) locks: Duration,
    pub(crate) lock_sleeps: i64,
    pub(crate) slowest_write: Duration,
}

impl Waits {
    /// Runs `write` (one write system call, or one `write_all`), timing it.
    pub(crate) fn write<R>(&mut self, write: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let result = write();
        self.slowest_write = self.slowest_write.max(start.elapsed());
        result
    }

    /// Locks `m` (a poisoned lock is taken as it is), counting the wait if another thread
    /// holds it. An uncontended lock costs what `lock` does.
    pub(crate) fn lock<'a, T>(&mut self, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
        match m.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let (start, before) = (Instant::now(), ThreadUsage::now());
                let guard = m.lock().unwrap_or_else(PoisonError::into_inner);
                self.locks += start.elapsed();
                self.lock_sleeps += match (before, ThreadUsage::now()) {
                    (Some(a), Some(b)) => b.sleeps - a.sleeps,
                    // Cannot tell: a wait long enough to matter slept.
                    _ => 1,
                };
                guard
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn an_uncontended_lock_is_no_wait() {
        let m = Mutex::new(1);
        let mut waits = Waits::default();
        *waits.lock(&m) += 1;
        assert_eq!(waits, Waits::default());
        waits.write(|| std::thread::sleep(Duration::from_millis(5)));
        assert!(waits.slowest_write >= Duration::from_millis(5), "{waits:?}");
        assert_eq!(*m.lock().unwrap(), 2);
    }

    #[test]
    fn a_wait_for_another_threads_lock_is_counted_with_its_sleep() {
        let m = Arc::new(Mutex::new(()));
        let held = m.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut waits = Waits::default();
                tx.send(()).unwrap();
                drop(waits.lock(&m));
                waits
            })
        };
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        let waits = other.join().unwrap();
        assert!(waits.locks > Duration::ZERO, "{waits:?}");
        if cfg!(target_os = "linux") {
            assert!(waits.lock_sleeps >= 1, "{waits:?}");
        }
    }
}
