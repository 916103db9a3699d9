#!/usr/bin/env bash
# Prepares .device/ for docs/gpu-check.sh (run from the repository root, on the dev machine, before the device call):
# the self-contained bundle, the PyTorch baseline, the partial real VGG19 weights and two images. ../shared does
# not travel to the device machine, so what the check needs is copied. Then, with the device tool:
#   run(command="bash docs/gpu-check.sh", carry=[".device"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
../shared/tools/device-bundle.sh src/GpuStyle.Cli/GpuStyle.Cli.csproj
cp ../shared/tools/torch_vgg_iter.py ../shared/weights/vgg19_notop_blocks1-3.h5 \
   ../shared/images/tubingen.jpg ../shared/images/starry_night.jpg .device/
du -sh .device
