#!/usr/bin/env bash
# The main job on a fresh machine: set up, create the digits project, train it, continue it,
# analyse it, and print where the save package is and its accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
WORK="$PWD/quickstart-output"
rm -rf "$WORK"
mkdir -p "$WORK"
DLNEST=.venv/bin/dlnest

"$DLNEST" new -d "$WORK/digits" -t digits
"$DLNEST" run -c "$WORK/digits/root_config.json" -CPU -d "quickstart"
PACKAGE=$(ls -d "$WORK"/digits/Saves/*/ | head -n 1)
PACKAGE=${PACKAGE%/}
"$DLNEST" continue -r "$PACKAGE" -CPU
"$DLNEST" analyze -r "$PACKAGE" -s "$WORK/digits/AnalyzeScripts/getAcc.py" -CPU | tee "$WORK/analysis.txt"

ACCURACY=$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' "$WORK/analysis.txt" | tail -n 1)
echo
echo "save package: $PACKAGE"
echo "validation accuracy of its latest checkpoint: $ACCURACY"
