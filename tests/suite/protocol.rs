//! The wire protocol as PROTOCOL.md states it, written again on the test side so that the
//! scripted peers of the suite check the binary against the specification, not against
//! the library's own codec: the hello (§1), frames (§2) and the messages they use (§3).

use swarmshare::manifest::SwarmId;

/// The hello's length (§1).
pub const HELLO_LEN: usize = 56;
/// The protocol version (§1).
pub const VERSION: u8 = 7;
pub const ROLE_JOIN: u8 = 1;
pub const ROLE_FETCH: u8 = 2;
pub const ROLE_OWNER: u8 = 3;
pub const ROLE_PEER: u8 = 4;
/// The role byte's bit for a two-way link (§1).
pub const BOTH: u8 = 0x80;

pub const MSG_MANIFEST: u8 = 1;
pub const MSG_BATCH_END: u8 = 2;
pub const MSG_LIST_REQUEST: u8 = 3;
pub const MSG_LIST: u8 = 4;
pub const MSG_REQUEST: u8 = 5;
pub const MSG_CHUNK: u8 = 6;
pub const MSG_NOT_HAVE: u8 = 7;
pub const MSG_LIST_WAIT: u8 = 10;

/// A hello (§1): `swarm` `None` is all zero; `peer` must be the ID the sender's key
/// proves (a scripted client's is its stream's).
pub fn hello(role: u8, listen_port: u16, swarm: Option<SwarmId>, peer: [u8; 16]) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..4].copy_from_slice(b"SWSH");
    h[4] = VERSION;
    h[5] = role;
    h[6..8].copy_from_slice(&listen_port.to_be_bytes());
    if let Some(s) = swarm {
        h[8..40].copy_from_slice(&s.0);
    }
    h[40..].copy_from_slice(&peer);
    h
}

/// The messages the scripted peers send or read (§3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Manifest(Vec<u8>),
    BatchEnd(u32),
    ListRequest,
    /// `count` chunks, bit `i` set for each held chunk (most significant bit first).
    List {
        count: u32,
        bits: Vec<u8>,
    },
    Request(u32),
    Chunk {
        id: u32,
        data: Vec<u8>,
    },
    NotHave(u32),
    ListWait(u32),
}

impl Msg {
    /// A list naming every one of `count` chunks.
    pub fn full_list(count: u32) -> Msg {
        let mut bits = vec![0xFFu8; (count as usize).div_ceil(8)];
        if count % 8 != 0 {
            if let Some(last) = bits.last_mut() {
                *last = 0xFF << (8 - count % 8);
            }
        }
        Msg::List { count, bits }
    }

    /// How many chunks a list names.
    pub fn listed(&self) -> Option<u32> {
        match self {
            Msg::List { bits, .. } => Some(bits.iter().map(|b| b.count_ones()).sum()),
            _ => None,
        }
    }

    /// The message as one frame: length prefix, type, body (§2).
    pub fn frame(&self) -> Vec<u8> {
        let (kind, body): (u8, Vec<u8>) = match self {
            Msg::Manifest(m) => (MSG_MANIFEST, m.clone()),
            Msg::BatchEnd(n) => (MSG_BATCH_END, n.to_be_bytes().to_vec()),
            Msg::ListRequest => (MSG_LIST_REQUEST, Vec::new()),
            Msg::List { count, bits } => (MSG_LIST, [&count.to_be_bytes()[..], bits].concat()),
            Msg::Request(id) => (MSG_REQUEST, id.to_be_bytes().to_vec()),
            Msg::Chunk { id, data } => (MSG_CHUNK, [&id.to_be_bytes()[..], data].concat()),
            Msg::NotHave(id) => (MSG_NOT_HAVE, id.to_be_bytes().to_vec()),
            Msg::ListWait(ms) => (MSG_LIST_WAIT, ms.to_be_bytes().to_vec()),
        };
        let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        out.push(kind);
        out.extend(body);
        out
    }

    /// Parses a frame's payload (type and body); `None` if it is not one of these.
    pub fn decode(payload: &[u8]) -> Option<Msg> {
        let (&kind, body) = payload.split_first()?;
        let u32_at = |b: &[u8]| b.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        Some(match kind {
            MSG_MANIFEST => Msg::Manifest(body.to_vec()),
            MSG_BATCH_END => Msg::BatchEnd(u32_at(body)?),
            MSG_LIST_REQUEST => Msg::ListRequest,
            MSG_LIST => Msg::List {
                count: u32_at(body)?,
                bits: body.get(4..)?.to_vec(),
            },
            MSG_REQUEST => Msg::Request(u32_at(body)?),
            MSG_CHUNK => Msg::Chunk {
                id: u32_at(body)?,
                data: body.get(4..)?.to_vec(),
            },
            MSG_NOT_HAVE => Msg::NotHave(u32_at(body)?),
            MSG_LIST_WAIT => Msg::ListWait(u32_at(body)?),
            _ => return None,
        })
    }
}

/// The chunk IDs a summary file lists (README, "On disk": one decimal ID a line, `#`
/// comments).
pub fn summary_ids(text: &str) -> Vec<u32> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse().expect("a chunk ID"))
        .collect()
}

/// The store's directory inside a node's directory (README, "On disk").
pub const STORE_DIR: &str = ".swarmshare";
