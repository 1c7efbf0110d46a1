#!/usr/bin/env bash
# Runs the whole test suite: unit, dataflow and end-to-end tests, in release mode so the
# end-to-end runs over generated traces stay quick. (The Kafka tests and the local broker they
# need arrive with the Kafka issue; this script will start it.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release "$@"
