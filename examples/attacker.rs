//! Hostile nodes for the scenario tests and `bench/wild.sh`, written from PROTOCOL.md (it
//! uses nothing of the library): they speak just enough of the protocol to be taken for
//! peers.
//!
//! * `idle OWNER --targets PORT,... --identities 30 --bind 127.0.0.2`: identities at one
//!   address, each listening and answering hellos, then silent; each connects to every
//!   target (the owner included) with a correct hello announcing its port, and stays
//!   silent, reconnecting when dropped.
//! * `poison OWNER --bind 127.0.0.3`: a peer that holds nothing, announces itself to the
//!   owner so that it is gossiped, and answers every `PEERS` with 64 fresh lies: addresses
//!   where connections hang (a listener that never accepts), the victims' own addresses
//!   under random IDs, and random ports.
//! * `join-flood OWNER --bind 127.0.0.2,127.0.0.3 --joins 100 [--request]`: JOIN after JOIN
//!   from each address, every one under a fresh ID announcing a port where nobody listens,
//!   reading whatever the owner sends; with `--request`, each also asks for every chunk.
//!   When done it prints one JSON line: JOINs made, bytes sent and received, seconds, and
//!   the amplification (bytes received per byte sent).
//!
//! Runs until killed (or `--for SECS`; a flood until it is done). Prints one line when it is
//! in place.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::Rng;
use swarmshare::blocking::{Identity, Mode as Access, SecureStream, DIALER_HANDSHAKE_BYTES};

const VERSION: u8 = 7;
/// How long a handshake may take.
const LIMIT: Duration = Duration::from_secs(10);
const ROLE_JOIN: u8 = 1;
const ROLE_FETCH: u8 = 2;
const ROLE_PEER: u8 = 4;
const MSG_LIST_REQUEST: u8 = 3;
const MSG_LIST: u8 = 4;
const MSG_REQUEST: u8 = 5;
const MSG_NOT_HAVE: u8 = 7;
const MSG_PEERS_REQUEST: u8 = 8;
const MSG_PEERS: u8 = 9;
const MSG_LIST_WAIT: u8 = 10;

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long = "for", global = true)]
    run_for: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Idle identities at one address.
    Idle {
        /// The owner's port on 127.0.0.1.
        owner: u16,
        /// Ports on 127.0.0.1 to hold connections to (the owner is always one).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<u16>,
        /// How many identities.
        #[arg(long, default_value_t = 30)]
        identities: usize,
        /// The address they live at.
        #[arg(long, default_value = "127.0.0.2")]
        bind: Ipv4Addr,
    },
    /// A peer whose peer lists are lies.
    Poison {
        /// The owner's port on 127.0.0.1.
        owner: u16,
        /// The address it lives at.
        #[arg(long, default_value = "127.0.0.3")]
        bind: Ipv4Addr,
    },
    /// JOINs under fresh IDs, as many as it takes.
    JoinFlood {
        /// The owner's port on 127.0.0.1.
        owner: u16,
        /// The addresses to JOIN from.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.2")]
        bind: Vec<Ipv4Addr>,
        /// JOINs from each address.
        #[arg(long, default_value_t = 100)]
        joins: usize,
        /// JOINs in progress at once from each address.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// After the batch, ask for every chunk.
        #[arg(long)]
        request: bool,
    },
}

/// What a flood cost and brought.
#[derive(Default)]
struct Tally {
    joins: u64,
    sent: u64,
    received: u64,
}

/// Reads until the owner closes or is quiet for `quiet`; the bytes read.
fn drain(s: &mut SecureStream, quiet: Duration) -> u64 {
    let _ = s.socket().set_read_timeout(Some(quiet));
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}

/// One JOIN under a fresh ID from `bind`: what it sent and received.
fn one_join(owner: SocketAddr, bind: Ipv4Addr, swarm: &[u8; 32], chunks: u32, request: bool) -> (u64, u64) {
    let Ok(mut s) = connect_from(bind, owner).and_then(|s| SecureStream::dial_over(s, &Access::Open, LIMIT))
    else {
        return (0, 0);
    };
    // A port where nobody listens, most likely: the owner's dial-back finds no one.
    let port = rand::rng().random_range(40_000..60_000);
    let join = hello(ROLE_JOIN, port, swarm, &s.id());
    if s.write_all(&join).is_err() {
        return (0, 0);
    }
    let mut sent = DIALER_HANDSHAKE_BYTES + join.len() as u64;
    let mut received = drain(&mut s, Duration::from_millis(300));
    if request {
        let mut asks = Vec::new();
        for id in 0..chunks {
            asks.extend_from_slice(&frame(MSG_REQUEST, &id.to_be_bytes()));
        }
        if s.write_all(&asks).is_ok() {
            sent += asks.len() as u64;
        }
        received += drain(&mut s, Duration::from_millis(1000));
    }
    (sent, received)
}

fn join_flood(
    owner: u16,
    binds: &[Ipv4Addr],
    joins: usize,
    workers: usize,
    request: bool,
) -> std::io::Result<()> {
    let owner = SocketAddr::from(([127, 0, 0, 1], owner));
    let (swarm, chunks) = learn_swarm(owner)?;
    println!(
        "attacker: flooding {owner} with JOINs from {} address(es)",
        binds.len()
    );
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut threads = Vec::new();
    for &bind in binds {
        let left = Arc::new(Mutex::new(joins));
        for _ in 0..workers.max(1) {
            let (left, tally) = (Arc::clone(&left), Arc::clone(&tally));
            threads.push(thread::spawn(move || loop {
                {
                    let mut n = left.lock().unwrap_or_else(|e| e.into_inner());
                    if *n == 0 {
                        return;
                    }
                    *n -= 1;
                }
                let (sent, received) = one_join(owner, bind, &swarm, chunks, request);
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.joins += 1;
                t.sent += sent;
                t.received += received;
            }));
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "{{\"joins\":{},\"sent\":{},\"received\":{},\"secs\":{:.3},\"amplification\":{:.2}}}",
        t.joins,
        t.sent,
        t.received,
        started.elapsed().as_secs_f64(),
        t.received as f64 / t.sent.max(1) as f64
    );
    Ok(())
}

fn hello(role: u8, port: u16, swarm: &[u8; 32], id: &[u8; 16]) -> [u8; 56] {
    let mut h = [0u8; 56];
    h[..4].copy_from_slice(b"SWSH");
    h[4] = VERSION;
    h[5] = role;
    h[6..8].copy_from_slice(&port.to_be_bytes());
    h[8..40].copy_from_slice(swarm);
    h[40..].copy_from_slice(id);
    h
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(body);
    f
}

fn read_frame(s: &mut SecureStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > 64 {
        return Err(std::io::Error::other("unexpected frame"));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok(payload)
}

/// The swarm ID and chunk count, from a JOIN to the owner: its hello names the swarm and
/// the manifest (offset 20 of its body) the chunk count.
fn learn_swarm(owner: SocketAddr) -> std::io::Result<([u8; 32], u32)> {
    let mut s = SecureStream::connect(owner, &Access::Open, Duration::from_secs(10))?;
    let join = hello(ROLE_JOIN, 0, &[0; 32], &s.id());
    s.write_all(&join)?;
    let mut theirs = [0u8; 56];
    s.read_exact(&mut theirs)?;
    let mut swarm = [0u8; 32];
    swarm.copy_from_slice(&theirs[8..40]);
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut head = [0u8; 25];
    s.read_exact(&mut head)?;
    let chunks = u32::from_be_bytes([head[21], head[22], head[23], head[24]]);
    Ok((swarm, chunks))
}

/// Connects from `bind` (port chosen by the kernel) to `to`.
fn connect_from(bind: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2_like_bind(bind)?;
    socket.connect(&to.into())?;
    Ok(socket.into())
}

fn socket2_like_bind(bind: Ipv4Addr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(bind), 0).into())?;
    Ok(socket)
}

/// Answers every connection with a peer's hello, then says nothing.
fn silent_listener(listener: TcpListener, swarm: [u8; 32], who: Identity) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    for stream in listener.incoming().flatten() {
        let who = who.clone();
        thread::spawn(move || {
            let Ok(mut s) = SecureStream::accept_as(stream, &who, &Access::Open, LIMIT) else {
                return;
            };
            let _ = s.socket().set_read_timeout(None);
            let _ = s.write_all(&hello(ROLE_PEER, port, &swarm, &who.id()));
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
}

fn idle(owner: u16, targets: &[u16], identities: usize, bind: Ipv4Addr) -> std::io::Result<()> {
    let owner_addr = SocketAddr::from(([127, 0, 0, 1], owner));
    let (swarm, _) = learn_swarm(owner_addr)?;
    let mut all: Vec<u16> = targets.to_vec();
    if !all.contains(&owner) {
        all.push(owner);
    }
    for _ in 0..identities {
        let who = Identity::generate();
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(bind), 0))?;
        let port = listener.local_addr()?.port();
        let listening = who.clone();
        thread::spawn(move || silent_listener(listener, swarm, listening));
        for &target in &all {
            let to = SocketAddr::from(([127, 0, 0, 1], target));
            let who = who.clone();
            thread::spawn(move || loop {
                // A correct hello, then silence; again as soon as the target drops it.
                let dialed =
                    connect_from(bind, to).and_then(|s| SecureStream::dial_as(s, &who, &Access::Open, LIMIT));
                if let Ok(mut s) = dialed {
                    let _ = s.socket().set_read_timeout(None);
                    let _ = s.write_all(&hello(ROLE_FETCH, port, &swarm, &who.id()));
                    let mut sink = [0u8; 4096];
                    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                }
                thread::sleep(Duration::from_millis(200));
            });
        }
    }
    println!(
        "attacker: {identities} idle identities at {bind} holding {} targets",
        all.len()
    );
    Ok(())
}

/// A listener whose backlog is full and that never accepts: connections to it hang.
fn black_hole(bind: Ipv4Addr) -> std::io::Result<(SocketAddr, Vec<TcpStream>)> {
    let socket = socket2_like_bind(bind)?;
    socket.listen(0)?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    // Fill the queue so that further handshakes are not completed.
    let held: Vec<TcpStream> = (0..4)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    std::mem::forget(socket);
    Ok((addr, held))
}

fn lies(victims: &[SocketAddr], holes: &[SocketAddr], bind: Ipv4Addr) -> Vec<u8> {
    let mut rng = rand::rng();
    let mut body = 64u16.to_be_bytes().to_vec();
    for i in 0..64 {
        let addr = match i % 3 {
            0 if !holes.is_empty() => holes[rng.random_range(0..holes.len())],
            1 if !victims.is_empty() => victims[rng.random_range(0..victims.len())],
            _ => SocketAddr::new(IpAddr::V4(bind), rng.random_range(20_000..60_000)),
        };
        body.extend_from_slice(&rand::random::<[u8; 16]>());
        let IpAddr::V4(ip) = addr.ip() else { continue };
        body.push(4);
        body.extend_from_slice(&ip.octets());
        body.extend_from_slice(&addr.port().to_be_bytes());
    }
    body
}

fn poison(owner: u16, bind: Ipv4Addr) -> std::io::Result<()> {
    let owner_addr = SocketAddr::from(([127, 0, 0, 1], owner));
    let (swarm, chunks) = learn_swarm(owner_addr)?;
    let who = Identity::generate();
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(bind), 0))?;
    let port = listener.local_addr()?.port();
    let mut holes = Vec::new();
    for _ in 0..4 {
        let (addr, held) = black_hole(bind)?;
        std::mem::forget(held);
        holes.push(addr);
    }
    let victims: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    // Announce itself to the owner (so it is gossiped), and learn the victims from it.
    {
        let victims = Arc::clone(&victims);
        let who = who.clone();
        thread::spawn(move || loop {
            let dialed = connect_from(bind, owner_addr)
                .and_then(|s| SecureStream::dial_as(s, &who, &Access::Open, LIMIT));
            if let Ok(mut s) = dialed {
                let _ = s.write_all(&hello(ROLE_FETCH, port, &swarm, &who.id()));
                let mut theirs = [0u8; 56];
                let _ = s.read_exact(&mut theirs);
                while s.write_all(&frame(MSG_PEERS_REQUEST, &[])).is_ok() {
                    let Ok(answer) = read_any(&mut s) else { break };
                    let found = parse_peers(&answer);
                    if let Ok(mut v) = victims.lock() {
                        *v = found;
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            }
            thread::sleep(Duration::from_millis(500));
        });
    }
    let empty = {
        let mut b = chunks.to_be_bytes().to_vec();
        b.extend(std::iter::repeat_n(0u8, (chunks as usize).div_ceil(8)));
        frame(MSG_LIST, &b)
    };
    println!("attacker: poisoning peer lists from {bind}:{port}");
    thread::spawn(move || serve_lies(listener, swarm, who, victims, holes, empty));
    Ok(())
}

fn serve_lies(
    listener: TcpListener,
    swarm: [u8; 32],
    who: Identity,
    victims: Arc<Mutex<Vec<SocketAddr>>>,
    holes: Vec<SocketAddr>,
    empty: Vec<u8>,
) {
    let bind = match listener.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let (port, IpAddr::V4(bind)) = (bind.port(), bind.ip()) else {
        return;
    };
    for stream in listener.incoming().flatten() {
        let (victims, holes, empty) = (Arc::clone(&victims), holes.clone(), empty.clone());
        let who = who.clone();
        thread::spawn(move || {
            let Ok(mut s) = SecureStream::accept_as(stream, &who, &Access::Open, LIMIT) else {
                return;
            };
            let _ = s.socket().set_read_timeout(None);
            if s.write_all(&hello(ROLE_PEER, port, &swarm, &who.id())).is_err() {
                return;
            }
            let mut theirs = [0u8; 56];
            if s.read_exact(&mut theirs).is_err() {
                return;
            }
            while let Ok(req) = read_frame(&mut s) {
                let answer = match req.first().copied() {
                    Some(MSG_LIST_REQUEST) => empty.clone(),
                    Some(MSG_LIST_WAIT) => {
                        thread::sleep(Duration::from_millis(900));
                        empty.clone()
                    }
                    Some(MSG_REQUEST) if req.len() == 5 => frame(MSG_NOT_HAVE, &req[1..5]),
                    Some(MSG_PEERS_REQUEST) => {
                        let v = victims.lock().map(|v| v.clone()).unwrap_or_default();
                        frame(MSG_PEERS, &lies(&v, &holes, bind))
                    }
                    _ => return,
                };
                if s.write_all(&answer).is_err() {
                    return;
                }
            }
        });
    }
}

fn read_any(s: &mut SecureStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > 1 << 16 {
        return Err(std::io::Error::other("unexpected frame"));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok(payload)
}

fn parse_peers(payload: &[u8]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    if payload.first() != Some(&MSG_PEERS) || payload.len() < 3 {
        return out;
    }
    let mut at = 3;
    while at + 16 + 1 + 4 + 2 <= payload.len() && payload[at + 16] == 4 {
        let ip = Ipv4Addr::new(
            payload[at + 17],
            payload[at + 18],
            payload[at + 19],
            payload[at + 20],
        );
        let port = u16::from_be_bytes([payload[at + 21], payload[at + 22]]);
        out.push(SocketAddr::new(IpAddr::V4(ip), port));
        at += 23;
    }
    out
}

fn exit(done: std::io::Result<()>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attacker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = match &args.mode {
        Mode::Idle {
            owner,
            targets,
            identities,
            bind,
        } => idle(*owner, targets, *identities, *bind),
        Mode::Poison { owner, bind } => poison(*owner, *bind),
        Mode::JoinFlood {
            owner,
            bind,
            joins,
            workers,
            request,
        } => return exit(join_flood(*owner, bind, *joins, *workers, *request)),
    };
    if let Err(e) = started {
        eprintln!("attacker: {e}");
        return ExitCode::FAILURE;
    }
    let until = args.run_for.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        thread::sleep(Duration::from_millis(200));
        if until.is_some_and(|u| Instant::now() >= u) {
            return ExitCode::SUCCESS;
        }
    }
}
