//! The hello both sides send first: who they are and which swarm they speak for.
//!
//! Fixed 56 bytes: `"SWSH"`, version `7`, role (its top bit: a two-way link, see
//! [`Hello::both`]), listening port (`u16`, big-endian, 0 when not listening), the 32-byte
//! swarm ID (all zero when a joining peer does not know it yet) and the sender's 16-byte
//! peer ID (all zero when it has none). Checking it is the caller's job: [`Hello::decode`]
//! only parses.

use crate::identity::{PeerId, PEER_ID_LEN};
use crate::manifest::{SwarmId, HASH_LEN};

/// The handshake's magic bytes.
pub(crate) const MAGIC: [u8; 4] = *b"SWSH";
/// The protocol version this build speaks.
pub(crate) const VERSION: u8 = 7;
/// The role byte's top bit: the sender takes both parts on this connection.
const BOTH: u8 = 0x80;
/// The hello's length in bytes.
pub(crate) const HELLO_LEN: usize = 8 + HASH_LEN + PEER_ID_LEN;

/// What a side of a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// A peer joining through the owner: wants the manifest and a batch of chunks.
    Join = 1,
    /// A client that will ask for chunk lists and chunks.
    Fetch = 2,
    /// The server is the owner.
    Owner = 3,
    /// The server is a peer.
    Peer = 4,
    /// A fetching client whose configured download neighbor this server is (the seed's
    /// ring): a server keeps a few seats for these beyond its downloader limit.
    FetchNeighbor = 5,
    /// The server is a peer serving as many downloaders as it takes: it closes at once.
    Busy = 6,
    /// A client of the server as a relay: a reservation, or one side of a circuit.
    Relay = 7,
}

impl Role {
    fn from_u8(b: u8) -> Option<Role> {
        Some(match b {
            1 => Role::Join,
            2 => Role::Fetch,
            3 => Role::Owner,
            4 => Role::Peer,
            5 => Role::FetchNeighbor,
            6 => Role::Busy,
            7 => Role::Relay,
            _ => return None,
        })
    }
}

/// One side's hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The sender's role.
    pub role: Role,
    /// The port the sender listens on, 0 if none.
    pub listen_port: u16,
    /// The swarm the sender speaks for; `None` for a joining peer that does not know it yet.
    pub swarm: Option<SwarmId>,
    /// The sender's identity; [`PeerId::NONE`] if it has none (a test client).
    pub peer: PeerId,
    /// A two-way link: a fetching client offers to answer the server's requests too, and a
    /// peer's answer takes the offer (it will fetch as well). Only with `FETCH`,
    /// `FETCH_NEIGHBOR` and `PEER`.
    pub both: bool,
}

/// Why a hello was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not a swarmshare connection.
    #[error("not a swarmshare peer (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// Another protocol version.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// An unknown role byte.
    #[error("unknown role {0}")]
    UnknownRole(u8),
}

impl Hello {
    /// The hello's bytes.
    pub(crate) fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.role as u8 | if self.both { BOTH } else { 0 };
        out[6..8].copy_from_slice(&self.listen_port.to_be_bytes());
        if let Some(id) = self.swarm {
            out[8..8 + HASH_LEN].copy_from_slice(&id.0);
        }
        out[8 + HASH_LEN..].copy_from_slice(&self.peer.0);
        out
    }

    /// Parses a hello.
    pub(crate) fn decode(buf: &[u8; HELLO_LEN]) -> Result<Hello, HandshakeError> {
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        if magic != MAGIC {
            return Err(HandshakeError::BadMagic(magic));
        }
        if buf[4] != VERSION {
            return Err(HandshakeError::UnsupportedVersion(buf[4]));
        }
        let both = buf[5] & BOTH != 0;
        let role = Role::from_u8(buf[5] & !BOTH)
            .filter(|r| !both || matches!(r, Role::Fetch | Role::FetchNeighbor | Role::Peer))
            .ok_or(HandshakeError::UnknownRole(buf[5]))?;
        let listen_port = u16::from_be_bytes([buf[6], buf[7]]);
        let mut id = [0u8; HASH_LEN];
        id.copy_from_slice(&buf[8..8 + HASH_LEN]);
        let swarm = (id != [0u8; HASH_LEN]).then_some(SwarmId(id));
        let mut peer = [0u8; PEER_ID_LEN];
        peer.copy_from_slice(&buf[8 + HASH_LEN..]);
        Ok(Hello {
            role,
            listen_port,
            swarm,
            peer: PeerId(peer),
            both,
        })
    }
}

/// The hello a client sends: `role` is [`Role::Join`] or [`Role::Fetch`]; `swarm` is
/// `None` only for a joining peer that does not know the swarm yet.
pub(crate) fn client_hello(role: Role, listen_port: u16, swarm: Option<SwarmId>, peer: PeerId) -> Hello {
    Hello {
        role,
        listen_port,
        swarm,
        peer,
        both: false,
    }
}

/// The hello a fetching client sends; `neighbor` if the server is its configured download
/// neighbor.
pub(crate) fn fetch_hello(listen_port: u16, swarm: SwarmId, peer: PeerId, neighbor: bool) -> Hello {
    let role = if neighbor {
        Role::FetchNeighbor
    } else {
        Role::Fetch
    };
    client_hello(role, listen_port, Some(swarm), peer)
}

/// The hello a server sends: `role` is [`Role::Owner`] or [`Role::Peer`].
pub(crate) fn server_hello(role: Role, listen_port: u16, swarm: SwarmId, peer: PeerId) -> Hello {
    Hello {
        role,
        listen_port,
        swarm: Some(swarm),
        peer,
        both: false,
    }
}

/// Why a well-formed hello does not fit the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloRefused {
    /// The other side announced a role that does not fit this connection.
    #[error("unexpected role {got:?} (expected {expected})")]
    Role {
        /// What was acceptable.
        expected: &'static str,
        /// What arrived.
        got: Role,
    },
    /// The other side speaks for another swarm.
    #[error("swarm mismatch: we serve {ours}, they sent {}", theirs.map_or("none".to_owned(), |t| t.to_string()))]
    Swarm {
        /// Our swarm.
        ours: SwarmId,
        /// Theirs.
        theirs: Option<SwarmId>,
    },
    /// The server (peer `0`) serves as many downloaders as it takes.
    #[error("the peer is busy: it serves as many downloaders as it takes")]
    Busy(PeerId),
}

/// What a client that passed [`check_client`] came for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The manifest and a batch, then fetching.
    Join,
    /// Fetching only; `neighbor` if it names this server as its download neighbor.
    Fetch {
        /// The client's configured download neighbor is this server.
        neighbor: bool,
    },
    /// The server as a relay.
    Relay,
}

/// Checks a client's hello at a server of swarm `ours`: `JOIN` with our swarm ID or none,
/// `FETCH` only with ours.
pub(crate) fn check_client(hello: &Hello, ours: SwarmId) -> Result<Purpose, HelloRefused> {
    let swarm_ok = hello.swarm == Some(ours);
    match hello.role {
        Role::Join if swarm_ok || hello.swarm.is_none() => Ok(Purpose::Join),
        Role::Fetch if swarm_ok => Ok(Purpose::Fetch { neighbor: false }),
        Role::FetchNeighbor if swarm_ok => Ok(Purpose::Fetch { neighbor: true }),
        Role::Relay if swarm_ok => Ok(Purpose::Relay),
        Role::Join | Role::Fetch | Role::FetchNeighbor | Role::Relay => Err(HelloRefused::Swarm {
            ours,
            theirs: hello.swarm,
        }),
        got => Err(HelloRefused::Role {
            expected: "JOIN, FETCH or RELAY",
            got,
        }),
    }
}

/// Checks a server's hello on a fetch session for swarm `ours`: an owner or a peer of it
/// (one that is busy is refused with [`HelloRefused::Busy`], naming itself).
pub(crate) fn check_server(hello: &Hello, ours: SwarmId) -> Result<(), HelloRefused> {
    if hello.role == Role::Busy {
        return Err(HelloRefused::Busy(hello.peer));
    }
    if !matches!(hello.role, Role::Owner | Role::Peer) {
        return Err(HelloRefused::Role {
            expected: "OWNER or PEER",
            got: hello.role,
        });
    }
    if hello.swarm != Some(ours) {
        return Err(HelloRefused::Swarm {
            ours,
            theirs: hello.swarm,
        });
    }
    Ok(())
}

/// The ID a server's hello proves is at its address: a peer of swarm `ours`, busy or not.
/// (An owner is not a peer anyone claims to be; a joining peer answers busy.)
pub(crate) fn answered_as(hello: &Hello, ours: SwarmId) -> Option<PeerId> {
    (matches!(hello.role, Role::Peer | Role::Busy) && hello.swarm == Some(ours)).then_some(hello.peer)
}

/// Checks the hello of the server a peer joins through: the owner, or (with `via_peer`, a
/// `--join`) a peer.
pub(crate) fn check_join_server(hello: &Hello, via_peer: bool) -> Result<(), HelloRefused> {
    match hello.role {
        Role::Owner => Ok(()),
        Role::Peer if via_peer => Ok(()),
        got => Err(HelloRefused::Role {
            expected: if via_peer { "OWNER or PEER" } else { "OWNER" },
            got,
        }),
    }
}
