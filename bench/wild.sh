#!/usr/bin/env bash
# Swarms with slow, idle and lying peers (issue 13): builds the release binary and the
# attacker, then runs bench/wild.py. See that file's header for the scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples --quiet
exec python3 bench/wild.py "$@"
