#!/usr/bin/env bash
# Wall time and peak memory of the whole hand-crafted chain (`geofuse run`, synthetic scene,
# 100 trees of depth 10) against scene size, and its 2-core parallel efficiency.
#
#   bash benches/scaling.sh [SIZES...]      # default: 1024 2048 4096 8192 (about 15 min)
#
# Prints one line per size: pixels, wall seconds, MP/s, peak RSS (MB); then the 1-thread run
# of the second size and the efficiency T1 / (2 T2). Scenes are written with `geofuse synth`
# (streamed, any size) under $WORK (default /tmp/geofuse-scaling).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}
(cd "$root" && cargo build --release --locked -q)
gf="$CARGO_TARGET_DIR/release/geofuse"
work=${WORK:-/tmp/geofuse-scaling}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1024 2048 4096 8192)
mkdir -p "$work"
run() { # size threads -> "wall_s rss_mb"
  local d="$work/s$1"
  /usr/bin/env RAYON_NUM_THREADS="$2" /usr/bin/time -f "%e %M" -o "$d/time.txt" \
    "$gf" run "$d/pipeline.toml" --force -q --out "$d/out" >/dev/null 2>&1
  awk '{printf "%s %.0f", $1, $2 / 1024}' "$d/time.txt"
}
printf '%8s %12s %8s %8s %10s\n' size pixels wall_s MP/s rss_MB
for s in "${sizes[@]}"; do
  d="$work/s$s"
  if [ ! -f "$d/pipeline.toml" ]; then
    "$gf" synth --out "$d" --size "$s" --seed 5 >/dev/null
    # The peer comparison's forest: 100 trees of depth 10, min 5 samples per leaf.
    sed -i -e 's/^max_depth = .*/max_depth = 10\nmin_samples_leaf = 5/' "$d/pipeline.toml"
    python3 - "$d/pipeline.toml" <<'PY'
import sys, re
p = sys.argv[1]
t = open(p).read()
# Hand-crafted method only: drop learned methods.
parts = t.split("[[methods]]")
t = parts[0] + "".join("[[methods]]" + m for m in parts[1:] if 'name = "handcrafted"' in m)
open(p, "w").write(t)
PY
  fi
  read -r wall rss <<<"$(run "$s" 2)"
  printf '%8s %12s %8s %8.2f %10s\n' "$s" $((s * s)) "$wall" "$(echo "$s * $s / 1000000 / $wall" | bc -l)" "$rss"
done
s=${sizes[1]:-${sizes[0]}}
read -r w1 _ <<<"$(run "$s" 1)"
read -r w2 _ <<<"$(run "$s" 2)"
echo "size $s: 1 thread $w1 s, 2 threads $w2 s, parallel efficiency $(echo "$w1 / (2 * $w2)" | bc -l | cut -c1-5)"
