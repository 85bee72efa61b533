#!/usr/bin/env bash
# Synthetic seasons, held-out scenes: the season's forest and boosted trees (temporal features)
# and networks against the trees on the best single date of each scene (its clearest date between
# June and August, with the SAR date nearest it), with 0 %, 30 % and 70 % of the optical dates
# heavily clouded; the networks: the learned kernel on the season's steps as channels
# (learned-kernel) and on temporal attention encoders (ltae-kernel), and the optical-only and
# SAR-only temporal attention networks (ltae-optical, ltae-sar). `geofuse compare` gives every
# score with its 95 % block-bootstrap interval and the Holm-adjusted block test of every pair.
#   bash benches/season/study.sh [SIZE] [SCENES] [OUT]   (default 384 6 out/season-study)
#   CLOUDS="0 0.3 0.7" DATES=12 NETS=1 (0: trees only) EPOCHS=30 BIN=path/to/geofuse
#   DATE_DROPOUT=0.5 (ltae-kernel's date dropout) METHODS="handcrafted ltae-kernel" (a subset)
set -euo pipefail
SIZE=${1:-384}
SCENES=${2:-6}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${3:-$HERE/../../out/season-study}
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/geofuse}
DATES=${DATES:-12}
for cloud in ${CLOUDS:-0 0.3 0.7}; do
  D="$OUT/cloudy-$cloud"
  rm -rf "$D"
  "$BIN" synth --out "$D/data" --size "$SIZE" --seed 21 --dates "$DATES" --scenes "$SCENES" --cloudy-dates "$cloud" >/dev/null
  if [ "${NETS:-1}" = 0 ]; then
    # Trees only: the networks' training dominates the run time.
    /usr/bin/python3 -c 'import sys; p = sys.argv[1]; t = open(p).read(); open(p, "w").write(t[: t.index("\n[[methods]]\nname = \"learned-kernel\"")] + "\n")' "$D/data/pipeline.toml"
  else
    for m in optical sar; do
      printf '\n[[methods]]\nname = "ltae-%s"\nfusion = "%s-only"\ntemporal = "ltae"\nwidth = 16\nepochs = %s\npatience = 8\npatches = 256\npatch = 32\nmc_passes = 16\n' "$m" "$m" "${EPOCHS:-30}" >>"$D/data/pipeline.toml"
    done
    sed -i "s/^epochs = 30$/epochs = ${EPOCHS:-30}/" "$D/data/pipeline.toml"
  fi
  # DATE_DROPOUT=q trains ltae-kernel with date dropout q (kept in its Monte Carlo passes);
  # METHODS="a b" keeps only those season methods (the single-date trees always run).
  /usr/bin/python3 - "$D/data/pipeline.toml" "${DATE_DROPOUT:-0}" "${METHODS:-}" <<'PY'
import re, sys
path, q, keep = sys.argv[1], float(sys.argv[2]), sys.argv[3].split()
text = open(path).read()
head, *tables = text.split("\n[[methods]]\n")
def name(t):
    return re.match(r'name = "([^"]+)"', t).group(1)
if q > 0:
    tables = [t.replace('temporal = "ltae"', f'temporal = "ltae"\ndate_dropout = {q}', 1) if name(t) == "ltae-kernel" else t for t in tables]
if keep:
    tables = [t for t in tables if name(t) in keep]
open(path, "w").write("\n[[methods]]\n".join([head] + tables))
PY
  /usr/bin/python3 - "$D/data" <<'PY'
import glob, os, re, sys
from osgeo import gdal
import numpy as np
d = sys.argv[1]
text = open(f"{d}/pipeline.toml").read()
text = re.sub(r"\[time\][^\[]*", "", text)
for scene in sorted(glob.glob(f"{d}/scene-*")):
    name = os.path.basename(scene)
    best = None
    for f in sorted(glob.glob(f"{scene}/s2/S2_*.tif")):
        date = re.search(r"\d{4}-\d{2}-\d{2}", os.path.basename(f)).group(0)
        if not ("06-01" <= date[5:] <= "08-31"):
            continue
        clear = float((gdal.Open(f"{scene}/s2/MASK_{date}.tif").ReadAsArray() == 0).mean())
        if best is None or clear > best[0]:
            best = (clear, date)
    clear, date = best
    sar = min(glob.glob(f"{scene}/s1/S1_*.tif"), key=lambda f: abs(np.datetime64(re.search(r"\d{4}-\d{2}-\d{2}", f).group(0)) - np.datetime64(date)))
    text = text.replace(f"{name}/s2/S2_*.tif", f"{name}/s2/S2_{date}.tif")
    text = text.replace(f"{name}/s2/MASK_{{date}}.tif", f"{name}/s2/MASK_{date}.tif")
    text = text.replace(f"{name}/s1/S1_*.tif", os.path.relpath(sar, d))
    print(f"{name}: single date {date} ({100 * clear:.0f} % clear), SAR {os.path.basename(sar)}")
text = re.sub(r"\nyear = \d+", "", text)
# The single-date run keeps the trees (the best single-date methods on these scenes).
head, *tables = text.split("\n[[methods]]\n")
tables = [t for t in tables if t.startswith(('name = "handcrafted"', 'name = "boosted"'))]
text = "\n[[methods]]\n".join([head] + tables) + "\n"
for m in ["handcrafted", "boosted"]:
    text = text.replace(f'name = "{m}"', f'name = "{m}-1date"\nkind = "{m}"')
open(f"{d}/single.toml", "w").write(text)
PY
  t0=$(date +%s)
  "$BIN" run "$D/data/pipeline.toml" --out "$D/season" -q --device cpu >/dev/null
  t1=$(date +%s)
  "$BIN" run "$D/data/single.toml" --out "$D/single" -q --device cpu >/dev/null
  t2=$(date +%s)
  "$BIN" compare "$D/season" "$D/single" --report "$D/compare" >/dev/null
  echo "cloudy dates $cloud: season run $((t1 - t0)) s, single-date run $((t2 - t1)) s; report $D/compare/compare.md"
  # Where optical dates were lost: each method's accuracy and epistemic uncertainty over the
  # held-out scenes' pixels by their valid optical observations (benches/season/by_obs.py).
  held=$(sed -n '/^\[evaluation\]/,/^scenes/p' "$D/data/pipeline.toml" | grep '^scenes' | grep -o '"[^"]*"' | tr -d '"')
  for prod in "$D/season/$(echo "$held" | head -1)"/*.tif; do
    m=$(basename "$prod" .tif)
    args=()
    for s in $held; do args+=("$D/data/$s/labels.tif" "$D/season/$s/$m.tif"); done
    /usr/bin/python3 "$HERE/by_obs.py" "$m" "${args[@]}"
  done
done
