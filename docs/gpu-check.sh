#!/usr/bin/env bash
# The one prepared call for a lent GPU (the GPU-speed issue, item 5). Prepare on the dev machine, from the repo root:
#   bash docs/gpu-prepare.sh          # the bundle (≈ 37 MB), torch_vgg_iter.py, the partial weights, two images → .device/
# then run it with the device tool, carrying .device:   bash docs/gpu-check.sh   (timeout_s a little above BUDGET)
# BUDGET (seconds, default 420) bounds the whole call: each step gets at most what is left, and a step that would
# start with too little left is skipped and named, so a rerun can ask for just the missing steps:
#   STEPS="7 8 9" CONVS="blocked winograd tuned tf32" bash docs/gpu-check.sh   (CONVS: what step 2 passed, when it is skipped;
#   the variants' names are those step 2 adds: tf32-plain tf32-prefetch tf32-async tf32-gram winograd-gramgemm
#   winograd4 winograd-tf32)
# It builds nothing there. Steps, the issue's targets first:
#   1. the card, driver, `gpustyle devices`;
#   2. correctness: every op on CUDA against the CPU backend, for the blocked fp32, Winograd fp32, tuned fp32 (the
#      default since 2026-11-28), TF32 (the default: tuned, Gram on tensor cores) and plain TF32 kernels and each
#      opt-in variant; a kernel that disagrees (or does not load) is left out of the
#      timings, and the script stops if none passes;
#   3. VGG16 per iteration at 256, 512, 1024 px: ours — blocked fp32, tuned fp32 (the default; each shape's fastest
#      of blocked, Winograd F(2×2) and F(4×4), built after the H200 run: expected ≈ 2–3× the blocked kernel on the
#      convolutions; its table of every candidate's time per shape is the per-layer comparison), --tf32 (each
#      shape's fastest of the TF32 tile heights, Winograd with TF32 GEMMs and fp32 Winograd), and the plain TF32
#      kernel at 512 — then PyTorch/cuDNN (TF32
#      off and on) (the "+ full L-BFGS history" column times the vector-free L-BFGS: expected ≈ +0.5 ms at 512
#      where the classical recursion measured +7 ms);
#   4. one real 500-iteration transfer at 512 px, fp32 (blocked, tuned) and --tf32, with wall times;
#   5. `bench --profile` at 512 (CUDA-event markers: per-kernel times, GFLOP/s, % of the card's measured peak);
#   6. VGG19: the same as 3 (one layer in the per-layer table: VGG19's layers have VGG16's shapes);
#   7. each opt-in variant alone on relu3_2 and the 512² iteration: Winograd F(2×2, 3×3) and WinogradTile=4
#      (F(4×4, 3×3)) each alone (tuned mixes them), WinogradMma=1
#      (TF32 GEMMs), GramGemm=1, WinogradPrefetch=0, SgemmFixedBlocks=0 and MmaLaunchBounds=0 (for comparison),
#      MmaPrefetch=1, MmaPrefetch=2 (cp.async staging; with MmaTune=1 each shape's tile timed with and without it),
#      MmaGram=1, MmaMinGroups=132, MmaFragments=1, 2 and 4 (version 5, operands in fragment order, in 32- and
#      64-channel warps and 64×64 warp tiles; 32×8 and 32×4),
#      and combinations — after the issue's measurements, which the
#      budget must not cut;
#   8. where Nsight Compute (ncu) is there: one launch each of the TF32 convolution (and with MmaPrefetch=2), the
#      Winograd SGEMM and the blocked kernel on relu3_2 — speed of light, occupancy, warp stall reasons, launch
#      statistics: what limits each, for the next change, from the same call;
#   9. for the record: the OpenCL kernels on the card where it has OpenCL (checked, one 512² iteration), version 2
#      (tiled) checked and timed, then other tile shapes (bench --launch);
#   then a summary: each saved VGG16 bench's 512² iteration beside PyTorch's at 512.
# Everything it prints is also written under $OUT (gpu-check.txt, the bench tables, the pictures, the logs).
set -u
OUT=${OUT:-/tmp/gpu-check}
BUDGET=${BUDGET:-420}
STEPS=" ${STEPS:-1 2 3 4 5 6 7 8 9} "
mkdir -p "$OUT" "$HOME/gs"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
want() { case "$STEPS" in *" $1 "*) return 0;; esac; return 1; }
step() { echo; echo "== [$(( $(date +%s) - T0 )) s] $*"; }
# bounded SECONDS CMD…: runs CMD for at most SECONDS or what the budget has left; skipped if under 15 s are left.
bounded() {
  local s=$1; shift; local l; l=$(left)
  (( l < 15 )) && { echo "!! skipped (budget spent): $*"; return 124; }
  (( s > l )) && s=$l
  timeout "$s" "$@"
}
# Wall time of a command or shell function (the whole process: start-up, JIT, loading, the run, writing the picture).
timed() {
  local s e r; s=$(date +%s%N); "$@"; r=$?; e=$(date +%s%N); echo "wall $(( (e - s) / 1000000 )) ms"; return $r
}
# GPUSTYLE_BIN: another gpustyle to call (docs/gpu-rehearse.sh runs the script here with one that maps the GPU's
# arguments to the CPU accelerator, to catch a command the GPU would refuse before a GPU session is spent on it).
if [ -n "${GPUSTYLE_BIN:-}" ]; then B=$GPUSTYLE_BIN; else tar -xzf .device/bundle.tgz -C "$HOME/gs"; B="$HOME/gs/bundle/gpustyle"; fi
TORCH="python3 docs/torch_many.py .device/torch_vgg_iter.py"
torch_sizes() { local a=(); for s in 256 512 1024; do a+=("--device cuda --network $1 --size $s" "--device cuda --network $1 --size $s --tf32"); done; bounded 150 $TORCH "${a[@]}"; }

if want 1; then
  step "1. the machine"
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  bounded 60 "$B" devices
fi

# What step 2 passed is kept in $HOME/gs/ok, so that a rerun on the same warm machine (STEPS="7 8 9") times the same set.
ok=${CONVS:-$(cat "$HOME/gs/ok" 2>/dev/null || echo blocked winograd tuned tf32)}
# --tf32's default tunes each shape's kernel (MmaTune=1, version 5 among the candidates: MmaFragments=3) and runs the
# Gram matrices on tensor cores (MmaGram=1); the
# TF32 variants of steps 7–9 are timed against the plain 32×8 kernel, so they start from PLAIN (later names win).
PLAIN="MmaTune=0,MmaGram=0,MmaFragments=0"
plain() { if [ "$1" = tf32 ]; then echo "$PLAIN${2:+,$2}"; else echo "$2"; fi; }
# check NAME CONV [LAUNCH]: every op of --conv CONV (with --launch LAUNCH) against the CPU backend; NAME joins $ok
# when it agrees, and what is not in $ok is not timed.
check() {
  local name=$1 conv=$2 launch=${3:-}
  echo "-- $name: --conv $conv${launch:+ --launch $launch}"
  if bounded 90 "$B" bench --check --device cuda --conv "$conv" ${launch:+--launch "$launch"} --size 64 --layer relu3_1 --iteration-sizes ""; then
    ok="$ok $name"
  else
    echo "!! $name disagrees with the CPU backend (or failed to load): it is not timed below"
  fi
}

if want 2; then
  step "2. correctness against the CPU backend"
  ok=""
  check blocked blocked
  check winograd winograd
  check tuned tuned                                      # each shape's fastest of blocked, F(2×2), F(4×4)
  check tf32 tf32                                        # the default: tile heights tuned against Winograd, Gram on tensor cores
  check tf32-plain tf32 "$PLAIN"                         # the 32×8 tile alone, fp32 Gram: what the TF32 variants change
  check tf32-prefetch tf32 MmaPrefetch=1                 # the next chunk's patch prefetched
  check tf32-async tf32 MmaPrefetch=2                    # staging by cp.async, two patch buffers
  check tf32-gram tf32 MmaGram=1                         # the Gram matrices on tensor cores too
  check tf32-fragments tf32 "$PLAIN,MmaFragments=1"      # version 5 alone: operands in fragment order
  check tf32-fragments-wide tf32 "$PLAIN,MmaFragments=2" # version 5 in 64-channel warps
  check tf32-fragments-square tf32 "$PLAIN,MmaFragments=4" # version 5 in 64×64 warp tiles
  check winograd-gramgemm winograd GramGemm=1            # the fp32 Gram backward by the SGEMM
  check winograd4 winograd WinogradTile=4                # F(4×4, 3×3)
  check winograd-tf32 winograd WinogradMma=1             # the Winograd GEMMs on tensor cores, TF32
  echo "$ok" > "$HOME/gs/ok"
  [ -n "$ok" ] || { echo "no convolution kernel passed: stopping"; exit 1; }
fi
has() { case " $ok " in *" $1 "*) return 0;; esac; return 1; }

if want 3; then
  step "3. VGG16 per iteration, ours and PyTorch (256, 512, 1024 px)"
  # The defaults and the new Winograd kernels first, PyTorch right after: the comparison the targets need. The
  # opt-in variants are step 7, after the transfers and VGG19, which the budget may cut (rerun: STEPS="7 8 9").
  for conv in blocked tuned tf32; do
    has "$conv" || continue
    echo "-- ours: vgg16, --conv $conv"
    bounded 100 "$B" bench --device cuda --conv "$conv" --network vgg16 --size 512 --iteration-sizes 256,512,1024 --iterations 5 \
      | tee "$OUT/bench-vgg16-$conv.txt"
  done
  if has tf32-plain; then
    echo "-- ours: vgg16, --conv tf32 --launch $PLAIN (the plain TF32 kernel)"
    bounded 60 "$B" bench --device cuda --conv tf32 --launch "$PLAIN" --network vgg16 --size 512 --layer relu3_2 --iteration-sizes 512 \
      --iterations 5 | tee "$OUT/bench-vgg16-tf32-plain.txt"
  fi
  torch_sizes vgg16
fi

if want 4; then
  step "4. one real transfer: 500 iterations at 512 px (partial real VGG19: content relu3_2, style relu1_1..relu3_1)"
  for flag in "" "--conv tuned" "--tf32"; do
    case "$flag" in "") has blocked || continue;; *tuned) has tuned || continue;; *) has tf32 || continue;; esac
    suffix=${flag##* }; name="tubingen-starry-512${flag:+-${suffix#--}}"
    # The last line ("wrote …") says where the command's time went besides the iterations: the device, the kernels
    # (how many from the kernel cache, which the earlier steps filled), the tuning.
    timed bounded 90 "$B" transfer --device cuda $flag \
      --content .device/tubingen.jpg --style .device/starry_night.jpg --out "$OUT/$name.png" \
      --weights .device/vgg19_notop_blocks1-3.h5 --content-layers relu3_2 --style-layers relu1_1,relu2_1,relu3_1 \
      --size 512 --iterations 500 --log "$OUT/$name.jsonl" 2>&1 | grep -E "^wrote|^wall|rror"
    tail -1 "$OUT/$name.jsonl"
  done
fi

if want 5; then
  step "5. profiles at 512 (CUDA events)"
  for conv in blocked tuned tf32; do
    has "$conv" && bounded 60 "$B" bench --profile --device cuda --conv "$conv" --size 512 --iterations 3
  done
fi

if want 6; then
  step "6. VGG19 per iteration, ours and PyTorch"
  for conv in blocked tuned tf32; do
    has "$conv" || continue
    echo "-- ours: vgg19, --conv $conv"
    bounded 90 "$B" bench --device cuda --conv "$conv" --network vgg19 --layer relu1_1 --size 512 --iteration-sizes 256,512,1024 --iterations 5
  done
  torch_sizes vgg19
fi

if want 7; then
  step "7. the opt-in variants, each alone on relu3_2 and the 512² iteration"
  # Those that passed step 2, Winograd's first: after the issue's own measurements (steps 3–6), which come first.
  for variant in "winograd winograd WinogradTile=2" "winograd4 winograd WinogradTile=4" "winograd-tf32 winograd WinogradMma=1" "winograd-gramgemm winograd GramGemm=1" \
                 "winograd winograd WinogradPrefetch=0" "winograd winograd SgemmFixedBlocks=0" \
                 "winograd winograd WinogradGather=1" "winograd4 winograd WinogradTile=4,WinogradGather=1" \
                 "winograd winograd GramGemm=1,WinogradMma=1" \
                 "winograd4 winograd WinogradTile=4,GramGemm=1" \
                 "tf32-plain tf32 MmaLaunchBounds=0" "tf32-prefetch tf32 MmaPrefetch=1" "tf32-async tf32 MmaPrefetch=2" \
                 "tf32-async tf32 MmaPrefetch=2,MmaTune=1" "tf32-gram tf32 MmaGram=1" "tf32-gram tf32 MmaGram=1,MmaGemmBatch=1" \
                 "tf32-plain tf32 MmaMinGroups=132" "tf32-gram tf32 MmaGram=1,MmaPrefetch=1,MmaMinGroups=132" \
                 "tf32-fragments tf32 MmaFragments=1" "tf32-fragments tf32 MmaFragments=1,MmaTileHeight=4" \
                 "tf32-fragments-wide tf32 MmaFragments=2" "tf32-fragments-wide tf32 MmaFragments=2,MmaTileHeight=4" \
                 "tf32-fragments-square tf32 MmaFragments=4" "tf32-fragments-square tf32 MmaFragments=4,MmaTileHeight=4"; do
    set -- $variant
    has "$1" || continue
    case "$3" in *GramGemm*) has winograd-gramgemm || continue;; esac
    case "$3" in *WinogradMma*) has winograd-tf32 || continue;; esac
    case "$3" in *WinogradTile=4*) has winograd4 || continue;; esac
    case "$3" in *MmaPrefetch=1*) has tf32-prefetch || continue;; esac
    L=$(plain "$2" "$3")
    echo "-- ours: vgg16, --conv $2 --launch $L"
    bounded 45 "$B" bench --device cuda --conv "$2" --launch "$L" --network vgg16 --size 512 --layer relu3_2 --iteration-sizes 512 \
      --iterations 5 | tee "$OUT/bench-vgg16-$2-${3//[=,]/-}.txt"
  done
fi

if want 8; then
  step "8. Nsight Compute on relu3_2's convolution kernels, where ncu is there: what limits each"
  # The H200 session profiled by hand, in later calls; this keeps the diagnosis in the same call as the timings.
  # One launch of each (the second: the first may pay for loading), its sections' tables saved under $OUT.
  NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -z "$NCU" ]; then
    echo "(no ncu on this machine)"
  else
    for spec in "tf32-plain tf32 - conv3x3_tf32_mma_32x8" "tf32-fragments tf32 MmaFragments=1 conv3x3_tf32_fragments" \
                "tf32-fragments-wide tf32 MmaFragments=2 conv3x3_tf32_fragments_wide" \
                "tf32-fragments-square tf32 MmaFragments=4 conv3x3_tf32_fragments_64x64" \
                "tf32-async tf32 MmaPrefetch=2 conv3x3_tf32_mma_32x8_async" \
                "winograd winograd - sgemm_8x8_128x128" "blocked blocked - conv3x3_blocked"; do
      set -- $spec
      has "$1" || continue
      L=$(plain "$2" "$( [ "$3" != "-" ] && echo "$3")")
      launch=(); [ -n "$L" ] && launch=(--launch "$L")
      echo "-- ncu: $4 (--conv $2${launch[*]:+ ${launch[*]}})"
      bounded 75 "$NCU" --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
        --kernel-name "regex:^Kernel_$4\$" --launch-skip 1 --launch-count 1 \
        "$B" bench --device cuda --conv "$2" ${launch[@]+"${launch[@]}"} --network vgg16 --size 512 --layer relu3_2 \
        --iteration-sizes "" --iterations 2 > "$OUT/ncu-$4.txt" 2>&1
      grep -A120 -m1 "^ *Kernel_$4" "$OUT/ncu-$4.txt" || tail -5 "$OUT/ncu-$4.txt"   # the report, or why there is none
    done
  fi
fi

if want 9; then
  step "9. for the record: OpenCL on the card, version 2 (tiled), then other tile shapes (bench --launch)"
  # The OpenCL kernels have run only on PoCL (a CPU, one work-group at a time): on a GPU, every op against the CPU
  # backend (ILGPU's OpenCL C shares one shared-memory pointer between groups; on a GPU they all write the same value,
  # which this shows), then one 512² iteration beside CUDA's. Where NVIDIA's OpenCL ICD and libOpenCL.so.1 are there.
  if "$B" devices | grep -q "^  opencl:"; then
    bounded 90 "$B" bench --check --device opencl --size 64 --layer relu3_1 --iteration-sizes "" \
      && bounded 60 "$B" bench --device opencl --size 512 --layer relu3_2 --iteration-sizes 512 --iterations 3 | tail -6
  else
    echo "(no OpenCL device on this machine)"
  fi
  if bounded 60 "$B" bench --check --device cuda --conv tiled --size 64 --layer relu3_1 --iteration-sizes ""; then
    bounded 60 "$B" bench --device cuda --conv tiled --size 512 --iteration-sizes 512 --iterations 5
  fi
  for shape in "BlockedWidth=64,BlockedHeight=8" "BlockedWidth=32,BlockedHeight=8,BlockedChunk=16" "BlockedWidth=16,BlockedHeight=16"; do
    has blocked && bounded 45 "$B" bench --device cuda --conv blocked --launch "$shape" --size 512 --iteration-sizes 512 --iterations 3 | tail -6
  done
  for shape in "WinogradScratch=16777216" "WinogradM=64,WinogradN=128" "WinogradM=128,WinogradN=64" "WinogradM=64,WinogradN=64"; do
    has winograd && bounded 45 "$B" bench --device cuda --conv winograd --launch "$shape" --size 512 --iteration-sizes 512 --iterations 3 | tail -6
  done
  for shape in "MmaTileWidth=64,MmaTileHeight=4" "MmaWarpsCo=1,MmaTileWidth=32,MmaTileHeight=8"; do
    has tf32-plain && bounded 45 "$B" bench --device cuda --conv tf32 --launch "$(plain tf32 "$shape")" --size 512 --iteration-sizes 512 --iterations 3 | tail -6
  done
fi
step "summary: VGG16 at 512², per iteration (the targets' comparison; the tables above have the rest)"
for f in "$OUT"/bench-vgg16-*.txt; do
  [ -f "$f" ] || continue
  awk -v name="$(basename "$f" .txt | sed 's/^bench-vgg16-//')" '$1 == "512²" { printf "  ours %-32s %8.2f ms\n", name, $3; exit }' "$f"
done
grep -h "vgg16 size=512 " "$OUT/gpu-check.txt" | grep -v "^  " | sed 's/^/  /'
step "done ($(left) s of the budget left)"
