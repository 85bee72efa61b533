#!/usr/bin/env bash
# Raw against regularised maps (the forest, three post-processes) on the shipped demo scene and
# on six synthetic scenes (held-out third), with the report's block test and Holm; then the
# majority vote and the sieve side by side with Orfeo ToolBox's ClassificationMapRegularization
# and gdal_sieve.py on the demo's raw class band (agreement and wall time). The Flanders chips
# (../shared/data/worldcereal_flanders, skipped when absent) add a real held-out chip.
#
#   bash benches/postprocess/run.sh [OUT]      # OUT defaults to /tmp/geofuse-postprocess; ~5 min
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/geofuse-postprocess}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}
(cd "$root" && cargo build --release --locked -q)
bin="$CARGO_TARGET_DIR/release/geofuse"
mkdir -p "$out"
methods='
[[methods]]
name = "bayes"
kind = "handcrafted"
trees = 100
max_depth = 18
postprocess = { smoothing = "bayesian" }

[[methods]]
name = "majority"
kind = "handcrafted"
trees = 100
max_depth = 18
postprocess = { smoothing = "majority", radius = 2 }

[[methods]]
name = "sieve"
kind = "handcrafted"
trees = 100
max_depth = 18
postprocess = { min_pixels = 9 }
'
# Every method of a pipeline file before its first [[methods]] replaced by the three above.
with_methods() { python3 -c "import sys; t=open(sys.argv[1]).read(); print(t[:t.index('[[methods]]')] + sys.argv[2])" "$1" "$methods"; }

with_methods "$root/pipelines/demo.toml" | sed "s|\.\./tiles|$root/tiles|g" > "$out/demo.toml"
"$bin" run "$out/demo.toml" --out "$out/demo" -q --force
"$bin" synth --out "$out/synth-scenes" --size 256 --seed 11 --scenes 6 >/dev/null
with_methods "$out/synth-scenes/pipeline.toml" > "$out/synth-scenes/regularised.toml"
sed -i "s|^output = .*|output = \"$out/synth\"|" "$out/synth-scenes/regularised.toml"
"$bin" run "$out/synth-scenes/regularised.toml" --out "$out/synth" -q --force
runs="demo synth"
flanders="$root/../shared/data/worldcereal_flanders"
if [ -d "$flanders" ]; then
  # The real chips: train on chip A's two dates, map chip B (held out), land cover.
  python3 -c "import sys; t=open(sys.argv[1]).read(); i=t.index('[[methods]]'); j=t.index('\n[training]'); print(t[:i] + sys.argv[2] + t[j:])" \
    "$root/pipelines/flanders-cross.toml" "$methods" \
    | sed -e "s|\.\./\.\./shared/data|$root/../shared/data|g" > "$out/flanders.toml"
  "$bin" run "$out/flanders.toml" --out "$out/flanders" -q --force
  runs="$runs flanders"
else
  echo "SKIP flanders: $flanders not found"
fi
for run in $runs; do
  echo "== $run: raw against regularised (held-out pixels; block test, Holm)"
  python3 - "$out/$run/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["comparison"]
score = {(x["method"], x["evaluation"]): x["scores"] for x in m["methods"]}
for (meth, ev), s in sorted(score.items()):
    lo, hi = s['oa']['ci95'] or (float('nan'), float('nan'))
    print(f"  {meth:22s} {ev:16s} OA {s['oa']['value']:.3f} [{lo:.3f}, {hi:.3f}]  mIoU {s['miou']['value']:.3f}")
for p in m["pairs"]:
    a, b = p["a"], p["b"]
    if b == a + "-regularised" or a == b + "-regularised":
        print(f"  {a} vs {b} ({p['evaluation']}): mean block diff {p['mean_block_accuracy_difference']:+.4f}, block p (Holm) {p['block_p_holm']:.3g}, {p['verdict']}")
PY
done
echo "== peers on the demo's raw class band"
gdal_translate -q -b 1 -a_nodata 255 "$out/demo/demo/majority.tif" "$out/raw_class.tif"
t0=$(date +%s.%N)
otbcli_ClassificationMapRegularization -io.in "$out/raw_class.tif" -io.out "$out/otb_majority.tif" uint8 -ip.radius 2 -ip.nodatalabel 255 >/dev/null 2>&1
t1=$(date +%s.%N)
gdal_sieve.py -q -st 9 -4 "$out/raw_class.tif" "$out/gdal_sieve.tif"
t2=$(date +%s.%N)
/usr/bin/python3 - "$out" "$t0" "$t1" "$t2" <<'PY'
import sys
from osgeo import gdal
o = sys.argv[1]
def band(p):
    d = gdal.Open(p)
    return d.GetRasterBand(1).ReadAsArray()
raw = band(f"{o}/raw_class.tif")
for name, ours, peer in [("majority radius 2", "majority-regularised", "otb_majority"), ("sieve 9 px", "sieve-regularised", "gdal_sieve")]:
    a, b = band(f"{o}/demo/demo/{ours}.tif"), band(f"{o}/{peer}.tif")
    print(f"  {name}: agreement {100 * (a == b).mean():.3f} % of {a.size} pixels; changed: geofuse {(a != raw).sum()}, peer {(b != raw).sum()}")
t0, t1, t2 = map(float, sys.argv[2:5])
print(f"  wall: otbcli_ClassificationMapRegularization {t1 - t0:.2f} s, gdal_sieve.py {t2 - t1:.2f} s")
PY
