#!/usr/bin/env bash
# bench/issue5.sh - swarm figures for issue 5, release binary, 127.0.0.1:
#   N peers (default 12) share a FILE_SIZE random file (default 100M) three ways:
#     pure-ring  the seed's ring, each peer downloads from its named neighbor only (--neighbors 1)
#     ring       the seed's three-argument form with the default 4 neighbor slots
#     swarm      swarm mode: no neighbor named, peers find each other
#   For each: time from starting the peers to the last verified file, and the bytes the
#   owner uploaded as a multiple of the file size (from its chunk_sent events; ideal 1.0).
# Usage: bench/issue5.sh     Env: BENCH_TMP (default /tmp), FILE_SIZE (default 100M), NPEERS (12)
# Stops what it started by PID and deletes its folder on exit.
set -euo pipefail

NAME=issue5.sh; TAG=bench5
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILE_SIZE=${FILE_SIZE:-100M}; NPEERS=${NPEERS:-12}
need_tools
build_release
echo "machine: $(nproc) cores, $(uname -sr); $NPEERS peers, $FILE_SIZE file"
SRC=$WORK/sample.bin
head -c "$FILE_SIZE" /dev/urandom >"$SRC"
size=$(stat -c %s "$SRC")

run() {  # run NAME MODE
  local name=$1 mode=$2 d=$WORK/$1 t0 i n done_all
  mkdir -p "$d/owner"; cp "$SRC" "$d/owner/sample.bin"
  local oport; oport=$(free_port)
  local ports=(); for i in $(seq "$NPEERS"); do ports+=("$(free_port)"); done
  RUST_LOG=info "$BIN" --log-format json owner "$oport" "$d/owner/sample.bin" --peers "$NPEERS" \
    --bind 127.0.0.1 --dir "$d/owner" >"$d/owner.log" 2>"$d/owner.err" &
  local owner=$!; PIDS+=("$owner")
  until grep -qs '"event":"owner_start"' "$d/owner.log"; do sleep 0.05; done
  local peers=()
  t0=$(now)
  for i in $(seq 0 $((NPEERS - 1))); do
    mkdir -p "$d/p$i"
    local args=("$oport" "${ports[$i]}")
    case $mode in
      pure-ring) args+=("${ports[$(((i + 1) % NPEERS))]}" --neighbors 1) ;;
      ring) args+=("${ports[$(((i + 1) % NPEERS))]}") ;;
      swarm) ;;
    esac
    RUST_LOG=warn "$BIN" peer "${args[@]}" --bind 127.0.0.1 --dir "$d/p$i" >/dev/null 2>"$d/p$i.err" &
    PIDS+=($!); peers+=($!)
  done
  n=0
  until [ "$n" -eq "$NPEERS" ]; do
    n=0; for i in $(seq 0 $((NPEERS - 1))); do [ -f "$d/p$i/sample.bin" ] && n=$((n + 1)); done
    (( $(echo "$(now) - $t0 > 600" | bc) )) && die "$name: not complete after 600 s"
    sleep 0.05
  done
  done_all=$(echo "$(now) - $t0" | bc)
  for i in $(seq 0 $((NPEERS - 1))); do cmp -s "$SRC" "$d/p$i/sample.bin" || die "$name: p$i differs"; done
  kill -TERM "${peers[@]}" "$owner" 2>/dev/null || true; wait "${peers[@]}" "$owner" 2>/dev/null || true
  local sent; sent=$(grep -o '"event":"chunk_sent","chunk":[0-9]*,"peer":"[^"]*","bytes":[0-9]*' "$d/owner.log" \
    | grep -o '[0-9]*$' | paste -sd+ | bc)
  printf '  %-10s all %d complete in %6.2f s; owner uploaded %.2f x the file (%d bytes)\n' \
    "$name" "$NPEERS" "$done_all" "$(echo "$sent / $size" | bc -l)" "$sent"
  rm -rf "$d"
}
echo "== $NPEERS peers, $((size / 1048576)) MiB, loopback, uncapped"
run pure-ring pure-ring
run ring ring
run swarm swarm
