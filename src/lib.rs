//! swarmshare: hand one file to a group of peers without the owner being the bottleneck.
//!
//! The owner splits the file into chunks and serves them; each peer gets a batch from the
//! owner, then downloads the rest from its download neighbor while serving its own upload
//! neighbor, verifying every chunk against the owner's manifest.
//!
//! # Layout
//! Layers, lowest first; each uses only the ones above it in this list:
//! * [`manifest`], [`chunk_set`], [`summary`]: pure data: split arithmetic, the manifest
//!   and its hashes, the set of held chunks, the summary file's text.
//! * [`wire`]: the protocol as pure functions on bytes (frames, messages, hello).
//! * [`connection`]: owns a `TcpStream`; reads and writes whole messages with bounds.
//! * [`chunk_store`], [`holdings`]: chunk files on disk, and the verified set in memory.
//! * [`upload`]: the accept loop and request loop that owner and peers share.
//! * [`owner`], [`peer`]: the two roles' policies; [`peer::picker`] chooses chunks.
//! * [`demo`]: an owner and a ring of peers in one process.
//! * [`config`], [`error`], [`activity`], [`logging`], [`task`]: validated settings,
//!   error types, the activity log, log output, and task plumbing.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod activity;
mod admission;
pub mod book;
pub mod chunk_set;
pub mod chunk_store;
pub mod config;
pub mod connection;
pub mod demo;
pub mod error;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
pub mod holdings;
pub mod identity;
pub mod logging;
pub mod manifest;
pub mod owner;
pub mod peer;
pub mod progress;
pub mod rate;
pub mod report;
mod scheduler;
pub mod sim;
pub mod summary;
pub mod task;
pub mod upload;
pub mod web;
pub mod wire;

pub use error::{Error, PeerError};
