#!/usr/bin/env python3
"""One libtorrent node (seeder or leecher) as its own process, for bench/compare.

Usage: lt_node.py --role seed|leech --torrent T --dir D --port P [--cap BYTES_PER_S]
                  [--marker FILE] [--stats FILE] [--tracker URL] [--connect PORT ...] [--wait-go]

Prints "ready" on stdout once the session is listening (a leecher with --wait-go then waits
for a line on stdin before adding the torrent, so that Python start-up and the import of
libtorrent are not timed). Writes --marker (containing the Unix time) when the torrent is
complete: for a seeder after its hash check, for a leecher when the download is finished.
Keeps seeding until SIGTERM/SIGINT, then writes --stats (JSON: payload bytes up/down) and exits.
Needs python3-libtorrent (Debian), so run it with /usr/bin/python3.
"""
import argparse
import json
import os
import signal
import sys
import time

import libtorrent as lt

stop = False


def on_signal(_sig, _frm):
    global stop
    stop = True


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["seed", "leech"], required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cap", type=int, default=0, help="upload cap in bytes/s, 0 = none")
    ap.add_argument("--marker")
    ap.add_argument("--stats")
    ap.add_argument("--tracker", action="append", default=[], help="announce URL")
    ap.add_argument("--connect", type=int, action="append", default=[])
    ap.add_argument("--wait-go", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    s = {
        "listen_interfaces": "127.0.0.1:%d" % a.port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Every process is on 127.0.0.1: several connections per IP are the normal case here.
        "allow_multiple_connections_per_ip": True,
        # TCP only (aria2 and swarmshare speak TCP only; uTP over loopback costs CPU).
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # No RC4 on the payload (swarmshare does not encrypt; aria2 is set to plain too).
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "allowed_enc_level": int(lt.enc_level.plaintext),
        "upload_rate_limit": a.cap,
        "download_rate_limit": 0,
        "alert_mask": int(lt.alert.category_t.status_notification | lt.alert.category_t.error_notification),
        "user_agent": "bench-compare",
    }
    # Extra settings for experiments, e.g. LT_SETTINGS='{"unchoke_slots_limit": -1}'.
    s.update(json.loads(os.environ.get("LT_SETTINGS") or "{}"))
    ses = lt.session(s)
    if a.cap:
        # Peers on loopback/LAN fall in the "local" peer class, which libtorrent does not
        # rate-limit by default. Put every address in the global class so the cap applies.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)

    print("ready", flush=True)
    if a.wait_go:
        if not sys.stdin.readline():
            return
    t_add = time.time()
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.dir
    if a.tracker:
        p.trackers = a.tracker
    h = ses.add_torrent(p)
    for port in a.connect:
        h.connect_peer(("127.0.0.1", port))

    parent = os.getppid()
    done = False
    trace = os.environ.get("LT_TRACE") == "1"  # one status line a second on stderr
    next_trace = time.time()
    while not stop and os.getppid() == parent:  # also stop if the driver is gone
        ses.wait_for_alert(50)
        for al in ses.pop_alerts():
            if isinstance(al, lt.torrent_error_alert):
                print("error:", al.message(), file=sys.stderr, flush=True)
        if trace and time.time() >= next_trace:
            next_trace += 1.0
            st = h.status()
            print("%.1f progress %.3f up %.1f MB/s down %.1f MB/s peers %d unchoked-by-us %d" % (
                time.time() - t_add, st.progress, st.upload_payload_rate / 1e6,
                st.download_payload_rate / 1e6, st.num_peers,
                sum(1 for pi in h.get_peer_info() if not pi.flags & lt.peer_info.choked)),
                file=sys.stderr, flush=True)
        if not done:
            st = h.status()
            if st.is_seeding:
                done = True
                if a.marker:
                    write_atomic(a.marker, "%.6f\n" % time.time())
                print("complete after %.3f s" % (time.time() - t_add), flush=True)
    st = h.status()
    if a.stats:
        write_atomic(a.stats, json.dumps({
            "payload_up": st.total_payload_upload,
            "payload_down": st.total_payload_download,
            "up": st.total_upload,
            "down": st.total_download,
            "seeding": st.is_seeding,
            "peers": st.num_peers,
        }) + "\n")


if __name__ == "__main__":
    main()
