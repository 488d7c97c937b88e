//! A shared directory's table of entries: every regular file with its path, size and
//! executable bit, and every empty directory, in one canonical order; and the checks that
//! refuse a hostile table before anything is written.
//!
//! The files' bytes, one after the other in table order, are the swarm's byte stream: the
//! stream is cut into chunks as one file of that total size would be, so a chunk may hold
//! the end of one file and the start of the next, and a tree of tiny files is as few
//! chunks as one file of the same size (PROTOCOL.md, "Trees").
//!
//! Every path is checked as the peer will use it: relative, `/`-separated, each component
//! a plain name (no `.`, `..`, empty component, separator, control or bidirectional
//! character, at most 255 bytes), at most [`MAX_PATH_LEN`] bytes and [`MAX_DEPTH`]
//! components. Across entries: strictly ascending by bytes (so none is listed twice), no
//! file where another entry needs a directory, no entries under a directory listed as
//! empty, and no two paths that differ only in case or Unicode normalization (they would
//! be one file on many file systems). At most [`MAX_ENTRIES`] entries.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::{check_name_chars, ManifestError};

/// The most entries (files and empty directories) a tree may list.
pub const MAX_ENTRIES: usize = 1 << 18;
/// The most components a path may have.
pub const MAX_DEPTH: usize = 64;
/// The longest path, in bytes: `DIR/NAME/` keeps room within Linux's 4,096-byte limit.
pub const MAX_PATH_LEN: usize = 3072;
/// The longest encoded table: every entry at its longest would not fit, on purpose.
pub const MAX_TABLE_LEN: usize = 32 << 20;

/// What one entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes, starting at `offset` in the swarm's byte stream.
    File {
        /// Its length in bytes.
        size: u64,
        /// Whether it is created executable (mode 0755 rather than 0644).
        executable: bool,
        /// Where its bytes start in the stream (the sizes of the files before it).
        offset: u64,
    },
    /// An empty directory.
    EmptyDir,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path under the tree's root, `/`-separated, checked.
    pub path: String,
    /// File or empty directory.
    pub kind: EntryKind,
}

/// A checked table of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    entries: Vec<Entry>,
    total: u64,
}

const KIND_FILE: u8 = 0;
const KIND_EXEC: u8 = 1;
const KIND_DIR: u8 = 2;

fn refuse(path: &str, reason: impl Into<String>) -> ManifestError {
    ManifestError::BadEntry {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl Tree {
    /// Checks `entries` (kind, path; offsets are filled in here) and builds the table.
    pub fn new(entries: Vec<(String, Option<(u64, bool)>)>) -> Result<Tree, ManifestError> {
        if entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries(entries.len()));
        }
        let mut total = 0u64;
        let mut out = Vec::with_capacity(entries.len());
        for (path, file) in entries {
            let kind = match file {
                Some((size, executable)) => {
                    let offset = total;
                    total = total
                        .checked_add(size)
                        .ok_or_else(|| refuse(&path, "the files' sizes add up to more than 2^64 bytes"))?;
                    EntryKind::File {
                        size,
                        executable,
                        offset,
                    }
                }
                None => EntryKind::EmptyDir,
            };
            out.push(Entry { path, kind });
        }
        check(&out)?;
        Ok(Tree { entries: out, total })
    }

    /// The entries in canonical order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The files' sizes summed: the stream's length.
    pub fn total_size(&self) -> u64 {
        self.total
    }

    /// Appends the table's encoding to `out`.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        for e in &self.entries {
            let kind = match e.kind {
                EntryKind::File {
                    executable: false, ..
                } => KIND_FILE,
                EntryKind::File { executable: true, .. } => KIND_EXEC,
                EntryKind::EmptyDir => KIND_DIR,
            };
            out.push(kind);
            // check_path bounds a path to MAX_PATH_LEN < 2^16 bytes.
            out.extend_from_slice(&(e.path.len() as u16).to_be_bytes());
            out.extend_from_slice(e.path.as_bytes());
            if let EntryKind::File { size, .. } = e.kind {
                out.extend_from_slice(&size.to_be_bytes());
            }
        }
    }

    /// Parses `count` entries that take exactly `buf`, and checks them.
    pub(super) fn decode(buf: &[u8], count: usize) -> Result<Tree, ManifestError> {
        if count > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries(count));
        }
        let truncated = || ManifestError::BadTable("it ends inside an entry");
        let mut rest = buf;
        let mut entries = Vec::with_capacity(count.min(buf.len() / 3));
        for _ in 0..count {
            let (&kind, after) = rest.split_first().ok_or_else(truncated)?;
            let (len, after) = after.split_at_checked(2).ok_or_else(truncated)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (path, after) = after.split_at_checked(len).ok_or_else(truncated)?;
            let path = match std::str::from_utf8(path) {
                Ok(p) => p.to_owned(),
                Err(_) => return Err(refuse(&String::from_utf8_lossy(path), "it is not UTF-8")),
            };
            let (file, after) = match kind {
                KIND_FILE | KIND_EXEC => {
                    let (size, after) = after.split_at_checked(8).ok_or_else(truncated)?;
                    let size = u64::from_be_bytes(super::array(size));
                    (Some((size, kind == KIND_EXEC)), after)
                }
                KIND_DIR => (None, after),
                _ => return Err(refuse(&path, format!("unknown entry kind {kind}"))),
            };
            entries.push((path, file));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(ManifestError::BadTable("bytes are left after the last entry"));
        }
        Tree::new(entries)
    }

    /// The files whose bytes overlap `offset..offset + len` of the stream, in order, each
    /// with its index in [`Tree::entries`] (a linear walk: for reports and tests).
    pub fn files_in(&self, offset: u64, len: u64) -> impl Iterator<Item = (usize, &Entry)> + '_ {
        let end = offset.saturating_add(len);
        self.entries.iter().enumerate().filter(move |(_, e)| {
            matches!(e.kind, EntryKind::File { size, offset: at, .. }
                if size > 0 && at < end && at.saturating_add(size) > offset)
        })
    }
}

/// One path checked on its own: see the module docs.
fn check_path(path: &str) -> Result<(), ManifestError> {
    if path.is_empty() {
        return Err(refuse(path, "the path is empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(refuse(
            path,
            format!("the path is longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    if path.starts_with('/') {
        return Err(refuse(path, "the path is absolute"));
    }
    for (depth, c) in path.split('/').enumerate() {
        if depth == MAX_DEPTH {
            return Err(refuse(
                path,
                format!("the path is deeper than {MAX_DEPTH} components"),
            ));
        }
        match c {
            "" => return Err(refuse(path, "the path has an empty component")),
            "." | ".." => return Err(refuse(path, format!("the path has a {c:?} component"))),
            _ => {}
        }
        if c.len() > super::MAX_NAME_LEN {
            return Err(refuse(path, "a component is longer than 255 bytes"));
        }
        if c.contains('\\') {
            return Err(refuse(path, "a component contains a backslash"));
        }
        check_name_chars(c).map_err(|reason| refuse(path, reason))?;
    }
    Ok(())
}

/// What a path component becomes on a file system that ignores case and normalization.
fn folded(component: &str) -> String {
    component.nfkd().flat_map(char::to_lowercase).nfkc().collect()
}

/// A directory or file met while walking the table, by its parent and exact name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir { id: u32, listed_empty: bool },
    File,
}

/// The checks across entries: order, files in the way of directories, entries under an
/// empty directory, and names that differ only in case or normalization. Each component
/// is looked at once, so the work is linear in the table's size.
fn check(entries: &[Entry]) -> Result<(), ManifestError> {
    let mut nodes: HashMap<(u32, &str), Node> = HashMap::new();
    let mut folds: HashMap<(u32, String), &str> = HashMap::new();
    let mut next_dir = 1u32;
    let mut before: Option<&str> = None;
    for e in entries {
        let path = e.path.as_str();
        check_path(path)?;
        if let Some(b) = before {
            if b == path {
                return Err(refuse(path, "it is listed twice"));
            }
            if b > path {
                return Err(refuse(
                    path,
                    "the entries are not in ascending order of their bytes",
                ));
            }
        }
        before = Some(path);
        let mut parent = 0u32;
        let mut components = path.split('/').peekable();
        let mut walked = 0usize;
        while let Some(c) = components.next() {
            let prefix = &path[..walked + c.len()];
            walked += c.len() + 1;
            let last = components.peek().is_none();
            let wanted = if last && matches!(e.kind, EntryKind::File { .. }) {
                Node::File
            } else {
                Node::Dir {
                    id: next_dir,
                    listed_empty: last,
                }
            };
            match nodes.get(&(parent, c)).copied() {
                Some(Node::File) => {
                    return Err(refuse(
                        path,
                        format!("{prefix:?} is a file, and this entry needs it to be a directory"),
                    ));
                }
                Some(Node::Dir {
                    listed_empty: true, ..
                }) => {
                    return Err(refuse(
                        path,
                        format!("{prefix:?} is listed as an empty directory"),
                    ));
                }
                Some(Node::Dir { .. }) if wanted == Node::File || last => {
                    return Err(refuse(path, "it is a directory of other entries as well"));
                }
                Some(Node::Dir { id, .. }) => parent = id,
                None => {
                    let key = (parent, folded(c));
                    if let Some(other) = folds.get(&key) {
                        return Err(refuse(
                            path,
                            format!("{c:?} differs from {other:?} in the same directory only in case or Unicode normalization"),
                        ));
                    }
                    folds.insert(key, c);
                    nodes.insert((parent, c), wanted);
                    if let Node::Dir { id, .. } = wanted {
                        parent = id;
                        next_dir += 1;
                    }
                }
            }
        }
    }
    Ok(())
}
