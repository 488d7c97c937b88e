//! `Part`: one file of a node's data, holding the stream's bytes `start..start + len`
//! (see [`super::data`]).
//!
//! A part's file is opened when it is first needed and may be closed again to keep the
//! node within its budget of open files ([`super::budget`]). A chunk being sent keeps its
//! file open until it is sent. A file opened again is checked to be the same file (inode): if
//! it is not, a partial file is an error, a finished one counts as changed. A tree's part
//! file is created on its first write (so a tree of many files starts at once).

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::error;

use super::budget::{locked, Budget, Slot};
use super::files::io_err;
use super::unnamed;
use super::StoreError;
use crate::text::Quoted;
use crate::thread_usage::Waits;

/// What identifies a file's contents as checked: if any of these changed, so may they.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ino: u64,
}

impl Stamp {
    pub(super) fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// Opens `path` without following a symlink at its last component; only a regular file.
pub(super) fn open_regular(path: &Path, write: bool, create: bool) -> io::Result<File> {
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

/// One file of the data.
#[derive(Debug)]
pub(crate) struct Part {
    pub(super) start: u64,
    pub(super) len: u64,
    file: Slot,
    budget: Arc<Budget>,
    /// Where it is (errors name it); changes once, when a partial file is finished.
    path: Mutex<PathBuf>,
    /// Set once the file is found changed since it was checked.
    changed: AtomicBool,
    pub(super) stamp: Mutex<Stamp>,
    /// Whether only this node writes the file (a peer's partial file, until it is handed
    /// over as the finished file): then nobody else changes it behind our back.
    ours: AtomicBool,
    /// Written since it was last synced (so a tree's sync skips its untouched files).
    pub(super) dirty: AtomicBool,
    /// Made just now: it holds nothing yet, so nothing in it needs verifying.
    pub(super) fresh: bool,
    /// Held by every write into the file: writes to one file wait for its inode lock,
    /// which the kernel spins for while the holder copies; stores on several pool threads
    /// writing one file spun away up to half of a peer's CPU (1 GiB, uncapped). Waiting
    /// here sleeps instead. Writes to different files (a tree's) still run side by side.
    pub(super) writing: Mutex<()>,
    /// Made without a name (see [`Part::write_new`]) and not linked into place yet: held
    /// open, as it cannot be opened again.
    unnamed: AtomicBool,
}

impl Part {
    /// An existing file, read-only (the owner's, a peer's finished one), holding the
    /// stream's bytes from `start`.
    pub(crate) fn open_read(path: &Path, start: u64, budget: &Arc<Budget>) -> Result<Part, StoreError> {
        let file = open_regular(path, false, false).map_err(io_err("open", path))?;
        Part::new(file, path, start, false, budget)
    }

    /// The file a peer downloads `len` bytes into (opened or created), sized at once and
    /// preallocated where the filesystem can (so a full disk shows at the start).
    pub(crate) fn open_partial(
        path: &Path,
        start: u64,
        len: u64,
        budget: &Arc<Budget>,
    ) -> Result<Part, StoreError> {
        let existed = fs::symlink_metadata(path).is_ok();
        let file = open_regular(path, true, true).map_err(io_err("open", path))?;
        // One already of its length with every block in place was sized and preallocated
        // when it was made (or is a finished file taken back to be verified): it is left
        // alone, times included.
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        if meta.len() != len {
            file.set_len(len).map_err(io_err("size", path))?;
        }
        if meta.len() != len || meta.blocks().saturating_mul(512) < len {
            match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::NOSPC => {
                    return Err(io_err("preallocate", path)(e.into()));
                }
                // Not every filesystem preallocates; the file is sparse there.
                Err(_) => {}
            }
        }
        let mut part = Part::new(file, path, start, true, budget)?;
        part.fresh = !existed;
        Ok(part)
    }

    /// A tree's file to download `len` bytes into, created at `path` on its first write
    /// (see the module docs).
    pub(crate) fn lazy_partial(path: &Path, start: u64, len: u64, budget: &Arc<Budget>) -> Part {
        Part {
            start,
            len,
            file: Arc::new(Mutex::new(None)),
            budget: Arc::clone(budget),
            path: Mutex::new(path.to_owned()),
            changed: AtomicBool::new(false),
            // Inode 0: not made yet.
            stamp: Mutex::new(Stamp {
                len,
                mtime: (0, 0),
                ino: 0,
            }),
            ours: AtomicBool::new(true),
            dirty: AtomicBool::new(false),
            fresh: true,
            writing: Mutex::new(()),
            unnamed: AtomicBool::new(false),
        }
    }

    /// Writes `data`, all of a lazy part's bytes, into a new file without a name
    /// (`O_TMPFILE`, in the directory its part file would be in), if its file is not made
    /// yet and the budget has room to hold it open: `false` if not (then it is written as
    /// any other). Such a file is complete at once and is linked to its place in the tree
    /// by the next commit, in `parts/` ([`Part::link_into`]), and then moved as any other,
    /// so it is never created, sized or stated under a name before it is whole. A crash
    /// before the link leaves nothing behind (its chunk is not committed, and is fetched
    /// again).
    pub(super) fn write_new(&self, data: &[u8], waits: &mut Waits) -> Result<bool, StoreError> {
        if data.len() as u64 != self.len || !self.is_ours() {
            return Ok(false);
        }
        // Locked as `file` locks them: the path, then the slot.
        let path = locked(&self.path);
        let mut slot = locked(&self.file);
        if slot.is_some() || locked(&self.stamp).ino != 0 || !self.budget.pin() {
            return Ok(false);
        }
        // Made in `parts/`, where the store found it can (see `unnamed`); if it cannot
        // now (descriptors or space ran out), the named file fails or succeeds as ever.
        let made = path.parent().map(unnamed::create);
        let Some(Ok(file)) = made else {
            self.budget.unpin_unused();
            return Ok(false);
        };
        use std::os::unix::fs::FileExt;
        if let Err(e) = waits.write(|| file.write_all_at(data, 0)) {
            self.budget.unpin_unused();
            return Err(io_err("write", &path)(e));
        }
        *slot = Some(Arc::new(file));
        self.unnamed.store(true, Ordering::Release);
        Ok(true)
    }

    /// Whether its file holds `bytes` at `at` already (`false` if it cannot be read).
    pub(super) fn holds(&self, bytes: &[u8], at: u64) -> bool {
        use std::os::unix::fs::FileExt;
        let mut there = vec![0; bytes.len()];
        self.file()
            .is_ok_and(|f| f.read_exact_at(&mut there, at).is_ok() && there == bytes)
    }

    /// Whether its file has no name yet (see [`Part::write_new`]).
    pub(crate) fn is_unnamed(&self) -> bool {
        self.unnamed.load(Ordering::Acquire)
    }

    /// Links its file, made without a name (see [`Part::write_new`]), as `name` in
    /// `parent`, never over anything there; [`Part::named`] follows.
    pub(crate) fn link_into(&self, parent: &OwnedFd, name: &str) -> Result<(), rustix::io::Errno> {
        let file = locked(&self.file).clone().ok_or(rustix::io::Errno::BADF)?;
        unnamed::link(&file, self.budget.linking(), parent, name)
    }

    /// Makes a lazy part's file (see [`Part::lazy_partial`]), sized at once.
    fn create(&self, path: &Path) -> Result<File, StoreError> {
        let file = open_regular(path, true, true).map_err(io_err("create", path))?;
        file.set_len(self.len).map_err(io_err("size", path))?;
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        *locked(&self.stamp) = Stamp::of(&meta);
        Ok(file)
    }

    /// A file already open (a tree's finished file, opened without following symlinks).
    pub(crate) fn from_file(
        file: File,
        path: &Path,
        start: u64,
        budget: &Arc<Budget>,
    ) -> Result<Part, StoreError> {
        if !file.metadata().map_err(io_err("inspect", path))?.is_file() {
            return Err(StoreError::Occupied(path.to_owned()));
        }
        Part::new(file, path, start, false, budget)
    }

    fn new(
        file: File,
        path: &Path,
        start: u64,
        ours: bool,
        budget: &Arc<Budget>,
    ) -> Result<Part, StoreError> {
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        let part = Part {
            start,
            len: meta.len(),
            file: Arc::new(Mutex::new(Some(Arc::new(file)))),
            budget: Arc::clone(budget),
            path: Mutex::new(path.to_owned()),
            changed: AtomicBool::new(false),
            stamp: Mutex::new(Stamp::of(&meta)),
            ours: AtomicBool::new(ours),
            // Whatever an earlier run wrote may not be on the disk yet.
            dirty: AtomicBool::new(ours),
            fresh: false,
            writing: Mutex::new(()),
            unnamed: AtomicBool::new(false),
        };
        budget.opened(&part.file);
        Ok(part)
    }

    /// Runs `rename` (moving the file from its path to `to`) with the path locked, and
    /// takes `to` as its path if it succeeds: a reader that opens the file again meanwhile
    /// waits, then finds it where it is.
    pub(crate) fn move_to(
        &self,
        to: &Path,
        rename: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut path = locked(&self.path);
        rename(&path)?;
        to.clone_into(&mut path);
        Ok(())
    }

    /// The open file, opened again if it was closed (see the module docs).
    pub(crate) fn file(&self) -> Result<Arc<File>, StoreError> {
        if let Some(file) = locked(&self.file).as_ref() {
            return Ok(Arc::clone(file));
        }
        // The path stays locked until the file is open (see `move_to`).
        let path_guard = locked(&self.path);
        let path = path_guard.clone();
        // Made meanwhile (`write_new` holds the path while it makes the file).
        if let Some(file) = locked(&self.file).as_ref() {
            return Ok(Arc::clone(file));
        }
        if self.is_unnamed() {
            // Never closed (see `write_new`): nothing to open again, and a file made
            // here would lose its bytes.
            let e = io::Error::other("a file without a name was closed before it was placed");
            return Err(io_err("open", &path)(e));
        }
        let ours = self.is_ours();
        let file = if ours && locked(&self.stamp).ino == 0 {
            self.create(&path)?
        } else {
            open_regular(&path, ours, false).map_err(io_err("open", &path))?
        };
        let meta = file.metadata().map_err(io_err("inspect", &path))?;
        if meta.ino() != locked(&self.stamp).ino {
            if ours {
                let e = io::Error::other("the partial file was replaced by another");
                return Err(io_err("open", &path)(e));
            }
            self.changed.store(true, Ordering::Relaxed);
        }
        let file = Arc::new(file);
        *locked(&self.file) = Some(Arc::clone(&file));
        self.budget.opened(&self.file);
        Ok(file)
    }

    /// When the file was last modified, as it was when opened.
    pub(crate) fn modified(&self) -> Option<std::time::SystemTime> {
        let stamp = *locked(&self.stamp);
        let (secs, nanos) = (
            u64::try_from(stamp.mtime.0).ok()?,
            u32::try_from(stamp.mtime.1).ok()?,
        );
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
    }

    /// Its contents are not to be trusted as checked: every chunk from it is verified
    /// before it is sent.
    pub(crate) fn distrust(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Where it is.
    pub(crate) fn path(&self) -> PathBuf {
        locked(&self.path).clone()
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
            if let Err(e) = self
                .file()
                .and_then(|f| f.sync_data().map_err(io_err("sync", &self.path())))
            {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The file, complete and checked, is the user's at `path` from now on: someone else
    /// may change it, and sends check for that.
    pub(crate) fn hand_over(&self, path: &Path) {
        // The new path first: a file closed meanwhile is opened again from there.
        path.clone_into(&mut locked(&self.path));
        if let Ok(meta) = self
            .file()
            .and_then(|f| f.metadata().map_err(io_err("inspect", path)))
        {
            *locked(&self.stamp) = Stamp::of(&meta);
        }
        self.ours.store(false, Ordering::Relaxed);
    }

    /// Its file, made without a name, was linked at its path ([`Part::link_into`]): it
    /// may be closed and opened again from there.
    pub(crate) fn named(&self) {
        if self.unnamed.swap(false, Ordering::AcqRel) {
            self.budget.unpin(&self.file);
        }
    }

    /// Whether someone else may have changed it since it was checked (the answer stays
    /// yes once it is). A partial file is ours alone: never.
    pub(super) fn changed_behind_us(&self, name: &str) -> bool {
        if self.is_ours() {
            return false;
        }
        // Known changed: no need to look again.
        if self.changed.load(Ordering::Relaxed) {
            return true;
        }
        let now = self
            .file()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| Stamp::of(&m));
        // Opening it again may have found another file.
        if self.changed.load(Ordering::Relaxed) {
            return true;
        }
        let same = now.as_ref().is_some_and(|now| *now == *locked(&self.stamp));
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
    pub(super) fn share(&self, offset: u64, len: u64) -> Option<(u64, usize, usize)> {
        let from = offset.max(self.start);
        let to = (offset + len).min(self.start + self.len);
        (from < to).then(|| (from - self.start, (from - offset) as usize, (to - from) as usize))
    }
}
