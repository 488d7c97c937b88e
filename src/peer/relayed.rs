//! A peer nobody can dial, meeting others in the same place through a relay
//! ([`crate::relay`]).
//!
//! While [`super::standing`] says nobody can reach it, the peer keeps a reservation at a
//! reachable peer, opened from a port of its own with `SO_REUSEADDR` (the *punch port*).
//! Every node orders the peers it knows as relays the same way (by a hash of the swarm ID
//! and each peer's ID) and takes the first that has room, so the peers behind NATs meet at
//! the same relay and are introduced to each other. For each introduction the relay sends, both sides go, in order:
//! 1. **their own network**: behind the same NAT, the initiator dials the other where it
//!    listens there;
//! 2. **a punched hole**: both connect at once from their punch ports to each other's NAT
//!    mapping, as the relay saw it, again and again for [`PUNCH_TIME`];
//! 3. **the relay**: both send `RELAY(nonce)` to it and run their session through the
//!    circuit, end to end encrypted. A circuit lasts two minutes at most; the relay then
//!    introduces the two again, and they punch again: traffic moves to a direct
//!    connection as soon as one can be made.
//!
//! Whatever way the connection is made, the initiator runs it as a dialler (a FETCH
//! session offering a two-way link, its hello checked to prove the introduced ID), and
//! the responder hands it to its upload side as if accepted ([`super::Me::inject`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{two_way, Me};
use crate::activity;
use crate::connection::{self, Connection};
use crate::error::PeerError;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::task;
use crate::wire::relay::Introduction;
use crate::wire::{handshake, Message, Role};

/// How long both sides keep trying to punch a hole.
pub(crate) const PUNCH_TIME: Duration = Duration::from_secs(3);
/// The pause between two attempts.
const PUNCH_PAUSE: Duration = Duration::from_millis(50);
/// How long one attempt may take.
const PUNCH_ATTEMPT: Duration = Duration::from_millis(500);
/// How long a dial over the peers' own network may take.
const LAN_DIAL: Duration = Duration::from_secs(2);
/// How often a reservation is renewed (the relay lets one go after two minutes of silence).
const RENEW_EVERY: Duration = Duration::from_secs(45);
/// How long before another relay is tried once a reservation ends or is refused.
const RETRY: Duration = Duration::from_secs(5);
/// How long the relay may take to answer.
const ANSWER_TIME: Duration = Duration::from_secs(10);
/// Introductions handled at once.
const AT_ONCE: usize = 8;

/// Keeps a reservation while the peer is unreachable, until `token` is cancelled.
pub(crate) async fn run(me: Me, holdings: Arc<Holdings>, token: CancellationToken) {
    let busy = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut tried: Vec<PeerId> = Vec::new();
    loop {
        if me.standing.is_unreachable() {
            // Every peer of the swarm orders the peers it knows the same way (by a hash of
            // the swarm and each ID), so those behind NATs tend to pick the same relay and
            // are introduced to each other there. Any peer it knows of: the handshake
            // proves who answers.
            let swarm = holdings.manifest().swarm_id();
            let mut relays: Vec<_> = me
                .book
                .candidates()
                .into_iter()
                .filter(|p| !tried.contains(&p.id))
                .collect();
            relays.sort_by_key(|p| rank(swarm, p.id));
            match relays.first() {
                Some(relay) => {
                    tried.push(relay.id);
                    let held = tokio::select! {
                        _ = token.cancelled() => return,
                        held = hold(&me, &holdings, relay.addr, relay.id, &busy) => held,
                    };
                    match held {
                        // A reservation held, then ended: the preferred relays again next.
                        Ok(true) => tried.clear(),
                        Ok(false) => {}
                        Err(e) => debug!(relay = %relay.addr, cause = %e, "reservation ended"),
                    }
                }
                // Every known peer tried: start over.
                None => tried.clear(),
            }
        }
        if !task::sleep(&token, RETRY).await {
            return;
        }
    }
}

/// Where `peer` comes in every node's order of relays for `swarm`.
fn rank(swarm: crate::manifest::SwarmId, peer: PeerId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&swarm.0);
    hasher.update(&peer.0);
    *hasher.finalize().as_bytes()
}

/// Holds a reservation at `relay` until it ends, handling its introductions; whether the
/// relay took it.
async fn hold(
    me: &Me,
    holdings: &Arc<Holdings>,
    relay: SocketAddr,
    relay_id: PeerId,
    busy: &Arc<tokio::sync::Semaphore>,
) -> Result<bool, PeerError> {
    let (mut conn, punch_port) = connection::connect_reusable(relay, Arc::clone(&me.creds)).await?;
    let local = conn.local_addr().map(|a| SocketAddr::new(a.ip(), me.port));
    let Some(local) = local else {
        return Err(PeerError::Relay("no local address for the reservation"));
    };
    open(&mut conn, me, holdings, relay_id).await?;
    conn.write_message(&Message::Reserve(local)).await?;
    match conn.read_message(ANSWER_TIME, "waiting for RESERVED").await? {
        Some(Message::Reserved(seen)) => {
            info!(event = "reservation", %relay, %seen, "reservation held at a relay");
        }
        // A relay without room closes.
        None => return Ok(false),
        Some(other) => {
            return Err(PeerError::UnexpectedMessage {
                state: "waiting for RESERVED",
                got: other.name(),
            })
        }
    }
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.reset();
    loop {
        tokio::select! {
            _ = renew.tick() => {
                if !me.standing.is_unreachable() {
                    return Ok(true);
                }
                conn.write_message(&Message::Reserve(local)).await?;
            }
            read = conn.read_message(RENEW_EVERY * 2, "holding a reservation") => match read? {
                None => return Ok(true),
                Some(Message::Reserved(_)) => {}
                Some(Message::Introduce(intro)) => {
                    let Ok(permit) = Arc::clone(busy).try_acquire_owned() else {
                        debug!("introduction left: too many at once");
                        continue;
                    };
                    let (me2, holdings) = (me.clone(), Arc::clone(holdings));
                    let span = tracing::info_span!("introduced", peer = %intro.seen);
                    let run = async move {
                        introduced(&me2, &holdings, intro, (relay, relay_id), punch_port).await;
                        drop(permit);
                        Ok::<(), PeerError>(())
                    };
                    match &me.uploads {
                        Some(u) => task::spawn(&u.tracker, &u.token, "introduced", span, run),
                        None => drop(run),
                    }
                }
                Some(other) => return Err(PeerError::UnexpectedMessage {
                    state: "holding a reservation",
                    got: other.name(),
                }),
            },
        }
    }
}

/// Runs the handshake with the relay as its `RELAY` client, checking it is `relay_id`.
async fn open(
    conn: &mut Connection,
    me: &Me,
    holdings: &Holdings,
    relay_id: PeerId,
) -> Result<(), PeerError> {
    let swarm = holdings.manifest().swarm_id();
    let mut hello = handshake::fetch_hello(0, swarm, me.id, false);
    hello.role = Role::Relay;
    let theirs = conn.handshake(&hello).await?;
    handshake::check_server(&theirs, swarm)?;
    if theirs.peer != relay_id || theirs.role != Role::Peer {
        return Err(PeerError::Relay("not the relay we dialled"));
    }
    Ok(())
}

/// Connects to the introduced peer: its own network, a punched hole, or the relay.
async fn introduced(
    me: &Me,
    holdings: &Arc<Holdings>,
    intro: Introduction,
    relay: (SocketAddr, PeerId),
    punch_port: u16,
) {
    if intro.initiator {
        if let Some(local) = intro.local {
            if let Ok(Ok(conn)) =
                tokio::time::timeout(LAN_DIAL, Connection::connect(local, Arc::clone(&me.creds))).await
            {
                activity::connected_by(intro.peer, local, "lan");
                return initiate(me, holdings, conn, intro.peer).await;
            }
        }
    }
    if let Some(stream) = punch(punch_port, intro.seen).await {
        activity::connected_by(intro.peer, intro.seen, "punched");
        let conn = Connection::new(stream, intro.seen, Arc::clone(&me.creds));
        return if intro.initiator {
            initiate(me, holdings, conn, intro.peer).await
        } else {
            let _ = me.inject.send(conn).await;
        };
    }
    // Named by the introduced peer's address, not the relay's: seats and slots per address
    // count it as itself.
    match circuit(me, holdings, relay, intro.nonce, intro.seen).await {
        Ok(conn) => {
            activity::connected_by(intro.peer, intro.seen, "relayed");
            if intro.initiator {
                initiate(me, holdings, conn, intro.peer).await;
            } else {
                let _ = me.inject.send(conn).await;
            }
        }
        Err(e) => debug!(cause = %e, "no circuit through the relay"),
    }
}

/// Tries for [`PUNCH_TIME`] to connect from `port` to `to`.
async fn punch(port: u16, to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let until = tokio::time::Instant::now() + PUNCH_TIME;
    while tokio::time::Instant::now() < until {
        match connection::punch(port, to, PUNCH_ATTEMPT).await {
            Ok(stream) => return Some(stream),
            Err(e) => debug!(%to, cause = %e, "punch attempt failed"),
        }
        tokio::time::sleep(PUNCH_PAUSE).await;
    }
    None
}

/// Our side of a circuit for introduction `nonce` with the peer the relay sees at
/// `other`: the connection, end to end, still to run its handshake.
async fn circuit(
    me: &Me,
    holdings: &Holdings,
    (relay, relay_id): (SocketAddr, PeerId),
    nonce: u64,
    other: SocketAddr,
) -> Result<Connection, PeerError> {
    let mut conn = Connection::connect(relay, Arc::clone(&me.creds)).await?;
    open(&mut conn, me, holdings, relay_id).await?;
    conn.write_message(&Message::Relay(nonce)).await?;
    let wait = crate::relay::CIRCUIT_WAIT + ANSWER_TIME;
    match conn.read_message(wait, "waiting for RELAYING").await? {
        Some(Message::Relaying) => {}
        None => return Err(PeerError::Closed("waiting for RELAYING")),
        Some(other) => {
            return Err(PeerError::UnexpectedMessage {
                state: "waiting for RELAYING",
                got: other.name(),
            })
        }
    }
    let (stream, early) = conn.into_raw()?;
    Ok(Connection::relayed(stream, other, Arc::clone(&me.creds), early))
}

/// Opens our session on `conn` with `peer`: a FETCH offering a two-way link. The fetching
/// side goes to an inbound slot if the download side has one for it; our serving side
/// runs if the other took the offer.
async fn initiate(me: &Me, holdings: &Arc<Holdings>, conn: Connection, peer: PeerId) {
    let remote = conn.remote();
    let slot = me.adopter.reserve(peer, remote);
    let seat = me.downloaders.admit_free(remote.ip());
    if slot.is_none() && seat.is_none() {
        return;
    }
    let both = seat.is_some();
    let opened = FetchLink::over(
        conn,
        holdings.manifest(),
        (me.id, me.standing.announced(me.port)),
        false,
        both,
    )
    .await;
    let opened = match opened {
        Ok(opened) if opened.link.peer_id() == peer => opened,
        Ok(_) => return debug!(%remote, "the introduced peer answered under another ID"),
        Err(e) => return debug!(%remote, cause = %e, "introduced peer: the session failed"),
    };
    if let Some(serving) = opened.serving {
        two_way::spawn_serving(me, holdings, serving, peer, seat);
    }
    match slot {
        Some(slot) => slot.deliver(opened.link),
        None => drop(opened.link),
    }
}
