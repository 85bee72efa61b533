#!/usr/bin/python3
"""Checks that geofuse and the reference tools agree on run.sh's outputs; exits 1 if not.

GLCM: every feature, every pixel, relative difference <= 1e-4 (same definitions as OTB).
Indices: absolute difference <= 1e-5 wherever OTB's denominator is not 0 (OTB writes 0 there).
Random forest: both tools' overall accuracy against the labels, and their pixel agreement
(different random forests: they must both be accurate and agree on >= 95 % of pixels).
"""
import os
import sys
import numpy as np
from osgeo import gdal

work = sys.argv[1]
ok = True


def read(name):
    ds = gdal.Open(f"{work}/{name}")
    a = ds.ReadAsArray()
    ds = None
    return a


g, o = read("out/gf_glcm.tif").astype(np.float64), read("out/otb_glcm.tif").astype(np.float64)
rel = np.abs(g - o) / np.maximum(np.abs(o), 1e-3)
glcm = float(np.nanmax(rel))
print(f"agreement GLCM: max relative difference {glcm:.2e} over {o.size} values")
ok &= glcm <= 1e-4

g, o = read("out/gf_ri.tif").astype(np.float64), read("out/otb_ri.tif").astype(np.float64)
m = np.isfinite(g) & (o != 0)
idx = float(np.abs(g - o)[m].max())
print(f"agreement indices: max absolute difference {idx:.2e} over {int(m.sum())} values")
ok &= idx <= 1e-5

lab = read("data/labels.tif")
gc, oc = read("out/gf_class.tif")[0], read("out/otb_class.tif")
v = lab > 0
oa_g, oa_o, agree = (gc[v] == lab[v]).mean(), (oc[v] == lab[v]).mean(), (gc[v] == oc[v]).mean()
print(f"agreement RF: OA geofuse {oa_g:.4f}, OTB {oa_o:.4f}, same class on {agree:.4f} of pixels")
ok &= oa_g > 0.9 and agree >= 0.95
if os.path.exists("out/gf_boosted.tif"):
    gb = read("out/gf_boosted.tif")[0]
    oa_b = (gb[v] == lab[v]).mean()
    print(f"boosted trees: OA {oa_b:.4f} (same class as geofuse's forest on {(gb[v] == gc[v]).mean():.4f} of pixels)")
    ok &= oa_b > 0.9
sys.exit(0 if ok else 1)
