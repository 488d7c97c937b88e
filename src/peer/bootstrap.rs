//! The peer's first state: resuming from its directory, or joining through the owner.
//!
//! A directory that holds a manifest from an earlier run is **resumed**: its chunk files
//! are verified against that manifest (damaged ones discarded, the summary rebuilt,
//! leftovers removed) and the peer starts at once, owner or no owner; the owner is then
//! just a server to fall back on. Otherwise the peer **joins**:
//! `Connecting → AwaitingManifest → ReceivingBatch → Joined`. The peer dials the owner
//! (with backoff while it is not up), receives and checks the manifest, opens its store,
//! stores the batch of chunks the owner hands it, and keeps the connection as its link to
//! the owner for later fallback requests. A connection that fails midway is retried; a
//! manifest the peer refuses, or a directory it cannot use, is fatal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::reachable::Joining;
use super::Me;
use crate::activity;
use crate::chunk_store::ChunkStore;
use crate::config::{Endpoint, PeerConfig};
use crate::connection::Connection;
use crate::error::{Error, PeerError};
use crate::fetch::FetchLink;
use crate::holdings::Holdings;
use crate::manifest::Manifest;
use crate::secure::NodeKey;
use crate::task::{self, Backoff};
use crate::ticket::Ticket;
use crate::wire::{self, handshake, Message, Role};

/// How long the owner may take to send the manifest or the next chunk of the batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer that has joined: its holdings, and its open link to the owner.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The verified chunks, on disk.
    pub(crate) holdings: Arc<Holdings>,
    /// The owner's join connection, its batch still to be read (none when resumed or
    /// joined through a peer).
    pub(crate) batch: Option<FetchLink>,
    /// Whether the peer resumed from its directory instead of joining.
    pub(crate) resumed: bool,
}

/// Resumes from the directory if an earlier run left a manifest there, else joins through
/// the owner. `None` if cancelled first.
pub(crate) async fn start(
    config: &PeerConfig,
    me: &Me,
    token: &CancellationToken,
    joining: &watch::Sender<Option<Joining>>,
) -> Result<Option<Joined>, Error> {
    if let Some(holdings) = resume(config, me).await? {
        return Ok(Some(Joined {
            holdings,
            batch: None,
            resumed: true,
        }));
    }
    join(config, me, token, joining).await
}

/// Opens the store from the manifest an earlier run left, if there is one.
async fn resume(config: &PeerConfig, me: &Me) -> Result<Option<Arc<Holdings>>, Error> {
    let (dir, policy) = (config.dir.clone(), config.chunk_files);
    let key = me.creds.key.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let Some(manifest) = crate::chunk_store::stored_manifest(&dir)? else {
            return Ok(None);
        };
        ChunkStore::check_destination(&dir, &manifest)?;
        let opened = ChunkStore::open(&dir, Arc::new(manifest), policy)?;
        save_key(&key, &opened.0)?;
        Ok(Some(opened))
    })
    .await
    .map_err(|e| Error::Io {
        what: "opening the chunk store",
        source: std::io::Error::other(e),
    })??;
    Ok(opened.map(|(store, have)| {
        info!(
            dir = %crate::text::Quoted(&config.dir),
            held = have.count(),
            chunks = store.manifest().layout().chunk_count(),
            "resuming from the directory; chunk files verified"
        );
        Arc::new(Holdings::new(with_fsync(store, config), have))
    }))
}

enum Failure {
    /// About this peer (its directory): fatal wherever it joins.
    Fatal(Error),
    /// The node there is not what it should be (another swarm, not an owner, a bad
    /// manifest): fatal at the address the user gave, skipped at one the DHT gave.
    Theirs(Error),
    Retry(PeerError),
    /// The handshake was refused: fatal once it happens [`REFUSALS`] times in a row (a
    /// proxy in front of an owner not up yet closes connections too).
    Refused(Error),
}

/// Handshake refusals in a row that make a peer give up...
const REFUSALS: u32 = 3;
/// ...tried this far apart (a proxy whose owner is not up yet closes connections too).
const REFUSED_RETRY: Duration = Duration::from_millis(300);

impl From<PeerError> for Failure {
    fn from(e: PeerError) -> Failure {
        Failure::Retry(e)
    }
}

/// Joins through the owner, retrying until it answers. `None` if cancelled first.
async fn join(
    config: &PeerConfig,
    me: &Me,
    token: &CancellationToken,
    joining: &watch::Sender<Option<Joining>>,
) -> Result<Option<Joined>, Error> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut holdings = None;
    let result = join_loop(config, me, token, &mut backoff, &mut holdings, joining).await;
    if !matches!(result, Ok(Some(_))) {
        // Stopped or failed after part of a batch arrived: the summary catches up with the
        // verified chunks on disk. A failure here is secondary to the one being reported.
        if let Some(h) = &holdings {
            if let Err(e) = h.commit().await {
                debug!(cause = %e, "could not bring the summary file up to date");
            }
        }
    }
    result
}

async fn join_loop(
    config: &PeerConfig,
    me: &Me,
    token: &CancellationToken,
    backoff: &mut Backoff,
    holdings: &mut Option<Arc<Holdings>>,
    joining: &watch::Sender<Option<Joining>>,
) -> Result<Option<Joined>, Error> {
    let mut refusals = 0;
    // Through the owner of a ticket: each of its addresses in turn while none answers.
    let entries: Vec<Endpoint> = match (&config.ticket, &config.join) {
        (Some(t), None) if !t.addrs().is_empty() => {
            t.addrs().iter().map(|&a| Endpoint::from_addr(a)).collect()
        }
        _ => vec![config.entry.clone()],
    };
    let mut at = 0;
    let mut looked_up: Option<Instant> = None;
    let mut failed = super::discover::Failed::default();
    loop {
        let entry = &entries[at % entries.len()];
        let attempt = tokio::select! {
            _ = token.cancelled() => return Ok(None),
            attempt = attempt(config, (entry, config.join.is_some()), me, holdings, joining) => attempt,
        };
        if matches!(
            attempt,
            Err(Failure::Retry(PeerError::Connect(_) | PeerError::Timeout(_)))
        ) {
            at += 1;
            // Every address the ticket gives is dead (so far): the DHT may know where the
            // swarm is now.
            if at % entries.len() == 0 {
                let found = tokio::select! {
                    _ = token.cancelled() => return Ok(None),
                    found = through_dht(config, me, holdings, joining, (&mut looked_up, &mut failed)) => found,
                };
                match found {
                    Ok(Some(joined)) => return Ok(Some(joined)),
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        refusals = if matches!(attempt, Err(Failure::Refused(_))) {
            refusals + 1
        } else {
            0
        };
        match attempt {
            Ok(joined) => return Ok(Some(joined)),
            Err(Failure::Fatal(e) | Failure::Theirs(e)) => return Err(e),
            Err(Failure::Refused(e)) if refusals >= REFUSALS => return Err(e),
            Err(Failure::Refused(e)) => {
                debug!(cause = %e, "refused in the handshake; trying again");
                if !task::sleep(token, REFUSED_RETRY).await {
                    return Ok(None);
                }
            }
            Err(Failure::Retry(e)) => {
                let delay = backoff.next_delay();
                let via = entry;
                if backoff.attempts() == 1 || backoff.attempts() % 10 == 0 {
                    info!(%via, cause = %e, "cannot join yet; retrying");
                } else {
                    debug!(%via, cause = %e, ?delay, "cannot join yet; retrying");
                }
                if !task::sleep(token, delay).await {
                    return Ok(None);
                }
            }
        }
    }
}

async fn attempt(
    config: &PeerConfig,
    (entry, via_peer): (&Endpoint, bool),
    me: &Me,
    holdings: &mut Option<Arc<Holdings>>,
    joining: &watch::Sender<Option<Joining>>,
) -> Result<Joined, Failure> {
    let addr = entry.resolve().await.map_err(PeerError::from)?;
    let mut conn = Connection::connect(addr, Arc::clone(&me.creds)).await?;
    let ticket = config.ticket.as_ref().map(Ticket::swarm);
    let swarm = holdings.as_ref().map(|h| h.manifest().swarm_id()).or(ticket);
    let hello = handshake::client_hello(Role::Join, me.port, swarm, me.id);
    let theirs = match conn.handshake(&hello).await {
        Ok(theirs) => theirs,
        // Closed before the listener answered our first handshake message, without word of
        // a connection limit: it did not take our proof (its secret is another, or it is
        // private and we are not).
        Err(e @ (PeerError::Closed(_) | PeerError::Io { .. })) if !conn.answered() => {
            debug!(%addr, cause = %e, "refused in the handshake");
            return Err(Failure::Refused(Error::Refused {
                addr,
                private: ticket.is_some(),
            }));
        }
        Err(PeerError::Secure(e)) if e.is_auth() && !conn.answered() => {
            debug!(%addr, cause = %e, "the handshake failed");
            return Err(Failure::Refused(Error::Refused {
                addr,
                private: ticket.is_some(),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    // Through the owner, the ticket names who must answer.
    if let Some(owner) = config
        .ticket
        .as_ref()
        .map(Ticket::owner)
        .filter(|&o| !via_peer && o != theirs.peer)
    {
        return Err(Failure::Theirs(Error::NotTheTicketsOwner {
            addr,
            owner,
            answered: theirs.peer,
        }));
    }
    if handshake::check_join_server(&theirs, via_peer).is_err() {
        // Something answers, but it is not an owner (often a peer's port given by
        // mistake): retrying would not help.
        return Err(Failure::Theirs(Error::NotAnOwner {
            addr,
            role: theirs.role,
        }));
    }
    // The owner is about to dial our port back: it answers under this swarm's ID.
    if let Some(swarm) = theirs.swarm {
        joining.send_replace(Some(Joining {
            swarm,
            owner: theirs.peer,
        }));
    }
    conn.set_max_frame(wire::MAX_MANIFEST_FRAME_LEN);
    let manifest = match next(&mut conn, "waiting for the manifest").await? {
        Message::Manifest(bytes) => {
            Manifest::decode(&bytes).map_err(|source| Failure::Theirs(Error::BadManifest { addr, source }))?
        }
        other => return Err(unexpected("waiting for the manifest", &other)),
    };
    if let Some(ticket) = ticket.filter(|&t| t != manifest.swarm_id()) {
        return Err(Failure::Theirs(Error::NotTheTicketsSwarm {
            addr,
            ticket,
            actual: manifest.swarm_id(),
        }));
    }
    if Some(manifest.swarm_id()) != theirs.swarm {
        return Err(Failure::Theirs(Error::ManifestIdMismatch {
            addr,
            announced: theirs.swarm.unwrap_or(crate::manifest::SwarmId([0; 32])),
            actual: manifest.swarm_id(),
        }));
    }
    let holdings = match holdings {
        Some(h) if h.manifest().swarm_id() == manifest.swarm_id() => Arc::clone(h),
        Some(_) => {
            return Err(PeerError::SwarmMismatch {
                ours: manifest.swarm_id(),
                theirs: theirs.swarm,
            }
            .into())
        }
        None => {
            let opened = open_store(config, manifest, me).await.map_err(Failure::Fatal)?;
            holdings.insert(opened).clone()
        }
    };
    let manifest = Arc::clone(holdings.manifest());
    conn.set_max_frame(wire::max_frame_len(manifest.layout()));
    if theirs.role == Role::Peer {
        me.book.learn(theirs.peer, addr);
    }
    // The owner's batch is still to come on this connection: the download side reads it
    // while the peer already trades with its neighbors. A link to a peer (an empty batch)
    // is redialled as a neighbor from the address book.
    let batch = (theirs.role == Role::Owner).then(|| FetchLink::joining(conn, &manifest, theirs.peer));
    Ok(Joined {
        holdings,
        batch,
        resumed: false,
    })
}

/// How often a peer that cannot join at the ticket's addresses looks the swarm up in the
/// DHT, how many of the addresses found it tries each time, and how long each may take
/// (an address that fails is left alone for 10 minutes, as in `discover`).
const DHT_LOOKUP_EVERY: Duration = Duration::from_secs(3);
const DHT_TRIES: usize = 8;
const DHT_TRY_TIME: Duration = Duration::from_secs(10);

/// Joins through a peer of a private swarm found in the DHT under the ticket's key, if the
/// DHT is up and was not asked in the last [`DHT_LOOKUP_EVERY`]. `None` when nobody found
/// took us in. A node found there that turns out to be no node of the swarm is skipped.
async fn through_dht(
    config: &PeerConfig,
    me: &Me,
    holdings: &mut Option<Arc<Holdings>>,
    joining: &watch::Sender<Option<Joining>>,
    (looked_up, failed): (&mut Option<Instant>, &mut super::discover::Failed),
) -> Result<Option<Joined>, Error> {
    let Some(ticket) = &config.ticket else {
        return Ok(None);
    };
    let node = me.dht.borrow().clone();
    let Some(node) = node.filter(|_| looked_up.is_none_or(|t| t.elapsed() >= DHT_LOOKUP_EVERY)) else {
        return Ok(None);
    };
    *looked_up = Some(Instant::now());
    // Tried as the DHT's answers arrive.
    // Tried as the DHT's answers arrive.
    let failed_before: &super::discover::Failed = failed;
    let found = node
        .lookup(ticket.dht_key())
        .filter(|&a| std::future::ready(!me.book.knows_addr(a) && !failed_before.recent(a)))
        .take(DHT_TRIES);
    let mut found = std::pin::pin!(found);
    let (mut tried, mut misses) = (0, Vec::new());
    let mut joined = None;
    while let Some(addr) = found.next().await {
        tried += 1;
        let entry = Endpoint::from_addr(addr);
        let attempt = tokio::time::timeout(
            DHT_TRY_TIME,
            attempt(config, (&entry, true), me, holdings, joining),
        )
        .await;
        match attempt {
            Ok(Ok(j)) => {
                info!(via = %addr, "joined through a peer found in the DHT");
                joined = Some(j);
                break;
            }
            Ok(Err(Failure::Fatal(e))) => return Err(e),
            Ok(Err(Failure::Theirs(e) | Failure::Refused(e))) => {
                debug!(%addr, cause = %e, "DHT: not a way in")
            }
            Ok(Err(Failure::Retry(e))) => debug!(%addr, cause = %e, "DHT: not a way in"),
            Err(_) => debug!(%addr, "DHT: not a way in (timed out)"),
        }
        misses.push(addr);
    }
    if tried > 0 {
        activity::dht_lookup(tried, usize::from(joined.is_some()));
    }
    for addr in misses {
        failed.add(addr);
    }
    if joined.is_some() {
        return Ok(joined);
    }
    Ok(None)
}

/// Keeps the peer's key in its store, so it is the same peer after a restart.
fn save_key(key: &NodeKey, store: &ChunkStore) -> Result<(), Error> {
    key.save(store.root()).map_err(|source| Error::Io {
        what: "keeping the node key",
        source,
    })
}

async fn open_store(config: &PeerConfig, manifest: Manifest, me: &Me) -> Result<Arc<Holdings>, Error> {
    let (dir, policy) = (config.dir.clone(), config.chunk_files);
    let key = me.creds.key.clone();
    let (store, have) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        ChunkStore::check_destination(&dir, &manifest)?;
        let opened = ChunkStore::open(&dir, Arc::new(manifest), policy)?;
        save_key(&key, &opened.0)?;
        Ok(opened)
    })
    .await
    .map_err(|e| Error::Io {
        what: "opening the chunk store",
        source: std::io::Error::other(e),
    })??;
    Ok(Arc::new(Holdings::new(with_fsync(store, config), have)))
}

fn with_fsync(mut store: ChunkStore, config: &PeerConfig) -> ChunkStore {
    store.set_fsync(config.fsync);
    store
}

async fn next(conn: &mut Connection, state: &'static str) -> Result<Message, PeerError> {
    conn.read_message(BATCH_TIMEOUT, state)
        .await?
        .ok_or(PeerError::Closed(state))
}

fn unexpected(state: &'static str, got: &Message) -> Failure {
    Failure::Retry(PeerError::UnexpectedMessage {
        state,
        got: got.name(),
    })
}
