//! The download side: the seed's client thread, as two loops that run at once.
//!
//! * The **neighbor loop** keeps the download neighbor connected (dialling with backoff
//!   while it is not up), asks for a fresh chunk ID list whenever the last one offers
//!   nothing new, requests a random chunk from it, verifies and stores it, and repeats.
//! * The **owner loop** sleeps while the [`Fallback`] clock says the neighbor is
//!   delivering. When it is not (not up yet after a grace period, an open chain, gone,
//!   or listing chunks it does not deliver), it requests chunks from the owner, preferring
//!   ones the neighbor does not offer, until the neighbor delivers again.
//!
//! The loops share one [`Shared`] state: the chunks being fetched (so both never ask for
//! the same one), the neighbor's last list and the fallback clock. A slow or silent server
//! therefore only stalls its own loop.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, Instrument};

use super::fallback::Fallback;
use super::fetch::{FetchLink, Fetched};
use super::picker;
use super::server::Server;
use crate::activity::{self, Source};
use crate::chunk_set::ChunkSet;
use crate::config::Endpoint;
use crate::error::{Error, PeerError};
use crate::holdings::{Added, Holdings, SUMMARY_INTERVAL};
use crate::manifest::ChunkId;
use crate::task;

/// How long without a new chunk before the peer logs what it is still missing.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long a loop with nothing to request waits before looking again.
pub const POLL: Duration = Duration::from_millis(100);

/// Where the chunks came from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Chunks from the owner after the initial batch.
    pub from_owner: u32,
    /// Chunks from the download neighbor.
    pub from_neighbor: u32,
}

/// State both loops read and write; held only briefly, never across an await.
#[derive(Debug)]
struct Shared {
    /// Chunks held and, for the ones this side fetched, logged and counted.
    recorded: u32,
    in_flight: ChunkSet,
    offer: Option<ChunkSet>,
    fallback: Fallback,
    tally: Tally,
}

/// A chunk one loop is fetching; released when dropped, even if the loop is cancelled.
struct Claim<'a> {
    shared: &'a Mutex<Shared>,
    id: ChunkId,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(self.shared).in_flight.remove(self.id);
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The download side's state.
#[derive(Debug)]
pub struct Download {
    holdings: Arc<Holdings>,
    listen_port: u16,
    neighbor: Server,
    owner: Server,
    shared: Mutex<Shared>,
    all_recorded: Notify,
}

impl Download {
    /// A download side for `holdings`, with the owner link left by the join.
    pub fn new(
        holdings: Arc<Holdings>,
        listen_port: u16,
        neighbor: Endpoint,
        owner: Endpoint,
        owner_link: Option<FetchLink>,
    ) -> Download {
        let chunks = holdings.manifest().layout().chunk_count();
        let holdings_count = holdings.snapshot().count();
        Download {
            holdings,
            listen_port,
            neighbor: Server::new(neighbor, None, "download neighbor"),
            owner: Server::new(owner, owner_link, "owner"),
            all_recorded: Notify::new(),
            shared: Mutex::new(Shared {
                recorded: holdings_count,
                in_flight: ChunkSet::empty(chunks),
                offer: None,
                fallback: Fallback::new(Instant::now()),
                tally: Tally::default(),
            }),
        }
    }

    /// Where the chunks came from so far.
    pub fn tally(&self) -> Tally {
        lock(&self.shared).tally
    }

    /// Runs until every chunk is held (true) or `token` is cancelled (false). Once the
    /// last chunk is stored and recorded, the loops end at once, whatever the other one is
    /// waiting on: a slow server must not delay the finished peer.
    pub async fn run(&mut self, token: &CancellationToken) -> Result<bool, Error> {
        let Download {
            holdings,
            listen_port,
            neighbor,
            owner,
            shared,
            all_recorded,
        } = self;
        let ctx = Ctx {
            holdings,
            shared,
            all_recorded,
            listen_port: *listen_port,
            token,
        };
        let loops = async {
            tokio::try_join!(
                ctx.neighbor_loop(neighbor)
                    .instrument(info_span!("download", from = "neighbor")),
                ctx.owner_loop(owner)
                    .instrument(info_span!("download", from = "owner")),
                ctx.status_loop(),
            )
        };
        tokio::select! {
            ended = loops => { ended?; }
            () = all_recorded.notified() => {}
        }
        Ok(holdings.is_complete())
    }
}

/// What both loops borrow.
struct Ctx<'a> {
    holdings: &'a Arc<Holdings>,
    shared: &'a Mutex<Shared>,
    all_recorded: &'a Notify,
    listen_port: u16,
    token: &'a CancellationToken,
}

impl Ctx<'_> {
    fn running(&self) -> bool {
        !self.token.is_cancelled() && !self.holdings.is_complete()
    }

    /// Waits `POLL`; false if cancelled meanwhile.
    async fn idle(&self) -> bool {
        task::sleep(self.token, POLL).await
    }

    /// Picks and claims a chunk in one step, under the lock: `pick` sees every chunk held
    /// or in flight, so the two loops never fetch the same chunk at once.
    fn claim_with(&self, pick: impl FnOnce(&ChunkSet, &Shared) -> Option<ChunkId>) -> Option<Claim<'_>> {
        let mut shared = lock(self.shared);
        let mut taken = self.holdings.snapshot();
        taken.union_with(&shared.in_flight);
        let id = pick(&taken, &shared)?;
        shared.in_flight.insert(id);
        Some(Claim {
            shared: self.shared,
            id,
        })
    }

    async fn neighbor_loop(&self, server: &mut Server) -> Result<(), Error> {
        let mut rng = SmallRng::from_os_rng();
        while self.running() {
            if !server.connect(self.holdings, self.listen_port).await {
                lock(self.shared).offer = None;
                if !self.idle().await {
                    break;
                }
                continue;
            }
            lock(self.shared).fallback.connected(Instant::now());
            let mut claim = self.claim_from_neighbor(server, &mut rng);
            if claim.is_none() && self.refresh_list(server).await {
                claim = self.claim_from_neighbor(server, &mut rng);
            }
            let fetched = match claim {
                Some(claim) => self.fetch(server, claim, Source::Neighbor).await?,
                None => false,
            };
            if !fetched && !self.idle().await {
                break;
            }
        }
        Ok(())
    }

    fn claim_from_neighbor(&self, server: &Server, rng: &mut SmallRng) -> Option<Claim<'_>> {
        let list = server.link.as_ref()?.list();
        self.claim_with(|taken, _| picker::from_neighbor(taken, list, rng))
    }

    /// Asks the neighbor for its list; false if the link failed (and was dropped).
    async fn refresh_list(&self, server: &mut Server) -> bool {
        let Some(link) = server.link.as_mut() else {
            return false;
        };
        match link.refresh_list().await {
            Ok(list) => {
                lock(self.shared).offer = Some(list.clone());
                true
            }
            Err(e) => {
                server.fault(&e);
                false
            }
        }
    }

    /// Every [`STATUS_EVERY`] without a new chunk, logs the missing chunk IDs; ends at
    /// completion or cancellation.
    async fn status_loop(&self) -> Result<(), Error> {
        let mut last = self.holdings.snapshot().count();
        let mut since = Instant::now();
        while self.running() {
            if !task::sleep(self.token, SUMMARY_INTERVAL).await {
                break;
            }
            // The summary file catches up when chunks stop arriving; a failure is fatal.
            self.holdings.flush_summary().await?;
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

    async fn owner_loop(&self, server: &mut Server) -> Result<(), Error> {
        let mut rng = SmallRng::from_os_rng();
        let mut asking = false;
        while self.running() {
            let use_owner = lock(self.shared).fallback.use_owner(Instant::now());
            if use_owner != asking {
                asking = use_owner;
                if asking {
                    info!("download neighbor is not delivering; asking the owner");
                } else {
                    info!("download neighbor is delivering again; owner left alone");
                }
            }
            let mut fetched = false;
            if asking && server.connect(self.holdings, self.listen_port).await {
                let claim = self
                    .claim_with(|taken, shared| picker::from_owner(taken, shared.offer.as_ref(), &mut rng));
                if let Some(claim) = claim {
                    fetched = self.fetch(server, claim, Source::Owner).await?;
                }
            }
            if !fetched && !self.idle().await {
                break;
            }
        }
        Ok(())
    }

    /// Requests the claimed chunk from `server`, connected; returns whether a new chunk
    /// was stored.
    async fn fetch(&self, server: &mut Server, claim: Claim<'_>, source: Source) -> Result<bool, Error> {
        let Some(link) = server.link.as_mut() else {
            return Ok(false);
        };
        let (id, addr) = (claim.id, link.addr());
        let data = match link.fetch(id).await {
            Ok(Fetched::Chunk(data)) => data,
            // Only the neighbor's picks come from a list it sent.
            Ok(Fetched::NotHave) if source == Source::Neighbor => {
                server.strike(&PeerError::ListedNotHeld(id));
                return Ok(false);
            }
            Ok(Fetched::NotHave) => return Ok(false),
            Err(e) => {
                server.fault(&e);
                return Ok(false);
            }
        };
        let bytes = data.len();
        match self.holdings.add(id, data).await? {
            Added::New => {
                activity::chunk_received(addr, id, bytes, source);
                // Only a stored chunk proves the server works: reset its redial backoff.
                server.retry.reset();
                let mut shared = lock(self.shared);
                match source {
                    Source::Neighbor => {
                        shared.fallback.delivered(Instant::now());
                        shared.tally.from_neighbor += 1;
                    }
                    Source::Owner => shared.tally.from_owner += 1,
                }
                shared.recorded += 1;
                if shared.recorded >= self.holdings.manifest().layout().chunk_count() {
                    self.all_recorded.notify_one();
                }
                Ok(true)
            }
            Added::Duplicate => Ok(false),
            Added::HashMismatch => {
                activity::hash_failure(addr, id);
                server.strike(&PeerError::HashMismatch(id));
                Ok(false)
            }
        }
    }
}
