"""Does a fused season network lean on SAR where optical dates were lost? Over the labelled
pixels where the SAR-only network is wrong, the share where the fused network maps the same
(wrong) class as SAR alone, in terciles of the pixels' valid optical observations (product
band 7), with Wilson 95 % intervals (pixels are not independent: read them as a lower bound
on the spread).
    python3 lean_on_sar.py LABELS.tif FUSED.tif SAR_ONLY.tif [LABELS.tif FUSED.tif SAR_ONLY.tif ...]"""
import sys

import numpy as np
from osgeo import gdal


def wilson(k, n, z=1.96):
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main(triples):
    parts = []
    for labels, fused, sar in triples:
        f = gdal.Open(fused).ReadAsArray()
        parts.append((gdal.Open(labels).ReadAsArray().ravel(), f[0].ravel(), f[6].ravel(), gdal.Open(sar).ReadAsArray()[0].ravel()))
    lab, cls, obs, sar = map(np.concatenate, zip(*parts))
    wrong = (lab > 0) & (sar != 255) & (cls != 255) & (sar != lab)
    cuts = np.quantile(obs[lab > 0], [1 / 3, 2 / 3])
    for name, sel in [("fewest", obs <= cuts[0]), ("middle", (obs > cuts[0]) & (obs <= cuts[1])), ("most", obs > cuts[1])]:
        s = wrong & sel
        if not s.any():
            continue
        k = int(np.sum(cls[s] == sar[s]))
        lo, hi = wilson(k, int(s.sum()))
        print(f"  obs {obs[s].min():.0f}-{obs[s].max():.0f}: SAR-only wrong on {s.sum()} px; fused takes its class {k / s.sum():.3f} [{lo:.3f}, {hi:.3f}], fused right {np.mean(cls[s] == lab[s]):.3f}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(list(zip(a[0::3], a[1::3], a[2::3])))
