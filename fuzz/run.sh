#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60), starting from the
# committed seeds; new inputs go to fuzz/corpus/<target> (not committed), crashes to
# fuzz/artifacts/<target>. Needs the nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo +nightly install cargo-fuzz
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"; shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(pkt_line upload_pack receive_pack delta ref_name jwt)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orbit-fuzz-target}"
cargo +nightly fuzz build -O "${targets[@]/#/}" 2>/dev/null || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" 2>&1 | grep -E "^(stat::|#[0-9]+[[:space:]]+DONE|==[0-9]+==|SUMMARY|Done)" || true
  if ls "artifacts/$t"/crash-* "artifacts/$t"/leak-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t left artifacts in fuzz/artifacts/$t"; failed=1
  fi
done
exit "${failed:-0}"
