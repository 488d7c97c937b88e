//! Building a manifest from a directory: walk it (never following a symlink), list its
//! regular files and empty directories, then hash the files' bytes one after the other as
//! one stream, streaming, one chunk in memory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::entries::{EntryKind, Tree, MAX_DEPTH, MAX_ENTRIES};
use super::{tree, HashFileError, Layout, Manifest};
use crate::text::Quoted;

/// A file or empty directory found in the walk: its path under the root, and for a file
/// its size and executable bit.
type Found = (String, Option<(u64, bool)>);

/// The manifest of the directory at `dir`, shared under the name `name`.
pub(super) fn hash_tree(dir: &Path, name: &str) -> Result<Manifest, HashFileError> {
    let mut found = Vec::new();
    walk(dir, "", 0, &mut found)?;
    found.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let shown = Quoted(dir).to_string();
    let tree = Tree::new(found).map_err(|source| HashFileError::Name {
        path: shown.clone(),
        source,
    })?;
    let layout = Layout::for_size(tree.total_size()).map_err(|source| HashFileError::Layout {
        path: shown.clone(),
        source,
    })?;
    let (file_hash, chunk_hashes) = hash_stream(dir, &tree, &layout)?;
    Manifest::new_tree(name.to_owned(), tree, layout, file_hash, chunk_hashes)
        .map_err(|source| HashFileError::Name { path: shown, source })
}

fn read_error(path: &Path) -> impl Fn(io::Error) -> HashFileError + '_ {
    move |source| HashFileError::Read {
        path: Quoted(path).to_string(),
        source,
    }
}

/// Lists `dir` (the tree's directory at `rel`, `depth` components down) into `found`.
fn walk(dir: &Path, rel: &str, depth: usize, found: &mut Vec<Found>) -> Result<(), HashFileError> {
    if depth >= MAX_DEPTH {
        return Err(read_error(dir)(io::Error::other(format!(
            "the tree is deeper than {MAX_DEPTH} levels"
        ))));
    }
    let mut empty = true;
    for item in fs::read_dir(dir).map_err(read_error(dir))? {
        let item = item.map_err(read_error(dir))?;
        let path = item.path();
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            return Err(read_error(&path)(io::Error::other(
                "the name is not UTF-8, so it cannot travel in a manifest",
            )));
        };
        let sub = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // The entry itself, never what a symlink points to.
        let meta = fs::symlink_metadata(&path).map_err(read_error(&path))?;
        let kind = meta.file_type();
        if kind.is_dir() && sub.rsplit('/').next() == Some(".swarmshare") {
            // A swarmshare store (the owner's own, or a peer's): its node key is a secret,
            // and none of it is content.
            warn!(path = %Quoted(&path), "skipped, not shared: a swarmshare store directory");
        } else if kind.is_dir() {
            empty = false;
            walk(&path, &sub, depth + 1, found)?;
        } else if kind.is_file() {
            empty = false;
            let executable = meta.permissions().mode() & 0o111 != 0;
            found.push((sub, Some((meta.len(), executable))));
        } else {
            let what = if kind.is_symlink() {
                "a symlink (never followed)"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_fifo() {
                "a named pipe"
            } else {
                "a device file"
            };
            warn!(path = %Quoted(&path), "skipped, not shared: {what}");
        }
        if found.len() > MAX_ENTRIES {
            return Err(read_error(dir)(io::Error::other(format!(
                "the tree holds more than {MAX_ENTRIES} files and empty directories"
            ))));
        }
    }
    if empty && !rel.is_empty() {
        found.push((rel.to_owned(), None));
    }
    Ok(())
}

/// Reads every file of `tree` under `dir` in order, as one stream: the stream's hash and
/// each chunk's. A file that is not exactly as listed (size changed, replaced by a
/// symlink) is an error.
fn hash_stream(dir: &Path, tree: &Tree, layout: &Layout) -> Result<([u8; 32], Vec<[u8; 32]>), HashFileError> {
    let mut whole = blake3::Hasher::new();
    let mut chunk_hashes = Vec::with_capacity(layout.chunk_count() as usize);
    let mut buf = vec![0u8; layout.chunk_size() as usize];
    let mut filled = 0usize;
    let mut id = 0;
    for e in tree.entries() {
        let EntryKind::File { size, .. } = e.kind else {
            continue;
        };
        let path: PathBuf = dir.join(&e.path);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(read_error(&path))?;
        if !file.metadata().map_err(read_error(&path))?.is_file() {
            return Err(HashFileError::Changed {
                path: Quoted(&path).to_string(),
            });
        }
        let mut left = size;
        while left > 0 {
            let want = layout.chunk_len(id).unwrap_or(0) as usize;
            let take = (want - filled).min(usize::try_from(left).unwrap_or(usize::MAX));
            read_all(&mut file, &mut buf[filled..filled + take], &path)?;
            filled += take;
            left -= take as u64;
            if filled == want {
                whole.update(&buf[..want]);
                chunk_hashes.push(tree::chunk_hash(layout, id, &buf[..want]).0);
                id += 1;
                filled = 0;
            }
        }
        if file.read(&mut [0u8; 1]).map_err(read_error(&path))? != 0 {
            return Err(HashFileError::Changed {
                path: Quoted(&path).to_string(),
            });
        }
    }
    Ok((*whole.finalize().as_bytes(), chunk_hashes))
}

fn read_all(file: &mut File, buf: &mut [u8], path: &Path) -> Result<(), HashFileError> {
    file.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => HashFileError::Changed {
            path: Quoted(path).to_string(),
        },
        _ => read_error(path)(e),
    })
}
