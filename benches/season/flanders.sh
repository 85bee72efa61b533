#!/usr/bin/env bash
# Real seasons: the Flanders chips' full time series (raw_netcdf/) split into dated GeoTIFFs,
# each chip's 2018 or 2019 season (1 March - 31 October, 30-day steps) classified for land
# cover (LC) and crop type (CT): within each chip (held-out blocks) and across chips in both
# directions (held-out scenes), with the 20 m bands alone (B05-B12, SCL) and with all ten
# bands (the 10 m and 20 m files of a date joined in a VRT on the 10 m grid).
#   bash benches/season/flanders.sh [OUT]   (default out/season-flanders; DATA=shared data folder)
#   TASKS="LC CT" BANDS="20m all" BIN=path/to/geofuse
#   NETS="learned-kernel optical-only sar-only ltae-kernel ltae-optical ltae-sar" (the default;
#   0: the trees only): the networks beside the trees; ltae-* take the steps through temporal
#   attention encoders (temporal = "ltae"), the others as channels. DATE_DROPOUT=q trains
#   ltae-kernel with date dropout q (kept in its Monte Carlo passes).
# Each run's report: OUT/<task>-<bands>-<setting>/report.md; a summary table is printed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../out/season-flanders}
DATA=${DATA:-$HERE/../../../shared/data/worldcereal_flanders}
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/geofuse}
mkdir -p "$OUT"
declare -A SPAN=([00002806639B424A]=2017-08-01_2018-11-30 [0000280849BAC91C]=2018-08-01_2019-11-30)
for chip in 00002806639B424A 0000280849BAC91C; do
  d="$OUT/dated/$chip"
  [ -d "$d" ] && continue
  nc="$DATA/$chip/raw_netcdf"
  "$BIN" split-dates "$nc/S2_L2A_10m_${chip}_32631_${SPAN[$chip]}.nc" --out "$d" --prefix S2_10m >/dev/null
  "$BIN" split-dates "$nc/S2_L2A_20m_${chip}_32631_${SPAN[$chip]}.nc" --out "$d" --prefix S2_20m --mask SCL >/dev/null
  "$BIN" split-dates "$nc/S1_GRD-ASCENDING_20m_${chip}_32631_${SPAN[$chip]}.nc" --out "$d" --prefix S1 --physical >/dev/null
done
/usr/bin/python3 - "$OUT" "$DATA" "${TASKS:-LC CT}" "${BANDS:-20m all}" <<'PY'
import glob, os, sys
out, data, tasks, bandsets = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
chips = {"A": ("00002806639B424A", 2018), "B": ("0000280849BAC91C", 2019)}
# The ten bands of a date: the 10 m file's four, then the 20 m file's six nearest-upsampled.
for cid, _ in chips.values():
    d = f"{out}/dated/{cid}"
    for f20 in sorted(glob.glob(f"{d}/S2_20m_2*.tif")):
        date = os.path.basename(f20)[7:17]
        f10, vrt = f"{d}/S2_10m_{date}.tif", f"{d}/S2_all_{date}.vrt"
        if not os.path.exists(f10) or os.path.exists(vrt):
            continue
        src = lambda f, b, n: f'<SimpleSource><SourceFilename relativeToVRT="1">{os.path.basename(f)}</SourceFilename><SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{n}" ySize="{n}"/><DstRect xOff="0" yOff="0" xSize="64" ySize="64"/></SimpleSource>'
        names = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12", "B8A"]
        parts = [(f10, b, 64) for b in range(1, 5)] + [(f20, b, 32) for b in range(1, 7)]
        from osgeo import gdal
        ds = gdal.Open(f10)
        gt, srs = ds.GetGeoTransform(), ds.GetProjection()
        bands = "".join(f'<VRTRasterBand dataType="UInt16" band="{i + 1}"><Description>{n}</Description><NoDataValue>0</NoDataValue>{src(*p)}</VRTRasterBand>' for i, (n, p) in enumerate(zip(names, parts)))
        open(vrt, "w").write(f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>{srs}</SRS><GeoTransform>{", ".join(map(str, gt))}</GeoTransform>{bands}</VRTDataset>')
lc = [(11, "annual cropland"), (12, "perennial cropland"), (13, "grassland"), (60, "built-up"), (99, "other")]
# Crop-type codes exceed a product's byte classes: the labels are renumbered 1..9.
codes = [(1110, "winter wheat"), (1200, "maize"), (1500, "barley"), (1510, "winter barley"), (2130, "crop 2130"), (5100, "potatoes"), (7900, "crop 7900"), (8100, "crop 8100"), (9120, "grassland")]
ct = [(i + 1, n) for i, (_, n) in enumerate(codes)]
import numpy as np
from osgeo import gdal
os.makedirs(f"{out}/labels", exist_ok=True)
for cid, _ in chips.values():
    src = gdal.Open(f"{data}/{cid}/{cid}_label_CT.tif")
    a = src.ReadAsArray()
    b = np.zeros_like(a, dtype=np.uint8)
    for i, (code, _) in enumerate(codes):
        b[a == code] = i + 1
    dst = gdal.GetDriverByName("GTiff").Create(f"{out}/labels/{cid}_label_CT.tif", a.shape[1], a.shape[0], 1, gdal.GDT_Byte)
    dst.SetGeoTransform(src.GetGeoTransform()); dst.SetProjection(src.GetProjection())
    dst.GetRasterBand(1).WriteArray(b); dst.GetRasterBand(1).SetNoDataValue(0)
    dst = None
labels = lambda cid, task: f"{data}/{cid}/{cid}_label_LC.tif" if task == "LC" else f"{out}/labels/{cid}_label_CT.tif"
net = "width = 16\nepochs = 30\npatience = 8\npatches = 256\npatch = 32\nmc_passes = 16\n"
nets = os.environ.get("NETS", "learned-kernel optical-only sar-only ltae-kernel ltae-optical ltae-sar").split()
nets = [] if nets == ["0"] else nets
ltae = {"ltae-kernel": "learned-kernel", "ltae-optical": "optical-only", "ltae-sar": "sar-only"}
dd = float(os.environ.get("DATE_DROPOUT", "0"))
dd_line = lambda m: f"date_dropout = {dd}\n" if dd > 0 and m == "ltae-kernel" else ""
net_of = lambda m: f'fusion = "{ltae[m]}"\ntemporal = "ltae"\n{dd_line(m)}{net}' if m in ltae else net
methods = '[[methods]]\nname = "handcrafted"\ntrees = 100\nmax_depth = 14\n\n[[methods]]\nname = "boosted"\n\n' + "".join(f'[[methods]]\nname = "{m}"\n{net_of(m)}\n' for m in nets)
for task in tasks:
    classes = "".join(f'[[classes]]\nid = {i}\nname = "{n}"\ncolor = "#{(i * 2654435761) % 0xFFFFFF:06x}"\n\n' for i, n in (lc if task == "LC" else ct))
    for bs in bandsets:
        if bs == "20m":
            opt = 'path = "{d}/S2_20m_2*.tif", bands = ["B05", "B06", "B07", "B11", "B12", "B8A"]'
            feats = '[features]\nindices = ["NDRE", "NDMI", "NBR"]\nsar = ["vv_db", "vh_db", "vh_vv_ratio_db"]\n'
            block = 8
        else:
            opt = 'path = "{d}/S2_all_*.vrt", bands = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12", "B8A"]'
            feats = '[features]\nindices = ["NDVI", "NDWI", "NDRE", "NDMI", "NBR"]\nsar = ["vv_db", "vh_db", "vh_vv_ratio_db"]\n'
            block = 16
        scenes = ""
        for key, (cid, year) in chips.items():
            d = f"{out}/dated/{cid}"
            scenes += f'[[scenes]]\nname = "{key}_{year}"\nyear = {year}\noptical = {{ {opt.format(d=d)}, scale = 0.0001 }}\nmask = {{ path = "{d}/S2_20m_SCL_{{date}}.tif", invalid = [0, 1, 3, 8, 9, 10] }}\nsar = {{ path = "{d}/S1_*.tif", polarisations = ["VH", "VV"], unit = "db" }}\nlabels = "{labels(cid, task)}"\n\n'
        head = f'output = "out"\nseed = 42\n\n[time]\nstart = "03-01"\nend = "10-31"\nstep_days = 30\n\n{classes}{scenes}[coregistration]\nallow_warp = true\n\n[tiling]\ntile_size = 32\n\n{feats}\n[split]\nblock_size = {block}\ntest_fraction = 0.3\nsamples_per_class = 2000\n\n{methods}'
        for setting, roles in [("within", ""), ("AtoB", '[training]\nscenes = ["A_2018"]\n\n[evaluation]\nscenes = ["B_2019"]\n'), ("BtoA", '[training]\nscenes = ["B_2019"]\n\n[evaluation]\nscenes = ["A_2018"]\n')]:
            open(f"{out}/{task}-{bs}-{setting}.toml", "w").write(head + roles)
PY
for toml in $(for t in ${TASKS:-LC CT}; do for b in ${BANDS:-20m all}; do ls "$OUT/$t-$b"-*.toml; done; done); do
  run="${toml%.toml}"
  t0=$(date +%s)
  "$BIN" run "$toml" --out "$run" -q --device cpu >/dev/null
  echo "$(basename "$run"): $(( $(date +%s) - t0 )) s"
done
/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(f"{sys.argv[1]}/*-*-*/manifest.json")):
    run = os.path.dirname(f)
    rows = {}
    for m in glob.glob(f"{run}/*/metrics.json"):
        j = json.load(open(m))
        for meth, v in j["methods"].items():
            rows.setdefault(meth, []).append(f'{j["scene"]} {v.get("oa", float("nan")):.3f}/{v.get("miou", float("nan")):.3f}')
    print(os.path.basename(run), "| " + " | ".join(f"{k}: {', '.join(v)}" for k, v in sorted(rows.items())))
PY
# Where optical dates were lost on the held-out chip: each method's accuracy and epistemic
# uncertainty by the pixels' valid optical observations (benches/season/by_obs.py).
for run in "$OUT"/*-*to*/; do
  toml="${run%/}.toml"
  [ -f "$toml" ] || continue
  held=$(sed -n '/^\[evaluation\]/,$p' "$toml" | grep -o '"[^"]*"' | head -1 | tr -d '"')
  labels=$(sed -n "/^name = \"$held\"/,/^labels/p" "$toml" | grep '^labels' | cut -d'"' -f2)
  echo "$(basename "$run") (held out: $held)"
  for prod in "$run$held"/*.tif; do
    /usr/bin/python3 "$HERE/by_obs.py" "$(basename "$prod" .tif)" "$labels" "$prod"
  done
done
