//! `Holdings`: what a node holds, shared by its upload server and its download side.
//!
//! It pairs the on-disk [`ChunkStore`] with the in-memory set of verified chunks. Adding a
//! chunk goes through [`Holdings::add`], the one place that verifies, stores, updates the
//! summary file and only then makes the chunk visible to the upload side: a node never
//! lists or serves a chunk that is not verified and on disk.

use std::sync::{Arc, Mutex, PoisonError};

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
    // Serialises writers so the summary file is rewritten in order.
    write: tokio::sync::Mutex<()>,
    count: watch::Sender<u32>,
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
            write: tokio::sync::Mutex::new(()),
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

    /// Verifies `data` as chunk `id` and, if it is new, stores it and rewrites the
    /// summary. A storage failure is fatal to the node.
    pub async fn add(self: &Arc<Self>, id: ChunkId, data: Bytes) -> Result<Added, Error> {
        let _writer = self.write.lock().await;
        if self.contains(id) {
            // Still verify, so a bad sender is noticed even for chunks we hold.
            let manifest = Arc::clone(self.manifest());
            let ok = tokio::task::spawn_blocking(move || manifest.verify_chunk(id, &data))
                .await
                .map_err(blocking_err)?;
            return Ok(if ok { Added::Duplicate } else { Added::HashMismatch });
        }
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || -> Result<Added, StoreError> {
            if !this.manifest().verify_chunk(id, &data) {
                return Ok(Added::HashMismatch);
            }
            this.store.write_chunk(id, &data)?;
            let mut next = this.snapshot();
            next.insert(id);
            this.store.write_summary(&next)?;
            *this.have.lock().unwrap_or_else(PoisonError::into_inner) = next;
            Ok(Added::New)
        })
        .await
        .map_err(blocking_err)??;
        if result == Added::New {
            self.count.send_modify(|n| *n += 1);
        }
        Ok(result)
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
