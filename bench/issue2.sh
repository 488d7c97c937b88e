#!/usr/bin/env bash
# bench/issue2.sh - two figures for issue 2, measured on this machine with the release binary:
#   1. wall time of `swarmshare demo --peers 5 --size 100MiB` (DEMO_RUNS runs, each + median),
#      next to the demo's own "all peers complete in X s";
#   2. peak RSS of each of 5 peers (and the owner) while a ring of separate processes on
#      127.0.0.1 distributes a FILE_SIZE random file (default 1GiB), plus time to all-complete.
# Usage: bench/issue2.sh        (from anywhere; builds with `cargo build --release` first)
# Env: BENCH_TMP (parent of the temp folder, default /tmp), FILE_SIZE (head -c size, default 1G),
#      DEMO_RUNS (default 3), DEMO_TIMEOUT / DIST_TIMEOUT (seconds, default 300 / 900),
#      PEER_LOG (RUST_LOG for the peers, default warn; info logs one line per chunk event).
# Needs ~12 x FILE_SIZE of free disk: original + owner chunks + per peer chunks and final file.
# Everything it starts is stopped by PID (TERM, then KILL) and the temp folder is deleted on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/swarmshare
FILE_SIZE=${FILE_SIZE:-1G}; DEMO_RUNS=${DEMO_RUNS:-3}; NPEERS=5
DEMO_TIMEOUT=${DEMO_TIMEOUT:-300}; DIST_TIMEOUT=${DIST_TIMEOUT:-900}; PEER_LOG=${PEER_LOG:-warn}
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/swarmshare-bench.XXXXXX")
PIDS=()   # every process we started (wrappers and the swarmshare processes inside them)

stop_pids() {  # SIGTERM, wait up to 5 s, then SIGKILL whatever is left
  local p alive
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0; for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0; sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}
cleanup() {
  local rc=$?
  [ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
  wait 2>/dev/null || true
  rm -rf "$WORK"
  [ "$rc" = 0 ] || echo "issue2.sh: FAILED (exit $rc); logs were in $WORK (deleted)" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "issue2.sh: $*" >&2; [ -n "${LOGS:-}" ] && tail -n 5 "$WORK"/*.log >&2; exit 1; }

free_port() {  # a port nobody listens on and that we have not handed out yet
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ " ${USED_PORTS:-} " == *" $p "* ]] && continue
    [ -z "$(ss -Hltn "sport = :$p")" ] && { USED_PORTS="${USED_PORTS:-} $p"; echo "$p"; return; }
  done
}
# Start "$@" under /usr/bin/time -v, logging to $1.log; sets LAST_CHILD to the swarmshare PID.
start_timed() {
  local name=$1; shift
  /usr/bin/time -v -o "$WORK/$name.time" "$BIN" "$@" >"$WORK/$name.log" 2>&1 &
  local wrapper=$!; PIDS+=("$wrapper"); LAST_CHILD=""
  for _ in $(seq 100); do LAST_CHILD=$(pgrep -P "$wrapper" || true); [ -n "$LAST_CHILD" ] && break; sleep 0.05; done
  [ -n "$LAST_CHILD" ] || die "$name did not start"
  PIDS+=("$LAST_CHILD")
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
maxrss_kib() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1" 2>/dev/null; }

echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v bc >/dev/null || missing+=(bc)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} with apt-get"
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } || die "cannot install ${missing[*]}"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
echo "temp folder: $WORK"

# ---- 1. demo wall time --------------------------------------------------------------
echo; echo "== 1. swarmshare demo --peers 5 --size 100MiB  ($DEMO_RUNS runs, temp files in $WORK)"
WALLS=()
for i in $(seq "$DEMO_RUNS"); do
  t0=$(date +%s.%N)
  TMPDIR=$WORK timeout -k 10 $((DEMO_TIMEOUT + 60)) "$BIN" demo --peers 5 --size 100MiB \
    --timeout "$DEMO_TIMEOUT" >"$WORK/demo$i.log" 2>&1 || { LOGS=1; die "demo run $i failed"; }
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  inner=$(grep -o 'all peers complete in [0-9.]* s' "$WORK/demo$i.log" | grep -o '[0-9.]* s' || echo "? s")
  printf '  run %d: wall %.2f s, demo says all peers complete in %s\n' "$i" "$wall" "$inner"
  WALLS+=("$wall")
done
printf '  median wall time: %.2f s\n' "$(printf '%s\n' "${WALLS[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')"

# ---- 2. peak RSS while distributing a big file with separate processes ------------------
echo; echo "== 2. owner + $NPEERS peers in a ring, separate processes on 127.0.0.1, $FILE_SIZE random file"
avail_kib=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
need_kib=$(( $(numfmt --from=iec "$FILE_SIZE") * 12 / 1024 ))
echo "  disk: $((avail_kib / 1048576)) GiB free under $WORK, ~$((need_kib / 1048576)) GiB needed"
[ "$avail_kib" -ge "$need_kib" ] || die "not enough disk space under $WORK (set BENCH_TMP elsewhere)"
mkdir -p "$WORK/owner"; FILE=$WORK/owner/sample.bin
head -c "$FILE_SIZE" /dev/urandom >"$FILE"
size=$(stat -c %s "$FILE")
OPORT=$(free_port); PORTS=(); for i in $(seq $NPEERS); do PORTS+=("$(free_port)"); done
echo "  logging: peers RUST_LOG=$PEER_LOG$([ "$PEER_LOG" = warn ] && echo ' (reduced)'), owner RUST_LOG=info (its start line marks 'ready')"
t_owner=$(date +%s.%N)
RUST_LOG=info start_timed owner owner "$OPORT" "$FILE" --peers $NPEERS --bind 127.0.0.1 --dir "$WORK/owner"
OWNER=$LAST_CHILD
until grep -q "owner serving" "$WORK/owner.log"; do
  kill -0 "$OWNER" 2>/dev/null || { LOGS=1; die "owner exited early"; }
  (( $(echo "$(date +%s.%N) - $t_owner > $DIST_TIMEOUT" | bc) )) && { LOGS=1; die "owner not ready after $DIST_TIMEOUT s"; }
  sleep 0.1
done
t0=$(date +%s.%N)
printf '  owner ready (file split and hashed) after %.2f s\n' "$(echo "$t0 - $t_owner" | bc)"
PEER=()
for i in $(seq 0 $((NPEERS - 1))); do
  mkdir -p "$WORK/peer$((i + 1))"
  RUST_LOG=$PEER_LOG start_timed "peer$((i + 1))" peer "$OPORT" "${PORTS[$i]}" "${PORTS[$(((i + 1) % NPEERS))]}" \
    --bind 127.0.0.1 --dir "$WORK/peer$((i + 1))"
  PEER+=("$LAST_CHILD")
done
declare -A DONE=() HWM=(); ndone=0
while [ "$ndone" -lt $NPEERS ]; do
  now=$(date +%s.%N)
  (( $(echo "$now - $t0 > $DIST_TIMEOUT" | bc) )) && { LOGS=1; die "not complete after $DIST_TIMEOUT s"; }
  for i in $(seq $NPEERS); do
    pid=${PEER[$((i - 1))]}
    h=$(hwm_kib "$pid"); [ "${h:-0}" -gt "${HWM[$i]:-0}" ] && HWM[$i]=$h   # /proc cross-check
    [ -z "${DONE[$i]:-}" ] && [ -f "$WORK/peer$i/sample.bin" ] && { DONE[$i]=$(echo "$now - $t0" | bc); ndone=$((ndone + 1)); }
    [ -z "${DONE[$i]:-}" ] && ! kill -0 "$pid" 2>/dev/null && { LOGS=1; die "peer$i exited early"; }
  done
  sleep 0.2
done
t_all=$(echo "$(date +%s.%N) - $t0" | bc)
for i in $(seq $NPEERS); do h=$(hwm_kib "${PEER[$((i - 1))]}"); [ "${h:-0}" -gt "${HWM[$i]:-0}" ] && HWM[$i]=$h; done
HWM[owner]=$(hwm_kib "$OWNER")
stop_pids "${PEER[@]}" "$OWNER"; wait 2>/dev/null || true; PIDS=()
for i in $(seq $NPEERS); do cmp -s "$FILE" "$WORK/peer$i/sample.bin" || die "peer$i's copy differs from the original"; done

printf '  file size: %d bytes (%.0f MiB); all %d copies identical (cmp)\n' "$size" "$(echo "$size / 1048576" | bc -l)" $NPEERS
printf '  time to all-complete (peers started -> last file present): %.2f s  (%.1f MiB/s per peer)\n' \
  "$t_all" "$(echo "$size / 1048576 / $t_all" | bc -l)"
max=0
for i in $(seq $NPEERS); do
  k=$(maxrss_kib "$WORK/peer$i.time"); k=${k:-${HWM[$i]}}; [ "$k" -gt "$max" ] && max=$k
  printf '  peer%d: complete after %6.2f s, peak RSS %7s MiB (/proc VmHWM %s MiB)\n' \
    "$i" "${DONE[$i]}" "$(mib "$k")" "$(mib "${HWM[$i]}")"
done
echo "  max peer peak RSS: $(mib "$max") MiB"
k=$(maxrss_kib "$WORK/owner.time"); echo "  owner peak RSS: $(mib "${k:-${HWM[owner]}}") MiB (/proc VmHWM $(mib "${HWM[owner]}") MiB)"
echo "  (peak RSS from /usr/bin/time -v 'Maximum resident set size')"
