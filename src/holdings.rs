//! `Holdings`: what a node holds, shared by its upload server and its download side.
//!
//! It pairs the on-disk [`ChunkStore`] with the in-memory set of verified chunks. Adding a
//! chunk goes through [`Holdings::add`], the one place that verifies and stores it and
//! only then makes it visible to the upload side: a node never lists or serves a chunk
//! that is not verified and written.
//!
//! Durability is batched, off the data path. A verified chunk is written under `tmp/`
//! (not synced) and becomes visible at once; it is served from that file while it waits
//! (its pages are in the page cache, handed to the socket without a copy), so the chunk a
//! neighbor asks for next costs no disk read. [`Holdings::commit`] then syncs
//! every staged chunk, renames each into `chunks/`, syncs the directory and rewrites the
//! summary from the committed set only: the summary never lists a chunk that is not on
//! disk. A commit runs every [`SUMMARY_INTERVAL`] (the status task), when the set is
//! complete, and at shutdown; as soon as [`MAX_STAGED`] chunks are staged the chunks are
//! committed without the summary unless it is due (back-pressure that bounds the open
//! files to a few dozen, while the summary is still rewritten at most every
//! [`SUMMARY_INTERVAL`] and its cost stays linear in the file size).

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::chunk_set::ChunkSet;
use crate::chunk_store::{ChunkBody, ChunkStore, Partial, Staged, StoreError};
use crate::error::Error;
use crate::manifest::{ChunkId, Manifest};

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

/// An add under way on a blocking thread (see [`Holdings::start_add`]).
#[derive(Debug)]
pub(crate) struct StartedAdd(tokio::task::JoinHandle<Result<AddDone, StoreError>>);

/// A finished add, before the commit it may make due ([`Holdings::settle`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddDone {
    added: Added,
    /// Chunks staged after it.
    staged: usize,
    /// Whether the set is complete after it.
    complete: bool,
}

impl StartedAdd {
    /// Waits for the add. Cancel-safe: dropped, the wait can be taken up again.
    pub(crate) async fn wait(&mut self) -> Result<AddDone, Error> {
        (&mut self.0).await.map_err(blocking_err)?.map_err(Error::from)
    }
}

/// A node's chunks: disk store plus the verified set.
#[derive(Debug)]
pub struct Holdings {
    store: ChunkStore,
    /// Verified and written: committed or staged. Lock order: `have`, then `staged`.
    have: Mutex<ChunkSet>,
    staged: Mutex<Staging>,
    /// The file being joined as chunks arrive, once one has.
    partial: Mutex<Option<Partial>>,
    // Serialises commits so the summary file is rewritten in order; holds what it lists.
    write: Arc<tokio::sync::Mutex<SummaryState>>,
    count: watch::Sender<u32>,
}

/// The longest the summary file lags behind while chunks are arriving.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_millis(250);
/// Chunks staged at most before an add waits for a commit (each holds an open file until
/// then).
pub(crate) const MAX_STAGED: usize = 32;

#[derive(Debug, Default)]
struct Staging {
    files: Vec<Staged>,
    /// Chunks being staged or staged, also the ones a commit is syncing right now: with a
    /// handle on the staged file to send from, once it is written.
    open: HashMap<ChunkId, Option<Arc<File>>>,
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
            partial: Mutex::new(None),
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

    /// Verifies `data` as chunk `id` and, if it is new, writes it and makes it visible (it
    /// reaches `chunks/` and the summary with the next [`Holdings::commit`]); adds run in
    /// parallel, and a storage failure is fatal to the node. The first half of an add: starts the verify-and-write on a blocking thread
    /// at once, so a caller can read the next chunk meanwhile. Dropping the result leaves
    /// the work to finish on its own (the chunk is then staged and visible, or not stored).
    pub(crate) fn start_add(self: &Arc<Self>, id: ChunkId, data: Bytes) -> StartedAdd {
        let this = Arc::clone(self);
        StartedAdd(tokio::task::spawn_blocking(move || this.add_blocking(id, data)))
    }

    /// The second half of an add: what a finished add did, after the commit it
    /// makes due, if any.
    pub(crate) async fn settle(self: &Arc<Self>, done: AddDone) -> Result<Added, Error> {
        if done.complete {
            self.commit().await?;
        } else if done.staged >= MAX_STAGED {
            self.commit_chunks().await?;
        }
        Ok(done.added)
    }

    fn add_blocking(&self, id: ChunkId, data: Bytes) -> Result<AddDone, StoreError> {
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
            let have = locked(&self.have);
            let mut staged = locked(&self.staged);
            // Reserved before the write, so two tasks adding the same chunk at once write
            // it once.
            if have.contains(id) || staged.open.contains_key(&id) {
                return Ok(done(Added::Duplicate, 0, false));
            }
            staged.open.insert(id, None);
        }
        let written = self.store.stage_chunk(id, &data).and_then(|file| {
            let handle = file.handle()?;
            let mut partial = locked(&self.partial);
            let partial = match partial.as_mut() {
                Some(p) => p,
                None => partial.insert(self.store.start_partial()?),
            };
            self.store.write_partial(partial, id, &data, &cvs)?;
            Ok((file, handle))
        });
        let (file, handle) = match written {
            Ok(written) => written,
            Err(e) => {
                locked(&self.staged).open.remove(&id);
                return Err(e);
            }
        };
        let mut have = locked(&self.have);
        let mut staged = locked(&self.staged);
        staged.open.insert(id, Some(Arc::new(handle)));
        staged.files.push(file);
        have.insert(id);
        self.count.send_replace(have.count());
        Ok(done(Added::New, staged.files.len(), have.is_complete()))
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
        let files = std::mem::take(&mut locked(&self.staged).files);
        if files.is_empty() && !summary.dirty {
            return Ok(());
        }
        let write_summary = summary_now || summary.written.elapsed() >= SUMMARY_INTERVAL;
        let this = Arc::clone(self);
        // The blocking thread owns the lock: a cancelled caller cannot leave a half commit.
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let ids: Vec<ChunkId> = files.iter().map(Staged::id).collect();
            summary.dirty = true;
            this.store.commit_chunks(files)?;
            for &id in &ids {
                summary.committed.insert(id);
            }
            // Renamed into place: reads find them on disk from now on.
            let mut staged = locked(&this.staged);
            for id in &ids {
                staged.open.remove(id);
            }
            drop(staged);
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
        let partial = locked(&self.partial).take();
        self.store.assemble(partial)
    }

    /// A held chunk's bytes, to send: its staged file while it waits for a commit, else
    /// its chunk file. Returns `None` if the chunk is not held.
    pub async fn read(self: &Arc<Self>, id: ChunkId) -> Result<Option<ChunkBody>, StoreError> {
        if !self.contains(id) {
            return Ok(None);
        }
        let len = self.manifest().layout().chunk_len(id).unwrap_or(0) as usize;
        if let Some(Some(file)) = locked(&self.staged).open.get(&id) {
            let file = Arc::clone(file);
            return Ok(Some(ChunkBody::File { file, len }));
        }
        // Held and not staged, so already renamed into `chunks/` (a commit renames before
        // it unstages).
        let this = Arc::clone(self);
        let path = self.store.chunk_path(id);
        tokio::task::spawn_blocking(move || {
            let (file, len) = this.store.open_chunk(id)?;
            Ok(Some(ChunkBody::File {
                file: Arc::new(file),
                len,
            }))
        })
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
