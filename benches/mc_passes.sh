#!/usr/bin/env bash
# How many Monte Carlo dropout passes? Trains the learned-kernel model of
# pipelines/uncertainty.toml once, then predicts the demo scene with T = 1, 2, 4, 8, 16, 32
# passes (same weights, same temperature) and prints, per T, the held-out uncertainty metrics
# and the prediction time. BENCHMARKS.md ("Monte Carlo passes") records the table and the
# default chosen from it.
#
#   bash benches/mc_passes.sh            # about 3 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/geofuse"
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/out"
# The study pipeline with only the learned-kernel method, writing under $work.
python3 - "$work" <<'EOF'
import re, sys, pathlib
work = pathlib.Path(sys.argv[1])
src = pathlib.Path("pipelines/uncertainty.toml").read_text()
head, *methods = src.split("[[methods]]")
keep = [m for m in methods if 'name = "learned-kernel"' in m]
text = head + "".join("[[methods]]" + m for m in keep)
root = pathlib.Path("pipelines").resolve()
text = re.sub(r'"\.\./', lambda _: '"' + str(root.parent) + "/", text)
text = re.sub(r'(?m)^output = .*$', f'output = "{work}/out"', text)
(work / "p.toml").write_text(text)
EOF
"$bin" run "$work/p.toml" --device cpu -q >/dev/null
model="$out/demo/learned-kernel"
printf '%-6s %8s %8s %12s %16s %10s %10s\n' passes ece auroc_tot auroc_epist masked_epi_ratio epi_masked predict_s
for t in 1 2 4 8 16 32; do
  sed -E "s/^mc_passes = .*/mc_passes = $t/" "$work/p.toml" > "$work/p$t.toml"
  "$bin" predict "$work/p$t.toml" --method learned-kernel --model "$model" --out "$work/o$t" --device cpu -q >/dev/null
  python3 - "$work/o$t/demo/metrics.json" "$t" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["methods"]["learned-kernel"]
print(f'{sys.argv[2]:<6} {m["ece"]:8.4f} {m["auroc_total"]:8.3f} {m["auroc_epistemic"]:12.3f} '
      f'{m["masked_epistemic_ratio"]:16.1f} {m["epistemic_median_masked"]:10.3f} {m["predict_seconds"]:10.2f}')
EOF
done
