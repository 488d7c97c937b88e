//! Presence after completion: a complete peer no longer dials anyone to download, so
//! every [`ANNOUNCE_EVERY`] it opens a short FETCH session to a few peers it knows and
//! swaps peer lists. Its hello tells them where it listens *now*, so a complete peer that
//! changed its address is found again by the peers that still need its chunks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Me;
use crate::config::Endpoint;
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::task;

/// How often a complete peer announces itself.
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(3);
/// How many known peers it contacts each time.
pub(crate) const ANNOUNCE_TO: usize = 8;

/// Announces until `token` is cancelled.
pub(crate) async fn announce(me: Me, holdings: Arc<Holdings>, token: CancellationToken) {
    while task::sleep(&token, ANNOUNCE_EVERY).await {
        // Gossip too: a complete peer may have met nobody first-hand, and each dial proves
        // (or disproves) what the book was told.
        for peer in me.book.sample_any(ANNOUNCE_TO, me.id) {
            let endpoint = Endpoint::from_addr(peer.addr);
            let swap = async {
                let mut link = FetchLink::open(&endpoint, holdings.manifest(), me.port, me.id, false).await?;
                Ok::<_, crate::error::PeerError>((link.peer_id(), link.peers_now().await?))
            };
            match tokio::time::timeout(Duration::from_secs(5), swap).await {
                Ok(Ok((source, peers))) => {
                    if source == peer.id {
                        me.book.proven(source, peer.addr);
                        me.book.learn_all(source, &peers);
                    } else {
                        me.book.unreachable(peer.id, peer.addr);
                    }
                }
                // Busy is alive: it answered with its hello.
                Ok(Err(crate::error::PeerError::Busy)) => me.book.proven(peer.id, peer.addr),
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
    }
}
