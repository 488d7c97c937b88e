//! Unit tests of the crate's inner modules (moved here from the integration suite when
//! those modules stopped being public): the codec, the chunk set and summary, the rate
//! limiter, the owner's hand-out, the connection's chunk sending and the chunk store.

mod batch;
mod chunk_set;
pub(crate) mod connection;
mod dht;
mod duplex;
mod log_writer;
mod rate;
mod review;
mod store;
mod summary;
mod tree_store;
mod wire;
