//! The upload side shared by the owner and every peer: the listener, the accept loop with
//! its connection limit, and the request loop that answers chunk ID list and chunk
//! requests.
//!
//! The request loop is one session per accepted connection with a simple state: after the
//! handshake it is `Serving` until the client closes, goes idle past [`IDLE_TIMEOUT`], or
//! breaks the protocol. Errors end that session only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info_span, warn};

use crate::activity;
use crate::admission::{Downloaders, Ticket};
use crate::book::AddressBook;
use crate::connection::Connection;
use crate::error::{Error, PeerError};
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::long_poll::{self, Due, Patience, MAX_LIST_WAIT};
use crate::per_ip::{PerIp, PerIpCounts};
use crate::rate::{Allowance, Limits};
use crate::reach::Prover;
use crate::secure::Credentials;
use crate::task;
use crate::wire::{Hello, Message, Reached, MAX_PEERS};

/// The most connections a node serves at once; more are refused.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// The most connections a node serves at once from one IP address, so one host cannot
/// take every slot.
pub(crate) const MAX_PER_IP: usize = 64;
/// How long a served connection may stay silent between requests.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// When this node's upload side last answered a request (for `--exit-when-done`).
#[derive(Debug)]
pub(crate) struct Served {
    last: Mutex<std::time::Instant>,
}

impl Default for Served {
    fn default() -> Served {
        Served {
            last: Mutex::new(std::time::Instant::now()),
        }
    }
}

impl Served {
    /// A request arrived.
    pub(crate) fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    /// How long since the last request.
    pub(crate) fn idle_for(&self) -> Duration {
        self.last.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }
}

/// Binds the node's listening socket, with an error that names the address.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// The address that names the other side in logs: its IP with the port it listens on,
/// when its hello announced one.
pub(crate) fn node_addr(remote: SocketAddr, hello: &Hello) -> SocketAddr {
    match hello.listen_port {
        0 => remote,
        port => SocketAddr::new(remote.ip(), port),
    }
}

/// Accepts connections until `token` is cancelled, running `handler` on each in its own
/// task, starting with `held` (connections accepted earlier, their bytes still unread),
/// and taking those that reach us other ways (`injected`: punched through a NAT, or
/// relayed) as if accepted. Beyond [`MAX_CONNECTIONS`] a new connection is closed at once.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    (held, mut injected): (Vec<Connection>, Option<tokio::sync::mpsc::Receiver<Connection>>),
    creds: Arc<Credentials>,
    token: CancellationToken,
    tracker: TaskTracker,
    handler: F,
) where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PeerError>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_ip = PerIpCounts::default();
    let start = |conn: Connection| {
        let remote = conn.remote();
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            warn!(%remote, limit = MAX_CONNECTIONS, "connection refused: too many connections");
            conn.refuse_at_limit();
            return;
        };
        let Some(per_ip) = PerIp::acquire(&per_ip, remote.ip(), MAX_PER_IP) else {
            warn!(%remote, limit = MAX_PER_IP, "connection refused: too many connections from this address");
            conn.refuse_at_limit();
            return;
        };
        let session = handler(conn);
        let span = info_span!("conn", %remote);
        task::spawn(&tracker, &token, "serve", span, async move {
            let result = session.await;
            drop((permit, per_ip));
            match &result {
                Err(e) if e.is_auth_failure() => activity::auth_failed(remote, e),
                Err(e) => warn!(%remote, cause = %e, "connection closed"),
                Ok(()) => {}
            }
            result
        });
    };
    for conn in held {
        start(conn);
    }
    let mut backoff = task::Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let other_way = async {
            match injected.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => accepted,
            Some(conn) = other_way => {
                start(conn);
                continue;
            }
        };
        let (stream, remote) = match accepted {
            Ok(pair) => {
                backoff.reset();
                pair
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                warn!(cause = %e, "accept failed");
                if !task::sleep(&token, backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        start(Connection::new(stream, remote, Arc::clone(&creds)));
    }
}

/// What a served fetch session needs.
pub(crate) struct Serving<'a> {
    /// What this node holds.
    pub(crate) holdings: &'a Arc<Holdings>,
    /// Whom it knows (for `PEERS`).
    pub(crate) book: &'a AddressBook,
    /// The client's ID and the address that names it in the activity log.
    pub(crate) client: (PeerId, SocketAddr),
    /// The node's rate limits.
    pub(crate) limits: &'a Limits,
    /// Where a peer records that it was asked for something.
    pub(crate) served: Option<&'a Served>,
    /// The client's downloader seat, if it holds one (the session ends if it is taken).
    pub(crate) seat: Option<Ticket>,
    /// Where a client without a seat gets one before its first chunk (a peer's seats,
    /// whether the client named this node its download neighbor, and
    /// the client's address); `None` at the owner, which serves everyone.
    pub(crate) seats: Option<(&'a Arc<Downloaders>, std::net::IpAddr, bool)>,
    /// What the client may cost when the node does not trust it (the owner's unproven
    /// clients): every answer is paid from it first.
    pub(crate) allowance: Option<&'a Allowance>,
    /// Who dials a client back for its `REACH_REQUEST` (`None`: answered unchecked), and
    /// the client's end of the connection (the only IP a dial-back goes to).
    pub(crate) reach: (Option<&'a Prover>, SocketAddr),
}

/// Answers requests on `conn` until the client closes, goes idle or loses its seat.
pub(crate) async fn serve_requests(conn: &mut Connection, s: Serving<'_>) -> Result<(), PeerError> {
    let Serving {
        holdings,
        book,
        client: (client_id, peer),
        limits,
        served,
        mut seat,
        seats,
        allowance,
        reach,
    } = s;
    let count = holdings.manifest().layout().chunk_count();
    let mut last = LastList {
        named: 0,
        at: None,
        patience: Patience::new(count),
    };
    loop {
        let evicted = seat
            .as_ref()
            .map_or_else(CancellationToken::new, |t| t.evicted.clone());
        let read = tokio::select! {
            () = evicted.cancelled() => {
                debug!(%peer, "seat given to another downloader");
                return Ok(());
            }
            read = conn.read_message(IDLE_TIMEOUT, "waiting for a request") => read,
        };
        let Some(msg) = read? else {
            debug!(%peer, "client closed the connection");
            return Ok(());
        };
        // A chunk is for a downloader: one that came without a seat (a client that does
        // not listen) takes one now, or the node is busy for it.
        if let (Message::Request(_), None, Some((downloaders, ip, neighbor))) = (&msg, &seat, seats) {
            seat = downloaders.admit(ip, neighbor);
            if seat.is_none() {
                debug!(%peer, "busy: a chunk asked for without a downloader seat");
                return Ok(());
            }
        }
        // Lists and chunks show a need; peer lists (presence announcements) do not.
        let need = matches!(
            msg,
            Message::ListRequest | Message::ListWait(_) | Message::Request(_)
        );
        if need {
            if let Some(served) = served {
                served.touch();
            }
        }
        let _busy = seat.as_ref().filter(|_| need).map(Ticket::serving);
        match msg {
            Message::ListRequest | Message::ListWait(_) => {
                if let Message::ListWait(ms) = msg {
                    last.patience.polled();
                    let wait = Duration::from_millis(u64::from(ms)).min(MAX_LIST_WAIT);
                    wait_for_more(holdings, last, wait).await;
                } else {
                    let wait = long_poll::list_request_wait(last.at.map(|at| at.elapsed()));
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                let list = holdings.snapshot();
                let listed = list.count();
                if let Some(a) = allowance {
                    a.spend(list.len().div_ceil(8) as usize + 8).await;
                }
                conn.write_message(&Message::List(list)).await?;
                last.named = listed;
                last.at = Some(Instant::now());
                last.patience.listed();
                activity::list_sent(peer, listed);
            }
            Message::Request(id) => {
                activity::request_received(peer, id);
                last.patience.requested();
                if id >= count {
                    return Err(PeerError::ChunkOutOfRange { id, count });
                }
                match holdings.read(id).await? {
                    Some(data) => {
                        let bytes = data.len();
                        if let Some(a) = allowance {
                            a.spend(bytes).await;
                        }
                        limits.before_upload(bytes).await;
                        conn.write_chunk(id, &data).await?;
                        activity::chunk_sent(peer, id, bytes);
                    }
                    None => conn.write_message(&Message::NotHave(id)).await?,
                }
            }
            Message::ReachRequest(port) => {
                let found = reached(reach, client_id, port).await;
                let answer = Message::Reach { found, seen: reach.1 };
                if let Some(a) = allowance {
                    a.spend(32).await;
                }
                debug!(%peer, port, ?found, "reach request answered");
                conn.write_message(&answer).await?;
            }
            Message::PeersRequest => {
                let peers = book.gossip(MAX_PEERS, client_id, &mut rand::rng());
                if let Some(a) = allowance {
                    a.spend(crate::wire::peers::body_len(&peers)).await;
                }
                debug!(%peer, peers = peers.len(), "peer list sent");
                conn.write_message(&Message::Peers(peers)).await?;
            }
            other => {
                return Err(PeerError::UnexpectedMessage {
                    state: "serving requests",
                    got: other.name(),
                })
            }
        }
    }
}

/// What a dial-back to the client's IP at `port` finds: the client, under the ID it
/// proved, or not (port 0: nothing to dial).
async fn reached(reach: (Option<&Prover>, SocketAddr), client: PeerId, port: u16) -> Reached {
    let (Some(prover), seen) = reach else {
        return Reached::Unchecked;
    };
    if port == 0 {
        return Reached::No;
    }
    match prover.reach(SocketAddr::new(seen.ip(), port)).await {
        Ok(Some(id)) if id == client => Reached::Yes,
        Ok(_) => Reached::No,
        Err(_) => Reached::Unchecked,
    }
}

/// A served connection's last list and what followed it.
#[derive(Debug, Clone, Copy)]
struct LastList {
    /// How many chunks it named (sets only grow).
    named: u32,
    /// When it went (`None`: no list yet).
    at: Option<Instant>,
    /// How long the client's long polls may be held (from what it did with its lists).
    patience: Patience,
}

/// Returns when the long poll is due ([`long_poll::due`]) or after `wait`. The caller then
/// answers with the list as it is.
async fn wait_for_more(holdings: &Holdings, last: LastList, wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut count = holdings.subscribe();
    loop {
        // Copied out at once: the watch's lock is never held across anything else.
        let held = *count.borrow_and_update();
        let now = Instant::now();
        let wake = match long_poll::due(held, last.named, last.at.map(|at| now - at), last.patience) {
            Due::Now => return,
            Due::In(gap) => (now + gap).min(deadline),
            Due::OnNews => deadline,
        };
        tokio::select! {
            changed = count.changed() => {
                if changed.is_err() {
                    // No more news can come: only the wait is left.
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}
