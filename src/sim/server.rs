//! The simulated nodes' server side, as the real upload side behaves: requests answered one
//! at a time, in order, per connection; chunks sent through the node's serial upload; a
//! long poll held until the node has something new; downloader seats given out by the
//! real admission rule.

use std::collections::VecDeque;
use std::time::Duration;

use super::node::{Ask, Conn, ConnId, Ev, Kind, Reply, Serving};
use super::world::World;
use super::NodeId;
use crate::admission::{admit, Admit, Seat};
use crate::long_poll::{self, Due, Patience, MAX_LIST_WAIT};
use crate::scheduler::LinkId;
use crate::wire::MAX_PEERS;

impl World {
    pub(super) fn open(&mut self, client: NodeId, link: Option<LinkId>, server: NodeId) -> ConnId {
        self.conns.push(Conn {
            client,
            link,
            server,
            queue: VecDeque::new(),
            serving: Serving::Idle,
            listed: 0,
            listed_at: None,
            patience: Patience::new(self.layout.chunk_count()),
            alive: true,
            last_ask: self.now,
        });
        self.conns.len() - 1
    }

    /// Ends a connection at once on the server's side.
    pub(super) fn close(&mut self, conn: ConnId) {
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

    /// Whether `server` gives `client` a downloader seat (the real peer's admission rule),
    /// closing the session it takes the seat from, if any.
    pub(super) fn seat(&mut self, server: NodeId, client: NodeId) -> bool {
        let seats: Vec<Seat> = self.nodes[server]
            .seated
            .iter()
            .map(|&c| Seat {
                ip: self.nodes[self.conns[c].client].addr.ip(),
                neighbor: false,
                // In use while a request is answered; idle from the end of the last answer.
                idle: if matches!(self.conns[c].serving, Serving::Idle) && self.conns[c].queue.is_empty() {
                    self.now.saturating_sub(self.conns[c].last_ask)
                } else {
                    Duration::ZERO
                },
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
    pub(super) fn serve(&mut self, conn: ConnId) {
        loop {
            let c = &mut self.conns[conn];
            if !c.alive || !matches!(c.serving, Serving::Idle) {
                return;
            }
            let (server, client) = (c.server, c.client);
            if self.nodes[server].kind == Kind::Sybil {
                return;
            }
            let Some(ask) = c.queue.pop_front() else { return };
            match ask {
                Ask::Chunk(_) => c.patience.requested(),
                Ask::List(Some(_)) => c.patience.polled(),
                _ => {}
            }
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
                    if self.list_due(conn) == Due::Now {
                        self.answer_list(conn);
                    } else {
                        let version = self.seq;
                        self.conns[conn].serving = Serving::Wait(version);
                        self.nodes[server].waiters.push(conn);
                        let at = self.now + wait.min(MAX_LIST_WAIT);
                        self.push(at, Ev::WaitOver { conn, version });
                        self.news_for(conn);
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

    /// When a long poll on `conn` is answered: the real server's rule.
    pub(super) fn list_due(&self, conn: ConnId) -> Due {
        let c = &self.conns[conn];
        let held = self.nodes[c.server].held.count();
        long_poll::due(
            held,
            c.listed,
            c.listed_at.map(|at| self.now.saturating_sub(at)),
            c.patience,
        )
    }

    /// A long poll on `conn` that has news but must wait out the gap: answered then.
    pub(super) fn news_for(&mut self, conn: ConnId) {
        if let (Serving::Wait(version), Due::In(gap)) = (&self.conns[conn].serving, self.list_due(conn)) {
            let version = *version;
            self.push(self.now + gap, Ev::WaitOver { conn, version });
        }
    }

    pub(super) fn answer_list(&mut self, conn: ConnId) {
        let server = self.conns[conn].server;
        self.nodes[server].waiters.retain(|&w| w != conn);
        let list = self.nodes[server].held.clone();
        self.conns[conn].listed = list.count();
        self.conns[conn].listed_at = Some(self.now);
        self.conns[conn].patience.listed();
        self.messages.lists += 1;
        self.conns[conn].serving = Serving::Idle;
        // A list shares the node's uplink with its chunks.
        let client = self.conns[conn].client;
        let bytes = 9.0 + list.as_bitfield().len() as f64;
        let at = self.links.send(self.now, server, client, bytes) + self.config.latency;
        self.push(
            at,
            Ev::Reply {
                conn,
                reply: Reply::List(list),
            },
        );
    }

    /// The last byte of a chunk left the server (and reached the client's side of the
    /// link: the reply arrives a latency later).
    pub(super) fn sent(&mut self, conn: ConnId, version: u64) {
        let Serving::Sending(id, push, v) = self.conns[conn].serving else {
            return;
        };
        if v != version || !self.conns[conn].alive {
            return;
        }
        self.conns[conn].serving = Serving::Idle;
        self.conns[conn].last_ask = self.now;
        let server = self.conns[conn].server;
        self.nodes[server].sent += 1;
        let reply = if push { Reply::Pushed(id) } else { Reply::Chunk(id) };
        self.later(Ev::Reply { conn, reply });
        self.serve(conn);
    }
}
