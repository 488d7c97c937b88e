//! Chunk files: each held chunk as its own file in `DIR/.swarmshare/chunks/`, made from
//! the data file once its bytes there are on the disk.
//!
//! A chunk file never holds the node's only copy: the data file does. Where the filesystem
//! can share blocks between files (btrfs, XFS, bcachefs, and others with `FICLONE`), a
//! chunk file is a clone of its range of the data file, so it costs metadata and no second
//! write; elsewhere (ext4, tmpfs) it would be a second copy of every byte, and by default
//! there is none. `--chunk-files copy` asks for copies there as well.

use std::fs::File;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::PoisonError;

use tracing::{info, warn};

use super::files::io_err;
use super::{ChunkStore, StoreError};
use crate::manifest::ChunkId;

/// Which held chunks get a chunk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkFiles {
    /// Clones where the filesystem shares blocks, none elsewhere (the default).
    #[default]
    Auto,
    /// Clones where the filesystem shares blocks, copies elsewhere.
    Copy,
    /// None.
    Never,
}

impl FromStr for ChunkFiles {
    type Err = String;

    fn from_str(s: &str) -> Result<ChunkFiles, String> {
        match s {
            "auto" => Ok(ChunkFiles::Auto),
            "copy" => Ok(ChunkFiles::Copy),
            "none" => Ok(ChunkFiles::Never),
            _ => Err("expected auto, copy or none".to_owned()),
        }
    }
}

/// How this store makes its chunk files, decided once when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Making {
    Clones,
    Copies,
    Nothing,
}

/// Decides how chunk files are made for a data file at `data` (open as `file`) with the
/// store's `tmp` directory: clones only if the two are on one filesystem and it clones.
/// For a tree, `file` is its first file (a chunk spanning files is never a clone).
pub(super) fn decide(
    policy: ChunkFiles,
    file: impl FnOnce() -> Option<std::sync::Arc<File>>,
    tmp: &Path,
) -> Making {
    // The file is opened (for a tree, made) only to be asked.
    let clones = policy != ChunkFiles::Never && file().is_some_and(|file| can_clone(&file, tmp));
    let making = match policy {
        ChunkFiles::Never => Making::Nothing,
        _ if clones => Making::Clones,
        ChunkFiles::Copy => Making::Copies,
        ChunkFiles::Auto => Making::Nothing,
    };
    info!(
        chunk_files = match making {
            Making::Clones => "clones of the data file",
            Making::Copies => "copies",
            Making::Nothing => "none (this filesystem cannot share blocks; --chunk-files copy makes copies)",
        },
        "chunk files"
    );
    making
}

/// Whether a file in `tmp` can share blocks with `file`: same filesystem, and a probe
/// clone between two scratch files there works.
fn can_clone(file: &File, tmp: &Path) -> bool {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let same_fs = match (file.metadata(), std::fs::metadata(tmp)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    if !same_fs {
        return false;
    }
    let probe = || -> io::Result<bool> {
        let mut from = tempfile::tempfile_in(tmp)?;
        from.write_all(&[0u8; 4096])?;
        let to = tempfile::tempfile_in(tmp)?;
        Ok(rustix::fs::ioctl_ficlone(&to, &from).is_ok())
    };
    probe().unwrap_or(false)
}

impl ChunkStore {
    /// Makes chunk files for `ids`, whose bytes in the data file are on the disk (see the
    /// module docs). A chunk file is written under `tmp/` and renamed into place; it is
    /// not synced (the data file is the durable copy; a lost chunk file is made again).
    pub(crate) fn make_chunk_files(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        let layout = *self.manifest.layout();
        let tmp_dir = self.root.join("tmp");
        for &id in ids {
            let making = *self.making.lock().unwrap_or_else(PoisonError::into_inner);
            let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
                continue;
            };
            if making == Making::Nothing {
                return Ok(());
            }
            let dest = self.chunk_path(id);
            let tmp =
                tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create a file in", &tmp_dir))?;
            let within = self.data.within_one(offset, len.into());
            if making == Making::Clones && within.is_none() && self.policy != ChunkFiles::Copy {
                // A chunk spanning files of a tree cannot be a clone; copies were not asked for.
                continue;
            }
            if let (Making::Clones, Some((file, at))) = (making, within) {
                if let Err(e) = copy_range(&file, tmp.as_file(), at, len.into()) {
                    // The probe said yes, this range says no: go on as the policy says.
                    let next = match self.policy {
                        ChunkFiles::Copy => Making::Copies,
                        _ => Making::Nothing,
                    };
                    warn!(chunk = id, cause = %e, "a chunk file could not be cloned from the data file; no more clones");
                    *self.making.lock().unwrap_or_else(PoisonError::into_inner) = next;
                    continue;
                }
            } else {
                let mut buf = vec![0u8; len as usize];
                self.data.read_at(&mut buf, offset)?;
                std::os::unix::fs::FileExt::write_all_at(tmp.as_file(), &buf, 0)
                    .map_err(io_err("write", &dest))?;
            }
            tmp.persist(&dest)
                .map_err(|e| io_err("rename into", &dest)(e.error))?;
        }
        Ok(())
    }
}

/// Copies `len` bytes at `offset` of `from` to the start of `to` with `copy_file_range`,
/// which shares the blocks where the filesystem can.
fn copy_range(from: &File, to: &File, offset: u64, len: u64) -> io::Result<()> {
    let (mut off_in, mut off_out) = (offset, 0u64);
    while off_out < len {
        let left = usize::try_from(len - off_out).unwrap_or(usize::MAX);
        let n = rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), left)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the data file ended early",
            ));
        }
    }
    Ok(())
}
