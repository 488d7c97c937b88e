//! Task plumbing: one spawn helper tied to the node's cancellation tree, and the backoff
//! used by every retry loop.
//!
//! Every task a node starts is spawned through [`spawn`] on the node's `TaskTracker`, runs
//! inside its tracing span, and ends when the node's `CancellationToken` (or a parent's)
//! is cancelled; the node's shutdown cancels the token and waits on the tracker.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, Instrument, Span};

/// Spawns `fut` on `tracker`, inside `span`, stopped by `token`. An `Err` is logged with
/// the task's name; it does not stop anything else.
pub(crate) fn spawn<E, F>(
    tracker: &TaskTracker,
    token: &CancellationToken,
    name: &'static str,
    span: Span,
    fut: F,
) where
    E: Display,
    F: Future<Output = Result<(), E>> + Send + 'static,
{
    let token = token.clone();
    tracker.spawn(
        async move {
            tokio::select! {
                _ = token.cancelled() => debug!(task = name, "cancelled"),
                result = fut => if let Err(e) = result {
                    debug!(task = name, cause = %e, "task ended with an error");
                },
            }
        }
        .instrument(span),
    );
}

/// Sleeps for `d` unless `token` is cancelled first; returns false if it was.
pub(crate) async fn sleep(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Exponential backoff with jitter: each delay is drawn from [half, full] of the current
/// step, and the step doubles up to a maximum.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    attempts: u32,
}

impl Backoff {
    /// Starts at `min`, never exceeds `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            step: min,
            attempts: 0,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let full = self.step;
        self.step = (self.step * 2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Failed attempts since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Back to the shortest delay after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.min;
        self.attempts = 0;
    }
}
