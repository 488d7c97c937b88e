//! Files made without a name (`O_TMPFILE`) and linked to their place once complete: how a
//! tree's small files are made on a peer (see [`super::part::Part::write_new`]). Such a
//! file never exists half-written under any name, and costs no create, size, rename or
//! extra stat under a name it would not keep.
//!
//! Not every system can: the file system must make such files, and linking one needs
//! Linux 6.10 (through the descriptor itself) or `/proc/self/fd` (before that, without
//! `CAP_DAC_READ_SEARCH`). A store finds out once, at the start, by making and linking
//! one in its `parts/` directory ([`probe`]); where neither way works, every file gets a
//! name from the start, as before.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// How this store links a file without a name into place, if it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Linking {
    /// It cannot: every file is made with a name.
    #[default]
    Unable,
    /// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`.
    ByDescriptor,
    /// `linkat(AT_FDCWD, "/proc/self/fd/N", dir, name, AT_SYMLINK_FOLLOW)`.
    ByProc,
}

/// The name the probe links its file as in `parts/` (not an entry's: those are digits).
const PROBE: &str = "link-probe";

/// A new file without a name in `dir`, open for reading and writing, mode 0600.
pub(super) fn create(dir: &Path) -> rustix::io::Result<File> {
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)).map(File::from)
}

/// Links `file` (without a name) as `name` in `parent`, the way `how` says; fails with
/// `EEXIST` rather than replace anything there, and never follows a symlink at `name`.
pub(super) fn link(file: &File, how: Linking, parent: impl AsFd, name: &str) -> rustix::io::Result<()> {
    match how {
        Linking::Unable => Err(Errno::NOTSUP),
        Linking::ByDescriptor => rustix::fs::linkat(file, "", parent, name, AtFlags::EMPTY_PATH),
        Linking::ByProc => {
            let by_proc = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                by_proc.as_str(),
                parent,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )
        }
    }
}

/// Whether files without a name can be made in `dir` and linked into it, and how: tried
/// with one such file, linked as [`PROBE`] and removed again.
pub(super) fn probe(dir: &Path) -> Linking {
    let Ok(dir_fd) = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Linking::Unable;
    };
    // One left by a run stopped mid-probe.
    let _ = rustix::fs::unlinkat(&dir_fd, PROBE, AtFlags::empty());
    let Ok(file) = create(dir) else {
        return Linking::Unable;
    };
    for how in [Linking::ByDescriptor, Linking::ByProc] {
        if link(&file, how, &dir_fd, PROBE).is_ok() {
            let _ = rustix::fs::unlinkat(&dir_fd, PROBE, AtFlags::empty());
            return how;
        }
    }
    Linking::Unable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_name_is_linked_but_never_over_another() {
        let tmp = tempfile::tempdir().unwrap();
        let how = probe(tmp.path());
        assert_ne!(
            how,
            Linking::Unable,
            "this file system makes and links unnamed files"
        );
        assert!(
            std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "the probe left nothing"
        );
        let dir = File::open(tmp.path()).unwrap();
        for how in [how, Linking::ByProc] {
            let file = create(tmp.path()).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, b"bytes", 0).unwrap();
            std::fs::write(tmp.path().join("taken"), b"other").unwrap();
            assert_eq!(link(&file, how, &dir, "taken"), Err(Errno::EXIST));
            assert_eq!(std::fs::read(tmp.path().join("taken")).unwrap(), b"other");
            std::os::unix::fs::symlink("/nonexistent-target", tmp.path().join("link")).unwrap();
            assert_eq!(
                link(&file, how, &dir, "link"),
                Err(Errno::EXIST),
                "a symlink is not followed"
            );
            link(&file, how, &dir, "placed").unwrap();
            assert_eq!(std::fs::read(tmp.path().join("placed")).unwrap(), b"bytes");
            for name in ["taken", "link", "placed"] {
                std::fs::remove_file(tmp.path().join(name)).unwrap();
            }
        }
    }
}
