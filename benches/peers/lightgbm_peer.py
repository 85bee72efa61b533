"""LightGBM on run.sh's 22-feature stack with geofuse's boosted-tree settings.

    python lightgbm_peer.py WORK [RUNS]      (the PyTorch venv's python: LightGBM 4.x, numpy)

The same training design as `geofuse classify --classifier boosted --rounds 100 --max-depth 6
--min-samples-leaf 5 --samples-per-class 1000`: at most 1000 labelled pixels per class drawn
at random (seed 42), softmax over the classes, 100 rounds, depth 6 (num_leaves 64), learning
rate 0.1, 64 bins, L2 1.0, min 5 samples a leaf, 2 threads. Timed inside Python, data already
in memory: training (binning included), and predicting class probabilities for every pixel of
the scene (no uncertainty, no output file; geofuse's figure includes both). Median of RUNS.
Prints `ms_train`, `ms_predict`, and the overall accuracy of LightGBM and of geofuse's boosted
product on every labelled pixel (out/gf_boosted_class.npy, from lightgbm_export.py).
"""
import sys
import time

import lightgbm as lgb
import numpy as np

work = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
x = np.load(f"{work}/out/stack22.npy")
lab = np.load(f"{work}/out/labels.npy")
gf = np.load(f"{work}/out/gf_boosted_class.npy")

rng = np.random.default_rng(42)
classes = [c for c in np.unique(lab) if c > 0]
idx = np.concatenate([
    rng.choice(np.flatnonzero(lab == c), size=min(1000, int((lab == c).sum())), replace=False)
    for c in classes
])
y = np.searchsorted(classes, lab[idx])
params = dict(objective="multiclass", num_class=len(classes), learning_rate=0.1, max_depth=6,
              num_leaves=64, max_bin=64, min_data_in_leaf=5, lambda_l2=1.0, num_threads=2,
              deterministic=True, force_row_wise=True, seed=42, verbose=-1)

train_ms, predict_ms = [], []
for _ in range(runs):
    t = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(x[idx], label=y, params={"max_bin": 64}),
                        num_boost_round=100)
    train_ms.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    p = booster.predict(x, num_threads=2)
    predict_ms.append((time.perf_counter() - t) * 1000)

pred = np.asarray(classes)[p.argmax(axis=1)]
v = lab > 0
print(f"lightgbm {lgb.__version__}: {len(idx)} training pixels, {x.shape[0]} pixels predicted")
print(f"ms_train {np.median(train_ms):.0f}")
print(f"ms_predict {np.median(predict_ms):.0f}")
print(f"oa_lightgbm {(pred[v] == lab[v]).mean():.4f}")
print(f"oa_geofuse_boosted {(gf[v] == lab[v]).mean():.4f}")
print(f"same_class {(pred[v] == gf[v]).mean():.4f}")
