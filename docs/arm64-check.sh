#!/usr/bin/env bash
# The CPU backend's ARM64 kernels (NEON, kernels/CpuSimd.cs), run for real on an x86-64 machine: a linux-arm64
# self-contained publish of gpustyle under qemu's user-mode emulation, so that .NET's JIT emits AArch64 code (zip,
# uzp, fmla) and the AdvSimd branches of the lane shuffles run — the unit tests run the same kernels through x86's
# SSE+FMA, which shares everything but those shuffles. Emulation says nothing about speed; it checks:
#   1. `gpustyle devices` picks the 128-bit kernels (NEON) on ARM64;
#   2. `bench --check --device cpu-scalar`: every op of the default backend (the NEON kernels) against the scalar
#      fallback, both on ARM64 (F(2×2) and F(4×4) Winograd, the direct kernel, Gram, pooling, L-BFGS, reductions);
#   3. the same transfer on x86-64 (AVX2) and on ARM64 (NEON) from PNG inputs at their own size (no JPEG decoder or
#      resampler in between): the iteration-0 losses must be equal (forward and backward agree to the bit), later
#      ones differ only through the order of the optimiser's dot products;
#   4. the NEON GEMM micro-kernel's machine code: 24 fmla a step, no stack traffic in the loop.
# The test suite's Arm64EmulationTests checks 1–3 in small; this script prints the numbers, on the real partial VGG19.
# Uses .ci/fetch-arm64's emulator and sysroot (.tools/arm64; fetched if absent, no root needed). About 3 minutes.
# Usage: bash docs/arm64-check.sh   (from the repository root, with ../shared beside it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -x .tools/arm64/root/usr/bin/qemu-aarch64-static ] || .ci/fetch-arm64
qemu=("$root/.tools/arm64/root/usr/bin/qemu-aarch64-static" -L "$root/.tools/arm64/root")

dotnet publish src/GpuStyle.Cli -c Release -r linux-arm64 --self-contained -o "$work/arm64" -v quiet -nologo >/dev/null
dotnet build src/GpuStyle.Cli -c Release -v quiet -nologo >/dev/null
x64() { dotnet "$root/src/GpuStyle.Cli/bin/Release/net10.0/gpustyle.dll" "$@"; }
# .NET maps its JIT's code pages writable and executable at once under emulation (W^X needs a second mapping qemu
# does not give); the sysroot has no ICU.
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
arm64() { (cd "$work/arm64" && DOTNET_EnableWriteXorExecute=0 "${qemu[@]}" ./gpustyle "$@"); }

echo "== 1. devices (ARM64)"
arm64 devices | grep -A1 "CPU backend"

echo "== 2. every op, NEON kernels against the scalar fallback (ARM64)"
arm64 bench --device cpu-scalar --check --iteration-sizes "" --size 32 --layer relu1_1 | sed -n '/agreement/,/^$/p'

echo "== 3. one transfer on both machines"
weights=../shared/weights/vgg19_notop_blocks1-3.h5
layers=(--weights "$root/$weights" --content-layers relu3_2)
# PNG inputs at the output size, made once on x86-64: both machines then read the same pixels.
x64 content --content ../shared/images/tubingen.jpg --out "$work/content.png" "${layers[@]}" --size 96 --iterations 0 --init content --quiet
x64 content --content ../shared/images/starry_night.jpg --out "$work/style.png" "${layers[@]}" --size 96 --iterations 0 --init content --quiet
run=(transfer --content "$work/content.png" --style "$work/style.png" "${layers[@]}" --style-layers relu1_1,relu2_1,relu3_1 --size 96 --iterations 10 --device cpu --quiet)
x64 "${run[@]}" --out "$work/x64.png" --log "$work/x64.jsonl"
arm64 "${run[@]}" --out "$work/arm64.png" --log "$work/arm64.jsonl"
python3 - "$work/x64.jsonl" "$work/arm64.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
print("iteration 0, x86-64 AVX2:", json.dumps(strip(a[0])))
print("iteration 0, ARM64 NEON: ", json.dumps(strip(b[0])))
assert strip(a[0]) == strip(b[0]), "the iteration-0 losses differ: the NEON kernels do not compute what the AVX2 ones do"
for x, y in zip(a[1:], b[1:]):
    print(f"iteration {x['iteration']:2}: total {x['total']:.8g} vs {y['total']:.8g}, relative difference {abs(x['total'] - y['total']) / abs(x['total']):.1e}")
EOF

echo "== 4. the NEON GEMM micro-kernel's loop (ARM64 JIT)"
arm64_env() { (cd "$work/arm64" && DOTNET_EnableWriteXorExecute=0 DOTNET_TieredCompilation=0 DOTNET_JitDisasm="Gemm4x24" \
    DOTNET_JitStdOutFile="$work/gemm.s" "${qemu[@]}" ./gpustyle "$@" >/dev/null); }
arm64_env bench --device cpu --iteration-sizes "" --size 32 --layer relu2_1
# The loop is the block that branches back to itself: count its instructions by kind.
awk '/^G_M[0-9]+_IG[0-9]+:/ { block = $1; sub(":", "", block) } { body[block] = body[block] "\n" $0 }
     /blt|bne|bgt|blo/ && $2 ~ block { loop = block } END { print body[loop] }' "$work/gemm.s" > "$work/loop.s"
echo "loop: $(grep -c fmla "$work/loop.s") fmla, $(grep -cE 'ldp|ldr' "$work/loop.s") loads, $(grep -cE '\[(sp|fp)' "$work/loop.s") stack accesses, $(grep -cE '^ +[a-z]' "$work/loop.s") instructions"
