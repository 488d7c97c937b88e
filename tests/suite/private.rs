//! Encryption and private swarms against the real binary: what crosses the wire, a byte
//! changed in transit, and intruders without the ticket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use swarmshare::blocking::{Mode, SecureStream};
use swarmshare::ticket::Ticket;

use super::protocol::{hello, Msg, ROLE_FETCH};
use super::swarm::{events_of, Swarm};
use super::util::{same_file, wait_until, Proc};

const LIMIT: Duration = Duration::from_secs(10);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The ticket the owner printed on stderr.
pub(super) fn ticket_of(owner: &Proc) -> String {
    let mut ticket = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            ticket = owner
                .errors()
                .lines()
                .find_map(|l| l.strip_prefix("ticket: ").map(str::to_owned));
            ticket.is_some()
        }),
        "the owner printed no ticket: {}",
        owner.errors()
    );
    ticket.unwrap_or_default()
}

/// The ticket with one bit of its secret flipped (hex digits 71.. are the secret's).
fn flipped(ticket: &str) -> String {
    let mut chars: Vec<char> = ticket.chars().collect();
    let c = chars[80].to_digit(16).unwrap() ^ 1;
    chars[80] = char::from_digit(c, 16).unwrap();
    chars.into_iter().collect()
}

/// The ticket for another swarm with the same secret (hex digits 7..71 are the swarm ID).
fn other_swarm(ticket: &str) -> String {
    let mut chars: Vec<char> = ticket.chars().collect();
    let c = chars[20].to_digit(16).unwrap() ^ 8;
    chars[20] = char::from_digit(c, 16).unwrap();
    chars.into_iter().collect()
}

/// What a scripted intruder got: the handshake failed or, had it not, what a LIST request
/// brought back.
fn intrude(target: u16, mode: &Mode) -> (SocketAddr, usize) {
    let s = TcpStream::connect(local(target)).unwrap();
    let me = s.local_addr().unwrap();
    let Ok(mut s) = SecureStream::dial_over(s, mode, LIMIT) else {
        return (me, 0);
    };
    let mine = hello(ROLE_FETCH, 0, None, s.id());
    let _ = s.write_all(&mine);
    let _ = s.write_all(&Msg::ListRequest.frame());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (me, got.len())
}

/// A relay to `to` that records what the client sent and, with `flip_at`, flips the byte
/// at that offset of what the server sends back (once, on the first connection that
/// carries that many bytes).
fn relay(to: SocketAddr, flip_at: Option<usize>) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = Arc::clone(&sent);
    let flipped = Arc::new(std::sync::atomic::AtomicBool::new(flip_at.is_none()));
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            // The server may not listen yet: try for a while, as a client would.
            let t0 = Instant::now();
            let server = loop {
                match TcpStream::connect(to) {
                    Ok(s) => break Some(s),
                    Err(_) if t0.elapsed() < LIMIT => thread::sleep(Duration::from_millis(20)),
                    Err(_) => break None,
                }
            };
            let Some(server) = server else { continue };
            let flipped = Arc::clone(&flipped);
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let record = Arc::clone(&record);
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let mut mine = Vec::new();
                while let Ok(k) = c_read.read(&mut buf) {
                    if k == 0 || s_write.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    if mine.len() < 4096 {
                        mine.extend_from_slice(&buf[..k]);
                        record.lock().unwrap().push(mine.clone());
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let mut at = 0usize;
                while let Ok(k) = s_read.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    // One byte, once, on the first connection that carries that far.
                    if let Some(f) = flip_at.filter(|&f| f >= at && f < at + k) {
                        if !flipped.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            buf[f - at] ^= 0x01;
                        }
                    }
                    at += k;
                    if c_write.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, sent)
}

/// Whether `victim` logged `auth_failed` for a connection from `from`.
fn refused(victim: &Proc, from: SocketAddr) -> bool {
    wait_until(Duration::from_secs(10), || {
        events_of(victim)
            .iter()
            .any(|e| e["event"] == "auth_failed" && e["peer"] == from.to_string())
    })
}

/// Runs the binary as a peer with `args` and returns (exit code, stderr, seconds taken).
fn run_peer(swarm: &Swarm, name: &str, args: &[&str]) -> (Option<i32>, String, f64) {
    let dir = swarm.root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = vec!["peer"];
    all.extend_from_slice(args);
    all.extend(["--bind", "127.0.0.1", "--dir", dir.to_str().unwrap()]);
    let t0 = Instant::now();
    let mut p = Proc::start(&swarm.logs(), name, &all);
    let status = p
        .wait_for(Duration::from_secs(20))
        .expect("the intruding peer exits");
    let secs = t0.elapsed().as_secs_f64();
    let left = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(left, 0, "{name}: nothing written to its directory");
    (status.code(), p.errors(), secs)
}

#[test]
fn a_private_swarm_completes_and_gives_intruders_nothing() {
    let mut swarm = Swarm::new(3_000_000, 3, 151).pure_ring();
    swarm.owner_args = vec!["--private".to_owned()];
    swarm.start_owner(3);
    let text = ticket_of(swarm.owner.as_ref().unwrap());
    let ticket: Ticket = text.parse().unwrap();
    assert_eq!(ticket.addrs(), &[local(swarm.owner_port)]);
    let kept = std::fs::read_to_string(swarm.root.path().join("owner/.swarmshare/ticket")).unwrap();
    assert_eq!(kept.trim(), text, "the owner keeps its ticket");
    for i in 0..3 {
        let positional = [swarm.ports[i].to_string(), swarm.ring_neighbor(i).to_string()];
        swarm.start_peer_with(i, &positional, &["--ticket".to_owned(), text.clone()]);
    }
    swarm.wait_joined(0);

    let modes = [
        ("no ticket", Mode::Open),
        (
            "one bit of the secret flipped",
            Mode::from_ticket(&flipped(&text).parse().unwrap()),
        ),
        (
            "another swarm's ticket",
            Mode::from_ticket(&other_swarm(&text).parse().unwrap()),
        ),
    ];
    for target in [swarm.owner_port, swarm.ports[0]] {
        for (what, mode) in &modes {
            let (from, got) = intrude(target, mode);
            assert_eq!(got, 0, "{what} at :{target}: {got} bytes came back");
            let victim = if target == swarm.owner_port {
                swarm.owner.as_ref().unwrap()
            } else {
                swarm.peers[0].as_ref().unwrap()
            };
            assert!(
                refused(victim, from),
                "{what}: no auth_failed for {from} at :{target}"
            );
        }
    }

    // A real peer's handshake, recorded on its way to the owner and replayed: the owner
    // answers only the handshake's second message, which nobody but that peer can use.
    let (via, recorded) = relay(local(swarm.owner_port), None);
    let (_, got) = intrude(via, &Mode::from_ticket(&ticket));
    assert!(got > 0, "the honest client through the relay was answered");
    let replay = recorded.lock().unwrap().last().cloned().unwrap();
    let mut s = TcpStream::connect(local(swarm.owner_port)).unwrap();
    let from = s.local_addr().unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = s.write_all(&replay);
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    assert!(
        back.len() <= 2 + 96,
        "a replayed handshake got {} bytes back",
        back.len()
    );
    assert!(
        refused(swarm.owner.as_ref().unwrap(), from),
        "no auth_failed for the replay"
    );

    // Real peers without the ticket, with a wrong one: refused at once, nothing written.
    let owner = swarm.owner_port.to_string();
    let (code, err, secs) = run_peer(&swarm, "open-peer", &[&owner, "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("private swarm needs --ticket"), "{err}");
    assert!(secs < 5.0, "refused after {secs:.1} s");
    let wrong = flipped(&text);
    let (code, err, secs) = run_peer(&swarm, "wrong-ticket", &["--ticket", &wrong, "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("refused the ticket"), "{err}");
    assert!(secs < 5.0, "refused after {secs:.1} s");

    swarm.wait_all_complete(Duration::from_secs(90));
}

#[test]
fn a_byte_changed_in_transit_ends_the_connection_and_is_never_stored() {
    let mut swarm = Swarm::new(2_000_000, 2, 152);
    swarm.start_owner(2);
    // Peer 1 reaches the owner only through a relay that flips one byte well inside the
    // first chunk the owner sends it.
    let (via, _) = relay(local(swarm.owner_port), Some(60_000));
    let positional = [via.to_string(), swarm.ports[0].to_string()];
    swarm.start_peer_with(0, &positional, &[]);
    swarm.start_swarm_peer(1);
    swarm.wait_all_complete(Duration::from_secs(90));
    let events = events_of(swarm.peers[0].as_ref().unwrap());
    assert!(
        events.iter().any(|e| e["cause"]
            .as_str()
            .is_some_and(|c| c.contains("authentication tag"))),
        "the flipped byte failed its tag and ended a connection"
    );
    assert!(
        !events.iter().any(|e| e["event"] == "hash_failure"),
        "no changed byte reached the chunk check"
    );
    assert!(same_file(&swarm.file, &swarm.peer_file(0)));
}

#[test]
fn nothing_of_the_file_or_its_name_crosses_the_wire_in_clear() {
    let Some(tcpdump) = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        return super::netlab::unavailable("the clear-text capture", "there is no tcpdump");
    };
    let mut swarm = Swarm::new(0, 3, 153);
    // The file: a canary every 64 KiB, random bytes between.
    let canary = b"CANARY-7f3e9a-do-not-leak-CANARY";
    let mut data = vec![0u8; 4 << 20];
    super::util::random_file(&swarm.file, data.len(), 153);
    std::fs::File::open(&swarm.file)
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    for at in (0..data.len() - canary.len()).step_by(64 * 1024) {
        data[at..at + canary.len()].copy_from_slice(canary);
    }
    let file = swarm.root.path().join("owner").join("secret-plans-name.bin");
    std::fs::write(&file, &data).unwrap();
    swarm.file = file;
    let capture = swarm.root.path().join("wire.pcap");
    let ports: Vec<String> = std::iter::once(swarm.owner_port)
        .chain(swarm.ports.iter().copied())
        .map(|p| format!("port {p}"))
        .collect();
    let filter = format!("tcp and ({})", ports.join(" or "));
    let mut dump = std::process::Command::new(tcpdump)
        .args([
            "-i",
            "lo",
            "-U",
            "-s",
            "0",
            "-B",
            "65536",
            "-w",
            capture.to_str().unwrap(),
            &filter,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says it is listening before it captures.
    let mut err = dump.stderr.take().unwrap();
    let mut said = [0u8; 64];
    let _ = err.read(&mut said);
    thread::sleep(Duration::from_millis(300));
    swarm.start_owner(3);
    for i in 0..3 {
        swarm.start_swarm_peer(i);
    }
    let copy = |i: usize| swarm.peer_dir(i).join("secret-plans-name.bin");
    let done = wait_until(Duration::from_secs(90), || {
        (0..3).all(|i| same_file(&swarm.file, &copy(i)))
    });
    super::util::stop_capture(dump, &capture);
    let wire = std::fs::read(&capture).unwrap();
    assert!(
        wire.len() > 3 * data.len(),
        "the capture holds the swarm's traffic ({} bytes)",
        wire.len()
    );
    let found = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
    assert!(!found(canary), "the file's bytes crossed in clear");
    assert!(!found(b"secret-plans-name"), "the file's name crossed in clear");
    assert!(done, "every peer has a byte-identical copy");
}

#[test]
fn a_private_peer_killed_and_restarted_with_its_ticket_resumes() {
    let mut swarm = Swarm::new(3_000_000, 2, 154);
    swarm.owner_args = vec!["--private".to_owned()];
    swarm.start_owner(2);
    let text = ticket_of(swarm.owner.as_ref().unwrap());
    let with_ticket = ["--ticket".to_owned(), text.clone()];
    swarm.start_peer_with(0, &[swarm.ports[0].to_string()], &with_ticket);
    swarm.wait_joined(0);
    swarm.peer(0).kill9();
    // Back with the ticket in a file this time (out of the process list).
    let file = swarm.root.path().join("ticket.txt");
    std::fs::write(&file, format!("{text}\n")).unwrap();
    let from_file = ["--ticket-file".to_owned(), file.to_str().unwrap().to_owned()];
    swarm.start_peer_with(0, &[swarm.ports[0].to_string()], &from_file);
    swarm.start_peer_with(1, &[swarm.ports[1].to_string()], &with_ticket);
    swarm.wait_all_complete(Duration::from_secs(90));
    let resumed = events_of(swarm.peers[0].as_ref().unwrap())
        .iter()
        .any(|e| e["event"] == "peer_start" && e["resumed"] == true);
    assert!(resumed, "the restarted peer resumed from its directory");
    // A file that holds no ticket: one line naming it, exit 2, nothing written.
    std::fs::write(&file, "swsh1 not a ticket").unwrap();
    let (code, err, _) = run_peer(
        &swarm,
        "bad-ticket-file",
        &["--ticket-file", file.to_str().unwrap(), "0"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("--ticket-file") && err.contains("ticket.txt"),
        "{err}"
    );
}

/// A scripted neighbor that lists nothing and answers every PEERS request with one entry:
/// `victim_id` at `trap`, its own second port. Returns its port.
fn gossiping_neighbor(
    swarm_id: swarmshare::manifest::SwarmId,
    chunks: u32,
    victim_id: [u8; 16],
    trap: u16,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || -> std::io::Result<()> {
                let mut s = SecureStream::accept(stream, &Mode::Open, LIMIT)?;
                s.socket().set_read_timeout(None)?;
                s.read_exact(&mut [0u8; super::protocol::HELLO_LEN])?;
                let mine = hello(super::protocol::ROLE_PEER, port, Some(swarm_id), s.id());
                s.write_all(&mine)?;
                loop {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len)?;
                    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                    s.read_exact(&mut payload)?;
                    let answer = match payload.first() {
                        Some(8) => {
                            let mut body = vec![9u8, 0, 1];
                            body.extend_from_slice(&victim_id);
                            body.extend([4, 127, 0, 0, 1]);
                            body.extend(trap.to_be_bytes());
                            let mut f = (body.len() as u32).to_be_bytes().to_vec();
                            f.extend(body);
                            f
                        }
                        Some(3) | Some(10) => {
                            thread::sleep(Duration::from_millis(200));
                            Msg::List {
                                count: chunks,
                                bits: vec![0; (chunks as usize).div_ceil(8)],
                            }
                            .frame()
                        }
                        _ => continue,
                    };
                    s.write_all(&answer)?;
                }
            });
        }
    });
    port
}

#[test]
fn gossip_that_points_a_known_id_elsewhere_gets_no_request_there() {
    let mut swarm = Swarm::new(3_000_000, 2, 155);
    let manifest = swarmshare::manifest::hash_file(&swarm.file, "payload.bin").unwrap();
    swarm.start_owner(2);
    // Peer 2 (the honest one the lie is about) first, so that its ID is known.
    swarm.start_swarm_peer(1);
    swarm.wait_joined(1);
    let honest = events_of(swarm.peers[1].as_ref().unwrap())
        .iter()
        .find(|e| e["event"] == "peer_start")
        .and_then(|e| e["id"].as_str().map(str::to_owned))
        .unwrap();
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&honest[2 * i..2 * i + 2], 16).unwrap();
    }
    // The trap: answers under the honest peer's ID in its hello (its key proves another)
    // and counts the chunk requests that reach it.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new((0u32, 0u32)));
    let counted = Arc::clone(&requests);
    let swarm_id = manifest.swarm_id();
    thread::spawn(move || {
        for stream in trap.incoming().flatten() {
            let counted = Arc::clone(&counted);
            thread::spawn(move || -> std::io::Result<()> {
                counted.lock().unwrap().0 += 1;
                let mut s = SecureStream::accept(stream, &Mode::Open, LIMIT)?;
                s.read_exact(&mut [0u8; super::protocol::HELLO_LEN])?;
                s.write_all(&hello(super::protocol::ROLE_PEER, trap_port, Some(swarm_id), id))?;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    // Anything after the hellos: the victim took the trap for the peer.
                    counted.lock().unwrap().1 += n as u32;
                }
                Ok(())
            });
        }
    });
    let liar = gossiping_neighbor(swarm_id, manifest.layout().chunk_count(), id, trap_port);
    // Peer 1 has the liar as its download neighbor; its other slots have room for the lie.
    let positional = [
        swarm.owner_port.to_string(),
        swarm.ports[0].to_string(),
        liar.to_string(),
    ];
    swarm.start_peer_with(0, &positional, &[]);
    swarm.wait_all_complete(Duration::from_secs(90));
    let (dialled, asked) = *requests.lock().unwrap();
    println!("the trap was dialled {dialled} times");
    assert_eq!(
        asked, 0,
        "the victim sent {asked} bytes past the hellos to the address gossip gave a known ID"
    );
}
