//! Joining the chunks into the file. A downloading node writes each chunk into a
//! [`Partial`] file (under `tmp/`) as it arrives, so completion costs no second copy of
//! every chunk; chunks held before this run (a resume) are copied in at the end. With each
//! chunk go its pieces of the file's hash tree ([`crate::manifest::tree`]), 32 bytes each,
//! into a small side file, so the whole-file hash is checked without reading the file
//! back (layouts without pieces read it). The file is renamed into place only when its
//! hash matches the manifest, and never over another file.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::{hash_file_at, io_err, ChunkStore, StoreError};
use crate::chunk_set::ChunkSet;
use crate::manifest::tree::{self, ChainingValue, CV_LEN};
use crate::manifest::{ChunkId, Layout};

/// The file being joined: a temporary file in `tmp/`, the chunks already in it and, for
/// layouts with pieces, the side file of their chaining values (chunk `id`'s at
/// `id × max_pieces × 32`, 6 × 32 bytes per 100 KiB chunk).
#[derive(Debug)]
pub struct Partial {
    file: tempfile::NamedTempFile,
    written: ChunkSet,
    cvs: Option<tempfile::NamedTempFile>,
}

/// Where chunk `id`'s chaining values start in the side file (room for the layout's most).
fn cv_slot(layout: &Layout, id: ChunkId) -> u64 {
    u64::from(id) * (tree::max_pieces(layout) * CV_LEN) as u64
}

impl ChunkStore {
    /// Starts the file this node is downloading, empty, under `tmp/`.
    pub fn start_partial(&self) -> Result<Partial, StoreError> {
        let tmp_dir = self.root.join("tmp");
        let create =
            || tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir));
        let file = create()?;
        let cvs = tree::has_pieces(self.manifest.layout())
            .then(create)
            .transpose()?;
        Ok(Partial {
            file,
            written: ChunkSet::empty(self.manifest.layout().chunk_count()),
            cvs,
        })
    }

    /// Writes verified chunk `id` at its place in `partial`, with its pieces' chaining
    /// values `cvs` (from [`Manifest::verify_chunk_pieces`](crate::manifest::Manifest::verify_chunk_pieces)).
    pub fn write_partial(
        &self,
        partial: &mut Partial,
        id: ChunkId,
        data: &[u8],
        cvs: &[ChainingValue],
    ) -> Result<(), StoreError> {
        // Errors name the temporary file being written, not the final name.
        let dest = partial.file.path().to_owned();
        let Some(offset) = self.manifest.layout().chunk_offset(id) else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, format!("chunk {id} is out of range"));
            return Err(io_err("write", &dest)(e));
        };
        partial
            .file
            .as_file()
            .write_all_at(data, offset)
            .map_err(io_err("write", &dest))?;
        if let Some(side) = &partial.cvs {
            if cvs.len() > tree::max_pieces(self.manifest.layout()) {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("chunk {id} has too many pieces"),
                );
                return Err(io_err("write", side.path())(e));
            }
            side.as_file()
                .write_all_at(&cvs.concat(), cv_slot(self.manifest.layout(), id))
                .map_err(io_err("write", side.path()))?;
        }
        partial.written.insert(id);
        Ok(())
    }

    /// Completes the file: copies in every chunk `partial` lacks (all of them without
    /// one), checks the whole-file hash, syncs it and renames it into `DIR`. A file
    /// already there with the right contents is kept; one with other contents is never
    /// overwritten.
    pub fn assemble(&self, partial: Option<Partial>) -> Result<PathBuf, StoreError> {
        let dest = self.file_path();
        if fs::symlink_metadata(&dest).is_ok() {
            // Kept only if it is a regular file with exactly the swarm's contents.
            return match hash_file_at(&dest) {
                Ok(hash) if hash == *self.manifest.file_hash() => Ok(dest),
                _ => Err(StoreError::Occupied(dest)),
            };
        }
        let mut partial = match partial {
            Some(p) => p,
            None => self.start_partial()?,
        };
        let layout = *self.manifest.layout();
        for id in 0..layout.chunk_count() {
            if !partial.written.contains(id) {
                let data = self.read_chunk(id)?;
                // Checked again as it is copied: the pieces come from the same pass.
                let cvs = self.manifest.verify_chunk_pieces(id, &data);
                let cvs = cvs.ok_or(StoreError::FileHashMismatch)?;
                self.write_partial(&mut partial, id, &data, &cvs)?;
            }
        }
        let file = partial.file.as_file();
        let len = file.metadata().map_err(io_err("inspect", &dest))?.len();
        let path = partial.file.path();
        let hash = match &partial.cvs {
            Some(cvs) => tree_hash(&layout, cvs)?,
            None => Some(hash_file_at(path).map_err(io_err("read", path))?),
        };
        if len != layout.file_size() || hash != Some(*self.manifest.file_hash()) {
            return Err(StoreError::FileHashMismatch);
        }
        if self.fsync {
            file.sync_all().map_err(io_err("sync", &dest))?;
        }
        partial
            .file
            .persist_noclobber(&dest)
            .map_err(|e| io_err("rename into", &dest)(e.error))?;
        Ok(dest)
    }
}

/// The file's hash merged from the side file's chaining values, read in order one chunk's
/// at a time; `None` if they do not fit the layout.
fn tree_hash(layout: &Layout, side: &tempfile::NamedTempFile) -> Result<Option<[u8; 32]>, StoreError> {
    let mut failed = None;
    let all = (0..layout.chunk_count()).flat_map(|id| {
        let mut slot = vec![0u8; tree::pieces(layout, id).len() * CV_LEN];
        if let Err(e) = side.as_file().read_exact_at(&mut slot, cv_slot(layout, id)) {
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
        Some(e) => Err(io_err("read", side.path())(e)),
        None => Ok(hash),
    }
}
