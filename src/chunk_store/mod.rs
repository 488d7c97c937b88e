//! `ChunkStore`: a node's directory on disk: the manifest, the data file, the chunk
//! files, the summary file and the finished file.
//!
//! Layout under the directory the user gave (`DIR`):
//!
//! ```text
//! DIR/<file name>              the finished file (a peer's, once complete and verified)
//! DIR/.swarmshare/manifest     the swarm's manifest (its BLAKE3 hash is the swarm ID)
//! DIR/.swarmshare/partial      the file being downloaded, each chunk at its offset
//! DIR/.swarmshare/summary      chunk IDs held, one per line (see `summary`)
//! DIR/.swarmshare/chunks/0000017   chunk 17 as its own file (see `ChunkFiles`)
//! DIR/.swarmshare/tmp/         files being written; emptied at start-up
//! DIR/.swarmshare/aside/       directories found where a chunk file belongs, moved here
//! ```
//!
//! Each received byte is written once, into the data file (`partial`, renamed into
//! `DIR` when complete); it is the node's durable copy, synced before a summary lists
//! its chunks. Chunk files are views of it: clones that share its blocks where the
//! filesystem can, plain copies only when asked for. Every other file is written under
//! `tmp/` and renamed into place, so a name only ever appears with complete contents.
//! Chunk files are named only from validated integer IDs, and the file name comes from a
//! manifest that has already refused anything but one plain name. All functions here
//! block; async callers run them on the blocking pool.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_set::ChunkSet;
use crate::manifest::{ChunkId, Manifest};
use crate::summary;

mod assemble;
mod body;
mod budget;
mod chunk_files;
mod data;
mod error;
mod files;
mod open;
mod part;
mod placing;
mod status;
mod tidy;
mod tree_files;
mod tree_place;
mod unnamed;

use assemble::Pieces;
pub(crate) use body::ChunkBody;
#[cfg(test)]
pub(crate) use budget::{open_limit, reserve_descriptors};
pub use chunk_files::ChunkFiles;
use data::DataFile;
pub(crate) use error::StoreError;
use files::{chunk_file, hash_file_at, io_err, read_no_follow};
pub(crate) use status::{dir_status, DirStatus, FileState};

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

/// The partial file's name inside the store directory.
pub(crate) const PARTIAL: &str = "partial";

/// One node's store: the data file, the chunk files, the manifest and the summary.
#[derive(Debug)]
pub struct ChunkStore {
    dir: PathBuf,
    root: PathBuf,
    manifest: Arc<Manifest>,
    fsync: bool,
    /// The swarm's bytes (see [`DataFile`]).
    data: DataFile,
    /// The chaining values of the chunks in `data` (layouts with pieces), for the
    /// whole-file hash without reading the file back.
    pieces: std::sync::Mutex<Option<Pieces>>,
    /// Which held chunks get a chunk file, as asked for.
    policy: ChunkFiles,
    /// How they are made, as found possible here (see [`chunk_files`]).
    making: std::sync::Mutex<chunk_files::Making>,
    /// A tree's files still downloading (a peer's store for a tree; `None` otherwise).
    tree: Option<tree_files::TreeFiles>,
}

/// Refuses a store in `root` that belongs to another swarm; writes the manifest if absent.
fn check_manifest(root: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let path = root.join("manifest");
    match read_no_follow(&path, crate::manifest::MAX_MANIFEST_LEN as u64) {
        Ok(bytes) if bytes == manifest.encoded() => Ok(()),
        Ok(bytes) => {
            let (name, swarm) = match Manifest::decode(&bytes) {
                Ok(m) => (m.name().to_owned(), m.swarm_id().to_string()),
                Err(_) => ("?".to_owned(), "unreadable".to_owned()),
            };
            Err(StoreError::OtherSwarm {
                dir: root.to_owned(),
                name,
                swarm,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => write_atomic(root, &path, manifest.encoded(), true),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Writes `data` to `path` through a temporary file in `root/tmp/` and a rename, synced
/// first if `sync`.
fn write_atomic(root: &Path, path: &Path, data: &[u8], sync: bool) -> Result<(), StoreError> {
    let tmp_dir = root.join("tmp");
    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir))?;
    tmp.write_all(data).map_err(io_err("write", path))?;
    if sync {
        tmp.as_file().sync_data().map_err(io_err("sync", path))?;
    }
    tmp.persist(path)
        .map_err(|e| io_err("rename into", path)(e.error))?;
    Ok(())
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

    /// Whether writes are synced to disk before they are renamed into place (the default).
    /// Off (`--no-fsync`), a killed process loses no more than with syncing: every file appears
    /// whole or not at all, but a power cut may leave listed chunks unwritten.
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
    }

    /// Rewrites the summary file to list `have`. The caller has synced the data file
    /// since the last of those chunks was written: the summary never lists a chunk that is
    /// not on the disk.
    pub fn write_summary(&self, have: &ChunkSet) -> Result<(), StoreError> {
        let text = summary::render(self.manifest.swarm_id(), have);
        write_atomic(
            &self.root,
            &self.root.join("summary"),
            text.as_bytes(),
            self.fsync,
        )
    }

    /// Chunk `id`'s range of the data file, to send, while the file is as the node
    /// checked it; `None` once it may have been changed behind the node's back (then
    /// [`ChunkStore::read_verified`]). A chunk spanning files of a tree is read and
    /// verified here instead: one hash costs less than looking at each of its files.
    pub fn chunk_range(&self, id: ChunkId) -> Option<ChunkBody> {
        let layout = self.manifest.layout();
        let (offset, len) = (layout.chunk_offset(id)?, layout.chunk_len(id)?);
        match self.data.within_one(offset, u64::from(len)) {
            Some((file, at)) => {
                if self
                    .data
                    .changed_behind_us(&self.manifest, offset, u64::from(len))
                {
                    return None;
                }
                Some(ChunkBody::File {
                    file,
                    offset: at,
                    len: len as usize,
                })
            }
            None => {
                let mut buf = vec![0u8; len as usize];
                self.data.read_at(&mut buf, offset).ok()?;
                self.manifest
                    .verify_chunk(id, &buf)
                    .then(|| ChunkBody::Memory(bytes::Bytes::from(buf)))
            }
        }
    }

    /// Chunk `id`'s bytes from the data file, verified; `None` if they do not match.
    pub fn read_verified(&self, id: ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        self.data.read_verified(&self.manifest, id)
    }

    /// The summary file's path.
    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary")
    }

    /// Refuses, before anything is downloaded, a destination `DIR/NAME` that cannot become
    /// the file: a directory, a symlink, or a file of another size. A file of the right size
    /// is left for [`ChunkStore::assemble`] to check by hash.
    pub fn check_destination(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        let dest = dir.join(manifest.name());
        if let Some(tree) = manifest.tree() {
            if manifest.name() == STORE_DIR {
                return Err(StoreError::ReservedName);
            }
            return match fs::symlink_metadata(&dest) {
                Ok(meta) if !meta.is_dir() => Err(StoreError::NotADirectory(dest)),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    Err(StoreError::NotADirectory(dir.to_owned()))
                }
                _ if !dir.exists() => Ok(()),
                _ => tree_files::check_destination(dir, manifest, tree),
            };
        }
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
