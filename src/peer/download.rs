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
use crate::holdings::{Added, Holdings};
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
        Download {
            holdings,
            listen_port,
            neighbor: Server::new(neighbor, None, "download neighbor"),
            owner: Server::new(owner, owner_link, "owner"),
            shared: Mutex::new(Shared {
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

    /// Runs until every chunk is held (true) or `token` is cancelled (false).
    pub async fn run(&mut self, token: &CancellationToken) -> Result<bool, Error> {
        let Download {
            holdings,
            listen_port,
            neighbor,
            owner,
            shared,
        } = self;
        let ctx = Ctx {
            holdings,
            shared,
            listen_port: *listen_port,
            token,
        };
        tokio::try_join!(
            ctx.neighbor_loop(neighbor)
                .instrument(info_span!("download", from = "neighbor")),
            ctx.owner_loop(owner)
                .instrument(info_span!("download", from = "owner")),
            ctx.status_loop(),
        )?;
        Ok(holdings.is_complete())
    }
}

/// What both loops borrow.
struct Ctx<'a> {
    holdings: &'a Arc<Holdings>,
    shared: &'a Mutex<Shared>,
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

    /// The chunks held or being fetched.
    fn taken(&self) -> ChunkSet {
        let mut taken = self.holdings.snapshot();
        taken.union_with(&lock(self.shared).in_flight);
        taken
    }

    fn claim(&self, id: ChunkId) -> Claim<'_> {
        lock(self.shared).in_flight.insert(id);
        Claim {
            shared: self.shared,
            id,
        }
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
            let Some(link) = server.link.as_mut() else {
                continue;
            };
            let mut pick = picker::from_neighbor(&self.taken(), link.list(), &mut rng);
            if pick.is_none() {
                match link.refresh_list().await {
                    Ok(list) => {
                        lock(self.shared).offer = Some(list.clone());
                        server.retry.reset();
                    }
                    Err(e) => {
                        server.drop_link(&e);
                        continue;
                    }
                }
                pick = server
                    .link
                    .as_ref()
                    .and_then(|l| picker::from_neighbor(&self.taken(), l.list(), &mut rng));
            }
            let fetched = match pick {
                Some(id) => self.fetch(server, id, Source::Neighbor).await?,
                None => false,
            };
            if !fetched && !self.idle().await {
                break;
            }
        }
        Ok(())
    }

    /// Every [`STATUS_EVERY`] without a new chunk, logs the missing chunk IDs; ends at
    /// completion or cancellation.
    async fn status_loop(&self) -> Result<(), Error> {
        let mut count = self.holdings.subscribe();
        let total = self.holdings.manifest().layout().chunk_count();
        let mut last = *count.borrow_and_update();
        while self.running() {
            tokio::select! {
                _ = self.token.cancelled() => break,
                _ = count.wait_for(|&n| n >= total) => break,
                _ = tokio::time::sleep(STATUS_EVERY) => {}
            }
            let have = self.holdings.snapshot();
            if have.count() == last && !have.is_complete() {
                activity::waiting(&have);
            }
            last = have.count();
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
            let pick = if asking {
                let offer = lock(self.shared).offer.clone();
                picker::from_owner(&self.taken(), offer.as_ref(), &mut rng)
            } else {
                None
            };
            let fetched = match pick {
                Some(id) => self.fetch(server, id, Source::Owner).await?,
                None => false,
            };
            if !fetched && !self.idle().await {
                break;
            }
        }
        Ok(())
    }

    /// Requests `id` from `server`; returns whether a new chunk was stored.
    async fn fetch(&self, server: &mut Server, id: ChunkId, source: Source) -> Result<bool, Error> {
        if !server.connect(self.holdings, self.listen_port).await {
            return Ok(false);
        }
        let Some(link) = server.link.as_mut() else {
            return Ok(false);
        };
        let _claim = self.claim(id);
        let addr = link.addr();
        let data = match link.fetch(id).await {
            Ok(Fetched::Chunk(data)) => data,
            Ok(Fetched::NotHave) => return Ok(false),
            Err(e) => {
                server.drop_link(&e);
                return Ok(false);
            }
        };
        let bytes = data.len();
        match self.holdings.add(id, data).await? {
            Added::New => {
                activity::chunk_received(addr, id, bytes, source);
                server.retry.reset();
                let mut shared = lock(self.shared);
                match source {
                    Source::Neighbor => {
                        shared.fallback.delivered(Instant::now());
                        shared.tally.from_neighbor += 1;
                    }
                    Source::Owner => shared.tally.from_owner += 1,
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
