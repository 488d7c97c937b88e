#!/usr/bin/env python3
"""bench/tree.py - directory trees against one file of the same size (issue 17).

Scenarios (each an owner and N peers in swarm mode on 127.0.0.1, folders on a tmpfs this
script mounts when it can, else under BENCH_TMP; with BENCH_FS=disk always under
BENCH_TMP, on whatever file system holds it; run one after the other, paired):
  mixed    a tree of FILES files of 1-8 KiB plus one BIG file, against one file of the same
           total size; no caps, N=5. Time to all complete, each side, and the ratio.
  small    2,000 files of 50 KiB, every node capped at 10 MB/s, N=5: time against the lower
           bound max(F/u_owner, N*F/(u_owner + N*u_peer)).
Every run reports the peers' peak RSS (VmHWM) and CPU. A first run of the one file, not
counted, warms the machine up (on a VM, fresh memory is slow the first time it is touched);
the rounds then alternate which of the pair runs first. A tree is complete on a peer when
DIR/NAME exists and DIR/.swarmshare/parts is gone (the store removes it at completion,
after every file is in place); every file is then compared with the source.

Env: SCENARIOS (mixed,small)  FILES (20000)  BIG (1G; K/M/G)  N (5)  ROUNDS (1)
     BENCH_TMP (/tmp)  BENCH_FS (tmpfs; disk)  SWARMSHARE_BIN (default target/release/swarmshare)
"""
import filecmp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SWARMSHARE_BIN", os.path.join(ROOT, "target/release/swarmshare"))
CAP = 10_000_000


def size_of(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * mult[text[-1]] if text[-1] in mult else int(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_random(path, size, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n


def make_tree(root, files, small_min, small_max, big, rng):
    share = os.path.join(root, "share")
    total = 0
    for i in range(files):
        size = rng.randint(small_min, small_max)
        write_random(os.path.join(share, "d%03d" % (i % 200), "f%05d.bin" % i), size, rng)
        total += size
    if big:
        write_random(os.path.join(share, "big.bin"), big, rng)
        total += big
    return share, total


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def run(work, source, n, cap):
    """Owner + n peers sharing `source` (file or tree): (seconds to all complete, max peak
    RSS MiB, peers' CPU s)."""
    name = os.path.basename(source)
    odir = os.path.join(work, "owner")
    os.makedirs(odir, exist_ok=True)
    op = free_port()
    capargs = ["--upload-limit", str(cap)] if cap else []
    env = dict(os.environ, RUST_LOG="warn")
    logs = []
    owner = subprocess.Popen([BIN, "owner", str(op), source, "--peers", str(n), "--bind", "127.0.0.1",
                              "--dir", odir] + capargs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    procs = [owner]
    try:
        # The owner prints its listening line once the manifest is built.
        deadline = time.time() + 600
        while True:
            line = owner.stdout.readline()
            if not line:
                sys.exit("tree.py: the owner exited: %s" % owner.wait())
            if b"is swarm" in line:
                break
            if time.time() > deadline:
                sys.exit("tree.py: the owner did not start")
        # Keep reading what the owner prints, so it never blocks on a full pipe.
        threading.Thread(target=lambda: owner.stdout.read(), daemon=True).start()
        dirs = []
        t0 = time.time()
        for i in range(n):
            d = os.path.join(work, "p%d" % i)
            os.makedirs(d)
            dirs.append(d)
            log = open(os.path.join(work, "p%d.log" % i), "wb")
            logs.append(log)
            procs.append(subprocess.Popen([BIN, "peer", str(op), str(free_port()), "--bind", "127.0.0.1",
                                           "--dir", d] + capargs, stdout=log, stderr=subprocess.STDOUT, env=env))
        tree = os.path.isdir(source)

        def done(d):
            if tree:
                return os.path.isdir(os.path.join(d, name)) and not os.path.exists(
                    os.path.join(d, ".swarmshare", "parts"))
            return os.path.exists(os.path.join(d, name))
        finished = [None] * n
        while None in finished:
            for i, d in enumerate(dirs):
                if finished[i] is None and done(d):
                    finished[i] = time.time() - t0
            for p in procs[1:]:
                if p.poll() is not None:
                    sys.exit("tree.py: a peer exited early (see %s)" % work)
            if time.time() - t0 > 900:
                sys.exit("tree.py: timeout")
            time.sleep(0.02)
        rss = [vm_hwm_kib(p.pid) or 0 for p in procs[1:]]
        cpu = sum(cpu_s(p.pid) or 0 for p in procs[1:])
        for d in dirs:
            got = os.path.join(d, name)
            if tree:
                cmp = filecmp.dircmp(source, got)
                bad = cmp.left_only or cmp.right_only or cmp.diff_files
                if bad or not same_tree(source, got):
                    sys.exit("tree.py: %s differs from the source" % got)
            elif not filecmp.cmp(source, got, shallow=False):
                sys.exit("tree.py: %s differs from the source" % got)
        return max(finished), max(rss) / 1024, cpu
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        for log in logs:
            log.close()
        shutil.rmtree(work, ignore_errors=True)


def same_tree(a, b):
    for dirpath, _dirs, files in os.walk(a):
        rel = os.path.relpath(dirpath, a)
        for f in files:
            if not filecmp.cmp(os.path.join(dirpath, f), os.path.join(b, rel, f), shallow=False):
                return False
    return True


def main():
    scenarios = os.environ.get("SCENARIOS", "mixed,small").split(",")
    files, big = int(os.environ.get("FILES", "20000")), size_of(os.environ.get("BIG", "1G"))
    n, rounds = int(os.environ.get("N", "5")), int(os.environ.get("ROUNDS", "1"))
    base = tempfile.mkdtemp(prefix="swarmshare-tree.", dir=os.environ.get("BENCH_TMP", "/tmp"))
    mounted = os.environ.get("BENCH_FS", "tmpfs") != "disk" and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20g", "swarmshare-tree", base],
        stderr=subprocess.DEVNULL).returncode == 0
    print("swarmshare %s; %d cores; folders %s; %s" % (
        subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip(),
        os.cpu_count(), "on a tmpfs" if mounted else "under " + base, time.strftime("%Y-%m-%d %H:%M")))
    rng = random.Random(17)
    try:
        src = os.path.join(base, "src")
        if "mixed" in scenarios:
            share, total = make_tree(src, files, 1024, 8192, big, rng)
            one = os.path.join(src, "one.bin")
            write_random(one, total, rng)
            subprocess.run(["sync"])
            print("== mixed: %d files of 1-8 KiB + one of %d B = %d B, N=%d, no caps" % (files, big, total, n))
            # On a VM, the first run to touch fresh memory pays for the host backing it:
            # one run first, not counted, then the two in turn, the order swapped each round.
            run(os.path.join(base, "w"), one, n, None)
            for k in range(rounds):
                if k % 2 == 0:
                    t_tree, rss_tree, cpu_tree = run(os.path.join(base, "w"), share, n, None)
                    t_one, rss_one, cpu_one = run(os.path.join(base, "w"), one, n, None)
                else:
                    t_one, rss_one, cpu_one = run(os.path.join(base, "w"), one, n, None)
                    t_tree, rss_tree, cpu_tree = run(os.path.join(base, "w"), share, n, None)
                print("   round %d: tree %.2f s (peak RSS %.1f MiB, peers' CPU %.1f s), one file %.2f s "
                      "(%.1f MiB, %.1f s): tree / file = %.2f" % (k + 1, t_tree, rss_tree, cpu_tree, t_one,
                                                                    rss_one, cpu_one, t_tree / t_one))
            shutil.rmtree(src)
        if "small" in scenarios:
            share, total = make_tree(src, 2000, 51_200, 51_200, 0, rng)
            bound = max(total / CAP, n * total / (CAP + n * CAP))
            print("== small: 2,000 files of 50 KiB = %d B, N=%d, every node capped at %d B/s; lower bound %.2f s"
                  % (total, n, CAP, bound))
            for k in range(rounds):
                t, rss, cpu = run(os.path.join(base, "w"), share, n, CAP)
                print("   round %d: %.2f s = %.3f x the bound (peak RSS %.1f MiB, peers' CPU %.1f s)"
                      % (k + 1, t, t / bound, rss, cpu))
            shutil.rmtree(src)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", base])
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
