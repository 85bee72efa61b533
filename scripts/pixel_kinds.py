#!/usr/bin/python3
"""Overall accuracy of products by pixel kind, on scenes written by `geofuse synth`.

usage: pixel_kinds.py SCENES_DIR OUT_DIR SCENE[,SCENE...] METHOD [METHOD ...]
       pixel_kinds.py --pair A B [--block 64] SCENES_DIR OUT_DIR SCENE[,SCENE...]

For every METHOD and SCENE it reads `OUT_DIR/SCENE/METHOD.tif` (band 1: the class) and the
scene's `labels.tif`, `cloud_mask.tif` and `sar.tif` under SCENES_DIR, and prints the share of
labelled pixels mapped right among
  clear     no cloud or shadow, SAR present;
  cloud     cloud or shadow (the mask's 1 and 2);
  gap       no cloud, no SAR (swath edge, burst gap): the optical data alone;
  edge      no cloud, within 2 px (8-neighbourhood) of another label;
  interior  no cloud, farther from one;
  blind     grassland or wetland without SAR (cloud or not): `geofuse synth` gives the two the
            same optical spectrum, so nothing in the data tells them apart there;
  informed  every labelled pixel but the blind ones.
With --pair A B it prints instead the block-level sign-flip test (blocks of --block px, as
`[split] block_size`; 100,000 seeded random flips, two-sided) of the overall accuracy of A
minus B on the informed pixels: whether one method is ahead where the data can decide.
The per-kind tables of BENCHMARKS.md come from it.
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
    blind = ok & gap & np.isin(lab, [4, 7])
    return lab, {
        "clear": ok & ~cloud & ~gap,
        "cloud": ok & cloud,
        "gap": ok & ~cloud & gap,
        "edge": ok & ~cloud & edge,
        "interior": ok & ~cloud & ~edge,
        "blind": blind,
        "informed": ok & ~blind,
    }


def block_differences(masks, out_dir, a, b, block):
    """Per block, OA of method a minus OA of method b on the informed pixels."""
    diffs = []
    for s, (lab, kind) in masks.items():
        ra = read(f"{out_dir}/{s}/{a}.tif").astype(int) == lab
        rb = read(f"{out_dir}/{s}/{b}.tif").astype(int) == lab
        inf = kind["informed"]
        for y in range(0, lab.shape[0], block):
            for x in range(0, lab.shape[1], block):
                m = inf[y:y + block, x:x + block]
                if m.any():
                    d = ra[y:y + block, x:x + block][m].mean() - rb[y:y + block, x:x + block][m].mean()
                    diffs.append(d)
    return np.array(diffs)


def sign_flip(diffs, flips=100_000, seed=42):
    """Two-sided p-value of the mean of paired differences under random sign flips."""
    rng = np.random.default_rng(seed)
    obs = abs(diffs.mean())
    signs = rng.choice([-1.0, 1.0], size=(flips, diffs.size))
    null = np.abs((signs * diffs).mean(axis=1))
    return (1 + (null >= obs - 1e-12).sum()) / (flips + 1)


def pair(argv):
    a, b, rest = argv[1], argv[2], argv[3:]
    block = 64
    if rest[:1] == ["--block"]:
        block, rest = int(rest[1]), rest[2:]
    if len(rest) != 3:
        sys.exit(__doc__)
    scenes_dir, out_dir, scenes = rest[0], rest[1], rest[2].split(",")
    masks = {s: kinds(scenes_dir, s) for s in scenes}
    d = block_differences(masks, out_dir, a, b, block)
    print(f"{a} - {b}, informed pixels: block OA {d.mean():+.4f} over {d.size} blocks, "
          f"sign-flip p {sign_flip(d):.2g}")


def main(argv):
    if argv[:1] == ["--pair"]:
        return pair(argv)
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
