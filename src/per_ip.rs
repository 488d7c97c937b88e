//! Counts of something each IP address holds now (connections, probes), each under a cap:
//! one host cannot take every one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// How many of something each IP address holds now (connections, probes).
pub(crate) type PerIpCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One of `limit` per address (a connection's share of [`crate::upload::MAX_PER_IP`], say); released when
/// dropped.
pub(crate) struct PerIp {
    counts: PerIpCounts,
    ip: IpAddr,
}

impl PerIp {
    /// One more for `ip`, unless it holds `limit` already.
    pub(crate) fn acquire(counts: &PerIpCounts, ip: IpAddr, limit: usize) -> Option<PerIp> {
        let mut map = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(PerIp {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
