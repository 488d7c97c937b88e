#!/usr/bin/env python3
"""Discovery through the DHT (issue 18): how long a peer with only the ticket takes to find
the swarm through a local DHT testnet (examples/dht_testnet.rs, no internet).

A private owner and two peers (A, B) complete a file of SIZE bytes; the owner then stops
for good, so the ticket's only address is dead. Then, ROUNDS times:
  restarted  B stops and comes back from its directory on a new port: time from its start
             to its first `dht_met` (a peer found in the DHT proved in its handshake);
  new        a peer with an empty directory and only the ticket: time from its start to
             "joined through a peer found in the DHT", and to its verified file.

Usage: bench/dht.sh   (ROUNDS=5, SIZE=20000000, NODES=8). Prints a table; nothing is
written to the repo.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SWARMSHARE_BIN", os.path.join(REPO, "target", "release", "swarmshare"))
TESTNET = os.path.join(REPO, "target", "release", "examples", "dht_testnet")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SIZE = int(os.environ.get("SIZE", "20000000"))
NODES = int(os.environ.get("NODES", "8"))
procs = []


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log, stdin=subprocess.DEVNULL):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=open(log + ".err", "w"), stdin=stdin)
    procs.append(p)
    return p


def events(log):
    out = []
    try:
        with open(log) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def wait_for(what, limit, step=0.005):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(step)
    return False


def has_event(log, name):
    return any(e.get("event") == name for e in events(log))


def peer(root, name, ticket, bootstrap, port):
    d = os.path.join(root, name)
    log = os.path.join(root, f"{name}-{port}.log")
    argv = [BIN, "--log-format", "json", "peer", "--ticket", ticket, str(port), "--bind", "127.0.0.1",
            "--dir", d, "--no-fsync", "--dht-bootstrap", bootstrap]
    return start(argv, log), log, d


def fig(xs):
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} s" if xs else "-"


def main():
    root = tempfile.mkdtemp(prefix="swarmshare-dht-")
    try:
        net = subprocess.Popen([TESTNET, str(NODES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(net)
        bootstrap = net.stdout.readline().strip()
        os.makedirs(os.path.join(root, "owner"))
        data = os.path.join(root, "owner", "payload.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(SIZE))
        olog = os.path.join(root, "owner.log")
        owner = start([BIN, "--log-format", "json", "owner", str(free_port()), data, "--peers", "2", "--private",
                       "--bind", "127.0.0.1", "--dir", os.path.join(root, "owner"), "--dht-bootstrap", bootstrap], olog)
        ticket = None
        def got_ticket():
            nonlocal ticket
            for line in open(olog + ".err"):
                if line.startswith("ticket: "):
                    ticket = line.split()[1]
            return ticket is not None
        assert wait_for(got_ticket, 30), "no ticket"
        a, alog, _ = peer(root, "a", ticket, bootstrap, free_port())
        b, blog, _ = peer(root, "b", ticket, bootstrap, free_port())
        assert wait_for(lambda: has_event(alog, "complete") and has_event(blog, "complete"), 120), "A and B did not complete"
        owner.kill()
        owner.wait()
        restarted, joined, complete = [], [], []
        for r in range(ROUNDS):
            b.kill()
            b.wait()
            t0 = time.monotonic()
            b, blog, _ = peer(root, "b", ticket, bootstrap, free_port())
            if wait_for(lambda: has_event(blog, "dht_met"), 60):
                restarted.append(time.monotonic() - t0)
            name = f"new{r}"
            t0 = time.monotonic()
            c, clog, _ = peer(root, name, ticket, bootstrap, free_port())
            if wait_for(lambda: any("found in the DHT" in e.get("message", "") for e in events(clog)), 60):
                joined.append(time.monotonic() - t0)
            if wait_for(lambda: has_event(clog, "complete"), 120):
                complete.append(time.monotonic() - t0)
            c.kill()
            c.wait()
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        print(f"DHT testnet of {NODES} nodes on 127.0.0.1; file {SIZE} bytes; {ROUNDS} rounds (min / median / max)")
        print(f"| restarted peer, start to first peer met through the DHT | {fig(restarted)} | {len(restarted)}/{ROUNDS} |")
        print(f"| new peer with only the ticket, start to joined through the DHT | {fig(joined)} | {len(joined)}/{ROUNDS} |")
        print(f"| new peer with only the ticket, start to verified file | {fig(complete)} | {len(complete)}/{ROUNDS} |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
