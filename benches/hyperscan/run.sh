#!/usr/bin/env bash
# Hyperscan on the built-in library's keywords and keyword-less patterns,
# line by line, on a slice of the shared corpus and on its clean lines.
# Needs Debian's libhyperscan-dev (x86_64); not run by CI.
#   benches/hyperscan/run.sh [MB]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mb=${1:-20}
work="$root/target/bench-hyperscan"
mkdir -p "$work"
dpkg -s libhyperscan-dev >/dev/null 2>&1 || sudo apt-get install -y libhyperscan-dev
gcc -O2 -o "$work/hsbench" "$here/hsbench.c" -lhs
python3 "$here/extract.py" "$root/rules" "$work"
corpus="$work/corpus-$mb.jsonl"
[ -s "$corpus" ] || python3 "$root/../shared/bench/gen_corpus.py" --mb "$mb" --seed 1 > "$corpus"
# The clean lines: what redactd's full library leaves unchanged, repeated
# to the corpus's size.
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
"$root/target/release/redactd" --threads 1 < "$corpus" > "$work/out.jsonl"
python3 - "$corpus" "$work/out.jsonl" "$work/clean.jsonl" <<'PY'
import sys
a = open(sys.argv[1], 'rb').read().split(b'\n')
b = open(sys.argv[2], 'rb').read().split(b'\n')
clean = b'\n'.join(x for x, y in zip(a, b) if x == y and x) + b'\n'
total = sum(len(x) + 1 for x in a)
# Repeated to the corpus's size, as benches/compare.sh does.
with open(sys.argv[3], 'wb') as f:
    f.write(clean * max(1, total // len(clean)))
PY
for f in "$corpus" "$work/clean.jsonl"; do
  "$work/hsbench" "$f" "$work/keywords.txt" lit
  "$work/hsbench" "$f" "$work/patterns.txt" re
done
