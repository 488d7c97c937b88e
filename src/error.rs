//! Error types, kept in two families as the architecture requires:
//!
//! * [`Error`]: fatal to a node (bad input, a port in use, a disk that fails, a manifest
//!   the peer refuses). The binary prints it as one line and exits non-zero.
//! * [`PeerError`]: fatal to one connection only. It is logged with the other side's
//!   address and the connection is closed; the node goes on serving everyone else.

use std::io;
use std::net::SocketAddr;

use crate::chunk_store::StoreError;
use crate::config::{ConfigError, ResolveError};
use crate::identity::PeerId;
use crate::manifest::{ChunkId, HashFileError, ManifestError, SwarmId};
use crate::secure::SecureError;
use crate::wire::handshake::HelloRefused;
use crate::wire::{DecodeError, HandshakeError, Role};

/// A failure that stops a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening port could not be bound.
    #[error("cannot listen on {addr}: {}", bind_reason(.source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file to share could not be read or split.
    #[error(transparent)]
    HashFile(#[from] HashFileError),
    /// The node's directory could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node's directory failed it after the download had started (exit code 1, even
    /// for what would have been refused as input at the start).
    #[error(transparent)]
    StoreWhileRunning(StoreError),
    /// The owner sent a manifest this peer refuses.
    #[error("the owner at {addr} sent a manifest this peer refuses: {source}")]
    BadManifest {
        /// The owner's address.
        addr: SocketAddr,
        /// Why it was refused.
        #[source]
        source: ManifestError,
    },
    /// The owner's manifest does not hash to the swarm ID it announced.
    #[error("the owner at {addr} announced swarm {announced} but sent the manifest of swarm {actual}")]
    ManifestIdMismatch {
        /// The owner's address.
        addr: SocketAddr,
        /// The swarm ID in its hello.
        announced: SwarmId,
        /// The manifest's hash.
        actual: SwarmId,
    },
    /// `status` was pointed at a directory without a swarmshare store.
    #[error("{} holds no swarmshare data (no .swarmshare/manifest); give the directory a peer or owner used with --dir", crate::text::Quoted(.0))]
    NoStore(std::path::PathBuf),
    /// The OWNER endpoint answered, but not as an owner.
    #[error("{addr} is not a swarmshare owner (it answered as {role:?}); check the OWNER argument")]
    NotAnOwner {
        /// The address dialled.
        addr: SocketAddr,
        /// The role it announced.
        role: Role,
    },
    /// The node it joins through closed the connection in the encrypted handshake: it
    /// did not take our proof of the swarm's secret (a private swarm), or it is private
    /// and we came without a ticket.
    #[error("{addr} refused {}", if *private { "the ticket (a wrong ticket, or another swarm's)".to_owned() } else { "the connection in the handshake: a private swarm needs --ticket".to_owned() })]
    Refused {
        /// The address dialled.
        addr: SocketAddr,
        /// Whether we came with a ticket.
        private: bool,
    },
    /// The node at the ticket's address is not the ticket's owner.
    #[error("{addr} answered as peer {answered}, but the ticket's owner is {owner}")]
    NotTheTicketsOwner {
        /// The address dialled.
        addr: SocketAddr,
        /// The owner the ticket names.
        owner: PeerId,
        /// Who answered.
        answered: PeerId,
    },
    /// The manifest is not of the swarm the ticket names.
    #[error("{addr} sent the manifest of swarm {actual}, but the ticket is for swarm {ticket}")]
    NotTheTicketsSwarm {
        /// The address dialled.
        addr: SocketAddr,
        /// The ticket's swarm.
        ticket: SwarmId,
        /// The manifest's.
        actual: SwarmId,
    },
    /// The demo's swarm did not produce identical copies in time.
    #[error("demo failed: {0}")]
    Demo(String),
    /// A runtime or task failure that is not the user's input.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// This error, met once the download had started: a failure while running, whatever
    /// its kind.
    pub(crate) fn while_running(self) -> Error {
        match self {
            Error::Store(e) => Error::StoreWhileRunning(e),
            other => other,
        }
    }

    /// The process exit code for this error: 2 when the input (arguments, the file, a
    /// port, the directory) was refused before anything ran, 1 for failures while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Bind { .. }
            | Error::HashFile(_)
            | Error::NotAnOwner { .. }
            | Error::NoStore(_) => 2,
            Error::Store(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

fn bind_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "the port is already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "no such address on this host".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// A failure that ends one connection.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The address did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// Reading or writing failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stage took longer than its limit.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The other side closed the connection in the middle of a frame or exchange.
    #[error("connection closed {0}")]
    Closed(&'static str),
    /// The bytes received are not a valid frame or message.
    #[error("protocol violation: {0}")]
    Decode(#[from] DecodeError),
    /// The hello was not valid.
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The encrypted handshake or transport failed: a foreign or old client, a key or
    /// swarm secret not proven, or bytes changed in transit.
    #[error("secure channel: {0}")]
    Secure(#[from] SecureError),
    /// The other side speaks for another swarm.
    #[error("swarm mismatch: we serve {ours}, they sent {}", theirs.map_or("none".to_owned(), |t| t.to_string()))]
    SwarmMismatch {
        /// Our swarm.
        ours: SwarmId,
        /// Theirs.
        theirs: Option<SwarmId>,
    },
    /// The other side announced a role that does not fit this connection.
    #[error("unexpected role {got:?} (expected {expected})")]
    UnexpectedRole {
        /// What was acceptable.
        expected: &'static str,
        /// What arrived.
        got: Role,
    },
    /// A message that does not fit the connection's state.
    #[error("unexpected {got} while {state}")]
    UnexpectedMessage {
        /// What the connection was doing.
        state: &'static str,
        /// The message's name.
        got: &'static str,
    },
    /// A chunk ID outside the swarm's range.
    #[error("chunk {id} is out of range (the swarm has {count} chunks)")]
    ChunkOutOfRange {
        /// The ID.
        id: ChunkId,
        /// The swarm's chunk count.
        count: u32,
    },
    /// A chunk list for the wrong number of chunks.
    #[error("chunk list covers {got} chunks, the swarm has {expected}")]
    ListLength {
        /// The swarm's chunk count.
        expected: u32,
        /// The list's.
        got: u32,
    },
    /// A chunk whose bytes do not match the manifest.
    #[error("chunk {0} failed verification against the manifest")]
    HashMismatch(ChunkId),
    /// A chunk that was not the one requested.
    #[error("received chunk {got} but requested {requested}")]
    Unrequested {
        /// What we asked for.
        requested: ChunkId,
        /// What came.
        got: ChunkId,
    },
    /// The server (this peer) serves as many downloaders as it takes; try another.
    #[error("the peer is busy: it serves as many downloaders as it takes")]
    Busy(PeerId),
    /// The server listed a chunk, then answered NOT_HAVE for it.
    #[error("chunk {0} was listed, then refused with NOT_HAVE")]
    ListedNotHeld(ChunkId),
    /// Reading a held chunk for a request failed: this connection ends, the node goes on.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A relay or its client broke the rules of reservations and circuits.
    #[error("relay: {0}")]
    Relay(&'static str),
}

impl From<HelloRefused> for PeerError {
    fn from(e: HelloRefused) -> PeerError {
        match e {
            HelloRefused::Role { expected, got } => PeerError::UnexpectedRole { expected, got },
            HelloRefused::Swarm { ours, theirs } => PeerError::SwarmMismatch { ours, theirs },
            HelloRefused::Busy(peer) => PeerError::Busy(peer),
        }
    }
}

impl PeerError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: &'static str) -> impl FnOnce(io::Error) -> PeerError {
        move |source| PeerError::Io { what, source }
    }

    /// A read that failed: a close before the bytes came, or an I/O error.
    pub(crate) fn from_read(e: io::Error, what: &'static str) -> PeerError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => PeerError::Closed("during the handshake"),
            _ => PeerError::Io { what, source: e },
        }
    }

    /// Whether the other side failed to prove its key or the swarm's secret (logged as
    /// `auth_failed`).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, PeerError::Secure(e) if e.is_auth())
    }

    /// Whether the other side broke the protocol after a good handshake (a strike against
    /// it), rather than failing, timing out or being the wrong node (which only backoff
    /// answers).
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            PeerError::Decode(_)
                | PeerError::UnexpectedMessage { .. }
                | PeerError::ChunkOutOfRange { .. }
                | PeerError::ListLength { .. }
                | PeerError::HashMismatch(_)
                | PeerError::Unrequested { .. }
                | PeerError::ListedNotHeld(_)
                | PeerError::Relay(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_once_running_is_a_failure_not_bad_input() {
        let taken = || Error::Store(StoreError::Occupied("DIR/tree/a".into()));
        assert_eq!(taken().exit_code(), 2, "refused before anything ran");
        let running = taken().while_running();
        assert_eq!(running.exit_code(), 1, "met after the download started");
        assert_eq!(running.to_string(), taken().to_string(), "the same one line");
        // Anything else keeps its code.
        let config = Error::NoStore("DIR".into());
        assert_eq!(config.while_running().exit_code(), 2);
    }
}
