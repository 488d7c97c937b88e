//! The download side: the seed's client thread, as one task with explicit state.
//!
//! Each turn: make sure the download neighbor is connected (dialling with backoff while
//! it is not up); when its last list offers nothing we lack, ask it for a fresh one; let
//! the [`picker`](super::picker) choose; request that chunk, verify it, store it. When the
//! neighbor has had nothing new for [`STALL`] (an open chain, a neighbor that is gone),
//! chunks are requested from the owner until the neighbor has something again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::fetch::{FetchLink, Fetched};
use super::picker::{pick, Pick};
use crate::activity::{self, Source};
use crate::config::Endpoint;
use crate::error::{Error, PeerError};
use crate::holdings::{Added, Holdings};
use crate::manifest::ChunkId;
use crate::task::{self, Backoff};

/// How long the neighbor may offer nothing new before the owner is asked instead.
pub const STALL: Duration = Duration::from_secs(2);
/// How often an idle neighbor is asked for a fresh list.
pub const POLL: Duration = Duration::from_millis(100);

/// Where the chunks came from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Chunks from the owner after the initial batch.
    pub from_owner: u32,
    /// Chunks from the download neighbor.
    pub from_neighbor: u32,
}

/// One of the two servers the download side talks to.
#[derive(Debug)]
struct Server {
    endpoint: Endpoint,
    link: Option<FetchLink>,
    retry: Backoff,
    next_attempt: Instant,
    what: &'static str,
}

impl Server {
    fn new(endpoint: Endpoint, link: Option<FetchLink>, what: &'static str) -> Server {
        Server {
            endpoint,
            link,
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            next_attempt: Instant::now(),
            what,
        }
    }

    /// Dials if disconnected and the backoff allows; returns whether a link is up.
    async fn connect(&mut self, holdings: &Holdings, listen_port: u16) -> bool {
        if self.link.is_some() {
            return true;
        }
        if Instant::now() < self.next_attempt {
            return false;
        }
        match FetchLink::open(&self.endpoint, holdings.manifest(), listen_port).await {
            Ok(link) => {
                info!(server = self.what, addr = %link.addr(), "connected");
                self.retry.reset();
                self.link = Some(link);
                true
            }
            Err(e) => {
                self.next_attempt = Instant::now() + self.retry.next_delay();
                if self.retry.attempts() == 1 || self.retry.attempts() % 20 == 0 {
                    info!(server = self.what, addr = %self.endpoint, cause = %e, "not reachable yet; retrying");
                } else {
                    debug!(server = self.what, addr = %self.endpoint, cause = %e, "not reachable; retrying");
                }
                false
            }
        }
    }

    fn drop_link(&mut self, cause: &PeerError) {
        if let Some(link) = self.link.take() {
            warn!(server = self.what, addr = %link.addr(), %cause, "connection lost");
        }
        self.next_attempt = Instant::now() + self.retry.next_delay();
    }
}

/// The download side's state.
#[derive(Debug)]
pub struct Download {
    holdings: Arc<Holdings>,
    listen_port: u16,
    neighbor: Server,
    owner: Server,
    last_offer: Instant,
    in_fallback: bool,
    tally: Tally,
    rng: SmallRng,
}

impl Download {
    /// A download side for `holdings`, with the owner link left by the join.
    pub fn new(
        holdings: Arc<Holdings>,
        listen_port: u16,
        neighbor: Endpoint,
        owner: Endpoint,
        owner_link: FetchLink,
    ) -> Download {
        Download {
            holdings,
            listen_port,
            neighbor: Server::new(neighbor, None, "download neighbor"),
            owner: Server::new(owner, Some(owner_link), "owner"),
            last_offer: Instant::now(),
            in_fallback: false,
            tally: Tally::default(),
            rng: SmallRng::from_os_rng(),
        }
    }

    /// Where the chunks came from so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Runs until every chunk is held (true) or `token` is cancelled (false).
    pub async fn run(&mut self, token: &CancellationToken) -> Result<bool, Error> {
        while !self.holdings.is_complete() {
            if token.is_cancelled() {
                return Ok(false);
            }
            self.neighbor.connect(&self.holdings, self.listen_port).await;
            let mine = self.refresh_neighbor().await;
            let offered = self.neighbor.link.as_ref().map(FetchLink::list);
            if offered.is_some_and(|l| !mine.wanted_from(l).is_empty()) {
                self.last_offer = Instant::now();
            }
            let fallback = self.last_offer.elapsed() >= STALL;
            if fallback != self.in_fallback {
                self.in_fallback = fallback;
                info!(
                    stalled = fallback,
                    "{}",
                    if fallback {
                        "download neighbor has nothing new; asking the owner"
                    } else {
                        "download neighbor has chunks again"
                    }
                );
            }
            let idle = match pick(&mine, offered, fallback, &mut self.rng) {
                Pick::Neighbor(id) => !self.fetch(id, Source::Neighbor).await?,
                Pick::Owner(id) => !self.fetch(id, Source::Owner).await?,
                Pick::Wait => true,
            };
            if idle && !task::sleep(token, POLL).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Asks the neighbor for a fresh list when its last one offers nothing; returns our set.
    async fn refresh_neighbor(&mut self) -> crate::chunk_set::ChunkSet {
        let mine = self.holdings.snapshot();
        if let Some(link) = &mut self.neighbor.link {
            if mine.wanted_from(link.list()).is_empty() {
                if let Err(e) = link.refresh_list().await {
                    self.neighbor.drop_link(&e);
                }
            }
        }
        mine
    }

    /// Requests `id` from the neighbor or the owner; returns whether a chunk was stored.
    async fn fetch(&mut self, id: ChunkId, source: Source) -> Result<bool, Error> {
        let server = match source {
            Source::Neighbor => &mut self.neighbor,
            Source::Owner => &mut self.owner,
        };
        if !server.connect(&self.holdings, self.listen_port).await {
            return Ok(false);
        }
        let Some(link) = server.link.as_mut() else {
            return Ok(false);
        };
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
                match source {
                    Source::Neighbor => self.tally.from_neighbor += 1,
                    Source::Owner => self.tally.from_owner += 1,
                }
                Ok(true)
            }
            Added::Duplicate => Ok(false),
            Added::HashMismatch => {
                activity::hash_failure(addr, id);
                server.drop_link(&PeerError::HashMismatch(id));
                Ok(false)
            }
        }
    }
}
