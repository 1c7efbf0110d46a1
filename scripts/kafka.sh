#!/usr/bin/env bash
# A local Kafka-API broker (tansu, in memory) for development and tests.
#
#   scripts/kafka.sh start    install tansu if needed, start it on 127.0.0.1:9092, create the topics
#   scripts/kafka.sh stop     stop it
#   scripts/kafka.sh status   is it answering?
#   scripts/kafka.sh topics   (re)create the default topics on a running broker
#   scripts/kafka.sh install  only install the pinned tansu
#
# Environment: KAFKA_PORT (9092), KAFKA_DIR (target/kafka: pid file and log),
# INPUT_PARTITIONS (4, for llm-telemetry).
set -euo pipefail

TANSU_VERSION=0.6.0
PORT="${KAFKA_PORT:-9092}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${KAFKA_DIR:-$ROOT/target/kafka}"
PID_FILE="$DIR/tansu.pid"
LOG_FILE="$DIR/tansu.log"
INPUT_PARTITIONS="${INPUT_PARTITIONS:-4}"
BROKER="tcp://127.0.0.1:$PORT"
OUTPUT_TOPICS="sentinel.anomalies sentinel.decisions sentinel.alerts sentinel.actions sentinel.incidents sentinel.judgements sentinel.deadletter sentinel.aggregates sentinel.anomaly-events"

tansu_bin() {
    command -v tansu 2>/dev/null || echo "$HOME/.cargo/bin/tansu"
}

install() {
    local bin
    bin="$(tansu_bin)"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION"; then
        return 0
    fi
    echo "kafka.sh: installing tansu $TANSU_VERSION (a cold build takes 7-10 minutes)" >&2
    cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked >&2 ||
        cargo install tansu --version "$TANSU_VERSION" --features dynostore >&2
}

answering() {
    # The port accepts connections and the broker lists topics.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && "$(tansu_bin)" topic list --broker "$BROKER" >/dev/null 2>&1
}

running_pid() {
    [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && cat "$PID_FILE"
}

create_topic() {
    local name="$1" partitions="$2"
    if "$(tansu_bin)" topic list --broker "$BROKER" 2>/dev/null | grep -q "\"$name\"\|\b$name\b"; then
        return 0
    fi
    "$(tansu_bin)" topic create "$name" --partitions "$partitions" --broker "$BROKER" >/dev/null
}

topics() {
    create_topic llm-telemetry "$INPUT_PARTITIONS"
    for t in $OUTPUT_TOPICS; do
        create_topic "$t" 4
    done
    # Resume points, keyed per group and partition; one partition keeps them in write order.
    create_topic sentinel.checkpoints 1
}

start() {
    install
    mkdir -p "$DIR"
    if running_pid >/dev/null; then
        echo "kafka.sh: tansu already running (pid $(cat "$PID_FILE")) on 127.0.0.1:$PORT" >&2
    else
        nohup "$(tansu_bin)" broker \
            --listener-url "tcp://127.0.0.1:$PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$PORT" \
            --storage-engine memory://tansu/ >"$LOG_FILE" 2>&1 &
        echo $! >"$PID_FILE"
    fi
    for _ in $(seq 1 100); do
        if answering; then
            topics
            echo "kafka.sh: tansu $TANSU_VERSION on 127.0.0.1:$PORT (log $LOG_FILE)" >&2
            return 0
        fi
        if ! running_pid >/dev/null; then
            echo "kafka.sh: tansu exited; its log:" >&2
            tail -20 "$LOG_FILE" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "kafka.sh: tansu did not answer on 127.0.0.1:$PORT within 20 s" >&2
    return 1
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if answering; then echo "up on 127.0.0.1:$PORT"; else echo "down"; exit 1; fi ;;
    topics) topics ;;
    install) install ;;
    *)
        echo "usage: $0 start|stop|status|topics|install" >&2
        exit 2
        ;;
esac
