//! Writing chunks into the data file and finishing it. A downloading node writes each
//! verified chunk at its place in `DIR/.swarmshare/partial`, once. With each chunk go its
//! pieces of the file's hash tree ([`crate::manifest::tree`]), 32 bytes each, into a small
//! side file under `tmp/` (rebuilt when a store is opened), so the whole-file hash is
//! checked without reading the file back (layouts without pieces read it). The file is
//! renamed into `DIR` only when its hash matches the manifest, and never over another
//! file.

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use super::tree_files::TreeFiles;
use super::{hash_file_at, io_err, ChunkStore, StoreError};
use crate::manifest::tree::{self, ChainingValue, CV_LEN};
use crate::manifest::{ChunkId, Layout};
use crate::thread_usage::Waits;

/// The side file of chaining values: chunk `id`'s at `id × max_pieces × 32`, 6 × 32
/// bytes per 100 KiB chunk.
#[derive(Debug)]
pub(crate) struct Pieces(tempfile::NamedTempFile);

/// Where chunk `id`'s chaining values start in the side file (room for the layout's most).
fn cv_slot(layout: &Layout, id: ChunkId) -> u64 {
    u64::from(id) * (tree::max_pieces(layout) * CV_LEN) as u64
}

impl Pieces {
    /// A new, empty side file under `tmp`, for layouts with pieces.
    pub(super) fn create(layout: &Layout, tmp: &Path) -> Result<Option<Pieces>, StoreError> {
        if !tree::has_pieces(layout) {
            return Ok(None);
        }
        let file = tempfile::NamedTempFile::new_in(tmp).map_err(io_err("create a file in", tmp))?;
        Ok(Some(Pieces(file)))
    }

    /// Records chunk `id`'s chaining values.
    pub(super) fn write(
        &self,
        layout: &Layout,
        id: ChunkId,
        cvs: &[ChainingValue],
    ) -> Result<(), StoreError> {
        if cvs.len() > tree::max_pieces(layout) {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("chunk {id} has too many pieces"),
            );
            return Err(io_err("write", self.0.path())(e));
        }
        self.0
            .as_file()
            .write_all_at(&cvs.concat(), cv_slot(layout, id))
            .map_err(io_err("write", self.0.path()))
    }

    /// The file's hash merged from the chaining values, read in order one chunk's at a
    /// time; `None` if they do not fit the layout.
    fn root(&self, layout: &Layout) -> Result<Option<[u8; 32]>, StoreError> {
        let mut failed = None;
        let all = (0..layout.chunk_count()).flat_map(|id| {
            let mut slot = vec![0u8; tree::pieces(layout, id).len() * CV_LEN];
            if let Err(e) = self.0.as_file().read_exact_at(&mut slot, cv_slot(layout, id)) {
                failed.get_or_insert(e);
            }
            let values: Vec<ChainingValue> = slot
                .chunks_exact(CV_LEN)
                .filter_map(|cv| cv.try_into().ok())
                .collect();
            values
        });
        let hash = tree::root(layout, all);
        match failed {
            Some(e) => Err(io_err("read", self.0.path())(e)),
            None => Ok(hash),
        }
    }
}

impl ChunkStore {
    /// Writes verified chunk `id` at its place in the data file, with its pieces' chaining
    /// values `cvs` (from [`Manifest::verify_chunk_pieces`](crate::manifest::Manifest::verify_chunk_pieces)),
    /// and starts writing it to the disk. Durable after the next [`ChunkStore::sync`].
    /// What it waited for is counted in `waits` (see [`DataFile::write_at`](super::data::DataFile::write_at)).
    pub(crate) fn write_chunk(
        &self,
        id: ChunkId,
        data: &[u8],
        cvs: &[ChainingValue],
        waits: &mut Waits,
    ) -> Result<(), StoreError> {
        let layout = self.manifest.layout();
        let offset = match layout.chunk_offset(id) {
            Some(offset) if layout.chunk_len(id) == Some(data.len() as u32) => offset,
            _ => {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("chunk {id} does not fit the file"),
                );
                return Err(io_err("write", &self.data.path())(e));
            }
        };
        self.data.write_at(data, offset, self.fsync, waits)?;
        self.record_pieces(id, cvs, waits)?;
        if let Some(state) = &self.tree {
            state.written(&self.manifest, &self.data, id);
        }
        Ok(())
    }

    /// Waits until every chunk written is on the disk (a no-op with `--no-fsync`).
    /// A tree's files completed since the last sync are then moved into place.
    /// With `--no-fsync`, what they hold is synced all the same (one sync for the batch):
    /// a file at its path is whole.
    pub fn sync(&self) -> Result<(), StoreError> {
        let placing = self.tree.as_ref().is_some_and(TreeFiles::has_pending);
        if self.fsync || placing {
            self.data.sync()?;
        }
        if let Some(state) = &self.tree {
            self.place_pending(state)?;
        }
        Ok(())
    }

    /// Completes the file once every chunk is written: checks the whole-file hash, syncs
    /// it and moves it into `DIR` under its name, never over another file (a file already
    /// there with exactly these contents is kept). Returns its path.
    pub fn assemble(&self) -> Result<PathBuf, StoreError> {
        if self.manifest.tree().is_some() {
            return self.assemble_tree();
        }
        let dest = self.file_path();
        let partial = self.partial_path();
        if self.data.path() == dest {
            return Ok(dest);
        }
        let layout = *self.manifest.layout();
        let hash = match &*self.pieces.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pieces) => pieces.root(&layout)?,
            None => Some(hash_file_at(&partial).map_err(io_err("read", &partial))?),
        };
        if hash != Some(*self.manifest.file_hash()) {
            return Err(StoreError::FileHashMismatch);
        }
        self.data.sync()?;
        // A hard link never replaces a file; the partial name goes once the file is in
        // place. Killed in between, the next start finds both and keeps the finished file.
        match fs::hard_link(&partial, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return match hash_file_at(&dest) {
                    Ok(hash) if hash == *self.manifest.file_hash() => self.finish_as(&dest),
                    _ => Err(StoreError::Occupied(dest)),
                };
            }
            Err(e) => return Err(io_err("link into", &dest)(e)),
        }
        self.finish_as(&dest)
    }

    /// The data file is done with under its partial name: the finished file at `dest` is
    /// what the node serves from now on.
    fn finish_as(&self, dest: &Path) -> Result<PathBuf, StoreError> {
        let partial = self.partial_path();
        if self.data.path() != dest && fs::symlink_metadata(&partial).is_ok() {
            fs::remove_file(&partial).map_err(io_err("remove", &partial))?;
        }
        if self.fsync {
            sync_dir(&self.dir)?;
            sync_dir(&self.root)?;
        }
        if let Ok(meta) = fs::symlink_metadata(dest) {
            let mark = format!("{} {}\n", meta.dev(), meta.ino());
            super::write_atomic(&self.root, &self.root.join(FINISHED), mark.as_bytes(), self.fsync)?;
        }
        self.data.hand_over(dest);
        // The side file's work is done; it goes from `tmp/`.
        self.pieces.lock().unwrap_or_else(PoisonError::into_inner).take();
        Ok(dest.to_owned())
    }

    /// Completes a tree once every chunk is written: each file is in place already (moved
    /// there when its last chunk was written); this checks the stream's hash, syncs the
    /// tree's top directory and returns `DIR/NAME`.
    fn assemble_tree(&self) -> Result<PathBuf, StoreError> {
        let dest = self.file_path();
        self.sync()?;
        if self.tree.as_ref().is_some_and(|t| !t.all_complete()) {
            return Err(StoreError::FileHashMismatch);
        }
        if let Some(tree) = self.manifest.tree() {
            super::tree_files::check_finished(&self.dir, &self.manifest, tree)?;
        }
        let layout = *self.manifest.layout();
        let hash = match &*self.pieces.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pieces) => pieces.root(&layout)?,
            None => Some(self.stream_hash(&layout)?),
        };
        if hash != Some(*self.manifest.file_hash()) {
            return Err(StoreError::FileHashMismatch);
        }
        if self.fsync {
            self.sync_tree_dirs()?;
            sync_dir(&self.dir)?;
        }
        self.pieces.lock().unwrap_or_else(PoisonError::into_inner).take();
        // Empty now; a leftover is harmless and goes with the store.
        let _ = fs::remove_dir(self.root.join(super::tree_files::PARTS_DIR));
        Ok(dest)
    }

    /// The BLAKE3 hash of the data read back (layouts without pieces: under 500 KiB).
    fn stream_hash(&self, layout: &Layout) -> Result<[u8; 32], StoreError> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; layout.chunk_size() as usize];
        for id in 0..layout.chunk_count() {
            let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
                continue;
            };
            self.data.read_at(&mut buf[..len as usize], offset)?;
            hasher.update(&buf[..len as usize]);
        }
        Ok(*hasher.finalize().as_bytes())
    }

    /// `DIR/.swarmshare/partial`.
    pub(super) fn partial_path(&self) -> PathBuf {
        self.root.join(super::PARTIAL)
    }
}

/// The record of which file this node finished (device and inode), so that a damaged
/// finished file can be told from someone else's file of the same name.
const FINISHED: &str = "finished";

/// Whether `dest` is the file this node finished (see [`FINISHED`]).
pub(super) fn is_ours(root: &Path, dest: &Path) -> bool {
    let (Ok(meta), Ok(mark)) = (
        fs::symlink_metadata(dest),
        fs::read_to_string(root.join(FINISHED)),
    ) else {
        return false;
    };
    meta.is_file() && mark.trim() == format!("{} {}", meta.dev(), meta.ino())
}

/// Makes a directory's entries (a rename, a link) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}
