"""Run a test file as its own mock-device worker: a fresh process per board, so one test's device
never sees another's allocations; the worker prints one `OPTRACE-RESULT <json>` line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = "OPTRACE-RESULT "


def run_worker(script: str, board: str, job=None) -> dict:
    """`python SCRIPT BOARD` with JOB as JSON on stdin; its result line, decoded."""
    proc = subprocess.run([sys.executable, os.path.abspath(script), board],
                          input=None if job is None else json.dumps(job), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise AssertionError(f"worker {os.path.basename(script)} for {board} failed: {proc.stderr[-2000:]}")


def release_device_tensors(ttnn, tensors: list) -> None:
    """Deallocate the tensors a worker's call made that still hold device memory."""
    for t in tensors:
        if t.storage_type() == ttnn.StorageType.DEVICE and t.is_allocated():
            ttnn.deallocate(t)


def needs_ttnn():
    """The skip marker of a device-comparison test outside the ttnn environment."""
    import importlib.util

    import pytest
    return pytest.mark.skipif(importlib.util.find_spec("ttnn") is None, reason="needs the ttnn environment (.venv-ttnn)")
