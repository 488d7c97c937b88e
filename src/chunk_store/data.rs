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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use super::budget::locked;
use super::files::io_err;
pub(crate) use super::part::Part;
use super::part::Stamp;
use super::StoreError;
use crate::manifest::{ChunkId, Manifest};
use crate::thread_usage::Waits;

/// The files holding the swarm's bytes (see the module docs): one for a shared file, one
/// per non-empty file for a tree, in stream order.
#[derive(Debug)]
pub(crate) struct DataFile {
    parts: Vec<Part>,
    /// Bytes written since write-out was last started.
    unstarted: AtomicU64,
    /// The parts written since they were last synced, each once (a tree's sync looks at
    /// these, not at each of its files).
    dirty: std::sync::Mutex<Vec<usize>>,
    /// Held by every sync: one that finds a file clean knows an earlier one finished.
    syncing: std::sync::Mutex<()>,
}

/// Write-out is started once this much has been written since the last start: one call
/// for the whole file then, so the disk gets large writes and the writer few calls
/// (chunks arrive in random order; on ext4, capped, one call per chunk cost a peer about
/// 10.5 s of CPU per GiB, one per 4 MiB about 7.5 s: BENCHMARKS.md).
pub(crate) const WRITE_BEHIND_STEP: u64 = 4 << 20;

/// A sync with more files written than this syncs their file system instead.
const SYNCFS_ABOVE: usize = 32;

impl DataFile {
    /// Opens an existing file read-only (the owner's FILE, a peer's finished file).
    pub(crate) fn open_read(path: &Path) -> Result<DataFile, StoreError> {
        Ok(DataFile::of_parts(vec![Part::open_read(
            path,
            0,
            &Arc::default(),
        )?]))
    }

    /// Opens or creates the file a peer downloads into (see [`Part::open_partial`]).
    pub(crate) fn open_partial(path: &Path, len: u64) -> Result<DataFile, StoreError> {
        Ok(DataFile::of_parts(vec![Part::open_partial(
            path,
            0,
            len,
            &Arc::default(),
        )?]))
    }

    /// A tree's data: its non-empty files, in stream order.
    pub(crate) fn of_parts(parts: Vec<Part>) -> DataFile {
        super::budget::reserve_descriptors(parts.len());
        let dirty = (0..parts.len())
            .filter(|&i| parts[i].dirty.load(Ordering::Acquire))
            .collect();
        DataFile {
            dirty: std::sync::Mutex::new(dirty),
            parts,
            unstarted: AtomicU64::new(0),
            syncing: std::sync::Mutex::new(()),
        }
    }

    /// The parts, in stream order.
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The parts that overlap `offset..offset + len`, with their indices and shares (see
    /// [`Part::share`]).
    fn shares(&self, offset: u64, len: u64) -> impl Iterator<Item = (usize, &Part, (u64, usize, usize))> {
        let first = self.parts.partition_point(|p| p.start + p.len <= offset);
        self.parts[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, p)| p.start < offset + len)
            .filter_map(move |(k, p)| p.share(offset, len).map(|s| (first + k, p, s)))
    }

    /// The indices of the parts that overlap `offset..offset + len`.
    pub(crate) fn part_indices(&self, offset: u64, len: u64) -> impl Iterator<Item = usize> + '_ {
        self.shares(offset, len).map(|(i, _, _)| i)
    }

    /// The one file holding all of `offset..offset + len`, and where the range starts in
    /// it; `None` if the range spans files.
    pub(crate) fn within_one(&self, offset: u64, len: u64) -> Option<(Arc<File>, u64)> {
        let mut shares = self.shares(offset, len);
        match (shares.next(), shares.next()) {
            (Some((_, p, (at, 0, n))), None) if n as u64 == len => Some((p.file().ok()?, at)),
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
    pub(crate) fn first_file(&self) -> Option<Arc<File>> {
        self.parts.first().and_then(|p| p.file().ok())
    }

    /// Where it is: the one file, or the first of a tree's.
    pub(crate) fn path(&self) -> PathBuf {
        self.parts.first().map(Part::path).unwrap_or_default()
    }

    /// Writes verified chunk bytes at `offset`; with `write_behind`, every
    /// [`WRITE_BEHIND_STEP`] bytes starts writing the dirty pages to the disk
    /// (`sync_file_range`, not waiting), so a later [`DataFile::sync`] finds little left.
    /// What it waited for (other threads' writes into the same file, its own writes) is
    /// counted in `waits`.
    pub(crate) fn write_at(
        &self,
        data: &[u8],
        offset: u64,
        write_behind: bool,
        waits: &mut Waits,
    ) -> Result<(), StoreError> {
        let len = data.len() as u64;
        for (i, part, (at, from, n)) in self.shares(offset, len) {
            let _one_at_a_time = waits.lock(&part.writing);
            let bytes = &data[from..from + n];
            // A file that was there before this run (resumed, or a finished one taken
            // back to be verified) may hold these very bytes already: a chunk fetched
            // again because another file's share of it was lost leaves them untouched
            // (still synced before the chunk is committed, as the last run may not have).
            let there = !part.fresh && part.holds(bytes, at);
            // A small file of a tree whose bytes all came in this chunk: made whole.
            let written = there || (at == 0 && part.write_new(bytes, waits)?);
            if !written {
                let file = part.file()?;
                waits
                    .write(|| file.write_all_at(bytes, at))
                    .map_err(io_err("write", &part.path()))?;
            }
            if !part.dirty.swap(true, Ordering::AcqRel) {
                locked(&self.dirty).push(i);
            }
        }
        if write_behind {
            let before = self.unstarted.fetch_add(len, Ordering::Relaxed);
            if before + len >= WRITE_BEHIND_STEP {
                self.unstarted.store(0, Ordering::Relaxed);
                for (_, part, _) in self.shares(offset, len) {
                    // Offset 0, length 0: the whole file.
                    if let Ok(file) = part.file() {
                        start_writeback(&file, 0, 0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        let len = buf.len() as u64;
        let mut got = 0;
        for (_, part, (at, from, n)) in self.shares(offset, len) {
            part.file()?
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

    /// Waits until every byte written is on the disk: each file written since the last
    /// sync is synced, or, when more than [`SYNCFS_ABOVE`] are (a tree of small files),
    /// their whole file system at once (`syncfs`: one journal commit, not thousands).
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut dirty = std::mem::take(&mut *locked(&self.dirty));
        // A part synced alone (`sync_part`) or listed again after a failed sync may be
        // here twice.
        dirty.sort_unstable();
        dirty.dedup();
        // What is not synced is listed again for the next sync.
        let relist = |from: &[usize]| locked(&self.dirty).extend_from_slice(from);
        if dirty.len() > SYNCFS_ABOVE {
            let file = match self.parts[dirty[0]].file() {
                Ok(file) => file,
                Err(e) => {
                    relist(&dirty);
                    return Err(e);
                }
            };
            for &i in &dirty {
                self.parts[i].dirty.store(false, Ordering::Release);
            }
            if let Err(e) = rustix::fs::syncfs(&*file) {
                for &i in &dirty {
                    self.parts[i].dirty.store(true, Ordering::Release);
                }
                relist(&dirty);
                return Err(io_err("sync", &self.parts[dirty[0]].path())(e.into()));
            }
            return Ok(());
        }
        for (k, &i) in dirty.iter().enumerate() {
            if let Err(e) = self.parts[i].sync() {
                relist(&dirty[k..]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits until every byte written to part `i` is on the disk.
    pub(crate) fn sync_part(&self, i: usize) -> Result<(), StoreError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        self.parts.get(i).map_or(Ok(()), Part::sync)
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
        for (_, part, _) in self.shares(offset, len) {
            changed |= part.changed_behind_us(manifest.name());
        }
        changed
    }

    /// Whether any byte of `offset..offset + len` may hold data: not if a file holding
    /// some of it was made just now, else as the file systems report (`SEEK_DATA`): a range never written need not be read to know it holds no
    /// chunk. Where a file system cannot tell, every range counts as data.
    pub(crate) fn may_hold(&self, offset: u64, len: u64) -> bool {
        // A chunk with bytes in a file made just now is not held.
        if self.shares(offset, len).any(|(_, part, _)| part.fresh) {
            return false;
        }
        self.shares(offset, len).any(|(_, part, (at, _, n))| {
            let Ok(file) = part.file() else {
                return true;
            };
            match rustix::fs::seek(&*file, rustix::fs::SeekFrom::Data(at)) {
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
        for (_, part, (at, from, n)) in self.shares(offset, u64::from(len)) {
            match part.file()?.read_exact_at(&mut buf[from..from + n], at) {
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
