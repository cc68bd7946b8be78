"""One writer per file for in-context per-call files and headroom files: a second run is refused,
one line naming the first one's pid, exit 2, and the file the first run owns is left alone."""
import os
import subprocess
import sys

from replay import lock
from replay.context.run import context_paths
from replay.run.runner import RunSettings
from replay.studies.headroom_result import headroom_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")


def _replay(*args, cwd):
    return subprocess.run([REPLAY, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_a_second_in_context_run_on_the_same_per_call_file_is_refused(tmp_path):
    out = tmp_path / "results"
    settings = RunSettings(backend="estimate")
    _, calls_path = context_paths(str(out), settings, "mobilenet_v3_large")
    os.makedirs(out)
    with lock.writer_lock(calls_path, "per-call file"):
        p = _replay(os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack"), "--mode", "model",
                    "--backend", "estimate", "--out", str(out), "--no-report", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    [line] = p.stderr.strip().splitlines()[-1:]
    assert f"another run (pid {os.getpid()})" in line and "per-call file" in line
    assert not os.path.exists(calls_path)


def test_a_second_headroom_search_on_the_same_file_is_refused(tmp_path):
    out = tmp_path / "results"
    os.makedirs(out)
    path = headroom_path(str(out), "yolov8s", "n150", "dram")
    with lock.writer_lock(path, "headroom file"):
        p = _replay("headroom", "yolov8s", "--no-confirm", "--out", str(out), cwd=REPO)
    assert p.returncode == 2, p.stderr
    assert f"another run (pid {os.getpid()})" in p.stderr.strip().splitlines()[-1]
    assert not os.path.exists(path)
