//! The simulated world: nodes, connections and the event queue, and the glue that drives
//! each peer's real [`Scheduler`] as the peer's link tasks do in real time.

use std::cmp::Reverse;
use std::collections::HashMap;

use radix_heap::RadixHeapMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::flow::Links;
use super::node::{Ask, Conn, Ev, Kind, Node, Serving};
use super::{lower_bound, NodeId, SimConfig, SimReport};
use crate::book::AddressBook;
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::Layout;
use crate::owner::batch::BatchPlanner;
use crate::scheduler::{Role, Scheduler, Time};

/// Bits of an event's key that order events queued for the same nanosecond.
const SEQ_BITS: u32 = 40;

/// Everything simulated.
pub(super) struct World {
    pub(super) config: SimConfig,
    pub(super) layout: Layout,
    pub(super) roles: Vec<Role>,
    pub(super) nodes: Vec<Node>,
    pub(super) by_addr: HashMap<SocketAddr, NodeId>,
    pub(super) conns: Vec<Conn>,
    pub(super) links: Links,
    /// Events by time (then by the order they were queued), each naming its slot in
    /// `slab`: time never runs backwards, so a radix heap's monotone order fits.
    pub(super) queue: RadixHeapMap<Reverse<u128>, usize>,
    slab: Vec<Option<Ev>>,
    free: Vec<usize>,
    pub(super) seq: u64,
    /// Peers not complete yet.
    pub(super) pending: usize,
    pub(super) now: Time,
    pub(super) rng: SmallRng,
    pub(super) planner: BatchPlanner,
    pub(super) owner_sent: f64,
    pub(super) duplicates: u64,
    pub(super) messages: super::Messages,
    pub(super) events: u64,
    pub(super) bound: f64,
    /// The first this many peers are the slow ones.
    pub(super) slow: usize,
    /// Events by kind, when tracing.
    pub(super) by_kind: std::collections::BTreeMap<String, u64>,
}

fn peer_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 7000)
}

impl World {
    pub(super) fn new(config: &SimConfig) -> World {
        let layout = Layout::for_size(config.size.max(5))
            .unwrap_or_else(|_| Layout::for_size(5).unwrap_or_else(|_| unreachable!("5 bytes always split")));
        let chunks = layout.chunk_count();
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut world = World {
            roles: [vec![Role::Neighbor; config.neighbors.max(1)], vec![Role::Owner]].concat(),
            layout,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            conns: Vec::new(),
            links: Links::default(),
            queue: RadixHeapMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            pending: config.peers,
            now: Duration::ZERO,
            planner: BatchPlanner::new(chunks, config.owner_peers.unwrap_or(config.peers as u32)),
            owner_sent: 0.0,
            duplicates: 0,
            messages: super::Messages::default(),
            events: 0,
            bound: 0.0,
            slow: 0,
            by_kind: std::collections::BTreeMap::new(),
            rng: SmallRng::seed_from_u64(rng.random()),
            config: config.clone(),
        };
        let up = config.upload;
        let down = config.download.unwrap_or(f64::INFINITY);
        world.add_node(
            Kind::Owner,
            SocketAddr::from(([10, 0, 0, 1], 7000)),
            up,
            f64::INFINITY,
            &mut rng,
        );
        let slow = (config.peers as f64 * config.slow_fraction).round() as usize;
        world.slow = slow;
        let mut uploads = Vec::new();
        let mut dmin = down;
        for i in 0..config.peers {
            let (u, d) = if i < slow {
                let d = config.slow_download.map_or(down, |s| s.min(down));
                (up / config.slow_factor.max(1.0), d)
            } else {
                (up, down)
            };
            uploads.push(u);
            dmin = dmin.min(d);
            world.add_node(Kind::Peer, peer_addr(i), u, d, &mut rng);
        }
        for k in 0..config.idle_sybils {
            let addr = SocketAddr::from(([10, 255, 0, 1], 20_000 + k as u16));
            let s = world.add_node(Kind::Sybil, addr, up, f64::INFINITY, &mut rng);
            let (id, addr) = (world.nodes[s].id, world.nodes[s].addr);
            world.nodes[0].book.learn(id, addr);
        }
        world.bound = lower_bound(layout.file_size() as f64, up, &uploads, dmin);
        let churners = (config.peers as f64 * config.churn).round() as usize;
        for i in 0..config.peers {
            let node = 1 + i;
            let at = Time::from_secs_f64(rng.random::<f64>() * config.join_window.as_secs_f64());
            world.push(at, Ev::Join(node));
            // Churners are spread over the slow and the fast alike.
            if (i * 7919) % config.peers.max(1) < churners {
                world.nodes[node].churns = true;
                let leave = at + Time::from_secs_f64(rng.random::<f64>() * world.bound);
                world.push(leave, Ev::Leave(node));
            }
        }
        world
    }

    pub(super) fn add_node(
        &mut self,
        kind: Kind,
        addr: SocketAddr,
        up: f64,
        down: f64,
        rng: &mut SmallRng,
    ) -> NodeId {
        let id = PeerId(rng.random());
        let chunks = self.layout.chunk_count();
        let held = if kind == Kind::Owner {
            ChunkSet::full(chunks)
        } else {
            ChunkSet::empty(chunks)
        };
        self.nodes.push(Node {
            id,
            addr,
            kind,
            alive: kind != Kind::Peer,
            gen: 0,
            book: Arc::new(AddressBook::new(id)),
            held,
            sched: None,
            links: Vec::new(),
            waiters: Vec::new(),
            tick_at: None,
            completed: None,
            churns: false,
            batch: None,
            sent: 0,
            seated: Vec::new(),
        });
        self.links.add_node(up, down);
        self.by_addr.insert(addr, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    pub(super) fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(ev);
                i
            }
            None => {
                self.slab.push(Some(ev));
                self.slab.len() - 1
            }
        };
        // Never before now (the heap's order is monotone); ties in the order queued.
        let nanos = at.max(self.now).as_nanos();
        let key = (nanos << SEQ_BITS) | u128::from(self.seq & ((1 << SEQ_BITS) - 1));
        self.queue.push(Reverse(key), slot);
    }

    pub(super) fn later(&mut self, ev: Ev) {
        self.push(self.now + self.config.latency, ev);
    }

    pub(super) fn run(mut self) -> SimReport {
        let started = Instant::now();
        while let Some((Reverse(key), slot)) = self.queue.pop() {
            let at = Time::from_nanos((key >> SEQ_BITS) as u64);
            if at > self.config.limit {
                break;
            }
            let Some(ev) = self.slab.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free.push(slot);
            if self.config.trace && at.as_secs() > self.now.as_secs() {
                self.trace();
            }
            self.now = at;
            self.events += 1;
            if self.config.trace {
                let name = format!("{ev:?}");
                let kind = name.split([' ', '(', '{']).next().unwrap_or("?").to_owned();
                *self.by_kind.entry(kind).or_default() += 1;
            }
            self.step(ev);
            if self.pending == 0 {
                break;
            }
        }
        self.report(started.elapsed().as_secs_f64())
    }

    pub(super) fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Join(node) => self.join(node),
            Ev::Dialed {
                client,
                gen,
                link,
                target,
            } => self.dialed(client, gen, link, target),
            Ev::Arrive { conn, ask } => {
                if self.conns[conn].alive {
                    if !matches!(ask, Ask::Peers) {
                        self.conns[conn].last_ask = self.now;
                    }
                    self.conns[conn].queue.push_back(ask);
                    self.serve(conn);
                }
            }
            Ev::Reply { conn, reply } => self.reply(conn, reply),
            Ev::Sent { conn, version } => self.sent(conn, version),
            Ev::WaitOver { conn, version } => {
                if matches!(self.conns[conn].serving, Serving::Wait(v) if v == version) {
                    self.answer_list(conn);
                    self.serve(conn);
                }
            }
            Ev::Tick { node, at } => {
                if self.nodes[node].tick_at == Some(at) {
                    self.nodes[node].tick_at = None;
                    let now = self.now;
                    if let Some(s) = self.nodes[node].sched.as_mut() {
                        s.handle_timeout(now);
                    }
                    self.drive(node);
                }
            }
            Ev::Gone { conn } => {
                let (client, link) = (self.conns[conn].client, self.conns[conn].link);
                if let Some(l) = link {
                    self.client_lost(client, l, conn);
                }
            }
            Ev::Leave(node) => self.leave(node),
            Ev::Return(node) => self.start_peer(node, false),
        }
    }

    pub(super) fn join(&mut self, node: NodeId) {
        self.start_peer(node, true);
        // Idle identities reach every node.
        let sybils: Vec<(PeerId, SocketAddr)> = self
            .nodes
            .iter()
            .filter(|n| n.kind == Kind::Sybil)
            .map(|n| (n.id, n.addr))
            .collect();
        for (id, addr) in sybils {
            self.nodes[node].book.learn(id, addr);
        }
    }

    /// Starts a peer: joining (the owner's batch comes on a connection of its own) or
    /// coming back with what it held.
    pub(super) fn start_peer(&mut self, node: NodeId, join: bool) {
        let owner_id = self.nodes[0].id;
        let n = &mut self.nodes[node];
        n.alive = true;
        if !join {
            n.book = Arc::new(AddressBook::new(n.id));
        }
        let mut sched = Scheduler::new(
            n.id,
            Arc::clone(&n.book),
            &self.roles,
            n.held.clone(),
            self.rng.random(),
            self.now,
        );
        sched.set_owner(owner_id);
        sched.batch_streaming(join, self.now);
        n.sched = Some(sched);
        let all = true;
        n.links = vec![None; self.roles.len()];
        if join {
            let (id, addr) = (n.id, n.addr);
            self.nodes[0].book.learn(id, addr);
            let conn = self.open(node, None, 0);
            self.nodes[node].batch = Some(conn);
            let batch = self.planner.next_batch();
            for c in batch {
                self.conns[conn].queue.push_back(Ask::Push(c));
            }
            self.serve(conn);
        }
        self.drive_links(node, all);
    }

    pub(super) fn leave(&mut self, node: NodeId) {
        if self.nodes[node].completed.is_some() || !self.nodes[node].alive {
            return;
        }
        let n = &mut self.nodes[node];
        n.alive = false;
        n.gen += 1;
        n.sched = None;
        n.links.clear();
        n.tick_at = None;
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            if !c.alive {
                continue;
            }
            if c.client == node {
                self.close(conn);
            } else if c.server == node {
                self.close(conn);
                self.later(Ev::Gone { conn });
            }
        }
        self.push(self.now + self.config.away, Ev::Return(node));
    }
}
