# bench/lib.sh - shared by the bench scripts (sourced, not run). Before sourcing, a script
# sets NAME (for messages) and TAG (for its temp folder). Provides: ROOT, BIN, WORK, PIDS
# (append every PID you start; all are killed and WORK deleted on exit), die, now, since,
# wait_for, free_port, need_tools, build_release.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/swarmshare
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/swarmshare-$TAG.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "$NAME: $*" >&2; exit 1; }
now() { date +%s.%N; }
free_port() {  # a port nobody listens on and that this script has not handed out yet
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ " ${USED:-} " == *" $p "* ]] && continue
    [ -z "$(ss -Hltn "sport = :$p")" ] && { USED="${USED:-} $p"; echo "$p"; return; }
  done
}
need_tools() {  # installs bc and iproute2 (ss) with apt-get when missing
  local missing=()
  command -v bc >/dev/null || missing+=(bc)
  command -v ss >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } || die "cannot install ${missing[*]}"
  fi
}
build_release() {
  echo "== building release binary"
  (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
}
since() { echo "$(now) - $1" | bc; }
wait_for() {  # wait_for SECONDS CMD...: poll CMD every 50 ms; fails after SECONDS
  local limit=$1; shift; local t0; t0=$(now)
  until "$@"; do
    (( $(echo "$(since "$t0") > $limit" | bc) )) && return 1
    sleep 0.05
  done
}
