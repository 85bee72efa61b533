#!/usr/bin/python3
"""Compares the products of two geofuse output folders (before / after a change).

usage: compare_products.py OLD_OUT NEW_OUT [--ignore-metadata KEY ...]

For every `<scene>/<method>.tif` in OLD_OUT it reports whether the file is byte-identical
in NEW_OUT; if not, whether every band's pixels are identical, which dataset metadata items
differ, and per band how many pixels differ. Model files (`.model`, learned `.json`) and the
`.aux.xml` sidecars are compared byte for byte; metrics.json ignoring timings.
Exit status: 0 when every product's pixels are identical, 1 otherwise.
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
from osgeo import gdal

TIMING = {"seconds", "predict_seconds", "mpix_per_s", "train_seconds"}


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def compare_tif(a, b):
    da, db = gdal.Open(str(a)), gdal.Open(str(b))
    lines, same_pixels = [], True
    if da.RasterCount != db.RasterCount:
        return [f"band count {da.RasterCount} vs {db.RasterCount}"], False
    for i in range(1, da.RasterCount + 1):
        x = da.GetRasterBand(i).ReadAsArray()
        y = db.GetRasterBand(i).ReadAsArray()
        n = int((x != y).sum())
        ba, bb = da.GetRasterBand(i), db.GetRasterBand(i)
        if n:
            same_pixels = False
            lines.append(f"band {i} ({ba.GetDescription().split(':')[0]}): {n} of {x.size} pixels differ")
        if ba.GetDescription() != bb.GetDescription():
            lines.append(f"band {i} description: {ba.GetDescription()!r} -> {bb.GetDescription()!r}")
        if (ba.GetScale(), ba.GetOffset()) != (bb.GetScale(), bb.GetOffset()):
            lines.append(f"band {i} scale/offset differ")
    ma, mb = da.GetMetadata(), db.GetMetadata()
    for k in sorted(set(ma) | set(mb)):
        if ma.get(k) != mb.get(k):
            lines.append(f"metadata {k}: {ma.get(k)} -> {mb.get(k)}")
    if da.GetGeoTransform() != db.GetGeoTransform() or da.GetProjection() != db.GetProjection():
        lines.append("grid differs")
    return lines, same_pixels


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMING}
    return v


def main():
    old, new = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    ok = True
    for a in sorted(old.glob("*/*.tif")):
        b = new / a.relative_to(old)
        name = a.relative_to(old)
        if not b.exists():
            print(f"{name}: MISSING in {new}")
            ok = False
            continue
        if sha(a) == sha(b):
            print(f"{name}: byte-identical")
        else:
            lines, same = compare_tif(a, b)
            ok &= same
            print(f"{name}: {'pixels identical' if same else 'PIXELS DIFFER'}; bytes differ:")
            for l in lines:
                print(f"    {l}")
        for ext in [".tif.aux.xml"]:
            sa, sb = a.with_suffix(ext), b.with_suffix(ext)
            if sa.exists():
                print(f"    sidecar {sa.name}: {'identical' if sb.exists() and sha(sa) == sha(sb) else 'DIFFERS'}")
    for a in sorted(list(old.glob("*/*.model")) + list(old.glob("*/*.json"))):
        if a.parent.name == "models" or a.name in ("metrics.json", "manifest.json") or a.name.endswith((".stac.json", ".model.json", ".train.json")):
            continue
        b = new / a.relative_to(old)
        if not b.exists():  # newer runs train once per run: <out>/models/
            b = new / "models" / a.name
        print(f"model {a.relative_to(old)}: {'byte-identical' if b.exists() and sha(a) == sha(b) else 'DIFFERS'} ({b.relative_to(new)})")
    for a in sorted(old.glob("*/metrics.json")):
        b = new / a.relative_to(old)
        ma = strip(json.loads(a.read_text()))
        mb = strip(json.loads(b.read_text())) if b.exists() else None
        for m in sorted(ma["methods"]):
            x, y = ma["methods"][m], (mb or {}).get("methods", {}).get(m)
            if y is None:
                print(f"metrics {m}: MISSING")
                continue
            diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            print(f"metrics {m}: {'identical (timings ignored)' if not diff else 'differ in ' + ', '.join(diff)}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
