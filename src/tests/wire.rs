//! The codec: every message round-trips, split input decodes the same, bad input is a
//! named error, never a panic.

use crate::chunk_set::ChunkSet;
use crate::manifest::{Layout, SwarmId};
use crate::wire::message::MessageError;
use crate::wire::{
    self, decode, encode, DecodeError, FrameError, HandshakeError, Hello, Message, Reached, Role,
};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::identity::PeerId;
use crate::wire::relay::Introduction;

const MAX: usize = 1 << 20;

fn encoded(m: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(m, &mut buf);
    buf.to_vec()
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| Message::Manifest(Bytes::from(v))),
        any::<u32>().prop_map(|count| Message::BatchEnd { count }),
        Just(Message::ListRequest),
        any::<u32>().prop_map(Message::ListWait),
        proptest::collection::vec(any::<bool>(), 0..200).prop_map(|bits| {
            let mut s = ChunkSet::empty(bits.len() as u32);
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    s.insert(i as u32);
                }
            }
            Message::List(s)
        }),
        any::<u32>().prop_map(Message::Request),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 1..3000)).prop_map(|(id, d)| Message::Chunk {
            id,
            data: Bytes::from(d)
        }),
        any::<u32>().prop_map(Message::NotHave),
        any::<u16>().prop_map(Message::ReachRequest),
        (0u8..3, any::<[u8; 16]>(), any::<u16>(), any::<bool>()).prop_map(|(found, ip, port, v4)| {
            let found = [Reached::No, Reached::Yes, Reached::Unchecked][usize::from(found)];
            let ip: std::net::IpAddr = if v4 {
                std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into()
            } else {
                std::net::Ipv6Addr::from(ip).into()
            };
            Message::Reach {
                found,
                seen: std::net::SocketAddr::new(ip, port),
            }
        }),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Message::Reserve((ip, port).into())),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Message::Reserved((ip, port).into())),
        (
            any::<u64>(),
            any::<bool>(),
            any::<[u8; 16]>(),
            any::<([u8; 4], u16)>(),
            any::<Option<([u8; 16], u16)>>()
        )
            .prop_map(|(nonce, initiator, peer, seen, local)| {
                Message::Introduce(Introduction {
                    nonce,
                    initiator,
                    peer: PeerId(peer),
                    seen: seen.into(),
                    local: local.map(Into::into),
                })
            }),
        any::<u64>().prop_map(Message::Relay),
        Just(Message::Relaying),
    ]
}

#[test]
fn relay_messages_are_exactly_as_the_protocol_states() {
    let addr: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let addr_bytes = [4, 192, 0, 2, 7, 0x9c, 0x40];
    assert_eq!(
        encoded(&Message::Reserve(addr)),
        [&[0, 0, 0, 8, 13][..], &addr_bytes].concat()
    );
    assert_eq!(
        encoded(&Message::Reserved(addr)),
        [&[0, 0, 0, 8, 14][..], &addr_bytes].concat()
    );
    assert_eq!(
        encoded(&Message::Relay(0x0102)),
        [0, 0, 0, 9, 16, 0, 0, 0, 0, 0, 0, 1, 2]
    );
    assert_eq!(encoded(&Message::Relaying), [0, 0, 0, 1, 17]);
    let intro = Introduction {
        nonce: 5,
        initiator: true,
        peer: PeerId([0xAB; 16]),
        seen: addr,
        local: None,
    };
    let mut bytes = vec![0, 0, 0, 34, 15, 0, 0, 0, 0, 0, 0, 0, 5, 1];
    bytes.extend([0xAB; 16]);
    bytes.extend(addr_bytes);
    bytes.push(0);
    assert_eq!(encoded(&Message::Introduce(intro)), bytes);
    // A flag byte other than 0 or 1, a body a byte long or short, bytes after RELAYING.
    let mut bad_flag = bytes.clone();
    bad_flag[13] = 2;
    assert!(decode(&bad_flag, MAX).is_err());
    let mut bad_local = bytes.clone();
    *bad_local.last_mut().unwrap() = 1;
    assert!(decode(&bad_local, MAX).is_err());
    assert!(decode(&[0, 0, 0, 2, 17, 0], MAX).is_err());
    assert!(decode(&[0, 0, 0, 8, 16, 0, 0, 0, 0, 0, 0, 1], MAX).is_err());
    // Requests (a client's) and answers (a relay's) are told apart.
    assert!(Message::Reserve(addr).is_request() && Message::Relay(1).is_request());
    assert!(
        Message::Reserved(addr).is_answer()
            && Message::Introduce(intro).is_answer()
            && Message::Relaying.is_answer()
    );
}

#[test]
fn reach_messages_are_exactly_as_the_protocol_states() {
    // REACH_REQUEST: the port; REACH: the result, then family, IP and port.
    assert_eq!(
        encoded(&Message::ReachRequest(5001)),
        [0, 0, 0, 3, 11, 0x13, 0x89]
    );
    let seen = "192.0.2.7:40000".parse().unwrap();
    let reach = Message::Reach {
        found: Reached::No,
        seen,
    };
    assert_eq!(encoded(&reach), [0, 0, 0, 9, 12, 0, 4, 192, 0, 2, 7, 0x9c, 0x40]);
    // A result other than 0-2, a body one byte short or long: refused.
    assert_eq!(
        decode(&[0, 0, 0, 9, 12, 3, 4, 192, 0, 2, 7, 0x9c, 0x40], MAX),
        Err(DecodeError::Message(MessageError::Reached(3)))
    );
    assert!(decode(&[0, 0, 0, 8, 12, 0, 4, 192, 0, 2, 7, 0x9c], MAX).is_err());
    assert!(decode(&[0, 0, 0, 10, 12, 0, 4, 192, 0, 2, 7, 0x9c, 0x40, 0], MAX).is_err());
    assert!(decode(&[0, 0, 0, 2, 11, 1], MAX).is_err());
    // Both fit a server's request limit and are told apart on a two-way link.
    assert!(decode(&encoded(&Message::ReachRequest(1)), wire::MAX_REQUEST_FRAME_LEN).is_ok());
    assert!(Message::ReachRequest(1).is_request() && reach.is_answer());
}

proptest! {
    #[test]
    fn decode_encode_round_trip(m in arb_message()) {
        let bytes = encoded(&m);
        let (back, used) = decode(&bytes, MAX).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn split_in_two_pieces_decodes_the_same(m in arb_message(), cut in any::<prop::sample::Index>()) {
        let bytes = encoded(&m);
        let at = cut.index(bytes.len());
        match decode(&bytes[..at], MAX) {
            Err(DecodeError::Frame(FrameError::Incomplete { needed })) => prop_assert!(needed >= 1 && needed <= bytes.len() - at),
            other => prop_assert!(false, "prefix of {} bytes gave {:?}", at, other),
        }
        // Followed by more bytes: the first message still decodes, using only its own.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let (back, used) = decode(&two, MAX).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), max in 0usize..1000) {
        if let Ok((_, used)) = decode(&bytes, max) {
            prop_assert!(used <= bytes.len());
        }
        let mut hello = [0u8; wire::HELLO_LEN];
        let n = bytes.len().min(wire::HELLO_LEN);
        hello[..n].copy_from_slice(&bytes[..n]);
        let _ = Hello::decode(&hello);
    }

    /// The in-place decoder the connection uses (CHUNK bytes split off, not copied) agrees
    /// with the slice decoder on any input, leaves what follows the frame, and leaves the
    /// buffer untouched on an error.
    #[test]
    fn decode_front_agrees_with_decode(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                       m in arb_message(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        for input in [bytes.clone(), [encoded(&m), tail.clone()].concat()] {
            let mut buf = BytesMut::from(&input[..]);
            match (decode(&input, MAX), wire::decode_front(&mut buf, MAX)) {
                (Ok((want, used)), Ok(got)) => {
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(&buf[..], &input[used..]);
                }
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(&buf[..], &input[..]);
                }
                (a, b) => prop_assert!(false, "decode {:?} but decode_front {:?}", a, b),
            }
        }
    }
}

#[test]
fn length_is_checked_before_anything_else() {
    // A 4 GiB prefix with only four bytes present: refused at once, not "incomplete".
    let huge = [0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        decode(&huge, MAX),
        Err(DecodeError::Frame(FrameError::TooLarge {
            len: u64::from(u32::MAX),
            max: MAX
        }))
    );
    assert_eq!(
        decode(&[0, 0, 0, 0], MAX),
        Err(DecodeError::Frame(FrameError::Empty))
    );
    assert_eq!(
        decode(&[0, 0], MAX),
        Err(DecodeError::Frame(FrameError::Incomplete { needed: 2 }))
    );
    // One byte over the swarm's maximum.
    let layout = Layout::for_size(10 * 102_400).unwrap();
    let max = wire::max_frame_len(&layout);
    assert_eq!(max, 5 + 102_400);
    let over = ((max + 1) as u32).to_be_bytes();
    assert!(matches!(
        decode(&over, max),
        Err(DecodeError::Frame(FrameError::TooLarge { .. }))
    ));
}

#[test]
fn exact_lengths_per_type() {
    let bad = |payload: &[u8]| {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        decode(&frame, MAX).unwrap_err()
    };
    // REQUEST with a trailing byte, LIST_REQUEST with a body, NOT_HAVE short.
    assert!(matches!(
        bad(&[5, 0, 0, 0, 1, 9]),
        DecodeError::Message(MessageError::BadLength { name: "REQUEST", .. })
    ));
    assert!(matches!(
        bad(&[3, 0]),
        DecodeError::Message(MessageError::BadLength {
            name: "LIST_REQUEST",
            ..
        })
    ));
    assert!(matches!(
        bad(&[7, 0, 0]),
        DecodeError::Message(MessageError::BadLength { name: "NOT_HAVE", .. })
    ));
    // CHUNK with no data.
    assert!(matches!(
        bad(&[6, 0, 0, 0, 1]),
        DecodeError::Message(MessageError::BadLength { name: "CHUNK", .. })
    ));
    // LIST whose bitfield disagrees with its count.
    assert!(matches!(
        bad(&[4, 0, 0, 0, 9, 0]),
        DecodeError::Message(MessageError::List(_))
    ));
    assert!(matches!(
        bad(&[99]),
        DecodeError::Message(MessageError::UnknownType(99))
    ));
}

#[test]
fn hello_round_trip_and_refusals() {
    let h = Hello {
        role: Role::Fetch,
        listen_port: 5001,
        swarm: Some(SwarmId([3; 32])),
        peer: crate::identity::PeerId::NONE,
        both: false,
    };
    assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    let join = Hello {
        role: Role::Join,
        listen_port: 0,
        swarm: None,
        peer: crate::identity::PeerId::NONE,
        both: false,
    };
    assert_eq!(Hello::decode(&join.encode()).unwrap(), join);
    // A two-way link's roles: the top bit of the role byte, with FETCH, FETCH_NEIGHBOR
    // and PEER only.
    for role in [Role::Fetch, Role::FetchNeighbor, Role::Peer] {
        let two_way = Hello {
            role,
            both: true,
            ..h
        };
        let bytes = two_way.encode();
        assert_eq!(bytes[5], role as u8 | 0x80);
        assert_eq!(Hello::decode(&bytes).unwrap(), two_way);
    }
    for role in [Role::Join, Role::Owner, Role::Busy] {
        let mut bytes = Hello { role, ..h }.encode();
        bytes[5] |= 0x80;
        assert_eq!(
            Hello::decode(&bytes),
            Err(HandshakeError::UnknownRole(role as u8 | 0x80))
        );
    }
    let mut bytes = h.encode();
    bytes[4] = 1;
    assert_eq!(Hello::decode(&bytes), Err(HandshakeError::UnsupportedVersion(1)));
    let named = Hello {
        peer: crate::identity::PeerId([7; 16]),
        ..h
    };
    assert_eq!(
        Hello::decode(&named.encode()).unwrap(),
        named,
        "the peer ID round-trips"
    );
    bytes = h.encode();
    bytes[5] = 9;
    assert_eq!(Hello::decode(&bytes), Err(HandshakeError::UnknownRole(9)));
    bytes = h.encode();
    bytes[0] = b'G';
    assert!(matches!(Hello::decode(&bytes), Err(HandshakeError::BadMagic(_))));
}

/// A chunk frame's header alone gives the frame's length; anything more, less or else
/// gives nothing.
#[test]
fn a_chunk_header_alone_tells_its_frame_length() {
    use crate::wire::message::{chunk_frame_len, chunk_header};
    let header = chunk_header(5, 102_400);
    assert_eq!(chunk_frame_len(&header, MAX), Some(header.len() + 102_400));
    assert_eq!(chunk_frame_len(&header, 1000), None, "over the limit");
    let mut more = header.to_vec();
    more.push(0);
    assert_eq!(chunk_frame_len(&more, MAX), None, "bytes of it already here");
    assert_eq!(chunk_frame_len(&header[..8], MAX), None, "a header cut short");
    let request = encoded(&Message::Request(5));
    assert_eq!(chunk_frame_len(&request, MAX), None, "another type");
    let empty = encoded(&Message::Chunk {
        id: 5,
        data: Bytes::new(),
    });
    assert_eq!(chunk_frame_len(&empty, MAX), None, "a whole (empty) chunk frame");
}
