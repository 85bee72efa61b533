#!/usr/bin/env bash
# Misregistration study: does a learned fusion kernel, which predicts its
# taps from both modalities, cope with SAR misregistered against the optical grid better than a
# fixed bilateral kernel, early fusion and concatenation?
#
# For each shift, six synthetic scenes with scene-to-scene variation (`geofuse synth --scenes 6
# --misregistration PX --misregistration-mode exact`: the SAR of every scene moved by exactly
# PX pixels in a direction drawn per scene; the same scenes otherwise), trained on scenes 1-4,
# scored on the held-out scenes 5-6. A last run uses a shift that turns across each scene
# (`--misregistration-mode varying`). Both kernel fusions use a 7 x 7 kernel (reach 3 px);
# every network draws PATCHES patches of 32 px from each training scene per epoch (default 256,
# geofuse's own; the first tables in BENCHMARKS.md used 64, which undertrains the networks).
# FUSIONS picks the fusions (default: early concat fixed-kernel learned-kernel); the name
# registered-kernel adds the learned kernel on the SAR latent registered by its cue (align =
# ALIGN, default 12). PATIENCE: early-stopping patience (default 8; 30 keeps the best epoch of
# the whole schedule).
# Prints, per shift, held-out-scene mIoU [95 % block-bootstrap interval] per method and the
# block-level sign-flip test (Holm within the run) of learned-kernel against each other method.
# BENCHMARKS.md ("Misregistration study") records the table.
#
#   bash benches/misregistration.sh                 # shifts 0 1 2 3 + varying 2, 2 cores: ~60 min
#                                                   # with PATCHES=64, ~4x that at the default
#   SHIFTS="1 2" VARYING= FUSIONS="fixed-kernel learned-kernel" bash benches/misregistration.sh
#   SHIFTS=3 VARYING= PATIENCE=30 FUSIONS="fixed-kernel registered-kernel" bash benches/misregistration.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/geofuse"
[ -x "$bin" ] || cargo build --release --locked
out="${OUT:-out/misregistration}"
size="${SIZE:-192}"
shifts="${SHIFTS-0 1 2 3}"
varying="${VARYING-2}"
patches="${PATCHES:-256}"
fusions="${FUSIONS:-early concat fixed-kernel learned-kernel}"
align="${ALIGN:-12}"
patience="${PATIENCE:-8}"
mkdir -p "$out"

net() { # fusion, or registered-kernel (learned-kernel on the registered SAR latent, align = ALIGN)
  local kernel=3 fusion=$1 extra=""
  case $1 in *-kernel) kernel=7 ;; esac
  if [ "$1" = registered-kernel ]; then
    fusion=learned-kernel extra="align = $align"
  fi
  printf '\n[[methods]]\nname = "%s"\nkind = "learned"\nfusion = "%s"\nwidth = 16\nepochs = 30\npatience = %s\npatches = %s\npatch = 32\nmc_passes = 16\nkernel = %s\n%s\n' "$1" "$fusion" "$patience" "$patches" "$kernel" "$extra"
}

summary() { # run folder, label
  /usr/bin/python3 - "$1/metrics.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["comparison"]; label = sys.argv[2]
kind = "held-out scene"
rows = [m for m in c["methods"] if m["evaluation"] == kind]
cells = []
for m in rows:
    s = m["scores"]["miou"]
    cells.append(f'{m["method"]} {s["value"]:.3f} [{s["ci95"][0]:.3f}, {s["ci95"][1]:.3f}]')
print(f"{label}: " + "; ".join(cells))
for p in c["pairs"]:
    mine = [m for m in ("registered-kernel", "learned-kernel") if m in (p["a"], p["b"])]
    if p["evaluation"] != kind or not mine:
        continue
    sign = 1 if p["a"] == mine[0] else -1
    other = p["b"] if sign == 1 else p["a"]
    d = sign * p["mean_block_accuracy_difference"]
    print(f'  {mine[0]} - {other}: block OA {d:+.4f}, sign-flip p {p["block_p"]:.4f} '
          f'(Holm {p["block_p_holm"]:.4f}, {p["blocks"]} blocks), McNemar p {p["mcnemar_p"]:.2g}')
PY
}

run() { # label, synth options...
  local label=$1 t0=$SECONDS dir="$out/$1"
  shift
  "$bin" synth --out "$dir/scenes" --size "$size" --seed 21 --scenes 6 "$@" >/dev/null
  {
    sed '/^\[\[methods\]\]/,$d' "$dir/scenes/pipeline.toml"
    for f in $fusions; do net "$f"; done
  } > "$dir/scenes/study.toml"
  "$bin" run "$dir/scenes/study.toml" --out "$dir/run" --device cpu -q >/dev/null
  echo "== $label: $((SECONDS - t0)) s"
  summary "$dir/run" "$label"
}

for s in $shifts; do
  run "shift-$s" --misregistration "$s" --misregistration-mode exact
done
if [ -n "$varying" ]; then
  run "varying-$varying" --misregistration "$varying" --misregistration-mode varying
fi
