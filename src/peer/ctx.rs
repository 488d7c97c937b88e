//! What the download side's tasks share: the scheduler behind one mutex (never held across
//! an await), a wake-up per link, the clock the scheduler reads, and the token that ends
//! them all.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Me;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::scheduler::{LinkId, Scheduler, Time};

/// What every download task shares.
pub(super) struct Ctx {
    pub(super) holdings: Arc<Holdings>,
    pub(super) me: Me,
    sched: Mutex<Scheduler>,
    wakes: Vec<Notify>,
    /// Links peers dialled and the upload side handed over, for the inbound slot the
    /// scheduler gave each ([`super::two_way::Adopter`]).
    handoffs: Vec<Mutex<Option<FetchLink>>>,
    epoch: Instant,
    pub(super) all_done: Notify,
    pub(super) token: CancellationToken,
}

impl Ctx {
    /// The shared state for `links` link tasks around `sched`.
    pub(super) fn new(
        holdings: Arc<Holdings>,
        me: Me,
        sched: Scheduler,
        links: usize,
        token: CancellationToken,
    ) -> Ctx {
        Ctx {
            holdings,
            me,
            sched: Mutex::new(sched),
            wakes: (0..links).map(|_| Notify::new()).collect(),
            handoffs: (0..links).map(|_| Mutex::new(None)).collect(),
            epoch: Instant::now(),
            all_done: Notify::new(),
            token,
        }
    }

    /// Time since the download began: the scheduler's clock.
    pub(super) fn now(&self) -> Time {
        self.epoch.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, Scheduler> {
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the scheduler, then wakes every link it names (but `caller`, which
    /// polls anyway).
    pub(super) fn with<R>(&self, caller: Option<LinkId>, f: impl FnOnce(&mut Scheduler, Time) -> R) -> R {
        let mut sched = self.lock();
        let out = f(&mut sched, self.now());
        let woken = sched.take_woken();
        let complete = sched.held().is_complete();
        drop(sched);
        for l in woken.iter() {
            if Some(l) != caller {
                if let Some(w) = self.wakes.get(l) {
                    w.notify_one();
                }
            }
        }
        if complete {
            self.all_done.notify_one();
        }
        out
    }

    /// Completes when `link` is woken.
    pub(super) fn woken(&self, link: LinkId) -> tokio::sync::futures::Notified<'_> {
        self.wakes[link].notified()
    }

    /// Hands `conn` to inbound slot `link` and wakes it.
    pub(super) fn hand_over(&self, link: LinkId, conn: FetchLink) {
        if let Some(slot) = self.handoffs.get(link) {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        }
        if let Some(w) = self.wakes.get(link) {
            w.notify_one();
        }
    }

    /// The link handed to `link`, if one was.
    pub(super) fn take_handoff(&self, link: LinkId) -> Option<FetchLink> {
        self.handoffs
            .get(link)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(super) fn running(&self) -> bool {
        !self.token.is_cancelled()
    }
}
