"""Where optical dates were lost: one method's accuracy and mean epistemic uncertainty over the
labelled pixels of season products, in terciles of the pixels' valid optical observations
(product band 7), and the Spearman correlation of that count with the epistemic band.
    python3 by_obs.py NAME LABELS.tif PRODUCT.tif [LABELS.tif PRODUCT.tif ...]
A product on a coarser grid than its labels is resampled onto the labels' grid (nearest)."""
import sys

import numpy as np
from osgeo import gdal


def read(labels, product):
    lab = gdal.Open(labels).ReadAsArray()
    ds = gdal.Open(product)
    if (ds.RasterYSize, ds.RasterXSize) != lab.shape:
        ds = gdal.Warp("", ds, format="MEM", width=lab.shape[1], height=lab.shape[0], resampleAlg="near")
    a = ds.ReadAsArray().astype(float)
    return lab.ravel(), a[0].ravel(), a[3].ravel() * 0.004, a[6].ravel()


def rank(a):
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


def main(name, pairs):
    lab, cls, epi, obs = map(np.concatenate, zip(*(read(l, p) for l, p in pairs)))
    ok = (lab > 0) & (cls != 255)
    cuts = np.quantile(obs[ok], [1 / 3, 2 / 3])
    parts = []
    for part, sel in [("fewest", obs <= cuts[0]), ("middle", (obs > cuts[0]) & (obs <= cuts[1])), ("most", obs > cuts[1])]:
        s = ok & sel
        if s.any():
            parts.append(f"{part} obs {obs[s].min():.0f}-{obs[s].max():.0f} (n {s.sum()}): OA {np.mean(cls[s] == lab[s]):.3f} epistemic {epi[s].mean():.4f}")
    rho = np.corrcoef(rank(obs[ok]), rank(epi[ok]))[0, 1] if epi[ok].std() > 0 and obs[ok].std() > 0 else float("nan")
    print(f"  {name}: " + "; ".join(parts) + f"; spearman(obs, epistemic) {rho:+.2f}")


if __name__ == "__main__":
    args = sys.argv[2:]
    main(sys.argv[1], list(zip(args[0::2], args[1::2])))
