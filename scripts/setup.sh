#!/usr/bin/env bash
# Creates (idempotently) the two environments optrace needs:
#   .venv       Python 3.11: torch, torchvision, timm, ultralytics (capture, torch reference, reports)
#   .venv-ttnn  Python 3.12: ttnn and Ray (optrace[ray]: replay --cluster), no torch (replay workers)
# A stamp per environment records what it was built from; a second run skips finished work.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# pip keeps no cache: nothing is written into the user's home, and the environments (about 7 GB
# with torch's CUDA build) are the only disk this costs
export PIP_NO_CACHE_DIR=1

find_python() {  # find_python 3.11 -> path of an interpreter of that version, or nothing
  local want=$1 cand
  for cand in "python$want" "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/$want"*/bin/python3 | tr ' ' '\n' | tail -n1)"; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.')))" 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  return 1
}

stamp_of() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }

make_env() {  # make_env DIR VERSION PIP-ARGS...
  local dir=$1 version=$2; shift 2
  local stamp; stamp="$(stamp_of)"
  if [ -f "$dir/.optrace-stamp" ] && [ "$(cat "$dir/.optrace-stamp")" = "$stamp" ]; then
    return 0
  fi
  local py
  py=$(find_python "$version") || { echo "optrace setup: Python $version not found (put python$version on PATH or install it with pyenv)" >&2; exit 2; }
  echo "optrace setup: building $dir with $py" >&2
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  # pip's find-links warnings about index folders it cannot use are noise here; real errors pass
  if ! "$dir/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2; then
    echo "optrace setup: installing into $dir failed (see pip's message above; $(df -h --output=avail "$ROOT" | tail -n1 | tr -d ' ') free where the environments live, about 7 GB needed); fix that and run it again" >&2
    exit 2
  fi
  echo "$stamp" > "$dir/.optrace-stamp"
}

make_env .venv 3.11 "torch==2.14.1" "torchvision==0.29.1" -e ".[capture,test]"
make_env .venv-ttnn 3.12 "ttnn==0.81.1" -e ".[test,ray]"
# The recorder's C accelerator (capture/_accel.c), rebuilt when its source changed; without a C
# compiler the recorder runs in pure Python (same traces, slower capture).
.venv/bin/python -m capture.accel >&2 || echo "optrace setup: capture will run in pure Python" >&2
