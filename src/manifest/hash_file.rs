//! Building a manifest from a file on disk (a directory: [`super::hash_tree`]): one streaming pass that hashes every chunk
//! and the whole file, never holding more than one chunk in memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::text::Quoted;

use super::{tree, Layout, LayoutError, Manifest, ManifestError};

/// Why a file could not be turned into a manifest.
#[derive(Debug, thiserror::Error)]
pub enum HashFileError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file cannot be split.
    #[error("{path}: {source}")]
    Layout {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: LayoutError,
    },
    /// The file's name cannot travel in a manifest.
    #[error("{path}: {source}")]
    Name {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// The file changed size while it was read.
    #[error("{path} changed while it was being read")]
    Changed {
        /// The file.
        path: String,
    },
}

/// The manifest of the file or directory at `path`, under its own name (what the owner
/// serves).
pub fn manifest_for(path: &Path) -> Result<Manifest, HashFileError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| HashFileError::Read {
            path: Quoted(path).to_string(),
            source: io::Error::other("the file name is not valid UTF-8 or missing"),
        })?;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => super::hash_tree::hash_tree(path, name),
        _ => hash_file(path, name),
    }
}

/// Reads `path` once, streaming, and builds its manifest under the name `name`.
pub fn hash_file(path: &Path, name: &str) -> Result<Manifest, HashFileError> {
    let shown = Quoted(path).to_string();
    let read_err = |source| HashFileError::Read {
        path: shown.clone(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if meta.is_dir() {
        return Err(read_err(io::Error::other("it is a directory")));
    }
    let layout = Layout::for_size(meta.len()).map_err(|source| HashFileError::Layout {
        path: shown.clone(),
        source,
    })?;
    let mut whole = blake3::Hasher::new();
    let mut chunk_hashes = Vec::with_capacity(layout.chunk_count() as usize);
    let mut buf = vec![0u8; layout.chunk_size() as usize];
    for id in 0..layout.chunk_count() {
        let len = layout.chunk_len(id).unwrap_or(0) as usize;
        file.read_exact(&mut buf[..len]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => HashFileError::Changed { path: shown.clone() },
            _ => read_err(e),
        })?;
        whole.update(&buf[..len]);
        chunk_hashes.push(tree::chunk_hash(&layout, id, &buf[..len]).0);
    }
    if file.read(&mut [0u8; 1]).map_err(read_err)? != 0 {
        return Err(HashFileError::Changed { path: shown });
    }
    Manifest::new(
        name.to_owned(),
        layout,
        *whole.finalize().as_bytes(),
        chunk_hashes,
    )
    .map_err(|source| HashFileError::Name { path: shown, source })
}
