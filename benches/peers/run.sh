#!/usr/bin/env bash
# geofuse side by side with the field's reference tools on the same scene, on this machine.
#
#   bash benches/peers/run.sh [SIZE]        # SIZE default 2048; RUNS=3 repetitions (medians)
#
# Installs what is missing (Debian: otb-bin, libotb-apps, gdal-bin, python3-gdal,
# python3-numpy, python3-torch, python3-venv; PyTorch and LightGBM from PyPI into a virtual
# environment under ~/.cache/geofuse/torch-venv, about 5 GB with PyTorch's CUDA libraries, unused
# on the CPU), builds
# geofuse (release), generates the scene with
# ../shared/peers/make_data.py (the script the OTB figures were measured with), runs each
# operation with both tools, checks that the outputs agree, and prints a table. The last lines
# are machine-readable, one per comparison: `ratio <name> <x>`, x = geofuse speed / reference
# speed (> 1: geofuse is faster), from the median wall time of RUNS runs of each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
size=${1:-2048}
runs=${RUNS:-3}
work=${WORK:-/tmp/geofuse-peers}
make_data="$root/../shared/peers/make_data.py"
[ -f "$make_data" ] || { echo "run.sh: $make_data not found; it needs ../shared/peers beside the clone" >&2; exit 2; }

# --- install (idempotent) ------------------------------------------------------------------
need=(otb-bin libotb-apps gdal-bin python3-gdal python3-numpy python3-torch python3-venv)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
venv=${TORCH_VENV:-$HOME/.cache/geofuse/torch-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, lightgbm" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch numpy lightgbm
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}
(cd "$root" && cargo build --release --locked -q)
gf="$CARGO_TARGET_DIR/release/geofuse"
py=/usr/bin/python3

# --- scene -----------------------------------------------------------------------------------
mkdir -p "$work/data" "$work/out"
cd "$work"
if [ ! -f data/.size-$size ]; then
  rm -f data/.size-*
  $py "$make_data" data "$size" >/dev/null
  gdal_translate -q -b 7 -scale 0 1 0 10000 -ot UInt16 -co TILED=YES data/opt10.tif data/nir_dn.tif
  touch data/.size-$size
fi
max=$(gdalinfo -mm data/nir_dn.tif | sed -n 's/.*Computed Min\/Max=[0-9.]*,\([0-9.]*\).*/\1/p' | cut -d. -f1)
mpix=$($py -c "print($size * $size / 1e6)")

# ms wall time of a command (output discarded; a failure stops the script with its message)
ms() {
  local s e log; log=$(mktemp); s=$(date +%s%N)
  if ! "$@" >"$log" 2>&1; then echo "run.sh: failed: $*" >&2; tail -5 "$log" >&2; rm -f "$log"; exit 1; fi
  e=$(date +%s%N); rm -f "$log"; echo $(( (e - s) / 1000000 ))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
declare -A T
time_runs() { # name command...
  local name=$1; shift; local v=()
  for _ in $(seq "$runs"); do v+=("$(ms "$@")"); done
  T[$name]=$(median "${v[@]}")
}

echo "scene ${size} x ${size} (${mpix} MP), $runs runs each, $(nproc) cores, work folder $work"

# --- GLCM: Haralick "simple", 5x5, 8 levels, offset (1,0), fixed range ----------------------
H=(otbcli_HaralickTextureExtraction -in data/nir_dn.tif -channel 1 -texture simple
   -parameters.xrad 2 -parameters.yrad 2 -parameters.xoff 1 -parameters.yoff 0
   -parameters.min 0 -parameters.max "$max" -parameters.nbbin 8 -out out/otb_glcm.tif)
G=("$gf" texture data/nir_dn.tif --band 1 --radius 2 --offset 1,0 --levels 8 --range "0,$max"
   --features simple --compress none --out out/gf_glcm.tif)
time_runs otb_glcm "${H[@]}"
time_runs gf_glcm "${G[@]}"

# --- spectral indices: NDVI, Gao NDWI (NDMI), MNDWI, brightness; and a plain copy -------------
RI=(otbcli_RadiometricIndices -in data/opt10.tif -channels.blue 1 -channels.green 2 -channels.red 3
    -channels.nir 7 -channels.mir 9 -list Vegetation:NDVI Water:NDWI Water:MNDWI Soil:BI -out out/otb_ri.tif)
GI=("$gf" indices data/opt10.tif --list NDVI,NDMI,MNDWI,BI --compress none --out out/gf_ri.tif)
time_runs otb_ri "${RI[@]}"
time_runs gf_ri "${GI[@]}"
time_runs copy gdal_translate -q data/opt10.tif out/copy10.tif

# --- random forest, 100 trees, depth 10, 22 features, with confidence -------------------------
# The stack OTB classifies: 10 bands, VV, VH, NDVI, NDWI, 8 Haralick features.
if [ ! -f out/stack22.tif ] || [ out/stack22.tif -ot data/.size-$size ]; then
  otbcli_RadiometricIndices -in data/opt10.tif -channels.blue 1 -channels.green 2 -channels.red 3 \
    -channels.nir 7 -channels.mir 9 -list Vegetation:NDVI Water:NDWI -out out/ri_2.tif >/dev/null
  otbcli_ConcatenateImages -il data/opt10.tif data/sar2.tif out/ri_2.tif out/otb_glcm.tif \
    -out out/stack22.tif float >/dev/null
  rm -f out/labels.gpkg
  gdal_polygonize.py -q data/labels.tif -f GPKG out/labels.gpkg labels class
fi
TR=(otbcli_TrainImagesClassifier -io.il out/stack22.tif -io.vd out/labels.gpkg -sample.vfn class
    -sample.bm 0 -sample.mt 1000 -sample.mv 1000 -sample.vtr 0.5 -classifier rf
    -classifier.rf.nbtrees 100 -classifier.rf.max 10 -classifier.rf.min 5 -classifier.rf.acc 0
    -rand 42 -io.out out/rf100.model)
IC=(otbcli_ImageClassifier -in out/stack22.tif -model out/rf100.model -nbclasses 6
    -out out/otb_class.tif uint8 -confmap out/otb_conf.tif float)
T[otb_rf_train]=$(ms "${TR[@]}")
time_runs otb_rf_predict "${IC[@]}"
# ms of the stage `name` in a `geofuse classify` line ("sample 0.53 s, train 0.35 s, ...")
stage() { echo "$2" | sed -n "s/.* $1 \([0-9.]*\) s.*/\1/p" | awk '{printf "%d", $1 * 1000}'; }
gf_rf=(); gf_rf_tr=()
for _ in $(seq "$runs"); do
  line=$("$gf" classify out/stack22.tif --labels data/labels.tif --trees 100 --max-depth 10 \
    --min-samples-leaf 5 --samples-per-class 1000 --compress none --out out/gf_class.tif)
  gf_rf+=("$(stage predict "$line")")
  # OTB's training samples the image too: sampling + training against it.
  gf_rf_tr+=("$(( $(stage sample "$line") + $(stage train "$line") ))")
done
T[gf_rf_predict]=$(median "${gf_rf[@]}")
T[gf_rf_train]=$(median "${gf_rf_tr[@]}")
# The same stack through geofuse's boosted trees (OTB has no multi-class boosting to compare
# with; its forest is the reference), 100 rounds of depth-6 trees per class.
gf_gb=(); gf_gb_tr=(); gf_gb_fit=()
for _ in $(seq "$runs"); do
  line=$("$gf" classify out/stack22.tif --labels data/labels.tif --classifier boosted --rounds 100 \
    --max-depth 6 --min-samples-leaf 5 --samples-per-class 1000 --compress none --out out/gf_boosted.tif)
  gf_gb+=("$(stage predict "$line")")
  gf_gb_tr+=("$(( $(stage sample "$line") + $(stage train "$line") ))")
  # LightGBM is timed on samples already in memory: training alone against it.
  gf_gb_fit+=("$(stage train "$line")")
done
T[gf_gb_predict]=$(median "${gf_gb[@]}")
T[gf_gb_train]=$(median "${gf_gb_tr[@]}")
T[gf_gb_fit]=$(median "${gf_gb_fit[@]}")
# The same training design through LightGBM 4.x (rounds, depth, bins, learning rate, L2,
# samples per class, 2 threads), timed inside Python with the data in memory.
"$py" "$here/lightgbm_export.py" "$work"
lgb_out=$("$venv/bin/python" "$here/lightgbm_peer.py" "$work" "$runs")
echo "$lgb_out" | grep -v '^ms_'
T[lgb_train]=$(echo "$lgb_out" | sed -n 's/^ms_train \([0-9]*\)$/\1/p')
T[lgb_predict]=$(echo "$lgb_out" | sed -n 's/^ms_predict \([0-9]*\)$/\1/p')

# --- whole chain: scene to classified raster ------------------------------------------------
chain_otb() {
  "${H[@]}" && otbcli_RadiometricIndices -in data/opt10.tif -channels.blue 1 -channels.green 2 \
    -channels.red 3 -channels.nir 7 -channels.mir 9 -list Vegetation:NDVI Water:NDWI -out out/ri_2.tif &&
  otbcli_ConcatenateImages -il data/opt10.tif data/sar2.tif out/ri_2.tif out/otb_glcm.tif \
    -out out/stack22.tif float && "${TR[@]}" && "${IC[@]}"
}
"$py" "$here/chain_pipeline.py" "$work" "$max" > out/chain.toml
chain_gf() { "$gf" run out/chain.toml --force -q --out out/gf_chain; }
time_runs otb_chain chain_otb
time_runs gf_chain chain_gf

# --- learned network on the CPU: geofuse (native kernels; burn Flex for reference) vs PyTorch --
# Each figure is the median of 7 forward passes; the tools alternate RUNS times and the
# median of those medians is kept.
tile=256
net_ms() { "$@" | sed -n 's/^ms \([0-9.]*\)$/\1/p'; }
v_pt=(); v_deb=(); v_gf=(); v_burn=()
for _ in $(seq "$runs"); do
  v_pt+=("$(net_ms "$venv/bin/python" "$here/torch_net.py" "$tile")")
  v_deb+=("$(net_ms "$py" "$here/torch_net.py" "$tile")")
  v_gf+=("$(net_ms "$gf" bench-net --fusion learned-kernel --size "$tile" --device cpu)")
  v_burn+=("$(net_ms "$gf" bench-net --fusion learned-kernel --size "$tile" --device cpu-burn)")
done
median_f() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
T[torch]=$(median_f "${v_pt[@]}")
T[torch_deb]=$(median_f "${v_deb[@]}")
T[gf_net]=$(median_f "${v_gf[@]}")
T[gf_burn]=$(median_f "${v_burn[@]}")
torch_v=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
torch_deb_v=$("$py" -c "import torch; print(torch.__version__)")

# --- training steps on the CPU: geofuse (native kernels) vs PyTorch, both encoders ------------
# One step = batch assembly + forward + backward + AdamW update of the learned-kernel network,
# batch 16 x 32^2 px (geofuse's default batch and patch); median of 10 steps, RUNS alternations.
for enc in small unet; do
  v_tt=(); v_gt=()
  for _ in $(seq "$runs"); do
    v_tt+=("$(net_ms "$venv/bin/python" "$here/torch_train.py" "$enc" 16 32 10)")
    v_gt+=("$(net_ms "$gf" bench-net --train --encoder "$enc" --batch 16 --patch 32 --steps 10 --device cpu)")
  done
  T[torch_train_$enc]=$(median_f "${v_tt[@]}")
  T[gf_train_$enc]=$(median_f "${v_gt[@]}")
done

# --- agreement -------------------------------------------------------------------------------
"$py" "$here/agree.py" "$work"

# --- table -----------------------------------------------------------------------------------
r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mps() { awk -v t="$1" -v m="$mpix" 'BEGIN {printf "%.2f", m / (t / 1000)}'; }
printf '\n%-34s %12s %12s %10s\n' "operation" "reference" "geofuse" "ratio"
printf '%-34s %9s ms %9s ms %10s\n' "GLCM simple 5x5, 8 levels (OTB)" "${T[otb_glcm]}" "${T[gf_glcm]}" "$(r "${T[otb_glcm]}" "${T[gf_glcm]}")"
printf '%-34s %9s ms %9s ms %10s\n' "4 indices (gdal_translate copy)" "${T[copy]}" "${T[gf_ri]}" "$(r "${T[copy]}" "${T[gf_ri]}")"
printf '%-34s %9s ms %9s ms %10s\n' "4 indices (OTB)" "${T[otb_ri]}" "${T[gf_ri]}" "$(r "${T[otb_ri]}" "${T[gf_ri]}")"
printf '%-34s %9s ms %9s ms %10s\n' "RF 100 trees predict + confidence" "${T[otb_rf_predict]}" "${T[gf_rf_predict]}" "$(r "${T[otb_rf_predict]}" "${T[gf_rf_predict]}")"
printf '%-34s %9s ms %9s ms %10s\n' "RF 100 trees train" "${T[otb_rf_train]}" "${T[gf_rf_train]}" "$(r "${T[otb_rf_train]}" "${T[gf_rf_train]}")"
printf '%-34s %9s ms %9s ms %10s\n' "boosted 100 rounds predict (OTB RF)" "${T[otb_rf_predict]}" "${T[gf_gb_predict]}" "$(r "${T[otb_rf_predict]}" "${T[gf_gb_predict]}")"
printf '%-34s %9s ms %9s ms %10s\n' "boosted 100 rounds train (OTB RF)" "${T[otb_rf_train]}" "${T[gf_gb_train]}" "$(r "${T[otb_rf_train]}" "${T[gf_gb_train]}")"
printf '%-34s %9s ms %9s ms %10s\n' "boosted predict (LightGBM)" "${T[lgb_predict]}" "${T[gf_gb_predict]}" "$(r "${T[lgb_predict]}" "${T[gf_gb_predict]}")"
printf '%-34s %9s ms %9s ms %10s\n' "boosted train (LightGBM)" "${T[lgb_train]}" "${T[gf_gb_fit]}" "$(r "${T[lgb_train]}" "${T[gf_gb_fit]}")"
printf '%-34s %9s ms %9s ms %10s\n' "chain: scene to classes" "${T[otb_chain]}" "${T[gf_chain]}" "$(r "${T[otb_chain]}" "${T[gf_chain]}")"
printf '%-34s %9s ms %9s ms %10s\n' "learned-kernel net, ${tile}^2 (torch)" "${T[torch]}" "${T[gf_net]}" "$(r "${T[torch]}" "${T[gf_net]}")"
printf '  PyTorch %s from PyPI; Debian PyTorch %s: %s ms; geofuse through burn Flex: %s ms\n' \
  "$torch_v" "$torch_deb_v" "${T[torch_deb]}" "${T[gf_burn]}"
for enc in small unet; do
  printf '%-34s %9s ms %9s ms %10s\n' "train step, $enc encoder (torch)" "${T[torch_train_$enc]}" "${T[gf_train_$enc]}" "$(r "${T[torch_train_$enc]}" "${T[gf_train_$enc]}")"
done
printf 'geofuse throughput: GLCM %s MP/s, indices %s MP/s, RF predict %s MP/s, chain %s MP/s\n' \
  "$(mps "${T[gf_glcm]}")" "$(mps "${T[gf_ri]}")" "$(mps "${T[gf_rf_predict]}")" "$(mps "${T[gf_chain]}")"
echo "ratio glcm $(r "${T[otb_glcm]}" "${T[gf_glcm]}")"
echo "ratio indices_vs_copy $(r "${T[copy]}" "${T[gf_ri]}")"
echo "ratio rf_predict $(r "${T[otb_rf_predict]}" "${T[gf_rf_predict]}")"
echo "ratio boosted_predict_vs_otb_rf $(r "${T[otb_rf_predict]}" "${T[gf_gb_predict]}")"
echo "ratio boosted_predict_vs_lightgbm $(r "${T[lgb_predict]}" "${T[gf_gb_predict]}")"
echo "ratio boosted_train_vs_lightgbm $(r "${T[lgb_train]}" "${T[gf_gb_fit]}")"
echo "ratio chain $(r "${T[otb_chain]}" "${T[gf_chain]}")"
echo "ratio learned_cpu_vs_torch $(r "${T[torch]}" "${T[gf_net]}")"
echo "ratio learned_train_cpu_vs_torch $(r "${T[torch_train_small]}" "${T[gf_train_small]}")"
echo "ratio learned_train_unet_cpu_vs_torch $(r "${T[torch_train_unet]}" "${T[gf_train_unet]}")"
