//! Start-up tidying of the store's own folders: whatever a crash, a user or another
//! program left in `DIR/.swarmshare/tmp/` and `DIR/.swarmshare/chunks/`, the node deals with
//! it and carries on.
//!
//! * `tmp/` holds only half-written files: it is emptied (a symlink in it is removed, never
//!   followed; a `tmp` that is not a directory is removed).
//! * In `chunks/`, an entry with a chunk's name is kept only if it is a regular file that
//!   verifies. A damaged chunk file or a special file (FIFO, socket, device, symlink) is
//!   removed; a directory, which may hold someone's data, is moved aside to
//!   `DIR/.swarmshare/aside/`. Each is logged once, its name escaped.
//! * Entries whose names are not chunk names are left alone and reported once.
//!
//! Nothing here follows a symlink, so nothing outside `DIR` is read, changed or removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::files::{io_err, read_no_follow};
use super::StoreError;
use crate::chunk_set::ChunkSet;
use crate::manifest::{ChunkId, Manifest};
use crate::text::Quoted;

/// Where entries that might hold someone's data are moved instead of being removed.
pub(super) const ASIDE_DIR: &str = "aside";

/// How many names of foreign entries one warning lists.
const NAMES_SHOWN: usize = 5;

/// What to do with a regular file where a store folder belongs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IfFile {
    /// It may be someone's: move it to `aside/`.
    MoveAside,
    /// Remove it.
    Remove,
}

/// Makes `path` a real directory, creating it if missing: a regular file there is moved
/// aside or removed (`if_file`), any other entry that is not a directory (symlink, FIFO,
/// socket, device) removed, never followed. Returns whether it already was a directory.
fn make_dir(root: &Path, path: &Path, if_file: IfFile) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(true),
        Ok(meta) if meta.is_file() && if_file == IfFile::MoveAside => {
            move_aside(root, path)?;
        }
        Ok(meta) => {
            warn!(path = %Quoted(path), kind = kind(&meta.file_type()), "removing a store folder that is not a directory");
            fs::remove_file(path).map_err(io_err("remove", path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", path)(e)),
    }
    fs::create_dir(path).map_err(io_err("create directory", path))?;
    Ok(false)
}

/// Empties `tmp` (creating it if needed): removes whatever is there without following a
/// symlink, whatever kind of entry `tmp` itself is.
pub(super) fn clear_tmp(root: &Path, tmp: &Path) -> Result<(), StoreError> {
    if make_dir(root, tmp, IfFile::Remove)? {
        fs::remove_dir_all(tmp).map_err(io_err("clear", tmp))?;
        fs::create_dir(tmp).map_err(io_err("create directory", tmp))?;
    }
    Ok(())
}

/// Makes `chunks` a real directory: a symlink or special file there is removed, a regular
/// file moved aside.
pub(super) fn ensure_chunks_dir(root: &Path, chunks: &Path) -> Result<(), StoreError> {
    make_dir(root, chunks, IfFile::MoveAside).map(drop)
}

/// The chunk ID `name` stands for, if it is the canonical name of one of `count` chunks.
fn chunk_id(name: &str, count: u32) -> Option<ChunkId> {
    if name.len() < 7 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: ChunkId = name.parse().ok()?;
    (id < count && format!("{id:07}") == name).then_some(id)
}

/// Reads `chunks/`, keeps the chunk files that verify and deals with everything else (see
/// the module docs). Returns the chunks held.
pub(super) fn scan(root: &Path, chunks: &Path, manifest: &Manifest) -> Result<ChunkSet, StoreError> {
    let count = manifest.layout().chunk_count();
    let mut have = ChunkSet::empty(count);
    let mut foreign: Vec<String> = Vec::new();
    let mut foreign_count = 0usize;
    for entry in fs::read_dir(chunks).map_err(io_err("read", chunks))? {
        let entry = entry.map_err(io_err("read", chunks))?;
        let path = entry.path();
        let id = entry.file_name().to_str().and_then(|name| chunk_id(name, count));
        let Some(id) = id else {
            foreign_count += 1;
            if foreign.len() < NAMES_SHOWN {
                foreign.push(Quoted(Path::new(&entry.file_name())).to_string());
            }
            continue;
        };
        let kind_of = entry.file_type().map_err(io_err("inspect", &path))?;
        if kind_of.is_dir() {
            move_aside(root, &path)?;
            continue;
        }
        if !kind_of.is_file() {
            warn!(path = %Quoted(&path), kind = kind(&kind_of), "removing an entry that is not a chunk file");
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            continue;
        }
        match read_no_follow(&path, u64::from(manifest.layout().chunk_size())) {
            Ok(data) if manifest.verify_chunk(id, &data) => {
                have.insert(id);
            }
            Ok(_) => {
                warn!(path = %Quoted(&path), "removing a chunk file that does not verify");
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
            // Replaced between the listing and the read (or too large): not a chunk file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) => {
                warn!(path = %Quoted(&path), cause = %e, "removing a damaged chunk file");
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        }
    }
    if foreign_count > 0 {
        warn!(
            dir = %Quoted(chunks),
            entries = foreign_count,
            names = %foreign.join(", "),
            "entries that are not chunk files are left alone"
        );
    }
    Ok(have)
}

/// Moves `path` into `root/aside/` under its own name plus a number not yet taken.
fn move_aside(root: &Path, path: &Path) -> Result<PathBuf, StoreError> {
    let aside = root.join(ASIDE_DIR);
    make_dir(root, &aside, IfFile::Remove)?;
    let name = path
        .file_name()
        .map_or_else(|| "entry".into(), |n| n.to_string_lossy().into_owned());
    for n in 1..=10_000u32 {
        let dest = aside.join(format!("{name}.{n}"));
        if fs::symlink_metadata(&dest).is_ok() {
            continue;
        }
        fs::rename(path, &dest).map_err(io_err("move aside", path))?;
        warn!(path = %Quoted(path), to = %Quoted(&dest), "moved an entry that is not a chunk file aside");
        return Ok(dest);
    }
    Err(io_err("move aside", path)(io::Error::other(
        "the aside folder is full; empty it",
    )))
}

/// A file type in words, for the logs.
fn kind(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "device";
        }
    }
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_id;

    #[test]
    fn only_canonical_names_in_range_are_chunk_names() {
        assert_eq!(chunk_id("0000003", 10), Some(3));
        assert_eq!(chunk_id("0000010", 10), None);
        assert_eq!(chunk_id("000003", 10), None);
        assert_eq!(chunk_id("00000003", 10), None);
        assert_eq!(chunk_id("+000003", 10), None);
        assert_eq!(chunk_id("0000003.bak", 10), None);
        assert_eq!(chunk_id("12345678", 20_000_000), Some(12_345_678));
    }
}
