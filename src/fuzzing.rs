//! The bodies of the fuzz targets in `fuzz/`, kept in the library so that `cargo test`
//! replays the committed corpus through exactly the code the fuzzer ran.
//!
//! Each function takes arbitrary bytes, must never panic on them, and asserts the
//! properties the decoders promise: whatever decodes re-encodes to the same bytes, and
//! whatever a manifest accepts is a swarm a peer may safely store.

use bytes::BytesMut;

use crate::chunk_set::ChunkSet;
use crate::manifest::{check_file_name, Layout, Manifest};
use crate::summary;
use crate::wire::{self, Hello, Message, HELLO_LEN};

/// Frames, messages and hellos. The first byte picks the frame limit, so short inputs
/// reach every branch: 0 → the request limit, else a chunk-sized limit.
pub fn wire_decoder(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let max = match pick % 3 {
        0 => wire::MAX_REQUEST_FRAME_LEN,
        1 => 64 * 1024,
        _ => wire::MAX_MANIFEST_FRAME_LEN,
    };
    if let Some(hello) = rest.first_chunk::<HELLO_LEN>() {
        if let Ok(h) = Hello::decode(hello) {
            assert_eq!(&h.encode(), hello, "a decoded hello re-encodes to its bytes");
        }
    }
    let mut buf = rest;
    while let Ok((msg, used)) = wire::decode(buf, max) {
        assert!(
            used > 0 && used <= buf.len(),
            "decode consumed {used} of {}",
            buf.len()
        );
        // A two-way link routes by type alone: every message is a request, an answer, or
        // one of the JOIN's (never on such a link), and never two of these.
        let joining = matches!(msg, Message::Manifest(_) | Message::BatchEnd { .. });
        assert_eq!(
            u8::from(msg.is_request()) + u8::from(msg.is_answer()) + u8::from(joining),
            1,
            "{} is exactly one kind",
            msg.name()
        );
        let mut again = BytesMut::new();
        wire::encode(&msg, &mut again);
        assert_eq!(
            &again[..],
            &buf[..used],
            "a decoded {} re-encodes to its bytes",
            msg.name()
        );
        if let Message::List(set) = &msg {
            assert_eq!(
                ChunkSet::from_bitfield(set.len(), set.as_bitfield()).as_ref(),
                Ok(set)
            );
        }
        buf = &buf[used..];
    }
}

/// Manifests, their layouts, and summary files.
pub fn manifest_parser(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encoded(), data, "only the canonical encoding is accepted");
        assert!(
            check_file_name(m.name()).is_ok(),
            "accepted an unsafe name {:?}",
            m.name()
        );
        let layout = m.layout();
        assert_eq!(Layout::for_size(layout.file_size()).as_ref(), Ok(layout));
        let total: u64 = (0..layout.chunk_count())
            .map(|id| u64::from(layout.chunk_len(id).unwrap_or(0)))
            .sum();
        assert_eq!(total, layout.file_size(), "chunks cover the file exactly");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for count in [1, 5, 64, 1000] {
            if let Ok(set) = summary::parse(text, count) {
                assert!(set.len() == count && set.count() <= count);
            }
        }
    }
}

/// The encrypted handshake from arbitrary bytes, as a listener and as a dialer sees them,
/// and tickets from arbitrary text: a clean error, never a panic, and nothing read past a
/// handshake message's bound. The first byte picks the listener's access (open or
/// private).
pub fn secure_handshake(data: &[u8]) {
    use crate::secure::{self, Access, Credentials, NodeKey, LEN_PREFIX, PREAMBLE_LEN};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = text.parse::<crate::ticket::Ticket>();
    }
    let access = if pick % 2 == 0 {
        Access::Open
    } else {
        Access::Private([pick; 32])
    };
    let creds = Credentials {
        key: NodeKey::generate(),
        access,
    };
    // Length-prefixed messages off the front of `bytes`, as the connection reads them.
    fn message(bytes: &mut &[u8]) -> Option<Vec<u8>> {
        let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
        if len > secure::MAX_HANDSHAKE_MESSAGE || bytes.len() < LEN_PREFIX + len {
            return None;
        }
        let msg = bytes[LEN_PREFIX..LEN_PREFIX + len].to_vec();
        *bytes = &bytes[LEN_PREFIX + len..];
        Some(msg)
    }
    // The listener: preamble, first message, (our answer), last message, then transport.
    let listener = || -> Option<()> {
        let preamble: &[u8; PREAMBLE_LEN] = rest.first_chunk()?;
        secure::check_preamble(preamble, &creds.access).ok()?;
        let mut bytes = &rest[PREAMBLE_LEN..];
        let mut state = secure::start(&creds, false).ok()?;
        secure::read_handshake(&mut state, &message(&mut bytes)?).ok()?;
        secure::write_handshake(&mut state, &mut Vec::new()).ok()?;
        secure::read_handshake(&mut state, &message(&mut bytes)?).ok()?;
        let (mut transport, _) = secure::finish(state).ok()?;
        let mut cipher = bytes::BytesMut::from(bytes);
        let mut plain = BytesMut::new();
        let _ = secure::open(&mut transport, &mut cipher, &mut plain);
        Some(())
    };
    let _ = listener();
    // The dialer: its first message sent, the bytes taken as the listener's answer.
    let dialer = || -> Option<()> {
        let mut state = secure::start(&creds, true).ok()?;
        secure::write_handshake(&mut state, &mut Vec::new()).ok()?;
        let mut bytes = rest;
        secure::read_handshake(&mut state, &message(&mut bytes)?).ok()?;
        Some(())
    };
    let _ = dialer();
}
