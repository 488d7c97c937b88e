//! The simulated world: nodes, connections and the event queue, and the glue that drives
//! each peer's real [`Scheduler`] as the peer's link tasks do in real time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::flow::Links;
use super::{lower_bound, quantile, NodeId, SimConfig, SimReport};
use crate::admission::{admit, Admit, Seat};
use crate::book::AddressBook;
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::{ChunkId, Layout};
use crate::owner::batch::BatchPlanner;
use crate::scheduler::{Action, DialFailure, Event, LinkId, Outcome, Role, Scheduler, Target, Time};
use crate::wire::{PeerAddr, MAX_PEERS};

type ConnId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Owner,
    Peer,
    /// Answers the hello, then nothing.
    Sybil,
}

#[derive(Debug)]
enum Ask {
    Chunk(ChunkId),
    List(Option<Duration>),
    Peers,
    /// A chunk of the owner's batch, sent unasked.
    Push(ChunkId),
}

#[derive(Debug)]
enum Reply {
    Chunk(ChunkId),
    NotHave(ChunkId),
    List(ChunkSet),
    Peers(Vec<PeerAddr>),
    Pushed(ChunkId),
}

#[derive(Debug)]
struct Node {
    id: PeerId,
    addr: SocketAddr,
    kind: Kind,
    alive: bool,
    /// Bumped when the node leaves, so its stale events are ignored.
    gen: u64,
    book: Arc<AddressBook>,
    held: ChunkSet,
    sched: Option<Scheduler>,
    links: Vec<Option<ConnId>>,
    /// Long polls this node holds as a server.
    waiters: Vec<ConnId>,
    tick_at: Option<Time>,
    completed: Option<Time>,
    churns: bool,
    /// The owner's batch connection, while it streams.
    batch: Option<ConnId>,
    /// Chunks sent.
    sent: u64,
    /// Fetch sessions of peers this node serves now (its downloader seats).
    seated: Vec<ConnId>,
}

#[derive(Debug)]
enum Serving {
    Idle,
    /// Sending a chunk (pushed: part of the owner's batch); the version names the event.
    Sending(ChunkId, bool, u64),
    Wait(u64),
}

#[derive(Debug)]
struct Conn {
    client: NodeId,
    /// The client's link, or `None` for the owner's batch.
    link: Option<LinkId>,
    server: NodeId,
    queue: VecDeque<Ask>,
    serving: Serving,
    listed: u32,
    alive: bool,
    /// When the client last asked for something (a downloader seat in use).
    last_ask: Time,
}

#[derive(Debug)]
enum Ev {
    Join(NodeId),
    Dialed {
        client: NodeId,
        gen: u64,
        link: LinkId,
        target: Target,
    },
    Arrive {
        conn: ConnId,
        ask: Ask,
    },
    Reply {
        conn: ConnId,
        reply: Reply,
    },
    Sent {
        conn: ConnId,
        version: u64,
    },
    WaitOver {
        conn: ConnId,
        version: u64,
    },
    Tick {
        node: NodeId,
        at: Time,
    },
    Gone {
        conn: ConnId,
    },
    Leave(NodeId),
    Return(NodeId),
}

/// A queued event: its time and a sequence number (ties in order of queueing); the event
/// itself waits in a slab, so the heap moves 24 bytes, not the event.
#[derive(Debug)]
struct Queued {
    at: Time,
    seq: u64,
    slot: usize,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Everything simulated.
pub(super) struct World {
    config: SimConfig,
    layout: Layout,
    roles: Vec<Role>,
    nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, NodeId>,
    conns: Vec<Conn>,
    links: Links,
    queue: BinaryHeap<Reverse<Queued>>,
    slab: Vec<Option<Ev>>,
    free: Vec<usize>,
    seq: u64,
    /// Peers not complete yet.
    pending: usize,
    now: Time,
    rng: SmallRng,
    planner: BatchPlanner,
    owner_sent: f64,
    duplicates: u64,
    events: u64,
    bound: f64,
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
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            pending: config.peers,
            now: Duration::ZERO,
            planner: BatchPlanner::new(chunks, config.owner_peers.unwrap_or(config.peers as u32)),
            owner_sent: 0.0,
            duplicates: 0,
            events: 0,
            bound: 0.0,
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
        let mut uploads = Vec::new();
        for i in 0..config.peers {
            let u = if i < slow {
                up / config.slow_factor.max(1.0)
            } else {
                up
            };
            uploads.push(u);
            world.add_node(Kind::Peer, peer_addr(i), u, down, &mut rng);
        }
        for k in 0..config.idle_sybils {
            let addr = SocketAddr::from(([10, 255, 0, 1], 20_000 + k as u16));
            let s = world.add_node(Kind::Sybil, addr, up, f64::INFINITY, &mut rng);
            let (id, addr) = (world.nodes[s].id, world.nodes[s].addr);
            world.nodes[0].book.learn(id, addr);
        }
        world.bound = lower_bound(layout.file_size() as f64, up, &uploads, down);
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

    fn add_node(&mut self, kind: Kind, addr: SocketAddr, up: f64, down: f64, rng: &mut SmallRng) -> NodeId {
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

    fn push(&mut self, at: Time, ev: Ev) {
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
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            slot,
        }));
    }

    fn later(&mut self, ev: Ev) {
        self.push(self.now + self.config.latency, ev);
    }

    pub(super) fn run(mut self) -> SimReport {
        let started = Instant::now();
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > self.config.limit {
                break;
            }
            let Some(ev) = self.slab.get_mut(q.slot).and_then(Option::take) else {
                continue;
            };
            self.free.push(q.slot);
            if self.config.trace && q.at.as_secs() > self.now.as_secs() {
                self.trace();
            }
            self.now = q.at;
            self.events += 1;
            self.step(ev);
            if self.pending == 0 {
                break;
            }
        }
        self.report(started.elapsed().as_secs_f64())
    }

    fn step(&mut self, ev: Ev) {
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

    fn join(&mut self, node: NodeId) {
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
    fn start_peer(&mut self, node: NodeId, join: bool) {
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

    fn open(&mut self, client: NodeId, link: Option<LinkId>, server: NodeId) -> ConnId {
        self.conns.push(Conn {
            client,
            link,
            server,
            queue: VecDeque::new(),
            serving: Serving::Idle,
            listed: 0,
            alive: true,
            last_ask: self.now,
        });
        self.conns.len() - 1
    }

    /// Ends a connection at once on the server's side.
    fn close(&mut self, conn: ConnId) {
        let c = &mut self.conns[conn];
        if !c.alive {
            return;
        }
        c.alive = false;
        c.queue = VecDeque::new();
        let server = c.server;
        self.nodes[server].seated.retain(|&x| x != conn);
        c.serving = Serving::Idle;
        self.nodes[server].waiters.retain(|&w| w != conn);
    }

    /// Asks `node`'s woken links (all of them with `all`) what to do, until none has
    /// anything: what the real link tasks do when notified.
    fn drive(&mut self, node: NodeId) {
        self.drive_links(node, false);
    }

    fn drive_links(&mut self, node: NodeId, all: bool) {
        let mut links: Vec<LinkId> = if all {
            (0..self.roles.len()).collect()
        } else {
            match self.nodes[node].sched.as_mut() {
                Some(s) => s.take_woken(),
                None => return,
            }
        };
        for _ in 0..64 {
            if links.is_empty() {
                break;
            }
            for &link in &links {
                loop {
                    let now = self.now;
                    let Some(sched) = self.nodes[node].sched.as_mut() else {
                        return;
                    };
                    let Some(action) = sched.poll(link, now) else {
                        break;
                    };
                    self.act(node, link, action);
                }
            }
            links = match self.nodes[node].sched.as_mut() {
                Some(s) => s.take_woken(),
                None => return,
            };
        }
        let now = self.now;
        let next = self.nodes[node].sched.as_ref().and_then(|s| s.next_timeout(now));
        if let Some(at) = next {
            let n = &mut self.nodes[node];
            if n.tick_at.is_none_or(|t| t > at || t < now) {
                n.tick_at = Some(at);
                self.push(at, Ev::Tick { node, at });
            }
        }
    }

    fn act(&mut self, node: NodeId, link: LinkId, action: Action) {
        let conn = self.nodes[node].links[link];
        match action {
            Action::Dial { target, timeout } => {
                let gen = self.nodes[node].gen;
                let server = match target {
                    Target::Configured => Some(0),
                    Target::Peer { addr, .. } => self.by_addr.get(&addr).copied(),
                };
                let reachable = server.is_some_and(|s| self.nodes[s].alive);
                // Connect and hellos: one and a half round trips; a refusal, one; an
                // address where nothing is, the whole timeout.
                let delay = match (server, reachable) {
                    (Some(_), true) => self.config.latency * 3,
                    (Some(_), false) => self.config.latency * 2,
                    (None, _) => timeout,
                };
                self.push(
                    self.now + delay,
                    Ev::Dialed {
                        client: node,
                        gen,
                        link,
                        target,
                    },
                );
            }
            Action::Request(c) => self.send(conn, Ask::Chunk(c)),
            Action::AskList(wait) => self.send(conn, Ask::List(wait)),
            Action::AskPeers => self.send(conn, Ask::Peers),
            Action::Close(_) => {
                if let Some(c) = conn {
                    self.close(c);
                }
                self.nodes[node].links[link] = None;
            }
        }
    }

    fn send(&mut self, conn: Option<ConnId>, ask: Ask) {
        if let Some(conn) = conn {
            self.later(Ev::Arrive { conn, ask });
        }
    }

    fn dialed(&mut self, client: NodeId, gen: u64, link: LinkId, target: Target) {
        if self.nodes[client].gen != gen || self.nodes[client].sched.is_none() {
            return;
        }
        let server = match target {
            Target::Configured => Some(0),
            Target::Peer { addr, .. } => self.by_addr.get(&addr).copied(),
        };
        let event = match server.filter(|&s| self.nodes[s].alive) {
            None => Event::DialFailed(DialFailure::Unreachable),
            Some(s) if matches!(target, Target::Peer { id, .. } if id != self.nodes[s].id) => {
                Event::DialFailed(DialFailure::WrongPeer(self.nodes[s].id))
            }
            Some(s) if s != 0 && !self.seat(s, client) => Event::DialFailed(DialFailure::Busy),
            Some(s) => {
                let conn = self.open(client, Some(link), s);
                if s != 0 {
                    self.nodes[s].seated.push(conn);
                }
                self.nodes[client].links[link] = Some(conn);
                let (id, addr) = (self.nodes[client].id, self.nodes[client].addr);
                self.nodes[s].book.learn(id, addr);
                Event::Connected {
                    peer: self.nodes[s].id,
                    addr: self.nodes[s].addr,
                    owner: self.nodes[s].kind == Kind::Owner,
                }
            }
        };
        let now = self.now;
        if let Some(sched) = self.nodes[client].sched.as_mut() {
            sched.handle(now, link, event);
        }
        self.drive(client);
    }

    /// Whether `server` gives `client` a downloader seat (the real peer's admission rule),
    /// closing the session it takes the seat from, if any.
    fn seat(&mut self, server: NodeId, client: NodeId) -> bool {
        let seats: Vec<Seat> = self.nodes[server]
            .seated
            .iter()
            .map(|&c| Seat {
                ip: self.nodes[self.conns[c].client].addr.ip(),
                neighbor: false,
                idle: self.now.saturating_sub(self.conns[c].last_ask),
            })
            .collect();
        match admit(&seats, self.nodes[client].addr.ip(), false) {
            Admit::Yes { .. } => true,
            Admit::Busy => false,
            Admit::Evict(i) => {
                let old = self.nodes[server].seated[i];
                self.close(old);
                self.later(Ev::Gone { conn: old });
                true
            }
        }
    }

    /// The server answers what is at the head of the connection's queue, in order.
    fn serve(&mut self, conn: ConnId) {
        loop {
            let c = &mut self.conns[conn];
            if !c.alive || !matches!(c.serving, Serving::Idle) {
                return;
            }
            let (server, client, listed) = (c.server, c.client, c.listed);
            if self.nodes[server].kind == Kind::Sybil {
                return;
            }
            let Some(ask) = c.queue.pop_front() else { return };
            match ask {
                Ask::Chunk(id) | Ask::Push(id) if self.nodes[server].held.contains(id) => {
                    let bytes = f64::from(self.layout.chunk_len(id).unwrap_or(0));
                    let done = self.links.send(self.now, server, client, bytes);
                    let version = self.seq;
                    let push = matches!(ask, Ask::Push(_));
                    self.conns[conn].serving = Serving::Sending(id, push, version);
                    if server == 0 {
                        self.owner_sent += bytes;
                    }
                    self.push(done, Ev::Sent { conn, version });
                    return;
                }
                Ask::Chunk(id) => self.later(Ev::Reply {
                    conn,
                    reply: Reply::NotHave(id),
                }),
                Ask::Push(_) => {}
                Ask::List(None) => self.answer_list(conn),
                Ask::List(Some(wait)) => {
                    let count = self.nodes[server].held.count();
                    if count > listed || (listed == 0 && count > 0) {
                        self.answer_list(conn);
                    } else {
                        let version = self.seq;
                        self.conns[conn].serving = Serving::Wait(version);
                        self.nodes[server].waiters.push(conn);
                        let at = self.now + wait.min(Duration::from_secs(5));
                        self.push(at, Ev::WaitOver { conn, version });
                        return;
                    }
                }
                Ask::Peers => {
                    let peers =
                        self.nodes[server]
                            .book
                            .gossip(MAX_PEERS, self.nodes[client].id, &mut self.rng);
                    self.later(Ev::Reply {
                        conn,
                        reply: Reply::Peers(peers),
                    });
                }
            }
        }
    }

    fn answer_list(&mut self, conn: ConnId) {
        let server = self.conns[conn].server;
        self.nodes[server].waiters.retain(|&w| w != conn);
        let list = self.nodes[server].held.clone();
        self.conns[conn].listed = list.count();
        self.conns[conn].serving = Serving::Idle;
        self.later(Ev::Reply {
            conn,
            reply: Reply::List(list),
        });
    }

    /// The last byte of a chunk left the server (and reached the client's side of the
    /// link: the reply arrives a latency later).
    fn sent(&mut self, conn: ConnId, version: u64) {
        let Serving::Sending(id, push, v) = self.conns[conn].serving else {
            return;
        };
        if v != version || !self.conns[conn].alive {
            return;
        }
        self.conns[conn].serving = Serving::Idle;
        let server = self.conns[conn].server;
        self.nodes[server].sent += 1;
        let reply = if push { Reply::Pushed(id) } else { Reply::Chunk(id) };
        self.later(Ev::Reply { conn, reply });
        self.serve(conn);
    }

    fn reply(&mut self, conn: ConnId, reply: Reply) {
        let c = &self.conns[conn];
        let (client, server, link) = (c.client, c.server, c.link);
        if !c.alive {
            return;
        }
        if let Some(l) = link {
            if self.nodes[client].links.get(l) != Some(&Some(conn)) {
                return;
            }
        }
        let now = self.now;
        let server_id = self.nodes[server].id;
        let Some(sched) = self.nodes[client].sched.as_mut() else {
            return;
        };
        match (reply, link) {
            (Reply::Pushed(id), _) => {
                sched.pushed(id, now);
                if self.conns[conn].queue.is_empty() && matches!(self.conns[conn].serving, Serving::Idle) {
                    sched.batch_streaming(false, now);
                }
                self.store(client, id, server_id);
            }
            (Reply::Chunk(id), Some(l)) => {
                sched.handle(now, l, Event::Arrived(id));
                self.store(client, id, server_id);
            }
            (Reply::NotHave(id), Some(l)) => sched.handle(now, l, Event::NotHave(id)),
            (Reply::List(list), Some(l)) => sched.handle(now, l, Event::List(&list)),
            (Reply::Peers(peers), Some(l)) => {
                self.nodes[client].book.learn_all(server_id, &peers);
                if let Some(s) = self.nodes[client].sched.as_mut() {
                    s.handle(now, l, Event::Peers);
                }
            }
            _ => {}
        }
        self.drive(client);
    }

    /// A chunk arrived at `node` from `from`: stored at once.
    fn store(&mut self, node: NodeId, id: ChunkId, from: PeerId) {
        let now = self.now;
        let n = &mut self.nodes[node];
        let outcome = if n.held.insert(id) {
            Outcome::New
        } else {
            self.duplicates += 1;
            Outcome::Duplicate
        };
        if let Some(s) = n.sched.as_mut() {
            s.stored(now, id, from, outcome);
        }
        if outcome == Outcome::New {
            let waiters = std::mem::take(&mut self.nodes[node].waiters);
            for w in waiters {
                if matches!(self.conns[w].serving, Serving::Wait(_)) {
                    self.answer_list(w);
                    self.serve(w);
                }
            }
            if self.nodes[node].held.is_complete() && self.nodes[node].completed.is_none() {
                self.complete(node);
            }
        }
    }

    /// A peer holds everything: its download side ends, its server goes on.
    fn complete(&mut self, node: NodeId) {
        if self.config.trace {
            if let Some(s) = self.nodes[node].sched.as_ref() {
                eprintln!(
                    "t={:.3} node {node} complete: {:?}",
                    self.now.as_secs_f64(),
                    s.stats()
                );
            }
        }
        self.nodes[node].completed = Some(self.now);
        self.pending -= 1;
        let links = std::mem::take(&mut self.nodes[node].links);
        for c in links.into_iter().flatten() {
            self.close(c);
        }
        if let Some(c) = self.nodes[node].batch.take() {
            self.close(c);
        }
        self.nodes[node].sched = None;
    }

    fn client_lost(&mut self, client: NodeId, link: LinkId, conn: ConnId) {
        if self.nodes[client].links.get(link) != Some(&Some(conn)) {
            return;
        }
        self.nodes[client].links[link] = None;
        let now = self.now;
        if let Some(s) = self.nodes[client].sched.as_mut() {
            s.handle(now, link, Event::Closed { violation: false });
        }
        self.drive(client);
    }

    fn leave(&mut self, node: NodeId) {
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

    fn trace(&self) {
        let peers = self.nodes.iter().filter(|n| n.kind == Kind::Peer);
        let held: u64 = peers.clone().map(|n| u64::from(n.held.count())).sum();
        let done = peers.filter(|n| n.completed.is_some()).count();
        eprintln!(
            "t={:>6.1}s held={held} done={done} owner_sent/F={:.3} dups={} queue={}",
            self.now.as_secs_f64(),
            self.owner_sent / self.layout.file_size() as f64,
            self.duplicates,
            self.queue.len()
        );
        let mut indeg = vec![0usize; self.nodes.len()];
        for c in self
            .conns
            .iter()
            .filter(|c| c.alive && c.link.is_some() && c.server != 0)
        {
            indeg[c.server] += 1;
        }
        let mut d: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == Kind::Peer && n.alive)
            .map(|(i, _)| indeg[i])
            .collect();
        d.sort_unstable();
        if !d.is_empty() {
            eprintln!(
                "  in-degree: min {} p10 {} p50 {} p90 {} max {}",
                d[0],
                d[d.len() / 10],
                d[d.len() / 2],
                d[d.len() * 9 / 10],
                d[d.len() - 1]
            );
            if let Some(low) = (1..self.nodes.len())
                .filter(|&i| self.nodes[i].kind == Kind::Peer && self.nodes[i].alive)
                .min_by_key(|&i| indeg[i])
            {
                let id = self.nodes[low].id;
                let knowers = self.nodes.iter().filter(|n| n.book.addr_of(id).is_some()).count();
                let books: Vec<usize> = self.nodes.iter().take(6).map(|n| n.book.len()).collect();
                eprintln!(
                    "  lowest node {low} known by {knowers}; book sizes {books:?}; held {}",
                    self.nodes[low].held.count()
                );
                if let Some(s) = self.nodes[low].sched.as_ref() {
                    eprintln!("    {}", s.describe(self.now));
                }
            }
        }
    }

    fn report(&self, wall: f64) -> SimReport {
        if self.config.trace {
            let mut sent: Vec<u64> = self
                .nodes
                .iter()
                .filter(|n| n.kind == Kind::Peer)
                .map(|n| n.sent)
                .collect();
            sent.sort_unstable();
            let q = |f: f64| sent[((sent.len() - 1) as f64 * f) as usize];
            eprintln!(
                "chunks sent per peer: min {} p10 {} p50 {} p90 {} max {}",
                q(0.0),
                q(0.1),
                q(0.5),
                q(0.9),
                q(1.0)
            );
            let mut by: Vec<(u64, usize)> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.kind == Kind::Peer)
                .map(|(i, n)| (n.sent, i))
                .collect();
            by.sort_unstable();
            for (sent, i) in by.iter().take(6) {
                let servers = self
                    .conns
                    .iter()
                    .filter(|c| c.server == *i && c.link.is_some())
                    .count();
                eprintln!(
                    "  node {i}: sent {sent}, served {servers} connections in all, done {:?}",
                    self.nodes[*i].completed
                );
            }
        }
        let peers: Vec<&Node> = self.nodes.iter().filter(|n| n.kind == Kind::Peer).collect();
        let ratio = |n: &&Node| {
            n.completed
                .map_or(f64::INFINITY, |t| t.as_secs_f64() / self.bound)
        };
        let mut all: Vec<f64> = peers.iter().map(ratio).collect();
        all.sort_by(f64::total_cmp);
        let mut stayers: Vec<f64> = peers.iter().filter(|n| !n.churns).map(ratio).collect();
        stayers.sort_by(f64::total_cmp);
        let incomplete = peers.iter().filter(|n| n.completed.is_none()).count();
        let last = peers.iter().filter_map(|n| n.completed).max();
        SimReport {
            peers: peers.len(),
            chunks: self.layout.chunk_count(),
            bound: self.bound,
            all_complete: (incomplete == 0).then(|| last.map_or(0.0, |t| t.as_secs_f64())),
            p50_ratio: quantile(&all, 0.5),
            p90_ratio: quantile(&all, 0.9),
            p99_ratio: quantile(&all, 0.99),
            max_ratio: quantile(&all, 1.0),
            p99_ratio_stayers: quantile(&stayers, 0.99),
            owner_upload_ratio: self.owner_sent / self.layout.file_size() as f64,
            duplicates: self.duplicates,
            incomplete,
            events: self.events,
            wall_secs: wall,
        }
    }
}
