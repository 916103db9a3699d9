#!/usr/bin/env bash
# The one prepared call for a lent GPU (the GPU-speed issue, item 5). Prepare on the dev machine, from the repo root:
#   bash docs/gpu-prepare.sh          # the bundle (≈ 37 MB), torch_vgg_iter.py, the partial weights, two images → .device/
# then run it with the device tool, carrying .device:   bash docs/gpu-check.sh     (timeout_s 600)
# If the call runs out of time, what it printed so far is in $OUT/gpu-check.txt; rerun only the missing steps.
# It builds nothing there. In order, each step bounded so that one slow step cannot eat the call:
#   1. the card, driver, `gpustyle devices`;
#   2. correctness: every op on CUDA against the CPU backend, for each convolution kernel (blocked fp32 — the
#      default —, tiled fp32, TF32 tensor cores); a kernel that disagrees (or does not load) is left out of the
#      timings, and the script stops only if none passes;
#   3. ours vs PyTorch/cuDNN (TF32 off and on) per iteration at 256, 512, 1024 px, VGG16 then VGG19;
#      ours with the blocked fp32 kernel and with --tf32; the per-layer table at 512 for both, plus tiled fp32;
#   4. `bench --profile` at 512 (CUDA-event markers: per-kernel times, GFLOP/s, % of the card's measured peak);
#   5. one real 500-iteration transfer at 512 px, fp32 and --tf32, with wall times;
#   6. if the call has time left, a few other tile shapes (bench --launch) for both kernels.
# Everything it prints is also written under $OUT (gpu-check.txt, bench JSON, the pictures, the logs).
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT" "$HOME/gs"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
T0=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - T0 )) s] $*"; }
# Wall time (and peak RSS where GNU time exists: the lent machine may not have it).
timed() {
  if [ -x /usr/bin/time ]; then /usr/bin/time -f "wall %e s, max RSS %M KB" "$@"; return; fi
  local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo "wall $(( (e - s) / 1000000 )) ms"
}
tar -xzf .device/bundle.tgz -C "$HOME/gs"
B="$HOME/gs/bundle/gpustyle"
step "1. the machine"
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
timeout 60 "$B" devices

step "2. correctness against the CPU backend"
ok=""
for conv in blocked tiled tf32; do
  echo "-- --conv $conv"
  if timeout 120 "$B" bench --check --device cuda --conv "$conv" --size 64 --layer relu3_1 --iteration-sizes ""; then
    ok="$ok $conv"
  else
    echo "!! --conv $conv disagrees with the CPU backend (or failed to load): it is not timed below"
  fi
done
[ -n "$ok" ] || { echo "no convolution kernel passed: stopping"; exit 1; }
has() { case " $ok " in *" $1 "*) return 0;; esac; return 1; }

step "3. per-iteration timings, ours and PyTorch"
for net in vgg16 vgg19; do
  for conv in blocked tf32; do
    has "$conv" || continue
    echo "-- ours: $net, --conv $conv"
    timeout 150 "$B" bench --device cuda --conv "$conv" --network "$net" --size 512 --iteration-sizes 256,512,1024 --iterations 5 \
      | tee "$OUT/bench-$net-$conv.txt"
  done
  for size in 256 512 1024; do
    timeout 60 python3 .device/torch_vgg_iter.py --device cuda --network "$net" --size "$size"
    timeout 60 python3 .device/torch_vgg_iter.py --device cuda --network "$net" --size "$size" --tf32
  done
done
if has tiled; then
  echo "-- ours: vgg16, --conv tiled (version 2, for the record), per layer and 512 only"
  timeout 90 "$B" bench --device cuda --conv tiled --size 512 --iteration-sizes 512 --iterations 5
fi

step "4. profiles at 512 (CUDA events)"
for conv in blocked tf32; do
  has "$conv" && timeout 90 "$B" bench --profile --device cuda --conv "$conv" --size 512 --iterations 3
done

step "5. one real transfer: 500 iterations at 512 px (partial real VGG19: content relu3_2, style relu1_1..relu3_1)"
for flag in "" "--tf32"; do
  if [ -n "$flag" ]; then has tf32 || continue; else has blocked || continue; fi
  name="tubingen-starry-512${flag:+-tf32}"
  timed timeout 120 "$B" transfer --device cuda $flag --quiet \
    --content .device/tubingen.jpg --style .device/starry_night.jpg --out "$OUT/$name.png" \
    --weights .device/vgg19_notop_blocks1-3.h5 --content-layers relu3_2 --style-layers relu1_1,relu2_1,relu3_1 \
    --size 512 --iterations 500 --log "$OUT/$name.jsonl"
  tail -1 "$OUT/$name.jsonl"
done
step "6. if time is left: other tile shapes, per layer at 512 (bench --launch; no rebuild needed)"
for shape in "BlockedWidth=64,BlockedHeight=8" "BlockedWidth=32,BlockedHeight=8,BlockedChunk=16" "BlockedWidth=16,BlockedHeight=16"; do
  has blocked && timeout 60 "$B" bench --device cuda --conv blocked --launch "$shape" --size 512 --iteration-sizes 512 --iterations 3 | tail -6
done
for shape in "MmaTileWidth=64,MmaTileHeight=4" "MmaWarpsCo=1,MmaTileWidth=32,MmaTileHeight=8"; do
  has tf32 && timeout 60 "$B" bench --device cuda --conv tf32 --launch "$shape" --size 512 --iteration-sizes 512 --iterations 3 | tail -6
done
step "done"
