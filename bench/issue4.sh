#!/usr/bin/env bash
# bench/issue4.sh - resume figures for issue 4, with the release binary on 127.0.0.1:
#   an owner and 2 peers in a ring share a FILE_SIZE random file (default 1 GiB). When peer1
#   holds about half the chunks it is killed with SIGKILL and restarted with the same
#   command. Prints the time from restart to "resumed" (every chunk file re-verified) and
#   to complete, then restarts the complete peer once more and times its verification.
# Usage: bench/issue4.sh     Env: BENCH_TMP (default /tmp), FILE_SIZE (head -c size, default 1G)
# Needs ~5 x FILE_SIZE of disk. Stops what it started by PID and deletes its folder on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/swarmshare
FILE_SIZE=${FILE_SIZE:-1G}
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/swarmshare-bench4.XXXXXX")
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "issue4.sh: $*" >&2; tail -n 3 "$WORK"/*.log >&2 || true; exit 1; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ " ${USED:-} " == *" $p "* ]] && continue
    [ -z "$(ss -Hltn "sport = :$p")" ] && { USED="${USED:-} $p"; echo "$p"; return; }
  done
}
wait_for() {  # wait_for SECONDS CMD...: poll CMD every 50 ms
  local limit=$1; shift; local t0; t0=$(now)
  until "$@"; do
    (( $(echo "$(since "$t0") > $limit" | bc) )) && return 1
    sleep 0.05
  done
}
held() { local n; n=$(grep -cv '^#' "$WORK/peer1/.swarmshare/summary" 2>/dev/null); echo "${n:-0}"; }

missing=()
command -v bc >/dev/null || missing+=(bc)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || die "cannot install ${missing[*]}"
fi
echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
echo "machine: $(nproc) cores, $(uname -sr); temp folder $WORK"

mkdir -p "$WORK/owner" "$WORK/peer1" "$WORK/peer2"
FILE=$WORK/owner/sample.bin
head -c "$FILE_SIZE" /dev/urandom >"$FILE"
size=$(stat -c %s "$FILE")
OPORT=$(free_port); P1=$(free_port); P2=$(free_port)
"$BIN" owner "$OPORT" "$FILE" --peers 2 --bind 127.0.0.1 --dir "$WORK/owner" >"$WORK/owner.log" 2>&1 &
PIDS+=($!)
wait_for 600 grep -q "owner serving" "$WORK/owner.log" || die "owner not ready"
start_peer() {  # start_peer N PORT NEIGHBOR LOG
  RUST_LOG=info "$BIN" --log-format json peer "$OPORT" "$2" "$3" --bind 127.0.0.1 --dir "$WORK/peer$1" >"$4" 2>&1 &
  PIDS+=($!); LAST=$!
}
start_peer 1 "$P1" "$P2" "$WORK/peer1.log"; PEER1=$LAST
start_peer 2 "$P2" "$P1" "$WORK/peer2.log"
chunks=$(( (size + 102399) / 102400 ))
half() { [ "$(held)" -ge $((chunks / 2)) ]; }
wait_for 600 half || die "peer1 never reached half"
kill -KILL "$PEER1"; wait "$PEER1" 2>/dev/null || true
echo "== killed peer1 (SIGKILL) holding $(held) of $chunks chunks per its summary"
t0=$(now)
start_peer 1 "$P1" "$P2" "$WORK/peer1b.log"; PEER1=$LAST
wait_for 600 grep -q '"event":"peer_start"' "$WORK/peer1b.log" || die "peer1 did not resume"
t_resume=$(since "$t0")
held_at=$(grep -o '"event":"peer_start"[^}]*' "$WORK/peer1b.log" | grep -o '"held":[0-9]*' | cut -d: -f2)
wait_for 900 test -f "$WORK/peer1/sample.bin" || die "peer1 did not complete"
t_done=$(since "$t0")
cmp -s "$FILE" "$WORK/peer1/sample.bin" || die "peer1's copy differs"
printf '  restart -> resumed (verified %s chunks on disk): %.2f s\n' "$held_at" "$t_resume"
printf '  restart -> complete, file identical (cmp):        %.2f s\n' "$t_done"

kill -TERM "$PEER1"; wait "$PEER1" 2>/dev/null || true
t0=$(now)
start_peer 1 "$P1" "$P2" "$WORK/peer1c.log"; PEER1=$LAST
wait_for 600 grep -q '"event":"complete"' "$WORK/peer1c.log" || die "complete peer did not verify"
printf '  restart of the complete peer -> complete (every chunk and the %d MiB file re-hashed): %.2f s\n' \
  $((size / 1048576)) "$(since "$t0")"
echo "  chunks downloaded by that restart: $(grep -c '"event":"chunk_received"' "$WORK/peer1c.log" || true)"
