//! Allowances for clients a node does not trust: a bucket per IP address and one they all
//! share, so however many connections, identities or addresses an attacker uses, a node
//! sends them together at most [`ALL_BURST`] + [`ALL_RATE`] × t bytes in t seconds, and one
//! address at most [`PER_ADDRESS_BURST`] + [`PER_ADDRESS_RATE`] × t.
//!
//! The owner pays from it everything it sends a client it has not proven (see
//! `owner::gate`) after its hello (manifest, lists, peer lists, chunks), and a manifest to
//! a proven identity beyond its first; a peer pays from it every manifest it sends to a
//! client joining through it (`--join`). The owner waives lists and chunks for an unproven
//! client while its ID holds a relay reservation there from the same address
//! ([`crate::rate::Waiver`]; at most 8 per address, 96 in all): those are outside the bound
//! above.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::rate::{Allowance, RateLimit};

/// What one address's unproven clients may be sent, bytes per second...
pub(crate) const PER_ADDRESS_RATE: u64 = 256 * 1024;
/// ...and at once.
pub(crate) const PER_ADDRESS_BURST: u64 = 1024 * 1024;
/// What all unproven clients together may be sent, bytes per second...
pub(crate) const ALL_RATE: u64 = 1024 * 1024;
/// ...and at once.
pub(crate) const ALL_BURST: u64 = 2 * 1024 * 1024;
/// The most addresses with a bucket of their own; beyond, idle buckets are dropped (a full
/// bucket is the same as a new one), and then new addresses share one.
pub(crate) const MAX_ADDRESSES: usize = 1024;

/// The buckets of the unproven.
#[derive(Debug)]
pub(crate) struct Unproven {
    everyone: Arc<RateLimit>,
    addresses: Mutex<HashMap<IpAddr, Arc<RateLimit>>>,
    crowded: Arc<RateLimit>,
}

impl Default for Unproven {
    fn default() -> Unproven {
        Unproven {
            everyone: Arc::new(RateLimit::with_burst(ALL_RATE, ALL_BURST)),
            addresses: Mutex::default(),
            crowded: Arc::new(RateLimit::with_burst(PER_ADDRESS_RATE, PER_ADDRESS_BURST)),
        }
    }
}

impl Unproven {
    /// The allowance of an unproven client at `ip`.
    pub(crate) fn allowance(&self, ip: IpAddr) -> Allowance {
        let mut map = self.addresses.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&ip) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, bucket| Arc::strong_count(bucket) > 1 || !bucket.is_full());
        }
        let address = if map.len() < MAX_ADDRESSES || map.contains_key(&ip) {
            Arc::clone(
                map.entry(ip)
                    .or_insert_with(|| Arc::new(RateLimit::with_burst(PER_ADDRESS_RATE, PER_ADDRESS_BURST))),
            )
        } else {
            Arc::clone(&self.crowded)
        };
        Allowance {
            address,
            everyone: Arc::clone(&self.everyone),
            waiver: None,
        }
    }
}
