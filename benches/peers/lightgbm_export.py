#!/usr/bin/python3
"""Writes run.sh's 22-feature stack and labels as .npy files for lightgbm_peer.py.

The PyTorch venv has LightGBM and numpy but not GDAL's Python bindings, so Debian's python3
reads the rasters once: out/stack22.npy ([pixel, feature] float32, NaN where nodata),
out/labels.npy (uint8, 0 = unlabelled) and out/gf_boosted_class.npy (geofuse's boosted class
band, for the accuracy side by side).
"""
import sys

import numpy as np
from osgeo import gdal

work = sys.argv[1]


def read(name):
    ds = gdal.Open(f"{work}/{name}")
    a = ds.ReadAsArray()
    ds = None
    return a


stack = read("out/stack22.tif").astype(np.float32)
np.save(f"{work}/out/stack22.npy", stack.reshape(stack.shape[0], -1).T.copy())
np.save(f"{work}/out/labels.npy", read("data/labels.tif").reshape(-1))
np.save(f"{work}/out/gf_boosted_class.npy", read("out/gf_boosted.tif")[0].reshape(-1))
