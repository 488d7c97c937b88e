//! The download side: thin drivers around the [`Scheduler`], which makes every decision.
//!
//! One task per link ([`super::link`]: the neighbor slots, the owner link) executes what
//! the scheduler says (dial, request, ask for a list or peers, close), reads the answers,
//! stores chunks, and reports each event back. Beside them run the **clock** (calls
//! [`Scheduler::handle_timeout`] when due and wakes the links it names), the **batch**
//! reader (the owner's batch on the join connection, if it is still coming), the **book
//! watcher** (a new peer wakes the vacant slots) and the **status** task (the summary
//! file every 250 ms, a `waiting` line every 5 s without progress). The scheduler sits
//! behind one mutex that is never held across an await.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use super::ctx::Ctx;
use super::link;
use super::storing::{Received, Storing};
use super::Me;
use crate::activity::{self, Source};
use crate::config::{Endpoint, PeerConfig};
use crate::error::Error;
use crate::fetch::FetchLink;
use crate::holdings::{Holdings, SUMMARY_INTERVAL};
use crate::scheduler::{Role, Scheduler, Stats};
use crate::task;

/// How long without a new chunk before the peer logs what it is still missing.
pub(crate) const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Where the chunks came from.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    /// Chunks from the owner (its batch included).
    pub(crate) from_owner: u32,
    /// Chunks from neighbors.
    pub(crate) from_neighbor: u32,
}

/// The download side.
#[derive(Debug)]
pub(crate) struct Download {
    holdings: Arc<Holdings>,
    me: Me,
    owner: Option<Endpoint>,
    pinned: Option<Endpoint>,
    slots: usize,
    batch: Option<FetchLink>,
    stats: Arc<Mutex<Stats>>,
}

impl Download {
    /// A download side for `holdings`, with the owner's batch still to read on `batch`.
    pub(crate) fn new(
        holdings: Arc<Holdings>,
        me: Me,
        config: &PeerConfig,
        batch: Option<FetchLink>,
    ) -> Download {
        Download {
            holdings,
            me,
            owner: config.owner.clone(),
            pinned: config.neighbor.clone(),
            slots: config.neighbors,
            batch,
            stats: Arc::default(),
        }
    }

    /// Where the chunks came from so far.
    pub(crate) fn tally(&self) -> Tally {
        let s = *self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        Tally {
            from_owner: s.from_owner,
            from_neighbor: s.from_neighbor,
        }
    }

    /// Runs until every chunk is held (true) or `token` is cancelled (false). Once the
    /// last chunk is stored, every task ends at once, whatever it is waiting on.
    pub(crate) async fn run(&mut self, token: &CancellationToken) -> Result<bool, Error> {
        let mut roles = vec![Role::Neighbor; self.slots];
        let mut endpoints: Vec<Option<Endpoint>> = vec![None; self.slots];
        if let Some(pinned) = self.pinned.take() {
            roles[0] = Role::Pinned;
            endpoints[0] = Some(pinned);
        }
        if let Some(owner) = self.owner.clone() {
            roles.push(Role::Owner);
            endpoints.push(Some(owner));
        }
        // Slots for the peers that dial us offering two-way links: those we cannot dial
        // (behind a NAT, say) give what they have this way.
        let inbound = inbound_slots(self.slots);
        roles.extend(std::iter::repeat_n(Role::Inbound, inbound));
        endpoints.extend(std::iter::repeat_n(None, inbound));
        let mut sched = Scheduler::new(
            self.me.id,
            Arc::clone(&self.me.book),
            &roles,
            self.holdings.snapshot(),
            rand::rng().random(),
            Duration::ZERO,
        );
        if let Some(batch) = &self.batch {
            sched.set_owner(batch.peer_id());
        }
        let ctx = Arc::new(Ctx::new(
            Arc::clone(&self.holdings),
            self.me.clone(),
            sched,
            roles.len(),
            token.child_token(),
        ));
        let mut tasks = JoinSet::new();
        for (id, (role, endpoint)) in roles.iter().zip(endpoints).enumerate() {
            let span = match role {
                Role::Owner => info_span!("download", from = "owner"),
                _ => info_span!("download", slot = id),
            };
            tasks.spawn(link::run(Arc::clone(&ctx), id, *role, endpoint).instrument(span));
        }
        if let Some(batch) = self.batch.take() {
            let span = info_span!("download", from = "owner-batch");
            tasks.spawn(receive_batch(Arc::clone(&ctx), batch).instrument(span));
        }
        tasks.spawn(clock(Arc::clone(&ctx)).in_current_span());
        self.me.adopter.open(&ctx);
        tasks.spawn(watch_book(Arc::clone(&ctx)).in_current_span());
        tasks.spawn(status(Arc::clone(&ctx), Arc::clone(&self.stats)).in_current_span());
        let ended = loop {
            if self.holdings.is_complete() && ctx.with(None, |s, _| s.held().is_complete()) {
                break Ok(());
            }
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break Ok(()),
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => break Err(e),
                    Some(Err(e)) => break Err(Error::Io {
                        what: "running the download side",
                        source: std::io::Error::other(e),
                    }),
                },
                () = ctx.all_done.notified() => {}
            }
        };
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = ctx.with(None, |s, _| s.stats());
        self.me.adopter.close();
        ctx.token.cancel();
        tasks.shutdown().await;
        ended?;
        Ok(self.holdings.is_complete())
    }
}

/// How many inbound slots a peer with `slots` neighbor slots keeps: half as many, so
/// `--neighbors 1` (the seed's ring: one download neighbor, no other) keeps none.
pub(crate) fn inbound_slots(slots: usize) -> usize {
    slots / 2
}

/// Calls the scheduler's timeout handling whenever it is due.
async fn clock(ctx: Arc<Ctx>) -> Result<(), Error> {
    loop {
        let next = ctx.with(None, |s, now| s.next_timeout(now).map(|t| t.saturating_sub(now)));
        let Some(wait) = next else { return Ok(()) };
        if !task::sleep(&ctx.token, wait).await {
            return Ok(());
        }
        ctx.with(None, |s, now| s.handle_timeout(now));
    }
}

/// A peer new to the book wakes the vacant slots.
async fn watch_book(ctx: Arc<Ctx>) -> Result<(), Error> {
    let book = Arc::clone(&ctx.me.book);
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => return Ok(()),
            () = book.peer_added() => ctx.with(None, |s, now| s.book_grew(now)),
        }
    }
}

/// Keeps the summary file current and says what is missing when nothing arrives.
async fn status(ctx: Arc<Ctx>, stats: Arc<Mutex<Stats>>) -> Result<(), Error> {
    let mut last = ctx.holdings.snapshot().count();
    let mut since = Instant::now();
    while task::sleep(&ctx.token, SUMMARY_INTERVAL).await {
        ctx.holdings.commit().await?;
        *stats.lock().unwrap_or_else(PoisonError::into_inner) = ctx.with(None, |s, _| s.stats());
        let have = ctx.holdings.snapshot();
        if have.count() != last {
            last = have.count();
            since = Instant::now();
        } else if since.elapsed() >= STATUS_EVERY && !have.is_complete() {
            let why = ctx.with(None, |s, _| s.waiting());
            activity::waiting(&have, &why);
            since = Instant::now();
        }
    }
    Ok(())
}

/// Reads the owner's batch on the join connection, storing each chunk as it arrives (the
/// links trade meanwhile); the connection is closed after `BATCH_END`.
async fn receive_batch(ctx: Arc<Ctx>, mut batch: FetchLink) -> Result<(), Error> {
    let mut storing = Storing::default();
    let (owner, addr) = (batch.peer_id(), batch.addr());
    ctx.with(None, |s, now| s.batch_streaming(true, now));
    loop {
        // A chunk is recorded (logged, announced, known to the scheduler) as soon as it
        // is stored, not when the next frame arrives: on a slow or cut link that can be
        // many seconds later.
        let next = tokio::select! {
            _ = ctx.token.cancelled() => break,
            done = storing.oldest(), if !storing.is_empty() => {
                storing.record(&ctx, None, done?).await?;
                continue;
            }
            next = batch.batch_chunk(), if !storing.full() => next,
        };
        match next {
            Ok(Some((id, data))) => {
                ctx.with(None, |s, now| s.pushed(id, now));
                let received = Received::new(id, data.len(), addr, owner, Source::Owner);
                storing.push(&ctx.holdings, received, data);
            }
            Ok(None) => break,
            Err(e) => {
                warn!(owner = %addr, cause = %e, "the owner's batch was cut short");
                break;
            }
        }
    }
    debug!("owner batch done");
    ctx.with(None, |s, now| s.batch_streaming(false, now));
    while !storing.is_empty() {
        storing.finish_oldest(&ctx, None).await?;
    }
    Ok(())
}
