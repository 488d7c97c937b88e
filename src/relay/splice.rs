//! A circuit's forwarding: the bytes of two sockets copied each way as they are, within
//! the relay's rate, the node's upload cap, [`super::CIRCUIT_TIME`] and
//! [`super::CIRCUIT_BYTES`].

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::{CIRCUIT_BYTES, CIRCUIT_TIME};
use crate::rate::{Limits, RateLimit};

/// How long one direction of a circuit may carry nothing (a session closes after 60 s
/// without a byte anyway).
const CIRCUIT_IDLE: std::time::Duration = std::time::Duration::from_secs(70);
/// How much one read takes at most.
const STEP: usize = 16 * 1024;

/// Logs what a circuit forwarded when it ends, however it ends (its node shutting down
/// too).
struct Tally(AtomicU64);

impl Drop for Tally {
    fn drop(&mut self) {
        crate::activity::relayed(self.0.load(Ordering::Relaxed));
    }
}

/// Forwards between `a` and `b` (each with the bytes already read from it) until both
/// ends close, or the circuit's time or bytes run out; logs the bytes forwarded.
pub(super) async fn forward(
    a: (TcpStream, BytesMut),
    b: (TcpStream, BytesMut),
    rate: &RateLimit,
    limits: &Limits,
) {
    let tally = Tally(AtomicU64::new(0));
    let moved = &tally.0;
    let (a, a_early) = a;
    let (b, b_early) = b;
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let both = async {
        tokio::join!(
            pipe(a_early, a_read, b_write, rate, limits, moved),
            pipe(b_early, b_read, a_write, rate, limits, moved),
        )
    };
    let _ = tokio::time::timeout(CIRCUIT_TIME, both).await;
}

/// Copies `early`, then what `from` reads, to `to`; closes `to`'s sending side at the end.
async fn pipe(
    early: BytesMut,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    rate: &RateLimit,
    limits: &Limits,
    moved: &AtomicU64,
) {
    let mut buf = vec![0u8; STEP];
    let mut early = Some(early).filter(|e| !e.is_empty());
    loop {
        let n = match early.take() {
            Some(e) => {
                let n = e.len().min(STEP);
                buf[..n].copy_from_slice(&e[..n]);
                if e.len() > n {
                    early = Some(BytesMut::from(&e[n..]));
                }
                n
            }
            // A direction silent past the sessions' own idle limit has ended.
            None => match tokio::time::timeout(CIRCUIT_IDLE, from.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            },
        };
        if moved.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > CIRCUIT_BYTES {
            break;
        }
        // The relay's own rate paces forwarding; the node's upload cap is charged without
        // waiting (its chunks pay after), so a circuit's messages are not held up behind
        // them.
        rate.acquire(n).await;
        limits.charge_upload(n);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
