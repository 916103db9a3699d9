#!/usr/bin/env bash
# The one prepared call for a lent GPU (the GPU-speed issue, item 5). Prepare on the dev machine, from the repo root:
#   ../shared/tools/device-bundle.sh src/GpuStyle.Cli/GpuStyle.Cli.csproj        # → .device/bundle.tgz
#   cp ../shared/tools/torch_vgg_iter.py ../shared/weights/vgg19_notop_blocks1-3.h5 ../shared/images/tubingen.jpg \
#      ../shared/images/starry_night.jpg .device/
# then run it with the device tool, carrying .device:   bash docs/gpu-check.sh
# It builds nothing there: it checks every GPU kernel against the CPU backend, benchmarks ours and PyTorch/cuDNN
# (TF32 off and on) at 256, 512 and 1024 px for VGG16 and VGG19, and times one real 500-iteration transfer.
# Everything it prints is also written under $OUT.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT" "$HOME/gs"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
tar -xzf .device/bundle.tgz -C "$HOME/gs"
B="$HOME/gs/bundle/gpustyle"
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$B" devices
echo "== correctness: every op on CUDA against the CPU backend"
"$B" bench --check --device cuda --size 256 --layer relu3_1 --iteration-sizes "" || { echo "GPU kernels disagree: stopping"; exit 1; }
for net in vgg16 vgg19; do
  echo "== ours: $net"
  "$B" bench --device cuda --network "$net" --size 512 --iteration-sizes 256,512,1024 --iterations 5 | tee "$OUT/bench-$net.txt"
  for size in 256 512 1024; do
    python3 .device/torch_vgg_iter.py --device cuda --network "$net" --size "$size"
    python3 .device/torch_vgg_iter.py --device cuda --network "$net" --size "$size" --tf32
  done
done
echo "== one real transfer: 500 iterations at 512 px (partial real VGG19: content relu3_2, style relu1_1..relu3_1)"
/usr/bin/time -f "wall %e s, max RSS %M KB" "$B" transfer --device cuda --quiet \
  --content .device/tubingen.jpg --style .device/starry_night.jpg --out "$OUT/tubingen-starry-512.png" \
  --weights .device/vgg19_notop_blocks1-3.h5 --content-layers relu3_2 --style-layers relu1_1,relu2_1,relu3_1 \
  --size 512 --iterations 500 --log "$OUT/transfer-512.jsonl"
tail -1 "$OUT/transfer-512.jsonl"
