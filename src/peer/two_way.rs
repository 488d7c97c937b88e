//! A peer's part in two-way links ([`crate::connection::Duplex`]): serving the other side
//! of a link, whoever dialled, and handing the download side the links peers dialled.
//!
//! * A peer that dials another to download offers to serve it on the same connection if it
//!   has a downloader seat to give it; if the other takes the offer, our serving side runs
//!   here ([`serve`]), beside the download, and outlives it (a complete peer still serves).
//! * A peer that is dialled with such an offer takes it if its download side has a free
//!   inbound slot for the dialler ([`Adopter::reserve`]); the fetching side of the link then
//!   goes to that slot ([`Reservation::deliver`]). So a peer nobody can dial still gives
//!   what it has, over the connections it made.
//!
//! The same rules hold in both directions: a downloader seat for whoever is served, the
//! node's upload and download caps, strikes and bans by the scheduler.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info_span};

use super::ctx::Ctx;
use super::Me;
use crate::admission::Ticket;
use crate::connection::{Connection, Pump};
use crate::error::PeerError;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::scheduler::{DialFailure, Event, LinkId};
use crate::task;
use crate::upload;

/// Where the tasks that serve our side of two-way links run: the peer's, under its token,
/// so they outlive the download side.
#[derive(Debug, Clone)]
pub(crate) struct Uploads {
    pub(crate) tracker: TaskTracker,
    pub(crate) token: CancellationToken,
    /// Dial-backs for the `REACH_REQUEST`s we answer.
    pub(crate) prover: Arc<crate::reach::Prover>,
}

/// Serves the other side's requests on our side of a two-way link (with `seat`, its
/// downloader seat here), and runs the link's pump, until both sides are done.
pub(super) async fn serve(
    me: Me,
    holdings: Arc<Holdings>,
    serving: Connection,
    pump: Pump,
    client: PeerId,
    seat: Option<Ticket>,
) -> Result<(), PeerError> {
    let remote = serving.remote();
    // Named in logs by where it listens, if we know it, else by its end of this link.
    let named = me.book.addr_of(client).unwrap_or(remote);
    let answer = async move {
        let mut serving = serving;
        let serving_args = upload::Serving {
            holdings: &holdings,
            book: &me.book,
            client: (client, named),
            limits: &me.limits,
            served: Some(&me.served),
            seat,
            seats: Some((&me.downloaders, remote.ip(), false)),
            allowance: None,
            reach: (me.uploads.as_ref().map(|u| &*u.prover), remote),
        };
        let served = upload::serve_requests(&mut serving, serving_args).await;
        // Our side is done: the pump goes on while the fetching side needs it, unless the
        // other side broke the protocol.
        if served.as_ref().is_err_and(PeerError::is_violation) {
            serving.abort();
            me.adopter.strike(client);
        }
        drop(serving);
        served
    };
    let (served, ()) = tokio::join!(answer, pump.run());
    served
}

/// Runs [`serve`] in a task of the peer's own (the link was dialled by the download side,
/// whose tasks end when it completes).
pub(super) fn spawn_serving(
    me: &Me,
    holdings: &Arc<Holdings>,
    (serving, pump): (Connection, Pump),
    client: PeerId,
    seat: Option<Ticket>,
) {
    let Some(uploads) = me.uploads.clone() else {
        return;
    };
    let remote = serving.remote();
    let span = info_span!("serve", %remote, two_way = true);
    let run = serve(me.clone(), Arc::clone(holdings), serving, pump, client, seat);
    task::spawn(&uploads.tracker, &uploads.token, "serve", span, async move {
        if let Err(e) = run.await {
            debug!(%remote, cause = %e, "two-way link: serving ended");
        }
        Ok::<(), PeerError>(())
    });
}

/// Where the upload side finds the download side's inbound slots, while there is one.
#[derive(Default)]
pub(crate) struct Adopter {
    ctx: Mutex<Weak<Ctx>>,
}

impl std::fmt::Debug for Adopter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adopter")
    }
}

impl Adopter {
    /// The download side is running with `ctx`.
    pub(super) fn open(&self, ctx: &Arc<Ctx>) {
        *self.ctx.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(ctx);
    }

    /// `peer` broke the protocol on our serving side of a two-way link: a strike against
    /// it at the download side, as if on a link of its own.
    pub(super) fn strike(&self, peer: PeerId) {
        let ctx = self.ctx.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        if let Some(ctx) = ctx {
            ctx.with(None, |s, _| s.violation_by(peer));
        }
    }

    /// Whether the download side (while it runs) has a link with `peer` already (and,
    /// with `staying`, one not closing).
    pub(super) fn linked_with(&self, peer: PeerId, staying: bool) -> bool {
        let ctx = self.ctx.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        ctx.is_some_and(|ctx| ctx.with(None, |s, _| s.linked_with(peer, staying)))
    }

    /// Ends the links with `peer` (through a relay): a direct connection replaces them.
    pub(super) fn upgrade(&self, peer: PeerId) {
        let ctx = self.ctx.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        if let Some(ctx) = ctx {
            ctx.with(None, |s, _| s.upgraded(peer));
        }
    }

    /// The download side has stopped.
    pub(super) fn close(&self) {
        *self.ctx.lock().unwrap_or_else(PoisonError::into_inner) = Weak::new();
    }

    /// An inbound slot for `peer`, which dialled us from `addr` offering a two-way link;
    /// `None` if the download side is done or no slot takes it.
    pub(super) fn reserve(&self, peer: PeerId, addr: SocketAddr) -> Option<Reservation> {
        let ctx = self
            .ctx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()?;
        if !ctx.running() {
            return None;
        }
        let link = ctx.with(None, |s, now| s.adopt(now, peer, addr))?;
        Some(Reservation {
            ctx,
            link,
            delivered: false,
        })
    }
}

/// An inbound slot held for a link still being set up; given back if it never comes.
pub(super) struct Reservation {
    ctx: Arc<Ctx>,
    link: LinkId,
    delivered: bool,
}

impl Reservation {
    /// The link is up: its fetching side goes to the slot.
    pub(super) fn deliver(mut self, conn: FetchLink) {
        self.delivered = true;
        self.ctx.hand_over(self.link, conn);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.delivered {
            let link = self.link;
            self.ctx.with(None, |s, now| {
                s.handle(now, link, Event::DialFailed(DialFailure::Unreachable))
            });
        }
    }
}
