#!/usr/bin/env bash
# bench/flood.sh - a JOIN flood against an owner (issue 14): how many bytes the owner sends
# per byte the attacker sends (the amplification factor), with and without an honest swarm
# beside it.
#
#   bench/flood.sh                       # 100 MiB file, 200 JOINs from each of 127.0.0.2-4
#   SIZE=10M JOINS=100 bench/flood.sh
#   SWARMSHARE_BIN=/path/to/older/swarmshare bench/flood.sh   # the same flood, another build
#
# The flood is examples/attacker.rs `join-flood` (fresh peer ID per JOIN, a port where nobody
# listens, everything the owner sends read); a second run adds `--request` (each JOIN then
# asks for every chunk). Both print one JSON line: joins, bytes sent and received, seconds,
# amplification. Then 5 honest peers run while the flood repeats, and the owner's bytes to
# them and their completion time are printed next to a run without the flood.
set -euo pipefail
NAME=flood TAG=flood
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-100M}
JOINS=${JOINS:-200}
need_tools
if [ -n "${SWARMSHARE_BIN:-}" ]; then BIN=$SWARMSHARE_BIN; else build_release; fi
(cd "$ROOT" && cargo build --release --example attacker --quiet) || die "cannot build the attacker"
ATTACKER=$ROOT/target/release/examples/attacker
head -c "$SIZE" /dev/urandom > "$WORK/file.bin"

owner() {  # owner DIR: starts an owner; its port in PORT (not in a subshell: PIDS must see it)
  PORT=$(free_port)
  RUST_LOG=info "$BIN" --log-format json owner "$PORT" "$WORK/file.bin" --peers 5 \
    --bind 127.0.0.1 --dir "$WORK/$1" > "$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  wait_for 60 grep -q owner_start "$WORK/$1.log" || die "the owner did not start"
}
owner_bytes() {  # owner_bytes LOG [PORTS...]: chunk bytes the owner sent (to those peer ports)
  python3 - "$@" <<'PY'
import json, sys
ports = set(sys.argv[2:])
total = 0
for line in open(sys.argv[1]):
    if not line.startswith('{'): continue
    e = json.loads(line)
    if e.get('event') == 'chunk_sent' and (not ports or e.get('peer', '').rsplit(':', 1)[-1] in ports):
        total += e.get('bytes', 0)
print(total)
PY
}
swarm() {  # swarm PORT TAG: 5 honest peers; seconds until all complete in SECS, ports in PORTS
  local port=$1 t0 ports=() i p
  t0=$(now)
  for i in 1 2 3 4 5; do
    p=$(free_port); ports+=("$p")
    "$BIN" peer "$port" "$p" --bind 127.0.0.1 --dir "$WORK/$2-p$i" --exit-when-done > /dev/null 2>&1 &
    PIDS+=($!)
  done
  for i in 1 2 3 4 5; do
    wait_for 300 test -e "$WORK/$2-p$i/file.bin" || die "peer $i did not complete"
  done
  SECS=$(since "$t0")
  PORTS="${ports[*]}"
}

FROM=127.0.0.2,127.0.0.3,127.0.0.4
echo "== $SIZE file; $JOINS JOINs from each of $FROM ($BIN)"
owner o1
echo "join only:      $("$ATTACKER" join-flood "$PORT" --bind "$FROM" --joins "$JOINS" | tail -1)"
echo "join + request: $("$ATTACKER" join-flood "$PORT" --bind "$FROM" --joins "$((JOINS / 4))" --request | tail -1)"

owner o2
swarm "$PORT" clean
clean_s=$SECS clean_ports=$PORTS
owner o3
"$ATTACKER" join-flood "$PORT" --bind "$FROM" --joins "$JOINS" > "$WORK/flood.json" &
PIDS+=($!)
swarm "$PORT" flood
flood_s=$SECS flood_ports=$PORTS
F=$(stat -c %s "$WORK/file.bin")
echo "honest swarm, no flood:  all complete in ${clean_s} s, owner sent them $(echo "scale=2; $(owner_bytes "$WORK/o2.log" $clean_ports) / $F" | bc) F"
echo "honest swarm, flooded:   all complete in ${flood_s} s, owner sent them $(echo "scale=2; $(owner_bytes "$WORK/o3.log" $flood_ports) / $F" | bc) F"
