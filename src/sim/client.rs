//! The simulated peers' client side: each peer's real [`Scheduler`] driven as its link
//! tasks drive it in real time (poll its woken links, carry out the actions, report what
//! happened), and what a peer does with what arrives.

use super::node::{Ask, ConnId, Ev, Kind, Reply, Serving};
use super::world::World;
use super::NodeId;
use crate::identity::PeerId;
use crate::long_poll::Due;
use crate::manifest::ChunkId;
use crate::scheduler::{Action, DialFailure, Event, LinkId, Outcome, Target, Woken};

impl World {
    /// Asks `node`'s woken links (all of them with `all`) what to do, until none has
    /// anything: what the real link tasks do when notified.
    pub(super) fn drive(&mut self, node: NodeId) {
        self.drive_links(node, false);
    }

    pub(super) fn drive_links(&mut self, node: NodeId, all: bool) {
        let mut links: Woken = if all {
            Woken::all(self.roles.len())
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
            for link in links.iter() {
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

    pub(super) fn act(&mut self, node: NodeId, link: LinkId, action: Action) {
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
            Action::Request(c) => {
                self.messages.requests += 1;
                self.send(conn, Ask::Chunk(c))
            }
            Action::AskList(wait) => {
                self.messages.list_asks += 1;
                self.send(conn, Ask::List(wait))
            }
            Action::AskPeers => self.send(conn, Ask::Peers),
            Action::Close(_) => {
                if let Some(c) = conn {
                    self.close(c);
                }
                self.nodes[node].links[link] = None;
            }
        }
    }

    pub(super) fn send(&mut self, conn: Option<ConnId>, ask: Ask) {
        if let Some(conn) = conn {
            self.later(Ev::Arrive { conn, ask });
        }
    }

    pub(super) fn dialed(&mut self, client: NodeId, gen: u64, link: LinkId, target: Target) {
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

    pub(super) fn reply(&mut self, conn: ConnId, reply: Reply) {
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
    pub(super) fn store(&mut self, node: NodeId, id: ChunkId, from: PeerId) {
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
                if !matches!(self.conns[w].serving, Serving::Wait(_)) {
                    continue;
                }
                if self.list_due(w) == Due::Now {
                    self.answer_list(w);
                    self.serve(w);
                } else {
                    // The first news since its list: answered once the gap is over.
                    if self.nodes[node].held.count() == self.conns[w].listed + 1 {
                        self.news_for(w);
                    }
                    self.nodes[node].waiters.push(w);
                }
            }
            if self.nodes[node].held.is_complete() && self.nodes[node].completed.is_none() {
                self.complete(node);
            }
        }
    }

    /// A peer holds everything: its download side ends, its server goes on.
    pub(super) fn complete(&mut self, node: NodeId) {
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

    pub(super) fn client_lost(&mut self, client: NodeId, link: LinkId, conn: ConnId) {
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
}
