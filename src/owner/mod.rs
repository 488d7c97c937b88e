//! The owner: splits the file into chunk files, then serves any number of peers at once.
//!
//! A `JOIN` connection receives the manifest and a batch chosen by [`batch::BatchPlanner`],
//! then stays open as a fetch session; a `FETCH` connection is a fetch session from the
//! start. So while the owner is up, every chunk can always be had from it.

pub mod batch;
pub mod census;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, Instrument};

use crate::activity;
use crate::book::AddressBook;
use crate::chunk_store::ChunkStore;
use crate::config::OwnerConfig;
use crate::connection::Connection;
use crate::error::{Error, PeerError};
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::manifest::{self, Manifest};
use crate::rate::Limits;
use crate::upload::{self, node_addr};
use crate::web::{Role as ViewRole, SwarmView};
use crate::wire::handshake::{self, Purpose};
use crate::wire::{self, Message, Role};
use batch::BatchPlanner;

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
}

/// A prepared owner: the file is split and verified, ready to serve.
#[derive(Debug)]
pub struct Owner {
    book: AddressBook,
    limits: Limits,
    safe_copies: u32,
    holdings: Arc<Holdings>,
    manifest_bytes: Bytes,
    planner: Mutex<BatchPlanner>,
    file: PathBuf,
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Io {
        what: "splitting the file",
        source: std::io::Error::other(e),
    }
}

impl Owner {
    /// Hashes the file, builds the manifest and writes (or re-verifies) the chunk files in
    /// the work directory.
    pub async fn prepare(config: &OwnerConfig) -> Result<Owner, Error> {
        let file = config.file.clone();
        let dir = config.dir.clone();
        let (store, have, id) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let manifest = Arc::new(manifest::manifest_for(&file)?);
            let (store, mut have) = ChunkStore::open(&dir, manifest)?;
            store.import(&file, &mut have)?;
            let id = PeerId::load_or_create(store.root()).map_err(|source| Error::Io {
                what: "keeping the owner's peer ID",
                source,
            })?;
            Ok((store, have, id))
        })
        .await
        .map_err(join_err)??;
        let manifest_bytes = Bytes::copy_from_slice(store.manifest().encoded());
        let planner = BatchPlanner::new(store.manifest().layout().chunk_count(), config.peers);
        Ok(Owner {
            book: AddressBook::new(id),
            limits: Limits::new(config.upload_limit, None),
            safe_copies: config.safe_copies,
            holdings: Arc::new(Holdings::new(store, have)),
            manifest_bytes,
            planner: Mutex::new(planner),
            file: config.file.clone(),
        })
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
        tracker.spawn(
            census::run(Arc::clone(&owner), owner.safe_copies, view, token.clone()).instrument(span.clone()),
        );
        upload::accept_loop(listener, token.clone(), tracker.clone(), handler)
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
        let peer = node_addr(conn.remote(), &hello);
        conn.set_max_frame(wire::MAX_REQUEST_FRAME_LEN);
        let joining = handshake::check_client(&hello, swarm)? == Purpose::Join;
        // Every peer of this swarm that reaches the owner (and listens) can be told about
        // the others; only after its hello passed the checks.
        if hello.listen_port != 0 {
            self.book.learn(hello.peer, peer);
        }
        if joining {
            self.send_batch(&mut conn, peer).await?;
        }
        let serving = upload::Serving {
            holdings: &self.holdings,
            book: &self.book,
            client: (hello.peer, peer),
            limits: &self.limits,
            served: None,
            seat: None,
            seats: None,
        };
        upload::serve_requests(&mut conn, serving).await
    }

    async fn send_batch(&self, conn: &mut Connection, peer: std::net::SocketAddr) -> Result<(), PeerError> {
        conn.write_message(&Message::Manifest(self.manifest_bytes.clone()))
            .await?;
        let batch = self
            .planner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_batch();
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
