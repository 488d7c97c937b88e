//! `Server`: one node the download side fetches from (a neighbor or the owner), with its
//! link if connected, the backoff for redialling it, and its strikes: every chunk it sends
//! that fails its hash, and every other protocol violation (an unrequested chunk, a listed
//! chunk refused, a malformed message), is one. At [`MAX_STRIKES`] the server is
//! disconnected and not dialled again for the rest of the session. Strikes are counted per
//! sender, for what that sender sent, so an honest node is never blamed for another's bad
//! chunk.
//!
//! A server is named either by an endpoint (the owner, the neighbor on the command line)
//! or by a [`PeerId`] from the address book; for the latter every dial looks up where the
//! peer listens *now*, so a peer that changed its address is found again, and a dial that
//! reaches some other peer at the old address is refused.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::fetch::FetchLink;
use super::Me;
use crate::config::Endpoint;
use crate::error::PeerError;
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::task::Backoff;

/// Bad chunks or violations a server may commit before it is dropped for good.
pub const MAX_STRIKES: u32 = 3;

/// How a server is found.
#[derive(Debug, Clone)]
pub enum Target {
    /// A fixed endpoint, resolved afresh on every dial.
    Endpoint(Endpoint),
    /// A peer, at the address the book has for it at the time of the dial.
    Peer(PeerId),
}

/// A server the download side talks to.
#[derive(Debug)]
pub struct Server {
    target: Target,
    /// The open fetch session, if connected.
    pub link: Option<FetchLink>,
    /// Redial delays. Reset only by a stored chunk, so a server that accepts and then
    /// drops us is not redialled in a hot loop.
    pub retry: Backoff,
    next_attempt: Instant,
    what: &'static str,
    strikes: u32,
    banned: bool,
}

impl Server {
    /// A server at `target`, already connected through `link` if given.
    pub fn new(target: Target, link: Option<FetchLink>, what: &'static str) -> Server {
        Server {
            target,
            link,
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            next_attempt: Instant::now(),
            what,
            strikes: 0,
            banned: false,
        }
    }

    /// How the server is found.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The peer this server is, once known (from the book or its hello).
    pub fn peer_id(&self) -> Option<PeerId> {
        match (&self.link, &self.target) {
            (Some(link), _) => Some(link.peer_id()),
            (None, Target::Peer(id)) => Some(*id),
            (None, Target::Endpoint(_)) => None,
        }
    }

    /// Whether it was dropped for good.
    pub fn is_banned(&self) -> bool {
        self.banned
    }

    /// Dials if disconnected and the backoff allows; returns whether a link is up.
    pub async fn connect(&mut self, holdings: &Holdings, me: &Me) -> bool {
        if self.link.is_some() {
            return true;
        }
        if self.banned || Instant::now() < self.next_attempt {
            return false;
        }
        let endpoint = match &self.target {
            Target::Endpoint(e) => e.clone(),
            Target::Peer(id) => match me.book.addr_of(*id) {
                Some(addr) => Endpoint::from_addr(addr),
                None => return self.failed(&PeerError::Closed("(the peer's address is unknown)")),
            },
        };
        match FetchLink::open(&endpoint, holdings.manifest(), me.port, me.id).await {
            Ok(link) if link.peer_id() == me.id => {
                // Our own address (a gossiped or configured loop): never again.
                warn!(server = self.what, addr = %link.addr(), "this is ourselves; not using it");
                self.banned = true;
                false
            }
            Ok(link) if matches!(self.target, Target::Peer(id) if id != link.peer_id()) => {
                self.failed(&PeerError::Closed("(another peer now listens at that address)"))
            }
            Ok(link) => {
                info!(server = self.what, addr = %link.addr(), peer = %link.peer_id().short(), "connected");
                // The owner is a server of last resort, never a neighbor to hand out.
                if !link.is_owner() {
                    me.book.learn(link.peer_id(), link.addr());
                }
                self.link = Some(link);
                true
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &PeerError) -> bool {
        self.next_attempt = Instant::now() + self.retry.next_delay();
        let shown = self.target_name();
        if self.retry.attempts() == 1 || self.retry.attempts() % 20 == 0 {
            info!(server = self.what, target = %shown, cause = %e, "not reachable yet; retrying");
        } else {
            debug!(server = self.what, target = %shown, cause = %e, "not reachable; retrying");
        }
        false
    }

    fn target_name(&self) -> String {
        match &self.target {
            Target::Endpoint(e) => e.to_string(),
            Target::Peer(id) => format!("peer {}", id.short()),
        }
    }

    /// Failed dials since the last stored chunk.
    pub fn failures(&self) -> u32 {
        self.retry.attempts()
    }

    /// Ends the link after `cause`: a protocol violation is also a strike.
    pub fn fault(&mut self, cause: &PeerError) {
        if cause.is_violation() {
            self.strike(cause);
        }
        self.drop_link(cause);
    }

    /// Closes the link after `cause`; the next dial waits for the backoff.
    fn drop_link(&mut self, cause: &PeerError) {
        if let Some(link) = self.link.take() {
            warn!(server = self.what, addr = %link.addr(), %cause, "connection lost");
        }
        self.next_attempt = Instant::now() + self.retry.next_delay();
    }

    /// Records a bad chunk or other violation from this server; at [`MAX_STRIKES`] drops
    /// it for good.
    pub fn strike(&mut self, cause: &PeerError) {
        self.strikes += 1;
        let shown = self.target_name();
        if self.strikes < MAX_STRIKES {
            warn!(server = self.what, target = %shown, %cause, strikes = self.strikes, "strike");
            return;
        }
        warn!(
            server = self.what,
            target = %shown,
            %cause,
            strikes = self.strikes,
            "banned for the rest of this session: too many bad chunks or violations"
        );
        self.banned = true;
        self.link = None;
    }
}
