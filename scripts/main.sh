#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, trace a model, replay it on ttnn
# (a real board if present, else ttnn's mock device), and write the report.
#   scripts/main.sh [MODEL ...]      (default: yolov8s_world)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(yolov8s_world)
out=results/traces
rm -rf "$out"; mkdir -p "$out"
.venv/bin/trace-model "${models[@]}" --out "$out"
.venv/bin/replay "$out" --backend ttnn --device "${OPTRACE_DEVICE:-n150}" --out results --report reports
