#!/usr/bin/env bash
# The trace tests over the whole zoo: every test that reads committed traces runs on every trace in
# traces/ (OPTRACE_TEST_ALL_TRACES=1) instead of the fixed sample of tests/sample.py, and every
# registry model that is not skipped is captured afresh and compared with its committed trace.
# Takes about as long as `trace-model --all` plus a replay of the zoo (tens of minutes on 2 cores);
# CI runs the sample only. Fresh captures compare exactly: every capture runs its forward with one
# torch thread (capture.capture.CAPTURE_THREADS), so the data-dependent models (R-CNNs, RetinaNet,
# FCOS, SSD: boxes kept after NMS) give the same calls on any machine. Extra arguments go to pytest
# (e.g. -x, -k yolo).
#   bash scripts/check-zoo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTRACE_TEST_ALL_TRACES=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PATH="$PWD/.venv/bin:$PATH"
.venv-ttnn/bin/python -m pytest -q -rs -p no:cacheprovider tests/replay/test_estimate_vs_ttnn.py "$@"
.venv/bin/python -m pytest -q -rs -p no:cacheprovider tests/capture/test_capture.py \
    tests/capture/test_export.py tests/replay/test_ops_table.py tests/replay/test_torch_backend.py \
    tests/replay/test_estimate.py tests/replay/test_runner.py tests/report "$@"
