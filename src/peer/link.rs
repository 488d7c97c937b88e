//! One link's task: the scheduler's hands on one connection. It does what
//! [`Scheduler::poll`](crate::scheduler::Scheduler::poll) says, then waits for whichever
//! comes first: an answer on the connection, a stored chunk, or a wake-up from the
//! scheduler; and reports each back as an [`Event`]. It decides nothing itself except what
//! only it can see: the download cap (a request it may not send yet is handed back).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::ctx::Ctx;
use super::storing::{Received, Storing};
use crate::activity::Source;
use crate::config::Endpoint;
use crate::error::{Error, PeerError};
use crate::fetch::{Answer, Ask, FetchLink};
use crate::scheduler::{Action, Close, DialFailure, Event, LinkId, Role, Target};

/// How a pinned link is named in logs.
const PINNED: &str = "download neighbor";

/// Runs `link` (with `role`; `endpoint` for a pinned or owner link) until cancelled.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    link: LinkId,
    role: Role,
    endpoint: Option<Endpoint>,
) -> Result<(), Error> {
    let mut conn: Option<FetchLink> = None;
    let mut storing = Storing::default();
    let mut failures = 0u32;
    let what = match role {
        Role::Owner => "owner",
        Role::Pinned => PINNED,
        Role::Neighbor => "neighbor",
        Role::Inbound => "inbound",
    };
    while ctx.running() {
        if conn.is_none() {
            if let Some(adopted) = ctx.take_handoff(link) {
                adopt(&ctx, link, adopted, &mut conn);
            }
        }
        act(
            &ctx,
            link,
            what,
            endpoint.as_ref(),
            &mut conn,
            &mut storing,
            &mut failures,
        )
        .await?;
        let expecting = conn.as_ref().is_some_and(FetchLink::expecting) && !storing.full();
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            () = ctx.woken(link) => {}
            done = storing.oldest(), if !storing.is_empty() => storing.record(&ctx, Some(link), done?).await?,
            answer = read(&mut conn), if expecting => {
                if let Err(e) = on_answer(&ctx, link, &mut conn, &mut storing, answer) {
                    lost(&ctx, link, what, &mut conn, &e);
                }
            }
        }
    }
    Ok(())
}

async fn read(conn: &mut Option<FetchLink>) -> Result<Answer, PeerError> {
    match conn.as_mut() {
        Some(c) => c.read_answer().await,
        None => std::future::pending().await,
    }
}

/// Carries out the scheduler's actions for `link` until it has none. Requests are queued
/// as they come and written together at the end (or before anything that waits), so a
/// refill of two requests and a long poll behind them leave in one write.
async fn act(
    ctx: &Ctx,
    link: LinkId,
    what: &'static str,
    endpoint: Option<&Endpoint>,
    conn: &mut Option<FetchLink>,
    storing: &mut Storing,
    failures: &mut u32,
) -> Result<(), Error> {
    while let Some(action) = ctx.with(Some(link), |s, now| s.poll(link, now)) {
        match action {
            Action::Dial { target, timeout } => {
                // Chunks already here are recorded first: a dial may take seconds.
                while !storing.is_empty() {
                    storing.finish_oldest(ctx, Some(link)).await?;
                }
                let (event, link_up) = dial(ctx, target, endpoint, timeout, what, failures).await;
                *conn = link_up;
                ctx.with(Some(link), |s, now| s.handle(now, link, event));
            }
            Action::Close(why) => {
                if let Some(c) = conn.take() {
                    // A banned peer is not served either, on a two-way link.
                    if matches!(why, Close::Banned | Close::Upgraded) {
                        c.abort();
                    }
                    match why {
                        Close::Banned => warn!(
                            server = what,
                            addr = %c.addr(),
                            "banned for the rest of this session: too many bad chunks or violations"
                        ),
                        _ => debug!(server = what, addr = %c.addr(), why = why.as_str(), "closing the link"),
                    }
                }
            }
            Action::Request(id) => {
                let Some(c) = conn.as_mut() else { continue };
                let len = ctx.holdings.manifest().layout().chunk_len(id).unwrap_or(0) as usize;
                // The download cap paces requests: what is asked for is what will arrive.
                // Never wait on it with answers outstanding (they would go unread).
                if c.chunks_outstanding() == 0 {
                    flush(ctx, link, what, conn).await;
                    if conn.is_none() {
                        // The flush lost the link (and the scheduler the request).
                        continue;
                    }
                    ctx.me.limits.before_download(len).await;
                } else if !ctx.me.limits.try_download(len) {
                    ctx.with(Some(link), |s, now| s.handle(now, link, Event::Unsent(id)));
                    break;
                }
                queue(conn, Ask::Chunk(id));
            }
            Action::AskList(wait) => queue(conn, Ask::List(wait)),
            Action::AskPeers => queue(conn, Ask::Peers),
        }
    }
    flush(ctx, link, what, conn).await;
    Ok(())
}

/// Queues `ask` on `conn`, if the link is up.
fn queue(conn: &mut Option<FetchLink>, ask: Ask) {
    if let Some(c) = conn.as_mut() {
        c.queue(ask);
    }
}

/// Writes what `conn` has queued; a failure loses the link.
async fn flush(ctx: &Ctx, link: LinkId, what: &'static str, conn: &mut Option<FetchLink>) {
    let Some(c) = conn.as_mut() else { return };
    if let Err(e) = c.flush().await {
        lost(ctx, link, what, conn, &e);
    }
}

/// A peer dialled us and the upload side handed over the fetching side of its two-way
/// link (see [`super::two_way`]): the scheduler gave this slot for it.
fn adopt(ctx: &Ctx, link: LinkId, adopted: FetchLink, conn: &mut Option<FetchLink>) {
    info!(addr = %adopted.addr(), peer = %adopted.peer_id().short(), "fetching over a link it dialled");
    let event = Event::Connected {
        peer: adopted.peer_id(),
        addr: adopted.addr(),
        owner: false,
    };
    *conn = Some(adopted);
    ctx.with(Some(link), |s, now| s.handle(now, link, event));
}

/// Dials `target` and exchanges hellos within `timeout`. A peer's link offers the other
/// side a two-way link if this node has a downloader seat to give it (the owner is not
/// offered one: it fetches nothing); if it takes the offer, our serving side is served in
/// a task of its own ([`super::two_way`]).
async fn dial(
    ctx: &Ctx,
    target: Target,
    endpoint: Option<&Endpoint>,
    timeout: Duration,
    what: &'static str,
    failures: &mut u32,
) -> (Event<'static>, Option<FetchLink>) {
    let (endpoint, expected) = match (target, endpoint) {
        (Target::Peer { id, addr }, _) => (Endpoint::from_addr(addr), Some(id)),
        (Target::Configured, Some(e)) => (e.clone(), None),
        (Target::Configured, None) => return (Event::DialFailed(DialFailure::Refused), None),
    };
    let me = &ctx.me;
    let neighbor = what == PINNED;
    let offer = what != "owner";
    let open = async {
        let addr = endpoint.resolve().await?;
        // The seat the other side takes here if it takes the offer.
        let seat = offer.then(|| me.downloaders.admit_free(addr.ip())).flatten();
        let both = seat.is_some();
        let at = Endpoint::from_addr(addr);
        let opened = FetchLink::open_two_way(
            &at,
            ctx.holdings.manifest(),
            me.standing.announced(me.port),
            &me.creds,
            neighbor,
            both,
        )
        .await?;
        Ok::<_, PeerError>((opened, seat))
    };
    let result = tokio::time::timeout(timeout, open)
        .await
        .unwrap_or(Err(PeerError::Timeout("connecting")));
    let result = result.map(|(opened, seat)| {
        let link = opened.link;
        match opened.serving {
            Some(serving) if link.peer_id() != me.id && expected.is_none_or(|id| id == link.peer_id()) => {
                debug!(server = what, addr = %link.addr(), "two-way link: serving it too");
                super::two_way::spawn_serving(me, &ctx.holdings, serving, link.peer_id(), seat);
            }
            _ => {}
        }
        link
    });
    let failure = match result {
        Ok(link) if link.peer_id() == me.id => {
            warn!(server = what, addr = %link.addr(), "this is ourselves; not using it");
            DialFailure::Myself
        }
        Ok(link) if expected.is_some_and(|id| id != link.peer_id()) => DialFailure::WrongPeer(link.peer_id()),
        Ok(link) => {
            *failures = 0;
            info!(server = what, addr = %link.addr(), peer = %link.peer_id().short(), "connected");
            let event = Event::Connected {
                peer: link.peer_id(),
                addr: link.addr(),
                owner: link.is_owner(),
            };
            return (event, Some(link));
        }
        Err(e) => {
            *failures += 1;
            if expected.is_none() && (*failures == 1 || *failures % 20 == 0) {
                info!(server = what, target = %endpoint, cause = %e, "not reachable yet; retrying");
            } else {
                debug!(server = what, target = %endpoint, cause = %e, "not reachable");
            }
            match e {
                // Alive, only full: if it is the peer we meant.
                PeerError::Busy(id) if expected.is_none_or(|want| want == id) => DialFailure::Busy,
                PeerError::Busy(id) => DialFailure::WrongPeer(id),
                PeerError::SwarmMismatch { .. }
                | PeerError::UnexpectedRole { .. }
                | PeerError::Handshake(_) => DialFailure::Refused,
                _ => DialFailure::Unreachable,
            }
        }
    };
    (Event::DialFailed(failure), None)
}

/// Handles one answer: a list, a chunk (stored while the link reads on), a refusal, peers.
fn on_answer(
    ctx: &Ctx,
    link: LinkId,
    conn: &mut Option<FetchLink>,
    storing: &mut Storing,
    answer: Result<Answer, PeerError>,
) -> Result<(), PeerError> {
    let answer = answer?;
    let Some(c) = conn.as_ref() else { return Ok(()) };
    let (peer, addr) = (c.peer_id(), c.addr());
    match answer {
        Answer::List(list) => {
            if let Some(view) = &ctx.me.view {
                // The address it listens on, as the book has it (not our dial's port).
                view.observe(peer, ctx.me.book.addr_of(peer).unwrap_or(addr), &list);
            }
            ctx.with(Some(link), |s, now| s.handle(now, link, Event::List(&list)));
        }
        Answer::Chunk(id, data) => {
            ctx.with(Some(link), |s, now| s.handle(now, link, Event::Arrived(id)));
            let source = if c.is_owner() {
                Source::Owner
            } else {
                Source::Neighbor
            };
            storing.push(
                &ctx.holdings,
                Received::new(id, data.len(), addr, peer, source),
                data,
            );
        }
        Answer::NotHave(id) => ctx.with(Some(link), |s, now| s.handle(now, link, Event::NotHave(id))),
        // Never asked on a link.
        Answer::Reach(..) => {}
        Answer::Peers(peers) => {
            debug!(server = %addr, peers = peers.len(), "peer list received");
            ctx.me.book.learn_all(peer, &peers);
            ctx.with(Some(link), |s, now| s.handle(now, link, Event::Peers));
        }
    }
    Ok(())
}

/// The connection failed: drop it and tell the scheduler.
fn lost(ctx: &Ctx, link: LinkId, what: &'static str, conn: &mut Option<FetchLink>, cause: &PeerError) {
    // On a two-way link the pump may have found a violation first (the error this link
    // met is then only its aftermath).
    let found = conn.as_mut().and_then(FetchLink::failure);
    let violation = cause.is_violation() || found.as_ref().is_some_and(PeerError::is_violation);
    if let Some(c) = conn.take() {
        let cause = found.as_ref().unwrap_or(cause);
        warn!(server = what, addr = %c.addr(), %cause, "connection lost");
        // On a two-way link our serving side goes too if the other side is hostile; an
        // honest but slow one keeps fetching from us.
        if violation {
            c.abort();
        }
    }
    ctx.with(Some(link), |s, now| {
        s.handle(now, link, Event::Closed { violation })
    });
}
