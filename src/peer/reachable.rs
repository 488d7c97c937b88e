//! While a peer joins, its port already answers the owner: the owner dials back the port a
//! joiner announces, to check that the joiner is who it says and can be reached (the
//! owner's gate), before it sends the manifest. This task runs the encrypted handshake on
//! each connection and reads its hello: the owner's probe (a FETCH hello from the owner's
//! ID, listening nowhere) gets a `BUSY` hello under this peer's ID and the swarm's, both
//! learned from the owner's own hello, and is closed. Every other connection is held, its
//! hello read but not answered, for the upload server to answer once the peer has its
//! store, as if it had waited in the listen queue.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, Instrument};

use crate::connection::Connection;
use crate::identity::PeerId;
use crate::manifest::SwarmId;
use crate::secure::Credentials;
use crate::wire::{handshake, Hello, Role};

/// Connections looked at at once while joining; a newer one takes the place of the oldest
/// (a hello takes a moment to arrive, so only a silent client is dropped).
const MAX_LOOKING: usize = 64;
/// The most connections held for the upload server; more are closed.
const MAX_HELD: usize = 64;
/// How long a connection's hello, and then the owner's hello, may take.
const LOOK_TIME: Duration = Duration::from_secs(5);

/// Who is joining through whom: learned from the owner's hello.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Joining {
    /// The swarm the owner serves.
    pub(crate) swarm: SwarmId,
    /// The owner's peer ID.
    pub(crate) owner: PeerId,
}

/// Connections accepted while joining, their hellos read but not answered; `None` once the
/// upload server has taken them (a look that ends later closes its connection).
pub(crate) type Held = Arc<Mutex<Option<Vec<Connection>>>>;

/// Takes the held connections for the upload server; none can be added afterwards.
pub(crate) fn take_held(held: &Held) -> Vec<Connection> {
    held.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

/// Looks at every connection on `listener`: answers the owner's probe, holds the rest in
/// `held`. Runs until dropped (with the looks in progress).
pub(crate) async fn answer_while_joining(
    listener: &TcpListener,
    port: u16,
    creds: &Arc<Credentials>,
    joining: watch::Receiver<Option<Joining>>,
    held: Held,
) -> Infallible {
    let mut looking = JoinSet::new();
    let mut oldest_first = VecDeque::new();
    loop {
        while looking.try_join_next().is_some() {}
        oldest_first.retain(|h: &AbortHandle| !h.is_finished());
        let (stream, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                debug!(cause = %e, "accept failed while joining");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if oldest_first.len() >= MAX_LOOKING {
            if let Some(oldest) = oldest_first.pop_front() {
                oldest.abort();
            }
        }
        let conn = Connection::new(stream, remote, Arc::clone(creds));
        let look = look_at(conn, port, creds.key.id(), joining.clone(), Arc::clone(&held));
        oldest_first.push_back(looking.spawn(look.in_current_span()));
    }
}

async fn look_at(
    mut conn: Connection,
    port: u16,
    id: PeerId,
    mut joining: watch::Receiver<Option<Joining>>,
    held: Held,
) {
    let remote = conn.remote();
    let hello = match tokio::time::timeout(LOOK_TIME, conn.read_client_hello()).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) if e.is_auth_failure() => {
            crate::activity::auth_failed(remote, &e);
            return;
        }
        Ok(Err(e)) => {
            debug!(%remote, cause = %e, "closed while joining");
            return;
        }
        Err(_) => {
            debug!(%remote, "closed while joining: no hello");
            return;
        }
    };
    // Only a FETCH that listens nowhere can be the owner's probe: wait for the owner's
    // hello to tell; anything else is held at once.
    let seen = if hello.role == Role::Fetch && hello.listen_port == 0 {
        let known = joining.wait_for(Option::is_some);
        tokio::time::timeout(LOOK_TIME, known)
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|j| *j))
    } else {
        None
    };
    match seen {
        Some(seen) if is_probe(&hello, seen) => {
            let busy = |_: &Hello| handshake::server_hello(Role::Busy, port, seen.swarm, id);
            if let Err(e) = conn.answer_handshake(busy).await {
                debug!(%remote, cause = %e, "the owner's probe went unanswered");
            }
        }
        // A hello that is not the owner's probe: the upload server answers it later.
        _ => {
            let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = held.as_mut().filter(|h| h.len() < MAX_HELD) {
                held.push(conn);
            }
        }
    }
}

/// The owner's dial-back: a FETCH hello from the owner's ID, for its swarm, not listening.
fn is_probe(hello: &Hello, seen: Joining) -> bool {
    hello.role == Role::Fetch
        && hello.listen_port == 0
        && hello.peer == seen.owner
        && hello.swarm == Some(seen.swarm)
}
