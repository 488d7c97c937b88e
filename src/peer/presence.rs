//! Presence after completion: a complete peer no longer dials anyone to download, so
//! every [`ANNOUNCE_EVERY`] it opens a short FETCH session to a few peers it knows and
//! swaps peer lists. Its hello tells them where it listens *now*, so a complete peer that
//! changed its address is found again by the peers that still need its chunks. The
//! announcements of one round run at once, each within [`ANNOUNCE_TIMEOUT`], and end with
//! the node's token, so a peer that answers its hello and then nothing neither slows the
//! round nor holds up the node's exit. Each announcement offers a two-way link: a peer still
//! downloading may take it and fetch from us over it, so a complete peer that nobody can
//! dial still seeds (our serving side then runs on in a task of its own).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{two_way, Me};
use crate::config::Endpoint;
use crate::error::PeerError;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::task;
use crate::wire::PeerAddr;

/// How often a complete peer announces itself.
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(3);
/// How many known peers it contacts each time.
pub(crate) const ANNOUNCE_TO: usize = 8;
/// How long one announcement may take.
pub(crate) const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Announces until `token` is cancelled.
pub(crate) async fn announce(me: Me, holdings: Arc<Holdings>, token: CancellationToken) {
    while task::sleep(&token, ANNOUNCE_EVERY).await {
        // Gossip too: a complete peer may have met nobody first-hand, and each dial proves
        // (or disproves) what the book was told.
        let round = me
            .book
            .sample_any(ANNOUNCE_TO, me.id)
            .into_iter()
            .map(|peer| announce_to(&me, &holdings, peer));
        tokio::select! {
            _ = token.cancelled() => return,
            _ = join_all(round) => {}
        }
    }
}

async fn announce_to(me: &Me, holdings: &Arc<Holdings>, peer: PeerAddr) {
    let endpoint = Endpoint::from_addr(peer.addr);
    let swap = async {
        // A peer still downloading may take the offer of a two-way link, and fetch from us
        // over it: a complete peer nobody can dial still gives what it has.
        let seat = me.downloaders.admit_free(peer.addr.ip());
        let both = seat.is_some();
        let opened = FetchLink::open_two_way(
            &endpoint,
            holdings.manifest(),
            me.standing.announced(me.port),
            &me.creds,
            false,
            both,
        )
        .await?;
        let mut link = opened.link;
        let source = link.peer_id();
        if let Some(serving) = opened.serving.filter(|_| source == peer.id) {
            // It fetches from us now: no peer lists on this link (a write given up by the
            // time limit would cut the link short for our serving side too).
            two_way::spawn_serving(me, holdings, serving, source, seat);
            return Ok((source, Vec::new()));
        }
        Ok::<_, PeerError>((source, link.peers_now().await?))
    };
    match tokio::time::timeout(ANNOUNCE_TIMEOUT, swap).await {
        Ok(Ok((source, peers))) if source == peer.id => {
            me.book.proven(source, peer.addr);
            me.book.learn_all(source, &peers);
        }
        // Busy is alive: it answered with its hello.
        Ok(Err(PeerError::Busy(id))) if id == peer.id => me.book.proven(id, peer.addr),
        Ok(Ok(_)) => me.book.unreachable(peer.id, peer.addr),
        Ok(Err(e)) => {
            me.book.unreachable(peer.id, peer.addr);
            debug!(peer = %peer.addr, cause = %e, "announce: not reachable");
        }
        Err(_) => {
            me.book.unreachable(peer.id, peer.addr);
            debug!(peer = %peer.addr, "announce: timed out");
        }
    }
}
