#!/usr/bin/env bash
# Fuzzes what reads user input: the pipeline parser and validation
# (fuzz_targets/pipeline_config.rs) and the raster header and scene checks on mutated small
# GeoTIFFs (fuzz_targets/raster_header.rs), with cargo-fuzz (libFuzzer) on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it pass the flags libFuzzer's coverage needs, and no
# sanitizer is used (safe Rust needs none to find panics; GDAL is not instrumented).
# The corpus in fuzz/corpus/ seeds each run; inputs a run discovers go to a scratch folder,
# so the committed corpus stays small. A crash is saved under fuzz/artifacts/ and fails.
#
#   bash scripts/fuzz.sh                # 60 s per target (CI)
#   bash scripts/fuzz.sh 600            # 10 minutes per target
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/geofuse/fuzz-target}"
cargo fuzz build -s none --fuzz-dir fuzz
for t in pipeline_config raster_header; do
  scratch=$(mktemp -d)
  log="$scratch/log"
  echo "fuzz: $t for $secs s"
  if ! cargo fuzz run -s none --fuzz-dir fuzz "$t" "$scratch" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len=32768 -timeout=20 -rss_limit_mb=4096 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
  echo "fuzz: $t ok: ${execs:-?} executions in $secs s, ${cov:-cov: ?}, corpus +$(ls "$scratch" | grep -vc '^log$') inputs"
  rm -rf "$scratch"
done
