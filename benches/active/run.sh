#!/usr/bin/env bash
# The active-learning loop simulated (`geofuse active`, the forest of each pipeline): six
# synthetic scenes (four train, two held out) and the Flanders chips (chip A trains, chip B is
# held out; skipped when ../shared/data is absent). Five rounds of 50 points, three seeds,
# epistemic / total / least-confidence / random sampling; prints each report's section.
#
#   bash benches/active/run.sh [OUT]      # OUT defaults to /tmp/geofuse-active; ~15 min
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/geofuse-active}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}
(cd "$root" && cargo build --release --locked -q)
bin="$CARGO_TARGET_DIR/release/geofuse"
mkdir -p "$out"
# A pipeline file with its first method only (the simulation trains the first method).
first_method() { python3 -c "import sys; t=open(sys.argv[1]).read(); i=t.index('[[methods]]'); j=t.find('[[methods]]', i + 1); j = len(t) if j < 0 else j; k=t.find('\n[training]', i); print(t[:j] + (t[k:] if k > j else ''))" "$1"; }
"$bin" synth --out "$out/synth-scenes" --size 256 --seed 11 --scenes 6 >/dev/null
first_method "$out/synth-scenes/pipeline.toml" > "$out/synth-scenes/active.toml"
"$bin" active "$out/synth-scenes/active.toml" --rounds 5 --n 50 --seeds 3 --out "$out/synth" -q
runs="synth"
if [ -d "$root/../shared/data/worldcereal_flanders" ]; then
  first_method "$root/pipelines/flanders-cross.toml" | sed -e "s|\.\./\.\./shared/data|$root/../shared/data|g" > "$out/flanders.toml"
  "$bin" active "$out/flanders.toml" --rounds 5 --n 50 --seeds 3 --out "$out/flanders" -q
  runs="$runs flanders"
else
  echo "SKIP flanders: ../shared/data/worldcereal_flanders not found"
fi
for r in $runs; do
  echo "== $r"
  sed -n '/^## Active learning/,/^## Per-class/p' "$out/$r/report.md" | sed '$d'
done
