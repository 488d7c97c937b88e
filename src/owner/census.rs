//! The owner's census: how many peers hold each chunk, and when it is safe to leave.
//!
//! Every [`CENSUS_EVERY`] the owner asks each peer it knows (from their hellos; at most
//! [`MAX_PEERS`](crate::wire::MAX_PEERS)) for its chunk ID list over a short FETCH
//! session, counts the copies of every chunk, and logs a `swarm_copies` event when the
//! picture changes. The first time every chunk has been held by at least `k` peers
//! (`--safe-copies`) in two censuses in a row, it logs `safe_to_leave` and says so on
//! stderr: from then on the swarm can complete without the owner.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Owner;
use crate::config::Endpoint;
use crate::fetch::FetchLink;
use crate::task;
use crate::web::SwarmView;
use crate::wire::MAX_PEERS;

/// How often the owner counts the swarm's copies.
pub const CENSUS_EVERY: Duration = Duration::from_secs(2);

/// Copies of each chunk among the peers counted.
fn count_copies(lists: &[crate::chunk_set::ChunkSet], chunks: u32) -> Vec<u32> {
    let mut copies = vec![0u32; chunks as usize];
    for list in lists {
        for (id, c) in copies.iter_mut().enumerate() {
            *c += u32::from(list.contains(id as u32));
        }
    }
    copies
}

/// How often the census runs while the web view shows it.
pub const CENSUS_EVERY_WATCHED: Duration = Duration::from_millis(500);

/// Runs the census until `token` is cancelled, feeding `view` if given.
pub async fn run(
    owner: Arc<Owner>,
    safe_copies: u32,
    view: Option<Arc<SwarmView>>,
    token: CancellationToken,
) {
    let chunks = owner.manifest().layout().chunk_count();
    let mut last: Option<(u32, usize)> = None;
    let mut announced = false;
    let mut safe_last_round = false;
    let every = if view.is_some() {
        CENSUS_EVERY_WATCHED
    } else {
        CENSUS_EVERY
    };
    while task::sleep(&token, every).await {
        let mut lists = Vec::new();
        for peer in owner.book.sample(MAX_PEERS, owner.book.me()) {
            let endpoint = Endpoint::from_addr(peer.addr);
            let list = async {
                // Listening port 0: the census is not a peer to download from.
                let mut link = FetchLink::open(&endpoint, owner.manifest(), 0, &owner.creds, false).await?;
                link.list_now().await
            };
            match list.await {
                Ok(list) => {
                    if let Some(view) = &view {
                        view.observe(peer.id, peer.addr, &list);
                    }
                    lists.push(list);
                }
                Err(e) => {
                    if let Some(view) = &view {
                        view.unreachable(peer.id);
                    }
                    debug!(peer = %peer.addr, cause = %e, "census: peer not reachable");
                }
            }
        }
        if lists.is_empty() {
            continue;
        }
        let copies = count_copies(&lists, chunks);
        let min = copies.iter().copied().min().unwrap_or(0);
        let below = copies.iter().filter(|&&c| c < safe_copies).count();
        if last != Some((min, below)) {
            last = Some((min, below));
            info!(
                event = "swarm_copies",
                peers = lists.len(),
                min_copies = min,
                below_safe = below,
                safe_copies,
                "swarm copies counted"
            );
        }
        // Twice in a row: a peer lists a chunk as soon as it is written, and makes it
        // durable (kill -9 proof) within the next commit, a fraction of a census round.
        let safe = min >= safe_copies;
        let twice = safe && safe_last_round;
        safe_last_round = safe;
        if !announced && twice {
            announced = true;
            info!(
                event = "safe_to_leave",
                peers = lists.len(),
                min_copies = min,
                "safe to leave"
            );
            eprintln!(
                "swarmshare owner: safe to leave: every chunk is held by at least {safe_copies} of {} peers",
                lists.len()
            );
        }
    }
}
