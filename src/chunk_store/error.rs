//! `StoreError`: every storage failure, naming the path and the cause in one line.

use std::io;
use std::path::PathBuf;

use super::STORE_DIR;
use crate::text::Quoted;

/// A storage failure, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("cannot {what} {}: {}", Quoted(path), io_reason(source))]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory already holds another swarm's chunks.
    #[error("{} already holds the chunks of another file ({}, swarm {swarm}); remove it or choose another directory", Quoted(dir), Quoted(name))]
    OtherSwarm {
        /// The store directory.
        dir: PathBuf,
        /// The other swarm's file name, if its manifest parsed.
        name: String,
        /// The other swarm's ID, or "unreadable".
        swarm: String,
    },
    /// The shared file's name collides with the store directory.
    #[error("the file name {STORE_DIR:?} is reserved for swarmshare's own data")]
    ReservedName,
    /// A path that must be a real directory is a symlink or a file.
    #[error("{} is not a plain directory (symlinks are never followed)", Quoted(.0))]
    NotADirectory(PathBuf),
    /// A directory to read does not exist.
    #[error("{} does not exist", Quoted(.0))]
    NoSuchDirectory(PathBuf),
    /// A finished file or directory of a tree is gone from its path (moved or removed while
    /// the tree downloaded).
    #[error("{} was moved or removed while the tree downloaded, so the tree is not complete; put it back, or start over in an empty directory", Quoted(.0))]
    Vanished(PathBuf),
    /// The file name exists in `DIR` with other contents.
    #[error("{} already exists with other contents; not overwriting it", Quoted(.0))]
    Occupied(PathBuf),
    /// The assembled file does not match the manifest's whole-file hash.
    #[error("the assembled file does not match the manifest's hash; chunks were discarded")]
    FileHashMismatch,
    /// The manifest a previous run left in the directory does not parse.
    #[error("{} is damaged ({source}); remove {} to start this directory over", Quoted(path), path.parent().map_or(String::new(), |p| Quoted(p).to_string()))]
    BadStoredManifest {
        /// The manifest file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: crate::manifest::ManifestError,
    },
    /// The source file changed while its chunks were being written.
    #[error("{} changed while its chunks were being written", Quoted(.0))]
    SourceChanged(PathBuf),
}

impl StoreError {
    /// Whether the user's choice of directory or file is at fault (not a failure at run time).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::OtherSwarm { .. }
                | StoreError::ReservedName
                | StoreError::NotADirectory(_)
                | StoreError::Occupied(_)
                | StoreError::BadStoredManifest { .. }
                | StoreError::NoSuchDirectory(_)
        )
    }
}

fn io_reason(e: &io::Error) -> String {
    // `kind`, not the raw OS error: tempfile wraps the errors it returns.
    match e.kind() {
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        io::ErrorKind::QuotaExceeded => "the disk quota is exceeded".to_owned(),
        _ => e.to_string(),
    }
}
