#!/usr/bin/env bash
# Every path that needs a real NVIDIA GPU (NVML, placement, measured memory, the guard, -mc and
# -DDP over nccl), in one command of a few minutes: see scripts/gpu_check.py. No GPU: exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./scripts/setup.sh
exec .venv/bin/python scripts/gpu_check.py "$@"
