//! The manifest: the one description of a swarm's file that every node trusts.
//!
//! The owner builds it by hashing the file; peers receive it once and verify every chunk
//! against it. The manifest's own BLAKE3 hash is the [`SwarmId`]: two nodes with the same
//! swarm ID agree on the file name, size, chunking and every chunk hash.
//!
//! The split arithmetic lives in [`layout`] ([`Layout`]), building a manifest from a file
//! in [`hash_file`](fn@hash_file). The byte format is specified in `PROTOCOL.md`
//! ("Manifest").

pub mod entries;
mod error;
mod hash_file;
mod hash_tree;
mod layout;
pub mod tree;

use std::fmt;

pub use entries::{Entry, EntryKind, Tree};
pub use error::ManifestError;
pub use hash_file::{hash_file, manifest_for, HashFileError};
pub use layout::{ChunkId, Layout, LayoutError, CHUNK_SIZE, MAX_CHUNKS, MIN_CHUNKS};

/// The longest file name, in bytes, a manifest may carry.
pub const MAX_NAME_LEN: usize = 255;
/// Length of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;

const MAGIC: [u8; 4] = *b"SWMF";
/// Version 2, one file: chunk hashes are made from tree pieces (`tree::chunk_hash`);
/// version 1 hashed every chunk whole.
const VERSION: u8 = 2;
/// Version 3, a directory tree: version 2's header with the entry table's count and
/// length added, and the table between the name and the chunk hashes.
const TREE_VERSION: u8 = 3;
const FIXED_LEN: usize = 56;
const TREE_FIXED_LEN: usize = FIXED_LEN + 8;
/// The largest encoded manifest: fixed part, longest name, longest table, one hash per
/// chunk.
pub const MAX_MANIFEST_LEN: usize =
    TREE_FIXED_LEN + MAX_NAME_LEN + entries::MAX_TABLE_LEN + HASH_LEN * MAX_CHUNKS as usize;

/// The swarm's identity: the BLAKE3 hash of its encoded manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwarmId(pub [u8; HASH_LEN]);

impl SwarmId {
    /// The first 8 bytes in hex, enough to tell swarms apart in a log line.
    pub fn short(&self) -> String {
        hex(&self.0[..8])
    }
}

impl fmt::Display for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwarmId({})", self.short())
    }
}

/// Lower-case hexadecimal digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The description of one shared file, or of a shared directory tree whose files, one
/// after the other, are cut into chunks as one file would be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    name: String,
    /// The tree's entries; `None` for one file.
    tree: Option<Tree>,
    layout: Layout,
    file_hash: [u8; HASH_LEN],
    chunk_hashes: Vec<[u8; HASH_LEN]>,
    encoded: Vec<u8>,
    id: SwarmId,
}

/// Checks that `name` is a single plain file name, safe to create inside a directory.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return Err("it names a directory");
    }
    if name.contains(['/', '\\']) {
        return Err("it contains a path separator");
    }
    check_name_chars(name)
}

/// Refuses control characters (terminal escape codes among them) and bidirectional
/// controls in a name.
pub(crate) fn check_name_chars(name: &str) -> Result<(), &'static str> {
    if name.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if name.chars().any(is_bidi_control) {
        return Err("it contains a bidirectional control character (it could display as another name)");
    }
    Ok(())
}

/// The Unicode bidirectional formatting characters (UAX #9): marks, embeddings, overrides
/// and isolates. In a name they make it display as something it is not.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl Manifest {
    /// Builds a one-file manifest from its parts. The chunk hashes must match the layout.
    pub fn new(
        name: String,
        layout: Layout,
        file_hash: [u8; HASH_LEN],
        chunk_hashes: Vec<[u8; HASH_LEN]>,
    ) -> Result<Manifest, ManifestError> {
        Manifest::build(name, None, layout, file_hash, chunk_hashes)
    }

    /// Builds a tree's manifest: `name` is the shared directory's name, `file_hash` the
    /// BLAKE3 hash of the files' bytes one after the other (the stream `layout` cuts).
    pub fn new_tree(
        name: String,
        tree: Tree,
        layout: Layout,
        file_hash: [u8; HASH_LEN],
        chunk_hashes: Vec<[u8; HASH_LEN]>,
    ) -> Result<Manifest, ManifestError> {
        if tree.total_size() != layout.file_size() {
            return Err(ManifestError::TreeSize {
                declared: layout.file_size(),
                listed: tree.total_size(),
            });
        }
        Manifest::build(name, Some(tree), layout, file_hash, chunk_hashes)
    }

    fn build(
        name: String,
        tree: Option<Tree>,
        layout: Layout,
        file_hash: [u8; HASH_LEN],
        chunk_hashes: Vec<[u8; HASH_LEN]>,
    ) -> Result<Manifest, ManifestError> {
        if let Err(reason) = check_file_name(&name) {
            return Err(ManifestError::BadName { name, reason });
        }
        let mut table = Vec::new();
        if let Some(tree) = &tree {
            tree.encode(&mut table);
        }
        let fixed = if tree.is_some() { TREE_FIXED_LEN } else { FIXED_LEN };
        let expected = fixed + name.len() + table.len() + HASH_LEN * layout.chunk_count() as usize;
        if chunk_hashes.len() != layout.chunk_count() as usize {
            return Err(ManifestError::Length {
                len: fixed + name.len() + table.len() + HASH_LEN * chunk_hashes.len(),
                expected,
            });
        }
        if table.len() > entries::MAX_TABLE_LEN {
            return Err(ManifestError::BadTable("it is longer than 32 MiB"));
        }
        let mut encoded = Vec::with_capacity(expected);
        encoded.extend_from_slice(&MAGIC);
        encoded.push(if tree.is_some() { TREE_VERSION } else { VERSION });
        encoded.push(0);
        // check_file_name bounds the name to 255 bytes.
        encoded.extend_from_slice(&(name.len() as u16).to_be_bytes());
        encoded.extend_from_slice(&layout.file_size().to_be_bytes());
        encoded.extend_from_slice(&layout.chunk_size().to_be_bytes());
        encoded.extend_from_slice(&layout.chunk_count().to_be_bytes());
        encoded.extend_from_slice(&file_hash);
        if let Some(tree) = &tree {
            // MAX_ENTRIES and MAX_TABLE_LEN are below 2^32.
            encoded.extend_from_slice(&(tree.entries().len() as u32).to_be_bytes());
            encoded.extend_from_slice(&(table.len() as u32).to_be_bytes());
        }
        encoded.extend_from_slice(name.as_bytes());
        encoded.extend_from_slice(&table);
        for hash in &chunk_hashes {
            encoded.extend_from_slice(hash);
        }
        let id = SwarmId(*blake3::hash(&encoded).as_bytes());
        Ok(Manifest {
            name,
            tree,
            layout,
            file_hash,
            chunk_hashes,
            encoded,
            id,
        })
    }

    /// Parses an encoded manifest, refusing anything that is not exactly canonical.
    pub fn decode(buf: &[u8]) -> Result<Manifest, ManifestError> {
        if buf.len() < FIXED_LEN {
            return Err(ManifestError::Truncated { len: buf.len() });
        }
        if buf[0..4] != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let is_tree = match buf[4] {
            VERSION => false,
            TREE_VERSION => true,
            v => return Err(ManifestError::UnsupportedVersion(v)),
        };
        if buf[5] != 0 {
            return Err(ManifestError::Reserved(buf[5]));
        }
        let fixed = if is_tree { TREE_FIXED_LEN } else { FIXED_LEN };
        if buf.len() < fixed {
            return Err(ManifestError::Truncated { len: buf.len() });
        }
        let (header, rest) = buf.split_at(fixed);
        let name_len = usize::from(u16::from_be_bytes([header[6], header[7]]));
        let file_size = u64::from_be_bytes(array(&header[8..16]));
        let chunk_size = u32::from_be_bytes(array(&header[16..20]));
        let chunk_count = u32::from_be_bytes(array(&header[20..24]));
        let file_hash: [u8; HASH_LEN] = array(&header[24..56]);
        let (entry_count, table_len) = if is_tree {
            let count = u32::from_be_bytes(array(&header[56..60])) as usize;
            let len = u32::from_be_bytes(array(&header[60..64])) as usize;
            if len > entries::MAX_TABLE_LEN {
                return Err(ManifestError::BadTable("it is longer than 32 MiB"));
            }
            (count, len)
        } else {
            (0, 0)
        };
        let layout = Layout::for_size(file_size)?;
        if layout.chunk_size() != chunk_size || layout.chunk_count() != chunk_count {
            return Err(ManifestError::LayoutMismatch {
                file_size,
                chunk_size,
                chunk_count,
                expected_size: layout.chunk_size(),
                expected_count: layout.chunk_count(),
            });
        }
        // chunk_count <= MAX_CHUNKS, name_len <= u16::MAX, table_len <= MAX_TABLE_LEN: no
        // overflow.
        let expected = fixed + name_len + table_len + HASH_LEN * chunk_count as usize;
        if buf.len() != expected {
            return Err(ManifestError::Length {
                len: buf.len(),
                expected,
            });
        }
        let (name, rest) = rest.split_at(name_len);
        let (table, hashes) = rest.split_at(table_len);
        let name = std::str::from_utf8(name).map_err(|_| ManifestError::BadName {
            name: String::from_utf8_lossy(name).into_owned(),
            reason: "it is not UTF-8",
        })?;
        let chunk_hashes = hashes.chunks_exact(HASH_LEN).map(array).collect();
        if !is_tree {
            return Manifest::new(name.to_owned(), layout, file_hash, chunk_hashes);
        }
        let tree = Tree::decode(table, entry_count)?;
        Manifest::new_tree(name.to_owned(), tree, layout, file_hash, chunk_hashes)
    }

    /// The canonical encoding, whose hash is the swarm ID.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The swarm ID.
    pub fn swarm_id(&self) -> SwarmId {
        self.id
    }

    /// The shared file's name, or the shared directory's: one plain file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tree's entries, for a shared directory; `None` for one file.
    pub fn tree(&self) -> Option<&Tree> {
        self.tree.as_ref()
    }

    /// How the file is cut into chunks.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The BLAKE3 hash of the whole file.
    pub fn file_hash(&self) -> &[u8; HASH_LEN] {
        &self.file_hash
    }

    /// The expected hash of chunk `id`, or `None` if out of range.
    pub fn chunk_hash(&self, id: ChunkId) -> Option<&[u8; HASH_LEN]> {
        self.chunk_hashes.get(id as usize)
    }

    /// Whether `data` is exactly chunk `id`.
    pub fn verify_chunk(&self, id: ChunkId, data: &[u8]) -> bool {
        self.verify_chunk_pieces(id, data).is_some()
    }

    /// Checks that `data` is exactly chunk `id` and, if so, returns its pieces' chaining
    /// values for the whole-file check (none for a layout without pieces): one pass.
    pub fn verify_chunk_pieces(&self, id: ChunkId, data: &[u8]) -> Option<Vec<tree::ChainingValue>> {
        let expected = self.chunk_hash(id)?;
        if self.layout.chunk_len(id) != u32::try_from(data.len()).ok() {
            return None;
        }
        let (hash, cvs) = tree::chunk_hash(&self.layout, id, data);
        (hash == *expected).then_some(cvs)
    }
}

pub(crate) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}
