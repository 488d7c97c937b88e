//! Two-way links: one connection on which both sides ask and both answer, whoever dialled
//! (PROTOCOL.md §3, "Two-way links"). A node that cannot be dialled still uploads over the
//! connections it made.
//!
//! After the hellos the connection is split ([`Connection::into_duplex`]) into two
//! [`Connection`]s over one socket: the *serving* side, which reads the other side's
//! requests and answers them, and the *fetching* side, which sends our requests and reads
//! their answers. Each is used exactly as a one-way connection is (the request loop and
//! `FetchLink` run on them unchanged). Between them:
//!
//! * the [`Pump`] alone reads the socket and hands each message to the side it is for: a
//!   request (by its type) to the serving side, an answer to the fetching side. It never
//!   waits on either, so one side that stalls cannot stop the other: the serving side may
//!   have at most [`MAX_UNANSWERED`] requests waiting (more is a violation that closes the
//!   link), and an answer is taken only while one of our requests is unanswered (one
//!   beyond is a violation too), so what waits in memory is bounded by what we asked for;
//! * both sides write through one writer, a whole frame at a time (a chunk never
//!   interleaves with a request).
//!
//! The link lasts while either side does: a fetching side that is done (our download
//! completed, or its slot moved on) drops its half and the serving side goes on. A serving
//! side that stops (its seat taken, the other side idle) drops its half too, and a request
//! that still arrives then closes the link (the other side sees a close, as when a one-way
//! server hangs up). A failure of the
//! socket, or a violation by the other side (found by the pump, or by a side, which then
//! calls [`Connection::abort`]), ends both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

use super::reader::Reader;
use super::writer::Writer;
use super::{Connection, Inbound, Keys, Noise, Outbound};
use crate::chunk_store::ChunkBody;
use crate::error::PeerError;
use crate::manifest::ChunkId;
use crate::secure::SecureError;
use crate::wire::{self, Message};

/// The most of the other side's requests that may wait for our answers; a client keeps far
/// fewer in flight (swarmshare: 17 chunk requests, a list and a peer list).
pub(crate) const MAX_UNANSWERED: usize = 64;
/// The most answers that may wait for the fetching side to read them (it never asks for
/// this many).
const MAX_WAITING_ANSWERS: usize = 1024;
/// How long a two-way link may go without a byte from the other side (a served client's
/// idle limit: with both sides alive, long polls keep it far busier).
const LINK_IDLE: Duration = Duration::from_secs(60);

/// A message for one side, or why the link ended.
type Delivery = Result<Message, PeerError>;

/// How many answers may wait unread before the pump holds off reading the socket (for at
/// most [`HOLD_OFF`]): the rest stay in the kernel's buffers, as on a one-way connection.
const SOFT_BACKLOG: usize = 4;
/// The longest the pump holds off for a fetching side that is slow to read its answers;
/// then it reads on (the other side's requests may be behind them), up to what we asked.
const HOLD_OFF: Duration = Duration::from_millis(100);

/// Answers routed to the fetching side and not yet read by it.
#[derive(Debug, Default)]
struct Backlog {
    waiting: AtomicUsize,
    drained: tokio::sync::Notify,
}

/// One side's inbound messages, handed over by the pump.
#[derive(Debug)]
pub(super) struct Routed {
    rx: mpsc::Receiver<Delivery>,
    /// The fetching side's: counted down as answers are read.
    backlog: Option<Arc<Backlog>>,
}

impl Routed {
    /// The next message for this side within `idle` (`None`: the link closed cleanly).
    /// Cancel-safe.
    pub(super) async fn recv(
        &mut self,
        idle: Duration,
        state: &'static str,
    ) -> Result<Option<Message>, PeerError> {
        let received = match tokio::time::timeout(idle, self.rx.recv()).await {
            Err(_) => return Err(PeerError::Timeout(state)),
            Ok(received) => received,
        };
        if let (Some(Ok(_)), Some(backlog)) = (&received, &self.backlog) {
            backlog.waiting.fetch_sub(1, Ordering::AcqRel);
            backlog.drained.notify_one();
        }
        received.transpose()
    }
}

impl Routed {
    /// The failure waiting behind whatever else is unread (the rest is dropped).
    pub(super) fn failure(&mut self) -> Option<PeerError> {
        while let Ok(delivery) = self.rx.try_recv() {
            if let Err(e) = delivery {
                return Some(e);
            }
        }
        None
    }
}

/// One side's way out: its own queue, written through the writer both sides share.
#[derive(Debug)]
pub(super) struct Shared {
    writer: Arc<tokio::sync::Mutex<Writer>>,
    queue: BytesMut,
}

impl Shared {
    pub(super) fn queue(&mut self, msg: &Message) {
        wire::encode(msg, &mut self.queue);
    }

    /// Writes the queued messages. Once begun, the write runs to its end even if the caller
    /// gives up (a task of its own holds the writer): a frame cut short would end the link
    /// for the other side too.
    pub(super) async fn flush(&mut self, keys: &Keys) -> Result<(), PeerError> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let mut w = Arc::clone(&self.writer).lock_owned().await;
        w.queue_encoded(&self.queue);
        self.queue.clear();
        let keys = Arc::clone(keys);
        let write = async move { w.flush(&keys).await };
        tokio::spawn(write.in_current_span())
            .await
            .unwrap_or_else(|e| Err(PeerError::io("writing")(std::io::Error::other(e))))
    }

    pub(super) async fn write_chunk(
        &mut self,
        keys: &Keys,
        id: ChunkId,
        body: &ChunkBody,
    ) -> Result<(), PeerError> {
        let mut w = self.writer.lock().await;
        w.queue_encoded(&self.queue);
        self.queue.clear();
        w.write_chunk(keys, id, body).await
    }
}

/// A connection split into its two sides and the pump between them.
#[derive(Debug)]
pub(crate) struct Duplex {
    /// Answers the other side's requests (the request loop runs on it).
    pub(crate) serving: Connection,
    /// Sends our requests and reads their answers (a `FetchLink` runs on it).
    pub(crate) fetching: Connection,
    /// Reads the socket for both: it must run (in a task of its own) for either to hear
    /// anything, and ends when both sides are dropped or the link fails.
    pub(crate) pump: Pump,
}

/// Reads a two-way link's socket and routes each message to its side.
#[derive(Debug)]
pub(crate) struct Pump {
    reader: Reader,
    /// Shut once the pump stops, so the other side hears at once that the link is over.
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// A side found the other side hostile ([`Connection::abort`]).
    abort: CancellationToken,
    keys: Keys,
    to_serving: mpsc::Sender<Delivery>,
    to_fetching: mpsc::Sender<Delivery>,
    asked: Arc<AtomicUsize>,
    backlog: Arc<Backlog>,
    remote: SocketAddr,
}

impl Connection {
    /// Splits a connection whose hellos agreed on a two-way link into its two sides
    /// (module docs); frames up to `max_frame` are accepted (the larger of what answers
    /// and requests need).
    pub(crate) fn into_duplex(self, max_frame: usize) -> Result<Duplex, PeerError> {
        let Connection {
            inbound,
            outbound,
            noise,
            remote,
            ..
        } = self;
        let (Inbound::Socket(mut reader), Outbound::Socket(writer)) = (inbound, outbound) else {
            return Err(local("the connection is already split"));
        };
        let Noise::Ready { keys, remote: id } = noise else {
            return Err(local("no handshake yet"));
        };
        reader.set_max_frame(max_frame);
        let (to_serving, serving_rx) = mpsc::channel(MAX_UNANSWERED);
        let (to_fetching, fetching_rx) = mpsc::channel(MAX_WAITING_ANSWERS);
        let asked = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(Backlog::default());
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let abort = CancellationToken::new();
        let side = |rx, asked, backlog| Connection {
            inbound: Inbound::Routed(Routed { rx, backlog }),
            outbound: Outbound::Shared(Shared {
                writer: Arc::clone(&writer),
                queue: BytesMut::new(),
            }),
            noise: Noise::Ready {
                keys: Arc::clone(&keys),
                remote: id,
            },
            answered: true,
            pending_hello: None,
            remote,
            asked,
            abort: Some(abort.clone()),
            expected: None,
        };
        Ok(Duplex {
            serving: side(serving_rx, None, None),
            fetching: side(fetching_rx, Some(Arc::clone(&asked)), Some(Arc::clone(&backlog))),
            pump: Pump {
                reader,
                writer: Arc::clone(&writer),
                abort,
                keys: Arc::clone(&keys),
                to_serving,
                to_fetching,
                asked,
                backlog,
                remote,
            },
        })
    }
}

impl Pump {
    /// Routes messages until both sides are gone, the other side closes, or the link
    /// fails (the fetching side then hears why: a violation counts against the sender).
    pub(crate) async fn run(mut self) {
        self.route_all().await;
        // Whatever a side still writes fails from now on; the other side sees the end.
        self.writer.lock().await.shutdown().await;
    }

    async fn route_all(&mut self) {
        loop {
            let read = tokio::select! {
                () = both_gone(&self.to_serving, &self.to_fetching) => return,
                () = self.abort.cancelled() => return,
                read = self.reader.read_message(&self.keys, LINK_IDLE, "on an idle two-way link") => read,
            };
            let routed = match read {
                Ok(Some(msg)) => self.route(msg).await,
                Ok(None) => return,
                Err(e) => Err(e),
            };
            if let Err(e) = routed {
                debug!(remote = %self.remote, cause = %e, "two-way link closed");
                let _ = self.to_fetching.try_send(Err(e));
                return;
            }
        }
    }

    /// Hands `msg` to its side.
    async fn route(&mut self, msg: Message) -> Result<(), PeerError> {
        if msg.is_request() {
            return match self.to_serving.try_send(Ok(msg)) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(Ok(msg))) => Err(PeerError::UnexpectedMessage {
                    state: "a two-way link with 64 requests unanswered",
                    got: msg.name(),
                }),
                Err(_) => Err(PeerError::Closed("(this side no longer serves on the link)")),
            };
        }
        if !msg.is_answer() {
            return Err(PeerError::UnexpectedMessage {
                state: "a two-way link",
                got: msg.name(),
            });
        }
        let due = self
            .asked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !due {
            return Err(PeerError::UnexpectedMessage {
                state: "a two-way link with no request of ours unanswered",
                got: msg.name(),
            });
        }
        self.hold_off().await;
        // Counted before it can be read (and counted down).
        self.backlog.waiting.fetch_add(1, Ordering::AcqRel);
        let sent = self.to_fetching.try_send(Ok(msg));
        if sent.is_err() {
            self.backlog.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        match sent {
            // The fetching side is gone: its answers are of no use.
            Ok(()) | Err(TrySendError::Closed(_)) => Ok(()),
            Err(TrySendError::Full(_)) => Err(local("too many answers waiting to be read")),
        }
    }
}

impl Pump {
    /// Waits, at most [`HOLD_OFF`], while [`SOFT_BACKLOG`] answers wait unread: the
    /// fetching side is storing what it has, and what it has not read yet can stay in the
    /// kernel. Never longer, so the other side's requests behind the answers are read on
    /// (each side's progress never waits on the other's).
    async fn hold_off(&self) {
        let until = tokio::time::Instant::now() + HOLD_OFF;
        while self.backlog.waiting.load(Ordering::Acquire) >= SOFT_BACKLOG && !self.to_fetching.is_closed() {
            let drained = self.backlog.drained.notified();
            if tokio::time::timeout_at(until, drained).await.is_err() {
                return;
            }
        }
    }
}

/// Completes once neither side is left.
async fn both_gone(a: &mpsc::Sender<Delivery>, b: &mpsc::Sender<Delivery>) {
    tokio::join!(a.closed(), b.closed());
}

fn local(what: &str) -> PeerError {
    PeerError::Secure(SecureError::Local(what.to_owned()))
}
