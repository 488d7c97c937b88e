//! A read-only look at a node's directory, for `swarmshare status`: what the manifest
//! says, which chunks verify (in the data file or as chunk files), what the summary claims
//! and whether the file is there. Unlike [`ChunkStore::open`](super::ChunkStore::open) it
//! changes nothing: a damaged chunk file is reported, not removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use std::os::unix::fs::FileExt;

use super::files::open_no_follow;
use super::{
    chunk_file, hash_file_at, io_err, read_no_follow, stored_manifest, StoreError, PARTIAL, STORE_DIR,
};
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, Manifest};
use crate::summary;

/// What a directory holds, as found on disk.
#[derive(Debug)]
pub(crate) struct DirStatus {
    /// The directory looked at.
    pub dir: PathBuf,
    /// The swarm's manifest (from `.swarmshare/manifest`).
    pub manifest: Manifest,
    /// The node's peer ID, if it has one.
    pub peer_id: Option<PeerId>,
    /// Chunks whose bytes match the manifest, in the data file (the partial file, or the
    /// finished file) or as a chunk file.
    pub verified: ChunkSet,
    /// Chunks that should be there and are not: listed in the summary or present as a
    /// chunk file, yet their bytes do not verify (truncated, corrupted, not a regular file).
    pub damaged: Vec<ChunkId>,
    /// What the summary file lists; `None` if there is none, `Err` if it does not parse.
    pub summary: Option<Result<ChunkSet, String>>,
    /// The finished file in the directory.
    pub file: FileState,
    /// Leftover temporary files (a run that was stopped or killed).
    pub temporary: usize,
    /// For a tree: files at their place in it (of the right size), and files in all.
    pub files: Option<(usize, usize)>,
}

/// The state of `DIR/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    /// Not there.
    Absent,
    /// There, with exactly the swarm's contents.
    Verified,
    /// There, with other contents (or not a regular file).
    Other,
}

impl FileState {
    /// The state as a word: `absent`, `verified` or `other`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileState::Absent => "absent",
            FileState::Verified => "verified",
            FileState::Other => "other",
        }
    }
}

/// Looks at `dir` without changing it. `Ok(None)` if it holds no swarmshare store.
pub(crate) fn dir_status(dir: &Path) -> Result<Option<DirStatus>, StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(StoreError::NotADirectory(dir.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NoSuchDirectory(dir.to_owned()))
        }
        Err(e) => return Err(io_err("open", dir)(e)),
    }
    let Some(manifest) = stored_manifest(dir)? else {
        return Ok(None);
    };
    let root = dir.join(STORE_DIR);
    let layout = *manifest.layout();
    let mut verified = ChunkSet::empty(layout.chunk_count());
    let mut damaged = Vec::new();
    let (tree_data, files) = match manifest.tree() {
        Some(tree) => {
            let (data, finished, total) = super::tree_files::existing_data(dir, &root, &manifest, tree);
            (Some(data), Some((finished, total)))
        }
        None => (None, None),
    };
    let data = [root.join(PARTIAL), dir.join(manifest.name())]
        .into_iter()
        .filter(|_| tree_data.is_none())
        .find_map(|path| {
            open_no_follow(&path)
                .ok()
                .filter(|(_, len)| *len == layout.file_size())
        });
    let mut buf = vec![0u8; layout.chunk_size() as usize];
    for id in 0..layout.chunk_count() {
        let (Some(offset), Some(len)) = (layout.chunk_offset(id), layout.chunk_len(id)) else {
            continue;
        };
        let buf = &mut buf[..len as usize];
        if let Some((file, _)) = &data {
            if file.read_exact_at(buf, offset).is_ok() && manifest.verify_chunk(id, buf) {
                verified.insert(id);
                continue;
            }
        }
        if let Some(tree_data) = &tree_data {
            if tree_data.read_at(buf, offset).is_ok() && manifest.verify_chunk(id, buf) {
                verified.insert(id);
                continue;
            }
        }
        let path = chunk_file(&root, id);
        match read_no_follow(&path, u64::from(layout.chunk_size())) {
            Ok(data) if manifest.verify_chunk(id, &data) => {
                verified.insert(id);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => damaged.push(id),
        }
    }
    let summary = match fs::read_to_string(root.join("summary")) {
        Ok(text) => Some(summary::parse(&text, layout.chunk_count()).map_err(|e| e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
    };
    if let Some(Ok(listed)) = &summary {
        damaged.extend(listed.iter().filter(|&id| !verified.contains(id)));
        damaged.sort_unstable();
        damaged.dedup();
    }
    let temporary = fs::read_dir(root.join("tmp")).map_or(0, Iterator::count);
    let file = match files {
        // A tree is there when every file is, and every chunk verifies.
        Some((finished, total)) if finished == total && verified.is_complete() => FileState::Verified,
        Some(_) => FileState::Absent,
        None => file_state(&dir.join(manifest.name()), &manifest),
    };
    Ok(Some(DirStatus {
        dir: dir.to_owned(),
        peer_id: crate::secure::NodeKey::load(&root).map(|k| k.id()),
        manifest,
        verified,
        damaged,
        summary,
        file,
        temporary,
        files,
    }))
}

fn file_state(path: &Path, manifest: &Manifest) -> FileState {
    match fs::symlink_metadata(path) {
        Err(_) => FileState::Absent,
        Ok(m) if !m.is_file() || m.len() != manifest.layout().file_size() => FileState::Other,
        Ok(_) => match hash_file_at(path) {
            Ok(hash) if hash == *manifest.file_hash() => FileState::Verified,
            _ => FileState::Other,
        },
    }
}
