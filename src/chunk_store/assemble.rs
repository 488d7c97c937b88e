//! Joining the chunks into the file. A downloading node writes each chunk into a
//! [`Partial`] file (under `tmp/`) as it arrives, so completion costs one read to check
//! the whole-file hash, not a second copy of every chunk; chunks held before this run (a
//! resume) are copied in at the end. The file is renamed into place only when its hash
//! matches the manifest, and never over another file.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::{hash_file_at, io_err, ChunkStore, StoreError};
use crate::chunk_set::ChunkSet;
use crate::manifest::ChunkId;

/// The file being joined: a temporary file in `tmp/` and the chunks already in it.
#[derive(Debug)]
pub struct Partial {
    file: tempfile::NamedTempFile,
    written: ChunkSet,
}

impl ChunkStore {
    /// Starts the file this node is downloading, empty, under `tmp/`.
    pub fn start_partial(&self) -> Result<Partial, StoreError> {
        let tmp_dir = self.root.join("tmp");
        let file = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir))?;
        Ok(Partial {
            file,
            written: ChunkSet::empty(self.manifest.layout().chunk_count()),
        })
    }

    /// Writes verified chunk `id` at its place in `partial`.
    pub fn write_partial(&self, partial: &mut Partial, id: ChunkId, data: &[u8]) -> Result<(), StoreError> {
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
                self.write_partial(&mut partial, id, &data)?;
            }
        }
        let file = partial.file.as_file();
        let len = file.metadata().map_err(io_err("inspect", &dest))?.len();
        let path = partial.file.path();
        let hash = hash_file_at(path).map_err(io_err("read", path))?;
        if len != layout.file_size() || hash != *self.manifest.file_hash() {
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
