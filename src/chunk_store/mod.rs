//! `ChunkStore`: a node's directory on disk: the manifest, one file per chunk, the
//! summary file, and the assembled file.
//!
//! Layout under the directory the user gave (`DIR`):
//!
//! ```text
//! DIR/<file name>              the assembled file, present only when complete and verified
//! DIR/.swarmshare/manifest     the swarm's manifest (its BLAKE3 hash is the swarm ID)
//! DIR/.swarmshare/summary      chunk IDs held, one per line (see `summary`)
//! DIR/.swarmshare/chunks/0000017   chunk 17's bytes
//! DIR/.swarmshare/tmp/         files being written; emptied at start-up
//! DIR/.swarmshare/aside/       directories found where a chunk file belongs, moved here
//! ```
//!
//! Every file is written under `tmp/` and renamed into place, so a name only ever appears
//! with complete contents. Chunk files are named only from validated integer IDs, and the
//! file name comes from a manifest that has already refused anything but one plain name.
//! All functions here block; async callers run them on the blocking pool.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_set::ChunkSet;
use crate::manifest::{ChunkId, Manifest};
use crate::summary;

mod assemble;
mod body;
mod error;
mod files;
mod status;
mod tidy;

pub(crate) use assemble::Partial;
pub(crate) use body::ChunkBody;
pub(crate) use error::StoreError;
use files::{chunk_file, hash_file_at, io_err, open_no_follow, read_no_follow};
pub(crate) use status::{dir_status, DirStatus, FileState};

/// Whether a write is synced to disk before it is renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// Synced: survives power loss once renamed.
    Sync,
    /// Left to the page cache: only for what can be rebuilt (the owner's copies of its
    /// own file).
    Cache,
}

/// The manifest a previous run left in `dir`, if any: what a peer resumes from, even while
/// the owner is away.
pub(crate) fn stored_manifest(dir: &Path) -> Result<Option<Manifest>, StoreError> {
    let path = dir.join(STORE_DIR).join("manifest");
    match read_no_follow(&path, crate::manifest::MAX_MANIFEST_LEN as u64) {
        Ok(bytes) => Manifest::decode(&bytes)
            .map(Some)
            .map_err(|source| StoreError::BadStoredManifest { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(StoreError::NotADirectory(dir.to_owned())),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// The store's directory name inside `DIR`.
pub(crate) const STORE_DIR: &str = ".swarmshare";

/// One node's chunk files, manifest and summary.
#[derive(Debug)]
pub struct ChunkStore {
    dir: PathBuf,
    root: PathBuf,
    manifest: Arc<Manifest>,
    fsync: bool,
}

/// A chunk written under `tmp/` and not yet renamed into `chunks/`; deleted if dropped.
/// Its file stays open until the commit, which syncs it through that descriptor (no
/// second open); the store holds at most a few dozen.
#[derive(Debug)]
pub struct Staged {
    id: ChunkId,
    file: tempfile::NamedTempFile,
}

impl Staged {
    /// The chunk's ID.
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// Another handle on the staged file, to send it from; it stays valid after the commit
    /// renames the file.
    pub fn handle(&self) -> Result<File, StoreError> {
        let path = self.file.path();
        self.file.as_file().try_clone().map_err(io_err("open", path))
    }
}

/// Creates `path` as a directory if missing and checks it is a real one.
fn ensure_dir(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::NotADirectory(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(io_err("create directory", path))
        }
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

impl ChunkStore {
    /// Opens (creating if needed) the store in `dir` for `manifest`, and returns it with
    /// the set of chunks already on disk that verify. Chunk files that do not verify are
    /// removed; leftover temporary files are removed.
    pub fn open(dir: &Path, manifest: Arc<Manifest>) -> Result<(ChunkStore, ChunkSet), StoreError> {
        if manifest.name() == STORE_DIR {
            return Err(StoreError::ReservedName);
        }
        ensure_dir(dir)?;
        let root = dir.join(STORE_DIR);
        ensure_dir(&root)?;
        let store = ChunkStore {
            dir: dir.to_owned(),
            root,
            manifest,
            fsync: true,
        };
        // Leftover temporary files are half-written; nothing refers to them.
        tidy::clear_tmp(&store.root, &store.root.join("tmp"))?;
        store.check_manifest()?;
        let chunks = store.root.join("chunks");
        tidy::ensure_chunks_dir(&store.root, &chunks)?;
        let have = tidy::scan(&store.root, &chunks, &store.manifest)?;
        store.write_summary(&have)?;
        Ok((store, have))
    }

    /// Refuses a store that belongs to another swarm; writes the manifest if absent.
    fn check_manifest(&self) -> Result<(), StoreError> {
        let path = self.root.join("manifest");
        match read_no_follow(&path, crate::manifest::MAX_MANIFEST_LEN as u64) {
            Ok(bytes) if bytes == self.manifest.encoded() => Ok(()),
            Ok(bytes) => {
                let (name, swarm) = match Manifest::decode(&bytes) {
                    Ok(m) => (m.name().to_owned(), m.swarm_id().to_string()),
                    Err(_) => ("?".to_owned(), "unreadable".to_owned()),
                };
                Err(StoreError::OtherSwarm {
                    dir: self.root.clone(),
                    name,
                    swarm,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.write_atomic(&path, self.manifest.encoded(), Durable::Sync)
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// The manifest this store holds chunks for.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The store's own directory, `DIR/.swarmshare`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory the user gave.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of chunk `id`'s file.
    pub fn chunk_path(&self, id: ChunkId) -> PathBuf {
        chunk_file(&self.root, id)
    }

    /// The path the assembled file gets.
    pub fn file_path(&self) -> PathBuf {
        self.dir.join(self.manifest.name())
    }

    /// Writes `data` to `path` through a temporary file in `tmp/` and a rename.
    fn write_atomic(&self, path: &Path, data: &[u8], durable: Durable) -> Result<(), StoreError> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir))?;
        tmp.write_all(data).map_err(io_err("write", path))?;
        if durable == Durable::Sync && self.fsync {
            tmp.as_file().sync_data().map_err(io_err("sync", path))?;
        }
        tmp.persist(path)
            .map_err(|e| io_err("rename into", path)(e.error))?;
        Ok(())
    }

    /// Whether writes are synced to disk before they are renamed into place (the default).
    /// Off (`--no-fsync`), a killed process loses no more than with syncing: every file appears
    /// whole or not at all, but a power cut may leave listed chunks unwritten.
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
    }

    /// Stores chunk `id` durably (synced before it is renamed into place). The caller has
    /// verified `data`.
    pub fn write_chunk(&self, id: ChunkId, data: &[u8]) -> Result<(), StoreError> {
        let staged = self.stage_chunk(id, data)?;
        self.commit_chunks(vec![staged])
    }

    /// Writes chunk `id` under `tmp/`, not synced and not yet a chunk file: the first half
    /// of [`ChunkStore::write_chunk`], so that many chunks share one round of syncs. A
    /// staged chunk dropped before its commit is deleted.
    pub fn stage_chunk(&self, id: ChunkId, data: &[u8]) -> Result<Staged, StoreError> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir))?;
        tmp.write_all(data)
            .map_err(io_err("write", &self.chunk_path(id)))?;
        Ok(Staged { id, file: tmp })
    }

    /// Syncs every staged chunk, then renames each into `chunks/`; the directory itself is
    /// synced by the next [`ChunkStore::write_summary`], before any summary lists them.
    pub fn commit_chunks(&self, staged: Vec<Staged>) -> Result<(), StoreError> {
        if self.fsync {
            for s in &staged {
                s.file
                    .as_file()
                    .sync_data()
                    .map_err(io_err("sync", &self.chunk_path(s.id)))?;
            }
        }
        for s in staged {
            let dest = self.chunk_path(s.id);
            s.file
                .into_temp_path()
                .persist(&dest)
                .map_err(|e| io_err("rename into", &dest)(e.error))?;
        }
        Ok(())
    }

    /// Opens chunk `id`'s file to send it, checked to have the chunk's length: a file changed
    /// behind our back must not turn into a frame of the wrong size. The kernel starts reading
    /// it in here, on the blocking pool, so the send that follows finds its pages cached.
    pub fn open_chunk(&self, id: ChunkId) -> Result<(File, usize), StoreError> {
        let path = self.chunk_path(id);
        let expected = self.manifest.layout().chunk_len(id).unwrap_or(0);
        let (file, len) = open_no_follow(&path).map_err(io_err("open", &path))?;
        if len != u64::from(expected) {
            let wrong = format!("it has {len} bytes, not the chunk's {expected}");
            return Err(io_err("send", &path)(io::Error::new(
                io::ErrorKind::InvalidData,
                wrong,
            )));
        }
        #[cfg(target_os = "linux")]
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
        Ok((file, expected as usize))
    }

    /// Reads chunk `id`'s bytes.
    pub fn read_chunk(&self, id: ChunkId) -> Result<Vec<u8>, StoreError> {
        let path = self.chunk_path(id);
        read_no_follow(&path, u64::from(self.manifest.layout().chunk_size())).map_err(io_err("read", &path))
    }

    /// Rewrites the summary file to list `have`.
    pub fn write_summary(&self, have: &ChunkSet) -> Result<(), StoreError> {
        // Every chunk listed was renamed into `chunks/` before; syncing the directory makes
        // those renames durable before a summary that lists them can be.
        let chunks = self.root.join("chunks");
        if self.fsync {
            File::open(&chunks)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", &chunks))?;
        }
        let text = summary::render(self.manifest.swarm_id(), have);
        self.write_atomic(&self.root.join("summary"), text.as_bytes(), Durable::Sync)
    }

    /// The summary file's path.
    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary")
    }

    /// Copies every chunk not yet stored out of `source`, the original file, verifying
    /// each against the manifest. Used by the owner. Returns the full set.
    pub fn import(&self, source: &Path, have: &mut ChunkSet) -> Result<(), StoreError> {
        let layout = *self.manifest.layout();
        let mut file = File::open(source).map_err(io_err("open", source))?;
        let mut buf = vec![0u8; layout.chunk_size() as usize];
        for id in 0..layout.chunk_count() {
            let len = layout.chunk_len(id).unwrap_or(0) as usize;
            file.read_exact(&mut buf[..len]).map_err(io_err("read", source))?;
            if have.contains(id) {
                continue;
            }
            if !self.manifest.verify_chunk(id, &buf[..len]) {
                return Err(StoreError::SourceChanged(source.to_owned()));
            }
            self.write_atomic(&self.chunk_path(id), &buf[..len], Durable::Cache)?;
            have.insert(id);
        }
        self.write_summary(have)
    }

    /// Refuses, before anything is downloaded, a destination `DIR/NAME` that cannot become
    /// the file: a directory, a symlink, or a file of another size. A file of the right size
    /// is left for [`ChunkStore::assemble`] to check by hash.
    pub fn check_destination(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        let dest = dir.join(manifest.name());
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_file() && meta.len() == manifest.layout().file_size() => Ok(()),
            Ok(_) => Err(StoreError::Occupied(dest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // DIR itself is a file: the same usage error `open` would give.
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                Err(StoreError::NotADirectory(dir.to_owned()))
            }
            Err(e) => Err(io_err("inspect", &dest)(e)),
        }
    }
}
