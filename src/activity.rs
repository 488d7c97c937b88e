//! The activity log: one tracing event per thing a node does that the seed asks to see.
//!
//! Every event has an `event` field from a fixed set, so `--log-format json` output can be
//! filtered by machine. The seed's six are [`chunk_received`], [`chunk_sent`],
//! [`list_received`], [`list_sent`], [`request_sent`] and [`request_received`]; the others
//! mark start-up, the owner's batch, a failed hash and completion. `peer` is always the
//! other side's address: for a connection we opened, the address we dialled; for one we
//! accepted, its IP with the listening port it announced in its hello.
//!
//! All functions are called inside the node's span, which names the node.

use std::net::SocketAddr;
use std::path::Path;

use tracing::{info, warn};

use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, Manifest};
use crate::text::Quoted;

/// Where a received chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The file owner.
    Owner,
    /// A download neighbor.
    Neighbor,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Owner => "owner",
            Source::Neighbor => "neighbor",
        }
    }
}

/// A verified chunk arrived.
pub(crate) fn chunk_received(peer: SocketAddr, id: ChunkId, bytes: usize, source: Source) {
    info!(event = "chunk_received", chunk = id, %peer, bytes, source = source.as_str(), "chunk received");
}

/// A chunk was sent.
pub(crate) fn chunk_sent(peer: SocketAddr, id: ChunkId, bytes: usize) {
    info!(event = "chunk_sent", chunk = id, %peer, bytes, "chunk sent");
}

/// A chunk ID list arrived.
pub(crate) fn list_received(peer: SocketAddr, chunks: u32) {
    info!(event = "chunk_list_received", %peer, chunks, "chunk ID list received");
}

/// A chunk ID list was sent.
pub(crate) fn list_sent(peer: SocketAddr, chunks: u32) {
    info!(event = "chunk_list_sent", %peer, chunks, "chunk ID list sent");
}

/// A chunk request was sent.
pub(crate) fn request_sent(peer: SocketAddr, id: ChunkId) {
    info!(event = "chunk_request_sent", chunk = id, %peer, "chunk request sent");
}

/// A chunk request arrived.
pub(crate) fn request_received(peer: SocketAddr, id: ChunkId) {
    info!(event = "chunk_request_received", chunk = id, %peer, "chunk request received");
}

/// The owner is serving.
pub(crate) fn owner_start(addr: SocketAddr, file: &Path, manifest: &Manifest) {
    let layout = manifest.layout();
    info!(
        event = "owner_start",
        listen = %addr,
        file = %Quoted(file),
        bytes = layout.file_size(),
        chunks = layout.chunk_count(),
        chunk_size = layout.chunk_size(),
        swarm = %manifest.swarm_id(),
        "owner serving"
    );
}

/// A peer has its manifest (from the owner, or from its directory when `resumed`) and
/// starts exchanging chunks.
pub(crate) fn peer_start(
    listen: SocketAddr,
    id: PeerId,
    owner: &str,
    neighbor: &str,
    manifest: &Manifest,
    held: u32,
    resumed: bool,
) {
    info!(
        event = "peer_start",
        listen = %listen,
        id = %id,
        owner,
        neighbor,
        resumed,
        file = %Quoted(manifest.name()),
        chunks = manifest.layout().chunk_count(),
        held,
        swarm = %manifest.swarm_id().short(),
        "peer started"
    );
}

/// The owner sent, or a peer received, an initial batch.
pub(crate) fn owner_batch(peer: SocketAddr, chunks: u32, first: Option<ChunkId>, last: Option<ChunkId>) {
    info!(event = "owner_batch", %peer, chunks, first, last, "owner batch");
}

/// No chunk arrived for a while: what the peer is still missing.
pub(crate) fn waiting(have: &ChunkSet, state: &str) {
    warn!(
        event = "waiting",
        missing = have.len() - have.count(),
        chunks = %have.missing_ranges(20),
        state,
        "still waiting for chunks"
    );
}

/// A chunk failed verification and was discarded.
pub(crate) fn hash_failure(peer: SocketAddr, id: ChunkId) {
    warn!(event = "hash_failure", chunk = id, %peer, "chunk failed verification, discarded");
}

/// The peer holds every chunk and has joined and verified the file.
pub(crate) fn complete(file: &Path, secs: f64, from_owner: u32, from_neighbor: u32) {
    info!(
        event = "complete",
        file = %Quoted(file),
        secs,
        from_owner,
        from_neighbor,
        "download complete, file verified"
    );
}

/// Whether others can dial this node at `port` changed: `by` dialled it back (or could
/// not) and sees it at `seen`.
pub(crate) fn reachability(port: u16, reachable: bool, by: SocketAddr, seen: SocketAddr) {
    if reachable {
        info!(event = "reachability", port, reachable, %by, %seen, "reachable: others can dial this node");
    } else {
        info!(
            event = "reachability",
            port,
            reachable,
            %by,
            %seen,
            "not reachable: nobody could dial this node, so it announces no port and gives over the links it dials"
        );
    }
}

/// A DHT lookup found `found` addresses under the swarm's key, of which `met` were peers
/// of the swarm new to this node.
pub(crate) fn dht_lookup(found: usize, met: usize) {
    info!(
        event = "dht_lookup",
        found, met, "DHT lookup: {found} addresses, {met} new peers of the swarm met"
    );
}

/// A node the DHT named proved, in its handshake, to be `id` of this swarm.
pub(crate) fn dht_met(peer: SocketAddr, id: PeerId) {
    info!(event = "dht_met", %peer, id = %id, "met a peer of the swarm found in the DHT");
}

/// A node behind a NAT reached another one it was introduced to: `how` is `lan` (their
/// own network), `punched` (a hole punched through both NATs) or `relayed` (a circuit).
pub(crate) fn connected_by(id: PeerId, peer: SocketAddr, how: &'static str) {
    info!(event = "nat_link", id = %id, %peer, how, "connected to an introduced peer ({how})");
}

/// A relay circuit ended, having forwarded `bytes` (both ways together).
pub(crate) fn relayed(bytes: u64) {
    info!(event = "relay_circuit", bytes, "relay circuit ended");
}

/// The owner could not prove a client: nobody of the swarm answered under its ID at the
/// address it announced (`probed`: asked just now; else known from an earlier probe, or
/// the client listens nowhere). It is served from the allowance for the unproven.
pub(crate) fn unproven(addr: SocketAddr, claimed: PeerId, probed: bool) {
    info!(
        event = "unproven",
        peer = %addr,
        claimed = %claimed,
        probed,
        "client not proven; served from the allowance"
    );
}

/// A connection did not prove what this node asks of it (the swarm's secret, its key, its
/// mode): refused before anything about the swarm was sent. At most twenty lines in any
/// one second, so a flood of bad handshakes cannot flood the log; the next line logged
/// counts those left out.
pub(crate) fn auth_failed(remote: SocketAddr, cause: &dyn std::fmt::Display) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    const PER_SECOND: u64 = 20;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    // The second the count is for (high 32 bits) and the lines logged in it (low 32).
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static LEFT_OUT: AtomicU64 = AtomicU64::new(0);
    let second = START.get_or_init(std::time::Instant::now).elapsed().as_secs() + 1;
    let taken = WINDOW.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
        match (w >> 32 == second, w & 0xFFFF_FFFF) {
            (true, n) if n >= PER_SECOND => None,
            (true, n) => Some((second << 32) | (n + 1)),
            (false, _) => Some((second << 32) | 1),
        }
    });
    if taken.is_err() {
        LEFT_OUT.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let left_out = LEFT_OUT.swap(0, Ordering::Relaxed);
    warn!(
        event = "auth_failed",
        peer = %remote,
        cause = %cause,
        left_out,
        "connection refused: authentication failed"
    );
}
