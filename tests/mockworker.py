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
