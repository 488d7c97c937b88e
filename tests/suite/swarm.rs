//! The test harness for whole swarms: an owner and peers as real processes, each in its
//! own directory under one temporary folder, with their JSON logs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::util::{free_port, json_events, random_file, same_file, wait_until, Proc};

/// An owner and peers, each in its own directory under one temporary folder.
pub struct Swarm {
    pub root: tempfile::TempDir,
    pub file: PathBuf,
    pub owner_port: u16,
    pub ports: Vec<u16>,
    pub owner: Option<Proc>,
    pub peers: Vec<Option<Proc>>,
    /// Extra arguments for every peer (e.g. `--neighbors 1` for the seed's pure ring).
    pub peer_args: Vec<String>,
    /// Extra arguments for the owner.
    pub owner_args: Vec<String>,
    /// A limit on open descriptors for the owner and the peers started from now on.
    pub nofile: Option<u64>,
}

impl Swarm {
    pub fn new(size: usize, peers: usize, seed: u64) -> Swarm {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("owner")).unwrap();
        let file = root.path().join("owner").join("payload.bin");
        random_file(&file, size, seed);
        Swarm {
            root,
            file,
            owner_port: free_port(),
            ports: (0..peers).map(|_| free_port()).collect(),
            owner: None,
            peers: (0..peers).map(|_| None).collect(),
            peer_args: Vec::new(),
            owner_args: Vec::new(),
            nofile: None,
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.root.path().to_owned()
    }

    pub fn start_owner(&mut self, batch_peers: usize) {
        let dir = self.root.path().join("owner");
        let args = [
            "--log-format",
            "json",
            "owner",
            &self.owner_port.to_string(),
            self.file.to_str().unwrap(),
            "--peers",
            &batch_peers.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().unwrap(),
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().chain(&self.owner_args).map(String::as_str).collect();
        self.owner = Some(Proc::start_limited(&self.logs(), "owner", &args, self.nofile));
    }

    /// Starts peer `i` downloading from port `neighbor` (the seed's three arguments).
    pub fn start_peer(&mut self, i: usize, neighbor: u16) {
        let positional = [
            self.owner_port.to_string(),
            self.ports[i].to_string(),
            neighbor.to_string(),
        ];
        self.start_peer_with(i, &positional, &[]);
    }

    /// Starts peer `i` in swarm mode: `peer OWNER PORT`, no neighbor.
    pub fn start_swarm_peer(&mut self, i: usize) {
        let positional = [self.owner_port.to_string(), self.ports[i].to_string()];
        self.start_peer_with(i, &positional, &[]);
    }

    /// Starts peer `i` with these positional arguments and extra options (the harness adds
    /// JSON logs, the bind address, the directory and `peer_args`).
    pub fn start_peer_with(&mut self, i: usize, positional: &[String], extra: &[String]) {
        let dir = self.peer_dir(i);
        let mut args: Vec<String> = vec!["--log-format".into(), "json".into(), "peer".into()];
        args.extend(positional.iter().cloned());
        args.extend([
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--dir".to_owned(),
            dir.to_str().unwrap().to_owned(),
        ]);
        args.extend(extra.iter().cloned());
        args.extend(self.peer_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.peers[i] = Some(Proc::start_limited(
            &self.logs(),
            &format!("peer{}", i + 1),
            &args,
            self.nofile,
        ));
    }

    /// The chunk IDs the peers `which` logged as received, together.
    pub fn received_by(&self, which: &[usize]) -> BTreeSet<u64> {
        which
            .iter()
            .filter_map(|&i| self.peers[i].as_ref())
            .flat_map(events_of)
            .filter(|e| e["event"] == "chunk_received")
            .filter_map(|e| e["chunk"].as_u64())
            .collect()
    }

    /// Every peer downloads from its named neighbor only, as in the seed.
    pub fn pure_ring(mut self) -> Swarm {
        self.peer_args = vec!["--neighbors".to_owned(), "1".to_owned()];
        self
    }

    /// The seed's ring: peer i downloads from peer i+1, the last from the first.
    pub fn ring_neighbor(&self, i: usize) -> u16 {
        self.ports[(i + 1) % self.ports.len()]
    }

    pub fn peer_dir(&self, i: usize) -> PathBuf {
        self.root.path().join(format!("peer{}", i + 1))
    }

    pub fn peer_file(&self, i: usize) -> PathBuf {
        self.peer_dir(i).join("payload.bin")
    }

    /// Waits until every peer holds a byte-identical copy; on timeout, panics with the
    /// logs' tails and keeps every log in a folder it names.
    pub fn wait_all_complete(&self, limit: Duration) {
        let all: Vec<usize> = (0..self.ports.len()).collect();
        self.wait_complete(&all, limit);
    }

    /// Waits until the peers `which` hold byte-identical copies (see `wait_all_complete`).
    pub fn wait_complete(&self, which: &[usize], limit: Duration) {
        let done = wait_until(limit, || which.iter().all(|&i| self.peer_file(i).exists()));
        if !done {
            let mut report = String::new();
            for p in self.peers.iter().flatten().chain(self.owner.iter()) {
                let out = p.output();
                let tail: Vec<&str> = out.lines().rev().take(8).collect();
                report += &format!(
                    "\n--- {} stderr: {}\n--- {} stdout tail:\n{}",
                    p.name,
                    p.errors(),
                    p.name,
                    tail.join("\n")
                );
            }
            let kept = self.keep_logs();
            panic!("not every peer completed within {limit:?} (logs kept in {kept}){report}");
        }
        for &i in which {
            assert!(
                same_file(&self.file, &self.peer_file(i)),
                "peer{}'s copy differs from the original",
                i + 1
            );
        }
    }

    /// Waits until peer `i` has joined (logged `peer_start`).
    pub fn wait_joined(&mut self, i: usize) {
        self.wait_event(i, "peer_start", Duration::from_secs(20));
    }

    /// Waits until peer `i` has logged `event`; panics after `limit`.
    pub fn wait_event(&mut self, i: usize, event: &str, limit: Duration) {
        let seen = wait_until(limit, || {
            events_of(self.peer(i)).iter().any(|e| e["event"] == event)
        });
        assert!(seen, "peer{} logged no {event} within {limit:?}", i + 1);
    }

    /// Copies every process's logs to a fresh folder that outlives the test.
    fn keep_logs(&self) -> String {
        let Ok(dir) = tempfile::Builder::new().prefix("swarmshare-failed-").tempdir() else {
            return "nowhere".to_owned();
        };
        let dir = dir.keep();
        for p in self.peers.iter().flatten().chain(self.owner.iter()) {
            for log in [&p.stdout, &p.stderr] {
                if let Some(name) = log.file_name() {
                    let _ = std::fs::copy(log, dir.join(name));
                }
            }
        }
        dir.display().to_string()
    }

    pub fn peer(&mut self, i: usize) -> &mut Proc {
        self.peers[i].as_mut().expect("peer started")
    }
}

pub fn events_of(proc: &Proc) -> Vec<serde_json::Value> {
    json_events(&proc.output())
}

pub fn event_names(proc: &Proc) -> BTreeSet<String> {
    events_of(proc)
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

/// The peer's `complete` event. The file is renamed into place just before the event is
/// logged, so a caller that saw the file waits a moment for the line.
pub fn complete_event(proc: &Proc) -> serde_json::Value {
    let find = || events_of(proc).into_iter().find(|e| e["event"] == "complete");
    wait_until(Duration::from_secs(5), || find().is_some());
    find().unwrap_or_else(|| panic!("{} logged no completion", proc.name))
}
