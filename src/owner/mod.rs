//! The owner: splits the file into chunk files, then serves any number of peers at once.
//!
//! A `JOIN` connection receives the manifest and a batch chosen by [`batch::BatchPlanner`],
//! then stays open as a fetch session; a `FETCH` connection is a fetch session from the
//! start. So while the owner is up, every chunk can always be had from it.
//!
//! Before it sends more than its hello, the owner dials back the address a client
//! announced ([`crate::reach`]) and checks who answers ([`gate`]): only a proven peer gets a share
//! of the first round and is told to others; anyone else is served from a small allowance
//! ([`crate::allowance`]), waived for lists and chunks while the client holds a relay
//! reservation here (a peer nobody can dial; [`crate::relay`]). So one JOIN, one identity
//! or one address cannot make the owner send more than a few hello-sized messages, or its
//! allowance, without a standing connection per identity.

pub mod batch;
pub mod census;
mod gate;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, Instrument};

use crate::activity;
use crate::allowance::Unproven;
use crate::book::AddressBook;
use crate::chunk_store::ChunkStore;
use crate::config::OwnerConfig;
use crate::connection::Connection;
use crate::error::{Error, PeerError};
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::manifest::{self, Manifest};
use crate::rate::{Allowance, Limits};
use crate::reach::Prover;
use crate::secure::{Access, Credentials, NodeKey};
use crate::ticket::{self, Ticket};
use crate::upload::{self, node_addr};
use crate::web::{Role as ViewRole, SwarmView};
use crate::wire::handshake::{self, Purpose};
use crate::wire::{self, Hello, Message, Role};
use batch::BatchPlanner;
use gate::{Gate, Verdict};

/// The owner's sockets: its port and, with `--http`, the web view's, bound before the file
/// is hashed so that a busy port is reported at once.
#[derive(Debug)]
pub struct OwnerSockets {
    pub(crate) listener: TcpListener,
    pub(crate) web: Option<TcpListener>,
}

impl OwnerSockets {
    /// Binds the owner's port and the web view's, if `config` asks for one.
    pub async fn bind(config: &OwnerConfig) -> Result<OwnerSockets, Error> {
        Ok(OwnerSockets {
            listener: upload::bind(config.listen).await?,
            web: crate::web::bind(config.http).await?,
        })
    }

    /// The address the owner's port is bound to (its port chosen if 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// A prepared owner: the file is split and verified, ready to serve.
#[derive(Debug)]
pub struct Owner {
    book: AddressBook,
    /// Its key and the swarm's access, for every handshake.
    pub(crate) creds: Arc<Credentials>,
    /// A private swarm's ticket.
    ticket: Option<Ticket>,
    /// Where it announces itself in the DHT.
    dht: crate::config::DhtSetting,
    /// Reservations of peers nobody can dial, introduced to each other (no circuits).
    relay: Arc<crate::relay::Relay>,
    limits: Limits,
    safe_copies: u32,
    holdings: Arc<Holdings>,
    manifest_bytes: Bytes,
    planner: Mutex<BatchPlanner>,
    file: PathBuf,
    gate: Mutex<Gate>,
    unproven: Unproven,
    /// Dial-backs: the gate's, and answers to `REACH_REQUEST`s.
    prover: Prover,
    started: Instant,
    /// When an `unproven` event was last logged (ms since `started`), so a flood does not
    /// flood the log.
    unproven_logged: std::sync::atomic::AtomicU64,
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Io {
        what: "splitting the file",
        source: std::io::Error::other(e),
    }
}

impl Owner {
    /// Hashes the file, builds the manifest and opens the store in the work directory:
    /// the chunks are served from the file itself.
    pub async fn prepare(config: &OwnerConfig) -> Result<Owner, Error> {
        let file = config.file.clone();
        let dir = config.dir.clone();
        let (private, listen, policy) = (config.private, config.listen, config.chunk_files);
        let (store, have, key, ticket) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            // What the file is when hashing starts: it must be the same when it is served.
            let before = std::fs::metadata(&file);
            let hashed_from = std::time::SystemTime::now();
            // A missing or unreadable file is refused here, as a usage error.
            let manifest = Arc::new(manifest::manifest_for(&file)?);
            let before = before.map_err(|source| Error::Io {
                what: "reading the file to share",
                source,
            })?;
            let (store, have) = ChunkStore::open_owner(&dir, manifest, &file, &before, hashed_from, policy)?;
            let key = NodeKey::load_or_create(store.root()).map_err(|source| Error::Io {
                what: "keeping the owner's node key",
                source,
            })?;
            let ticket = private
                .then(|| {
                    let (root, swarm, addrs) = (
                        store.root(),
                        store.manifest().swarm_id(),
                        ticket::addrs_for(listen),
                    );
                    // A restarted owner keeps its secret: the tickets it gave out stay good.
                    let ticket = match Ticket::load(root, swarm) {
                        Some(kept) => kept.at(key.id(), addrs),
                        None => Ticket::generate(swarm, key.id(), addrs),
                    };
                    ticket.save(root).map(|()| ticket)
                })
                .transpose()
                .map_err(|source| Error::Io {
                    what: "keeping the swarm's ticket",
                    source,
                })?;
            Ok((store, have, key, ticket))
        })
        .await
        .map_err(join_err)??;
        let manifest_bytes = Bytes::copy_from_slice(store.manifest().encoded());
        let planner = BatchPlanner::new(store.manifest().layout().chunk_count(), config.peers);
        let book = AddressBook::new(key.id());
        let creds = Arc::new(Credentials {
            key,
            access: ticket.as_ref().map_or(Access::Open, |t| Access::Private(t.psk())),
        });
        let swarm = store.manifest().swarm_id();
        Ok(Owner {
            book,
            prover: Prover::new(Arc::clone(&creds), swarm),
            creds,
            ticket,
            dht: config.dht.clone(),
            relay: Arc::new(crate::relay::Relay::introducer()),
            limits: Limits::new(config.upload_limit, None),
            safe_copies: config.safe_copies,
            holdings: Arc::new(Holdings::new(store, have)),
            manifest_bytes,
            planner: Mutex::new(planner),
            file: config.file.clone(),
            gate: Mutex::default(),
            unproven: Unproven::default(),
            started: Instant::now(),
            unproven_logged: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The ticket of a private swarm (`None` for an open one).
    pub fn ticket(&self) -> Option<&Ticket> {
        self.ticket.as_ref()
    }

    /// The swarm's manifest.
    pub fn manifest(&self) -> &Manifest {
        self.holdings.manifest()
    }

    /// Serves peers on `listener` (and the web view on `web`, if given) until `shutdown`
    /// is cancelled, then waits for every connection task to end.
    pub async fn run(self, sockets: OwnerSockets, shutdown: CancellationToken) -> Result<(), Error> {
        let OwnerSockets { listener, web } = sockets;
        let local = listener.local_addr().map_err(|source| Error::Io {
            what: "reading the listening address",
            source,
        })?;
        let span = info_span!("owner", port = local.port());
        span.in_scope(|| activity::owner_start(local, &self.file, self.manifest()));
        let owner = Arc::new(self);
        let tracker = TaskTracker::new();
        let token = shutdown.child_token();
        let handler = {
            let owner = Arc::clone(&owner);
            move |conn| {
                let owner = Arc::clone(&owner);
                async move { owner.serve(conn, local.port()).await }
            }
        };
        let view = web.map(|listener| {
            let view = Arc::new(SwarmView::new(
                ViewRole::Owner,
                owner.book.me(),
                local,
                Arc::clone(&owner.holdings),
            ));
            crate::web::spawn(&tracker, listener, Arc::clone(&view), &token, &span);
            view
        });
        let key = match &owner.ticket {
            Some(ticket) => ticket.dht_key(),
            None => crate::dht::open_key(owner.manifest().swarm_id()),
        };
        tracker.spawn(
            crate::dht::keep_announced(owner.dht.clone(), (local.ip(), local.port()), key, token.clone())
                .instrument(span.clone()),
        );
        tracker.spawn(
            census::run(Arc::clone(&owner), owner.safe_copies, view, token.clone()).instrument(span.clone()),
        );
        upload::accept_loop(
            listener,
            (Vec::new(), None),
            Arc::clone(&owner.creds),
            token.clone(),
            tracker.clone(),
            handler,
        )
        .instrument(span.clone())
        .await;
        tracker.close();
        tracker.wait().await;
        span.in_scope(|| info!("owner stopped"));
        Ok(())
    }

    async fn serve(&self, mut conn: Connection, port: u16) -> Result<(), PeerError> {
        let swarm = self.manifest().swarm_id();
        let mine = handshake::server_hello(Role::Owner, port, swarm, self.book.me());
        let hello = conn.answer_handshake(|_| mine).await?;
        if hello.role == Role::Relay && hello.swarm == Some(swarm) {
            // Peers behind NATs meet here when no peer can relay for them.
            return self.relay.serve(conn, hello.peer, &self.limits, &|| true).await;
        }
        let remote = conn.remote();
        let peer = node_addr(remote, &hello);
        conn.set_max_frame(wire::MAX_REQUEST_FRAME_LEN);
        let joining = handshake::check_client(&hello, swarm)? == Purpose::Join;
        let ip = conn.remote().ip();
        let proven = self.prove(&hello, ip).await;
        // Only a peer that answered where it said it listens is told to others.
        if proven {
            self.book.learn(hello.peer, peer);
        }
        // A peer nobody can dial is trusted while it holds a reservation here (one
        // connection per identity, a few per address: what a proof costs, or more).
        let allowance = (!proven).then(|| {
            let (relay, id) = (Arc::clone(&self.relay), hello.peer);
            let held = crate::rate::Waiver::new(move || relay.holds(id, ip));
            self.unproven.allowance(ip).waived_while(held)
        });
        if joining {
            self.send_batch(&mut conn, (hello.peer, peer), allowance.as_ref())
                .await?;
        }
        let serving = upload::Serving {
            holdings: &self.holdings,
            book: &self.book,
            client: (hello.peer, peer),
            limits: &self.limits,
            served: None,
            seat: None,
            seats: None,
            allowance: allowance.as_ref(),
            reach: (Some(&self.prover), remote),
        };
        upload::serve_requests(&mut conn, serving).await
    }

    /// Whether a node of this swarm answers under `hello`'s ID at the port it announced
    /// (asked once, then remembered for a while by the gate).
    async fn prove(&self, hello: &Hello, ip: IpAddr) -> bool {
        let addr = SocketAddr::new(ip, hello.listen_port);
        let verdict = self.gate().verdict(addr, hello.peer, self.started.elapsed());
        let proven = match verdict {
            Verdict::Proven => true,
            Verdict::Unproven => false,
            Verdict::Probe => {
                let Ok(answered) = self.prover.who_answers(addr).await else {
                    return false;
                };
                self.gate().record(addr, answered, self.started.elapsed());
                answered == Some(hello.peer)
            }
        };
        if !proven {
            // One line a second at most; the rest at debug level.
            let now = self.started.elapsed().as_millis() as u64;
            let last = self.unproven_logged.load(std::sync::atomic::Ordering::Relaxed);
            if last == 0 || now.saturating_sub(last) >= 1000 {
                self.unproven_logged
                    .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
                activity::unproven(addr, hello.peer, verdict == Verdict::Probe);
            } else {
                debug!(%addr, claimed = %hello.peer, "client not proven");
            }
        }
        proven
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The manifest, then the client's share of the first round if it is proven and has
    /// not had one, else an empty batch.
    async fn send_batch(
        &self,
        conn: &mut Connection,
        (id, peer): (PeerId, SocketAddr),
        allowance: Option<&Allowance>,
    ) -> Result<(), PeerError> {
        // A proven identity's first manifest is free; any other is paid for.
        let free = allowance.is_none() && self.gate().first_manifest(id, self.started.elapsed());
        if !free {
            // A reservation waives chunks and lists, not manifests.
            let paid = allowance
                .cloned()
                .map_or_else(|| self.unproven.allowance(peer.ip()), Allowance::unwaived);
            paid.spend(self.manifest_bytes.len()).await;
        }
        conn.write_message(&Message::Manifest(self.manifest_bytes.clone()))
            .await?;
        let batch = {
            let mut planner = self.planner.lock().unwrap_or_else(PoisonError::into_inner);
            let share = allowance.is_none() && self.gate().take_share(id, planner.round());
            if share {
                planner.next_batch()
            } else {
                Vec::new()
            }
        };
        for &id in &batch {
            let Some(data) = self.holdings.read(id).await? else {
                continue;
            };
            let bytes = data.len();
            self.limits.before_upload(bytes).await;
            conn.write_chunk(id, &data).await?;
            activity::chunk_sent(peer, id, bytes);
        }
        let count = batch.len() as u32;
        conn.write_message(&Message::BatchEnd { count }).await?;
        activity::owner_batch(peer, count, batch.first().copied(), batch.last().copied());
        Ok(())
    }
}
