#!/usr/bin/env python3
"""Swarms in the wild (issue 13), real processes on this machine, figures for BENCHMARKS.md.

Scenarios (each run next to its clean twin, in the same invocation):
  slow    one peer of N (5 and 10) in its own network namespace with its upload shaped
          to 200 kbit/s (tbf), ring and swarm mode, 10 MB, uncapped (CAP=10MB caps every
          node's upload): when is every fast peer done?  Target: within 1.5 x the clean
          run's time + 1 s.   (root needed; NS=5,10 and MODES=ring,swarm choose)
  idle    30 identities at 127.0.0.2 holding connections to every node, capped 10 MB/s,
          5 peers: completion, owner upload / F, how long --exit-when-done takes after
          completing.  Targets: <= 1.2 x clean, <= 1.2 F, exits within 5 s.
  poison  a peer answering every PEERS with 64 fresh lies, capped 10 MB/s, 5 peers.
          Targets: <= 1.2 x clean, <= 1.2 F.

Usage: bench/wild.sh [slow] [idle] [poison]   (default: all; RUNS=3, SIZE=30000000 for
idle/poison). Prints a table; nothing is written to the repo.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "target", "release", "swarmshare")
ATTACKER = os.path.join(REPO, "target", "release", "examples", "attacker")
RUNS = int(os.environ.get("RUNS", "3"))
SIZE = int(os.environ.get("SIZE", "30000000"))
procs = []


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start(argv, log, cwd=None, env=None):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=open(log + ".err", "w"),
                         stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    procs.append(p)
    return p


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()
    procs.clear()


def events(log):
    out = []
    try:
        for line in open(log):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    except OSError:
        pass
    return out


def owner_ratio(log, size):
    return sum(e.get("bytes", 0) for e in events(log) if e.get("event") == "chunk_sent") / size


def wait(cond, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- loopback: idle identities, poisoned gossip ------------------------------------

def loopback_run(work, attack, n=5):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "f.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(SIZE))
    od = os.path.join(work, "owner")
    os.makedirs(od)
    oport = free_port()
    ports = [free_port() for _ in range(n)]
    olog = os.path.join(work, "owner.log")
    start([BIN, "--log-format", "json", "owner", str(oport), src, "--peers", str(n), "--bind", "127.0.0.1",
           "--dir", od, "--upload-limit", "10MB"], olog)
    wait(lambda: any(e.get("event") == "owner_start" for e in events(olog)), 30)
    if attack == "idle":
        a = subprocess.Popen([ATTACKER, "idle", str(oport), "--identities", "30", "--targets",
                              ",".join(map(str, ports))], stdout=subprocess.PIPE, text=True)
        procs.append(a)
        a.stdout.readline()
    elif attack == "poison":
        a = subprocess.Popen([ATTACKER, "poison", str(oport)], stdout=subprocess.PIPE, text=True)
        procs.append(a)
        a.stdout.readline()
        time.sleep(0.3)
    t0 = time.time()
    peers = []
    for i, port in enumerate(ports):
        d = os.path.join(work, "p%d" % i)
        os.makedirs(d)
        log = os.path.join(work, "p%d.log" % i)
        peers.append((start([BIN, "--log-format", "json", "peer", str(oport), str(port), "--bind", "127.0.0.1",
                             "--dir", d, "--upload-limit", "10MB", "--exit-when-done"], log), log, d))
    done_at = {}
    exit_at = {}

    def check():
        now = time.time()
        for i, (p, log, d) in enumerate(peers):
            if i not in done_at and os.path.exists(os.path.join(d, "f.bin")):
                done_at[i] = now - t0
            if i not in exit_at and p.poll() is not None:
                exit_at[i] = now - t0
        return len(exit_at) == n

    wait(check, 120)
    total = max(done_at.values()) if len(done_at) == n else float("nan")
    exits = max((exit_at[i] - done_at[i]) for i in exit_at if i in done_at) if exit_at else float("nan")
    ratio = owner_ratio(olog, SIZE)
    stop_all()
    return total, ratio, exits


# ---- network namespaces: one slow peer ---------------------------------------------

class Net:
    def __init__(self, n, slow):
        self.base = "ww%d" % os.getpid()
        self.sw = self.base + "s"
        self.nodes = [self.base + str(i) for i in range(n + 1)]
        self.made = []
        self.add(self.sw)
        sh("ip", "-n", self.sw, "link", "add", "sw0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "sw0", "up")
        for i, ns in enumerate(self.nodes):
            self.add(ns)
            sh("ip", "-n", self.sw, "link", "add", "p%d" % i, "type", "veth", "peer", "name", "e%d" % i)
            sh("ip", "-n", self.sw, "link", "set", "e%d" % i, "netns", ns)
            sh("ip", "-n", self.sw, "link", "set", "p%d" % i, "master", "sw0")
            sh("ip", "-n", self.sw, "link", "set", "p%d" % i, "up")
            sh("ip", "-n", ns, "addr", "add", "%s/24" % self.ip(i), "dev", "e%d" % i)
            sh("ip", "-n", ns, "link", "set", "e%d" % i, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.slow = slow

    def shape(self, i, on):
        if on:
            sh("ip", "netns", "exec", self.nodes[i], "tc", "qdisc", "replace", "dev", "e%d" % i, "root", "tbf",
               "rate", "200kbit", "burst", "16kbit", "latency", "400ms")
        else:
            sh("ip", "netns", "exec", self.nodes[i], "tc", "qdisc", "del", "dev", "e%d" % i, "root", check=False)

    def add(self, name):
        sh("ip", "netns", "add", name)
        self.made.append(name)

    @staticmethod
    def ip(i):
        return "10.78.0.%d" % (1 + i)

    def close(self):
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)


def slow_run(net, work, n, ring, slow):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "f.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(10_000_000))
    od = os.path.join(work, "owner")
    os.makedirs(od)
    olog = os.path.join(work, "owner.log")
    cap = ["--upload-limit", os.environ["CAP"]] if os.environ.get("CAP") else []
    start(["ip", "netns", "exec", net.nodes[0], BIN, "--log-format", "json", "owner", "7000", src, "--peers",
           str(n), "--bind", "0.0.0.0", "--dir", od] + cap, olog)
    wait(lambda: any(e.get("event") == "owner_start" for e in events(olog)), 30)
    net.shape(n, slow)
    logs = []
    for k in range(1, n + 1):
        d = os.path.join(work, "p%d" % k)
        os.makedirs(d)
        log = os.path.join(work, "p%d.log" % k)
        argv = ["ip", "netns", "exec", net.nodes[k], BIN, "--log-format", "json", "peer", "%s:7000" % net.ip(0),
                "7000"]
        if ring:
            argv.append("%s:7000" % net.ip(k % n + 1))
        argv += ["--bind", "0.0.0.0", "--dir", d] + cap
        start(argv, log)
        logs.append(log)
    fast = logs[:-1]

    def secs(log):
        for e in events(log):
            if e.get("event") == "complete":
                return e["secs"]
        return None

    wait(lambda: all(secs(l) is not None for l in fast), 120)
    times = [secs(l) for l in fast]
    # The slow peer's own time too (its download is not shaped), for the simulator's
    # all-complete figure.
    wait(lambda: secs(logs[-1]) is not None, 30)
    everyone = max([t for t in times if t is not None] + [secs(logs[-1]) or float("nan")])
    stop_all()
    net.shape(n, False)
    if os.environ.get("ALL"):
        print("   (every peer, the slow one included: %.2f s)" % everyone)
    return max(t if t is not None else float("nan") for t in times)


def main():
    which = sys.argv[1:] or ["slow", "idle", "poison"]
    for exe in (BIN, ATTACKER):
        if not os.path.exists(exe):
            sys.exit("missing %s: cargo build --release --examples" % exe)
    work = tempfile.mkdtemp(prefix="swarmshare-wild-")
    rows = []
    try:
        if "idle" in which or "poison" in which:
            for attack in ["clean"] + [a for a in ("idle", "poison") if a in which]:
                for r in range(RUNS):
                    total, ratio, exits = loopback_run(os.path.join(work, "lo"), attack)
                    rows.append(("%s, 5 peers, %d MB capped 10 MB/s" % (attack, SIZE // 1_000_000), r, total, ratio, exits))
                    print("%-42s run %d: all complete %.2f s, owner %.2f F, exits %.2f s after" % (rows[-1][0], r, total, ratio, exits), flush=True)
        if "slow" in which:
            if os.geteuid() != 0:
                print("slow: skipped (network namespaces need root)")
            else:
                for n in [int(x) for x in os.environ.get("NS", "5,10").split(",")]:
                    net = Net(n, n)
                    try:
                        for ring in [m == "ring" for m in os.environ.get("MODES", "ring,swarm").split(",")]:
                            mode = "ring" if ring else "swarm"
                            for r in range(RUNS):
                                clean = slow_run(net, os.path.join(work, "clean%d" % r), n, ring, False)
                                slow = slow_run(net, os.path.join(work, "slow%d" % r), n, ring, True)
                                target = 1.5 * clean + 1
                                print("slow peer, N=%d %-5s run %d: fast peers done %.2f s (clean %.2f s, target <= %.2f s) %s"
                                      % (n, mode, r, slow, clean, target, "met" if slow <= target else "MISSED"), flush=True)
                    finally:
                        stop_all()
                        net.close()
    finally:
        stop_all()
        if os.environ.get("KEEP"):
            print("logs kept in", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
