#!/usr/bin/env python3
"""bench/compare driver: time until every peer has the file, for swarmshare (ring and swarm
modes), aria2 and libtorrent, on 127.0.0.1. Called by run.sh, which installs the packages,
builds the binary, makes the random file and the .torrent; see README.md.

Each run: start the owner/seeder and wait until it serves, then start N peers (t0) and poll
every 20 ms until each has the complete file. Then, before stopping anything: owner upload
bytes, and per peer VmHWM and utime+stime from /proc (from wait4's rusage for a peer that
already exited). Every process is stopped by PID (SIGTERM, SIGKILL after 5 s), every copy is
checked against the source's SHA-256, and the run folder is deleted.
One JSON line per run goes to OUT/results.jsonl; report.py makes the table and the plot.
"""
import argparse
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
CAP = 10_000_000  # bytes/s per process in the capped scenarios

SCENARIOS = {  # name -> (N, upload cap in B/s or None)
    "uncapped5": (5, None),
    "capped5": (5, CAP),
    "capped10": (10, CAP),
    "capped20": (20, CAP),
}
SCENARIO_ALIASES = {"1": "uncapped5", "2": "capped5", "3": "capped10"}
TOOLS = ["swarmshare-ring", "swarmshare-swarm", "aria2", "libtorrent"]


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- processes


def seed_dir(run):
    """Starts the run's tracker and returns the seeder's directory holding the file."""
    c = run.ctx
    tp, run.url, used = start_tracker(os.path.join(run.d, "tracker"), c.infohash, c.tracker)
    run.extra.append(tp)
    if c.tracker == "opentracker" and used != "opentracker":
        run.note.append("tracker: " + used)
    sd = os.path.join(run.d, "seed")
    os.makedirs(sd)
    link_or_copy(c.src, os.path.join(sd, c.name))
    return sd

class Proc:
    """A child we started; we reap it ourselves with wait4 to keep its rusage."""

    registry = []

    def __init__(self, name, argv, cwd=None, env=None, stdout=None, stderr=None, stdin=None):
        self.name = name
        self.out_f = open(stdout, "wb") if isinstance(stdout, str) else stdout
        self.err_f = open(stderr, "wb") if isinstance(stderr, str) else stderr
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.out_f,
                                  stderr=self.err_f, stdin=stdin, start_new_session=True)
        self.pid = self.p.pid
        self.status = None  # wait status once reaped
        self.rusage = None
        self.io = (0, 0)  # (write_bytes, cancelled_write_bytes) from /proc/PID/io, last seen
        Proc.registry.append(self)
        with open(PIDFILE, "a") as f:
            f.write("%d\n" % self.pid)

    def poll(self):
        """True if the process has exited (reaps it and keeps its rusage)."""
        if self.status is not None:
            return True
        try:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.status, self.p.returncode = 0, 0
            return True
        if pid == 0:
            return False
        self.status, self.rusage = status, ru
        self.p.returncode = os.waitstatus_to_exitcode(status)
        return True

    def exit_code(self):
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    def sample_io(self):
        """Reads /proc/PID/io while the process lives: bytes it sent to the storage layer
        (write_bytes) and dirty bytes it dropped before they were written (cancelled)."""
        if self.status is not None:
            return
        try:
            vals = {}
            with open("/proc/%d/io" % self.pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    vals[k] = int(v)
            self.io = (vals.get("write_bytes", 0), vals.get("cancelled_write_bytes", 0))
        except (OSError, ValueError):
            pass

    def disk_written(self):
        """Bytes this process made the kernel write to the storage device, net of what it
        cancelled: the last /proc/PID/io sample, or wait4's ru_oublock (512-byte blocks,
        the same counter, up to the exit) if larger."""
        self.sample_io()
        written, cancelled = self.io
        if self.rusage is not None:
            written = max(written, self.rusage.ru_oublock * 512)
        return max(written - cancelled, 0)

    def stats(self):
        """(peak RSS KiB, CPU seconds, RssAnon KiB now): from /proc while it runs (VmHWM,
        utime+stime), else from wait4's rusage (ru_maxrss, ru_utime+ru_stime; no RssAnon)."""
        if not self.poll():
            try:
                with open("/proc/%d/stat" % self.pid) as f:
                    st = f.read()
                fields = st[st.rindex(")") + 2:].split()
                if fields[0] != "Z":
                    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
                    hwm = anon = None
                    with open("/proc/%d/status" % self.pid) as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                hwm = int(line.split()[1])
                            elif line.startswith("RssAnon:"):
                                anon = int(line.split()[1])
                    if hwm is not None:
                        return hwm, cpu, anon
            except (OSError, ValueError, IndexError):
                pass
            if not self.poll():
                return None, None, None
        ru = self.rusage
        if ru is None:
            return None, None, None
        return ru.ru_maxrss, ru.ru_utime + ru.ru_stime, None

    def stop(self, grace=5.0):
        if self.poll():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + grace
        while time.time() < deadline:
            if self.poll():
                return
            time.sleep(0.02)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            pid, status, ru = os.wait4(self.pid, 0)
            self.status, self.rusage = status, ru
            self.p.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self.status = 0

    @classmethod
    def stop_all(cls, procs=None, grace=5.0):
        procs = cls.registry if procs is None else procs
        alive = [p for p in procs if not p.poll()]
        for p in alive:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while alive and time.time() < deadline:
            alive = [p for p in alive if not p.poll()]
            time.sleep(0.02)
        for p in alive:
            p.stop(grace=0)
        for p in procs:
            for f in (p.out_f, p.err_f, p.p.stdout, p.p.stdin):
                if f is not None and hasattr(f, "close"):
                    try:
                        f.close()
                    except Exception:
                        pass
        if procs is cls.registry:
            cls.registry = []
        else:
            cls.registry = [p for p in cls.registry if p not in procs]


USED_PORTS = set()


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (UDP for opentracker's -P)."""
    for _ in range(1000):
        port = random.randint(20000, 60000)
        if port in USED_PORTS:
            continue
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            USED_PORTS.add(port)
            return port
    raise RuntimeError("no free port")


def wait_until(pred, timeout, what, procs=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        for p in procs:
            if p.poll():
                raise RuntimeError("%s exited (code %s) while waiting for %s"
                                   % (p.name, p.exit_code(), what))
        time.sleep(0.02)
    raise RuntimeError("timeout after %d s waiting for %s" % (timeout, what))


def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


# ---------------------------------------------------------------- trackers

def start_tracker(d, infohash, kind):
    """Start a tracker for this run; returns (Proc, announce URL, kind actually used)."""
    os.makedirs(d, exist_ok=True)
    if kind == "opentracker" and shutil.which("opentracker"):
        os.chmod(d, 0o755)
        # opentracker (Debian build) is whitelist-only; it chroots to -d and drops to
        # "nobody", so the whitelist path in the config is relative to the chroot.
        with open(os.path.join(d, "whitelist.txt"), "w") as f:
            f.write(infohash + "\n")
        with open(os.path.join(d, "ot.conf"), "w") as f:
            f.write("access.whitelist /whitelist.txt\n")
        port = free_port()
        p = Proc("opentracker", ["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                                 "-f", os.path.join(d, "ot.conf"), "-d", d],
                 stdout=os.path.join(d, "tracker.log"), stderr=subprocess.STDOUT)
        url = "http://127.0.0.1:%d/announce" % port
        if tracker_answers(url, infohash, p):
            return p, url, "opentracker"
        log("   note: opentracker did not answer an announce; using tracker.py instead")
        Proc.stop_all([p])
    port = free_port()
    p = Proc("tracker.py", [sys.executable, os.path.join(HERE, "tracker.py"), str(port)],
             stdout=os.path.join(d, "tracker.log"), stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d/announce" % port
    if not tracker_answers(url, infohash, p):
        raise RuntimeError("neither opentracker nor tracker.py answers")
    return p, url, "tracker.py"


def tracker_answers(url, infohash, proc, timeout=5.0):
    """Probe with a 'stopped' announce for the info-hash (registers no peer)."""
    q = "info_hash=%s&peer_id=-BENCHPROBE-00000000&port=1&uploaded=0&downloaded=0&left=0&event=stopped&compact=1" % (
        urllib.parse.quote(bytes.fromhex(infohash)))
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll():
            return False
        try:
            with urllib.request.urlopen(url + "?" + q, timeout=1) as r:
                body = r.read()
            return b"failure" not in body
        except Exception:
            time.sleep(0.1)
    return False


# ---------------------------------------------------------------- tools

class Run:
    def __init__(self, ctx, tool, scen, d):
        self.ctx, self.tool, self.scen, self.d = ctx, tool, scen, d
        self.n, self.cap = SCENARIOS[scen]
        self.owner = None
        self.peers = []
        self.extra = []  # tracker etc.
        self.peer_dirs = []
        self.note = []

    # subclass: start_owner(), start_peers(), peer_done(i), owner_upload(), owner_upload_after()


class SwarmshareRun(Run):
    def start_owner(self):
        c = self.ctx
        od = os.path.join(self.d, "owner")
        os.makedirs(od)
        self.file = os.path.join(od, c.name)
        link_or_copy(c.src, self.file)
        self.oport = free_port()
        self.ports = [free_port() for _ in range(self.n)]
        argv = [c.bin, "--log-format", "json", "owner", str(self.oport), self.file,
                "--peers", str(self.n), "--bind", "127.0.0.1", "--dir", od]
        if self.cap:
            argv += ["--upload-limit", c.ss_rate]
        self.olog = os.path.join(self.d, "owner.log")
        env = dict(os.environ, RUST_LOG="info")
        self.owner = Proc("owner", argv, env=env, stdout=self.olog,
                          stderr=os.path.join(self.d, "owner.err"))

        def ready():
            with open(self.olog, "rb") as f:
                return b'"event":"owner_start"' in f.read()
        wait_until(ready, 300, "the owner's owner_start", [self.owner])

    def start_peers(self):
        c = self.ctx
        env = dict(os.environ, RUST_LOG=c.peer_log)
        for i in range(self.n):
            pd = os.path.join(self.d, "p%d" % i)
            os.makedirs(pd)
            self.peer_dirs.append(pd)
        procs = []
        for i in range(self.n):
            argv = [c.bin, "peer", str(self.oport), str(self.ports[i])]
            if self.tool == "swarmshare-ring":
                argv.append(str(self.ports[(i + 1) % self.n]))
            argv += ["--bind", "127.0.0.1", "--dir", self.peer_dirs[i]]
            if self.cap:
                argv += ["--upload-limit", c.ss_rate]
            if c.ss_exit_when_done:
                argv.append("--exit-when-done")
            procs.append((argv, i))
        t0 = time.time()
        for argv, i in procs:
            self.peers.append(Proc("p%d" % i, argv, env=env,
                                   stdout=os.path.join(self.d, "p%d.log" % i),
                                   stderr=os.path.join(self.d, "p%d.err" % i)))
        return t0

    def peer_done(self, i):
        return os.path.exists(os.path.join(self.peer_dirs[i], self.ctx.name))

    def may_exit_when_done(self):
        return self.ctx.ss_exit_when_done

    def owner_upload(self):
        return None  # read from the log once the owner has stopped

    def owner_upload_after(self):
        total, seen = 0, False
        with open(self.olog, "rb") as f:
            for line in f:
                if b'"chunk_sent"' not in line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "chunk_sent" and "bytes" in ev:
                    total += int(ev["bytes"])
                    seen = True
        return total if seen else None


class Aria2Run(Run):
    def common(self):
        a = ["aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
             "--enable-peer-exchange=true", "--seed-ratio=0.0",  # seed until killed
             "--bt-min-crypto-level=plain", "--file-allocation=none",
             "--summary-interval=0", "--show-console-readout=false", "--console-log-level=error",
             "--bt-tracker=" + self.url, "--bt-stop-timeout=0",
             "--log-level=" + os.environ.get("ARIA2_LOG_LEVEL", "notice"),
             "--stop-with-process=%d" % os.getpid()]
        if self.cap:
            a.append("--max-overall-upload-limit=%d" % self.cap)  # plain number = bytes/s
        return a + os.environ.get("ARIA2_OPTS", "").split()  # extra options for experiments

    def start_owner(self):
        sd = seed_dir(self)
        self.rpc_port, self.secret = free_port(), secrets.token_hex(8)
        argv = self.common() + ["-d", sd, "--listen-port=%d" % free_port(), "--check-integrity=true",
                                "--enable-rpc", "--rpc-listen-port=%d" % self.rpc_port,
                                "--rpc-secret=" + self.secret, "--log=" + os.path.join(self.d, "seed.a2log"),
                                self.ctx.torrent]
        self.owner = Proc("aria2 seeder", argv, stdout=os.path.join(self.d, "seed.out"),
                          stderr=subprocess.STDOUT)

        def ready():
            st = self.rpc_status()
            return bool(st) and st.get("seeder") == "true" and st.get("completedLength") == st.get("totalLength")
        wait_until(ready, 300, "the aria2 seeder to seed", [self.owner])

    def rpc_status(self):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "aria2.tellActive",
                           "params": ["token:" + self.secret,
                                      ["gid", "seeder", "completedLength", "totalLength", "uploadLength"]]}).encode()
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/jsonrpc" % self.rpc_port, data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                res = json.loads(r.read())["result"]
            return res[0] if res else None
        except Exception:
            return None

    def start_peers(self):
        c = self.ctx
        hook = os.path.join(self.d, "done-hook.sh")
        with open(hook, "w") as f:
            # aria2 runs this when the download is complete, before seeding: args GID N PATH
            f.write('#!/bin/sh\ndate +%s.%N > "$(dirname "$3")/.bench-done"\n')
        os.chmod(hook, 0o755)
        argvs = []
        for i in range(self.n):
            pd = os.path.join(self.d, "p%d" % i)
            os.makedirs(pd)
            self.peer_dirs.append(pd)
            argvs.append(self.common() + ["-d", pd, "--listen-port=%d" % free_port(),
                                          "--on-bt-download-complete=" + hook,
                                          "--log=" + os.path.join(self.d, "p%d.a2log" % i), c.torrent])
        t0 = time.time()
        for i, argv in enumerate(argvs):
            self.peers.append(Proc("p%d" % i, argv, stdout=os.path.join(self.d, "p%d.out" % i),
                                   stderr=subprocess.STDOUT))
        return t0

    def peer_done(self, i):
        return os.path.exists(os.path.join(self.peer_dirs[i], ".bench-done"))

    def may_exit_when_done(self):
        return False

    def owner_upload(self):
        st = self.rpc_status()
        return int(st["uploadLength"]) if st and "uploadLength" in st else None

    def owner_upload_after(self):
        return None


class LibtorrentRun(Run):
    def node(self, role, d, port, name, **kw):
        argv = [sys.executable, os.path.join(HERE, "lt_node.py"), "--role", role,
                "--torrent", self.ctx.torrent, "--dir", d, "--port", str(port),
                "--tracker", self.url, "--marker", os.path.join(self.d, name + ".done"),
                "--stats", os.path.join(self.d, name + ".stats")]
        if self.cap:
            argv += ["--cap", str(self.cap)]
        if kw.get("wait_go"):
            argv.append("--wait-go")
        return Proc(name, argv, stdout=subprocess.PIPE, stderr=os.path.join(self.d, name + ".err"),
                    stdin=subprocess.PIPE if kw.get("wait_go") else subprocess.DEVNULL)

    def start_owner(self):
        sd = seed_dir(self)
        self.owner = self.node("seed", sd, free_port(), "seed")
        marker = os.path.join(self.d, "seed.done")
        wait_until(lambda: os.path.exists(marker), 300, "the libtorrent seeder to seed", [self.owner])

    def start_peers(self):
        for i in range(self.n):
            pd = os.path.join(self.d, "p%d" % i)
            os.makedirs(pd)
            self.peer_dirs.append(pd)
            self.peers.append(self.node("leech", pd, free_port(), "p%d" % i, wait_go=True))
        # Python start-up and "import libtorrent" are not timed: wait for every "ready".
        for p in self.peers:
            line = p.p.stdout.readline()
            if not line.startswith(b"ready"):
                raise RuntimeError("%s did not start: %r" % (p.name, line))
        t0 = time.time()
        for p in self.peers:
            p.p.stdin.write(b"go\n")
            p.p.stdin.flush()
        return t0

    def peer_done(self, i):
        return os.path.exists(os.path.join(self.d, "p%d.done" % i))

    def may_exit_when_done(self):
        return False

    def owner_upload(self):
        return None

    def owner_upload_after(self):
        try:
            with open(os.path.join(self.d, "seed.stats")) as f:
                return int(json.load(f)["payload_up"])
        except (OSError, ValueError, KeyError):
            return None


RUNNERS = {"swarmshare-ring": SwarmshareRun, "swarmshare-swarm": SwarmshareRun,
           "aria2": Aria2Run, "libtorrent": LibtorrentRun}


def run_one(ctx, tool, scen):
    d = os.path.join(ctx.work, "%s-%s" % (tool, scen) + ("-r%d" % (ctx.round + 1) if ctx.round else ""))
    os.makedirs(d)
    r = RUNNERS[tool](ctx, tool, scen, d)
    rec = {"tool": tool, "scenario": scen, "n": r.n, "cap": r.cap, "file_size": ctx.size,
           "time_all": None, "completions": [], "owner_up": None, "peer_rss_kib": [],
           "peer_cpu_s": [], "peer_rss_anon_kib": [], "owner_rss_kib": None, "owner_cpu_s": None, "verified": False,
           "fs": ctx.fs, "peer_disk_written": [], "note": ""}
    failed = False
    done = [None] * r.n
    try:
        r.start_owner()
        t0 = r.start_peers()
        deadline = t0 + ctx.timeout
        next_exit_check = 0.0
        while None in done:
            now = time.time()
            for i in range(r.n):
                if done[i] is None and r.peer_done(i):
                    done[i] = now - t0
            if None not in done:
                break
            if now > deadline:
                raise RuntimeError("timeout: %d/%d peers complete after %d s"
                                   % (r.n - done.count(None), r.n, ctx.timeout))
            if now >= next_exit_check:
                next_exit_check = now + 0.25
                for p in r.peers:
                    p.sample_io()
                for i, p in enumerate(r.peers):
                    if done[i] is None and p.poll() and not r.peer_done(i):
                        raise RuntimeError("peer %d exited (code %s) before completing"
                                           % (i, p.exit_code()))
                if r.owner.poll() and "owner exited" not in rec["note"]:
                    rec["note"] += "owner exited (code %s) before the end; " % r.owner.exit_code()
            time.sleep(0.02)
        rec["time_all"] = max(done)
        rec["completions"] = sorted(done)
        # Measure before stopping anything.
        rec["owner_up"] = r.owner_upload()
        for p in r.peers:
            rss, cpu, anon = p.stats()
            rec["peer_rss_kib"].append(rss)
            rec["peer_cpu_s"].append(cpu)
            rec["peer_rss_anon_kib"].append(anon)
            rec["peer_disk_written"].append(p.disk_written())
        rec["owner_rss_kib"], rec["owner_cpu_s"], _ = r.owner.stats()
        exited = sum(1 for p in r.peers if p.status is not None)
        if exited:
            rec["note"] += "%d/%d peers had exited when done (stats from wait4); " % (exited, r.n)
    except RuntimeError as e:
        failed = True
        rec["note"] += str(e) + "; "
        log("   FAILED: %s" % e)
        rec["completions"] = sorted(x for x in done if x is not None)
    finally:
        Proc.stop_all([r.owner] + r.peers + r.extra if r.owner else r.peers + r.extra)
    if rec["owner_up"] is None and r.owner is not None:
        rec["owner_up"] = r.owner_upload_after()
    if not failed:
        bad = [i for i in range(r.n) if not os.path.exists(os.path.join(r.peer_dirs[i], ctx.name))
               or sha256(os.path.join(r.peer_dirs[i], ctx.name)) != ctx.sha]
        rec["verified"] = not bad
        if bad:
            rec["note"] += "copies differ from the source: peers %s; " % bad
    if r.cap and rec["owner_up"] and rec["time_all"]:
        # Sanity check of the caps: the owner cannot have averaged more than its cap.
        rate = rec["owner_up"] / rec["time_all"]
        if rate > 1.02 * r.cap:
            rec["note"] += ("owner/seeder averaged %.1f MB/s over the run, above its %.0f MB/s cap; "
                            % (rate / 1e6, r.cap / 1e6))
    if r.note:
        rec["note"] += "; ".join(r.note) + "; "
    rec["note"] = rec["note"].strip("; ")
    if failed or ctx.keep_logs:
        dst = os.path.join(ctx.out, "logs", os.path.basename(d))
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(d, dst, ignore=lambda dd, names: [
            n for n in names if os.path.isfile(os.path.join(dd, n))
            and os.path.getsize(os.path.join(dd, n)) > 20 << 20
            or n in (".swarmshare",) or n == ctx.name])
        log("   logs kept in %s" % dst)
    shutil.rmtree(d, ignore_errors=True)
    # What this run left for the disk to write is written now, not during the next run.
    os.sync()
    return rec


def fmt_rec(rec):
    t = "%.2f s" % rec["time_all"] if rec["time_all"] is not None else "FAILED"
    up = ("%.2f x F" % (rec["owner_up"] / rec["file_size"])) if rec["owner_up"] is not None else "? x F"
    rss = [x for x in rec["peer_rss_kib"] if x is not None]
    cpu = [x for x in rec["peer_cpu_s"] if x is not None]
    extra = ""
    if rss:
        extra = ", max peer RSS %.1f MiB, peers' CPU %.1f s" % (max(rss) / 1024, sum(cpu))
        if cpu and len(cpu) == rec["n"]:
            extra += " (%.2f s per GiB delivered)" % cpu_per_gib(rec)
        disk = rec.get("peer_disk_written") or []
        if disk:
            extra += ", written to disk per peer %.2f x F max" % (max(disk) / rec["file_size"])
    return "%s, owner sent %s%s%s" % (t, up, extra, (" [%s]" % rec["note"]) if rec["note"] else "")


def cpu_per_gib(rec):
    """The peers' CPU seconds per GiB delivered to them (N copies of F)."""
    cpu = sum(x for x in rec["peer_cpu_s"] if x is not None)
    return cpu / (rec["n"] * rec["file_size"] / 2**30)


class Ctx:
    pass


def main():
    global PIDFILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--infohash", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--scenarios", default="all")
    ap.add_argument("--tools", default="all")
    ap.add_argument("--ss-upload-limit", choices=["yes", "no"], default="yes")
    ap.add_argument("--ss-exit-when-done", choices=["yes", "no"], default="no")
    ap.add_argument("--ss-rate", default="10MB")
    ap.add_argument("--tracker", choices=["opentracker", "python"], default="opentracker")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--peer-log", default=os.environ.get("SS_PEER_LOG", "warn"))
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--fs", default="?", help="the file system the folders are on (for the record)")
    a = ap.parse_args()

    ctx = Ctx()
    ctx.round = 0
    ctx.bin, ctx.src, ctx.torrent, ctx.infohash = a.bin, a.src, a.torrent, a.infohash
    ctx.out, ctx.timeout, ctx.peer_log, ctx.keep_logs = a.out, a.timeout, a.peer_log, a.keep_logs
    ctx.fs = a.fs
    ctx.ss_rate, ctx.ss_exit_when_done = a.ss_rate, a.ss_exit_when_done == "yes"
    ctx.tracker = a.tracker
    ctx.name = os.path.basename(a.src)
    ctx.size = os.path.getsize(a.src)
    ctx.work = os.path.join(a.work, "runs")
    os.makedirs(ctx.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    PIDFILE = os.path.join(a.work, "pids")

    def on_signal(sig, _frm):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    scen = list(SCENARIOS) if a.scenarios in ("all", "") else [
        SCENARIO_ALIASES.get(s, s) for s in a.scenarios.replace(",", " ").split()]
    tools = []
    for t in (TOOLS if a.tools in ("all", "") else a.tools.replace(",", " ").split()):
        expanded = ["swarmshare-ring", "swarmshare-swarm"] if t == "swarmshare" else [t]
        for x in expanded:
            if x not in RUNNERS:
                sys.exit("bench.py: unknown tool %r (known: swarmshare %s)" % (x, " ".join(TOOLS)))
            if x not in tools:
                tools.append(x)
    for s in scen:
        if s not in SCENARIOS:
            sys.exit("bench.py: unknown scenario %r (known: %s, or 1 2 3)" % (s, " ".join(SCENARIOS)))

    log("computing the source's SHA-256 ...")
    ctx.sha = sha256(a.src)
    results_path = os.path.join(a.out, "results.jsonl")
    open(results_path, "w").close()
    # Rounds outer, tools inner: a noisy spell of this machine falls on every tool alike.
    runs = [(k, s) for k in range(max(a.rounds, 1)) for s in scen]
    try:
        for k, s in runs:
            n, cap = SCENARIOS[s]
            if a.rounds > 1:
                log("==== round %d of %d, %s" % (k + 1, a.rounds, s))
            ctx.round = k
            for t in tools:
                label = "%-17s %-10s N=%-2d" % (t, s, n)
                if cap and t.startswith("swarmshare") and a.ss_upload_limit == "no":
                    log("== %s skipped: this swarmshare binary has no --upload-limit" % label)
                    rec = {"tool": t, "scenario": s, "n": n, "cap": cap, "file_size": ctx.size,
                           "skipped": "binary has no --upload-limit"}
                else:
                    log("== %s ..." % label)
                    rec = run_one(ctx, t, s)
                    log("   %s" % fmt_rec(rec))
                rec["round"] = k
                with open(results_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                time.sleep(1)
    except KeyboardInterrupt as e:
        log("interrupted (%s)" % e)
        Proc.stop_all()
        sys.exit(130)
    finally:
        Proc.stop_all()


PIDFILE = None

if __name__ == "__main__":
    main()
