#!/usr/bin/env bash
# Throughput of redactd next to cat and sed on the shared corpus, in one run.
#
#   benches/compare.sh [MB]        (default 100; the corpus is cached in target/bench-compare)
#
# Every tool reads the corpus on stdin and writes a file; each is run RUNS
# times (default 3) and the best time is kept. Printed: MB/s (10^6 bytes/s),
# the ratio to cat in this same run (these machines are noisy: the ratio is
# what holds), and the planted values that survived each tool's output
# (check_survivors.py): speed never counts if values leak. redactd-ref and
# redactd-full run on one thread, redactd-full-mt on all cores.
#
# One more row, redactd-clean: the full library on one thread over lines
# with nothing to redact (the corpus lines that redactd-full leaves
# unchanged, repeated to the corpus's size), timed with cat on the same
# file; its ratio is to that cat.
set -euo pipefail

MB=${1:-100}
RUNS=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
out=$root/target/bench-compare
mkdir -p "$out"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/redactd

corpus=$out/corpus-$MB.jsonl
planted=$out/planted-$MB.tsv
if [ ! -s "$corpus" ] || [ ! -s "$planted" ]; then
  python3 "$shared/gen_corpus.py" --mb "$MB" --seed 1 --manifest "$planted" > "$corpus"
fi
python3 "$shared/render_ruleset.py" sed > "$out/ref.sed"
bytes=$(stat -c %s "$corpus")

best() { # best wall time in seconds of RUNS runs of "$@" (stdin corpus, stdout file)
  local name=$1; shift
  local best=""
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" < "$corpus" > "$out/out.$name"
    t1=$(date +%s.%N)
    best=$(python3 -c "t=$t1-$t0; b='$best'; print(t if not b or t<float(b) else b)")
  done
  echo "$best"
}

declare -A secs
secs[cat]=$(best cat cat)
secs[sed]=$(best sed sed -E -f "$out/ref.sed")
secs[redactd-ref]=$(best redactd-ref "$bin" --threads 1 --no-default-rules --rules "$root/benches/ruleset-reference.toml")
secs[redactd-full]=$(best redactd-full "$bin" --threads 1)
secs[redactd-full-mt]=$(best redactd-full-mt "$bin" --threads "$(nproc)")

# Lines with nothing to redact: those redactd-full gave back unchanged.
clean=$out/clean-$MB.jsonl
if [ ! -s "$clean" ]; then
  python3 - "$corpus" "$out/out.redactd-full" "$clean" "$bytes" <<'PY'
import sys
src, red, dst, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(src, "rb") as a, open(red, "rb") as b:
    keep = [x for x, y in zip(a, b) if x == y]
with open(dst, "wb") as f:
    n = 0
    while keep and n < size:
        for x in keep:
            f.write(x)
            n += len(x)
PY
fi
clean_bytes=$(stat -c %s "$clean")
clean_lines=$(wc -l < "$clean")
corpus_saved=$corpus
corpus=$clean
secs[cat-clean]=$(best cat-clean cat)
secs[redactd-clean]=$(best redactd-clean "$bin" --threads 1)
corpus=$corpus_saved
cmp -s "$clean" "$out/out.redactd-clean" || echo "warning: redactd changed lines of the clean file" >&2

printf '\nmachine: %s, %s cores; corpus: %s MB (gen_corpus.py --mb %s --seed 1); best of %s runs\n' \
  "$(uname -m)" "$(nproc)" "$((bytes / 1000000))" "$MB" "$RUNS"
printf '%-14s %10s %10s %10s %14s\n' tool seconds MB/s x_cat survivors
for t in cat sed redactd-ref redactd-full redactd-full-mt; do
  s=${secs[$t]}
  surv="-"
  if [ "$t" != cat ]; then
    surv=$(python3 "$shared/check_survivors.py" "$planted" "$out/out.$t" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%d/%d" % (d["survived"], d["planted"]))')
  fi
  python3 -c "
b=$bytes; s=$s; c=${secs[cat]}
print('%-14s %10.3f %10.1f %10.3f %14s' % ('$t', s, b/s/1e6, c/s, '$surv'))"
done
python3 -c "
b=$clean_bytes; s=${secs[redactd-clean]}; c=${secs[cat-clean]}
print('%-14s %10.3f %10.1f %10.3f %14s' % ('redactd-clean', s, b/s/1e6, c/s, '-'))
print('  (clean: %d lines of nothing to redact, %.0f MB; cat on it: %.1f MB/s)' % ($clean_lines, b/1e6, b/c/1e6))"
python3 -c "print('redactd-ref / sed: %.2fx; full library %s threads / 1 thread: %.2fx' % (${secs[sed]}/${secs[redactd-ref]}, '$(nproc)', ${secs[redactd-full]}/${secs[redactd-full-mt]}))"
