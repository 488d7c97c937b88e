//! The record of a commit's moves into the tree, `parts/placing`, so that a process killed
//! among them can start again.
//!
//! A chunk may hold the bytes of many files, and a small file whose bytes come whole in
//! one chunk is made without a name ([`super::unnamed`]) and linked straight to its path.
//! A commit killed after some files of a chunk reached their paths and before the others
//! did loses those others (a file without a name goes with the process): the chunk no
//! longer verifies, and the files already placed could not be told from someone else's.
//!
//! So before it moves anything, a commit appends the entries it is about to place to this
//! record, each with its file's device and inode, and syncs it; once every move is done it
//! removes the record. A store that opens and finds the record moves each listed file that
//! is at its path, is that very file (same device and inode: never something put there
//! since) and has no part back into `parts/` ([`recover`]): it is ours, and is verified
//! again as a part. Those
//! whose chunks verify are placed again as they are (not rewritten); the chunks that lost
//! bytes are fetched again, and written only into the files that lack them (a file that
//! was there before this run is compared first: [`super::data::DataFile::write_at`]), so
//! a file that had been placed keeps its bytes and times.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use tracing::info;

use super::files::io_err;
use super::tree_files::{errno, leaf, open_parent};
use super::StoreError;
use crate::manifest::{EntryKind, Tree};

/// The record's name in `parts/` (never a part's name: those are digits).
const RECORD: &str = "placing";

/// The most of a record read back: four bytes per entry, listed at most a few times
/// (a commit that failed part-way is followed by another that lists the rest again).
const MOST: u64 = 64 << 20;

/// One record entry's length: the entry index (u32), the file's device and inode (u64
/// each).
const ENTRY: usize = 4 + 8 + 8;

/// A file about to be placed: its entry index, and its file's device and inode.
pub(super) type Placing = (u32, u64, u64);

/// Appends `entries` to the record before they are moved, and with `sync` puts it on the
/// disk (its name too), so that a power cut among the moves leaves it as well.
pub(super) fn record(
    parts_fd: &OwnedFd,
    parts_dir: &Path,
    entries: &[Placing],
    sync: bool,
) -> Result<(), StoreError> {
    let at = parts_dir.join(RECORD);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parts_fd, RECORD, flags, Mode::from_raw_mode(0o600))
        .map_err(|e| io_err("open", &at)(errno(e)))?;
    let bytes: Vec<u8> = entries
        .iter()
        .flat_map(|&(entry, dev, ino)| {
            [&entry.to_be_bytes()[..], &dev.to_be_bytes(), &ino.to_be_bytes()].concat()
        })
        .collect();
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes).map_err(io_err("write", &at))?;
    if sync {
        file.sync_data().map_err(io_err("sync", &at))?;
        rustix::fs::fsync(parts_fd).map_err(|e| io_err("sync", parts_dir)(errno(e)))?;
    }
    Ok(())
}

/// Removes the record: every move it listed is done.
pub(super) fn clear(parts_fd: &OwnedFd, parts_dir: &Path) -> Result<(), StoreError> {
    match rustix::fs::unlinkat(parts_fd, RECORD, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("remove", &parts_dir.join(RECORD))(errno(e))),
    }
}

/// Undoes what a commit stopped part-way did: each file the record lists that is at its
/// path in `DIR/NAME` and has no part goes back into `parts/` under its part's name
/// (never through a symlink, never over anything), then the record is removed. Returns
/// how many went back.
pub(super) fn recover(dir: &Path, name: &str, tree: &Tree, parts_dir: &Path) -> Result<usize, StoreError> {
    let parts_fd = match rustix::fs::open(
        parts_dir,
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // A first start: nothing was ever placed (and what is not a directory there is
        // for the store's own checks).
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => return Ok(0),
        Err(e) => return Err(io_err("open", parts_dir)(errno(e))),
    };
    let at = parts_dir.join(RECORD);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&parts_fd, RECORD, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(0),
        // Not a file (a symlink someone planted): nothing of ours to undo.
        Err(rustix::io::Errno::LOOP) => return clear(&parts_fd, parts_dir).map(|()| 0),
        Err(e) => return Err(io_err("open", &at)(errno(e))),
    };
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MOST)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", &at))?;
    let mut listed: Vec<(usize, u64, u64)> = bytes
        .chunks_exact(ENTRY)
        .map(|b| {
            let n = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or_default());
            (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize, n(4), n(12))
        })
        .collect();
    listed.sort_unstable();
    listed.dedup();
    let mut back = 0;
    for (i, dev, ino) in listed {
        let Some(entry) = tree.entries().get(i) else {
            continue;
        };
        if !matches!(entry.kind, EntryKind::File { size, .. } if size > 0) {
            continue;
        }
        let part = format!("{i:07}");
        if rustix::fs::statat(&parts_fd, part.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            continue;
        }
        let Some(parent) = open_parent(dir, name, &entry.path, false)? else {
            continue;
        };
        let placed = dir.join(name).join(&entry.path);
        // The field types differ between platforms.
        #[allow(clippy::unnecessary_cast)]
        let same = |st: &rustix::fs::Stat| st.st_dev as u64 == dev && st.st_ino as u64 == ino;
        match rustix::fs::statat(&parent, leaf(&entry.path), AtFlags::SYMLINK_NOFOLLOW) {
            // The very file the commit placed, not one put there since.
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && same(&st) => {}
            Ok(_) | Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io_err("inspect", &placed)(errno(e))),
        }
        rustix::fs::renameat_with(
            &parent,
            leaf(&entry.path),
            &parts_fd,
            part.as_str(),
            RenameFlags::NOREPLACE,
        )
        .map_err(|e| io_err("move back", &placed)(errno(e)))?;
        back += 1;
    }
    if back > 0 {
        info!(
            files = back,
            "a commit was stopped while it placed files: they are verified again"
        );
        rustix::fs::fsync(&parts_fd).map_err(|e| io_err("sync", parts_dir)(errno(e)))?;
    }
    clear(&parts_fd, parts_dir)?;
    Ok(back)
}
