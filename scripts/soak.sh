#!/usr/bin/env bash
# Kill-and-resume soak: KILLS times, SIGKILLs `geofuse run` over a multi-scene
# synthetic pipeline at a random moment of its run, reruns it to the end, and checks that
# every product is byte-identical to an uninterrupted run's and that no temporary file is
# left. Prints the kill moments and a verdict; exit 1 on a
# difference.
#
#   bash scripts/soak.sh [KILLS] [SCENES] [SIZE]      (default 20 4 192)
set -euo pipefail
kills=${1:-20}
scenes=${2:-4}
size=${3:-192}
bin=${GEOFUSE:-${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}/release/geofuse}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" synth --out "$work" --size "$size" --seed 21 --scenes "$scenes" > /dev/null
pipe="$work/pipeline.toml"
# Hand-crafted methods only (the learned ones are slower; their saving path is the same).
python3 - "$pipe" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s[: s.index('\n[[methods]]\nname = "learned-kernel"')]
s = s.replace("tile_size = 256", "tile_size = 64").replace("trees = 100", "trees = 40")
s += '\n[[methods]]\nname = "boosted"\nrounds = 40\n'
open(p, "w").write(s)
PY
start=$(date +%s.%N)
"$bin" run "$pipe" --out "$work/reference" -q --device cpu > /dev/null
full=$(python3 -c "print(round($(date +%s.%N) - $start, 3))")
echo "uninterrupted run: ${full} s"
compare() {
  local diffs=0 n=0 f
  while IFS= read -r f; do
    n=$((n + 1))
    cmp -s "$f" "$work/killed/${f#"$work"/reference/}" || { echo "differs: ${f#"$work"/reference/}" >&2; diffs=$((diffs + 1)); }
  done < <(find "$work/reference" -name '*.tif' -not -path '*/models/*' | sort)
  [ "$n" -gt 0 ] || diffs=1
  echo "$diffs"
}
# Each cycle: a fresh output folder, SIGKILL at a random moment of the run, a rerun to the
# end, then the comparison and the search for orphans.
moments=()
bad=0
for k in $(seq 1 "$kills"); do
  rm -rf "$work/killed"
  t=$(python3 -c "import random; random.seed($k); print(round(random.uniform(0.02, 0.98) * $full, 3))")
  "$bin" run "$pipe" --out "$work/killed" -q --device cpu > /dev/null 2>&1 &
  pid=$!
  sleep "$t"
  if kill -9 "$pid" 2> /dev/null; then moments+=("$t"); fi
  wait "$pid" 2> /dev/null || true
  "$bin" run "$pipe" --out "$work/killed" -q --device cpu > /dev/null
  orphans=$(find "$work/killed" \( -name '*.partial*' -o -name '.tmp-*' -o -name '.coreg*' \) | wc -l)
  diffs=$(compare)
  if [ "$diffs" != 0 ] || [ "$orphans" != 0 ]; then
    echo "cycle $k (kill at $t s): $diffs differing products, $orphans orphan temporaries"
    bad=$((bad + 1))
  fi
done
echo "killed ${#moments[@]} of $kills runs, at (s): ${moments[*]}"
echo "cycles with a difference or an orphan: $bad of $kills"
[ "$bad" = 0 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }
