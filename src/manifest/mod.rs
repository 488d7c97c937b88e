//! The manifest: the one description of a swarm's file that every node trusts.
//!
//! The owner builds it by hashing the file; peers receive it once and verify every chunk
//! against it. The manifest's own BLAKE3 hash is the [`SwarmId`]: two nodes with the same
//! swarm ID agree on the file name, size, chunking and every chunk hash.
//!
//! The split arithmetic lives in [`layout`] ([`Layout`]), building a manifest from a file
//! in [`hash_file`](fn@hash_file). The byte format is specified in `PROTOCOL.md`
//! ("Manifest").

mod hash_file;
mod layout;
pub mod tree;

use std::fmt;

pub use hash_file::{hash_file, manifest_for, HashFileError};
pub use layout::{ChunkId, Layout, LayoutError, CHUNK_SIZE, MAX_CHUNKS, MIN_CHUNKS};

/// The longest file name, in bytes, a manifest may carry.
pub const MAX_NAME_LEN: usize = 255;
/// Length of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;

const MAGIC: [u8; 4] = *b"SWMF";
/// Version 2: chunk hashes are made from tree pieces (`tree::chunk_hash`); version 1
/// hashed every chunk whole.
const VERSION: u8 = 2;
const FIXED_LEN: usize = 56;
/// The largest encoded manifest: fixed part, longest name, one hash per chunk.
pub const MAX_MANIFEST_LEN: usize = FIXED_LEN + MAX_NAME_LEN + HASH_LEN * MAX_CHUNKS as usize;

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

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Fewer bytes than the fixed header.
    #[error("manifest is truncated: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The first four bytes are not `SWMF`.
    #[error("not a swarmshare manifest (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported manifest version {0} (this build reads version {VERSION}; a directory made by another swarmshare version must start over)")]
    UnsupportedVersion(u8),
    /// The reserved byte is not zero.
    #[error("manifest reserved byte is {0}, expected 0")]
    Reserved(u8),
    /// The declared size cannot be split.
    #[error("manifest declares an unusable file size: {0}")]
    Layout(#[from] LayoutError),
    /// Chunk size or count disagree with the split rule for the declared size.
    #[error("manifest declares {chunk_count} chunks of {chunk_size} bytes, but a {file_size}-byte file has {expected_count} chunks of {expected_size} bytes")]
    LayoutMismatch {
        /// Declared file size.
        file_size: u64,
        /// Declared chunk size.
        chunk_size: u32,
        /// Declared chunk count.
        chunk_count: u32,
        /// Chunk size the rule gives.
        expected_size: u32,
        /// Chunk count the rule gives.
        expected_count: u32,
    },
    /// The total length disagrees with the declared name length and chunk count.
    #[error("manifest is {len} bytes, its header implies {expected}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes the header implies.
        expected: usize,
    },
    /// The file name is not one plain file name.
    #[error("manifest file name {name:?} is refused: {reason}")]
    BadName {
        /// The name, lossily decoded.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

/// The description of one shared file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    name: String,
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
    /// Builds a manifest from its parts. The chunk hashes must match the layout.
    pub fn new(
        name: String,
        layout: Layout,
        file_hash: [u8; HASH_LEN],
        chunk_hashes: Vec<[u8; HASH_LEN]>,
    ) -> Result<Manifest, ManifestError> {
        if let Err(reason) = check_file_name(&name) {
            return Err(ManifestError::BadName { name, reason });
        }
        let expected = FIXED_LEN + name.len() + HASH_LEN * layout.chunk_count() as usize;
        if chunk_hashes.len() != layout.chunk_count() as usize {
            return Err(ManifestError::Length {
                len: FIXED_LEN + name.len() + HASH_LEN * chunk_hashes.len(),
                expected,
            });
        }
        let mut encoded = Vec::with_capacity(expected);
        encoded.extend_from_slice(&MAGIC);
        encoded.push(VERSION);
        encoded.push(0);
        // check_file_name bounds the name to 255 bytes.
        encoded.extend_from_slice(&(name.len() as u16).to_be_bytes());
        encoded.extend_from_slice(&layout.file_size().to_be_bytes());
        encoded.extend_from_slice(&layout.chunk_size().to_be_bytes());
        encoded.extend_from_slice(&layout.chunk_count().to_be_bytes());
        encoded.extend_from_slice(&file_hash);
        encoded.extend_from_slice(name.as_bytes());
        for hash in &chunk_hashes {
            encoded.extend_from_slice(hash);
        }
        let id = SwarmId(*blake3::hash(&encoded).as_bytes());
        Ok(Manifest {
            name,
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
        let (header, rest) = buf.split_at(FIXED_LEN);
        if header[0..4] != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(ManifestError::UnsupportedVersion(header[4]));
        }
        if header[5] != 0 {
            return Err(ManifestError::Reserved(header[5]));
        }
        let name_len = usize::from(u16::from_be_bytes([header[6], header[7]]));
        let file_size = u64::from_be_bytes(array(&header[8..16]));
        let chunk_size = u32::from_be_bytes(array(&header[16..20]));
        let chunk_count = u32::from_be_bytes(array(&header[20..24]));
        let file_hash: [u8; HASH_LEN] = array(&header[24..56]);
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
        // chunk_count <= MAX_CHUNKS and name_len <= u16::MAX: no overflow.
        let expected = FIXED_LEN + name_len + HASH_LEN * chunk_count as usize;
        if buf.len() != expected {
            return Err(ManifestError::Length {
                len: buf.len(),
                expected,
            });
        }
        let (name, hashes) = rest.split_at(name_len);
        let name = std::str::from_utf8(name).map_err(|_| ManifestError::BadName {
            name: String::from_utf8_lossy(name).into_owned(),
            reason: "it is not UTF-8",
        })?;
        let chunk_hashes = hashes.chunks_exact(HASH_LEN).map(array).collect();
        Manifest::new(name.to_owned(), layout, file_hash, chunk_hashes)
    }

    /// The canonical encoding, whose hash is the swarm ID.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The swarm ID.
    pub fn swarm_id(&self) -> SwarmId {
        self.id
    }

    /// The shared file's name: one plain file name.
    pub fn name(&self) -> &str {
        &self.name
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

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}
