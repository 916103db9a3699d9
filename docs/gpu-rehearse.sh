#!/usr/bin/env bash
# Runs docs/gpu-check.sh, then docs/gpu-verify.sh, here, without a GPU (SKIP_CHECK=1 or SKIP_VERIFY=1 leaves one
# out), to catch a command the GPU run would refuse (a flag the CLI does not take, an option the backend rejects, a
# file it cannot find) before a lent GPU's minutes are spent on it.
# gpustyle is called through a wrapper that sends `--device cuda` to the fast CPU backend at the smallest sizes and
# iteration counts, dropping --conv, --tf32 and --launch (GPU kernels: the launch strings are checked against a
# GPU's limits by LaunchOptionTests, the kernels by the test suite on ILGPU's CPU accelerator). Every step runs, as
# if every kernel had passed step 2's check. nvidia-smi, PyTorch and ncu are stubs (ncu's runs the command it would
# profile). Prints each gpustyle call that failed other than by its time bound.
# Usage, from the repository root:  bash docs/gpu-rehearse.sh        (a few minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build -c Release -v q src/GpuStyle.Cli >/dev/null
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
dll=$PWD/src/GpuStyle.Cli/bin/Release/net10.0/gpustyle.dll
cat > "$stub/gpustyle" <<WRAP
#!/usr/bin/env bash
args=(); original="\$*"
while [ \$# -gt 0 ]; do
  case "\$1" in
    --device) args+=(--device cpu); shift 2;;
    --conv) shift 2;;
    --tf32) shift;;
    --size) args+=(--size 32); shift 2;;
    --iteration-sizes) if [ -n "\$2" ]; then args+=(--iteration-sizes 32); else args+=(--iteration-sizes ""); fi; shift 2;;
    --iterations) args+=(--iterations 2); shift 2;;
    --launch) shift 2;;
    *) args+=("\$1"); shift;;
  esac
done
dotnet "$dll" "\${args[@]}" > "$stub/last.out" 2>&1; rc=\$?
cat "$stub/last.out"
if [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && [ \$rc -ne 143 ]; then
  echo "REFUSED (exit \$rc): gpustyle \$original" >> "$stub/refused"
  grep -m2 -i "gpustyle:\|error\|exception" "$stub/last.out" | sed 's/^/    /' >> "$stub/refused"
fi
exit \$rc
WRAP
printf '#!/bin/sh\necho "nvidia-smi (rehearsal stub)"\n' > "$stub/nvidia-smi"
printf '#!/bin/sh\necho "python3 (rehearsal stub): $*"\n' > "$stub/python3"
# ncu: runs the command it would profile (its options dropped), so that step 8's gpustyle calls are rehearsed too.
cat > "$stub/ncu" <<'NCU'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do case "$1" in --section|--kernel-name|--launch-skip|--launch-count) shift 2;; -*) shift;; *) break;; esac; done
echo "ncu (rehearsal stub)"; exec "$@"
NCU
chmod +x "$stub"/*
mkdir -p .device
for f in tubingen.jpg starry_night.jpg vgg19_notop_blocks1-3.h5; do
  [ -f ".device/$f" ] || cp "../shared/$( [ "$f" = vgg19_notop_blocks1-3.h5 ] && echo weights || echo images )/$f" .device/ 2>/dev/null || true
done
all="blocked winograd tuned tf32 tf32-plain tf32-prefetch tf32-async tf32-gram tf32-fragments tf32-fragments-wide tf32-fragments-square winograd-gramgemm winograd4 winograd-tf32"
if [ -z "${SKIP_CHECK:-}" ]; then
  PATH="$stub:$PATH" GPUSTYLE_BIN="$stub/gpustyle" OUT="$stub/out" BUDGET=${BUDGET:-3000} \
    STEPS="1 3 4 5 6 7 8 9" CONVS="$all" bash docs/gpu-check.sh > "$stub/check.log" 2>&1 || true
  # Step 2's calls, each as the script makes them (its check function), beside the rest.
  for conv in blocked winograd tuned tf32; do
    PATH="$stub:$PATH" "$stub/gpustyle" bench --check --device cuda --conv "$conv" --size 64 --layer relu3_1 --iteration-sizes "" >/dev/null 2>&1 || true
  done
  grep -E "^== |^!!" "$stub/check.log"
fi
# Then docs/gpu-verify.sh, the short second call: its step 4 needs VGG16 weights, which its python3 (h5py) writes
# on the GPU machine; weights-tools writes them here, where it looks for them ($HOME/gs), in a HOME of the stub's.
if [ -z "${SKIP_VERIFY:-}" ]; then
  mkdir -p "$stub/home/gs"
  dotnet run -c Release --project weights-tools -- write --arch vgg16 --layout Keras1 --out "$stub/home/gs/vgg16-random.h5" >/dev/null
  PATH="$stub:$PATH" HOME="$stub/home" GPUSTYLE_BIN="$stub/gpustyle" OUT="$stub/verify" BUDGET=${BUDGET:-3000} \
    bash docs/gpu-verify.sh > "$stub/verify.log" 2>&1 || true
  grep -E "^== |^!!" "$stub/verify.log"
  echo "step 4's lines:"; sed -n '/^== .*4\. /,/^== .*5\. /p' "$stub/verify.log" | grep -E "^--|^wrote|^wall" | sed 's/^/  /'
fi
if [ -s "$stub/refused" ]; then echo; echo "Refused:"; cat "$stub/refused"; exit 1; fi
echo "rehearsal: no gpustyle call was refused"
