//! Separate (virtual) hosts for the tests that need a wire: a "switch" network namespace
//! holding a bridge, and one namespace per node joined to it by a veth pair, each node's
//! outgoing link optionally capped with `tbf`. Namespaces are named after this process's
//! PID and a per-test tag; a drop guard deletes the ones a test made (and nothing else),
//! even when the test panics. The host's own interfaces are never touched.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::util::json_events;

/// Runs a command to completion; its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn must(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        panic!("{e}");
    }
}

/// A test that cannot make what it needs here (`reason`): it fails where namespaces are
/// required (CI sets `SWARMSHARE_REQUIRE_NETNS`), and is skipped, said so, elsewhere.
pub fn unavailable(test: &str, reason: &str) {
    if std::env::var_os("SWARMSHARE_REQUIRE_NETNS").is_some() {
        panic!("{test}: required here, but {reason}");
    }
    println!("SKIPPED {test}: {reason}");
}

/// Node `i`'s address: the owner is 10.77.0.1, peer k is 10.77.0.(10+k).
pub fn node_ip(i: usize) -> String {
    if i == 0 {
        "10.77.0.1".to_owned()
    } else {
        format!("10.77.0.{}", 10 + i)
    }
}

/// The first three octets of the private network behind node `router`'s NAT.
pub fn nat_lan(router: usize) -> String {
    format!("192.168.{}", 70 + router)
}

/// Host `k` behind node `router`'s NAT.
pub fn nat_host_ip(router: usize, k: usize) -> String {
    format!("{}.{}", nat_lan(router), 10 + k)
}

/// The namespaces one test made; deletes exactly those when dropped.
pub struct Net {
    pub switch: String,
    /// Node namespaces: 0 is the owner, k is peer k.
    pub nodes: Vec<String>,
    made: Vec<String>,
}

impl Net {
    /// The switch namespace with a bridge, and `rates.len()` node namespaces (0 the
    /// owner) wired to it, node `i`'s outgoing link capped at `rates[i]` with `tbf` if
    /// given. `Err` is a reason to skip (no root, no namespaces, no tbf); any other
    /// failure panics (and the guard still removes what was made).
    pub fn create(tag: &str, rates: &[Option<&str>]) -> Result<Net, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: network namespaces need root".to_owned());
        }
        let base = format!("sw{}{tag}", std::process::id());
        let mut net = Net {
            switch: format!("{base}s"),
            nodes: (0..rates.len()).map(|i| format!("{base}{i}")).collect(),
            made: Vec::new(),
        };
        let sw = net.switch.clone();
        net.add_namespace(&sw)?;
        must("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must("ip", &["-n", &sw, "link", "set", "br0", "up"]);
        for (i, rate) in rates.iter().enumerate() {
            let ns = net.nodes[i].clone();
            if let Err(e) = net.add_namespace(&ns) {
                panic!("{e}");
            }
            let (port, end) = (format!("p{i}"), Net::interface(i));
            must(
                "ip",
                &[
                    "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", &end,
                ],
            );
            must("ip", &["-n", &sw, "link", "set", &end, "netns", &ns]);
            must("ip", &["-n", &sw, "link", "set", &port, "master", "br0"]);
            must("ip", &["-n", &sw, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", node_ip(i));
            must("ip", &["-n", &ns, "addr", "add", &cidr, "dev", &end]);
            must("ip", &["-n", &ns, "link", "set", &end, "up"]);
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            let Some(rate) = rate else { continue };
            let tbf = [
                "-n", &ns, "qdisc", "add", "dev", &end, "root", "tbf", "rate", rate, "burst", "32kbit",
                "latency", "400ms",
            ];
            run("tc", &tbf).map_err(|e| format!("cannot cap a link with tbf: {e}"))?;
        }
        Ok(net)
    }

    /// Puts `hosts` new namespaces behind a NAT: node `router` (already on the switch)
    /// gets a second leg on a private bridge ([`nat_lan`]`(router)`.1/24), forwards, and
    /// masquerades what leaves by its public leg (nftables); host k is
    /// [`nat_host_ip`]`(router, k)` with the router as its default route. Nobody on the
    /// switch has a route back in: the hosts can dial out and cannot be dialled. Returns
    /// the hosts' namespaces. `Err` is a reason to skip (no nft).
    pub fn add_nat(&mut self, router: usize, hosts: usize) -> Result<Vec<String>, String> {
        self.add_nat_with(router, hosts, "")
    }

    /// As [`Net::add_nat`], with a NAT that gives every connection a random port
    /// (`masquerade fully-random`): the mapping one peer saw is not the one a connection to
    /// another gets, so no hole can be punched through it.
    pub fn add_random_nat(&mut self, router: usize, hosts: usize) -> Result<Vec<String>, String> {
        self.add_nat_with(router, hosts, " fully-random")
    }

    /// As [`Net::add_nat`], with a router that also drops whatever comes in by its public
    /// leg that no connection from inside asked for (as home routers do), where plain
    /// masquerade lets the router's own stack answer it with RST.
    pub fn add_firewalled_nat(&mut self, router: usize, hosts: usize) -> Result<Vec<String>, String> {
        let made = self.add_nat_with(router, hosts, "")?;
        let (r, public) = (self.nodes[router].clone(), Net::interface(router));
        let drop = |hook: &str| {
            format!(
                "chain {hook} {{ type filter hook {hook} priority 0; iifname \"{public}\" ct state established,related accept; iifname \"{public}\" drop; }};"
            )
        };
        let rules = format!("table inet wall {{ {} {} }}", drop("input"), drop("forward"));
        run("ip", &["netns", "exec", &r, "nft", &rules])
            .map_err(|e| format!("cannot set up a firewall: {e}"))?;
        Ok(made)
    }

    fn add_nat_with(&mut self, router: usize, hosts: usize, flags: &str) -> Result<Vec<String>, String> {
        let lan_net = nat_lan(router);
        let base = format!(
            "{}n{router}",
            self.switch.strip_suffix('s').unwrap_or(&self.switch)
        );
        let (lan, r) = (format!("{base}s"), self.nodes[router].clone());
        self.add_namespace(&lan)?;
        must("ip", &["-n", &lan, "link", "add", "br1", "type", "bridge"]);
        must("ip", &["-n", &lan, "link", "set", "br1", "up"]);
        let wire = |ns: &str, port: &str, end: &str, cidr: &str| {
            must(
                "ip",
                &[
                    "-n", &lan, "link", "add", port, "type", "veth", "peer", "name", end,
                ],
            );
            must("ip", &["-n", &lan, "link", "set", end, "netns", ns]);
            must("ip", &["-n", &lan, "link", "set", port, "master", "br1"]);
            must("ip", &["-n", &lan, "link", "set", port, "up"]);
            must("ip", &["-n", ns, "addr", "add", cidr, "dev", end]);
            must("ip", &["-n", ns, "link", "set", end, "up"]);
        };
        wire(&r, "q0", "lan0", &format!("{lan_net}.1/24"));
        must(
            "ip",
            &["netns", "exec", &r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        );
        let public = Net::interface(router);
        let rules = format!(
            "table ip nat {{ chain post {{ type nat hook postrouting priority 100; oifname \"{public}\" masquerade{flags}; }}; }}"
        );
        run("ip", &["netns", "exec", &r, "nft", &rules]).map_err(|e| format!("cannot set up a NAT: {e}"))?;
        let mut made = Vec::new();
        for k in 0..hosts {
            let ns = format!("{base}{k}");
            self.add_namespace(&ns)?;
            wire(
                &ns,
                &format!("q{}", k + 1),
                "lan0",
                &format!("{}/24", nat_host_ip(router, k)),
            );
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            must(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("{lan_net}.1"),
                ],
            );
            made.push(ns);
        }
        Ok(made)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        run("ip", &["netns", "add", name])?;
        self.made.push(name.to_owned());
        Ok(())
    }

    /// Node `i`'s end of its veth pair (inside its namespace).
    pub fn interface(i: usize) -> String {
        format!("e{i}")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a node's namespace destroys its veth pair; the switch's, the bridge.
        for ns in self.made.iter().rev() {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}

/// `swarmshare ARGS` inside a namespace (`ip netns exec` execs it, so the PID is the
/// binary's); logs to files; killed by its PID when dropped.
pub struct NsProc {
    child: Child,
    pub name: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl NsProc {
    pub fn start(logs: &Path, name: &str, ns: &str, args: &[&str]) -> NsProc {
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_swarmshare")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        // SAFETY: prctl is async-signal-safe; no allocation between fork and exec. If the
        // test process dies without unwinding, the node dies with it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        NsProc {
            child: cmd.spawn().unwrap(),
            name: name.to_owned(),
            stdout,
            stderr,
        }
    }

    /// The owner of `file` in namespace `ns` at `node_ip(0)`, `port`, with `extra`
    /// arguments, its directory `logs/owner`; returns once it has started.
    pub fn start_owner(logs: &Path, ns: &str, port: u16, file: &Path, extra: &[&str]) -> NsProc {
        let (port, dir, bind) = (port.to_string(), logs.join("owner"), node_ip(0));
        let mut args = vec!["--log-format", "json", "owner", &port, file.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(["--bind", &bind, "--dir", dir.to_str().unwrap()]);
        let owner = NsProc::start(logs, "owner", ns, &args);
        let started = super::util::wait_until(std::time::Duration::from_secs(20), || {
            super::util::count_of(&owner.events(), "owner_start") > 0
        });
        assert!(started, "the owner did not start");
        owner
    }

    pub fn events(&self) -> Vec<Value> {
        json_events(&fs::read_to_string(&self.stdout).unwrap_or_default())
    }

    /// SIGTERM, and up to `limit` for it to exit (so it logs what it logs on the way out).
    pub fn terminate(&mut self, limit: std::time::Duration) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL now (its logs stay readable).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
