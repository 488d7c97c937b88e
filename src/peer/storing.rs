//! Storing received chunks while the next ones are read. A link hands each received chunk
//! to [`Holdings::start_add`] (verify and write, on a blocking thread) and goes back to its
//! socket; up to [`STORE_AHEAD`] chunks per link are being stored at once, and each is
//! recorded (logged, reported to the scheduler) in the order it arrived, once its add is
//! done. So a link's reading never waits on its disk writes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;

use super::ctx::Ctx;
use crate::activity::{self, Source};
use crate::error::Error;
use crate::holdings::{AddDone, Added, Holdings, StartedAdd};
use crate::identity::PeerId;
use crate::manifest::ChunkId;
use crate::scheduler::{LinkId, Outcome};

/// Chunks one link may have being stored at once.
pub(super) const STORE_AHEAD: usize = 4;

/// What arrived, for the record made once it is stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    id: ChunkId,
    bytes: usize,
    from: SocketAddr,
    peer: PeerId,
    source: Source,
}

impl Received {
    pub(super) fn new(id: ChunkId, bytes: usize, from: SocketAddr, peer: PeerId, source: Source) -> Received {
        Received {
            id,
            bytes,
            from,
            peer,
            source,
        }
    }
}

/// One link's chunks being stored, oldest first. Dropped (the task cancelled), the adds
/// still finish on their own.
#[derive(Debug, Default)]
pub(super) struct Storing {
    pending: VecDeque<(Received, StartedAdd)>,
}

impl Storing {
    /// Starts storing `data`.
    pub(super) fn push(&mut self, holdings: &Arc<Holdings>, received: Received, data: Bytes) {
        let started = holdings.start_add(received.id, data);
        self.pending.push_back((received, started));
    }

    /// Whether [`STORE_AHEAD`] chunks are being stored (read no more until one is done).
    pub(super) fn full(&self) -> bool {
        self.pending.len() >= STORE_AHEAD
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Waits until the oldest add is done. Cancel-safe; pending forever when empty.
    pub(super) async fn oldest(&mut self) -> Result<AddDone, Error> {
        match self.pending.front_mut() {
            Some((_, started)) => started.wait().await,
            None => std::future::pending().await,
        }
    }

    /// Records the oldest add, which `done` says is finished.
    pub(super) async fn record(
        &mut self,
        ctx: &Ctx,
        link: Option<LinkId>,
        done: AddDone,
    ) -> Result<(), Error> {
        let Some((received, _)) = self.pending.pop_front() else {
            return Ok(());
        };
        let added = ctx.holdings.settle(done).await?;
        record(ctx, link, received, added);
        Ok(())
    }

    /// Waits for the oldest add and records it.
    pub(super) async fn finish_oldest(&mut self, ctx: &Ctx, link: Option<LinkId>) -> Result<(), Error> {
        let done = self.oldest().await?;
        self.record(ctx, link, done).await
    }
}

/// Logs a stored chunk, or the hash failure of a bad one, and tells the scheduler.
fn record(ctx: &Ctx, link: Option<LinkId>, received: Received, added: Added) {
    let Received {
        id,
        bytes,
        from,
        peer,
        source,
    } = received;
    let outcome = match added {
        Added::New => {
            activity::chunk_received(from, id, bytes, source);
            Outcome::New
        }
        Added::Duplicate => Outcome::Duplicate,
        Added::HashMismatch => {
            // Bad chunks still being stored when their sender was banned: the ban has
            // been logged, they are not counted again.
            if ctx.with(link, |s, _| s.banned(peer)) {
                debug!(chunk = id, peer = %from, "bad chunk from a banned server discarded");
            } else {
                activity::hash_failure(from, id);
            }
            Outcome::Bad
        }
    };
    ctx.with(link, |s, now| s.stored(now, id, peer, outcome));
}
