//! Rate limits: a token bucket per process and direction, shared by every connection.
//!
//! `--upload-limit` and `--download-limit` take bytes per second. Each sender asks the
//! bucket for the bytes it is about to move ([`RateLimit::acquire`]); the bucket refills at
//! the rate, holds at most [`BURST`] worth of tokens, and may go into debt by one request,
//! which the next caller waits off. So the long-run rate never exceeds the limit, a single
//! 100 KiB chunk is never refused for being larger than the bucket, and waiting costs no
//! CPU (a tokio sleep, ending on a [`WAKE_GRID`] point so that senders waiting at once
//! wake together).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How much unused allowance may pile up: this much time's worth of the rate.
pub(crate) const BURST: Duration = Duration::from_millis(50);
/// A waiting sender wakes on this grid (counted from the Unix epoch, see [`grid_point`]),
/// so senders waiting at once share one wake-up instead of one each, and so do the nodes
/// of one host. Waking later never lets more through: the tokens are counted from the
/// clock. Nor less: the grid is under [`BURST`], so what a sender earns while it waits for
/// the next point fits in the bucket. 40 ms rather than 20: a quarter fewer context
/// switches and 5% less CPU per peer in a capped swarm of ten, for +0.5% time at 20 and
/// 100 MB (BENCHMARKS.md, 2026-12-06b).
pub(crate) const WAKE_GRID: Duration = Duration::from_millis(40);
const _: () = assert!(WAKE_GRID.as_nanos() < BURST.as_nanos());

/// A token bucket in bytes.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    /// Where [`WAKE_GRID`] starts.
    epoch: Instant,
}

impl RateLimit {
    /// A bucket refilling at `bytes_per_sec`, starting full.
    pub(crate) fn new(bytes_per_sec: u64) -> RateLimit {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = rate * BURST.as_secs_f64();
        RateLimit {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
            epoch: grid_epoch(),
        }
    }

    /// A bucket refilling at `bytes_per_sec` that holds at most `burst` bytes, starting full.
    pub(crate) fn with_burst(bytes_per_sec: u64, burst: u64) -> RateLimit {
        let burst = burst as f64;
        RateLimit {
            rate: bytes_per_sec.max(1) as f64,
            burst,
            state: Mutex::new((burst, Instant::now())),
            epoch: grid_epoch(),
        }
    }

    /// Whether the bucket is full again (nobody has drawn on it lately).
    pub(crate) fn is_full(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = *state;
        tokens + Instant::now().duration_since(last).as_secs_f64() * self.rate >= self.burst
    }

    /// Takes `bytes` from the bucket if it holds them now; false (nothing taken) if not.
    pub(crate) fn try_acquire(&self, bytes: usize) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = *state;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        let ok = refilled >= bytes as f64;
        *state = (if ok { refilled - bytes as f64 } else { refilled }, now);
        ok
    }

    /// Takes `bytes` from the bucket now, without waiting: whoever takes next pays the debt.
    pub(crate) fn charge(&self, bytes: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = *state;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        *state = (refilled - bytes as f64, now);
    }

    /// Takes `bytes` from the bucket, waiting until the debt they leave is paid off.
    pub(crate) async fn acquire(&self, bytes: usize) {
        let wake = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let (tokens, last) = *state;
            let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
            let left = refilled - bytes as f64;
            *state = (left, now);
            (left < 0.0).then(|| self.on_grid(now + Duration::from_secs_f64(-left / self.rate)))
        };
        if let Some(wake) = wake {
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl RateLimit {
    /// The first [`WAKE_GRID`] point at or after `at`.
    fn on_grid(&self, at: Instant) -> Instant {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        let grid = WAKE_GRID.as_nanos();
        let steps = u32::try_from(since.div_ceil(grid)).unwrap_or(u32::MAX);
        self.epoch + WAKE_GRID * steps
    }
}

/// A point of [`WAKE_GRID`] counted from the Unix epoch by the system clock, so that the
/// nodes of a swarm on one host (or on hosts whose clocks agree) send on the same grid:
/// what they send arrives together, and a receiver wakes once for several chunks (under a
/// 10 MB/s cap, a third fewer context switches per peer than with a grid of its own). The
/// price: a peer fed by many nodes whose clocks agree gets their chunks in 40 ms bursts.
fn grid_epoch() -> Instant {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    grid_point(Instant::now(), since_unix)
}

/// The last point of [`WAKE_GRID`] at or before `now`, when the system clock reads
/// `since_unix`.
pub(crate) fn grid_point(now: Instant, since_unix: Duration) -> Instant {
    let into_step = since_unix.as_nanos() % WAKE_GRID.as_nanos();
    let into_step = Duration::from_nanos(u64::try_from(into_step).unwrap_or(0));
    now.checked_sub(into_step).unwrap_or(now)
}

/// A process's limits, either direction optional.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    /// Bytes per second of chunk data sent, across all connections.
    pub upload: Option<Arc<RateLimit>>,
    /// Bytes per second of chunk data requested, across all connections.
    pub download: Option<Arc<RateLimit>>,
}

impl Limits {
    /// Limits from optional rates in bytes per second.
    pub(crate) fn new(upload: Option<u64>, download: Option<u64>) -> Limits {
        Limits {
            upload: upload.map(|r| Arc::new(RateLimit::new(r))),
            download: download.map(|r| Arc::new(RateLimit::new(r))),
        }
    }

    /// Waits until `bytes` may be sent.
    pub(crate) async fn before_upload(&self, bytes: usize) {
        if let Some(limit) = &self.upload {
            limit.acquire(bytes).await;
        }
    }

    /// Counts `bytes` sent that did not wait (a relay's forwarding): the chunks sent next
    /// pay for them.
    pub(crate) fn charge_upload(&self, bytes: usize) {
        if let Some(limit) = &self.upload {
            limit.charge(bytes);
        }
    }

    /// Waits until `bytes` may be requested.
    pub(crate) async fn before_download(&self, bytes: usize) {
        if let Some(limit) = &self.download {
            limit.acquire(bytes).await;
        }
    }

    /// Whether `bytes` may be requested right now (taken from the download budget if so).
    pub(crate) fn try_download(&self, bytes: usize) -> bool {
        self.download
            .as_ref()
            .is_none_or(|limit| limit.try_acquire(bytes))
    }
}

/// What a client the owner does not trust may still cost it: every byte sent to it is paid
/// from its address's bucket and from the one all such clients share.
#[derive(Debug, Clone)]
pub(crate) struct Allowance {
    /// The client's address's bucket.
    pub(crate) address: Arc<RateLimit>,
    /// The bucket of every untrusted client together.
    pub(crate) everyone: Arc<RateLimit>,
    /// What makes the client trusted after all, while it holds (see [`Waiver`]).
    pub(crate) waiver: Option<Waiver>,
}

impl Allowance {
    /// Waits until `bytes` may be sent from both buckets (at once while waived).
    pub(crate) async fn spend(&self, bytes: usize) {
        if self.waiver.as_ref().is_some_and(Waiver::holds) {
            return;
        }
        self.address.acquire(bytes).await;
        self.everyone.acquire(bytes).await;
    }

    /// The same allowance, always paid from.
    pub(crate) fn unwaived(self) -> Allowance {
        Allowance { waiver: None, ..self }
    }

    /// The same allowance, paid nothing from while `waiver` holds.
    pub(crate) fn waived_while(self, waiver: Waiver) -> Allowance {
        Allowance {
            waiver: Some(waiver),
            ..self
        }
    }
}

/// A condition under which an untrusted client is trusted after all, asked at every
/// payment (the owner's: the client holds a relay reservation with it).
#[derive(Clone)]
pub(crate) struct Waiver(Arc<dyn Fn() -> bool + Send + Sync>);

impl Waiver {
    pub(crate) fn new(holds: impl Fn() -> bool + Send + Sync + 'static) -> Waiver {
        Waiver(Arc::new(holds))
    }

    fn holds(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for Waiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiver")
    }
}
