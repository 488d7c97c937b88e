//! `Holdings`: what a node holds, shared by its upload server and its download side.
//!
//! It pairs the on-disk [`ChunkStore`] with the in-memory set of verified chunks. Adding a
//! chunk goes through [`Holdings::add`], the one place that verifies and stores it and
//! only then makes it visible to the upload side: a node never lists or serves a chunk
//! that is not verified and on disk.
//!
//! The summary file is rewritten from the verified set, so it never lists a chunk that is
//! not on disk; to keep the cost linear in the file size it is rewritten at most every
//! [`SUMMARY_INTERVAL`] while chunks stream in, at once when the set is complete, and by
//! [`Holdings::flush_summary`] (called periodically and at shutdown) for the rest.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::chunk_set::ChunkSet;
use crate::chunk_store::{ChunkStore, StoreError};
use crate::error::Error;
use crate::manifest::{ChunkId, Manifest};

/// What adding a received chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Verified and stored.
    New,
    /// Verified, but already held.
    Duplicate,
    /// The bytes do not match the manifest; nothing was stored.
    HashMismatch,
}

/// A node's chunks: disk store plus the verified set.
#[derive(Debug)]
pub struct Holdings {
    store: ChunkStore,
    have: Mutex<ChunkSet>,
    // Serialises writers so the summary file is rewritten in order; holds the summary's
    // state.
    write: Arc<tokio::sync::Mutex<SummaryState>>,
    count: watch::Sender<u32>,
}

/// The longest the summary file lags behind while chunks are arriving.
pub const SUMMARY_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct SummaryState {
    written: Instant,
    dirty: bool,
}

fn blocking_err(e: tokio::task::JoinError) -> Error {
    Error::Io {
        what: "running a storage task",
        source: std::io::Error::other(e),
    }
}

impl Holdings {
    /// Wraps a store and the chunks it was found to hold.
    pub fn new(store: ChunkStore, have: ChunkSet) -> Holdings {
        let (count, _) = watch::channel(have.count());
        Holdings {
            store,
            have: Mutex::new(have),
            write: Arc::new(tokio::sync::Mutex::new(SummaryState {
                written: Instant::now(),
                dirty: false,
            })),
            count,
        }
    }

    /// The swarm's manifest.
    pub fn manifest(&self) -> &Arc<Manifest> {
        self.store.manifest()
    }

    /// The on-disk store.
    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// A copy of the verified set.
    pub fn snapshot(&self) -> ChunkSet {
        self.have.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether chunk `id` is held.
    pub fn contains(&self, id: ChunkId) -> bool {
        self.have
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// Whether every chunk is held.
    pub fn is_complete(&self) -> bool {
        self.have
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_complete()
    }

    /// Watches the number of chunks held.
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.count.subscribe()
    }

    /// Verifies `data` as chunk `id` and, if it is new, stores it and makes it visible;
    /// the summary follows (see the module docs). A storage failure is fatal to the node.
    ///
    /// Cancel-safe: everything after the lock runs on a blocking thread that owns the
    /// lock, so a caller dropped midway leaves the chunk either not stored or stored,
    /// counted and marked for the summary, and the next writer waits for it.
    pub async fn add(self: &Arc<Self>, id: ChunkId, data: Bytes) -> Result<Added, Error> {
        let mut summary = Arc::clone(&self.write).lock_owned().await;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || -> Result<Added, StoreError> {
            // Verified even when held, so a bad sender is noticed either way.
            if !this.manifest().verify_chunk(id, &data) {
                return Ok(Added::HashMismatch);
            }
            if this.contains(id) {
                return Ok(Added::Duplicate);
            }
            this.store.write_chunk(id, &data)?;
            let due = summary.written.elapsed() >= SUMMARY_INTERVAL;
            let next = {
                let mut have = this.have.lock().unwrap_or_else(PoisonError::into_inner);
                have.insert(id);
                this.count.send_replace(have.count());
                (due || have.is_complete()).then(|| have.clone())
            };
            summary.dirty = true;
            if let Some(next) = next {
                this.store.write_summary(&next)?;
                summary.dirty = false;
                summary.written = Instant::now();
            }
            Ok(Added::New)
        })
        .await
        .map_err(blocking_err)?
        .map_err(Error::from)
    }

    /// Rewrites the summary file if chunks arrived since it was last written.
    pub async fn flush_summary(self: &Arc<Self>) -> Result<(), Error> {
        let mut summary = Arc::clone(&self.write).lock_owned().await;
        if !summary.dirty {
            return Ok(());
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            this.store.write_summary(&this.snapshot())?;
            summary.dirty = false;
            summary.written = Instant::now();
            Ok(())
        })
        .await
        .map_err(blocking_err)?
        .map_err(Error::from)
    }

    /// Reads a held chunk's bytes. Returns `None` if the chunk is not held.
    pub async fn read(self: &Arc<Self>, id: ChunkId) -> Result<Option<Bytes>, StoreError> {
        if !self.contains(id) {
            return Ok(None);
        }
        let this = Arc::clone(self);
        let path = self.store.chunk_path(id);
        tokio::task::spawn_blocking(move || this.store.read_chunk(id).map(|v| Some(Bytes::from(v))))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io {
                    what: "read",
                    path,
                    source: std::io::Error::other(e),
                })
            })
    }
}
