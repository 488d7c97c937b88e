//! Every connection's cryptography: the node's long-term key, and the Noise handshake and
//! transport that [`crate::connection::Connection`] runs over its socket.
//!
//! * **Keys.** A node's key is an X25519 key pair kept in `DIR/.swarmshare/node_key` (the
//!   private half in hex, mode 0600, written atomically, never logged). Its peer ID is the
//!   first 16 bytes of a BLAKE3 key derivation from the public half, so a node proves its
//!   ID in every handshake and nobody can speak under another node's ID.
//! * **Handshake.** `Noise_XXpsk0_25519_AESGCM_SHA256` (the `snow` crate): both sides'
//!   static keys are exchanged encrypted and authenticated; the pre-shared key is mixed in
//!   before the first message, so in a private swarm a dialer that does not hold the
//!   swarm secret fails on its very first message, before the listener has sent anything.
//!   In an open swarm the pre-shared key is a published constant. An 8-byte preamble in
//!   clear comes first (`"SWSH"`, the protocol version, the access mode) and is the Noise
//!   prologue, so it cannot be changed in transit either.
//! * **Transport.** After the handshake every byte travels in Noise transport messages of
//!   at most 65,535 bytes, each behind a 2-byte big-endian length: AES-256-GCM with a
//!   counter nonce. A flipped byte fails the tag and ends the connection.
//!
//! PROTOCOL.md §0 gives the bytes; this module only builds and checks them (the key and
//! its file in [`key`]).

use std::fmt;

use crate::identity::PeerId;
use crate::wire::handshake::{MAGIC, VERSION};

mod key;

pub(crate) use key::{id_of, NodeKey};

/// The Noise protocol every connection speaks.
pub(crate) const PATTERN: &str = "Noise_XXpsk0_25519_AESGCM_SHA256";
/// The clear preamble's length: magic, version, access mode, two zero bytes.
pub(crate) const PREAMBLE_LEN: usize = 8;
/// The longest Noise message (handshake or transport), without its length prefix.
pub(crate) const MAX_MESSAGE: usize = 65_535;
/// The authentication tag each transport message carries.
pub(crate) const TAG_LEN: usize = 16;
/// The most plaintext one transport message carries.
pub(crate) const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG_LEN;
/// The length prefix of every Noise message.
pub(crate) const LEN_PREFIX: usize = 2;
/// The longest handshake message this handshake produces (the second: 32 + 48 + 16).
pub(crate) const MAX_HANDSHAKE_MESSAGE: usize = 128;
/// What a node at its connection limit sends instead of the handshake's second message,
/// then closes: the dialer tries again later, rather than taking the close for a refusal.
pub(crate) const AT_LIMIT: [u8; PREAMBLE_LEN] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0xFF, 0, 0];
const OPEN_PSK_CONTEXT: &str = "swarmshare 2026-12 open swarm pre-shared key";

/// Who may connect: anyone (an open swarm) or only holders of the swarm's secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// The pre-shared key is the published constant.
    Open,
    /// The pre-shared key is derived from the swarm's secret.
    Private([u8; 32]),
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Open => "Open",
            Access::Private(_) => "Private",
        })
    }
}

impl Access {
    /// The preamble's mode byte.
    fn mode(&self) -> u8 {
        match self {
            Access::Open => 0,
            Access::Private(_) => 1,
        }
    }

    fn psk(&self) -> [u8; 32] {
        match self {
            Access::Open => blake3::derive_key(OPEN_PSK_CONTEXT, &[]),
            Access::Private(psk) => *psk,
        }
    }
}

/// What a node brings to every handshake.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) key: NodeKey,
    pub(crate) access: Access,
}

impl Credentials {
    /// A fresh key in an open swarm (tests, one-off clients).
    #[cfg(test)]
    pub(crate) fn fresh() -> std::sync::Arc<Credentials> {
        std::sync::Arc::new(Credentials {
            key: NodeKey::generate(),
            access: Access::Open,
        })
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecureError {
    /// Not a swarmshare connection.
    #[error("not a swarmshare peer (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// Another protocol version.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// The other side is in an open swarm and we in a private one, or the reverse.
    #[error("the other side is {theirs} and this node {ours}")]
    Mode {
        /// This node's mode.
        ours: &'static str,
        /// Theirs.
        theirs: &'static str,
    },
    /// A handshake or transport message of a length this protocol never sends.
    #[error("a Noise message of {0} bytes, a length this protocol never sends")]
    BadLength(usize),
    /// The other side is at its connection limit (it said so): try again later.
    #[error("the node is at its connection limit")]
    AtLimit,
    /// Something failed on this side (the cipher could not be set up): not the other's doing.
    #[error("{0}")]
    Local(String),
    /// A transport message failed its tag: changed in transit, or not from the other side.
    #[error("a message failed its authentication tag (changed in transit?)")]
    Tampered,
    /// The other side did not prove the swarm's secret or its key.
    #[error("authentication failed: {0}")]
    Auth(String),
}

impl SecureError {
    /// Whether the other side failed to prove what a private swarm asks (an intruder,
    /// rather than a broken or foreign client).
    pub(crate) fn is_auth(&self) -> bool {
        matches!(self, SecureError::Auth(_) | SecureError::Mode { .. })
    }
}

fn mode_name(mode: u8) -> &'static str {
    if mode == 0 {
        "in an open swarm"
    } else {
        "in a private swarm"
    }
}

/// The preamble a dialer sends.
pub(crate) fn preamble(access: &Access) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = access.mode();
    out
}

/// Checks a dialer's preamble against this node's access.
pub(crate) fn check_preamble(bytes: &[u8; PREAMBLE_LEN], ours: &Access) -> Result<(), SecureError> {
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != MAGIC {
        return Err(SecureError::BadMagic(magic));
    }
    if bytes[4] != VERSION {
        return Err(SecureError::UnsupportedVersion(bytes[4]));
    }
    if bytes[5] > 1 || bytes[6..] != [0, 0] {
        return Err(SecureError::Auth(format!(
            "unknown access mode {:02x?}",
            &bytes[5..]
        )));
    }
    if bytes[5] != ours.mode() {
        return Err(SecureError::Mode {
            ours: mode_name(ours.mode()),
            theirs: mode_name(bytes[5]),
        });
    }
    Ok(())
}

/// The Noise handshake state for one side of a connection.
pub(crate) fn start(creds: &Credentials, initiator: bool) -> Result<snow::HandshakeState, SecureError> {
    let params: snow::params::NoiseParams = PATTERN
        .parse()
        .map_err(|e| SecureError::Local(format!("noise parameters: {e}")))?;
    let psk = creds.access.psk();
    let prologue = preamble(&creds.access);
    let builder = snow::Builder::new(params)
        .local_private_key(&creds.key.secret)
        .and_then(|b| b.psk(0, &psk))
        .and_then(|b| b.prologue(&prologue))
        .map_err(|e| SecureError::Local(format!("noise setup: {e}")))?;
    let state = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    };
    state.map_err(|e| SecureError::Local(format!("noise setup: {e}")))
}

/// Writes the next handshake message (with its length prefix) into `out`.
pub(crate) fn write_handshake(
    state: &mut snow::HandshakeState,
    out: &mut Vec<u8>,
) -> Result<(), SecureError> {
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
    let n = state
        .write_message(&[], &mut buf)
        .map_err(|e| SecureError::Auth(e.to_string()))?;
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&buf[..n]);
    Ok(())
}

/// Reads a handshake message (without its prefix): a failure is the other side's.
pub(crate) fn read_handshake(state: &mut snow::HandshakeState, message: &[u8]) -> Result<(), SecureError> {
    if message.len() > MAX_HANDSHAKE_MESSAGE {
        return Err(SecureError::BadLength(message.len()));
    }
    let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE];
    let n = state
        .read_message(message, &mut payload)
        .map_err(|e| SecureError::Auth(format!("{e}")))?;
    // This handshake carries no payloads: anything in one is not ours.
    if n != 0 {
        return Err(SecureError::Auth("a handshake payload".to_owned()));
    }
    Ok(())
}

/// The transport once the handshake is done, and the peer ID the other side proved.
pub(crate) fn finish(state: snow::HandshakeState) -> Result<(snow::TransportState, PeerId), SecureError> {
    let transport = state
        .into_transport_mode()
        .map_err(|e| SecureError::Auth(format!("{e}")))?;
    let remote = transport
        .get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| SecureError::Auth("no static key".to_owned()))?;
    Ok((transport, proven_id(remote)?))
}

/// The ID a remote static key proves. A key of small order (which makes every
/// Diffie-Hellman result the same, so proves nothing) is refused, and the bit X25519
/// ignores is cleared first, so one key is one ID.
fn proven_id(mut remote: [u8; 32]) -> Result<PeerId, SecureError> {
    remote[31] &= 0x7f;
    // Any scalar will do: a small-order point times a clamped scalar is the identity.
    let probe = x25519_dalek::StaticSecret::from([1u8; 32]);
    if !probe
        .diffie_hellman(&x25519_dalek::PublicKey::from(remote))
        .was_contributory()
    {
        return Err(SecureError::Auth("a static key of small order".to_owned()));
    }
    Ok(id_of(&remote))
}

/// Seals `plain` into transport messages appended to `out`, each behind its length.
pub(crate) fn seal(
    transport: &mut snow::TransportState,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SecureError> {
    let end = seal_at(transport, plain, out, out.len())?;
    out.truncate(end);
    Ok(())
}

/// Seals `plain` into `out` from `at` on (as [`seal`] does), growing `out` if it is too
/// short; returns where the messages end. `out` is never cleared or shrunk, so a buffer
/// reused for every chunk sent is not zeroed again each time.
pub(crate) fn seal_at(
    transport: &mut snow::TransportState,
    plain: &[u8],
    out: &mut Vec<u8>,
    mut at: usize,
) -> Result<usize, SecureError> {
    let pieces = plain.len().div_ceil(MAX_PLAINTEXT);
    let most = at + plain.len() + pieces * (LEN_PREFIX + TAG_LEN);
    if out.len() < most {
        out.resize(most, 0);
    }
    for piece in plain.chunks(MAX_PLAINTEXT) {
        let n = transport
            .write_message(piece, &mut out[at + LEN_PREFIX..])
            .map_err(|e| SecureError::Local(format!("sealing: {e}")))?;
        out[at..at + LEN_PREFIX].copy_from_slice(&(n as u16).to_be_bytes());
        at += LEN_PREFIX + n;
    }
    Ok(at)
}

/// What [`open_one`] found at the front of the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// A whole transport message, now opened.
    One,
    /// No whole message: the next needs this many more bytes (0 if none has begun).
    Short(usize),
}

/// Opens every whole transport message at the front of `cipher` into `plain`, removing
/// it from `cipher`. Returns how many more bytes the next message needs (0 if none has
/// begun). A message that fails its tag is an error: the connection is over.
pub(crate) fn open(
    transport: &mut snow::TransportState,
    cipher: &mut bytes::BytesMut,
    plain: &mut bytes::BytesMut,
) -> Result<usize, SecureError> {
    loop {
        if let Opened::Short(short) = open_one(transport, cipher, plain)? {
            return Ok(short);
        }
    }
}

/// Opens the transport message at the front of `cipher`, if it is all there, appending
/// its plaintext to `plain` (which needs room for the tag as well while it is opened).
pub(crate) fn open_one(
    transport: &mut snow::TransportState,
    cipher: &mut bytes::BytesMut,
    plain: &mut bytes::BytesMut,
) -> Result<Opened, SecureError> {
    if cipher.len() < LEN_PREFIX {
        return Ok(Opened::Short(if cipher.is_empty() {
            0
        } else {
            LEN_PREFIX - cipher.len()
        }));
    }
    let len = usize::from(u16::from_be_bytes([cipher[0], cipher[1]]));
    if len < TAG_LEN {
        return Err(SecureError::BadLength(len));
    }
    if cipher.len() < LEN_PREFIX + len {
        return Ok(Opened::Short(LEN_PREFIX + len - cipher.len()));
    }
    let at = plain.len();
    // Room for the tag too: given that, snow opens the message in `plain` itself;
    // given exactly the plaintext's length it copies the message into a fresh
    // allocation first and copies the result again (a third of a received chunk's
    // CPU in the capped benchmark).
    plain.resize(at + len, 0);
    let opened = transport.read_message(&cipher[LEN_PREFIX..LEN_PREFIX + len], &mut plain[at..]);
    let Ok(n) = opened else {
        // Nothing of a message that fails its tag is kept.
        plain.truncate(at);
        return Err(SecureError::Tampered);
    };
    plain.truncate(at + n);
    let _ = cipher.split_to(LEN_PREFIX + len);
    Ok(Opened::One)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(
        a: &Credentials,
        b: &Credentials,
    ) -> Result<(snow::TransportState, snow::TransportState), SecureError> {
        let mut i = start(a, true)?;
        let mut r = start(b, false)?;
        let mut m = Vec::new();
        write_handshake(&mut i, &mut m)?;
        read_handshake(&mut r, &m[2..])?;
        m.clear();
        write_handshake(&mut r, &mut m)?;
        read_handshake(&mut i, &m[2..])?;
        m.clear();
        write_handshake(&mut i, &mut m)?;
        read_handshake(&mut r, &m[2..])?;
        let (ti, rid) = finish(i)?;
        let (tr, iid) = finish(r)?;
        assert_eq!(rid, b.key.id());
        assert_eq!(iid, a.key.id());
        Ok((ti, tr))
    }

    fn open_creds() -> Credentials {
        Credentials {
            key: NodeKey::generate(),
            access: Access::Open,
        }
    }

    #[test]
    fn both_sides_learn_the_others_proven_id_and_bytes_round_trip() {
        let (mut a, mut b) = pair(&open_creds(), &open_creds()).unwrap();
        let plain: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        seal(&mut a, &plain, &mut wire).unwrap();
        assert!(wire.len() > plain.len());
        assert!(
            !wire.windows(64).any(|w| w == &plain[1000..1064]),
            "ciphertext is not the plaintext"
        );
        let mut cipher = bytes::BytesMut::from(&wire[..]);
        let mut out = bytes::BytesMut::new();
        assert_eq!(open(&mut b, &mut cipher, &mut out).unwrap(), 0);
        assert_eq!(&out[..], &plain[..]);
    }

    #[test]
    fn sealing_over_a_used_buffer_gives_the_same_messages() {
        let (mut a, mut b) = pair(&open_creds(), &open_creds()).unwrap();
        let mut out = vec![0xAA; 300_000];
        for plain in [vec![7u8; 150_000], b"short".to_vec(), Vec::new()] {
            let n = seal_at(&mut a, &plain, &mut out, 0).unwrap();
            assert_eq!(
                out.len(),
                300_000,
                "a long enough buffer is neither grown nor shrunk"
            );
            let mut cipher = bytes::BytesMut::from(&out[..n]);
            let mut got = bytes::BytesMut::new();
            assert_eq!(open(&mut b, &mut cipher, &mut got).unwrap(), 0);
            assert_eq!(&got[..], &plain[..]);
            assert!(cipher.is_empty());
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_tag() {
        let (mut a, mut b) = pair(&open_creds(), &open_creds()).unwrap();
        let mut wire = Vec::new();
        seal(&mut a, b"hello there", &mut wire).unwrap();
        wire[5] ^= 1;
        let mut cipher = bytes::BytesMut::from(&wire[..]);
        let mut out = bytes::BytesMut::new();
        assert!(open(&mut b, &mut cipher, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_wrong_secret_fails_on_the_first_message() {
        let a = Credentials {
            key: NodeKey::generate(),
            access: Access::Private([1; 32]),
        };
        let b = Credentials {
            key: NodeKey::generate(),
            access: Access::Private([2; 32]),
        };
        let mut i = start(&a, true).unwrap();
        let mut r = start(&b, false).unwrap();
        let mut m = Vec::new();
        write_handshake(&mut i, &mut m).unwrap();
        assert!(read_handshake(&mut r, &m[2..]).unwrap_err().is_auth());
    }

    #[test]
    fn preambles_are_checked() {
        let private = Access::Private([3; 32]);
        assert!(check_preamble(&preamble(&Access::Open), &Access::Open).is_ok());
        assert!(check_preamble(&preamble(&Access::Open), &private)
            .unwrap_err()
            .is_auth());
        assert!(check_preamble(&preamble(&private), &Access::Open)
            .unwrap_err()
            .is_auth());
        let mut old = preamble(&Access::Open);
        old[4] = 5;
        assert_eq!(
            check_preamble(&old, &Access::Open),
            Err(SecureError::UnsupportedVersion(5))
        );
        assert!(matches!(
            check_preamble(b"GET / HT", &Access::Open),
            Err(SecureError::BadMagic(_))
        ));
    }
}
