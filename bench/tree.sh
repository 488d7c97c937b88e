#!/usr/bin/env bash
# Trees (issue 17): builds the release binary, then runs bench/tree.py. See that file's
# header for the scenarios and their settings.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/tree.py "$@"
