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
use crate::config::Endpoint;
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
/// The pause between two attempts (after one the other side's NAT refused: up to
/// [`REFUSED_PAUSE_MICROS`]).
const PUNCH_PAUSE: Duration = Duration::from_millis(50);
const REFUSED_PAUSE_MICROS: u64 = 5_000;
/// How long a relayed link may take to end once a direct connection replaces it.
const UPGRADE_WAIT: Duration = Duration::from_secs(2);
/// How long a dial over the peers' own network may take.
const LAN_DIAL: Duration = Duration::from_secs(2);
/// How often a reservation is renewed (the relay lets one go after two minutes of silence).
const RENEW_EVERY: Duration = Duration::from_secs(45);
/// How long before another relay is tried once a reservation ends or is refused.
const RETRY: Duration = Duration::from_secs(5);
/// How long a peer that refused a reservation is not asked again.
const FORGET_TRIED: Duration = Duration::from_secs(300);
/// How long the relay may take to answer.
const ANSWER_TIME: Duration = Duration::from_secs(10);
/// Introductions handled at once.
const AT_ONCE: usize = 8;

/// Keeps a reservation while the peer is unreachable, until `token` is cancelled: at the
/// peers it knows, in every node's order, and at the owner (`owner`, its ID if known) when
/// none of them takes it.
pub(crate) async fn run(
    me: Me,
    holdings: Arc<Holdings>,
    owner: (Option<Endpoint>, Option<PeerId>),
    token: CancellationToken,
) {
    let busy = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    // Peers that refused or failed as relays, and when: tried again after a while.
    let mut tried = Tried::default();
    loop {
        tried.forget_old();
        if me.standing.is_unreachable() {
            match next_relay(&me, &holdings, &tried, &owner).await {
                Some((addr, who)) => {
                    if let RelayIs::Peer(id) = who {
                        tried.add(id);
                    }
                    let held = tokio::select! {
                        _ = token.cancelled() => return,
                        held = hold(&me, &holdings, (addr, who), &busy, &tried) => held,
                    };
                    match held {
                        // A reservation held, then ended: the preferred relays again next.
                        Ok(Held::Ended) => tried.clear(),
                        // Left the owner for a peer not tried yet.
                        Ok(Held::Moving | Held::Refused) => {}
                        Err(e) => debug!(relay = %addr, cause = %e, "reservation ended"),
                    }
                }
                // Nobody to try: start over.
                None => tried.clear(),
            }
        }
        // Until the next try, or at once when we learn nobody can dial us (the wait is
        // set up before the look, so no change falls between).
        let changed = me.standing.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let reachable = !me.standing.is_unreachable();
        tokio::select! {
            _ = token.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
            () = &mut changed, if reachable => {}
        }
    }
}

/// The peers tried as relays lately, and when.
#[derive(Debug, Default)]
struct Tried(Vec<(PeerId, tokio::time::Instant)>);

impl Tried {
    fn add(&mut self, peer: PeerId) {
        self.0.retain(|(id, _)| *id != peer);
        self.0.push((peer, tokio::time::Instant::now()));
    }

    fn has(&self, peer: PeerId) -> bool {
        self.0
            .iter()
            .any(|(id, at)| *id == peer && at.elapsed() < FORGET_TRIED)
    }

    fn forget_old(&mut self) {
        self.0.retain(|(_, at)| at.elapsed() < FORGET_TRIED);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// How a reservation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The relay had no room.
    Refused,
    /// Held, then ended (by the relay, or because the node can be dialled now).
    Ended,
    /// Held at the owner, left for a peer that may relay and has not been tried.
    Moving,
}

/// The next relay to try: the first peer not tried yet in every node's order (by a hash
/// of the swarm and each ID, so those behind NATs tend to meet at the same relay; any peer
/// it knows of, as the handshake proves who answers), else the owner.
async fn next_relay(
    me: &Me,
    holdings: &Holdings,
    tried: &Tried,
    (owner, owner_id): &(Option<Endpoint>, Option<PeerId>),
) -> Option<(SocketAddr, RelayIs)> {
    let swarm = holdings.manifest().swarm_id();
    let mut relays: Vec<_> = me
        .book
        .candidates()
        .into_iter()
        .filter(|p| !tried.has(p.id))
        .collect();
    relays.sort_by_key(|p| rank(swarm, p.id));
    if let Some(relay) = relays.first() {
        return Some((relay.addr, RelayIs::Peer(relay.id)));
    }
    let addr = owner.as_ref()?.resolve().await.ok()?;
    Some((addr, RelayIs::Owner(*owner_id)))
}

/// Where `peer` comes in every node's order of relays for `swarm`.
fn rank(swarm: crate::manifest::SwarmId, peer: PeerId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&swarm.0);
    hasher.update(&peer.0);
    *hasher.finalize().as_bytes()
}

/// Holds a reservation at `relay` until it ends, handling its introductions (at the owner,
/// until a peer not in `tried` may relay).
async fn hold(
    me: &Me,
    holdings: &Arc<Holdings>,
    (relay, relay_id): (SocketAddr, RelayIs),
    busy: &Arc<tokio::sync::Semaphore>,
    tried: &Tried,
) -> Result<Held, PeerError> {
    let (mut conn, punch_port) = connection::connect_reusable(relay, Arc::clone(&me.creds)).await?;
    let local = conn.local_addr().map(|a| SocketAddr::new(a.ip(), me.port));
    let Some(local) = local else {
        return Err(PeerError::Relay("no local address for the reservation"));
    };
    open(&mut conn, me, holdings, relay_id).await?;
    conn.write_message(&Message::Reserve(local)).await?;
    let seen = match conn.read_message(ANSWER_TIME, "waiting for RESERVED").await? {
        Some(Message::Reserved(seen)) => {
            info!(event = "reservation", %relay, %seen, "reservation held at a relay");
            seen
        }
        // A relay without room closes.
        None => return Ok(Held::Refused),
        Some(other) => {
            return Err(PeerError::UnexpectedMessage {
                state: "waiting for RESERVED",
                got: other.name(),
            })
        }
    };
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.reset();
    // One deadline for the relay's next word (its answer to our renewal).
    let mut heard = tokio::time::Instant::now();
    let mut budget = Budget::default();
    // Peers reached through this relay's circuits: introduced again, they punch again.
    let relayed = Relayed::default();
    loop {
        let silent = (heard + RENEW_EVERY * 2).saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            _ = renew.tick() => {
                // Reachable now: ended. At the owner while a peer not tried yet may
                // relay (and forward): left, to go where the others meet.
                if !me.standing.is_unreachable() {
                    return Ok(Held::Ended);
                }
                let untried = || me.book.candidates().iter().any(|p| !tried.has(p.id));
                if matches!(relay_id, RelayIs::Owner(_)) && untried() {
                    return Ok(Held::Moving);
                }
                conn.write_message(&Message::Reserve(local)).await?;
            }
            read = conn.read_message(silent, "holding a reservation") => match read? {
                None => return Ok(Held::Ended),
                Some(Message::Reserved(_)) => heard = tokio::time::Instant::now(),
                Some(Message::Introduce(intro)) => {
                    // What a relay says is a claim: nobody to dial at our own ID, a
                    // loopback or unspecified address, or a local one from a NAT not ours.
                    let Some(intro) = sane(intro, me.id, seen) else {
                        debug!("introduction refused: not a peer we could dial");
                        continue;
                    };
                    // Introduced again (every REINTRODUCE) to a peer we fetch from
                    // directly already: nothing to do.
                    if me.adopter.linked_with(intro.peer, true) && !relayed.has(intro.peer) {
                        continue;
                    }
                    if !budget.take() {
                        debug!("introduction left: too many this minute");
                        continue;
                    }
                    let Ok(permit) = Arc::clone(busy).try_acquire_owned() else {
                        debug!("introduction left: too many at once");
                        continue;
                    };
                    let (me2, holdings, relayed) = (me.clone(), Arc::clone(holdings), relayed.clone());
                    let span = tracing::info_span!("introduced", peer = %intro.seen);
                    let run = async move {
                        introduced(&me2, &holdings, intro, (relay, relay_id), punch_port, &relayed).await;
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

/// An introduction as far as it can be taken: `None` for one to ourselves or to an
/// address that names no other host; its local address dropped unless the relay sees the
/// other behind our own address (`seen`) and it is on a private network.
fn sane(mut intro: Introduction, me: PeerId, seen: SocketAddr) -> Option<Introduction> {
    let dialable = |a: SocketAddr| {
        let ip = a.ip().to_canonical();
        a.port() != 0 && !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast()
    };
    if intro.peer == me || intro.seen == seen || !dialable(intro.seen) {
        return None;
    }
    let private = |a: SocketAddr| match a.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => ip.is_private() || ip.is_link_local(),
        std::net::IpAddr::V6(ip) => ip.is_unique_local() || ip.is_unicast_link_local(),
    };
    intro.local = intro
        .local
        .filter(|&l| intro.seen.ip() == seen.ip() && dialable(l) && private(l));
    Some(intro)
}

/// Introductions handled per minute at most: a relay that floods them makes us dial
/// this often, no more.
#[derive(Debug)]
struct Budget {
    since: tokio::time::Instant,
    used: u32,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            since: tokio::time::Instant::now(),
            used: 0,
        }
    }
}

impl Budget {
    const PER_MINUTE: u32 = 30;

    fn take(&mut self) -> bool {
        if self.since.elapsed() >= Duration::from_secs(60) {
            *self = Budget::default();
        }
        self.used += 1;
        self.used <= Budget::PER_MINUTE
    }
}

/// The peers a reservation's circuits reached (bounded: forgotten all at once when full).
#[derive(Debug, Clone, Default)]
struct Relayed(Arc<std::sync::Mutex<std::collections::HashSet<PeerId>>>);

impl Relayed {
    const MOST: usize = 256;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<PeerId>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, peer: PeerId) {
        let mut set = self.lock();
        if set.len() >= Relayed::MOST {
            set.clear();
        }
        set.insert(peer);
    }

    fn has(&self, peer: PeerId) -> bool {
        self.lock().contains(&peer)
    }

    fn remove(&self, peer: PeerId) {
        self.lock().remove(&peer);
    }
}

/// Who a relay must prove to be: a peer, or the owner (its ID checked when known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayIs {
    Peer(PeerId),
    Owner(Option<PeerId>),
}

/// Runs the handshake with the relay as its `RELAY` client, checking who it is.
async fn open(conn: &mut Connection, me: &Me, holdings: &Holdings, relay: RelayIs) -> Result<(), PeerError> {
    let swarm = holdings.manifest().swarm_id();
    let mut hello = handshake::fetch_hello(0, swarm, me.id, false);
    hello.role = Role::Relay;
    let theirs = conn.handshake(&hello).await?;
    handshake::check_server(&theirs, swarm)?;
    let expected = match relay {
        RelayIs::Peer(id) => theirs.role == Role::Peer && theirs.peer == id,
        RelayIs::Owner(id) => theirs.role == Role::Owner && id.is_none_or(|id| theirs.peer == id),
    };
    if !expected {
        return Err(PeerError::Relay("not the relay we dialled"));
    }
    Ok(())
}

/// Connects to the introduced peer: its own network, a punched hole, or the relay.
async fn introduced(
    me: &Me,
    holdings: &Arc<Holdings>,
    intro: Introduction,
    relay: (SocketAddr, RelayIs),
    punch_port: u16,
    relayed: &Relayed,
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
    // Behind our own NAT the other dials us over our network: nothing to punch at (a
    // hole in our own router is no way to it).
    let punched = match (intro.initiator, intro.local) {
        (false, Some(_)) => None,
        _ => punch(punch_port, intro.seen).await,
    };
    if let Some(stream) = punched {
        activity::connected_by(intro.peer, intro.seen, "punched");
        if relayed.has(intro.peer) {
            upgrade(me, intro.peer).await;
            relayed.remove(intro.peer);
        }
        let mut conn = Connection::new(stream, intro.seen, Arc::clone(&me.creds));
        return if intro.initiator {
            initiate(me, holdings, conn, intro.peer).await
        } else {
            conn.expect_peer(intro.peer);
            let _ = me.inject.send(conn).await;
        };
    }
    // The owner forwards nothing.
    if matches!(relay.1, RelayIs::Owner(_)) {
        return debug!(peer = %intro.seen, "no direct connection made here, and the owner relays nothing");
    }
    // Named by the introduced peer's address, not the relay's: seats and slots per address
    // count it as itself.
    match circuit(me, holdings, relay, intro.nonce, intro.seen).await {
        Ok(mut conn) => {
            activity::connected_by(intro.peer, intro.seen, "relayed");
            relayed.add(intro.peer);
            if intro.initiator {
                initiate(me, holdings, conn, intro.peer).await;
            } else {
                conn.expect_peer(intro.peer);
                let _ = me.inject.send(conn).await;
            }
        }
        Err(e) => debug!(cause = %e, "no circuit through the relay"),
    }
}

/// Ends our links with `peer` through a relay's circuit, for the direct connection just
/// made to take their place: waits (up to [`UPGRADE_WAIT`]) until they are gone.
async fn upgrade(me: &Me, peer: PeerId) {
    me.adopter.upgrade(peer);
    let until = tokio::time::Instant::now() + UPGRADE_WAIT;
    while me.adopter.linked_with(peer, false) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    info!(event = "nat_upgrade", peer = %peer.short(), "a direct connection replaces the relayed one");
}

/// Tries for [`PUNCH_TIME`] to connect from `port` to `to`.
///
/// A NAT that drops a SYN it has no mapping for leaves our attempt waiting, and the other
/// side's SYN, once its NAT lets ours in, meets it (simultaneous open). One that refuses
/// (a router that answers RST) ends our attempt at once: the two SYNs must then cross in
/// flight, so after a refusal the next attempt goes out again within a few milliseconds
/// (at random, so two sides out of step drift into step), paced by the round trip itself.
async fn punch(port: u16, to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let until = tokio::time::Instant::now() + PUNCH_TIME;
    let (mut attempts, mut refused) = (0u32, 0u32);
    while tokio::time::Instant::now() < until {
        attempts += 1;
        // An attempt nobody refuses waits as long as punching lasts: dropped half-way, a
        // handshake that was about to complete leaves the two ends' addresses taken (TIME_WAIT)
        // for the attempts after it.
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let pause = match connection::punch(port, to, left).await {
            Ok(stream) => {
                debug!(%to, attempts, refused, "hole punched");
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused += 1;
                Duration::from_micros(rand::random_range(500..REFUSED_PAUSE_MICROS))
            }
            Err(e) => {
                debug!(%to, cause = %e, "punch attempt failed");
                PUNCH_PAUSE
            }
        };
        tokio::time::sleep(pause).await;
    }
    debug!(%to, attempts, refused, "no hole punched");
    None
}

/// Our side of a circuit for introduction `nonce` with the peer the relay sees at
/// `other`: the connection, end to end, still to run its handshake.
async fn circuit(
    me: &Me,
    holdings: &Holdings,
    (relay, relay_id): (SocketAddr, RelayIs),
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
