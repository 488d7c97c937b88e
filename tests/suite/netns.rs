//! Nodes on separate (virtual) hosts: a "switch" network namespace holding a bridge, and
//! one namespace per node (the owner and three peers in swarm mode) joined to it by a
//! veth pair, each node's outgoing link capped with `tbf` so that a transfer lasts long
//! enough to disturb it. One peer changes its address mid-transfer while the owner leaves,
//! so the others must reach it at its new address; one peer's link is cut for 20 s and
//! restored. Every copy must end byte-identical.
//!
//! Needs root (`ip netns`); without it each test prints `SKIPPED` and passes. Namespaces
//! are named after this process's PID and a per-test tag, and a drop guard deletes the
//! ones the test made (and nothing else), even when the test panics. The host's own
//! interfaces are never touched: the bridge and every veth live inside the namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netlab::{must, node_ip, unavailable, Net, NsProc};
use super::util::{count_of, random_file, same_file, wait_until};

/// Chunk size for files of this size (see `manifest::layout::CHUNK_SIZE`).
const CHUNK: usize = 102_400;
/// 480 chunks (47 MiB): at 80 Mbit/s the owner's three batches take about 5 s, and the
/// peers, capped lower, are still trading long after, so there is time to disturb a peer
/// mid-transfer while the others still need its chunks.
const CHUNKS: usize = 480;
/// The owner's outgoing rate.
const OWNER_RATE: &str = "80mbit";
/// Each peer's outgoing rate: slower than the owner's, so the peers cannot forward the
/// batches as fast as they arrive.
const RATE: &str = "16mbit";
const OWNER_PORT: u16 = 7000;
/// Peers, numbered 1..=PEERS; node 0 is the owner.
const PEERS: usize = 3;

/// The distinct chunk IDs in `events`' `chunk_received` events.
fn chunks_in(events: &[Value]) -> BTreeSet<u64> {
    events
        .iter()
        .filter(|e| e["event"] == "chunk_received")
        .filter_map(|e| e["chunk"].as_u64())
        .collect()
}

/// Per event (or, for lines without one, per message), how many log lines name an address
/// at `ip` (in `peer`, `addr`, `target` or `remote`).
fn lines_naming(events: &[Value], ip: &str) -> BTreeMap<String, usize> {
    let prefix = format!("{ip}:");
    let mut counts = BTreeMap::new();
    for e in events {
        let names = ["peer", "addr", "target", "remote"]
            .iter()
            .any(|f| e[f].as_str().is_some_and(|a| a.starts_with(&prefix)));
        if names {
            let key = e["event"].as_str().or(e["message"].as_str()).unwrap_or("?");
            *counts.entry(key.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// An owner and three swarm-mode peers, each in its own namespace. Fields drop in order:
/// the processes, then their files, then the namespaces.
struct Lab {
    owner: Option<NsProc>,
    peers: Vec<NsProc>,
    root: tempfile::TempDir,
    file: PathBuf,
    started: Instant,
    net: Net,
}

impl Lab {
    /// The network, or `None` (after printing why) when this machine cannot make one.
    fn new(tag: &str, test: &str) -> Option<Lab> {
        let rates: Vec<Option<&str>> = (0..=PEERS)
            .map(|i| Some(if i == 0 { OWNER_RATE } else { RATE }))
            .collect();
        let net = match Net::create(tag, &rates) {
            Ok(net) => net,
            Err(reason) => {
                unavailable(test, &reason);
                return None;
            }
        };
        let root = tempfile::Builder::new()
            .prefix("swarmshare-netns-")
            .tempdir()
            .unwrap();
        let file = root.path().join("owner").join("payload.bin");
        Some(Lab {
            owner: None,
            peers: Vec::new(),
            root,
            file,
            started: Instant::now(),
            net,
        })
    }

    fn logs(&self) -> PathBuf {
        self.root.path().to_owned()
    }

    fn say(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Starts the owner, waits until it serves, then starts the peers.
    fn start(&mut self, seed: u64) {
        fs::create_dir(self.root.path().join("owner")).unwrap();
        random_file(&self.file, CHUNKS * CHUNK, seed);
        self.started = Instant::now();
        let dir = self.root.path().join("owner");
        let port = OWNER_PORT.to_string();
        let args = [
            "--log-format",
            "json",
            "owner",
            &port,
            self.file.to_str().unwrap(),
            "--peers",
            "3",
            "--bind",
            "0.0.0.0",
            "--dir",
            dir.to_str().unwrap(),
        ];
        self.owner = Some(NsProc::start(&self.logs(), "owner", &self.net.nodes[0], &args));
        let owner = self.owner.as_ref().unwrap();
        let serving = wait_until(Duration::from_secs(30), || {
            owner.events().iter().any(|e| e["event"] == "owner_start")
        });
        if !serving {
            self.fail("the owner did not start within 30 s");
        }
        self.say("owner serving at 10.77.0.1:7000");
        let owner_addr = format!("{}:{OWNER_PORT}", node_ip(0));
        for k in 1..=PEERS {
            let dir = self.peer_dir(k);
            let port = (OWNER_PORT + k as u16).to_string();
            let args = [
                "--log-format",
                "json",
                "peer",
                &owner_addr,
                &port,
                "--bind",
                "0.0.0.0",
                "--dir",
                dir.to_str().unwrap(),
            ];
            let proc = NsProc::start(&self.logs(), &format!("peer{k}"), &self.net.nodes[k], &args);
            self.peers.push(proc);
        }
    }

    fn peer(&self, k: usize) -> &NsProc {
        &self.peers[k - 1]
    }

    fn peer_dir(&self, k: usize) -> PathBuf {
        self.root.path().join(format!("peer{k}"))
    }

    fn peer_file(&self, k: usize) -> PathBuf {
        self.peer_dir(k).join("payload.bin")
    }

    fn complete(&self, k: usize) -> bool {
        self.peer_file(k).exists()
    }

    /// The distinct chunks peer `k` has logged as received.
    fn held(&self, k: usize) -> usize {
        chunks_in(&self.peer(k).events()).len()
    }

    /// Waits until peer `k` has started trading and received at least `n` chunks from
    /// neighbors, still short of the whole file; returns how many chunks it holds then.
    fn wait_mid_transfer(&self, k: usize, n: usize, limit: Duration) -> usize {
        let mut held = 0;
        let reached = wait_until(limit, || {
            let events = self.peer(k).events();
            let from_neighbors = events
                .iter()
                .filter(|e| e["event"] == "chunk_received" && e["source"] == "neighbor")
                .count();
            held = chunks_in(&events).len();
            from_neighbors >= n || held >= CHUNKS
        });
        if !reached {
            self.fail(&format!(
                "peer{k} did not get {n} chunks from neighbors within {limit:?}"
            ));
        }
        if held >= CHUNKS || self.complete(k) {
            self.fail(&format!(
                "peer{k} already held the whole file before it could be disturbed: the links are too fast"
            ));
        }
        held
    }

    /// Waits until every peer holds a verified copy, byte-identical to the original;
    /// returns when each one finished (since the start).
    fn wait_all_complete(&self, limit: Duration) -> Vec<Duration> {
        let mut done: Vec<Option<Duration>> = vec![None; PEERS];
        let all = wait_until(limit, || {
            for k in 1..=PEERS {
                if done[k - 1].is_none() && self.complete(k) {
                    done[k - 1] = Some(self.started.elapsed());
                    self.say(&format!("peer{k} has its file"));
                }
            }
            done.iter().all(Option::is_some)
        });
        if !all {
            let missing: Vec<String> = (1..=PEERS)
                .filter(|&k| done[k - 1].is_none())
                .map(|k| format!("peer{k} ({} of {CHUNKS} chunks)", self.held(k)))
                .collect();
            self.fail(&format!("not complete within {limit:?}: {}", missing.join(", ")));
        }
        for k in 1..=PEERS {
            if !same_file(&self.file, &self.peer_file(k)) {
                self.fail(&format!("peer{k}'s copy differs from the original"));
            }
            let completed = wait_until(Duration::from_secs(5), || {
                self.peer(k).events().iter().any(|e| e["event"] == "complete")
            });
            if !completed {
                self.fail(&format!("peer{k} has its file but never logged `complete`"));
            }
        }
        done.into_iter().map(Option::unwrap).collect()
    }

    /// Every node's events: the owner first, then peer 1..=PEERS.
    fn all_events(&self) -> Vec<(String, Vec<Value>)> {
        self.owner
            .iter()
            .chain(self.peers.iter())
            .map(|p| (p.name.clone(), p.events()))
            .collect()
    }

    /// No node ever blamed another for a bad chunk: every node here is honest.
    fn assert_no_hash_failures(&self) {
        for (name, events) in self.all_events() {
            let failures = count_of(&events, "hash_failure");
            if failures > 0 {
                self.fail(&format!(
                    "{name} logged {failures} hash failures against honest nodes"
                ));
            }
        }
    }

    /// Prints the links `name` lost and made in `events`: when, to whom, why.
    fn say_links(&self, name: &str, events: &[Value]) {
        let links = events
            .iter()
            .filter(|e| e["message"] == "connection lost" || e["message"] == "connected");
        for e in links {
            self.say(&format!(
                "{name} {} {}: {} {} {}",
                e["timestamp"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?"),
                e["server"].as_str().unwrap_or("?"),
                e["addr"].as_str().unwrap_or("?"),
                e["cause"].as_str().unwrap_or("")
            ));
        }
    }

    /// Panics with every log's tail, keeping the logs in a folder that outlives the test.
    fn fail(&self, why: &str) -> ! {
        let mut report = String::new();
        let kept = tempfile::Builder::new()
            .prefix("swarmshare-netns-failed-")
            .tempdir()
            .map(|d| d.keep());
        for p in self.owner.iter().chain(self.peers.iter()) {
            let out = fs::read_to_string(&p.stdout).unwrap_or_default();
            let tail: Vec<&str> = out.lines().rev().take(8).collect();
            let err = fs::read_to_string(&p.stderr).unwrap_or_default();
            report += &format!(
                "\n--- {} stderr: {err}\n--- {} stdout tail:\n{}",
                p.name,
                p.name,
                tail.join("\n")
            );
            if let Ok(dir) = &kept {
                for log in [&p.stdout, &p.stderr] {
                    if let Some(name) = log.file_name() {
                        let _ = fs::copy(log, dir.join(name));
                    }
                }
            }
        }
        let kept = kept.map_or_else(|_| "nowhere".to_owned(), |d| d.display().to_string());
        panic!("{why} (logs kept in {kept}){report}");
    }
}

#[test]
fn a_peer_that_changes_its_address_mid_transfer_still_completes() {
    let test = "a_peer_that_changes_its_address_mid_transfer_still_completes";
    let Some(mut lab) = Lab::new("a", test) else {
        return;
    };
    lab.start(61);
    let held = lab.wait_mid_transfer(3, 20, Duration::from_secs(60));
    // Every peer has its batch, so between them they hold every chunk: the owner leaves,
    // and what only peer 3 holds must now be fetched from it, at its new address.
    let joined = wait_until(Duration::from_secs(30), || {
        (1..=PEERS).all(|k| lab.peer(k).events().iter().any(|e| e["event"] == "owner_batch"))
    });
    if !joined {
        lab.fail("not every peer had its batch within 30 s");
    }
    if let Some(owner) = lab.owner.as_mut() {
        owner.kill9();
    }

    // Delete first: a new address added first would be a secondary in the same /24 and
    // go away with the old primary.
    let (ns, dev) = (lab.net.nodes[3].clone(), Net::interface(3));
    let (old, new) = (format!("{}/24", node_ip(3)), "10.77.0.23/24");
    must("ip", &["-n", &ns, "addr", "del", &old, "dev", &dev]);
    must("ip", &["-n", &ns, "addr", "add", new, "dev", &dev]);
    let changed_at = lab.started.elapsed();
    let before: Vec<usize> = lab.all_events().iter().map(|(_, e)| e.len()).collect();
    lab.say(&format!(
        "peer3 moved from 10.77.0.13 to 10.77.0.23 holding {held} of {CHUNKS} chunks"
    ));

    let done = lab.wait_all_complete(Duration::from_secs(150));
    lab.assert_no_hash_failures();
    assert!(
        done[2] > changed_at,
        "peer3 finished before its address changed: nothing was tested"
    );

    // What happened after the change, node by node.
    let all = lab.all_events();
    let mut talked_at_new = false;
    let mut reached_at_new = false;
    for (i, (name, events)) in all.iter().enumerate() {
        let after = &events[before[i]..];
        let at_new = lines_naming(after, "10.77.0.23");
        let at_old = lines_naming(after, "10.77.0.13");
        lab.say(&format!(
            "{name} after the change: naming 10.77.0.23 {at_new:?}; naming 10.77.0.13 {at_old:?}"
        ));
        if i != 3 && !at_new.is_empty() {
            talked_at_new = true;
        }
        // Another peer fetched from peer 3 over a connection it dialled to the new address.
        if (1..=2).contains(&i) && at_new.get("chunk_received").copied().unwrap_or(0) > 0 {
            reached_at_new = true;
        }
    }
    let peer3_after = &all[3].1[before[3]..];
    if let Some(last) = all[3].1[..before[3]].last() {
        lab.say(&format!(
            "peer3's last line before the change: {}",
            last["timestamp"]
        ));
    }
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for e in peer3_after.iter().filter(|e| e["event"] == "chunk_received") {
        *sources
            .entry(e["peer"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    lab.say(&format!(
        "peer3 after the change: chunks from {sources:?}; `waiting` {} times",
        count_of(peer3_after, "waiting")
    ));
    lab.say_links("peer3", peer3_after);
    lab.say(&format!(
        "changed at {changed_at:.1?}; done at {done:.1?}; another peer fetched from the new address: {reached_at_new}"
    ));
    // Peer 3 finished from its new address, so some node saw it there; and with the owner
    // gone, the others had to fetch peer 3's share from it there.
    assert!(
        talked_at_new,
        "no node ever logged traffic with peer3 at 10.77.0.23"
    );
    assert!(
        reached_at_new,
        "no other peer fetched from peer3 at its new address 10.77.0.23"
    );
}

/// The value of `count` once it has not changed for `quiet` (or, failing that, at `limit`).
fn settled_count(count: impl Fn() -> usize, quiet: Duration, limit: Duration) -> usize {
    let start = Instant::now();
    let (mut last, mut since) = (count(), Instant::now());
    while since.elapsed() < quiet && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

#[test]
fn a_link_cut_for_20_seconds_then_restored_resumes() {
    let test = "a_link_cut_for_20_seconds_then_restored_resumes";
    let Some(mut lab) = Lab::new("b", test) else {
        return;
    };
    lab.start(62);
    let held = lab.wait_mid_transfer(3, 20, Duration::from_secs(60));

    let (ns, dev) = (lab.net.nodes[3].clone(), Net::interface(3));
    must("ip", &["-n", &ns, "link", "set", &dev, "down"]);
    let before = lab.peer(3).events().len();
    lab.say(&format!(
        "peer3's link is down, holding {held} of {CHUNKS} chunks"
    ));
    let down_at = Instant::now();
    // Chunks already in peer 3's socket buffers or being stored when the link went down
    // are still verified and stored, fsync included; on a busy disk that can take many
    // seconds (ext4 commits every file's dirty data with the journal). So the count is
    // frozen only once it has not moved for 4 s, and then it must stay so for 12 s more.
    let frozen = settled_count(|| lab.held(3), Duration::from_secs(4), Duration::from_secs(30));
    let hold_until = (down_at + Duration::from_secs(20)).max(Instant::now() + Duration::from_secs(12));
    std::thread::sleep(hold_until.saturating_duration_since(Instant::now()));
    let at_restore = lab.held(3);
    let others_done: Vec<bool> = (1..=2).map(|k| lab.complete(k)).collect();
    must("ip", &["-n", &ns, "link", "set", &dev, "up"]);
    let restored_at = lab.started.elapsed();
    lab.say(&format!(
        "peer3's link is up again, holding {at_restore} chunks; peers 1 and 2 complete meanwhile: {others_done:?}"
    ));
    assert_eq!(
        frozen, at_restore,
        "peer3 received chunks while its link was down"
    );
    assert!(!lab.complete(3), "peer3 completed while its link was down");

    let done = lab.wait_all_complete(Duration::from_secs(90));
    lab.assert_no_hash_failures();
    let peer3 = lab.peer(3).events();
    lab.say_links("peer3", &peer3[before..]);
    lab.say(&format!(
        "restored at {restored_at:.1?}; done at {done:.1?}; peer3 logged `waiting` {} times",
        count_of(&peer3, "waiting")
    ));
    assert!(done[2] > restored_at, "peer3 finished before its link came back");
}
