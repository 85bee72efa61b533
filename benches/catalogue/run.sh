#!/usr/bin/env bash
# Catalogue input over HTTP: bytes read and wall time of one scene from STAC Items with
# per-band COGs, read from local files and over loopback HTTP (GDAL /vsicurl/ range reads),
# and with a declared grid over a quarter-width window (only the blocks it needs are read).
#   bash benches/catalogue/run.sh [SIZE]        (default 2048; BIN=path/to/geofuse)
# Prints `bytes_read`, `file_bytes` and `seconds` lines for BENCHMARKS.md.
set -euo pipefail
SIZE=${1:-2048}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/geofuse}
W=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$W"' EXIT
"$BIN" synth --out "$W/scene" --size "$SIZE" --seed 7 >/dev/null
S="$W/served/S2"; mkdir -p "$S" "$W/served/S1"
i=1
for b in B02 B03 B04 B05 B06 B07 B08 B8A B11 B12; do
  gdal_translate -q -b $i -of COG -co BLOCKSIZE=512 -co COMPRESS=DEFLATE "$W/scene/optical.tif" "$S/$b.tif"
  i=$((i + 1))
done
gdal_translate -q -of COG -co BLOCKSIZE=512 -co COMPRESS=DEFLATE "$W/scene/cloud_mask.tif" "$S/SCL.tif"
gdal_translate -q -b 1 -of COG -co BLOCKSIZE=512 -co COMPRESS=DEFLATE "$W/scene/sar.tif" "$W/served/S1/vv.tif"
gdal_translate -q -b 2 -of COG -co BLOCKSIZE=512 -co COMPRESS=DEFLATE "$W/scene/sar.tif" "$W/served/S1/vh.tif"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$HERE/range_server.py" "$W/served" "$PORT" "$W/count" & SERVER=$!
python3 - "$W" "$PORT" "$SIZE" <<'PY'
import json, sys
w, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
def items(prefix):
    s2 = {b: {"href": f"{prefix}/S2/{b}.tif", "type": "image/tiff; application=geotiff", "eo:bands": [{"name": b}]} for b in bands}
    s2["SCL"] = {"href": f"{prefix}/S2/SCL.tif", "type": "image/tiff; application=geotiff"}
    s1 = {k: {"href": f"{prefix}/S1/{k}.tif", "type": "image/tiff; application=geotiff", "raster:bands": [{"unit": "dB"}]} for k in ["vv", "vh"]}
    f = lambda i, dt, a: {"type": "Feature", "id": i, "properties": {"datetime": dt, "s2:processing_baseline": "02.14"}, "assets": a, "links": []}
    return {"type": "FeatureCollection", "features": [f("S2", "2022-05-01T10:00:00Z", s2), f("S1", "2022-05-01T17:00:00Z", s1)]}
json.dump(items(f"{w}/served"), open(f"{w}/local.json", "w"))
json.dump(items(f"http://127.0.0.1:{port}"), open(f"{w}/http.json", "w"))
text = open(f"{w}/scene/pipeline.toml").read()
head, rest = text.split("[[scenes]]", 1)
tail = rest[rest.index("[tiling]"):]
tail = tail[:tail.find('\n[[methods]]\nname = "learned-kernel"')] + "\n" if '\n[[methods]]\nname = "learned-kernel"' in tail else tail
for name, extra in [("local", ""), ("http", ""), ("window", f"grid = {{ epsg = 32631, bounds = [{600000 + size * 10 * 3 // 8}, {5700000 - size * 10 * 5 // 8}, {600000 + size * 10 * 5 // 8}, {5700000 - size * 10 * 3 // 8}], resolution = 10 }}\n\n[coregistration]\nallow_warp = true\n")]:
    src = "local" if name == "local" else "http"
    cat = f'[[catalogue]]\nitems = "{w}/{src}.json"\nbands = {json.dumps(bands)}\nname = "scene"\nlabels = "{w}/scene/labels.tif"\nmask = {{ asset = "SCL", invalid = [1, 2] }}\nsar = {{ max_days = 1 }}\n{extra}\n'
    open(f"{w}/{name}.toml", "w").write(head.replace('output = "', f'output = "{w}/out-{name}-') + cat + tail)
PY
sleep 1
FILES=$(du -cb "$W"/served/S2/*.tif "$W"/served/S1/*.tif | tail -1 | cut -f1)
for name in ${RUNS:-local http window}; do
  read -r req0 bytes0 < <(cat "$W/count" 2>/dev/null || echo "0 0")
  t0=$(date +%s.%N)
  "$BIN" run "$W/$name.toml" -q --device cpu >/dev/null
  t1=$(date +%s.%N)
  read -r req bytes < <(cat "$W/count" 2>/dev/null || echo "0 0")
  req=$((req - req0)); bytes=$((bytes - bytes0))
  echo "$name: seconds $(echo "$t1 - $t0" | bc) requests $req bytes_read $bytes file_bytes $FILES ratio $(echo "scale=3; $bytes / $FILES" | bc)"
done
