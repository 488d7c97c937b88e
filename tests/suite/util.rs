//! Helpers for tests that run the real binary: ports, files, processes cleaned up by PID.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// A free ephemeral port on 127.0.0.1 (bound, then released), never the same one twice
/// in this test process: the kernel may hand a released port out again at once, and two
/// nodes of one swarm on the same port would fail for the wrong reason.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}

/// Writes `size` random bytes (seeded, so failures reproduce) to `path`.
pub fn random_file(path: &Path, size: usize, seed: u64) {
    let mut data = vec![0u8; size];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut data);
    fs::File::create(path).unwrap().write_all(&data).unwrap();
}

/// The binary under test.
pub fn swarmshare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swarmshare"))
}

/// A child process whose output goes to files; killed (by its PID) when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `swarmshare ARGS` with logs under `logs/NAME.{out,err}`.
    pub fn start(logs: &Path, name: &str, args: &[&str]) -> Proc {
        Proc::start_limited(logs, name, args, None)
    }

    /// As [`Proc::start`], with at most `nofile` open descriptors (soft and hard limit,
    /// set by `prlimit`, which then runs the binary under its own PID).
    pub fn start_limited(logs: &Path, name: &str, args: &[&str], nofile: Option<u64>) -> Proc {
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg(env!("CARGO_BIN_EXE_swarmshare"));
                c
            }
            None => swarmshare(),
        };
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Proc {
            child,
            name: name.to_owned(),
            stdout,
            stderr,
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), if readable.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait_for(limit)
    }

    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn output(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn errors(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `path` exists with exactly the bytes of `original`.
/// Stops a packet capture this test started (by its PID), once `capture` has stopped
/// growing for half a second (at most 20 s): under load tcpdump reads the kernel's buffer
/// behind the traffic, and what it has not read when it stops is lost.
pub fn stop_capture(mut dump: std::process::Child, capture: &Path) {
    let size = || std::fs::metadata(capture).map_or(0, |m| m.len());
    let mut last = size();
    let _ = wait_until(Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = size();
        std::mem::replace(&mut last, now) == now
    });
    let _ = Command::new("kill").arg(dump.id().to_string()).status();
    let _ = dump.wait();
}

pub fn same_file(original: &Path, path: &Path) -> bool {
    match (fs::read(original), fs::read(path)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The `event` values in a JSON log.
pub fn json_events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// How many of `events` are `name` events.
pub fn count_of(events: &[serde_json::Value], name: &str) -> usize {
    events.iter().filter(|e| e["event"] == name).count()
}

/// A peer's arguments with JSON logs: `peer OWNER PORT --bind BIND --dir DIR`.
pub fn peer_args(owner: &str, port: u16, bind: &str, dir: &Path) -> Vec<String> {
    [
        "--log-format",
        "json",
        "peer",
        owner,
        &port.to_string(),
        "--bind",
        bind,
        "--dir",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([dir.to_string_lossy().into_owned()])
    .collect()
}
