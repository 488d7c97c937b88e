//! The budget of data files a node keeps open at once.
//!
//! A tree may have a quarter of a million files, more than a process may open: a part's
//! file (see [`super::part`]) is opened when it is first needed and closed again once
//! [`open_limit`] files opened after it are open (the oldest goes first). A file made
//! without a name (a tree's small file written whole, waiting for the commit to link it
//! into place) cannot be opened again: it is *pinned*, kept open and out of the queue,
//! and counts against the same limit; at most half of it may be pinned (past that, such
//! files are made with names, as the others).

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::unnamed::Linking;

/// Data files kept open at least, and at most, whatever the descriptor limit.
const OPEN_RANGE: (usize, usize) = (64, 16_384);
/// Descriptors left for sockets and everything else.
const OTHER_FILES: u64 = 512;

/// How many data files a node keeps open at once (a shared file is one; a tree's files
/// beyond this are closed and opened again as needed): its descriptor limit, raised once
/// to the hard limit, less [`OTHER_FILES`], within [`OPEN_RANGE`].
pub(crate) fn open_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        let room = limit.current.unwrap_or(u64::MAX).saturating_sub(OTHER_FILES);
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .clamp(OPEN_RANGE.0, OPEN_RANGE.1)
    })
}

/// Makes room in the process's descriptor table for the data files a node with `files`
/// of them keeps open (see [`open_limit`]), and the descriptors besides, now. The kernel
/// grows the table as descriptors are opened, doubling it, and while it grows every
/// thread opening a descriptor (a file, a socket) waits for an RCU grace period, often
/// milliseconds on a busy host: seven times for a tree of 20,000 files, each time in
/// the middle of the download. Once, at the start, it costs nothing that matters.
pub(crate) fn reserve_descriptors(files: usize) {
    // Below the limit: a descriptor at the limit cannot be asked for.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let want = files
        .min(open_limit())
        .saturating_add(OTHER_FILES as usize)
        .min(limit.saturating_sub(1));
    // A process's first 256 descriptors need no growing.
    if files < 64 || want <= 256 {
        return;
    }
    let Ok(want) = i32::try_from(want) else {
        return;
    };
    // A descriptor at `want` or above, closed again at once: the table keeps its size.
    // Only a hint; where it cannot be done the table grows as before.
    use rustix::fs::{Mode, OFlags};
    if let Ok(root) = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
        let _ = rustix::io::fcntl_dupfd_cloexec(&root, want);
    }
}

/// A part's open file, when it is open.
pub(super) type Slot = Arc<Mutex<Option<Arc<File>>>>;

/// `m` locked; a lock poisoned by a panic elsewhere is taken as it is.
pub(super) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The files a node's parts hold open: those that can be opened again, oldest first
/// (past the limit the oldest is closed), and how many are pinned; and whether (and how)
/// files without a name can be made and linked at all.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    open: Mutex<Open>,
    linking: Linking,
}

#[derive(Debug, Default)]
struct Open {
    queue: VecDeque<Slot>,
    pinned: usize,
}

impl Open {
    /// Closes the oldest files beyond the room the pinned ones leave (`keep` stays open).
    fn trim(&mut self, keep: Option<&Slot>) {
        let room = open_limit().saturating_sub(self.pinned).max(1);
        while self.queue.len() > room {
            if let Some(old) = self.queue.pop_front() {
                if !keep.is_some_and(|keep| Arc::ptr_eq(&old, keep)) {
                    locked(&old).take();
                }
            }
        }
    }
}

impl Budget {
    /// A budget whose files without a name are linked as `linking` says.
    pub(super) fn with_linking(linking: Linking) -> Budget {
        Budget {
            open: Mutex::default(),
            linking,
        }
    }

    /// How files without a name are linked into place.
    pub(super) fn linking(&self) -> Linking {
        self.linking
    }

    /// `slot`'s file was just opened: it counts, and the oldest beyond the limit close.
    pub(super) fn opened(&self, slot: &Slot) {
        let mut open = locked(&self.open);
        open.queue.push_back(Arc::clone(slot));
        open.trim(Some(slot));
    }

    /// Takes room for a file that cannot be opened again (the oldest other files close to
    /// make it), if files without a name can be linked at all and fewer than half the
    /// budget are pinned.
    pub(super) fn pin(&self) -> bool {
        if self.linking == Linking::Unable {
            return false;
        }
        let mut open = locked(&self.open);
        if open.pinned >= open_limit() / 2 {
            return false;
        }
        open.pinned += 1;
        open.trim(None);
        true
    }

    /// Gives back room taken by [`Budget::pin`] for a file that was not made after all.
    pub(super) fn unpin_unused(&self) {
        let mut open = locked(&self.open);
        open.pinned = open.pinned.saturating_sub(1);
    }

    /// A pinned file can be opened again (it has a name now): it joins the queue.
    pub(super) fn unpin(&self, slot: &Slot) {
        self.unpin_unused();
        self.opened(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_slots(slots: &[Slot]) -> usize {
        slots.iter().filter(|s| locked(s).is_some()).count()
    }

    #[test]
    fn pinned_files_make_room_so_the_limit_holds() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let budget = Budget::with_linking(Linking::ByProc);
        let slots: Vec<Slot> = (0..open_limit() + 10)
            .map(|_| Arc::new(Mutex::new(Some(Arc::clone(&file)))))
            .collect();
        for slot in &slots {
            budget.opened(slot);
        }
        assert_eq!(open_slots(&slots), open_limit(), "the oldest closed");
        for _ in 0..100 {
            assert!(budget.pin());
        }
        assert_eq!(open_slots(&slots), open_limit() - 100, "each pin closed one");
        let mut pinned = 100;
        while budget.pin() {
            pinned += 1;
        }
        assert_eq!(pinned, open_limit() / 2, "at most half pinned");
        assert_eq!(open_slots(&slots) + pinned, open_limit());
        // Unpinned, a file joins the queue like any other.
        let back: Slot = Arc::new(Mutex::new(Some(Arc::clone(&file))));
        budget.unpin(&back);
        assert!(locked(&back).is_some());
        assert_eq!(open_slots(&slots) + 1 + pinned - 1, open_limit());
    }

    #[test]
    fn nothing_is_pinned_where_files_without_a_name_cannot_be_linked() {
        assert!(!Budget::default().pin());
    }
}
