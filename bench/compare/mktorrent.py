#!/usr/bin/env python3
"""Make a v1-only .torrent for one file (piece size 128 KiB by default).

Usage: mktorrent.py FILE OUT.torrent [TRACKER_URL|-] [PIECE_SIZE]
With "-" (the default) the torrent names no tracker: bench/compare gives each run's
tracker at run time (the info-hash does not depend on it).
Prints the v1 info-hash (40 hex digits) on stdout.
Needs python3-libtorrent (Debian), so run it with /usr/bin/python3.
"""
import os
import sys

import libtorrent as lt


def main():
    path, out = sys.argv[1], sys.argv[2]
    tracker = sys.argv[3] if len(sys.argv) > 3 else "-"
    piece = int(sys.argv[4]) if len(sys.argv) > 4 else 131072
    path = os.path.abspath(path)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1 only: aria2 does not understand BitTorrent v2 / hybrid torrents.
    t = lt.create_torrent(fs, piece, lt.create_torrent.v1_only)
    if tracker != "-":
        t.add_tracker(tracker)
    t.set_creator("swarmshare bench/compare")
    lt.set_piece_hashes(t, os.path.dirname(path))
    data = lt.bencode(t.generate())
    with open(out, "wb") as f:
        f.write(data)
    info = lt.torrent_info(out)
    print(str(info.info_hashes().v1) if hasattr(info, "info_hashes") else str(info.info_hash()))


if __name__ == "__main__":
    main()
