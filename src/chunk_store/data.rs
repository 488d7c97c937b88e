//! `DataFile`: the one file a node keeps the swarm's bytes in, chunk `id` at its offset in
//! the file. For a downloading peer it is `DIR/.swarmshare/partial` (sized to the file at
//! once, preallocated where the filesystem can) and then, renamed, the finished file; for
//! the owner it is the file it shares. Every chunk is written into it once, read from it
//! to be sent, and made durable by syncing it: the node's only copy of each byte.
//!
//! A tree's data is its files, one after the other: a peer downloads each non-empty file
//! into `DIR/.swarmshare/parts/<entry>` and moves it to its path in the tree once
//! complete; the owner serves from the tree's files. A chunk may span several files.
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

/// One file of the data: the bytes `start..start + len` of the swarm's stream.
#[derive(Debug)]
pub(crate) struct Part {
    start: u64,
    len: u64,
    file: Arc<File>,
    /// Where it is (errors name it); changes once, when a partial file is finished.
    path: Mutex<PathBuf>,
    /// Set once the file is found changed since it was checked.
    changed: AtomicBool,
    stamp: Mutex<Stamp>,
    /// Whether only this node writes the file (a peer's partial file, until it is handed
    /// over as the finished file): then nobody else changes it behind our back.
    ours: AtomicBool,
    /// Written since it was last synced (so a tree's sync skips its untouched files).
    dirty: AtomicBool,
}

/// The files holding the swarm's bytes (see the module docs): one for a shared file, one
/// per non-empty file for a tree, in stream order.
#[derive(Debug)]
pub(crate) struct DataFile {
    parts: Vec<Part>,
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

impl Part {
    /// An existing file, read-only (the owner's, a peer's finished one), holding the
    /// stream's bytes from `start`.
    pub(crate) fn open_read(path: &Path, start: u64) -> Result<Part, StoreError> {
        let file = open_regular(path, false, false).map_err(io_err("open", path))?;
        Part::new(file, path, start, false)
    }

    /// The file a peer downloads `len` bytes into (opened or created), sized at once and
    /// preallocated where the filesystem can (so a full disk shows at the start).
    pub(crate) fn open_partial(path: &Path, start: u64, len: u64) -> Result<Part, StoreError> {
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
        Part::new(file, path, start, true)
    }

    /// A file already open (a tree's finished file, opened without following symlinks).
    pub(crate) fn from_file(file: File, path: &Path, start: u64, ours: bool) -> Result<Part, StoreError> {
        if !file.metadata().map_err(io_err("inspect", path))?.is_file() {
            return Err(StoreError::Occupied(path.to_owned()));
        }
        Part::new(file, path, start, ours)
    }

    fn new(file: File, path: &Path, start: u64, ours: bool) -> Result<Part, StoreError> {
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        Ok(Part {
            start,
            len: meta.len(),
            file: Arc::new(file),
            path: Mutex::new(path.to_owned()),
            changed: AtomicBool::new(false),
            stamp: Mutex::new(Stamp::of(&meta)),
            ours: AtomicBool::new(ours),
            // Whatever an earlier run wrote may not be on the disk yet.
            dirty: AtomicBool::new(ours),
        })
    }

    /// The open file.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Where it is.
    pub(crate) fn path(&self) -> PathBuf {
        self.path.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Where its bytes start in the stream, and how many it holds.
    pub(crate) fn range(&self) -> (u64, u64) {
        (self.start, self.len)
    }

    /// Whether it is still this node's partial file, not yet handed over.
    pub(crate) fn is_ours(&self) -> bool {
        self.ours.load(Ordering::Relaxed)
    }

    /// Waits until every byte written to it is on the disk.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.file.sync_data() {
                self.dirty.store(true, Ordering::Release);
                return Err(io_err("sync", &self.path())(e));
            }
        }
        Ok(())
    }

    /// The file, complete and checked, is the user's at `path` from now on: someone else
    /// may change it, and sends check for that.
    pub(crate) fn hand_over(&self, path: &Path) {
        if let Ok(meta) = self.file.metadata() {
            *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = Stamp::of(&meta);
        }
        path.clone_into(&mut self.path.lock().unwrap_or_else(PoisonError::into_inner));
        self.ours.store(false, Ordering::Relaxed);
    }

    /// Whether someone else may have changed it since it was checked (the answer stays
    /// yes once it is). A partial file is ours alone: never.
    fn changed_behind_us(&self, name: &str) -> bool {
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
                name = %Quoted(Path::new(name)),
                "the file changed after it was checked: every chunk is verified before it is sent from now on, and one that does not match is not sent"
            );
        }
        !same
    }

    /// This part's share of `offset..offset + len`: (offset in the part, offset in the
    /// range, length), if they overlap.
    fn share(&self, offset: u64, len: u64) -> Option<(u64, usize, usize)> {
        let from = offset.max(self.start);
        let to = (offset + len).min(self.start + self.len);
        (from < to).then(|| (from - self.start, (from - offset) as usize, (to - from) as usize))
    }
}

impl DataFile {
    /// Opens an existing file read-only (the owner's FILE, a peer's finished file).
    pub(crate) fn open_read(path: &Path) -> Result<DataFile, StoreError> {
        Ok(DataFile::of_parts(vec![Part::open_read(path, 0)?]))
    }

    /// Opens or creates the file a peer downloads into (see [`Part::open_partial`]).
    pub(crate) fn open_partial(path: &Path, len: u64) -> Result<DataFile, StoreError> {
        Ok(DataFile::of_parts(vec![Part::open_partial(path, 0, len)?]))
    }

    /// A tree's data: its non-empty files, in stream order.
    pub(crate) fn of_parts(parts: Vec<Part>) -> DataFile {
        DataFile {
            parts,
            unstarted: AtomicU64::new(0),
        }
    }

    /// The parts, in stream order.
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The parts that overlap `offset..offset + len`, with their shares (see
    /// [`Part::share`]).
    fn shares(&self, offset: u64, len: u64) -> impl Iterator<Item = (&Part, (u64, usize, usize))> {
        let first = self.parts.partition_point(|p| p.start + p.len <= offset);
        self.parts[first..]
            .iter()
            .take_while(move |p| p.start < offset + len)
            .filter_map(move |p| p.share(offset, len).map(|s| (p, s)))
    }

    /// The indices of the parts that overlap `offset..offset + len`.
    pub(crate) fn part_indices(&self, offset: u64, len: u64) -> impl Iterator<Item = usize> + '_ {
        let first = self.parts.partition_point(|p| p.start + p.len <= offset);
        (first..self.parts.len())
            .take_while(move |&i| self.parts[i].start < offset + len)
            .filter(move |&i| self.parts[i].share(offset, len).is_some())
    }

    /// The one file holding all of `offset..offset + len`, and where the range starts in
    /// it; `None` if the range spans files.
    pub(crate) fn within_one(&self, offset: u64, len: u64) -> Option<(&Arc<File>, u64)> {
        let mut shares = self.shares(offset, len);
        match (shares.next(), shares.next()) {
            (Some((p, (at, 0, n))), None) if n as u64 == len => Some((&p.file, at)),
            _ => None,
        }
    }

    /// Whether the file it was made from is still as `before` described it (length,
    /// modification time, inode): the owner's one shared file.
    pub(crate) fn same_as(&self, before: &fs::Metadata) -> bool {
        self.parts.len() == 1
            && Stamp::of(before) == *self.parts[0].stamp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The one file, or the first of a tree's.
    pub(crate) fn first_file(&self) -> Option<&File> {
        self.parts.first().map(|p| &*p.file)
    }

    /// Where it is: the one file, or the first of a tree's.
    pub(crate) fn path(&self) -> PathBuf {
        self.parts.first().map(Part::path).unwrap_or_default()
    }

    /// Writes verified chunk bytes at `offset`; with `write_behind`, every
    /// [`WRITE_BEHIND_STEP`] bytes starts writing the dirty pages to the disk
    /// (`sync_file_range`, not waiting), so a later [`DataFile::sync`] finds little left.
    pub(crate) fn write_at(&self, data: &[u8], offset: u64, write_behind: bool) -> Result<(), StoreError> {
        let len = data.len() as u64;
        for (part, (at, from, n)) in self.shares(offset, len) {
            part.file
                .write_all_at(&data[from..from + n], at)
                .map_err(io_err("write", &part.path()))?;
            part.dirty.store(true, Ordering::Release);
        }
        if write_behind {
            let before = self.unstarted.fetch_add(len, Ordering::Relaxed);
            if before + len >= WRITE_BEHIND_STEP {
                self.unstarted.store(0, Ordering::Relaxed);
                for (part, _) in self.shares(offset, len) {
                    // Offset 0, length 0: the whole file.
                    start_writeback(&part.file, 0, 0);
                }
            }
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        let len = buf.len() as u64;
        let mut got = 0;
        for (part, (at, from, n)) in self.shares(offset, len) {
            part.file
                .read_exact_at(&mut buf[from..from + n], at)
                .map_err(io_err("read", &part.path()))?;
            got += n;
        }
        if got != buf.len() {
            let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the range is past the data's end");
            return Err(io_err("read", &self.path())(e));
        }
        Ok(())
    }

    /// Waits until every byte written is on the disk.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.parts.iter().try_for_each(Part::sync)
    }

    /// The one file, complete and checked, is the user's finished file at `path`.
    pub(crate) fn hand_over(&self, path: &Path) {
        if let [one] = &self.parts[..] {
            one.hand_over(path);
        }
    }

    /// Whether a file holding any of `offset..offset + len` may have been changed by
    /// someone else since it was checked.
    pub(crate) fn changed_behind_us(&self, manifest: &Manifest, offset: u64, len: u64) -> bool {
        let mut changed = false;
        for (part, _) in self.shares(offset, len) {
            changed |= part.changed_behind_us(manifest.name());
        }
        changed
    }

    /// Whether any byte of `offset..offset + len` may hold data, as the file systems
    /// report (`SEEK_DATA`): a range never written need not be read to know it holds no
    /// chunk. Where a file system cannot tell, every range counts as data.
    pub(crate) fn may_hold(&self, offset: u64, len: u64) -> bool {
        self.shares(offset, len).any(|(part, (at, _, n))| {
            match rustix::fs::seek(&*part.file, rustix::fs::SeekFrom::Data(at)) {
                Ok(next) => next < at + n as u64,
                // No data at or after `at`.
                Err(e) if e == rustix::io::Errno::NXIO => false,
                Err(_) => true,
            }
        })
    }

    /// Chunk `id`'s bytes read and verified against `manifest`; `None` if they do not
    /// match (a file was changed).
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
        for (part, (at, from, n)) in self.shares(offset, u64::from(len)) {
            match part.file.read_exact_at(&mut buf[from..from + n], at) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(io_err("read", &part.path())(e)),
            }
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
