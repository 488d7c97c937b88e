//! Opening a store: tidying what an earlier run (or a crash, or a user) left, and
//! finding out, by verifying, which chunks are held.
//!
//! A peer's chunks are those whose bytes in the data file verify: the partial file
//! (ranges the filesystem reports as holes are skipped unread), or the finished file when
//! it is there instead. A chunk file that verifies for a chunk the data file lacks (a store
//! from a version that kept chunks only as files, or a user's copy) is written into the
//! data file. The data file is then synced and the summary rewritten, so the summary lists
//! exactly what is on the disk.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use super::assemble::Pieces;
use super::chunk_files;
use super::data::DataFile;
use super::files::{hash_file_at, io_err};
use super::placing;
use super::tree_files::{self, TreeFiles};
use super::{
    check_manifest, chunk_file, ensure_dir, tidy, ChunkFiles, ChunkStore, StoreError, PARTIAL, STORE_DIR,
};
use crate::chunk_set::ChunkSet;
use crate::manifest::{ChunkId, Manifest};
use crate::text::Quoted;
use crate::thread_usage::Waits;

/// The store's folders in `dir`, tidied; and the chunk files there that verify.
fn prepare(dir: &Path, manifest: &Manifest) -> Result<(std::path::PathBuf, ChunkSet), StoreError> {
    if manifest.name() == STORE_DIR {
        return Err(StoreError::ReservedName);
    }
    ensure_dir(dir)?;
    let root = dir.join(STORE_DIR);
    ensure_dir(&root)?;
    // Leftover temporary files are half-written; nothing refers to them.
    tidy::clear_tmp(&root, &root.join("tmp"))?;
    check_manifest(&root, manifest)?;
    let chunks = root.join("chunks");
    tidy::ensure_chunks_dir(&root, &chunks)?;
    let files = tidy::scan(&root, &chunks, manifest)?;
    Ok((root, files))
}

impl ChunkStore {
    /// A store over `data` in `root`, with chunk files made as `policy` and the file
    /// system allow; syncing on, no tree state yet.
    fn assembled(
        dir: &Path,
        root: std::path::PathBuf,
        manifest: Arc<Manifest>,
        data: DataFile,
        pieces: Option<Pieces>,
        policy: ChunkFiles,
    ) -> ChunkStore {
        let making = chunk_files::decide(policy, || data.first_file(), &root.join("tmp"));
        ChunkStore {
            dir: dir.to_owned(),
            root,
            manifest,
            fsync: true,
            data,
            pieces: std::sync::Mutex::new(pieces),
            policy,
            making: std::sync::Mutex::new(making),
            tree: None,
        }
    }

    /// Opens (creating if needed) a peer's store in `dir` for `manifest`, and returns it
    /// with the set of chunks it holds (see the module docs).
    pub fn open(
        dir: &Path,
        manifest: Arc<Manifest>,
        policy: ChunkFiles,
    ) -> Result<(ChunkStore, ChunkSet), StoreError> {
        let (root, files) = prepare(dir, &manifest)?;
        if manifest.tree().is_some() {
            return ChunkStore::open_tree(dir, manifest, policy, root, files);
        }
        let layout = *manifest.layout();
        let partial = root.join(PARTIAL);
        let dest = dir.join(manifest.name());
        let existed = fs::symlink_metadata(&partial).is_ok_and(|m| m.is_file());
        let finished = !existed
            && fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == layout.file_size());
        let intact = finished && hash_file_at(&dest).is_ok_and(|hash| hash == *manifest.file_hash());
        if finished && !intact {
            // The file this node finished, damaged since: taken back to be repaired.
            // Anyone else's file is never touched.
            if !super::assemble::is_ours(&root, &dest) {
                return Err(StoreError::Occupied(dest));
            }
            warn!(file = %Quoted(&dest), "the finished file no longer matches; repairing it");
            fs::rename(&dest, &partial).map_err(io_err("move back", &dest))?;
        }
        // Whether there is something to verify in `partial` (a file made just now holds
        // nothing).
        let existed = existed || finished;
        let finished = intact;
        let data = if finished {
            DataFile::open_read(&dest)?
        } else {
            remove_if_not_a_file(&partial)?;
            DataFile::open_partial(&partial, layout.file_size())?
        };
        let fresh = !finished && !existed;
        let pieces = if finished {
            None
        } else {
            Pieces::create(&layout, &root.join("tmp"))?
        };
        let store = ChunkStore::assembled(dir, root, manifest, data, pieces, policy);
        let have = if finished {
            ChunkSet::full(layout.chunk_count())
        } else {
            store.verify_partial(&files, fresh)?
        };
        store.data.sync()?;
        let missing: Vec<ChunkId> = have.iter().filter(|&id| !files.contains(id)).collect();
        store.make_chunk_files(&missing)?;
        store.write_summary(&have)?;
        Ok((store, have))
    }

    /// Opens the owner's store in `dir`: the data file is `source`, the file it shares,
    /// which must still be as it was when `manifest` was made from it (`before`). For a
    /// tree, whose hashing began at `hashed_from`, each file modified since then (or
    /// within 2 s before: coarse clocks) has every chunk verified before it is sent.
    /// Every chunk is held.
    pub fn open_owner(
        dir: &Path,
        manifest: Arc<Manifest>,
        source: &Path,
        before: &fs::Metadata,
        hashed_from: std::time::SystemTime,
        policy: ChunkFiles,
    ) -> Result<(ChunkStore, ChunkSet), StoreError> {
        let (root, files) = prepare(dir, &manifest)?;
        let data = match manifest.tree() {
            Some(tree) => tree_data(source, tree, hashed_from)?,
            None => DataFile::open_read(source)?,
        };
        if manifest.tree().is_none() && !data.same_as(before) {
            return Err(StoreError::SourceChanged(source.to_owned()));
        }
        let store = ChunkStore::assembled(dir, root, manifest, data, None, policy);
        let have = ChunkSet::full(store.manifest.layout().chunk_count());
        let missing: Vec<ChunkId> = have.iter().filter(|&id| !files.contains(id)).collect();
        store.make_chunk_files(&missing)?;
        store.write_summary(&have)?;
        Ok((store, have))
    }

    /// Opens a peer's store for a tree (see [`tree_files`]): the files finished or
    /// downloading are verified chunk by chunk; a finished file that no longer verifies is
    /// someone else's now, and refused.
    fn open_tree(
        dir: &Path,
        manifest: Arc<Manifest>,
        policy: ChunkFiles,
        root: std::path::PathBuf,
        files: ChunkSet,
    ) -> Result<(ChunkStore, ChunkSet), StoreError> {
        let tree = manifest.tree().ok_or(StoreError::FileHashMismatch)?;
        // Files a stopped commit had placed go back to `parts/` first, to be verified there.
        placing::recover(dir, manifest.name(), tree, &root.join(tree_files::PARTS_DIR))?;
        let (data, entries) = tree_files::open_data(dir, &root, &manifest, tree)?;
        let pieces = Pieces::create(manifest.layout(), &root.join("tmp"))?;
        let mut store = ChunkStore::assembled(dir, root, Arc::clone(&manifest), data, pieces, policy);
        let have = store.verify_partial(&files, false)?;
        let state = TreeFiles::new(&manifest, &store.data, entries, &have);
        if let Some(damaged) = state.damaged_finished(&store.data) {
            return Err(StoreError::Occupied(damaged));
        }
        store.data.sync()?;
        state.queue_complete(&store.data);
        store.place_pending(&state)?;
        store.tree = Some(state);
        let missing: Vec<ChunkId> = have.iter().filter(|&id| !files.contains(id)).collect();
        store.make_chunk_files(&missing)?;
        store.write_summary(&have)?;
        Ok((store, have))
    }

    /// The chunks whose bytes in the partial file verify (none if it is `fresh`, made just
    /// now), their chaining values recorded; chunk files in `files` fill in the chunks it
    /// lacks.
    fn verify_partial(&self, files: &ChunkSet, fresh: bool) -> Result<ChunkSet, StoreError> {
        let layout = *self.manifest.layout();
        let mut have = ChunkSet::empty(layout.chunk_count());
        let mut buf = vec![0u8; layout.chunk_size() as usize];
        for id in 0..layout.chunk_count() {
            let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
                continue;
            };
            let buf = &mut buf[..len as usize];
            if !fresh && self.data.may_hold(offset, u64::from(len)) {
                self.data.read_at(buf, offset)?;
                if let Some(cvs) = self.manifest.verify_chunk_pieces(id, buf) {
                    self.record_pieces(id, &cvs, &mut Waits::default())?;
                    have.insert(id);
                    continue;
                }
            }
            if files.contains(id) {
                let path = chunk_file(&self.root, id);
                let bytes = super::read_no_follow(&path, u64::from(layout.chunk_size()))
                    .map_err(io_err("read", &path))?;
                match self.manifest.verify_chunk_pieces(id, &bytes) {
                    Some(cvs) => {
                        self.write_chunk(id, &bytes, &cvs, &mut Waits::default())?;
                        have.insert(id);
                    }
                    None => {
                        warn!(path = %Quoted(&path), "a chunk file changed while the store opened; not used")
                    }
                }
            }
        }
        Ok(have)
    }

    pub(super) fn record_pieces(
        &self,
        id: ChunkId,
        cvs: &[crate::manifest::tree::ChainingValue],
        waits: &mut Waits,
    ) -> Result<(), StoreError> {
        match &*waits.lock(&self.pieces) {
            Some(pieces) => waits.write(|| pieces.write(self.manifest.layout(), id, cvs)),
            None => Ok(()),
        }
    }
}

/// The owner's data for a tree: its non-empty files under `source`, each still the size
/// the manifest lists.
fn tree_data(
    source: &Path,
    tree: &crate::manifest::Tree,
    hashed_from: std::time::SystemTime,
) -> Result<DataFile, StoreError> {
    let recent = hashed_from
        .checked_sub(std::time::Duration::from_secs(2))
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut parts = Vec::new();
    let budget = Arc::default();
    for e in tree.entries() {
        if let crate::manifest::EntryKind::File { size, offset, .. } = e.kind {
            if size == 0 {
                continue;
            }
            let path = source.join(&e.path);
            let part = super::data::Part::open_read(&path, offset, &budget)?;
            if part.range().1 != size {
                return Err(StoreError::SourceChanged(path));
            }
            if part.modified().is_none_or(|at| at >= recent) {
                part.distrust();
            }
            parts.push(part);
        }
    }
    Ok(DataFile::of_parts(parts))
}

/// Removes whatever is at `path` if it is not a regular file (a symlink is removed, never
/// followed); a directory, which may hold someone's data, is refused.
fn remove_if_not_a_file(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(StoreError::Occupied(path.to_owned())),
        Ok(_) => {
            warn!(path = %Quoted(path), "removing an entry that is not a file where the partial file belongs");
            fs::remove_file(path).map_err(io_err("remove", path))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}
