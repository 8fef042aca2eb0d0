#!/usr/bin/env bash
# Kafka topic-to-topic throughput on this machine, in one run: a plain
# consume→produce copy (no redaction) next to redactd at-least-once and
# exactly-once, against a Tansu broker process (installed by
# scripts/test.sh) and against librdkafka's mock cluster. Release build.
# Usage: benches/kafka.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
sh scripts/build-release.sh
for broker in tansu mock; do
  KAFKA_BENCH_BROKER=$broker KAFKA_BENCH_EVENTS="${1:-200000}" REDACTD_BIN="$PWD/target/release/redactd" \
    cargo test --release --locked --test kafka -- --ignored --nocapture throughput_report 2>&1 \
    | grep -E "^broker:|events/s|test result"
done
