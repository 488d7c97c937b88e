#!/usr/bin/env bash
# Peers behind NATs (issue 18): runs the two-NAT topology of tests/suite/nats.rs (owner and
# two public peers on a segment, two masquerading routers with three peers each, 50 MB,
# every link to the segment shaped to 50 mbit with tbf, each node in its own namespace)
# RUNS times (default 20) and prints, per run and in sum: time to all complete, bytes
# between the NATs directly and through relays, and the link ends made by punching, by a
# relay circuit and over a LAN. Needs root (network namespaces, nftables, tbf).
# SCENARIO=owner-only runs the swarm where no peer can be dialled instead (the owner
# introduces; see below).
# The lower bound for the topology: the owner must send the file once over its 50 mbit
# link, 50e6 * 8 / 50e6 = 8.0 s.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-20}"
# One build; the runs use that test binary (and the release binary it names), so nothing
# is rebuilt between runs.
tests=$(cargo test --release --test tests --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tests" and m.get("executable"):
        print(m["executable"])')
cargo build --release --quiet
out=$(mktemp)
# runs TEST RUNS times, keeping the lines that start with PREFIX (the test's figures).
runs() {
  for i in $(seq 1 "$RUNS"); do
    SWARMSHARE_REQUIRE_NETNS=1 "$tests" --exact --nocapture "suite::nats::$1" 2>&1 \
      | grep -E "^$2" | tee -a "$out" || echo "run $i failed" | tee -a "$out"
  done
}
if [ "${SCENARIO:-two-nats}" = owner-only ]; then
  # No peer can be dialled: two NATs with two peers each, the owner (2 MB/s) introduces.
  # Lower bound: the owner sends the 20 MB file once at 2 MB/s, 10.0 s.
  runs peers_behind_nats_meet_through_the_owner_when_no_peer_can_relay "owner alone"
  python3 - "$out" <<'PY'
import re, statistics, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("owner alone")]
fails = sum(1 for l in open(sys.argv[1]) if "failed" in l)
print(f"runs: {len(rows)} complete, {fails} failed")
if rows:
    t = [float(re.search(r"after ([\d.]+) s", l).group(1)) for l in rows]
    owner = [float(re.search(r"owner sent ([\d.]+) F", l).group(1)) for l in rows]
    punched = sum(1 for l in rows if int(re.search(r"(\d+) punched", l).group(1)) > 0)
    print(f"time to all complete: min {min(t):.1f} / median {statistics.median(t):.1f} / max {max(t):.1f} s "
          f"(lower bound 10.0 s: median {statistics.median(t)/10.0:.2f}x); holes punched in {punched}/{len(rows)} runs")
    print(f"owner upload: min {min(owner):.2f} / median {statistics.median(owner):.2f} / max {max(owner):.2f} F")
PY
  rm -f "$out"
  exit 0
fi
runs peers_behind_two_nats_punch_through_relay_and_trade_on_their_lan "all complete"
python3 - "$out" <<'PY'
import re, statistics, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("all complete")]
fails = sum(1 for l in open(sys.argv[1]) if "failed" in l)
t = [float(re.search(r"after ([\d.]+) s", l).group(1)) for l in rows]
direct = sum(int(re.search(r"direct (\d+)", l).group(1)) for l in rows)
relayed = sum(int(re.search(r"relayed (\d+)", l).group(1)) for l in rows)
p = sum(int(re.search(r"(\d+) punched", l).group(1)) for l in rows)
r = sum(int(re.search(r"(\d+) relayed,", l).group(1)) for l in rows)
lan = sum(int(re.search(r"(\d+) over a LAN", l).group(1)) for l in rows)
owner = [float(re.search(r"owner sent ([\d.]+) F", l).group(1)) for l in rows]
runs_punched = sum(1 for l in rows if int(re.search(r"(\d+) punched", l).group(1)) > 0)
print(f"runs: {len(rows)} complete, {fails} failed")
if t:
    print(f"time to all complete: min {min(t):.1f} / median {statistics.median(t):.1f} / max {max(t):.1f} s "
          f"(lower bound 8.0 s: median {statistics.median(t)/8.0:.2f}x)")
    print(f"between the NATs: {direct} bytes direct, {relayed} relayed ({100*relayed/max(1,direct+relayed):.2f}% relayed)")
    print(f"link ends between introduced peers: {p} punched, {r} through a relay, {lan} over a LAN; "
          f"punching succeeded in {runs_punched}/{len(rows)} runs, {100*p/max(1,p+r):.1f}% of cross-NAT link ends")
    print(f"owner upload: min {min(owner):.2f} / median {statistics.median(owner):.2f} / max {max(owner):.2f} F")
PY
rm -f "$out"
