//! `swarmshare demo`: the seed's five-terminal walk-through in one command.
//!
//! Makes a random sample file, starts an owner and N peers in a closed ring
//! (peer k downloads from peer k+1, the last from peer 1) on free loopback ports, each
//! peer in its own directory under a temporary folder, all over real TCP in this process;
//! waits until every peer holds the verified file; stops them; and compares every copy
//! with the original byte for byte.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DemoConfig, DhtSetting, Endpoint, OwnerConfig, PeerConfig};
use crate::error::Error;
use crate::owner::Owner;
use crate::peer::{Peer, PeerReport, Progress};
use crate::upload;

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The demo folder (deleted unless kept).
    pub dir: PathBuf,
    /// Whether the folder was kept.
    pub kept: bool,
    /// The sample file's size.
    pub size: u64,
    /// Its chunk count.
    pub chunks: u32,
    /// Time from the owner serving (its chunk files written) to the last verified copy.
    pub elapsed: Duration,
    /// One report per peer, in ring order.
    pub peers: Vec<PeerReport>,
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.peers.len();
        writeln!(
            f,
            "\nswarmshare demo: {n} peers in a ring shared {} bytes ({} chunks); all {n} copies are byte-identical to the original",
            self.size, self.chunks
        )?;
        writeln!(f, "all peers complete in {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "  {:<7} {:>6} {:>11} {:>14} {:>9}",
            "peer", "port", "from owner", "from neighbor", "done at"
        )?;
        for (i, p) in self.peers.iter().enumerate() {
            writeln!(
                f,
                "  {:<7} {:>6} {:>11} {:>14} {:>7.2} s",
                format!("peer{}", i + 1),
                p.listen.port(),
                p.from_owner,
                p.from_neighbor,
                p.elapsed.as_secs_f64()
            )?;
        }
        let fate = if self.kept {
            "kept"
        } else {
            "removed; --keep keeps it"
        };
        write!(f, "demo folder: {} ({fate})", crate::text::Quoted(&self.dir))
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Runs the demo and checks its result.
pub async fn run(config: DemoConfig, bars: Option<crate::progress::Bars>) -> Result<DemoReport, Error> {
    let folder = tempfile::Builder::new()
        .prefix("swarmshare-demo-")
        .tempdir()
        .map_err(io_err("creating the demo folder"))?;
    let root = folder.path().to_owned();
    let sample = root.join("owner").join("sample.bin");
    let size = config.size;
    let path = sample.clone();
    tokio::task::spawn_blocking(move || write_sample(&path, size))
        .await
        .map_err(|e| io_err("writing the sample file")(io::Error::other(e)))?
        .map_err(io_err("writing the sample file"))?;

    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let owner_listener = upload::bind(loopback).await?;
    let owner_port = owner_listener.local_addr().map_err(io_err("binding"))?.port();
    let mut listeners = Vec::new();
    for _ in 0..config.peers {
        listeners.push(upload::bind(loopback).await?);
    }
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(io_err("binding"))?;

    // One machine: nobody to find through the DHT.
    let mut owner_config = OwnerConfig::new(loopback, sample.clone(), root.join("owner"), config.peers, 1)?;
    owner_config.dht = DhtSetting::Off;
    let owner = Owner::prepare(&owner_config).await?;
    let chunks = owner.manifest().layout().chunk_count();
    let token = CancellationToken::new();
    let started = Instant::now();
    let web = crate::web::bind(config.http).await?;
    if let Some(addr) = web.as_ref().and_then(|l| l.local_addr().ok()) {
        // On stderr, whatever the log filter: the one line a person needs to look.
        eprintln!("swarmshare demo: watch the swarm at http://{addr}/");
    }
    let sockets = crate::owner::OwnerSockets {
        listener: owner_listener,
        web,
    };
    let owner_task = tokio::spawn(owner.run(sockets, token.clone()));

    let mut progress = Vec::new();
    let mut bar_tasks = JoinSet::new();
    let mut peers = JoinSet::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let neighbor = Endpoint::local(ports[(i + 1) % ports.len()]);
        let dir = root.join(format!("peer{}", i + 1));
        let mut cfg = PeerConfig::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i])),
            Some(Endpoint::local(owner_port)),
            Some(neighbor),
            None,
            1,
            dir,
        )?;
        cfg.dht = DhtSetting::Off;
        let peer = Peer::with_listener(cfg, listener)?;
        progress.push(peer.progress());
        if let Some(bars) = bars.clone() {
            let (name, rx) = (format!("peer{}", i + 1), peer.progress());
            bar_tasks.spawn(async move { bars.track(name, rx).await });
        }
        let token = token.clone();
        peers.spawn(async move { (i, peer.run(token).await) });
    }

    let waited = tokio::time::timeout(config.timeout, wait_all(&mut progress)).await;
    let elapsed = started.elapsed();
    if matches!(waited, Ok(Some(_))) && !config.linger.is_zero() {
        eprintln!(
            "swarmshare demo: every peer is complete; serving for {:?} more (Ctrl-C stops)",
            config.linger
        );
        tokio::select! {
            () = tokio::time::sleep(config.linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    token.cancel();
    let mut failure = None;
    while let Some(joined) = peers.join_next().await {
        if let Ok((i, Err(e))) = joined {
            failure.get_or_insert(Error::Demo(format!("peer{} failed: {e}", i + 1)));
        }
    }
    let _ = owner_task.await;
    if let Some(e) = failure {
        return Err(e);
    }
    let reports = match waited {
        Ok(Some(reports)) => reports,
        Ok(None) => return Err(Error::Demo("a peer stopped before completing".to_owned())),
        Err(_) => {
            return Err(Error::Demo(format!(
                "not every peer completed within {:?}",
                config.timeout
            )))
        }
    };
    for (i, r) in reports.iter().enumerate() {
        let (a, b) = (sample.clone(), r.file.clone());
        let same = tokio::task::spawn_blocking(move || same_contents(&a, &b))
            .await
            .map_err(|e| io_err("comparing copies")(io::Error::other(e)))?
            .map_err(io_err("comparing copies"))?;
        if !same {
            return Err(Error::Demo(format!(
                "peer{}'s copy {} differs from the original",
                i + 1,
                crate::text::Quoted(&r.file)
            )));
        }
    }
    let kept = config.keep;
    let dir = if kept { folder.keep() } else { root };
    Ok(DemoReport {
        dir,
        kept,
        size,
        chunks,
        elapsed,
        peers: reports,
    })
}

async fn wait_all(progress: &mut [tokio::sync::watch::Receiver<Progress>]) -> Option<Vec<PeerReport>> {
    let mut reports = Vec::new();
    for rx in progress {
        let done = rx.wait_for(|p| matches!(p, Progress::Complete(_))).await.ok()?;
        if let Progress::Complete(report) = &*done {
            reports.push(report.clone());
        }
    }
    Some(reports)
}

fn write_sample(path: &Path, size: u64) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = BufWriter::new(File::create(path)?);
    let mut rng = SmallRng::from_os_rng();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// Streams both files and compares them byte for byte.
pub fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}
