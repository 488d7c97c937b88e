//! A tree's files on a peer: each non-empty file is downloaded into
//! `DIR/.swarmshare/parts/<entry>` and moved to `DIR/NAME/<path>` once every chunk holding
//! its bytes is written (and synced), with mode 0644 or 0755 and nothing else; empty files
//! and empty directories are made when the store opens. A consumer can use a finished file
//! while the rest of the tree downloads.
//!
//! Every directory on the way to a file is opened relative to the one before it without
//! following a symlink (`openat` with `O_NOFOLLOW`), and a file is moved in with
//! `RENAME_NOREPLACE`: nothing is ever written through a symlink found in the destination,
//! nothing outside `DIR`, and no file already there is replaced.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::budget::Budget;
use super::data::{DataFile, Part};
use super::files::io_err;
use super::unnamed;
use super::StoreError;
use crate::chunk_set::ChunkSet;
use crate::manifest::{ChunkId, EntryKind, Manifest, Tree};

/// A tree's files smaller than this are made on their first write, larger ones at once.
const LAZY_BELOW: u64 = 1 << 20;

/// The parts directory's name inside the store directory.
pub(super) const PARTS_DIR: &str = "parts";

/// Which files of the tree are still downloading, and how many chunks each lacks.
#[derive(Debug)]
pub(super) struct TreeFiles {
    /// For each part of the data (non-empty files in stream order): its entry index.
    pub(super) entries: Vec<usize>,
    /// For each part: chunks holding its bytes not written yet; 0 once it is in place.
    missing: Vec<AtomicU32>,
    /// Chunks written since the store opened, so a chunk counts once.
    written: Mutex<ChunkSet>,
    /// Parts complete, to be moved into place once synced (by the next commit).
    pub(super) pending: Mutex<Vec<usize>>,
}

pub(super) fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

/// The directory `DIR/NAME/<parent of path>` opened one component at a time without
/// following symlinks, made where missing if `create`; `None` if missing and not
/// `create`. A symlink or a file on the way is refused, naming it.
pub(super) fn open_parent(
    dir: &Path,
    name: &str,
    path: &str,
    create: bool,
) -> Result<Option<OwnedFd>, StoreError> {
    let flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
    let mut fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| io_err("open", dir)(errno(e)))?;
    let mut at = dir.to_owned();
    let parents = path.rsplit_once('/').map_or("", |(p, _)| p);
    for c in std::iter::once(name).chain(parents.split('/').filter(|c| !c.is_empty())) {
        at.push(c);
        let open = |fd: &OwnedFd| rustix::fs::openat(fd, c, flags | OFlags::NOFOLLOW, Mode::empty());
        let next = match open(&fd) {
            Ok(next) => next,
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&fd, c, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err("create directory", &at)(errno(e))),
                }
                open(&fd).map_err(|e| in_the_way(&at, e))?
            }
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(in_the_way(&at, e)),
        };
        fd = next;
    }
    Ok(Some(fd))
}

/// A path where a directory belongs is a symlink or a file (or cannot be opened).
fn in_the_way(at: &Path, e: rustix::io::Errno) -> StoreError {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => StoreError::NotADirectory(at.to_owned()),
        e => io_err("open", at)(errno(e)),
    }
}

/// The last component of `path`.
pub(super) fn leaf(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, l)| l)
}

/// What is at `name` in `parent`, never following a symlink: its type and size.
fn stat_at(parent: &OwnedFd, name: &str) -> Result<Option<(FileType, u64)>, rustix::io::Errno> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode), st.st_size as u64))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses, before anything is downloaded, a destination where the tree cannot be made:
/// `DIR/NAME` or a directory in it that is a symlink or a file, or an entry's path taken by
/// something else (a file of the right size is left for the store to verify).
pub(super) fn check_destination(dir: &Path, manifest: &Manifest, tree: &Tree) -> Result<(), StoreError> {
    each_entry(dir, manifest, tree, false, |kind, found, at| {
        if found.is_none() || fits(kind, found) {
            Ok(())
        } else {
            Err(StoreError::Occupied(at))
        }
    })
}

/// Checks, once every file is complete, that each is still at its path (a regular file of
/// its size) and each empty directory too: a tree the user moved away or trimmed while it
/// downloaded is not called complete.
pub(super) fn check_finished(dir: &Path, manifest: &Manifest, tree: &Tree) -> Result<(), StoreError> {
    each_entry(dir, manifest, tree, true, |kind, found, at| {
        if fits(kind, found) {
            Ok(())
        } else {
            Err(StoreError::Vanished(at))
        }
    })
}

/// Looks at each entry's path in `DIR/NAME`, its parent directory opened once for the
/// entries that share it and never through a symlink, and hands `judge` the entry's kind,
/// what is there (`None`: nothing, its parent included) and the path. A parent that is not
/// a plain directory is an error, or with `lenient` as good as missing.
fn each_entry(
    dir: &Path,
    manifest: &Manifest,
    tree: &Tree,
    lenient: bool,
    mut judge: impl FnMut(EntryKind, Option<(FileType, u64)>, PathBuf) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let name = manifest.name();
    let mut last: Option<(String, Option<OwnedFd>)> = None;
    for e in tree.entries() {
        let at = dir.join(name).join(&e.path);
        // An empty directory is looked at as a child of its own parent, like a file.
        let parent_path = e.path.rsplit_once('/').map_or("", |(p, _)| p);
        if last.as_ref().is_none_or(|(p, _)| p != parent_path) {
            let parent = match open_parent(dir, name, &e.path, false) {
                Err(StoreError::NotADirectory(_)) if lenient => None,
                opened => opened?,
            };
            last = Some((parent_path.to_owned(), parent));
        }
        let found = match &last {
            Some((_, Some(parent))) => {
                stat_at(parent, leaf(&e.path)).map_err(|err| io_err("inspect", &at)(errno(err)))?
            }
            _ => None,
        };
        judge(e.kind, found, at)?;
    }
    Ok(())
}

/// Whether `found` is what an entry of `kind` needs at its path.
fn fits(kind: EntryKind, found: Option<(FileType, u64)>) -> bool {
    match (found, kind) {
        (Some((FileType::RegularFile, len)), EntryKind::File { size, .. }) => len == size,
        (Some((FileType::Directory, _)), EntryKind::EmptyDir) => true,
        _ => false,
    }
}

/// Opens file `path` of the tree read-only where it already is, finished, never through a
/// symlink; `None` if it is not there.
fn open_finished(dir: &Path, name: &str, path: &str) -> Result<Option<(File, PathBuf)>, StoreError> {
    let Some(parent) = open_parent(dir, name, path, false)? else {
        return Ok(None);
    };
    let at = dir.join(name).join(path);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::openat(&parent, leaf(path), flags, Mode::empty()) {
        Ok(fd) => Ok(Some((File::from(fd), at))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(io_err("open", &at)(errno(e))),
    }
}

/// The data of a tree a peer downloads: for each non-empty file, its part file in
/// `parts/` if there is one (an earlier run's download), else the finished file at its
/// path in the tree, else a new part file. Empty files and directories are made now.
pub(super) fn open_data(
    dir: &Path,
    root: &Path,
    manifest: &Manifest,
    tree: &Tree,
) -> Result<(DataFile, Vec<usize>), StoreError> {
    let name = manifest.name();
    let parts_dir = root.join(PARTS_DIR);
    super::ensure_dir(&parts_dir)?;
    let mut parts = Vec::new();
    let mut entries = Vec::new();
    let budget = std::sync::Arc::new(Budget::with_linking(unnamed::probe(&parts_dir)));
    // A fresh download (no parts yet, no `DIR/NAME`) need not look for each file: two
    // looks instead of three system calls per file (a fifth of a peer's start-up CPU for
    // a tree of 20,000 files).
    let any_parts = std::fs::read_dir(&parts_dir)
        .map_err(io_err("read", &parts_dir))?
        .next()
        .is_some();
    let tree_there = open_parent(dir, name, "", false)?.is_some();
    for (i, e) in tree.entries().iter().enumerate() {
        match e.kind {
            EntryKind::File {
                size: 0, executable, ..
            } => make_empty_file(dir, name, &e.path, executable)?,
            EntryKind::File { size, offset, .. } => {
                let part = parts_dir.join(format!("{i:07}"));
                let existing = any_parts && std::fs::symlink_metadata(&part).is_ok_and(|m| m.is_file());
                let finished = if existing || !tree_there {
                    None
                } else {
                    open_finished(dir, name, &e.path)?
                };
                parts.push(match finished {
                    Some((file, at)) => {
                        let part = Part::from_file(file, &at, offset, &budget)?;
                        if part.range().1 != size {
                            return Err(StoreError::Occupied(at));
                        }
                        part
                    }
                    // Large files are made and preallocated now (a full disk shows at
                    // once); small ones on their first write, so many start at once.
                    None if existing || size >= LAZY_BELOW => {
                        Part::open_partial(&part, offset, size, &budget)?
                    }
                    None => Part::lazy_partial(&part, offset, size, &budget),
                });
                entries.push(i);
            }
            EntryKind::EmptyDir => {
                let inner = format!("{}/.", e.path);
                open_parent(dir, name, &inner, true)?;
            }
        }
    }
    // A tree of empty files only has no chunks; Layout refuses it before this.
    Ok((DataFile::of_parts(parts), entries))
}

/// A tree's data as it is on disk, for a read-only look (`status`): each non-empty file
/// that is there, downloading (`parts/`) or finished; and how many files are finished
/// (empty ones included) of how many.
pub(super) fn existing_data(
    dir: &Path,
    root: &Path,
    manifest: &Manifest,
    tree: &Tree,
) -> (DataFile, usize, usize) {
    let name = manifest.name();
    let (mut parts, mut finished, mut files) = (Vec::new(), 0, 0);
    let budget = std::sync::Arc::default();
    for (i, e) in tree.entries().iter().enumerate() {
        let EntryKind::File { size, offset, .. } = e.kind else {
            continue;
        };
        files += 1;
        let part = root.join(PARTS_DIR).join(format!("{i:07}"));
        if size > 0 {
            if let Ok(p) = Part::open_read(&part, offset, &budget) {
                parts.push(p);
                continue;
            }
        }
        if let Ok(Some((file, at))) = open_finished(dir, name, &e.path) {
            if let Ok(p) = Part::from_file(file, &at, offset, &budget) {
                if p.range().1 == size {
                    finished += 1;
                    if size > 0 {
                        parts.push(p);
                    }
                }
            }
        }
    }
    (DataFile::of_parts(parts), finished, files)
}

/// Makes the empty file `path` of the tree (an empty file is complete at once); one found
/// there, regular and empty, is kept.
fn make_empty_file(dir: &Path, name: &str, path: &str, executable: bool) -> Result<(), StoreError> {
    let parent =
        open_parent(dir, name, path, true)?.ok_or_else(|| StoreError::NoSuchDirectory(dir.to_owned()))?;
    let at = dir.join(name).join(path);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(&parent, leaf(path), flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => {
            rustix::fs::fchmod(&fd, mode(executable)).map_err(|e| io_err("set the mode of", &at)(errno(e)))
        }
        Err(rustix::io::Errno::EXIST) => match stat_at(&parent, leaf(path)) {
            Ok(Some((FileType::RegularFile, 0))) => Ok(()),
            _ => Err(StoreError::Occupied(at)),
        },
        Err(e) => Err(io_err("create", &at)(errno(e))),
    }
}

/// 0755 or 0644, less the process's umask (as any file this user makes).
pub(super) fn mode(executable: bool) -> Mode {
    Mode::from_raw_mode((if executable { 0o755 } else { 0o644 }) & !umask())
}

/// The process's umask, read once from `/proc/self/status` (setting it to read it would
/// race with other threads); 022 where that cannot be read.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
            & 0o777
    })
}

/// The chunks holding bytes of `offset..offset + len` of the stream.
fn chunk_span(manifest: &Manifest, offset: u64, len: u64) -> std::ops::RangeInclusive<ChunkId> {
    let size = u64::from(manifest.layout().chunk_size());
    if len == 0 {
        #[allow(clippy::reversed_empty_ranges)]
        return 1..=0;
    }
    // offset + len <= the stream's size (parts are checked against it), so both fit.
    let last = offset.saturating_add(len - 1) / size;
    ((offset / size) as ChunkId)..=(last.min(u64::from(ChunkId::MAX)) as ChunkId)
}

impl TreeFiles {
    /// The state of a tree whose store opened holding `have`: which files lack chunks.
    pub(super) fn new(
        manifest: &Manifest,
        data: &DataFile,
        entries: Vec<usize>,
        have: &ChunkSet,
    ) -> TreeFiles {
        let missing = data
            .parts()
            .iter()
            .map(|p| {
                let (start, len) = p.range();
                AtomicU32::new(
                    chunk_span(manifest, start, len)
                        .filter(|&id| !have.contains(id))
                        .count() as u32,
                )
            })
            .collect();
        TreeFiles {
            entries,
            missing,
            written: Mutex::new(have.clone()),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Counts chunk `id` as written; the parts it completes wait to be moved into place.
    pub(super) fn written(&self, manifest: &Manifest, data: &DataFile, id: ChunkId) {
        if !self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id)
        {
            return;
        }
        let layout = manifest.layout();
        let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
            return;
        };
        let done = data
            .part_indices(offset, u64::from(len))
            .filter(|&i| self.missing[i].fetch_sub(1, Ordering::AcqRel) == 1);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(done);
    }

    /// Whether parts wait to be moved into place.
    pub(super) fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Queues the parts complete but not in place (an earlier run stopped in between).
    pub(super) fn queue_complete(&self, data: &DataFile) {
        let done = (0..self.missing.len())
            .filter(|&i| self.missing[i].load(Ordering::Acquire) == 0 && data.parts()[i].is_ours());
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(done);
    }

    /// A finished file (not a part of ours) whose chunks did not all verify.
    pub(super) fn damaged_finished(&self, data: &DataFile) -> Option<PathBuf> {
        (0..self.missing.len())
            .find(|&i| self.missing[i].load(Ordering::Acquire) > 0 && !data.parts()[i].is_ours())
            .map(|i| data.parts()[i].path())
    }

    /// Whether every file is complete.
    pub(super) fn all_complete(&self) -> bool {
        self.missing.iter().all(|m| m.load(Ordering::Acquire) == 0)
    }
}
