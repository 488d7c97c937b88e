//! `DataFile`: the one file a node keeps the swarm's bytes in, chunk `id` at its offset in
//! the file. For a downloading peer it is `DIR/.swarmshare/partial` (sized to the file at
//! once, preallocated where the filesystem can) and then, renamed, the finished file; for
//! the owner it is the file it shares. Every chunk is written into it once, read from it
//! to be sent, and made durable by syncing it: the node's only copy of each byte.
//!
//! The file may be changed behind the node's back (the user edits the finished file, or
//! the owner's FILE). Each send first compares the file's length, modification time and
//! inode with what they were when the node checked its contents; once they differ, every
//! chunk is verified before it is sent, and one that does not verify is not sent (the
//! change is logged once). A node never sends bytes it has not checked.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::error;

use super::files::io_err;
use super::StoreError;
use crate::manifest::{ChunkId, Manifest};
use crate::text::Quoted;

/// What identifies a file's contents as checked: if any of these changed, so may they.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// The file holding the swarm's bytes (see the module docs).
#[derive(Debug)]
pub(crate) struct DataFile {
    file: Arc<File>,
    /// Where it is (errors name it); changes once, when a partial file is finished.
    path: Mutex<PathBuf>,
    /// Set once the file is found changed since it was checked.
    changed: AtomicBool,
    stamp: Mutex<Stamp>,
    /// Whether only this node writes the file (a peer's partial file, until it is handed
    /// over as the finished file): then nobody else changes it behind our back.
    ours: AtomicBool,
    /// Bytes written since write-out was last started.
    unstarted: AtomicU64,
}

/// Write-out is started once this much has been written since the last start: one call
/// for the whole file then, so the disk gets large writes and the writer few calls
/// (chunks arrive in random order; on ext4, capped, one call per chunk cost a peer about
/// 10.5 s of CPU per GiB, one per 4 MiB about 7.5 s: BENCHMARKS.md).
pub(crate) const WRITE_BEHIND_STEP: u64 = 4 << 20;

/// Opens `path` without following a symlink at its last component; only a regular file.
fn open_regular(path: &Path, write: bool, create: bool) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(write)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

impl DataFile {
    /// Opens an existing file read-only (the owner's FILE, a peer's finished file).
    pub(crate) fn open_read(path: &Path) -> Result<DataFile, StoreError> {
        let file = open_regular(path, false, false).map_err(io_err("open", path))?;
        DataFile::new(file, path, false)
    }

    /// Opens or creates the file a peer downloads into, sized to `len` and preallocated
    /// where the filesystem can (so a full disk shows at the start, not midway).
    pub(crate) fn open_partial(path: &Path, len: u64) -> Result<DataFile, StoreError> {
        let file = open_regular(path, true, true).map_err(io_err("open", path))?;
        if file.metadata().map_err(io_err("inspect", path))?.len() != len {
            file.set_len(len).map_err(io_err("size", path))?;
        }
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::NOSPC => {
                return Err(io_err("preallocate", path)(e.into()));
            }
            // Not every filesystem preallocates; the file is sparse there.
            Err(_) => {}
        }
        DataFile::new(file, path, true)
    }

    fn new(file: File, path: &Path, ours: bool) -> Result<DataFile, StoreError> {
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        Ok(DataFile {
            file: Arc::new(file),
            path: Mutex::new(path.to_owned()),
            changed: AtomicBool::new(false),
            stamp: Mutex::new(Stamp::of(&meta)),
            ours: AtomicBool::new(ours),
            unstarted: AtomicU64::new(0),
        })
    }

    /// Whether the file is still as `before` described it (length, modification time,
    /// inode).
    pub(crate) fn same_as(&self, before: &fs::Metadata) -> bool {
        Stamp::of(before) == *self.stamp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open file.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Where it is.
    pub(crate) fn path(&self) -> PathBuf {
        self.path.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Writes verified chunk bytes at `offset`; with `write_behind`, every
    /// [`WRITE_BEHIND_STEP`] bytes starts writing the file's dirty pages to the disk
    /// (`sync_file_range`, not waiting), so a later [`DataFile::sync`] finds little left.
    pub(crate) fn write_at(&self, data: &[u8], offset: u64, write_behind: bool) -> Result<(), StoreError> {
        self.file
            .write_all_at(data, offset)
            .map_err(io_err("write", &self.path()))?;
        if write_behind {
            let len = data.len() as u64;
            let before = self.unstarted.fetch_add(len, Ordering::Relaxed);
            if before + len >= WRITE_BEHIND_STEP {
                self.unstarted.store(0, Ordering::Relaxed);
                // Offset 0, length 0: the whole file.
                start_writeback(&self.file, 0, 0);
            }
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(io_err("read", &self.path()))
    }

    /// Waits until every byte written is on the disk.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(io_err("sync", &self.path()))
    }

    /// The file, complete and checked, becomes the user's finished file at `path`: from
    /// now on someone else may change it, and sends check for that.
    pub(crate) fn hand_over(&self, path: &Path) {
        if let Ok(meta) = self.file.metadata() {
            *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = Stamp::of(&meta);
        }
        path.clone_into(&mut self.path.lock().unwrap_or_else(PoisonError::into_inner));
        self.ours.store(false, Ordering::Relaxed);
    }

    /// Whether the file may have been changed by someone else since it was checked (the
    /// answer stays yes once it is). A partial file is ours alone: never.
    pub(crate) fn changed_behind_us(&self, manifest: &Manifest) -> bool {
        if self.ours.load(Ordering::Relaxed) {
            return false;
        }
        if self.changed.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.file.metadata().map(|m| Stamp::of(&m));
        let same = now
            .as_ref()
            .is_ok_and(|now| *now == *self.stamp.lock().unwrap_or_else(PoisonError::into_inner));
        if !same && !self.changed.swap(true, Ordering::Relaxed) {
            error!(
                file = %Quoted(&self.path()),
                name = %Quoted(Path::new(manifest.name())),
                "the file changed after it was checked: every chunk is verified before it is sent from now on, and one that does not match is not sent"
            );
        }
        !same
    }

    /// Chunk `id`'s bytes read and verified against `manifest`; `None` if they do not
    /// match (the file was changed).
    pub(crate) fn read_verified(
        &self,
        manifest: &Manifest,
        id: ChunkId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let layout = manifest.layout();
        let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; len as usize];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err("read", &self.path())(e)),
        }
        Ok(manifest.verify_chunk(id, &buf).then_some(buf))
    }
}

/// Starts write-out of a range without waiting for it (Linux); elsewhere a no-op. Only a
/// hint: errors are left for the sync that follows to report.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is open for as long as `file` is borrowed, and the call
        // takes no pointers; it only starts write-out of the file's own pages.
        let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}
