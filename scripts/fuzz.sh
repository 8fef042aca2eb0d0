#!/usr/bin/env bash
# Fuzzing with cargo fuzz (libFuzzer, AddressSanitizer) on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags.
#   scripts/fuzz.sh [seconds per target] [target ...]
# Defaults: 60 s, every target in fuzz/Cargo.toml. CI runs a short time box
# (scripts/test.sh); for a long run give e.g. 3600. Findings land in
# fuzz/artifacts/<target>/: add each as a regression test, then fix.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(json_scanner logfmt_pairs container_decoder engine_line rule_file agent_config disk_buffer)
fi
cargo fuzz build --release
failed=0
for t in "${targets[@]}"; do
  # The committed seeds stay as they are; new inputs go to a scratch dir.
  work="fuzz/target/corpus-work/$t"
  mkdir -p "$work"
  if ! cargo fuzz run --release "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 >"fuzz/target/$t.log" 2>&1; then
    failed=1
    echo "$t: FAILED (see fuzz/target/$t.log and fuzz/artifacts/$t/)"
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|panicked at|SUMMARY" "fuzz/target/$t.log" | sed "s/^/$t: /"
done
exit $failed
