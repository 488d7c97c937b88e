//! `Server`: one of the two nodes the download side fetches from (the download neighbor
//! or the owner), with its link if connected, the backoff for redialling it, and its
//! strikes: every chunk it sends that fails its hash, and every other protocol violation
//! (an unrequested chunk, a listed chunk refused, a malformed message), is one. At
//! [`MAX_STRIKES`] the server is disconnected and not dialled again for the rest of the
//! session. Strikes are counted per sender, for what that sender sent, so an honest node
//! is never blamed for another's bad chunk.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::fetch::FetchLink;
use crate::config::Endpoint;
use crate::error::PeerError;
use crate::holdings::Holdings;
use crate::task::Backoff;

/// A server the download side talks to.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    /// The open fetch session, if connected.
    pub link: Option<FetchLink>,
    /// Redial delays. Reset only by a successful exchange, not by a connect, so a server
    /// that accepts and then drops us is not redialled in a hot loop.
    pub retry: Backoff,
    next_attempt: Instant,
    what: &'static str,
    strikes: u32,
    banned: bool,
}

/// Bad chunks a server may send before it is dropped for good.
pub const MAX_STRIKES: u32 = 3;

impl Server {
    /// A server at `endpoint`, already connected through `link` if given.
    pub fn new(endpoint: Endpoint, link: Option<FetchLink>, what: &'static str) -> Server {
        Server {
            endpoint,
            link,
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            next_attempt: Instant::now(),
            what,
            strikes: 0,
            banned: false,
        }
    }

    /// Dials if disconnected and the backoff allows; returns whether a link is up.
    pub async fn connect(&mut self, holdings: &Holdings, listen_port: u16) -> bool {
        if self.link.is_some() {
            return true;
        }
        if self.banned || Instant::now() < self.next_attempt {
            return false;
        }
        match FetchLink::open(&self.endpoint, holdings.manifest(), listen_port).await {
            Ok(link) => {
                info!(server = self.what, addr = %link.addr(), "connected");
                self.link = Some(link);
                true
            }
            Err(e) => {
                self.next_attempt = Instant::now() + self.retry.next_delay();
                if self.retry.attempts() == 1 || self.retry.attempts() % 20 == 0 {
                    info!(server = self.what, addr = %self.endpoint, cause = %e, "not reachable yet; retrying");
                } else {
                    debug!(server = self.what, addr = %self.endpoint, cause = %e, "not reachable; retrying");
                }
                false
            }
        }
    }

    /// Closes the link after `cause`; the next dial waits for the backoff.
    fn drop_link(&mut self, cause: &PeerError) {
        if let Some(link) = self.link.take() {
            warn!(server = self.what, addr = %link.addr(), %cause, "connection lost");
        }
        self.next_attempt = Instant::now() + self.retry.next_delay();
    }

    /// Ends the link after `cause`: a protocol violation is also a strike.
    pub fn fault(&mut self, cause: &PeerError) {
        if cause.is_violation() {
            self.strike(cause);
        }
        self.drop_link(cause);
    }

    /// Records a bad chunk or other violation from this server; at [`MAX_STRIKES`] drops
    /// it for good.
    pub fn strike(&mut self, cause: &PeerError) {
        self.strikes += 1;
        if self.strikes < MAX_STRIKES {
            warn!(server = self.what, addr = %self.endpoint, %cause, strikes = self.strikes, "strike");
            return;
        }
        warn!(
            server = self.what,
            addr = %self.endpoint,
            %cause,
            strikes = self.strikes,
            "banned for the rest of this session: too many bad chunks"
        );
        self.banned = true;
        self.link = None;
    }
}
