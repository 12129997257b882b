#!/usr/bin/env bash
# Create .venv (once) and install dlnest-jupyter into it, with JupyterLab 4, Notebook 7 and the
# dashboard's chart library (the lab extra), Ray (the ray extra, for several machines), Optuna
# (the sweeps extra, for searches and pruning), TensorBoard (for DLNest's AutoTensorboardScalar
# plugin) and what the tests need (the test extra).
# Where no NVIDIA GPU is present, torch 2.13.0's CPU wheel goes in first, so pip does not pull a
# multi-GB CUDA build to satisfy the package's torch range.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_install() {
    # Some machines list local package folders that do not exist; pip warns once per package.
    .venv/bin/python -m pip --disable-pip-version-check -q install "$@" \
        2> >(grep -v "^WARNING: Location .* is ignored" >&2)
}
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        pip_install "torch>=2.1,<3"
    else
        pip_install "torch==2.13.0"
    fi
fi
pip_install -e ".[test,lab,ray,sweeps,tensorboard]"
.venv/bin/python -c "import dlnest_jupyter, torch; print(f'dlnest-jupyter {dlnest_jupyter.__version__} with torch {torch.__version__} ready in .venv')"
