#!/usr/bin/env bash
# Discovery through the DHT (issue 18): builds the release binary and the DHT testnet
# example, then runs bench/dht.py. See that file's header for what it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples --quiet
exec python3 bench/dht.py "$@"
