//! `Connection::write_chunk`: a chunk goes out as one exact `CHUNK` frame whether its bytes
//! are in memory or in a file handed to the kernel, and a file that ends early is an error
//! instead of a short frame.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::chunk_store::ChunkBody;
use crate::connection::Connection;
use crate::wire::{self, Message};
use bytes::{Bytes, BytesMut};

/// A connected pair: our `Connection` on one end, a plain blocking socket on the other.
async fn pair() -> (Connection, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let conn = Connection::connect(addr).await.unwrap();
    let (raw, _) = listener.accept().unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (conn, raw)
}

fn encoded(msg: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    wire::encode(msg, &mut out);
    out.to_vec()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn a_chunk_from_memory_is_one_exact_frame() {
    let (mut conn, mut raw) = pair().await;
    let bytes = Bytes::from(data(102_400, 1));
    conn.write_chunk(9, &ChunkBody::Memory(bytes.clone()))
        .await
        .unwrap();
    let want = encoded(&Message::Chunk { id: 9, data: bytes });
    let mut got = vec![0; want.len()];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_chunk_file_is_sent_as_one_exact_frame() {
    let (mut conn, mut raw) = pair().await;
    let mut want = Vec::new();
    // Several frames back to back, the last chunk shorter, so the frames must line up.
    for (id, len) in [(0u32, 102_400usize), (41, 102_400), (42, 3_333)] {
        let bytes = data(len, id as u8);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        conn.write_chunk(
            id,
            &ChunkBody::File {
                file: Arc::new(file),
                len,
            },
        )
        .await
        .unwrap();
        want.extend(encoded(&Message::Chunk {
            id,
            data: Bytes::from(bytes),
        }));
    }
    let mut got = vec![0; want.len()];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the bytes on the wire differ from the encoded frames"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_chunk_file_that_ends_early_is_an_error_not_a_short_frame() {
    let (mut conn, mut raw) = pair().await;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data(1_000, 7)).unwrap();
    let sent = tokio::time::timeout(
        Duration::from_secs(10),
        conn.write_chunk(
            3,
            &ChunkBody::File {
                file: Arc::new(file),
                len: 2_000,
            },
        ),
    )
    .await
    .expect("write_chunk returned");
    let err = sent.expect_err("a file shorter than the frame promised is an error");
    assert!(err.to_string().contains("ended early"), "{err}");
    // What reached the socket is the header and the 1,000 bytes there were: the caller
    // closes the connection, and the receiver sees a frame cut short, never a wrong one.
    drop(conn);
    let mut got = Vec::new();
    raw.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), wire::LEN_PREFIX + 5 + 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_file_chunks_to_a_slow_reader_line_up() {
    let (mut conn, mut raw) = pair().await;
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
        // file position at the end, like a staged file: sendfile must use its own offset.
        bodies.push((id, Arc::new(file), len));
        want.extend(encoded(&Message::Chunk {
            id,
            data: Bytes::from(bytes),
        }));
    }
    let total = want.len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(total);
        let mut buf = [0u8; 7_001];
        while got.len() < total {
            let n = raw.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            if got.len() % 5 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        got
    });
    for (id, file, len) in bodies {
        conn.write_chunk(id, &ChunkBody::File { file, len })
            .await
            .unwrap();
    }
    let got = reader.join().unwrap();
    assert!(got == want, "stream differs");
}
