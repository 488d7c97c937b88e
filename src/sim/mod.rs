//! A simulator that runs the real download scheduler ([`crate::scheduler`]) and the real
//! address book and owner hand-out policy, for swarms far larger than one machine can run.
//!
//! Time is simulated: an event queue of message arrivals, transfer completions and the
//! scheduler's timeouts. Bandwidth is fluid ([`flow`]): a node's upload (and download)
//! cap is shared equally among the chunks it is moving at once, and a transfer goes at
//! the smaller of its two shares. Every message takes one link latency; a server answers
//! a connection's requests one at a time, in order, as the real one does, and holds a
//! long poll until it has something new. What is not modelled: the CPU, the disk (a chunk
//! is stored the moment it arrives), TCP's slow start and loss.
//!
//! The simulated swarm is the owner, `peers` peers joining uniformly over `join_window`,
//! optionally some slow peers, idle identities at one address (they answer the hello and
//! nothing else), and churn (peers leaving at random times and coming back with their
//! chunks `away` later). [`run`] returns each peer's completion time and the figures the
//! issue asks for, next to the lower bound for the caps given.

mod client;
mod flow;
mod node;
mod report;
mod server;
mod world;

use std::time::Duration;

use serde::Serialize;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Peers (the owner not counted).
    pub peers: usize,
    /// File size in bytes.
    pub size: u64,
    /// Every node's upload cap, bytes per second (the owner's too).
    pub upload: f64,
    /// Every peer's download cap, bytes per second (`None`: unlimited).
    pub download: Option<f64>,
    /// The fraction of peers whose upload is `upload / slow_factor`.
    pub slow_fraction: f64,
    /// How much slower the slow peers upload.
    pub slow_factor: f64,
    /// The slow peers' download cap, bytes per second (`None`: as every peer's). A real
    /// peer with a throttled uplink also downloads slower: its acknowledgments queue
    /// behind its uploads.
    pub slow_download: Option<f64>,
    /// Idle identities at one address, known to the owner and to every peer.
    pub idle_sybils: usize,
    /// The fraction of peers that leave once, at a random time, and come back later.
    pub churn: f64,
    /// How long a churning peer stays away.
    pub away: Duration,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Peers join uniformly over this window.
    pub join_window: Duration,
    /// Neighbor slots per peer.
    pub neighbors: usize,
    /// The owner's `--peers` (batch size `ceil(chunks / owner_peers)`); `None`: `peers`.
    pub owner_peers: Option<u32>,
    /// The seed of every random choice.
    pub seed: u64,
    /// Give up (and report the peers still incomplete) after this much simulated time.
    pub limit: Duration,
    /// Print the swarm's progress every simulated second on stderr.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            peers: 100,
            size: 100 << 20,
            upload: 10e6,
            download: None,
            slow_fraction: 0.0,
            slow_factor: 4.0,
            slow_download: None,
            idle_sybils: 0,
            churn: 0.0,
            away: Duration::from_secs(30),
            latency: Duration::from_millis(5),
            join_window: Duration::from_secs(1),
            neighbors: crate::config::DEFAULT_NEIGHBORS,
            owner_peers: None,
            seed: 1,
            limit: Duration::from_secs(3600),
            trace: false,
        }
    }
}

/// What a simulation came to.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Peers simulated.
    pub peers: usize,
    /// Chunks in the file.
    pub chunks: u32,
    /// The lower bound on the time for every peer to complete, seconds:
    /// max(F/u_s, F/d_min, N·F/(u_s + Σu_i)).
    pub bound: f64,
    /// Seconds from the first join until the last peer completed (`None` if some never did).
    pub all_complete: Option<f64>,
    /// Seconds until every peer that is not slow completed (`None` if some never did).
    pub fast_complete: Option<f64>,
    /// Completion times over the bound (each peer's time from the first join), by rank.
    pub p50_ratio: f64,
    /// The 90th percentile.
    pub p90_ratio: f64,
    /// The 99th percentile.
    pub p99_ratio: f64,
    /// The slowest.
    pub max_ratio: f64,
    /// The same percentiles among peers that never left (churn runs).
    pub p99_ratio_stayers: f64,
    /// Bytes the owner uploaded over the file size.
    pub owner_upload_ratio: f64,
    /// Chunks that arrived after another copy had been stored.
    pub duplicates: u64,
    /// What the peers' fetch sessions said, counted over the whole run.
    pub messages: Messages,
    /// Peers that did not complete within the limit.
    pub incomplete: usize,
    /// Events processed.
    pub events: u64,
    /// Wall-clock seconds the simulation took.
    pub wall_secs: f64,
    /// Every peer's completion time over the bound, ascending (infinite: never).
    #[serde(skip)]
    pub completions: Vec<f64>,
}

/// Messages of the fetch sessions (the owner's batch not counted): what a real node wakes
/// up for.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Messages {
    /// `REQUEST`s sent.
    pub requests: u64,
    /// `LIST_REQUEST`s and `LIST_WAIT`s sent.
    pub list_asks: u64,
    /// `LIST`s sent.
    pub lists: u64,
}

/// Runs the simulation.
pub fn run(config: &SimConfig) -> SimReport {
    world::World::new(config).run()
}

/// The lower bound for `n` peers downloading `size` bytes, with the owner's upload `us`,
/// the peers' uploads `ui` and the slowest download `dmin`.
pub(crate) fn lower_bound(size: f64, us: f64, ui: &[f64], dmin: f64) -> f64 {
    let n = ui.len() as f64;
    let total: f64 = us + ui.iter().sum::<f64>();
    (size / us).max(size / dmin).max(n * size / total)
}

/// The `q` quantile (0..=1) of `sorted`, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Node index: 0 is the owner.
type NodeId = usize;
