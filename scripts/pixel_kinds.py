#!/usr/bin/python3
"""Overall accuracy of products by pixel kind, on scenes written by `geofuse synth`.

usage: pixel_kinds.py SCENES_DIR OUT_DIR SCENE[,SCENE...] METHOD [METHOD ...]

For every METHOD and SCENE it reads `OUT_DIR/SCENE/METHOD.tif` (band 1: the class) and the
scene's `labels.tif`, `cloud_mask.tif` and `sar.tif` under SCENES_DIR, and prints the share of
labelled pixels mapped right among
  clear     no cloud or shadow, SAR present;
  cloud     cloud or shadow (the mask's 1 and 2);
  gap       no cloud, no SAR (swath edge, burst gap): the optical data alone;
  edge      no cloud, within 2 px (8-neighbourhood) of another label;
  interior  no cloud, farther from one.
The per-kind tables of BENCHMARKS.md (issue 14) come from it.
"""
import sys

import numpy as np
from osgeo import gdal


def read(path, band=1):
    ds = gdal.Open(str(path))
    if ds is None:
        sys.exit(f"{path}: cannot open")
    return ds.GetRasterBand(band).ReadAsArray()


def near_other_label(lab, radius=2):
    """True where a pixel within `radius` (Chebyshev) holds another label."""
    h, w = lab.shape
    pad = np.pad(lab, radius, mode="edge")
    out = np.zeros(lab.shape, bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= pad[radius + dy:radius + dy + h, radius + dx:radius + dx + w] != lab
    return out


def kinds(scenes_dir, scene):
    lab = read(f"{scenes_dir}/{scene}/labels.tif").astype(int)
    cloud = read(f"{scenes_dir}/{scene}/cloud_mask.tif") > 0
    gap = ~np.isfinite(read(f"{scenes_dir}/{scene}/sar.tif"))
    edge = near_other_label(lab)
    ok = lab > 0
    return lab, {
        "clear": ok & ~cloud & ~gap,
        "cloud": ok & cloud,
        "gap": ok & ~cloud & gap,
        "edge": ok & ~cloud & edge,
        "interior": ok & ~cloud & ~edge,
    }


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    scenes_dir, out_dir, scenes, methods = argv[0], argv[1], argv[2].split(","), argv[3:]
    masks = {s: kinds(scenes_dir, s) for s in scenes}
    for m in methods:
        for s in scenes:
            lab, kind = masks[s]
            right = read(f"{out_dir}/{s}/{m}.tif").astype(int) == lab
            cells = [
                f"{k} {right[v].mean():.3f} ({v.sum()})" if v.any() else f"{k} -"
                for k, v in kind.items()
            ]
            print(f"{m:24s} {s:10s} " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
