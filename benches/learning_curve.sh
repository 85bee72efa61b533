#!/usr/bin/env bash
# Learning curves: `geofuse study` on the shipped demo scene, on six varied synthetic
# scenes (train on 1-4, hold out 5-6) and on the Flanders chips across chips (train on chip A,
# hold out chip B), each method trained on nested subsets of the training pixels with two
# seeds. Prints held-out mIoU (mean [min, max] over seeds) per method and training size;
# BENCHMARKS.md ("Learning curves") records the tables. Each study also leaves its report
# (report.md / report.html with the curve) in $OUT/<name>/.
#
#   bash benches/learning_curve.sh                  # demo, synth, flanders: about 45 min, 2 cores
#   bash benches/learning_curve.sh flanders         # one of them
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/geofuse"
[ -x "$bin" ] || cargo build --release --locked
out="${OUT:-out/learning-curve}"
mkdir -p "$out"

summary() {
  /usr/bin/python3 - "$1/study.json" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); name = sys.argv[2]
for kind in ("held-out blocks", "held-out scene"):
    rows = {}
    for r in s["runs"]:
        for m, v in r["results"].items():
            if kind in v:
                rows.setdefault(m, {}).setdefault(r["fraction"], []).append((r["training_pixels"], v[kind]["miou"]))
    if not rows:
        continue
    print(f"\n{name}, {kind}: held-out mIoU, mean [min, max] over seeds")
    fr = s["fractions"]
    px = [sum(p for p, _ in next(iter(rows.values()))[f]) / len(next(iter(rows.values()))[f]) for f in fr]
    print("| method | " + " | ".join(f"{100*f:g}% ({p:.0f} px)" for f, p in zip(fr, px)) + " |")
    print("|---|" + "---|" * len(fr))
    for m, by in rows.items():
        cells = []
        for f in fr:
            ys = [y for _, y in by.get(f, [])]
            cells.append(f"{sum(ys)/len(ys):.3f} [{min(ys):.3f}, {max(ys):.3f}]" if ys else "—")
        print(f"| {m} | " + " | ".join(cells) + " |")
PY
}

study() { # name pipeline [study options]
  local t0=$SECONDS
  "$bin" study "$2" --out "$out/$1" --device cpu -q "${@:3}" >/dev/null
  echo "== $1: $((SECONDS - t0)) s"
  summary "$out/$1" "$1"
}

for what in "${@:-demo synth flanders}"; do
  for w in $what; do
    case $w in
      demo) study demo pipelines/demo.toml --seeds 2 ;;
      synth)
        syn="$out/synth-scenes"
        "$bin" synth --out "$syn" --size 128 --seed 11 --scenes 6 >/dev/null
        # The generated pipeline (forest, learned-kernel) plus boosted trees, concat and the
        # single-modality networks, with the learning-curve settings.
        nets=""
        for m in concat optical-only sar-only; do
          nets+=$'\n[[methods]]\nname = "'$m$'"\nwidth = 16\nepochs = 30\npatience = 8\npatches = 256\npatch = 32\nmc_passes = 16\n'
        done
        printf '%s\n[[methods]]\nname = "boosted"\nrounds = 100\nlearning_rate = 0.1\nmax_depth = 6\n%s\n[study]\nfractions = [0.01, 0.1, 1.0]\nseeds = 2\n' \
          "$(cat "$syn/pipeline.toml")" "$nets" > "$syn/study.toml"
        study synth "$syn/study.toml" ;;
      flanders)
        if [ ! -d ../shared/data/worldcereal_flanders ]; then
          echo "== flanders: SKIPPED (../shared/data/worldcereal_flanders is absent)"; continue
        fi
        study flanders pipelines/flanders-cross.toml ;;
      *) echo "unknown study $w (demo, synth, flanders)" >&2; exit 2 ;;
    esac
  done
done
