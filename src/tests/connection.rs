//! `Connection`: every connection is encrypted, and a chunk still goes out as one exact
//! `CHUNK` frame whether its bytes are in memory or in a file; a file that ends early is an
//! error before any of the frame is sent; hellos carry the ID the key proves.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::chunk_store::ChunkBody;
use crate::connection::Connection;
use crate::error::PeerError;
use crate::identity::PeerId;
use crate::manifest::SwarmId;
use crate::secure::Credentials;
use crate::wire::{handshake, Message, Role};
use bytes::Bytes;

fn swarm() -> SwarmId {
    SwarmId([7; 32])
}

/// A connected pair, hellos exchanged: the dialer's `Connection` and the listener's.
pub(crate) async fn pair() -> (Connection, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (a, b) = (Credentials::fresh(), Credentials::fresh());
    let (b_id, a_id) = (b.key.id(), a.key.id());
    let server = tokio::spawn(async move {
        let (stream, remote) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream, remote, b);
        let hello = conn
            .answer_handshake(|_| handshake::server_hello(Role::Peer, 1, swarm(), b_id))
            .await
            .unwrap();
        assert_eq!(hello.peer, a_id);
        conn
    });
    let mut conn = Connection::connect(addr, a).await.unwrap();
    let theirs = conn
        .handshake(&handshake::fetch_hello(1, swarm(), a_id, false))
        .await
        .unwrap();
    assert_eq!(theirs.peer, b_id);
    assert_eq!(conn.remote_id(), Some(b_id));
    let mut served = server.await.unwrap();
    served.set_max_frame(1 << 20);
    (conn, served)
}

/// A listener that answers one connection's handshake, under a fresh key, with a hello
/// claiming peer `[5; 16]`; its outcome.
async fn one_listener() -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<crate::wire::Hello, PeerError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, remote) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream, remote, Credentials::fresh());
        conn.answer_handshake(|_| handshake::server_hello(Role::Peer, 1, swarm(), PeerId([5; 16])))
            .await
    });
    (addr, server)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

async fn next_chunk(conn: &mut Connection) -> (u32, Bytes) {
    match conn.read_message(Duration::from_secs(10), "test").await {
        Ok(Some(Message::Chunk { id, data })) => (id, data),
        other => panic!("expected a chunk, got {other:?}"),
    }
}

#[tokio::test]
async fn a_chunk_from_memory_arrives_whole() {
    let (mut conn, mut other) = pair().await;
    let bytes = Bytes::from(data(102_400, 1));
    conn.write_chunk(9, &ChunkBody::Memory(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(next_chunk(&mut other).await, (9, bytes));
}

#[tokio::test]
async fn chunk_ranges_of_one_data_file_arrive_as_exact_frames_back_to_back() {
    use std::os::unix::fs::FileExt;
    let (mut conn, mut other) = pair().await;
    // Several frames back to back out of one file, the last chunk shorter, so the frames
    // must line up and each must come from its own offset (not from the file's start).
    let chunks = [(3u32, 102_400usize), (1, 102_400), (4, 3_333)];
    let file = tempfile::tempfile().unwrap();
    file.write_all_at(&[0xEE; 102_400], 0).unwrap();
    for (id, len) in chunks {
        file.write_all_at(&data(len, id as u8), u64::from(id) * 102_400)
            .unwrap();
    }
    let file = Arc::new(file);
    for (id, len) in chunks {
        let body = ChunkBody::File {
            file: Arc::clone(&file),
            offset: u64::from(id) * 102_400,
            len,
        };
        conn.write_chunk(id, &body).await.unwrap();
    }
    for (id, len) in chunks {
        assert_eq!(
            next_chunk(&mut other).await,
            (id, Bytes::from(data(len, id as u8)))
        );
    }
}

/// However a chunk was sent (from memory, from a file, or, as an old or odd sender may, its
/// header in one transport message with its bytes, or its end with the next frame), its
/// bytes arrive in an allocation of
/// their own, no larger than the frame needs: a node may keep them (`holdings::recent`)
/// without keeping a read buffer around them.
#[tokio::test]
async fn a_chunks_bytes_arrive_in_an_allocation_of_their_own() {
    use std::os::unix::fs::FileExt;
    let (mut conn, mut other) = pair().await;
    let file = tempfile::tempfile().unwrap();
    file.write_all_at(&data(2 * 102_400, 3), 0).unwrap();
    let file = Arc::new(file);
    let at = |id: u32, len| ChunkBody::File {
        file: Arc::clone(&file),
        offset: u64::from(id) * 102_400,
        len,
    };
    conn.write_chunk(0, &at(0, 102_400)).await.unwrap();
    conn.write_chunk(7, &ChunkBody::Memory(Bytes::from(data(102_400, 7))))
        .await
        .unwrap();
    conn.write_message(&Message::Request(2)).await.unwrap();
    conn.write_chunk(1, &at(1, 3_333)).await.unwrap();
    let mut whole = bytes::BytesMut::new();
    crate::wire::encode(
        &Message::Chunk {
            id: 8,
            data: Bytes::from(data(102_400, 8)),
        },
        &mut whole,
    );
    conn.write_raw_for_test(&whole).await.unwrap();
    // A header alone, then the bytes with the next frame in the same transport message:
    // opening that message runs past the frame.
    conn.write_raw_for_test(&crate::wire::message::chunk_header(9, 102_400))
        .await
        .unwrap();
    let mut spill = bytes::BytesMut::from(&data(102_400, 9)[..]);
    crate::wire::encode(&Message::Request(3), &mut spill);
    conn.write_raw_for_test(&spill).await.unwrap();
    conn.write_message(&Message::ListRequest).await.unwrap();
    let mut got = Vec::new();
    loop {
        match other.read_message(Duration::from_secs(10), "test").await {
            Ok(Some(Message::Chunk { id, data })) => got.push((id, data)),
            Ok(Some(Message::Request(2 | 3))) => {}
            Ok(Some(Message::ListRequest)) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 7, 1, 8, 9]);
    assert_eq!(got[4].1, Bytes::from(data(102_400, 9)));
    for (id, bytes) in got {
        let len = bytes.len();
        let Ok(own) = bytes.try_into_mut() else {
            panic!("chunk {id}'s allocation is shared");
        };
        assert!(
            own.capacity() <= len + crate::secure::TAG_LEN,
            "chunk {id}: {len} bytes hold {} bytes of memory",
            own.capacity()
        );
    }
}

#[tokio::test]
async fn a_data_file_that_ends_early_is_an_error_and_nothing_of_it_is_sent() {
    let (mut conn, mut other) = pair().await;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data(1_000, 7)).unwrap();
    let body = ChunkBody::File {
        file: Arc::new(file),
        offset: 0,
        len: 2_000,
    };
    let sent = tokio::time::timeout(Duration::from_secs(10), conn.write_chunk(3, &body))
        .await
        .expect("write_chunk returned");
    let err = sent.expect_err("a file shorter than the frame promised is an error");
    assert!(err.to_string().contains("ended early"), "{err}");
    // The caller closes the connection; the receiver sees a clean close, never a frame.
    drop(conn);
    let got = other.read_message(Duration::from_secs(10), "test").await;
    assert!(matches!(got, Ok(None)), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_file_chunks_to_a_slow_reader_line_up() {
    let (mut conn, mut other) = pair().await;
    let mut want = Vec::new();
    let mut bodies = Vec::new();
    for id in 0..96u32 {
        let len = if id % 7 == 6 {
            1 + (id as usize * 977) % 102_400
        } else {
            102_400
        };
        let bytes = data(len, id as u8);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        // The file's position is at its end, like a staged file: reads use their own offset.
        bodies.push((id, Arc::new(file), len));
        want.push((id, Bytes::from(bytes)));
    }
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..96 {
            got.push(next_chunk(&mut other).await);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        got
    });
    for (id, file, len) in bodies {
        conn.write_chunk(id, &ChunkBody::File { file, offset: 0, len })
            .await
            .unwrap();
    }
    assert!(reader.await.unwrap() == want, "stream differs");
}

#[tokio::test]
async fn the_wire_carries_no_plaintext() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let creds = Credentials::fresh();
    let id = creds.key.id();
    let client = tokio::spawn(async move {
        let mut conn = Connection::connect(addr, creds).await.unwrap();
        // The dialer's half of the handshake goes out; nobody answers it.
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            conn.handshake(&handshake::fetch_hello(1, swarm(), id, false)),
        )
        .await;
    });
    let (mut raw, _) = listener.accept().await.unwrap();
    client.await.unwrap();
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut seen)).await;
    assert!(seen.starts_with(b"SWSH"), "the preamble is in clear");
    assert!(
        !seen.windows(32).any(|w| w == swarm().0),
        "the swarm ID never crosses in clear"
    );
    assert!(!seen.windows(16).any(|w| w == id.0), "nor the peer ID");
}

#[tokio::test]
async fn a_hello_under_another_id_is_refused() {
    let (addr, server) = one_listener().await;
    let creds = Credentials::fresh();
    let impostor = PeerId([9; 16]);
    let mut conn = Connection::connect(addr, creds).await.unwrap();
    let mine = conn
        .handshake(&handshake::fetch_hello(1, swarm(), impostor, false))
        .await;
    let theirs = server.await.unwrap();
    assert!(
        matches!(theirs, Err(ref e) if e.is_auth_failure()),
        "the server refuses a claimed ID its key does not prove: {theirs:?}"
    );
    assert!(mine.is_err());
}

#[tokio::test]
async fn garbage_and_old_clients_get_a_clear_error_and_nothing_back() {
    for (what, bytes) in [
        ("an old clear hello", {
            let mut h = b"SWSH".to_vec();
            h.push(5);
            h.extend([2u8; 51]);
            h
        }),
        ("garbage", vec![0xAB; 300]),
        ("a huge handshake length", {
            let mut h = crate::secure::preamble(&crate::secure::Access::Open).to_vec();
            h.extend([0xFF, 0xFF]);
            h
        }),
    ] {
        let (addr, server) = one_listener().await;
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, &bytes)
            .await
            .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(result, Err(PeerError::Secure(_)) | Err(PeerError::Closed(_))),
            "{what}: {result:?}"
        );
        let mut back = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), raw.read_to_end(&mut back)).await;
        assert!(back.is_empty(), "{what}: the server sent {} bytes", back.len());
    }
}

/// Queued messages stay here until a flush, then arrive whole and in order.
#[tokio::test]
async fn queued_messages_leave_together_at_the_flush() {
    let (mut client, mut server) = pair().await;
    client.queue_message(&Message::Request(3));
    client.queue_message(&Message::Request(4));
    client.queue_message(&Message::ListWait(1000));
    let early = server
        .read_message(Duration::from_millis(200), "before the flush")
        .await;
    assert!(matches!(early, Err(PeerError::Timeout(_))), "{early:?}");
    client.flush().await.unwrap();
    for want in [Message::Request(3), Message::Request(4), Message::ListWait(1000)] {
        let got = server
            .read_message(Duration::from_secs(10), "test")
            .await
            .unwrap();
        assert_eq!(got, Some(want));
    }
    // A message written at once goes after anything queued before it.
    client.queue_message(&Message::Request(5));
    client.write_message(&Message::PeersRequest).await.unwrap();
    for want in [Message::Request(5), Message::PeersRequest] {
        let got = server
            .read_message(Duration::from_secs(10), "test")
            .await
            .unwrap();
        assert_eq!(got, Some(want));
    }
}
