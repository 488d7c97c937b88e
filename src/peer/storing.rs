//! Storing received chunks while the next ones are read. A link's loop hands each
//! received chunk to [`Holdings::start_add`] (verify and write, on a blocking thread) and
//! goes back to its socket; up to [`STORE_AHEAD`] chunks per link are being stored at once,
//! and each is recorded (logged, counted, its claim released) in the order it arrived,
//! once its add is done. So a link's reading never waits on its disk writes, and the
//! owner's batch arrives at the speed of the network, not of one chunk's write at a time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::download::{lock, Claim, Ctx};
use super::server::Server;
use crate::activity::{self, Source};
use crate::error::{Error, PeerError};
use crate::holdings::{Added, StartedAdd};
use crate::manifest::ChunkId;

/// Chunks one link may have being stored at once.
pub(super) const STORE_AHEAD: usize = 4;

/// What arrived, for the record made once it is stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    id: ChunkId,
    bytes: usize,
    from: SocketAddr,
    source: Source,
}

impl Received {
    pub(super) fn new(id: ChunkId, bytes: usize, from: SocketAddr, source: Source) -> Received {
        Received {
            id,
            bytes,
            from,
            source,
        }
    }
}

/// One link's chunks being stored, oldest first. Dropped (the link's task cancelled), the
/// adds still finish on their own, and their claims are released.
#[derive(Debug, Default)]
pub(super) struct Storing {
    pending: VecDeque<(Received, StartedAdd, Option<Claim>)>,
}

impl Ctx {
    /// Starts storing `data`; with [`STORE_AHEAD`] chunks already being stored, first waits
    /// for the oldest. `claim` is held until the chunk is stored. Returns whether a chunk
    /// recorded meanwhile was new.
    pub(super) async fn store_ahead(
        &self,
        server: &mut Server,
        storing: &mut Storing,
        received: Received,
        data: Bytes,
        claim: Option<Claim>,
    ) -> Result<bool, Error> {
        let started = self.holdings.start_add(received.id, data);
        storing.pending.push_back((received, started, claim));
        let mut stored = false;
        while storing.pending.len() > STORE_AHEAD {
            stored |= self.store_oldest(server, storing).await?;
        }
        Ok(stored)
    }

    /// Waits for every chunk being stored; returns whether one was new.
    pub(super) async fn store_all(&self, server: &mut Server, storing: &mut Storing) -> Result<bool, Error> {
        let mut stored = false;
        while !storing.pending.is_empty() {
            stored |= self.store_oldest(server, storing).await?;
        }
        Ok(stored)
    }

    async fn store_oldest(&self, server: &mut Server, storing: &mut Storing) -> Result<bool, Error> {
        let Some((received, started, claim)) = storing.pending.pop_front() else {
            return Ok(false);
        };
        let added = self.holdings.finish_add(started).await?;
        let new = self.record(server, received, added);
        drop(claim);
        Ok(new)
    }

    /// Logs and counts a stored chunk, or strikes the sender of a bad one.
    fn record(&self, server: &mut Server, received: Received, added: Added) -> bool {
        let Received {
            id,
            bytes,
            from,
            source,
        } = received;
        match added {
            Added::New => {
                activity::chunk_received(from, id, bytes, source);
                // Only a stored chunk proves the server works: reset its redial backoff.
                server.retry.reset();
                let mut shared = lock(&self.shared);
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
                true
            }
            Added::Duplicate => false,
            // Bad chunks that were still being stored when their sender was banned: the
            // ban has been logged, they are not counted again.
            Added::HashMismatch if server.is_banned() => {
                debug!(chunk = id, peer = %from, "bad chunk from a banned server discarded");
                false
            }
            Added::HashMismatch => {
                activity::hash_failure(from, id);
                server.strike(&PeerError::HashMismatch(id));
                false
            }
        }
    }
}
