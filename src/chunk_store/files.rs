//! File helpers for the store: paths named from chunk IDs, reads that never follow a
//! symlink, whole-file hashes, and errors that name the path.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::manifest::ChunkId;

/// Chunk `id`'s file in the store directory `root` (`DIR/.swarmshare`).
pub(super) fn chunk_file(root: &Path, id: ChunkId) -> PathBuf {
    root.join("chunks").join(format!("{id:07}"))
}

/// The BLAKE3 hash of the file at `path`, read in full; a symlink is not followed.
pub(super) fn hash_file_at(path: &Path) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(open_no_follow(path)?.0)?;
    Ok(*hasher.finalize().as_bytes())
}

/// Opens `path` for reading: never through a symlink at its last component, never
/// blocking on a FIFO, and only if it is a regular file. Returns it with its length.
pub(super) fn open_no_follow(path: &Path) -> io::Result<(File, u64)> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `max` bytes without following a symlink.
pub(super) fn read_no_follow(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_no_follow(path)?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than it may be",
        ));
    }
    // Sized from the start: one read, no regrowth (the file may still change; `take` caps it).
    let mut data = Vec::with_capacity(len as usize + 1);
    file.take(max).read_to_end(&mut data)?;
    Ok(data)
}

pub(super) fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}
