//! A node's long-term key: an X25519 key pair kept in `DIR/.swarmshare/node_key` (the
//! private half in hex, mode 0600, written atomically, never logged), and the peer ID that
//! its public half proves.

use std::fmt;
use std::path::Path;

use rand::RngCore;

use crate::identity::{PeerId, PEER_ID_LEN};

/// The file that holds the node's private key.
pub(crate) const KEY_FILE: &str = "node_key";
/// What the ID's derivation is told, so it means nothing anywhere else.
const ID_CONTEXT: &str = "swarmshare 2026-12 peer id from node key";

/// A node's long-term key pair. Its `Debug` shows only the peer ID.
#[derive(Clone)]
pub(crate) struct NodeKey {
    pub(super) secret: [u8; 32],
    id: PeerId,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The peer ID a public key proves.
pub(crate) fn id_of(public: &[u8]) -> PeerId {
    let derived = blake3::derive_key(ID_CONTEXT, public);
    let mut id = [0u8; PEER_ID_LEN];
    id.copy_from_slice(&derived[..PEER_ID_LEN]);
    PeerId(id)
}

impl NodeKey {
    /// A fresh key.
    pub(crate) fn generate() -> NodeKey {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        NodeKey::from_secret(secret)
    }

    fn from_secret(secret: [u8; 32]) -> NodeKey {
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes();
        NodeKey {
            secret,
            id: id_of(&public),
        }
    }

    /// The peer ID this key proves.
    pub(crate) fn id(&self) -> PeerId {
        self.id
    }

    /// The key kept in `store/node_key`, if there is a valid one.
    pub(crate) fn load(store: &Path) -> Option<NodeKey> {
        let text = std::fs::read_to_string(store.join(KEY_FILE)).ok()?;
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut secret = [0u8; 32];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(NodeKey::from_secret(secret))
    }

    /// Keeps this key in `store/node_key` (mode 0600, atomically), unless it is already
    /// there. A file that does not hold a valid key is replaced.
    pub(crate) fn save(&self, store: &Path) -> std::io::Result<()> {
        if NodeKey::load(store).is_some_and(|k| k.secret == self.secret) {
            return Ok(());
        }
        // A named temporary file is created 0600; it is renamed over the old one.
        let mut tmp = tempfile::NamedTempFile::new_in(store)?;
        let hex: String = self.secret.iter().map(|b| format!("{b:02x}")).collect();
        std::io::Write::write_all(&mut tmp, format!("{hex}\n").as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(store.join(KEY_FILE)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The key in `store/node_key`, or a new one saved there.
    pub(crate) fn load_or_create(store: &Path) -> std::io::Result<NodeKey> {
        if let Some(key) = NodeKey::load(store) {
            return Ok(key);
        }
        let key = NodeKey::generate();
        key.save(store)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_and_ids_derive_from_them() {
        let dir = tempfile::tempdir().unwrap();
        let k = NodeKey::load_or_create(dir.path()).unwrap();
        let again = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(k.id(), again.id());
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(k.secret));
        assert_eq!(k.id(), id_of(public.as_bytes()));
        let hex: String = k.secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{k:?}").contains(&hex[..8]), "the key is never printed");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        assert!(NodeKey::load(dir.path()).is_none());
    }
}
