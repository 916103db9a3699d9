#!/usr/bin/env bash
# Nsight Compute on the kernels of a 512² iteration that run far below what their bytes and FLOPs allow (twentieth
# session): VGG's first layer, 3→64 forward, and its backward to the colour channels, 64→3 (the blocked kernel, the
# few-outputs one, the blocked kernel split over its inputs and the partial sums; since the twenty-first session the
# blocked kernel at 4 outputs × 8 pixels, whole and split in 2), and relu1_1's Gram (64 × 262 144, TF32 forward and
# backward, the backward's epilogue now loading its old values before any store; since the twenty-second session also
# version 5 of the backward, its operands in fragment order). `bench --layer relu1_1` runs them (tuning included).
# Since the twenty-fifth session also version 5 of the TF32 convolution at relu3_2 (256→256, 128²), 32- and 64-channel
# warps: it does ≈ 70% of a `--tf32` iteration's convolution work at ≈ 120 TFLOP/s, and its stalls were never
# profiled (whether staging, shared memory or the tensor pipe holds it decides the next kernel). Prepare as for gpu-check.sh
# (bash docs/gpu-prepare.sh), then with the device tool: run(command="bash docs/gpu-ncu.sh", carry=[".device"]).
# Prints, per profiled launch, its grid, duration, throughputs, occupancy and the profiler's advice; the whole
# reports stay under $OUT.
set -u
OUT=${OUT:-/tmp/gpu-ncu}
BUDGET=${BUDGET:-150}
mkdir -p "$OUT" "$HOME/gs"
exec > >(tee "$OUT/gpu-ncu.txt") 2>&1
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
if [ -n "${GPUSTYLE_BIN:-}" ]; then B=$GPUSTYLE_BIN; else tar -xzf .device/bundle.tgz -C "$HOME/gs"; B="$HOME/gs/bundle/gpustyle"; fi
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -z "$NCU" ] && { echo "(no ncu on this machine)"; exit 0; }
# name, flags, launch options, kernel regex, launches to skip, launches to profile, layer (relu1_1 where not named)
for spec in "conv-first - BlockedSplits=1 conv3x3_blocked|conv3x3_few_outputs 0 3" \
            "conv-split - BlockedSplits=4 conv3x3_blocked|conv3x3_sum_splits 0 14" \
            "conv-4x8 - BlockedSplits=1 conv3x3_blocked_few_outputs 0 1" \
            "conv-4x8-split - BlockedSplits=2 conv3x3_blocked_few_outputs 4 1" \
            "gram-tf32 --tf32 MmaTune=0 gram_.* 0 4" \
            "gram-bwd-tf32 --tf32 MmaTune=0 gram_backward_tf32_mma 0 1" \
            "gram-bwd-frag --tf32 MmaTune=0,MmaGramFragments=1 gram_backward_tf32_fragments 0 1" \
            "gram-fwd-prefetch --tf32 MmaTune=0,MmaGramPrefetch=1 gram_forward_tf32_prefetch 0 1" \
            "conv-v5 --tf32 MmaTune=0,MmaFragments=1 conv3x3_tf32_fragments 0 2 relu3_2" \
            "conv-v5-wide --tf32 MmaTune=0,MmaFragments=2 conv3x3_tf32_fragments_wide 0 2 relu3_2"; do
  set -- $spec
  layer=${7:-relu1_1}
  l=$(left); (( l < 20 )) && { echo "!! skipped (budget spent): $1"; continue; }
  flag=$2; [ "$flag" = - ] && flag=""
  echo "-- ncu: $1 ($4 at $layer, skip $5, count $6; ${flag:-fp32} --launch $3)"
  timeout "$l" "$NCU" --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --kernel-name "regex:^Kernel_($4)\$" --launch-skip "$5" --launch-count "$6" \
    "$B" bench --device cuda $flag --launch "$3" --network vgg16 --size 512 --layer "$layer" --iteration-sizes "" --iterations 2 \
    > "$OUT/ncu-$1.txt" 2>&1
  grep -E "^  Kernel_|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|L1/TEX Hit|L2 Hit|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Grid Size|Block Size|Waves Per SM|Warp Cycles Per Issued|Issued Warp Per Scheduler|(WRN|OPT) +[A-Z]" "$OUT/ncu-$1.txt" \
    | cut -c1-170 || tail -5 "$OUT/ncu-$1.txt"
  # The warp-state rule names the stall that dominates, over a few wrapped lines (the grep above keeps the first).
  grep -A3 -E "being stalled|stalled waiting" "$OUT/ncu-$1.txt" | cut -c1-170
done
echo "== done ($(left) s of the budget left)"
