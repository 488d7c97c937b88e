//! `PeerId`: a node's identity, independent of its address.
//!
//! Sixteen random bytes, made once and kept in `DIR/.swarmshare/peer_id` (as 32 hex
//! digits), so a node that restarts, or comes back from another address, is the same node
//! to the swarm. Connections and the address book key on it, never on the address.

use std::fmt;
use std::path::Path;

use rand::RngCore;

/// Length of a peer ID in bytes.
pub(crate) const PEER_ID_LEN: usize = 16;

/// A node's stable identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; PEER_ID_LEN]);

impl PeerId {
    /// The "no identity" value a hello carries when the sender has none.
    pub const NONE: PeerId = PeerId([0; PEER_ID_LEN]);

    /// A fresh random ID (never [`PeerId::NONE`]).
    pub fn random() -> PeerId {
        let mut id = [0u8; PEER_ID_LEN];
        while id == [0; PEER_ID_LEN] {
            rand::rng().fill_bytes(&mut id);
        }
        PeerId(id)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<PeerId> {
        let text = text.trim();
        if text.len() != 2 * PEER_ID_LEN || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; PEER_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        (id != [0; PEER_ID_LEN]).then_some(PeerId(id))
    }

    /// The first 4 bytes in hex, enough to tell peers apart in a log line.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The ID kept in `store/peer_id`, if there is a valid one.
    pub fn load(store: &Path) -> Option<PeerId> {
        let text = std::fs::read_to_string(store.join("peer_id")).ok()?;
        PeerId::from_hex(&text)
    }

    /// Keeps this ID in `store/peer_id` (atomically), unless it is already there. A file
    /// that does not hold a valid ID is replaced: the ID only has to be stable, not secret.
    pub fn save(&self, store: &Path) -> std::io::Result<()> {
        if PeerId::load(store) == Some(*self) {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(store)?;
        std::io::Write::write_all(&mut tmp, format!("{self}\n").as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(store.join("peer_id")).map_err(|e| e.error)?;
        Ok(())
    }

    /// The ID in `store/peer_id`, or a new one saved there.
    pub fn load_or_create(store: &Path) -> std::io::Result<PeerId> {
        if let Some(id) = PeerId::load(store) {
            return Ok(id);
        }
        let id = PeerId::random();
        id.save(store)?;
        Ok(id)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}
