#!/usr/bin/env bash
# The main job on a fresh machine: set up, start a real Jupyter server with the dlnest extension,
# run notebooks/quickstart.ipynb against it headless (create the digits project, train it, watch
# it, list tasks and devices, continue it, measure it), and print the save package and accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/python scripts/run_quickstart_notebook.py "$PWD/quickstart-output"
