//! `Holdings`: what a node holds, shared by its upload server and its download side.
//!
//! It pairs the on-disk [`ChunkStore`] with the in-memory set of verified chunks. Adding a
//! chunk goes through [`Holdings::start_add`], the one place that verifies and stores it and
//! only then makes it visible to the upload side: a node never lists or serves a chunk
//! that is not verified and written.
//!
//! Durability is batched, off the data path. A verified chunk is written once, into the
//! data file at its offset (its write to the disk started at once, not waited for), and
//! is visible and served from there at once: the chunk a neighbor asks for next is in
//! the page cache. [`Holdings::commit`] then syncs the data file, makes chunk files for
//! what it synced (see `chunk_store`) and rewrites the summary from the synced set only:
//! the summary never lists a chunk that is not on disk. A commit runs every
//! [`SUMMARY_INTERVAL`] (the status task), when the set is complete, and at shutdown; as
//! soon as [`MAX_UNSYNCED`] chunks wait for one, the data file is synced without the
//! summary unless it is due (back-pressure that bounds what a crash can cost, while the
//! summary is still rewritten at most every [`SUMMARY_INTERVAL`] and its cost stays
//! linear in the file size).
//!
//! The last chunks stored are also kept in memory a moment ([`recent`]): neighbors ask for
//! them soon after, and they are sent from there.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::chunk_set::ChunkSet;
use crate::chunk_store::{ChunkBody, ChunkStore, StoreError};
use crate::error::Error;
use crate::manifest::{ChunkId, Manifest};
use crate::thread_usage::{ThreadUsage, Waits};

mod placement;
mod recent;

use placement::{Cost, Place, Placement};
use recent::Recent;
#[cfg(test)]
pub(crate) use recent::RECENT;

/// What adding a received chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Verified and stored.
    New,
    /// Verified, but already held.
    Duplicate,
    /// The bytes do not match the manifest; nothing was stored.
    HashMismatch,
}

/// An add under way on a blocking thread, or done in place (see [`Holdings::start_add`]).
#[derive(Debug)]
pub(crate) enum StartedAdd {
    Pool(tokio::task::JoinHandle<Result<AddDone, StoreError>>),
    /// Taken by the first `wait` that finds it.
    Done(Option<Result<AddDone, StoreError>>),
}

/// A finished add, before the commit it may make due ([`Holdings::settle`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddDone {
    added: Added,
    /// Chunks waiting for a sync after it.
    staged: usize,
    /// Whether the set is complete after it.
    complete: bool,
}

impl StartedAdd {
    /// Waits for the add. Cancel-safe: dropped, the wait can be taken up again.
    pub(crate) async fn wait(&mut self) -> Result<AddDone, Error> {
        match self {
            StartedAdd::Pool(handle) => handle.await.map_err(blocking_err)?.map_err(Error::from),
            StartedAdd::Done(done) => match done.take() {
                Some(done) => done.map_err(Error::from),
                None => Err(Error::Io {
                    what: "running a storage task",
                    source: std::io::Error::other("an add was waited for twice"),
                }),
            },
        }
    }
}

/// A node's chunks: disk store plus the verified set.
#[derive(Debug)]
pub struct Holdings {
    store: ChunkStore,
    /// Verified and written: synced or not yet. Lock order: `have`, then `staged`.
    have: Mutex<ChunkSet>,
    staged: Mutex<Staging>,
    // Serialises commits so the summary file is rewritten in order; holds what it lists.
    write: Arc<tokio::sync::Mutex<SummaryState>>,
    count: watch::Sender<u32>,
    placement: Mutex<Placement>,
    /// The last chunks stored, sent from memory.
    recent: Mutex<Recent>,
}

/// The longest the summary file lags behind while chunks are arriving.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_millis(250);
/// Chunks written at most before an add waits for a sync (25 MiB of 100 KiB chunks:
/// what a crash can make a peer fetch again).
pub(crate) const MAX_UNSYNCED: usize = 256;

#[derive(Debug, Default)]
struct Staging {
    /// Written, not yet synced.
    written: Vec<ChunkId>,
    /// Being written right now (so two tasks adding one chunk write it once).
    writing: HashSet<ChunkId>,
}

#[derive(Debug)]
struct SummaryState {
    /// What the summary file lists (or will, once `dirty` is cleared).
    committed: ChunkSet,
    dirty: bool,
    written: Instant,
}

fn blocking_err(e: tokio::task::JoinError) -> Error {
    Error::Io {
        what: "running a storage task",
        source: std::io::Error::other(e),
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Holdings {
    /// Wraps a store and the chunks it was found to hold (committed: on disk).
    pub fn new(store: ChunkStore, have: ChunkSet) -> Holdings {
        let (count, _) = watch::channel(have.count());
        Holdings {
            store,
            write: Arc::new(tokio::sync::Mutex::new(SummaryState {
                committed: have.clone(),
                dirty: false,
                written: Instant::now(),
            })),
            have: Mutex::new(have),
            staged: Mutex::new(Staging::default()),
            count,
            placement: Mutex::new(Placement::new(Instant::now())),
            recent: Mutex::new(Recent::default()),
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
        locked(&self.have).clone()
    }

    /// Whether chunk `id` is held.
    pub fn contains(&self, id: ChunkId) -> bool {
        locked(&self.have).contains(id)
    }

    /// Whether every chunk is held.
    pub fn is_complete(&self) -> bool {
        locked(&self.have).is_complete()
    }

    /// Watches the number of chunks held.
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.count.subscribe()
    }

    /// The first half of an add: verifies `data` as chunk `id` and, if it is new, writes
    /// it, either in place or on a blocking thread so a caller can read the next chunk
    /// meanwhile ([`placement`] decides; adds run in parallel; a storage failure is fatal
    /// to the node). The chunk reaches `chunks/` and the summary with the next
    /// [`Holdings::commit`]. Dropping the result leaves the work to finish on its own (the
    /// chunk is then staged and visible, or not stored).
    pub(crate) fn start_add(self: &Arc<Self>, id: ChunkId, data: Bytes) -> StartedAdd {
        let place = locked(&self.placement).place(Instant::now());
        match place {
            Place::Inline => StartedAdd::Done(Some(self.timed_add(id, data))),
            Place::Pool => {
                let this = Arc::clone(self);
                StartedAdd::Pool(tokio::task::spawn_blocking(move || this.timed_add(id, data)))
            }
        }
    }

    /// [`Holdings::add_blocking`], its cost told to the placement rule.
    fn timed_add(&self, id: ChunkId, data: Bytes) -> Result<AddDone, StoreError> {
        let (start, used) = (Instant::now(), ThreadUsage::now());
        let mut waits = Waits::default();
        let done = self.add_blocking(id, data, &mut waits);
        let end = Instant::now();
        let cost = Cost::of(used, ThreadUsage::now(), end - start, waits);
        locked(&self.placement).record(end, cost);
        done
    }

    /// The second half of an add: what a finished add did, after the commit it
    /// makes due, if any.
    pub(crate) async fn settle(self: &Arc<Self>, done: AddDone) -> Result<Added, Error> {
        if done.complete {
            self.commit().await?;
        } else if done.staged >= MAX_UNSYNCED {
            self.commit_chunks().await?;
        }
        Ok(done.added)
    }

    /// Verifies and writes chunk `id`, counting in `waits` what it waited for.
    fn add_blocking(&self, id: ChunkId, data: Bytes, waits: &mut Waits) -> Result<AddDone, StoreError> {
        let done = |added, staged, complete| AddDone {
            added,
            staged,
            complete,
        };
        // Verified even when held, so a bad sender is noticed either way.
        let Some(cvs) = self.manifest().verify_chunk_pieces(id, &data) else {
            return Ok(done(Added::HashMismatch, 0, false));
        };
        {
            let have = waits.lock(&self.have);
            let mut staged = waits.lock(&self.staged);
            // Reserved before the write, so two tasks adding the same chunk at once write
            // it once.
            if have.contains(id) || !staged.writing.insert(id) {
                return Ok(done(Added::Duplicate, 0, false));
            }
        }
        let written = self.store.write_chunk(id, &data, &cvs, waits);
        if written.is_ok() {
            waits.lock(&self.recent).keep(id, data);
        }
        let mut have = waits.lock(&self.have);
        let mut staged = waits.lock(&self.staged);
        staged.writing.remove(&id);
        written?;
        staged.written.push(id);
        have.insert(id);
        self.count.send_replace(have.count());
        Ok(done(Added::New, staged.written.len(), have.is_complete()))
    }

    /// Makes every staged chunk durable and rewrites the summary file if anything changed
    /// since it was last written (see the module docs).
    pub async fn commit(self: &Arc<Self>) -> Result<(), Error> {
        self.commit_with(true).await
    }

    /// Makes every staged chunk durable; the summary follows only if [`SUMMARY_INTERVAL`]
    /// has passed since it was last written, so its cost stays linear in the file size.
    async fn commit_chunks(self: &Arc<Self>) -> Result<(), Error> {
        self.commit_with(false).await
    }

    async fn commit_with(self: &Arc<Self>, summary_now: bool) -> Result<(), Error> {
        let mut summary = Arc::clone(&self.write).lock_owned().await;
        let ids = std::mem::take(&mut locked(&self.staged).written);
        if ids.is_empty() && !summary.dirty {
            return Ok(());
        }
        let write_summary = summary_now || summary.written.elapsed() >= SUMMARY_INTERVAL;
        let this = Arc::clone(self);
        // The blocking thread owns the lock: a cancelled caller cannot leave a half commit.
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            summary.dirty = true;
            this.store.sync()?;
            for &id in &ids {
                summary.committed.insert(id);
            }
            this.store.make_chunk_files(&ids)?;
            if write_summary {
                this.store.write_summary(&summary.committed)?;
                summary.dirty = false;
                summary.written = Instant::now();
            }
            Ok(())
        })
        .await
        .map_err(blocking_err)?
        .map_err(Error::from)
    }

    /// Joins the chunks into the file and checks it (see [`ChunkStore::assemble`]).
    pub fn assemble(&self) -> Result<std::path::PathBuf, StoreError> {
        self.store.assemble()
    }

    /// A held chunk's bytes, to send: the bytes stored if it is among the last,
    /// else its range of the data file, or, once that file has been changed behind the
    /// node's back, the bytes read and verified first. Returns `None` if the chunk is not
    /// held (or no longer: it did not verify, and is dropped).
    pub async fn read(self: &Arc<Self>, id: ChunkId) -> Result<Option<ChunkBody>, StoreError> {
        if !self.contains(id) {
            return Ok(None);
        }
        if let Some(data) = locked(&self.recent).get(id) {
            return Ok(Some(ChunkBody::Memory(data)));
        }
        if let Some(body) = self.store.chunk_range(id) {
            return Ok(Some(body));
        }
        let this = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || this.store.read_verified(id)).await;
        let read = read.unwrap_or_else(|e| {
            Err(StoreError::Io {
                what: "read",
                path: self.store.file_path(),
                source: std::io::Error::other(e),
            })
        })?;
        match read {
            Some(data) => Ok(Some(ChunkBody::Memory(Bytes::from(data)))),
            None => {
                {
                    let mut have = locked(&self.have);
                    if have.remove(id) {
                        self.count.send_replace(have.count());
                    }
                }
                let mut summary = self.write.lock().await;
                summary.committed.remove(id);
                summary.dirty = true;
                Ok(None)
            }
        }
    }
}
