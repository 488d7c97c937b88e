#!/usr/bin/env bash
# bench/issue4.sh - resume figures for issue 4, with the release binary on 127.0.0.1:
#   an owner and 2 peers in a ring share a FILE_SIZE random file (default 1 GiB). When peer1
#   holds about half the chunks it is killed with SIGKILL and restarted with the same
#   command. Prints the time from restart to "resumed" (every chunk file re-verified) and
#   to complete, then restarts the complete peer once more and times its verification.
# Usage: bench/issue4.sh     Env: BENCH_TMP (default /tmp), FILE_SIZE (head -c size, default 1G)
# Needs ~5 x FILE_SIZE of disk. Stops what it started by PID and deletes its folder on exit.
set -euo pipefail

NAME=issue4.sh; TAG=bench4
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILE_SIZE=${FILE_SIZE:-1G}
need_tools
build_release
held() { local n; n=$(grep -cv '^#' "$WORK/peer1/.swarmshare/summary" 2>/dev/null); echo "${n:-0}"; }
echo "machine: $(nproc) cores, $(uname -sr); temp folder $WORK"

mkdir -p "$WORK/owner" "$WORK/peer1" "$WORK/peer2"
FILE=$WORK/owner/sample.bin
head -c "$FILE_SIZE" /dev/urandom >"$FILE"
size=$(stat -c %s "$FILE")
OPORT=$(free_port); P1=$(free_port); P2=$(free_port)
"$BIN" owner "$OPORT" "$FILE" --peers 2 --bind 127.0.0.1 --dir "$WORK/owner" >"$WORK/owner.log" 2>&1 &
PIDS+=($!)
wait_for 600 grep -qs "owner serving" "$WORK/owner.log" || die "owner not ready"
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
wait_for 600 grep -qs '"event":"peer_start"' "$WORK/peer1b.log" || die "peer1 did not resume"
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
wait_for 600 grep -qs '"event":"complete"' "$WORK/peer1c.log" || die "complete peer did not verify"
printf '  restart of the complete peer -> complete (every chunk and the %d MiB file re-hashed): %.2f s\n' \
  $((size / 1048576)) "$(since "$t0")"
echo "  chunks downloaded by that restart: $(grep -c '"event":"chunk_received"' "$WORK/peer1c.log" || true)"
