//! swarmshare: hand one file to a group of peers without the owner being the bottleneck.
//!
//! The owner splits the file into chunks and serves them; each peer gets a batch from the
//! owner, then downloads the rest from its neighbors while serving its own, verifying every
//! chunk against the owner's manifest.
//!
//! # The API
//! * [`owner::Owner`] and [`peer::Peer`], run from the validated settings of [`config`];
//!   [`demo`] runs an owner and a ring of peers in one process.
//! * [`manifest`]: the split rule, the manifest and the swarm ID a file gets.
//! * [`status`]: what a node's directory holds, and what a file's manifest would be.
//! * [`sim`]: the download scheduler in a simulated swarm of any size.
//! * [`error`], [`logging`], [`progress`]: errors, log output, progress bars.
//!
//! # Layout
//! Layers, lowest first; each uses only the ones above it in this list:
//! * `manifest`, `chunk_set`, `summary`: pure data: split arithmetic, the manifest and its
//!   hashes, the set of held chunks, the summary file's text.
//! * `config`, `identity`, `activity`: validated settings, peer IDs, the activity log.
//! * `wire`: the protocol as pure functions on bytes (frames, messages, hello).
//! * `chunk_store`, `holdings`: chunk files on disk, and the verified set in memory.
//! * `connection`: owns a `TcpStream`; reads and writes whole messages with bounds.
//! * `book`, `scheduler`, `admission`: sans-IO policy: whom we know and how, which chunk
//!   from which link and when, which downloaders we serve.
//! * `fetch`, `upload`: the client and server ends of a fetch session.
//! * `owner`, `peer`: the two roles; `peer` drives the scheduler over real sockets,
//!   `sim` over simulated ones.
//! * `web`, `report`, `demo`, `progress`, `logging`: what people see.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod activity;
mod admission;
mod allowance;
#[doc(hidden)]
pub mod blocking;
mod book;
mod chunk_set;
mod chunk_store;
pub mod config;
mod connection;
pub mod demo;
mod dht;
pub mod error;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
mod holdings;
mod identity;
pub mod logging;
mod long_poll;
pub mod manifest;
pub mod owner;
pub mod peer;
mod per_ip;
pub mod progress;
mod rate;
mod reach;
mod relay;
mod report;
mod scheduler;
mod secure;
pub mod sim;
pub mod status;
mod summary;
mod task;
#[cfg(test)]
mod tests;
pub mod text;
mod thread_usage;
pub mod ticket;
mod upload;
mod web;
mod wire;

pub use error::{Error, PeerError};
