#!/bin/sh
# The one release build: the Dockerfile runs this script, and so does
# scripts/test.sh (CI), which then runs end-to-end tests against the binary
# it produced. Change the build here, nowhere else (tests/deploy.rs checks
# that both call this script).
#
# Profile (Cargo.toml, [profile.release]): fat LTO and one codegen unit,
# because the hot path crosses regex, aho-corasick, memchr and our engine,
# and cross-crate inlining pays there; panic = unwind is kept on purpose,
# the engine catches a panic on one line and fails that line closed.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --bin redactd
