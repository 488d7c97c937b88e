//! The download side: the seed's client thread, grown into a small scheduler of tasks.
//!
//! * **Neighbor slots** (`--neighbors`, default 4): each slot task keeps one neighbor
//!   connected, asks for its chunk ID list whenever the last one offers nothing new,
//!   requests a chunk (rarest first among what all neighbors offer), verifies and stores
//!   it, and repeats. Slot 0 is pinned to the neighbor named on the command line (the
//!   seed's ring), if any; the others take peers from the address book, one slot per
//!   peer, and give a peer up for another when it cannot be reached or is banned.
//! * The **owner task** keeps asking the owner which peers it knows (discovery), and
//!   requests chunks from it only while the [`Fallback`] clock says the neighbors are not
//!   delivering, preferring chunks no neighbor offers.
//! * The **status task** keeps the summary file current and logs what is missing when
//!   nothing arrives.
//!
//! They share one [`Shared`] state behind a mutex never held across an await. A chunk is
//! picked and claimed in one step, so two tasks never fetch the same chunk at once, except
//! in the endgame (the last few chunks), when a slot may duplicate a request already in
//! flight elsewhere rather than wait on a slow neighbor.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, Instrument};

use super::fallback::Fallback;
use super::fetch::FetchLink;
use super::picker;
use super::server::{Server, Target};
use super::storing::{Received, Storing};
use super::Me;
use crate::activity::{self, Source};
use crate::chunk_set::ChunkSet;
use crate::config::{Endpoint, PeerConfig};
use crate::error::Error;
use crate::holdings::{Holdings, SUMMARY_INTERVAL};
use crate::identity::PeerId;
use crate::manifest::ChunkId;
use crate::task;

/// How long without a new chunk before the peer logs what it is still missing.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long a task with nothing to request waits before looking again.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a neighbor may hold a list request until it has something new.
pub const LIST_WAIT: Duration = Duration::from_secs(1);
/// How often the owner is asked which peers it knows.
pub const OWNER_PEX_EVERY: Duration = Duration::from_secs(2);
/// How often a connected server is asked which peers it knows.
pub const PEX_EVERY: Duration = Duration::from_secs(5);
/// Failed dials after which an unpinned slot gives its peer up for another.
pub const GIVE_UP_AFTER: u32 = 3;
/// How long an unpinned slot keeps a neighbor that delivers nothing before it tries
/// another known peer (there may be peers it has not met that hold what it lacks).
pub const ROTATE_AFTER: Duration = Duration::from_secs(3);
/// How long an unpinned slot keeps a neighbor that holds nothing this peer lacks.
pub const ROTATE_USELESS: Duration = Duration::from_secs(1);

/// Where the chunks came from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Chunks from the owner after the initial batch.
    pub from_owner: u32,
    /// Chunks from neighbors.
    pub from_neighbor: u32,
}

/// State the tasks share; held only briefly, never across an await.
#[derive(Debug)]
pub(super) struct Shared {
    /// Chunks held and, for the ones this side fetched, logged and counted.
    pub(super) recorded: u32,
    pub(super) in_flight: ChunkSet,
    /// Each slot's neighbor's last list.
    pub(super) offers: Vec<Option<ChunkSet>>,
    /// Each slot's peer.
    pub(super) assigned: Vec<Option<PeerId>>,
    pub(super) banned: HashSet<PeerId>,
    pub(super) owner_id: Option<PeerId>,
    pub(super) fallback: Fallback,
    pub(super) tally: Tally,
}

pub(super) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A chunk a task is fetching; released when dropped, even if the task is cancelled.
#[derive(Debug)]
pub(super) struct Claim {
    shared: Arc<Mutex<Shared>>,
    pub(super) id: ChunkId,
    /// An endgame duplicate: the chunk's first claim is someone else's to release.
    pub(super) duplicate: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.duplicate {
            lock(&self.shared).in_flight.remove(self.id);
        }
    }
}

/// The download side.
#[derive(Debug)]
pub struct Download {
    holdings: Arc<Holdings>,
    me: Me,
    shared: Arc<Mutex<Shared>>,
    all_recorded: Arc<Notify>,
    owner: Option<Server>,
    pinned: Option<Endpoint>,
    slots: usize,
}

impl Download {
    /// A download side for `holdings`, with the owner link left by the join, if any.
    pub fn new(
        holdings: Arc<Holdings>,
        me: Me,
        config: &PeerConfig,
        owner_link: Option<FetchLink>,
    ) -> Download {
        let chunks = holdings.manifest().layout().chunk_count();
        let recorded = holdings.snapshot().count();
        let owner = match (config.owner.clone(), owner_link) {
            (Some(e), link) => Some(Server::new(Target::Endpoint(e), link, "owner")),
            (None, _) => None,
        };
        let slots = config.neighbors;
        Download {
            holdings,
            me,
            shared: Arc::new(Mutex::new(Shared {
                recorded,
                in_flight: ChunkSet::empty(chunks),
                offers: vec![None; slots],
                assigned: vec![None; slots],
                banned: HashSet::new(),
                owner_id: None,
                fallback: Fallback::new(Instant::now()),
                tally: Tally::default(),
            })),
            all_recorded: Arc::new(Notify::new()),
            owner,
            pinned: config.neighbor.clone(),
            slots,
        }
    }

    /// Where the chunks came from so far.
    pub fn tally(&self) -> Tally {
        lock(&self.shared).tally
    }

    /// Runs until every chunk is held (true) or `token` is cancelled (false). Once the
    /// last chunk is stored and recorded, every task ends at once, whatever it is waiting
    /// on: a slow server must not delay the finished peer.
    pub async fn run(&mut self, token: &CancellationToken) -> Result<bool, Error> {
        let ctx = Arc::new(Ctx {
            holdings: Arc::clone(&self.holdings),
            me: self.me.clone(),
            shared: Arc::clone(&self.shared),
            all_recorded: Arc::clone(&self.all_recorded),
            token: token.child_token(),
        });
        let mut tasks = JoinSet::new();
        for slot in 0..self.slots {
            let pinned = if slot == 0 { self.pinned.take() } else { None };
            let span = info_span!("download", slot);
            tasks.spawn(Arc::clone(&ctx).slot_loop(slot, pinned).instrument(span));
        }
        if let Some(owner) = self.owner.take() {
            // Discovery runs on its own connection, so peers are met while the owner's
            // batch is still streaming in on the JOIN connection.
            let pex = Server::new(owner.target().clone(), None, "owner (peer lists)");
            tasks.spawn(
                Arc::clone(&ctx)
                    .owner_pex_loop(pex)
                    .instrument(info_span!("download", from = "owner-pex")),
            );
            tasks.spawn(
                Arc::clone(&ctx)
                    .owner_loop(owner)
                    .instrument(info_span!("download", from = "owner")),
            );
        }
        tasks.spawn(Arc::clone(&ctx).status_loop().in_current_span());
        let ended = loop {
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
                () = ctx.all_recorded.notified() => break Ok(()),
            }
        };
        ctx.token.cancel();
        tasks.shutdown().await;
        ended?;
        Ok(self.holdings.is_complete())
    }
}

/// What every task shares.
pub(super) struct Ctx {
    pub(super) holdings: Arc<Holdings>,
    pub(super) me: Me,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) all_recorded: Arc<Notify>,
    token: CancellationToken,
}

impl Ctx {
    pub(super) fn running(&self) -> bool {
        !self.token.is_cancelled() && !self.holdings.is_complete()
    }

    /// Waits `d`; false if cancelled meanwhile.
    pub(super) async fn idle(&self, d: Duration) -> bool {
        task::sleep(&self.token, d).await
    }

    /// Waits `d` or until `wake` completes; false if cancelled meanwhile.
    pub(super) async fn idle_or(&self, d: Duration, wake: impl std::future::Future) -> bool {
        task::sleep_or(&self.token, d, wake).await
    }

    /// Picks and claims a chunk in one step, under the lock. `pick` sees every chunk held
    /// or in flight. When it finds nothing and only a few chunks are missing (the
    /// endgame), `endgame` may pick a chunk already in flight elsewhere.
    pub(super) fn claim_with(
        &self,
        pick: impl Fn(&ChunkSet, &Shared) -> Option<ChunkId>,
        endgame: bool,
    ) -> Option<Claim> {
        let mut shared = lock(&self.shared);
        let held = self.holdings.snapshot();
        let mut taken = held.clone();
        taken.union_with(&shared.in_flight);
        if let Some(id) = pick(&taken, &shared) {
            shared.in_flight.insert(id);
            return Some(self.claim(id, false));
        }
        // The endgame: every missing chunk is already being fetched (or only a few are
        // missing), so an idle task may fetch one a slower link is still bringing.
        let missing = held.len() - held.count();
        let in_flight = shared.in_flight.count();
        if endgame && (missing <= in_flight || missing as usize <= shared.offers.len().max(2)) {
            return pick(&held, &shared).map(|id| self.claim(id, true));
        }
        None
    }

    pub(super) fn claim(&self, id: ChunkId, duplicate: bool) -> Claim {
        Claim {
            shared: Arc::clone(&self.shared),
            id,
            duplicate,
        }
    }
}

impl Ctx {
    /// Every [`SUMMARY_INTERVAL`] brings the summary file up to date; every
    /// [`STATUS_EVERY`] without a new chunk logs the missing chunk IDs.
    async fn status_loop(self: Arc<Self>) -> Result<(), Error> {
        let mut last = self.holdings.snapshot().count();
        let mut since = Instant::now();
        while self.running() {
            if !self.idle(SUMMARY_INTERVAL).await {
                break;
            }
            self.holdings.commit().await?;
            let have = self.holdings.snapshot();
            if have.count() != last {
                last = have.count();
                since = Instant::now();
            } else if since.elapsed() >= STATUS_EVERY && !have.is_complete() {
                activity::waiting(&have);
                since = Instant::now();
            }
        }
        Ok(())
    }

    /// Reads the owner's batch on the JOIN connection, if it is still coming, storing each
    /// chunk as it arrives (the slots trade meanwhile).
    async fn receive_batch(&self, server: &mut Server) -> Result<(), Error> {
        let mut storing = Storing::default();
        while let Some(link) = server.link.as_mut().filter(|l| l.in_batch()) {
            let addr = link.addr();
            match link.batch_chunk().await {
                Ok(Some((id, data))) => {
                    // In flight until stored, so no slot asks a neighbor for it meanwhile.
                    let unclaimed = lock(&self.shared).in_flight.insert(id);
                    let claim = unclaimed.then(|| self.claim(id, false));
                    let received = Received::new(id, data.len(), addr, Source::Owner);
                    self.store_ahead(server, &mut storing, received, data, claim)
                        .await?;
                }
                Ok(None) => break,
                Err(e) => server.fault(&e),
            }
        }
        self.store_all(server, &mut storing).await?;
        Ok(())
    }

    /// Asks the owner for the peers it knows right away, after 100 ms, then twice as long
    /// each time up to every [`OWNER_PEX_EVERY`], on a connection of its own; this also
    /// tells the peer the owner's ID, so no slot takes the owner for a neighbor.
    async fn owner_pex_loop(self: Arc<Self>, mut server: Server) -> Result<(), Error> {
        // Peers joining together learn of each other within a few round trips: the owner
        // is asked again after 100 ms, then twice as long each time, up to every 2 s.
        let mut every = POLL / 2;
        while self.running() {
            if server.connect(&self.holdings, &self.me).await {
                lock(&self.shared).owner_id = server.peer_id();
                self.exchange_peers(&mut server).await;
                every = (every * 2).min(OWNER_PEX_EVERY);
                if !self.idle(every).await {
                    break;
                }
            } else if !self.idle(POLL * 5).await {
                break;
            }
        }
        Ok(())
    }

    /// The owner's batch first; then chunks from the owner only on fallback.
    async fn owner_loop(self: Arc<Self>, mut server: Server) -> Result<(), Error> {
        self.receive_batch(&mut server).await?;
        let rng = std::cell::RefCell::new(SmallRng::from_os_rng());
        let mut asking = false;
        while self.running() {
            let use_owner = lock(&self.shared).fallback.use_owner(Instant::now());
            if use_owner != asking {
                asking = use_owner;
                if asking {
                    info!("neighbors are not delivering; asking the owner");
                } else {
                    info!("neighbors are delivering again; owner left alone");
                }
            }
            let mut fetched = false;
            if asking && server.connect(&self.holdings, &self.me).await {
                lock(&self.shared).owner_id = server.peer_id();
                let claim = self.claim_with(
                    |taken, shared| picker::from_owner(taken, &shared.offers, &mut *rng.borrow_mut()),
                    false,
                );
                if let Some(claim) = claim {
                    let mut one = Some(claim);
                    fetched = self.fetch(&mut server, Source::Owner, |_| one.take()).await?;
                }
            }
            if !fetched && !self.idle(POLL).await {
                break;
            }
        }
        Ok(())
    }
}
