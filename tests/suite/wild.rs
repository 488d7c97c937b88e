//! Swarms with peers that are idle, lying or slow (issue 13), against the release-built
//! binary and `examples/attacker.rs`: they must complete, the owner must not pay for it,
//! and the honest peers must still trade with each other. What is asserted is behaviour
//! (completion, who sent what, the owner's bytes); the speed figures are in
//! `bench/wild.sh` and BENCHMARKS.md.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netlab::{node_ip, unavailable, Net, NsProc};
use super::swarm::{complete_event, events_of, Swarm};
use super::util::{random_file, wait_until, Proc};

/// `examples/attacker`, which `cargo test` builds next to the test binary.
pub(super) fn attacker(args: &[String]) -> Attacker {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile.join("examples").join("attacker");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples",
        path.display()
    );
    let child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Attacker(child)
}

/// The attacker process; killed by its PID when dropped.
pub(super) struct Attacker(Child);

impl Attacker {
    /// Waits for it to exit on its own (within `limit`) and returns the last line it
    /// printed.
    pub(super) fn last_line(mut self, limit: Duration) -> String {
        use std::io::Read;
        let mut out = String::new();
        let mut stdout = self.0.stdout.take().unwrap();
        let deadline = Instant::now() + limit;
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the attacker did not finish in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stdout.read_to_string(&mut out).unwrap();
        out.lines().last().unwrap_or_default().to_owned()
    }

    /// Waits for its line saying it is in place.
    fn ready(&mut self) {
        use std::io::BufRead;
        let out = self.0.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert!(line.starts_with("attacker:"), "attacker did not start: {line:?}");
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Payload bytes the owner sent, from its `chunk_sent` events.
fn owner_bytes(owner: &Proc) -> u64 {
    events_of(owner)
        .iter()
        .filter(|e| e["event"] == "chunk_sent")
        .filter_map(|e| e["bytes"].as_u64())
        .sum()
}

const SIZE: usize = 12_000_000;
const PEERS: usize = 5;

/// An owner and five capped peers in swarm mode, with `--exit-when-done`.
fn capped_swarm(seed: u64) -> Swarm {
    let mut swarm = Swarm::new(SIZE, PEERS, seed);
    let cap = ["--upload-limit".to_owned(), "10MB".to_owned()];
    swarm.owner_args = cap.to_vec();
    swarm.peer_args = [&cap[..], &["--exit-when-done".to_owned()]].concat();
    swarm.start_owner(PEERS);
    assert!(
        wait_until(Duration::from_secs(20), || events_of(
            swarm.owner.as_ref().unwrap()
        )
        .iter()
        .any(|e| e["event"] == "owner_start")),
        "the owner did not start"
    );
    swarm
}

/// Every peer completed, traded with the others, and the owner sent little beyond F.
fn assert_honest_swarm_held(swarm: &mut Swarm, what: &str) {
    swarm.wait_all_complete(Duration::from_secs(90));
    let sent = owner_bytes(swarm.owner.as_ref().unwrap());
    let unproven: Vec<String> = events_of(swarm.owner.as_ref().unwrap())
        .iter()
        .filter(|e| e["event"] == "unproven" || e["event"] == "owner_batch")
        .map(|e| format!("{} {} {}", e["event"], e["peer"], e["chunks"]))
        .collect();
    println!("{what}: the owner sent {:.2} F", sent as f64 / SIZE as f64);
    assert!(
        sent as f64 <= 1.2 * SIZE as f64,
        "{what}: the owner sent {sent} bytes for a {SIZE}-byte file; {unproven:#?}"
    );
    for i in 0..PEERS {
        let done = complete_event(swarm.peer(i));
        let from_neighbor = done["from_neighbor"].as_u64().unwrap_or(0);
        assert!(
            from_neighbor * 2 > done["from_owner"].as_u64().unwrap_or(0),
            "{what}: peer{} got most chunks from the owner: {done}",
            i + 1
        );
    }
    // --exit-when-done: each leaves once nobody needs it, whatever still holds sockets.
    for i in 0..PEERS {
        let status = swarm.peer(i).wait_for(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "{what}: peer{} did not exit 0 after completing: {status:?}",
            i + 1
        );
    }
}

#[test]
fn idle_identities_at_one_address_do_not_hold_the_swarm() {
    let mut swarm = capped_swarm(131);
    let mut args = vec![
        "idle".to_owned(),
        swarm.owner_port.to_string(),
        "--identities".to_owned(),
        "30".to_owned(),
        "--targets".to_owned(),
    ];
    args.push(
        swarm
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut idle = attacker(&args);
    idle.ready();
    for i in 0..PEERS {
        swarm.start_swarm_peer(i);
    }
    assert_honest_swarm_held(&mut swarm, "idle identities");
    // They were met and dropped, not trusted: a peer dialled some of them.
    let met = (0..PEERS)
        .flat_map(|i| events_of(swarm.peer(i)))
        .filter(|e| {
            e["message"] == "connected" && e["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.2:"))
        })
        .count();
    println!("honest peers connected to idle identities {met} times");
}

#[test]
fn lies_in_peer_lists_do_not_slow_the_swarm() {
    let mut swarm = capped_swarm(132);
    let mut liar = attacker(&["poison".to_owned(), swarm.owner_port.to_string()]);
    liar.ready();
    // Give the owner time to list the liar before the peers ask it for peers.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..PEERS {
        swarm.start_swarm_peer(i);
    }
    assert_honest_swarm_held(&mut swarm, "poisoned peer lists");
    let asked = (0..PEERS)
        .flat_map(|i| events_of(swarm.peer(i)))
        .filter(|e| {
            e["message"] == "connected" && e["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.3:"))
        })
        .count();
    assert!(asked > 0, "no honest peer met the liar: the test proves nothing");
}

/// Five peers, each on its own host; peer 5's upload is 200 kbit/s. Its batch (a fifth of
/// the file) would take it 80 s to send once, so the others must get those chunks from the
/// owner or each other, in ring mode (peer 4 downloads from the slow one) and in swarm mode.
#[test]
fn a_slow_peer_holds_up_nobody() {
    const CHUNKS: usize = 98; // 10,000,000 bytes
    let mut rates = vec![None; PEERS + 1];
    rates[PEERS] = Some("200kbit");
    let net = match Net::create("slow", &rates) {
        Ok(net) => net,
        Err(reason) => return unavailable("a_slow_peer_holds_up_nobody", &reason),
    };
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("payload.bin");
    random_file(&file, 10_000_000, 133);
    for ring in [true, false] {
        let mode = if ring { "ring" } else { "swarm" };
        let logs = root.path().join(mode);
        std::fs::create_dir(&logs).unwrap();
        let owner_dir = logs.join("owner");
        std::fs::create_dir(&owner_dir).unwrap();
        let owner_args = [
            "--log-format",
            "json",
            "owner",
            "7000",
            file.to_str().unwrap(),
            "--peers",
            "5",
            "--bind",
            "0.0.0.0",
            "--dir",
            owner_dir.to_str().unwrap(),
        ];
        let owner = NsProc::start(&logs, "owner", &net.nodes[0], &owner_args);
        assert!(
            wait_until(Duration::from_secs(20), || owner
                .events()
                .iter()
                .any(|e| e["event"] == "owner_start")),
            "the owner did not start"
        );
        let started = Instant::now();
        let owner_at = format!("{}:7000", node_ip(0));
        let mut peers = Vec::new();
        for k in 1..=PEERS {
            let dir = logs.join(format!("peer{k}"));
            let mut args = vec![
                "--log-format".to_owned(),
                "json".to_owned(),
                "peer".to_owned(),
                owner_at.clone(),
                "7000".to_owned(),
            ];
            if ring {
                args.push(format!("{}:7000", node_ip(k % PEERS + 1)));
            }
            args.extend(["--bind", "0.0.0.0", "--dir", dir.to_str().unwrap()].map(String::from));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            peers.push(NsProc::start(&logs, &format!("peer{k}"), &net.nodes[k], &args));
        }
        let fast = &peers[..PEERS - 1];
        let done = |p: &NsProc| p.events().iter().any(|e| e["event"] == "complete");
        // Far less than the 80 s the slow peer needs to send its batch once.
        let all = wait_until(Duration::from_secs(40), || fast.iter().all(done));
        assert!(all, "{mode}: the fast peers did not complete within 40 s");
        let took = started.elapsed();
        let slow_ip = node_ip(PEERS);
        for p in fast {
            let events = p.events();
            let from_slow = events
                .iter()
                .filter(|e| e["event"] == "chunk_received")
                .filter(|e| {
                    e["peer"]
                        .as_str()
                        .is_some_and(|a| a.starts_with(&format!("{slow_ip}:")))
                })
                .count();
            assert!(
                from_slow <= 2,
                "{mode}: {} waited for {from_slow} chunks from the slow peer",
                p.name
            );
            let complete: Vec<&Value> = events.iter().filter(|e| e["event"] == "complete").collect();
            assert_eq!(complete.len(), 1);
        }
        println!("{mode}: the fast peers completed in {took:.2?} ({CHUNKS} chunks)");
        drop(peers);
        drop(owner);
    }
}
