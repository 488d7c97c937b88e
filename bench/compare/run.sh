#!/usr/bin/env bash
# bench/compare/run.sh - issue 6: time until every peer has the file, swarmshare (ring and
# swarm modes) next to aria2 and libtorrent, on 127.0.0.1 of this machine.
#   Scenarios: uncapped5 (N=5, no caps), capped5 (N=5, every process uploads at most
#   10 MB/s = 10,000,000 B/s), capped10 (N=10, same caps), capped20 (N=20, same caps),
#   uncapped5-1g (N=5, no caps, a 1 GiB file whatever FILE_SIZE says). The default set runs
#   all of them twice: with the folders on a tmpfs and on the disk. Prints a table and writes
#   OUT/results.md, OUT/results.jsonl and OUT/completion.png (one subfolder per file system
#   and file size, their results joined in OUT).
# Usage: bench/compare/run.sh
# Env:   OUT (default /tmp/swarmshare-compare)  FILE_SIZE (default 100M, head -c syntax)
#        SCENARIOS (default all; names or 1 2 3)  TOOLS (default all: swarmshare aria2 libtorrent;
#        also swarmshare-ring, swarmshare-swarm)  TIMEOUT (s per run, 300)  TRACKER (opentracker|python)
#        BENCH_TMP (default /tmp)  BENCH_FS (both|tmpfs|disk, default both. tmpfs: every tool's
#        folders on a tmpfs mounted over the work folder, so the disk is out of the race; disk: on
#        BENCH_TMP's file system)  SKIP_1G=1 (leave uncapped5-1g out of "all")  SKIP_BUILD=1
#        KEEP_LOGS=1  SS_EXIT_WHEN_DONE (auto|0)  SWARMSHARE_BIN (another binary; no build)
#        ROUNDS (default 1: every scenario and tool run this many times, rounds interleaved, so a
#        noisy minute hits every tool alike; the table then adds medians over the rounds)
# Installs what it needs with apt-get; stops everything it started by PID; deletes its temp folder.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${SWARMSHARE_BIN:-$ROOT/target/release/swarmshare}
[ -n "${SWARMSHARE_BIN:-}" ] && SKIP_BUILD=1
OUT=${OUT:-/tmp/swarmshare-compare}
FILE_SIZE=${FILE_SIZE:-100M}
SCENARIOS=${SCENARIOS:-all}
TOOLS=${TOOLS:-all}
TIMEOUT=${TIMEOUT:-300}
TRACKER=${TRACKER:-opentracker}
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: ROUNDS must be a whole number from 1 to 99, not '$ROUNDS'" >&2; exit 1; }
SS_EXIT_WHEN_DONE=${SS_EXIT_WHEN_DONE:-auto}
PY=/usr/bin/python3   # Debian's python3: python3-libtorrent and python3-matplotlib live there

die() { echo "run.sh: $*" >&2; exit 1; }

WORK=""
DRIVER=""
MOUNTED=""
BENCH_FS=${BENCH_FS:-both}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DRIVER" 2>/dev/null || true
  fi
  # Anything the driver started and did not stop (e.g. it was killed): by PID, TERM then KILL.
  if [ -n "$WORK" ] && [ -f "$WORK/pids" ]; then
    local live=()
    while read -r p; do kill -0 "$p" 2>/dev/null && live+=("$p"); done <"$WORK/pids"
    if [ ${#live[@]} -gt 0 ]; then
      kill -TERM "${live[@]}" 2>/dev/null || true
      sleep 2
      kill -KILL "${live[@]}" 2>/dev/null || true
    fi
  fi
  [ -n "$MOUNTED" ] && umount -l "$MOUNTED" 2>/dev/null
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

small=()  # scenarios on FILE_SIZE
big=0     # uncapped5-1g wanted
for s in ${SCENARIOS//,/ }; do
  case $s in
    all) small+=(uncapped5 capped5 capped10 capped20); [ "${SKIP_1G:-0}" = 1 ] || big=1 ;;
    uncapped5|capped5|capped10|capped20|1|2|3) small+=("$s") ;;
    uncapped5-1g) big=1 ;;
    *) die "unknown scenario '$s' (uncapped5 capped5 capped10 capped20 uncapped5-1g, or 1 2 3)" ;;
  esac
done
case $BENCH_FS in both|tmpfs|disk) ;; *) die "BENCH_FS must be both, tmpfs or disk, not '$BENCH_FS'" ;; esac

# ---- more than one file system or file size: one run of this script for each, joined
if [ -z "${BENCH_PART:-}" ] && { [ "$BENCH_FS" = both ] || [ "$big" = 1 ]; }; then
  trap - EXIT
  if [ -z "${SWARMSHARE_BIN:-}" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet) || echo "   WARNING: the build failed; using the existing binary"
  fi
  fss=(tmpfs disk)
  [ "$BENCH_FS" = both ] || fss=("$BENCH_FS")
  mkdir -p "$OUT"
  : >"$OUT/results.jsonl"
  rc=0
  for fs in "${fss[@]}"; do
    parts=()
    [ ${#small[@]} -gt 0 ] && parts+=("$FILE_SIZE:$(IFS=,; echo "${small[*]}")")
    [ "$big" = 1 ] && parts+=("1G:uncapped5")
    for part in "${parts[@]}"; do
      size=${part%%:*}
      echo
      echo "==== folders on $fs, F = $size"
      BENCH_PART=1 BENCH_FS=$fs FILE_SIZE=$size SCENARIOS=${part#*:} OUT=$OUT/$fs-$size SKIP_BUILD=1 \
        "$0" || rc=$?
      cat "$OUT/$fs-$size/results.jsonl" >>"$OUT/results.jsonl" 2>/dev/null || true
    done
  done
  echo
  echo "==== all runs"
  "$PY" "$HERE/report.py" "$OUT" "$(nproc) cores, $(uname -r), $(date '+%F %H:%M'); each part's header: $OUT/*/results.md"
  exit "$rc"
fi
SCENARIOS=$(IFS=,; echo "${small[*]}")
for t in ${TOOLS//,/ }; do
  case $t in all|swarmshare|swarmshare-ring|swarmshare-swarm|aria2|libtorrent) ;;
    *) die "unknown tool '$t' (swarmshare swarmshare-ring swarmshare-swarm aria2 libtorrent)" ;; esac
done

want() {  # want TOOL: is TOOL selected?
  [ "$TOOLS" = all ] && return 0
  [[ " ${TOOLS//,/ } " == *" $1 "* ]] && return 0
  [ "$1" = swarmshare ] && [[ "$TOOLS" == *swarmshare-* ]] && return 0
  return 1
}

# ---- packages (installed when missing; never assumed)
pkgs=()
command -v head >/dev/null || pkgs+=(coreutils)
[ -x "$PY" ] || pkgs+=(python3)
if want aria2 || want libtorrent; then
  "$PY" -c 'import libtorrent' 2>/dev/null || pkgs+=(python3-libtorrent)  # also makes the .torrent
  [ "$TRACKER" = opentracker ] && ! command -v opentracker >/dev/null && pkgs+=(opentracker)
fi
want aria2 && ! command -v aria2c >/dev/null && pkgs+=(aria2)
command -v iperf3 >/dev/null || pkgs+=(iperf3)
"$PY" -c 'import matplotlib' 2>/dev/null || pkgs+=(python3-matplotlib)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "== installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  if ! apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; then
    # Try them one by one, so that one missing package does not stop the others.
    for p in "${pkgs[@]}"; do apt-get install -y -qq "$p" >/dev/null 2>&1 || echo "   could not install $p"; done
  fi
fi
if ! "$PY" -c 'import matplotlib' 2>/dev/null && ! command -v gnuplot >/dev/null; then
  echo "   no matplotlib: trying gnuplot-nox for the plot"
  apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || echo "   no gnuplot either: no plot"
fi
if want aria2 || want libtorrent; then
  "$PY" -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent is needed for aria2/libtorrent runs"
fi
want aria2 && { command -v aria2c >/dev/null || die "aria2c not installed"; }
if [ "$TRACKER" = opentracker ] && (want aria2 || want libtorrent) && ! command -v opentracker >/dev/null; then
  echo "   note: no opentracker; using the Python tracker (tracker.py)"
  TRACKER=python
fi

# ---- swarmshare binary
ss_args=()
if want swarmshare; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== cargo build --release"
    if ! (cd "$ROOT" && cargo build --release --quiet); then
      [ -x "$BIN" ] || die "cargo build --release failed and there is no binary"
      echo "   WARNING: the build failed (src/ being edited?); using the existing $BIN ($(date -r "$BIN" '+%F %T'))"
    fi
  fi
  [ -x "$BIN" ] || die "no binary at $BIN"
  peer_help=$("$BIN" peer --help 2>&1 || true)
  owner_help=$("$BIN" owner --help 2>&1 || true)
  if grep -q -- '--upload-limit' <<<"$peer_help" && grep -q -- '--upload-limit' <<<"$owner_help"; then
    ss_args+=(--ss-upload-limit yes)
  else
    echo "   NOTE: this swarmshare binary has no --upload-limit (owner and peer): the capped swarmshare runs are skipped"
    ss_args+=(--ss-upload-limit no)
  fi
  if [ "$SS_EXIT_WHEN_DONE" != 0 ] && grep -q -- '--exit-when-done' <<<"$peer_help"; then
    ss_args+=(--ss-exit-when-done yes)
    echo "   swarmshare peers run with --exit-when-done"
  else
    ss_args+=(--ss-exit-when-done no)
    [ "$SS_EXIT_WHEN_DONE" != 0 ] && echo "   note: this swarmshare binary has no --exit-when-done: peers run until stopped"
  fi
fi

# ---- work folder, the file, the torrent
mkdir -p "${BENCH_TMP:-/tmp}" "$OUT"
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/swarmshare-compare.XXXXXX")
size=$(head -c "$FILE_SIZE" /dev/zero | wc -c)
[ "$size" -gt 0 ] || die "FILE_SIZE=$FILE_SIZE gives an empty file"
nmax=5
[[ "$SCENARIOS" =~ (capped10|3) ]] && nmax=10
[[ "$SCENARIOS" =~ ^(all|)$ ]] || [[ "$SCENARIOS" =~ capped20 ]] && nmax=20
# The tmpfs may hold up to (2N+4)·F (an older swarmshare layout wrote each byte twice);
# the check asks for what one run of the write-once layout or a BitTorrent client needs:
# N copies, the owner's, the source, the torrent tools' and a margin.
need=$(( (2 * nmax + 4) * size / 1024 ))
need_free=$(( (nmax + 4) * size / 1024 ))
case $BENCH_FS in
  tmpfs)
    # Every tool writes into RAM: the race is the network and the CPU, not this VM's disk.
    if mount -t tmpfs -o "size=$(( need + 262144 ))k" swarmshare-bench "$WORK" 2>/dev/null; then
      MOUNTED=$WORK
    else
      echo "   note: cannot mount a tmpfs here (not root?): running on the disk (BENCH_FS=disk)"
      BENCH_FS=disk
    fi ;;
  disk) ;;
esac
SRC=$WORK/sample.bin
head -c "$FILE_SIZE" /dev/urandom >"$SRC"
sync  # on the disk, the first tool must not race the write-out of the sample
avail=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
[ "$avail" -gt "$need_free" ] || die "need about $((need_free / 1024)) MiB free in ${BENCH_TMP:-/tmp}, have $((avail / 1024)) MiB"
TORRENT=$WORK/sample.torrent
INFOHASH=none
if want aria2 || want libtorrent; then
  INFOHASH=$("$PY" "$HERE/mktorrent.py" "$SRC" "$TORRENT")  # 128 KiB pieces, v1 only
fi

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$ROOT" status --porcelain -- src 2>/dev/null | head -1)
versions="swarmshare $commit${dirty:+ (src modified)}"
command -v aria2c >/dev/null && versions+=", aria2 $(aria2c --version | awk 'NR==1 {print $3}')"
"$PY" -c 'import libtorrent' 2>/dev/null && versions+=", libtorrent $("$PY" -c 'import libtorrent as lt; print(lt.__version__)')"
# ---- the ceiling: raw TCP over loopback, one stream, for 3 s
ceiling="raw loopback TCP: not measured (no iperf3)"
if command -v iperf3 >/dev/null; then
  iport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  iperf3 -s -1 -B 127.0.0.1 -p "$iport" >/dev/null 2>&1 &
  ipid=$!
  echo "$ipid" >>"$WORK/pids"
  sleep 0.5
  if bps=$(iperf3 -c 127.0.0.1 -p "$iport" -t 3 -J 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'); then
    ceiling=$("$PY" -c "b=float('$bps'); f=$size; print('raw loopback TCP (iperf3, 1 stream, 3 s): %.1f Gbit/s: N x F through one link takes %.2f s (N=5), %.2f s (N=10)' % (b/1e9, 5*f*8/b, 10*f*8/b))")
  fi
  kill "$ipid" 2>/dev/null || true
  wait "$ipid" 2>/dev/null || true
fi
echo "$ceiling"

header1="F = $FILE_SIZE ($size B), $(nproc) cores, $(uname -r), $(date '+%F %H:%M'), load $(cut -d' ' -f1-3 /proc/loadavg), folders on $BENCH_FS"
header2="$versions; tracker: $TRACKER; piece 128 KiB / chunk 100 KiB; caps 10,000,000 B/s per process (capped runs)"
header3=$ceiling
echo "$header1"
echo "$header2"

# ---- the runs (in the background, so that Ctrl-C reaches the trap at once)
extra=()
[ "${KEEP_LOGS:-0}" = 1 ] && extra+=(--keep-logs)
"$PY" "$HERE/bench.py" --bin "$BIN" --src "$SRC" --torrent "$TORRENT" --infohash "$INFOHASH" \
  --out "$OUT" --work "$WORK" --scenarios "$SCENARIOS" --tools "$TOOLS" --timeout "$TIMEOUT" --fs "$BENCH_FS" --rounds "$ROUNDS" \
  --tracker "$( [ "$TRACKER" = python ] && echo python || echo opentracker)" \
  "${ss_args[@]}" "${extra[@]}" &
DRIVER=$!
set +e
wait "$DRIVER"
drc=$?
set -e
DRIVER=""
[ "$drc" -eq 0 ] || echo "run.sh: bench.py exited with $drc; the table has the runs that finished" >&2

echo
"$PY" "$HERE/report.py" "$OUT" "$header1" "$header2" "$header3"
exit "$drc"
