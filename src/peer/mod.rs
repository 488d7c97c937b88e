//! A peer: joins through the owner, then serves its upload neighbor and downloads from
//! its download neighbor at the same time, until it holds every chunk; then joins the
//! file and keeps serving until shut down.
//!
//! Tasks, all under the peer's span and one cancellation token:
//! * the upload server ([`crate::upload`]), started once the manifest is known;
//! * the download side ([`download::Download`]), on the peer's main task.

mod bootstrap;
mod ctx;
mod discover;
mod download;
mod link;
mod presence;
mod reachable;
mod relayed;
mod standing;
mod storing;
mod two_way;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, Instrument};

use crate::activity;
use crate::book::AddressBook;
use crate::chunk_store::STORE_DIR;
use crate::config::PeerConfig;
use crate::connection::Connection;
use crate::error::{Error, PeerError};
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::identity::PeerId;
use crate::rate::Limits;
use crate::secure::{Access, Credentials, NodeKey};
use crate::upload::{self, node_addr, Served};
use crate::web::{Role as ViewRole, SwarmView};
use crate::wire::handshake::{self, Purpose};
use crate::wire::{self, Message, Role};
use download::Download;

/// What a finished peer reports.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// The peer's listening address.
    pub listen: SocketAddr,
    /// The assembled, verified file.
    pub file: PathBuf,
    /// Chunks received from the owner (its batch and any fallback requests).
    pub from_owner: u32,
    /// Chunks received from the download neighbor.
    pub from_neighbor: u32,
    /// Time from start to the verified file.
    pub elapsed: Duration,
}

/// A peer's progress, for callers that watch it (the demo, tests).
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for the owner's manifest and batch.
    Joining,
    /// Exchanging chunks: `held` of `total`.
    Downloading {
        /// Chunks held.
        held: u32,
        /// Chunks in the file.
        total: u32,
    },
    /// Holds the verified file and is serving.
    Complete(PeerReport),
}

/// A peer bound to its port, ready to run.
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    listener: TcpListener,
    local: SocketAddr,
    progress: watch::Sender<Progress>,
    me: Me,
    web: Option<TcpListener>,
    /// Where the DHT node is handed to everyone holding a [`Me`], once started.
    dht: watch::Sender<Option<crate::dht::Node>>,
    /// Connections punched or relayed to us, for the upload side ([`Me::inject`]).
    injected: tokio::sync::mpsc::Receiver<Connection>,
}

/// Who this peer is to the others: its stable ID, its listening port, and the peers it
/// knows of.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    /// The peer's ID: the one its key proves.
    pub(crate) id: PeerId,
    /// Its key (kept in its directory once it has a store) and the swarm's access.
    pub(crate) creds: Arc<Credentials>,
    /// The port it listens on.
    pub(crate) port: u16,
    /// The peers it knows.
    pub(crate) book: Arc<AddressBook>,
    /// Its rate limits.
    pub(crate) limits: Limits,
    /// When its upload side last answered a request.
    pub(crate) served: Arc<Served>,
    /// The downloaders its upload side serves.
    pub(crate) downloaders: Arc<crate::admission::Downloaders>,
    /// What clients joining through this peer may cost it (their manifests).
    pub(crate) joiners: Arc<crate::allowance::Unproven>,
    /// The web view it feeds, if `--http` was given (set once the store is open).
    pub(crate) view: Option<Arc<SwarmView>>,
    /// Where our side of two-way links is served (set once the store is open).
    pub(crate) uploads: Option<two_way::Uploads>,
    /// Where the upload side hands the download side the links peers dialled.
    pub(crate) adopter: Arc<two_way::Adopter>,
    /// Whether others can dial it where it listens (what it announces follows).
    pub(crate) standing: Arc<standing::Standing>,
    /// Its DHT node, once started (never, with `--no-dht`).
    pub(crate) dht: watch::Receiver<Option<crate::dht::Node>>,
    /// Its relay for peers nobody can dial (`None` with `--no-relay`).
    pub(crate) relay: Option<Arc<crate::relay::Relay>>,
    /// Where connections made to us another way than through our listener (a punched
    /// hole, a relay circuit) go, to be served as if accepted.
    pub(crate) inject: tokio::sync::mpsc::Sender<Connection>,
}

impl Peer {
    /// Binds the peer's listening port and, with `--http`, the web view's (so a busy port
    /// is reported before anything else).
    pub async fn bind(config: PeerConfig) -> Result<Peer, Error> {
        let listener = upload::bind(config.listen).await?;
        let web = crate::web::bind(config.http).await?;
        let mut peer = Peer::with_listener(config, listener)?;
        peer.web = web;
        Ok(peer)
    }

    /// Uses a listener bound by the caller (the demo binds port 0 for every peer first).
    pub fn with_listener(config: PeerConfig, listener: TcpListener) -> Result<Peer, Error> {
        let local = listener.local_addr().map_err(|source| Error::Io {
            what: "reading the listening address",
            source,
        })?;
        let (progress, _) = watch::channel(Progress::Joining);
        // The key a previous run kept; a new one is saved once the store exists.
        let key = NodeKey::load(&config.dir.join(STORE_DIR)).unwrap_or_else(NodeKey::generate);
        let id = key.id();
        let (dht, dht_seen) = watch::channel(None);
        let (inject, injected) = tokio::sync::mpsc::channel(8);
        let me = Me {
            id,
            creds: Arc::new(Credentials {
                key,
                access: config
                    .ticket
                    .as_ref()
                    .map_or(Access::Open, |t| Access::Private(t.psk())),
            }),
            port: local.port(),
            book: Arc::new(AddressBook::new(id)),
            limits: Limits::new(config.upload_limit, config.download_limit),
            served: Arc::new(Served::default()),
            downloaders: Arc::default(),
            joiners: Arc::default(),
            view: None,
            uploads: None,
            adopter: Arc::default(),
            standing: Arc::default(),
            dht: dht_seen,
            relay: config
                .relay
                .then(|| Arc::new(crate::relay::Relay::new(config.upload_limit))),
            inject,
        };
        Ok(Peer {
            config,
            listener,
            local,
            progress,
            me,
            web: None,
            dht,
            injected,
        })
    }

    /// This peer's ID.
    pub fn id(&self) -> PeerId {
        self.me.id
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Watches the peer's progress.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs the peer until `shutdown` is cancelled. Returns early only on a fatal error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let span = info_span!("peer", port = self.local.port());
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), Error> {
        let started = Instant::now();
        let token = shutdown.child_token();
        let mut me = self.me.clone();
        // The owner dials back our port before it sends anything: that is answered from
        // now on, everyone else once the store is open.
        let (joining, seen) = watch::channel(None);
        let held: reachable::Held = Arc::new(std::sync::Mutex::new(Some(Vec::new())));
        let tracker = TaskTracker::new();
        // The DHT node starts at once: a peer whose ticket names no live address joins
        // through the peers it finds there.
        tracker
            .spawn(start_dht(self.config.dht.clone(), self.local, self.dht, token.clone()).in_current_span());
        let joined = tokio::select! {
            joined = bootstrap::start(&self.config, &me, &token, &joining) => joined,
            never = reachable::answer_while_joining(&self.listener, me.port, &me.creds, seen, Arc::clone(&held)) => match never {},
        };
        let joined = match joined {
            Ok(Some(joined)) => joined,
            stopped => {
                token.cancel();
                tracker.close();
                tracker.wait().await;
                return stopped.map(|_| ());
            }
        };
        let holdings = joined.holdings;
        me.uploads = Some(two_way::Uploads {
            tracker: tracker.clone(),
            token: token.clone(),
            prover: Arc::new(crate::reach::Prover::new(
                Arc::clone(&me.creds),
                holdings.manifest().swarm_id(),
            )),
        });
        if let Some(listener) = self.web {
            let view = Arc::new(SwarmView::new(
                ViewRole::Peer,
                me.id,
                self.local,
                Arc::clone(&holdings),
            ));
            crate::web::spawn(
                &tracker,
                listener,
                Arc::clone(&view),
                &token,
                &tracing::Span::current(),
            );
            me.view = Some(view);
        }
        let named =
            |e: &Option<crate::config::Endpoint>| e.as_ref().map_or("-".to_owned(), ToString::to_string);
        activity::peer_start(
            self.local,
            me.id,
            &named(&self.config.owner),
            &named(&self.config.neighbor),
            holdings.manifest(),
            holdings.snapshot().count(),
            joined.resumed,
        );

        let held = reachable::take_held(&held);
        let handler = {
            let (holdings, me) = (Arc::clone(&holdings), me.clone());
            move |conn| serve_neighbor(conn, Arc::clone(&holdings), me.clone())
        };
        tracker.spawn(
            upload::accept_loop(
                self.listener,
                (held, Some(self.injected)),
                Arc::clone(&me.creds),
                token.clone(),
                tracker.clone(),
                handler,
            )
            .in_current_span(),
        );
        tracker.spawn(
            standing::keep_track(
                me.clone(),
                Arc::clone(&holdings),
                self.config.owner.clone(),
                token.clone(),
            )
            .in_current_span(),
        );
        let key = match &self.config.ticket {
            Some(ticket) => ticket.dht_key(),
            None => crate::dht::open_key(holdings.manifest().swarm_id()),
        };
        tracker.spawn(discover::run(me.clone(), Arc::clone(&holdings), key, token.clone()).in_current_span());
        if me.relay.is_some() {
            let owner = (
                self.config.owner.clone(),
                self.config.ticket.as_ref().map(crate::ticket::Ticket::owner),
            );
            tracker.spawn(
                relayed::run(me.clone(), Arc::clone(&holdings), owner, token.clone()).in_current_span(),
            );
        }
        tracker.spawn(
            report_progress(Arc::clone(&holdings), self.progress.clone(), token.clone()).in_current_span(),
        );

        let mut download = Download::new(Arc::clone(&holdings), me.clone(), &self.config, joined.batch);
        let outcome = tokio::select! {
            _ = token.cancelled() => Ok(false),
            done = download.run(&token) => done,
        };
        // Whatever happened, the summary file catches up with what is on disk.
        let flushed = holdings.commit().await;
        let outcome = outcome.and_then(|done| flushed.map(|()| done));
        let result = match outcome {
            Ok(true) => finish(&holdings, &download, started, self.local, &self.progress).await,
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(Error::while_running);
        if result.is_ok() {
            tracker.spawn(
                presence::announce(me.clone(), Arc::clone(&holdings), token.clone()).in_current_span(),
            );
            seed(&self.config, &me, &token).await;
        }
        token.cancel();
        tracker.close();
        tracker.wait().await;
        info!("peer stopped");
        result
    }
}

/// Starts the DHT node (unless it is off) and hands it to everyone holding a [`Me`].
async fn start_dht(
    setting: crate::config::DhtSetting,
    listen: SocketAddr,
    to: watch::Sender<Option<crate::dht::Node>>,
    token: CancellationToken,
) {
    let said = async {
        let node = crate::dht::start(setting, listen.ip(), listen.port()).await;
        to.send_replace(node.clone());
        if let Some(node) = node {
            crate::dht::report(&node).await;
        }
    };
    tokio::select! {
        _ = token.cancelled() => {}
        () = said => {}
    }
}

/// Serves after completion: until shut down, or with `--exit-when-done` until nobody has
/// asked for anything for [`DONE_IDLE`] (or `--seed-time` has passed).
async fn seed(config: &PeerConfig, me: &Me, token: &CancellationToken) {
    if !config.exit_when_done {
        token.cancelled().await;
        return;
    }
    let since = Instant::now();
    loop {
        // Idle since completing, too: a peer nobody had found yet (its batch is still news)
        // stays long enough for the others to come for it.
        let idle = me.served.idle_for() >= DONE_IDLE && since.elapsed() >= DONE_IDLE;
        let seeded = config.seed_time.is_some_and(|t| since.elapsed() >= t);
        if idle || seeded {
            info!(idle, seeded, "done: exiting (--exit-when-done)");
            return;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// With `--exit-when-done`: how long nobody may ask for anything before the peer exits.
pub const DONE_IDLE: Duration = Duration::from_secs(3);

/// Joins the file, verifies it and reports completion.
async fn finish(
    holdings: &Arc<Holdings>,
    download: &Download,
    started: Instant,
    listen: SocketAddr,
    progress: &watch::Sender<Progress>,
) -> Result<(), Error> {
    let h = Arc::clone(holdings);
    let file = tokio::task::spawn_blocking(move || h.assemble())
        .await
        .map_err(|e| Error::Io {
            what: "joining the file",
            source: std::io::Error::other(e),
        })??;
    let tally = download.tally();
    let report = PeerReport {
        listen,
        file,
        from_owner: tally.from_owner,
        from_neighbor: tally.from_neighbor,
        elapsed: started.elapsed(),
    };
    activity::complete(
        &report.file,
        report.elapsed.as_secs_f64(),
        report.from_owner,
        report.from_neighbor,
    );
    progress.send_replace(Progress::Complete(report));
    Ok(())
}

/// Publishes the held count until complete or cancelled.
async fn report_progress(
    holdings: Arc<Holdings>,
    progress: watch::Sender<Progress>,
    token: CancellationToken,
) {
    let total = holdings.manifest().layout().chunk_count();
    let mut count = holdings.subscribe();
    loop {
        let held = *count.borrow_and_update();
        // Never overwrite `Complete`, which `finish` may have sent meanwhile.
        progress.send_if_modified(|p| {
            let update = held < total && !matches!(p, Progress::Complete(_));
            if update {
                *p = Progress::Downloading { held, total };
            }
            update
        });
        tokio::select! {
            _ = token.cancelled() => return,
            changed = count.changed() => if changed.is_err() || held >= total { return },
        }
    }
}

/// Serves one client of this peer's upload server: a neighbor fetching, or a peer joining
/// through this one (it gets the manifest and an empty batch, then fetches like anyone).
/// A fetching client that offers a two-way link is fetched from as well, over the same
/// connection, if the download side has an inbound slot for it ([`two_way`]).
async fn serve_neighbor(mut conn: Connection, holdings: Arc<Holdings>, me: Me) -> Result<(), PeerError> {
    let swarm = holdings.manifest().swarm_id();
    // A peer's fetch session takes a downloader seat; without one it is told we are busy.
    let remote = conn.remote();
    let ip = remote.ip();
    let mut seat = None;
    let mut adopted = None;
    let hello = conn
        .answer_handshake(|theirs| {
            let role = match handshake::check_client(theirs, swarm) {
                Ok(Purpose::Fetch { neighbor }) if theirs.listen_port != 0 || theirs.both => {
                    seat = me.downloaders.admit(ip, neighbor);
                    if seat.is_some() {
                        if theirs.both {
                            adopted = me.adopter.reserve(theirs.peer, remote);
                        }
                        Role::Peer
                    } else {
                        Role::Busy
                    }
                }
                // A relay must be reachable itself.
                Ok(Purpose::Relay) if me.relay.is_none() || me.standing.is_unreachable() => Role::Busy,
                _ => Role::Peer,
            };
            let mut mine = handshake::server_hello(role, me.port, swarm, me.id);
            mine.both = adopted.is_some();
            mine
        })
        .await?;
    let peer = node_addr(remote, &hello);
    let purpose = handshake::check_client(&hello, swarm)?;
    if matches!(purpose, Purpose::Fetch { .. }) && (hello.listen_port != 0 || hello.both) && seat.is_none() {
        debug!(%peer, "busy: every downloader seat is taken");
        return Ok(());
    }
    if purpose == Purpose::Relay {
        return match &me.relay {
            Some(relay) if !me.standing.is_unreachable() => {
                let standing = Arc::clone(&me.standing);
                let usable = move || !standing.is_unreachable();
                relay.serve(conn, hello.peer, &me.limits, &usable).await
            }
            _ => Ok(()),
        };
    }
    if purpose == Purpose::Join {
        // A JOIN is a claim like any other: its manifest is paid from the joiners'
        // allowance, so a flood of JOINs cannot make a peer an amplifier either.
        let len = holdings.manifest().encoded().len();
        me.joiners.allowance(ip).spend(len).await;
        conn.write_message(&Message::Manifest(Bytes::copy_from_slice(
            holdings.manifest().encoded(),
        )))
        .await?;
        conn.write_message(&Message::BatchEnd { count: 0 }).await?;
    }
    // A client that does not listen (the owner's census) is nobody to download from, and
    // its requests do not keep a done peer seeding. One that reached us through a punched
    // hole or a relay listens nowhere we know of.
    let is_peer = hello.listen_port != 0 && !conn.came_another_way();
    if is_peer {
        me.book.learn(hello.peer, peer);
    }
    if let Some(slot) = adopted {
        let manifest = holdings.manifest();
        let duplex = conn.into_duplex(wire::max_frame_len(manifest.layout()))?;
        slot.deliver(FetchLink::adopted(duplex.fetching, manifest, hello.peer));
        return two_way::serve(me, holdings, duplex.serving, duplex.pump, hello.peer, seat).await;
    }
    conn.set_max_frame(wire::MAX_REQUEST_FRAME_LEN);
    let served = is_peer.then_some(&*me.served);
    let serving = upload::Serving {
        holdings: &holdings,
        book: &me.book,
        client: (hello.peer, peer),
        limits: &me.limits,
        served,
        seat,
        seats: Some((
            &me.downloaders,
            ip,
            purpose == (Purpose::Fetch { neighbor: true }),
        )),
        allowance: None,
        reach: (me.uploads.as_ref().map(|u| &*u.prover), remote),
    };
    upload::serve_requests(&mut conn, serving).await
}
