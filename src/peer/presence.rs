//! Presence after completion: a complete peer no longer dials anyone to download, so
//! every [`ANNOUNCE_EVERY`] it opens a short FETCH session to a few peers it knows and
//! swaps peer lists. Its hello tells them where it listens *now*, so a complete peer that
//! changed its address is found again by the peers that still need its chunks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::fetch::FetchLink;
use super::Me;
use crate::config::Endpoint;
use crate::holdings::Holdings;
use crate::task;

/// How often a complete peer announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(3);
/// How many known peers it contacts each time.
pub const ANNOUNCE_TO: usize = 8;

/// Announces until `token` is cancelled.
pub async fn announce(me: Me, holdings: Arc<Holdings>, token: CancellationToken) {
    while task::sleep(&token, ANNOUNCE_EVERY).await {
        for peer in me.book.sample(ANNOUNCE_TO, me.id) {
            let endpoint = Endpoint::from_addr(peer.addr);
            let swap = async {
                let mut link = FetchLink::open(&endpoint, holdings.manifest(), me.port, me.id).await?;
                link.peers().await
            };
            match tokio::time::timeout(Duration::from_secs(5), swap).await {
                Ok(Ok(peers)) => me.book.learn_all(&peers),
                Ok(Err(e)) => debug!(peer = %peer.addr, cause = %e, "announce: not reachable"),
                Err(_) => debug!(peer = %peer.addr, "announce: timed out"),
            }
        }
    }
}
