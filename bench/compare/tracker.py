#!/usr/bin/env python3
"""A minimal HTTP BitTorrent tracker for 127.0.0.1, the fallback when opentracker is missing
or does not answer (bench/compare uses opentracker first).

Usage: tracker.py PORT
Answers GET /announce with every peer that announced the same info-hash (compact form),
including stopped=... handling; interval 1800 s. Serves until killed.
"""
import socket
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SWARMS = {}  # info_hash bytes -> {(ip, port): left}


def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, str):
        return bencode(x.encode())
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/announce":
            self.send_error(404)
            return
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True, encoding="latin-1")
        try:
            ih = q["info_hash"][0].encode("latin-1")
            port = int(q["port"][0])
        except (KeyError, ValueError):
            body = bencode({b"failure reason": b"bad request"})
        else:
            ip = self.client_address[0]
            swarm = SWARMS.setdefault(ih, {})
            if q.get("event", [""])[0] == "stopped":
                swarm.pop((ip, port), None)
            else:
                swarm[(ip, port)] = int(q.get("left", ["0"])[0] or 0)
            peers = b"".join(socket.inet_aton(i) + p.to_bytes(2, "big")
                             for (i, p) in swarm if (i, p) != (ip, port))
            body = bencode({
                b"interval": 1800,
                b"complete": sum(1 for v in swarm.values() if v == 0),
                b"incomplete": sum(1 for v in swarm.values() if v != 0),
                b"peers": peers,
            })
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()


if __name__ == "__main__":
    main()
