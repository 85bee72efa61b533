#!/usr/bin/env bash
# The multi-scale encoder against the hand-crafted methods and the single modalities:
# held-out synthetic scenes with scene-to-scene variation (six 192 px scenes, train on 1-4, score
# 5-6) and the Flanders chips across chips (train on chip A 2018, score chip B 2019), each a
# `geofuse study` (learning curve) over nested subsets of the training pixels.
#
# Methods: forest (handcrafted), boosted trees, optical-only, sar-only and learned-kernel with
# the small encoder, optical-only-unet and learned-kernel-unet with the U-Net. Small networks draw
# SMALL_PATCHES patches of 32 px per training scene and epoch (default 256, geofuse's own default;
# 64, used in earlier tables, undertrains them: BENCHMARKS.md); U-Nets
# UNET_PATCHES patches of 64 px (default 32, the tables' setting; the context needs the patch;
# 32 undertrains them too: 128 and 256 lift the cloudy-scene U-Net fusion from 0.888 to 0.917
# and 0.938 mIoU at four and eight times the training time, BENCHMARKS.md).
# Flanders chips are 64 px, so its split uses 32 px blocks there (16 in
# pipelines/flanders-cross.toml) for the U-Net to see 32 px patches.
#
# Prints held-out mIoU per method and training fraction, then, for the full training set, each
# method's held-out-scene mIoU [95 % block-bootstrap interval] and the block-level sign-flip test
# of learned-kernel-unet against every other method. BENCHMARKS.md ("Multi-scale encoder")
# records the tables.
#
#   bash benches/multiscale.sh                   # synth and flanders, 2 cores: about 60 min with
#                                                # SMALL_PATCHES=64; the default 256 trains the
#                                                # three small networks 4x longer
#   bash benches/multiscale.sh flanders          # one of them
#   SIZE=384 FRACTIONS=1 bash benches/multiscale.sh synth   # 384 px scenes: 3-25 % cloud each
#   SIZE=384 FRACTIONS=0.1,1 bash benches/multiscale.sh synth   # BENCHMARKS.md's table: 31 min
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/geofuse"
[ -x "$bin" ] || cargo build --release --locked
out="${OUT:-out/multiscale}"
fractions="${FRACTIONS:-0.1,1}"
mkdir -p "$out"

net() { # name fusion encoder patches patch
  printf '\n[[methods]]\nname = "%s"\nkind = "learned"\nfusion = "%s"\nencoder = "%s"\nwidth = 16\nepochs = 30\npatience = 8\npatches = %s\npatch = %s\nmc_passes = 16\n' "$@"
}

methods() {
  printf '\n[[methods]]\nname = "boosted"\nrounds = 100\nlearning_rate = 0.1\nmax_depth = 6\n'
  local p="${SMALL_PATCHES:-256}"
  net optical-only optical-only small "$p" 32
  net sar-only sar-only small "$p" 32
  net learned-kernel learned-kernel small "$p" 32
  local u="${UNET_PATCHES:-32}"
  net optical-only-unet optical-only unet "$u" "$1"
  net learned-kernel-unet learned-kernel unet "$u" "$1"
}

summary() { # study folder, name
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
d, name = sys.argv[1], sys.argv[2]
s = json.load(open(f"{d}/study.json"))
kind = "held-out scene"
fr = s["fractions"]
rows = {}
for r in s["runs"]:
    for m, v in r["results"].items():
        if kind in v:
            rows.setdefault(m, {})[r["fraction"]] = (r["training_pixels"], v[kind]["miou"])
print(f"\n{name}, {kind}: mIoU by training fraction")
print("| method | " + " | ".join(f"{100 * f:g} %" for f in fr) + " |")
print("|---|" + "---|" * len(fr))
for m, by in rows.items():
    print(f"| {m} | " + " | ".join(f"{by[f][1]:.3f}" if f in by else "-" for f in fr) + " |")
full = [r for r in s["runs"] if r["fraction"] == max(fr)][0]
c = json.load(open(f"{d}/{full['folder']}/metrics.json"))["comparison"]
print(f"\n{name}, full training set, {kind}: mIoU [95 % block-bootstrap interval]")
for m in c["methods"]:
    if m["evaluation"] == kind:
        v = m["scores"]["miou"]
        print(f'  {m["method"]:22s} {v["value"]:.3f} [{v["ci95"][0]:.3f}, {v["ci95"][1]:.3f}]')
for p in c["pairs"]:
    if p["evaluation"] != kind or "learned-kernel-unet" not in (p["a"], p["b"]):
        continue
    sign = 1 if p["a"] == "learned-kernel-unet" else -1
    other = p["b"] if sign == 1 else p["a"]
    print(f'  learned-kernel-unet - {other}: block OA {sign * p["mean_block_accuracy_difference"]:+.4f}, '
          f'sign-flip p {p["block_p"]:.4f} (Holm {p["block_p_holm"]:.4f}, {p["blocks"]} blocks)')
PY
}

study() { # name pipeline
  local t0=$SECONDS
  "$bin" study "$2" --out "$out/$1/run" --fractions "$fractions" --seeds 1 --device cpu -q >/dev/null
  echo "== $1: $((SECONDS - t0)) s"
  summary "$out/$1/run" "$1"
}

for w in ${@:-synth flanders}; do
  case $w in
    synth)
      syn="$out/synth/scenes"
      "$bin" synth --out "$syn" --size "${SIZE:-192}" --seed 21 --scenes 6 >/dev/null
      { sed '/^\[\[methods\]\]/,$d' "$syn/pipeline.toml"
        printf '[[methods]]\nname = "handcrafted"\ntrees = 100\nmax_depth = 18\n'
        methods 64; } > "$syn/study.toml"
      study synth "$syn/study.toml" ;;
    flanders)
      data=$(realpath ../shared/data/worldcereal_flanders 2>/dev/null || true)
      if [ -z "$data" ] || [ ! -d "$data" ]; then
        echo "== flanders: SKIPPED (../shared/data/worldcereal_flanders is absent)"; continue
      fi
      mkdir -p "$out/flanders"
      { /usr/bin/python3 - pipelines/flanders-cross.toml "$data" <<'PY'
import sys
text, data = open(sys.argv[1]).read(), sys.argv[2]
text = text.replace("../../shared/data/worldcereal_flanders", data)
text = text.replace("\nblock_size = 16\n", "\nblock_size = 32\n").split("\n[study]")[0]
# Keep the forest and the training/evaluation lists; the other methods come from methods().
parts = text.split("\n[[methods]]\n")
keep = [p for p in parts[1:] if p.startswith('name = "handcrafted"')]
tail = parts[-1][parts[-1].index("[training]"):]
print(parts[0] + "".join("\n[[methods]]\n" + p.split("\n\n")[0] + "\n" for p in keep) + "\n" + tail)
PY
        methods 32; } > "$out/flanders/study.toml"
      study flanders "$out/flanders/study.toml" ;;
    *) echo "unknown study $w (synth, flanders)" >&2; exit 2 ;;
  esac
done
