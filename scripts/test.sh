#!/usr/bin/env bash
# Runs the whole test suite: unit, dataflow, end-to-end, Kafka and cluster tests, in release
# mode so the end-to-end runs over generated traces stay quick. Starts the local Kafka-API
# broker (scripts/kafka.sh) when none is answering, and stops it again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/kafka.sh status >/dev/null 2>&1; then
    scripts/kafka.sh start
    trap 'scripts/kafka.sh stop' EXIT
fi
cargo test --workspace --release "$@"
