//! The sliding window of requests on one link: while fewer requests than the window are
//! in flight, the next chunk is chosen, claimed and requested, so the server always has the
//! next request queued; each answer read makes room for another. The window starts at
//! [`PIPELINE_START`] and then follows what the link delivers ([`Depth`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::download::{Claim, Ctx};
use super::fetch::Fetched;
use super::server::Server;
use super::storing::{Received, Storing};
use crate::activity::Source;
use crate::error::{Error, PeerError};

/// Requests in flight at once to one server, at most (1.6 MB of chunks).
pub const PIPELINE: usize = 16;
/// Requests in flight to a server at first, before its rate is known.
pub const PIPELINE_START: usize = 4;
/// How much of a link's measured rate is kept in flight: enough that the server always
/// has the next request, few enough that a slow or capped server is not handed chunks
/// another could bring sooner.
pub const IN_FLIGHT_TIME: Duration = Duration::from_millis(100);

/// The window of requests for one fetch stream, sized to the link's measured rate.
#[derive(Debug)]
struct Depth {
    chunk_size: f64,
    started: Instant,
    bytes: usize,
}

impl Depth {
    fn new(chunk_size: u32) -> Depth {
        Depth {
            chunk_size: f64::from(chunk_size.max(1)),
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn received(&mut self, bytes: usize) {
        self.bytes += bytes;
    }

    /// 2 + what the link delivers in [`IN_FLIGHT_TIME`], within 2..=[`PIPELINE`].
    fn get(&self) -> usize {
        let secs = self.started.elapsed().as_secs_f64();
        if self.bytes == 0 || secs <= 0.0 {
            return PIPELINE_START;
        }
        let per_window = self.bytes as f64 / secs * IN_FLIGHT_TIME.as_secs_f64() / self.chunk_size;
        (2 + per_window as usize).clamp(2, PIPELINE)
    }
}
impl Ctx {
    /// Streams requests to `server`, connected: keeps up to [`PIPELINE`] in flight, taking
    /// each next claim from `next` (told whether nothing is in flight, when an endgame
    /// duplicate may be taken) as an answer comes in, until `next` has nothing more and
    /// every answer is in. Returns whether any new chunk was stored. A failure ends the
    /// stream: the remaining claims are released for another try.
    pub(super) async fn fetch(
        &self,
        server: &mut Server,
        source: Source,
        mut next: impl FnMut(bool) -> Option<Claim>,
    ) -> Result<bool, Error> {
        let layout = *self.holdings.manifest().layout();
        let mut window: VecDeque<Claim> = VecDeque::with_capacity(PIPELINE);
        let mut stored = false;
        let mut depth = Depth::new(layout.chunk_size());
        let mut storing = Storing::default();
        // Every way out goes through `store_all`: a chunk already received is recorded.
        'stream: loop {
            while window.len() < depth.get() {
                let Some(claim) = next(window.is_empty()) else {
                    break;
                };
                let duplicate = claim.duplicate;
                // The download cap paces requests: what is asked for is what will arrive.
                // Never wait on it with answers outstanding (they would go unread): with
                // requests in flight, ask for more only while the budget allows.
                let expected = layout.chunk_len(claim.id).unwrap_or(0) as usize;
                if window.is_empty() {
                    self.me.limits.before_download(expected).await;
                } else if !self.me.limits.try_download(expected) {
                    break;
                }
                let Some(link) = server.link.as_mut() else {
                    break 'stream;
                };
                if let Err(e) = link.request(claim.id).await {
                    server.fault(&e);
                    break 'stream;
                }
                window.push_back(claim);
                if duplicate {
                    break;
                }
            }
            let Some(claim) = window.pop_front() else { break };
            let Some(link) = server.link.as_mut() else { break };
            let (id, addr) = (claim.id, link.addr());
            let data = match link.answer_for(id).await {
                Ok(Fetched::Chunk(data)) => data,
                // Only a neighbor's picks come from a list it sent.
                Ok(Fetched::NotHave) if source == Source::Neighbor => {
                    server.strike(&PeerError::ListedNotHeld(id));
                    continue;
                }
                Ok(Fetched::NotHave) => continue,
                Err(e) => {
                    server.fault(&e);
                    break;
                }
            };
            depth.received(data.len());
            let received = Received::new(id, data.len(), addr, source);
            stored |= self
                .store_ahead(server, &mut storing, received, data, Some(claim))
                .await?;
        }
        stored |= self.store_all(server, &mut storing).await?;
        Ok(stored)
    }
}
