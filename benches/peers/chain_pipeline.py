#!/usr/bin/python3
"""Prints the geofuse pipeline for the chain comparison of run.sh: the peer scene
(make_data.py) with the features OTB's chain stacks (10 bands, VV, VH, NDVI, NDWI (Gao, geofuse's
NDMI), 8 Haralick features of B8, 5x5, 8 levels, offset (1,0)) and a random forest of 100 trees
of depth 10 (min 5 samples per leaf, 1000 samples per class).

    chain_pipeline.py WORK NIR_MAX_DN
"""
import sys

work, nir_max = sys.argv[1], float(sys.argv[2])
classes = ["water", "forest", "crop", "grass", "bare", "urban"]
colors = ["#1f78b4", "#33a02c", "#ffd92f", "#b2df8a", "#cab2d6", "#e31a1c"]
print(f'output = "{work}/out/gf_chain"\nseed = 42\n')
for i, (n, c) in enumerate(zip(classes, colors), 1):
    print(f'[[classes]]\nid = {i}\nname = "{n}"\ncolor = "{c}"\n')
print(f'''[[scenes]]
name = "peer"
optical = {{ path = "{work}/data/opt10.tif", bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"], scale = 1.0 }}
sar = {{ path = "{work}/data/sar2.tif", polarisations = ["VV", "VH"], unit = "db" }}
labels = "{work}/data/labels.tif"

[tiling]
tile_size = 512

[features]
indices = ["NDVI", "NDMI"]
sar = ["vv_db", "vh_db"]
speckle = {{ filter = "none" }}

[[features.glcm]]
band = "B08"
radius = 2
offsets = [[1, 0]]
levels = 8
quantisation = "fixed"
min = 0.0
max = {nir_max / 10000.0}
definitions = "standard"
features = ["energy", "entropy", "correlation", "idm", "inertia", "cluster_shade", "cluster_prominence", "haralick_correlation"]

[split]
block_size = 128
test_fraction = 0.3
samples_per_class = 1000

[[methods]]
name = "handcrafted"
trees = 100
max_depth = 10
min_samples_leaf = 5''')
