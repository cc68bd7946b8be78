#!/usr/bin/env bash
# The test suite: sets up both environments (idempotently), then runs each environment's tests.
#   ttnn environment (.venv-ttnn, Python 3.12, no torch): files named test_*ttnn*.py, on the
#     mock device (or a real board)
#   torch environment (.venv, Python 3.11): everything else (capture, runner, estimate, reports)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The HTML report is tested in a real headless browser (Debian's chromium) where one can be had.
bash scripts/ensure-chromium.sh
export PATH="$PWD/.venv/bin:$PATH"
mapfile -t ttnn_tests < <(find tests -name 'test_*ttnn*.py' | sort)
ignore=(); for f in "${ttnn_tests[@]}"; do ignore+=("--ignore=$f"); done
.venv-ttnn/bin/python -m pytest -q -rs -p no:cacheprovider "${ttnn_tests[@]}" "$@"
.venv/bin/python -m pytest -q -rs -p no:cacheprovider tests "${ignore[@]}" "$@"
