#!/usr/bin/env bash
# GPU figures through wgpu, one prepared script for a lent device machine
# (or any machine with a Vulkan driver). For each encoder (small, unet): the cold start (the
# first wgpu run in a fresh process and shader cache: adapter, pipelines and shader
# compilation) against a warm run; inference of a 1024^2 tile (forward pass, and the full
# prediction with 16 Monte Carlo passes) in megapixels per second; training steps per second
# (batch 16 x 32^2 px, and 16 x 64^2 px); GPU = CPU agreement of one random network's logits,
# probabilities and entropy against the native CPU path. The same on the CPU for the ratio.
#
# On the device: build here, then carry the binary and the Vulkan loader packages:
#   mkdir -p .gpu && cp "$CARGO_TARGET_DIR/release/geofuse" .gpu/   (.gpu and .gl in .git/info/exclude)
#   run(carry=[".gpu", ".gl"], command="bash benches/gpu.sh .gpu/geofuse")
# Prints `gpu <name> <value>` lines; BENCHMARKS.md ("GPU") records them.
set -uo pipefail
cd "$(dirname "$0")/.."
gf="${1:-${CARGO_TARGET_DIR:-target}/release/geofuse}"
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -d /usr/local/nvidia/share/vulkan/icd.d ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export HOME="${GPU_HOME:-$(mktemp -d)}"   # a fresh shader cache for the cold start
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
ms() { sed -n 's/^ms \([0-9.]*\)$/\1/p'; }
mps() { awk -v t="$1" -v s="$2" 'BEGIN {printf "%.1f", s * s / 1e6 / (t / 1000)}'; }
sps() { awk -v t="$1" 'BEGIN {printf "%.2f", 1000 / t}'; }
for enc in small unet; do
  t0=$(date +%s.%N)
  "$gf" bench-net --device wgpu --encoder "$enc" --size 256 >/dev/null 2>&1
  t1=$(date +%s.%N)
  "$gf" bench-net --device wgpu --encoder "$enc" --size 256 >/dev/null 2>&1
  t2=$(date +%s.%N)
  echo "gpu cold_start_s_$enc $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
  echo "gpu warm_start_s_$enc $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f", b - a}')"
  for dev in wgpu cpu; do
    f=$("$gf" bench-net --device $dev --encoder "$enc" --size 1024 2>/dev/null | ms)
    p=$("$gf" bench-net --device $dev --encoder "$enc" --size 1024 --passes 16 2>/dev/null | ms)
    echo "gpu ${dev}_forward_mps_$enc $(mps "$f" 1024)"
    echo "gpu ${dev}_predict16_mps_$enc $(mps "$p" 1024)"
    for patch in 32 64; do
      t=$("$gf" bench-net --device $dev --train --encoder "$enc" --batch 16 --patch $patch --steps 10 2>/dev/null | ms)
      echo "gpu ${dev}_train_steps_per_s_${enc}_b16_p$patch $(sps "$t")"
    done
  done
  "$gf" bench-net --agree --device wgpu --encoder "$enc" --size 256 --passes 4 2>/dev/null |
    sed -n "s/^\(max_abs_[a-z]*\) \(.*\)$/gpu agree_\1_$enc \2/p"
done
# The learned kernel with the SAR registration (align): GPU = CPU for its cue and resampling.
"$gf" bench-net --agree --device wgpu --kernel 7 --align 12 --size 256 --passes 4 2>/dev/null |
  sed -n "s/^\(max_abs_[a-z]*\) \(.*\)$/gpu agree_\1_registered \2/p"
