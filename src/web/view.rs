//! `SwarmView`: the swarm as one node knows it, for the web page. The owner fills it from
//! its census (every peer's chunk list), a peer from the lists its neighbors send; the
//! node's own chunks are read from its [`Holdings`] when a snapshot is taken. Bounded: at
//! most [`MAX_NODES`] other nodes are kept, the least recently heard of dropped first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::chunk_set::ChunkSet;
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::manifest::{hex, EntryKind, Manifest, Tree};

/// Other nodes the view keeps at most.
pub(crate) const MAX_NODES: usize = 256;
/// Columns of the page's grid at most: a larger file's chunks are shown in bins (a bin is
/// held when all its chunks are), so a snapshot stays small whatever the file size.
pub(crate) const MAX_COLUMNS: u32 = 4096;
/// A node not heard from for this long is shown as idle, its rate as 0.
pub(crate) const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Which of `columns` bins of `have` are fully held, as a hex bitfield (most significant
/// bit first), and the bins' bounds.
fn bins(have: &ChunkSet, columns: u32) -> String {
    if columns == have.len() {
        return hex(have.as_bitfield());
    }
    let mut out = ChunkSet::empty(columns);
    for j in 0..columns {
        let (lo, hi) = bin_bounds(j, columns, have.len());
        if (lo..hi).all(|id| have.contains(id)) {
            out.insert(j);
        }
    }
    hex(out.as_bitfield())
}

/// The chunk IDs `lo..hi` in bin `j` of `columns` over `chunks`.
fn bin_bounds(j: u32, columns: u32, chunks: u32) -> (u32, u32) {
    let at = |k: u32| (u64::from(k) * u64::from(chunks) / u64::from(columns)) as u32;
    (at(j), at(j + 1).max(at(j) + 1).min(chunks))
}

/// How this node takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The owner: it holds the whole file.
    Owner,
    /// A peer.
    Peer,
}

#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    have: Option<ChunkSet>,
    reachable: bool,
    heard: Instant,
    /// Bytes per second, smoothed, from the growth of its list.
    rate: f64,
}

#[derive(Debug)]
struct Me {
    count: u32,
    at: Instant,
    rate: f64,
}

/// The swarm as this node knows it; cheap to update, snapshotted as JSON.
#[derive(Debug)]
pub struct SwarmView {
    role: Role,
    id: PeerId,
    listen: SocketAddr,
    holdings: Arc<Holdings>,
    nodes: Mutex<HashMap<PeerId, Node>>,
    me: Mutex<Me>,
    changed: watch::Sender<u64>,
    /// The last snapshot as JSON text, shared by every page for [`REUSE_FOR`].
    cached: Mutex<Option<(Instant, Arc<str>)>>,
}

/// How long one snapshot serves every open page.
pub(crate) const REUSE_FOR: std::time::Duration = std::time::Duration::from_millis(150);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Folds a new sample of `count` chunks at `now` into `rate` (bytes per second).
fn smoothed(rate: f64, before: (u32, Instant), now: (u32, Instant), chunk_size: u32) -> f64 {
    let secs = now.1.duration_since(before.1).as_secs_f64();
    if secs <= 0.0 {
        return rate;
    }
    let sample = f64::from(now.0.saturating_sub(before.0)) * f64::from(chunk_size) / secs;
    if rate == 0.0 {
        sample
    } else {
        0.5 * rate + 0.5 * sample
    }
}

impl SwarmView {
    /// A view for the node `id` listening on `listen`, holding `holdings`.
    pub fn new(role: Role, id: PeerId, listen: SocketAddr, holdings: Arc<Holdings>) -> SwarmView {
        let count = holdings.snapshot().count();
        SwarmView {
            role,
            id,
            listen,
            holdings,
            nodes: Mutex::new(HashMap::new()),
            me: Mutex::new(Me {
                count,
                at: Instant::now(),
                rate: 0.0,
            }),
            changed: watch::channel(0).0,
            cached: Mutex::new(None),
        }
    }

    /// Wakes whoever watches the view (the page's event stream).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Records the list `have` that node `id` at `addr` just sent.
    pub fn observe(&self, id: PeerId, addr: SocketAddr, have: &ChunkSet) {
        if id == self.id || id == PeerId::NONE {
            return;
        }
        let now = Instant::now();
        let chunk_size = self.holdings.manifest().layout().chunk_size();
        let mut nodes = locked(&self.nodes);
        let node = nodes.entry(id).or_insert_with(|| Node {
            addr,
            have: None,
            reachable: true,
            heard: now,
            rate: 0.0,
        });
        if let Some(old) = &node.have {
            node.rate = smoothed(
                node.rate,
                (old.count(), node.heard),
                (have.count(), now),
                chunk_size,
            );
        }
        node.addr = addr;
        node.have = Some(have.clone());
        node.reachable = true;
        node.heard = now;
        if nodes.len() > MAX_NODES {
            let oldest = nodes.iter().min_by_key(|(_, n)| n.heard).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                nodes.remove(&oldest);
            }
        }
        drop(nodes);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Records that node `id` could not be reached.
    pub fn unreachable(&self, id: PeerId) {
        if let Some(node) = locked(&self.nodes).get_mut(&id) {
            node.reachable = false;
            node.rate = 0.0;
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Watches the number of chunks this node holds.
    pub fn own_count(&self) -> watch::Receiver<u32> {
        self.holdings.subscribe()
    }

    /// [`SwarmView::snapshot`] as JSON text, built at most once per [`REUSE_FOR`] however
    /// many pages are open.
    pub fn snapshot_text(&self) -> Arc<str> {
        let mut cached = locked(&self.cached);
        if let Some((at, text)) = cached.as_ref() {
            if at.elapsed() < REUSE_FOR {
                return Arc::clone(text);
            }
        }
        let text: Arc<str> = self.snapshot().to_string().into();
        *cached = Some((Instant::now(), Arc::clone(&text)));
        text
    }

    /// The view as the page reads it: the swarm's shape, every node (this one first) with
    /// its chunk bitfield in hex, and the copies of each chunk among the peers.
    pub fn snapshot(&self) -> Value {
        let manifest = self.holdings.manifest();
        let layout = manifest.layout();
        let mine = self.holdings.snapshot();
        let now = Instant::now();
        let my_rate = {
            let mut me = locked(&self.me);
            if now.duration_since(me.at).as_millis() >= 250 {
                me.rate = smoothed(
                    me.rate,
                    (me.count, me.at),
                    (mine.count(), now),
                    layout.chunk_size(),
                );
                me.count = mine.count();
                me.at = now;
            }
            me.rate
        };
        let columns = layout.chunk_count().min(MAX_COLUMNS);
        let mut copies = vec![0u32; layout.chunk_count() as usize];
        let mut count = |have: &ChunkSet| {
            for id in have.iter() {
                copies[id as usize] += 1;
            }
        };
        if self.role == Role::Peer {
            count(&mine);
        }
        let mut others: Vec<(PeerId, Value)> = Vec::new();
        for (id, node) in locked(&self.nodes).iter() {
            if let Some(have) = &node.have {
                count(have);
            }
            let stale = now.duration_since(node.heard) >= STALE_AFTER;
            let state = match &node.have {
                _ if !node.reachable => "unreachable",
                None => "known",
                Some(h) if h.is_complete() => "complete",
                Some(_) if stale => "idle",
                Some(_) => "downloading",
            };
            others.push((
                *id,
                json!({
                    "id": id.to_string(),
                    "addr": node.addr.to_string(),
                    "state": state,
                    "held": node.have.as_ref().map_or(0, ChunkSet::count),
                    "have": node.have.as_ref().map(|h| bins(h, columns)),
                    "rate": if stale { 0.0 } else { node.rate.round() },
                    "self": false,
                    "seen_ms_ago": now.duration_since(node.heard).as_millis() as u64,
                }),
            ));
        }
        others.sort_by_key(|(id, _)| *id);
        let me = json!({
            "id": self.id.to_string(),
            "addr": self.listen.to_string(),
            "state": match self.role {
                Role::Owner => "owner",
                Role::Peer if mine.is_complete() => "complete",
                Role::Peer => "downloading",
            },
            "held": mine.count(),
            "have": bins(&mine, columns),
            "rate": my_rate.round(),
            "self": true,
            "seen_ms_ago": 0,
        });
        let mut nodes = vec![me];
        nodes.extend(others.into_iter().map(|(_, v)| v));
        json!({
            "role": match self.role { Role::Owner => "owner", Role::Peer => "peer" },
            "name": crate::text::printable(std::ffi::OsStr::new(manifest.name())),
            "size": layout.file_size(),
            "chunks": layout.chunk_count(),
            "chunk_size": layout.chunk_size(),
            "swarm": manifest.swarm_id().to_string(),
            "files": manifest.tree().map(|tree| files_json(manifest, tree, &mine)),
            "nodes": nodes,
            "columns": columns,
            // Per column: the fewest copies of any chunk in it.
            "copies": (0..columns)
                .map(|j| {
                    let (lo, hi) = bin_bounds(j, columns, layout.chunk_count());
                    copies[lo as usize..hi as usize].iter().copied().min().unwrap_or(0)
                })
                .collect::<Vec<u32>>(),
        })
    }
}

/// The most files a snapshot lists one by one.
const FILES_SHOWN: usize = 100;

/// A tree's files as this node holds them: how many are complete of how many, and up to
/// [`FILES_SHOWN`] of them with the share of their chunks held (all when they fit, else
/// those not complete, in the tree's order).
fn files_json(manifest: &Manifest, tree: &Tree, mine: &ChunkSet) -> Value {
    let size = u64::from(manifest.layout().chunk_size());
    let progress: Vec<(&str, u64, f64)> = tree
        .entries()
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::File { size: 0, .. } => Some((e.path.as_str(), 0, 1.0)),
            EntryKind::File {
                size: len, offset, ..
            } => {
                // offset + len <= the file size, so chunk IDs fit.
                let (first, last) = ((offset / size) as u32, ((offset + len - 1) / size) as u32);
                let held = (first..=last).filter(|&id| mine.contains(id)).count();
                Some((e.path.as_str(), len, held as f64 / f64::from(last - first + 1)))
            }
            EntryKind::EmptyDir => None,
        })
        .collect();
    let complete = progress.iter().filter(|(_, _, done)| *done >= 1.0).count();
    let all = progress.len();
    let shown = progress
        .into_iter()
        .filter(|(_, _, done)| all <= FILES_SHOWN || *done < 1.0)
        .take(FILES_SHOWN)
        .map(|(path, len, done)| {
            json!({ "path": crate::text::printable(std::ffi::OsStr::new(path)), "size": len, "done": done })
        })
        .collect::<Vec<_>>();
    json!({ "complete": complete, "total": all, "list": shown })
}
