"""Fault injection: SIGKILL real CLI runs at random moments (inside a record's write too), resume each
time, and check nothing is lost, nothing is doubled and nothing half-written is ever read.

Covers the three writers a killed run can leave behind: `replay` (the results journal), `trace-model`
(trace files) and `replay headroom` (headroom files). Seeded: a failure prints its seed.
"""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

from capture.schema import read_trace
from replay.results import SPLIT_WRITE_ENV, read_results

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
TRACE = os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack")
NAME = "estimate_n150_bfloat16_dram.jsonl"
SEED = int(os.environ.get("OPTRACE_FAULT_SEED", time.time_ns() % 100000))


def _start(args, env=None):
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _kill_after(proc, delay_s: float) -> bool:
    """SIGKILL proc (its whole session) after delay_s unless it ends first; True when it was killed."""
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _journal_counts(path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path, "rb") as f:
        for line in f.read().split(b"\n")[1:]:
            if line:
                sid = json.loads(line)["signature_id"]
                counts[sid] = counts.get(sid, 0) + 1
    return counts


def test_replay_killed_at_random_moments_and_resumed_gives_each_signature_once_as_uninterrupted(tmp_path):
    rng = random.Random(SEED)
    replay = [os.path.join(BIN, "replay"), TRACE, "--backend", "estimate", "--no-report", "--no-remedies"]
    full = tmp_path / "full"
    p = subprocess.run([*replay, "--out", str(full)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    expected = {r.signature_id: r.status for r in read_results(str(full / NAME))[1]}

    env = {**os.environ, SPLIT_WRITE_ENV: "0.004"}  # a pause inside every record's write
    kills, torn, cuts, rounds = 0, 0, 0, 0
    t0 = time.monotonic()
    while kills < 30 and time.monotonic() - t0 < 45:
        out = tmp_path / f"round{rounds}"
        rounds += 1
        while True:  # kill and resume until a run finishes on its own
            proc = _start([*replay, "--out", str(out), "--resume"], env)
            if not _kill_after(proc, rng.uniform(0.0, 1.2)):
                err = proc.stderr.read()
                assert proc.returncode == 0, f"seed {SEED}: {err}"
                cuts += err.count("cut an incomplete last line")
                break
            kills += 1
            journal = out / NAME
            if journal.exists() and journal.stat().st_size:
                torn += not journal.read_bytes().endswith(b"\n")
            cuts += proc.stderr.read().count("cut an incomplete last line")
        counts = _journal_counts(out / NAME)
        assert set(counts.values()) == {1}, f"seed {SEED}: doubled {[s for s, n in counts.items() if n > 1]}"
        got = {r.signature_id: r.status for r in read_results(str(out / NAME))[1]}
        assert got == expected, f"seed {SEED}: round {rounds} differs from the uninterrupted run"
        assert not os.path.exists(str(out / NAME) + ".lock")
    assert kills >= 15, f"seed {SEED}: only {kills} kills in the time"
    # a torn tail can outlive a kill during the next start-up, so one tail may count twice
    assert torn >= 3 and cuts >= 3, f"seed {SEED}: {torn} kills inside a record's write, {cuts} cuts"


def test_trace_model_killed_at_random_moments_leaves_no_or_a_whole_trace(tmp_path):
    rng = random.Random(SEED)
    cmd = [os.path.join(BIN, "trace-model"), "mobilenet_v3_large", "--out", str(tmp_path)]
    path = tmp_path / "mobilenet_v3_large.msgpack"
    assert _kill_after(_start(cmd), rng.uniform(0.5, 3.0))
    assert not path.exists() or read_trace(str(path)).signatures
    t = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t
    assert p.returncode == 0, p.stderr
    whole = [s.id for s in read_trace(str(path)).signatures]
    for _ in range(2):  # killed while rewriting: the old trace or the new one, never a part
        _kill_after(_start(cmd), rng.uniform(0.6, 1.05) * took)
        assert [s.id for s in read_trace(str(path)).signatures] == whole, f"seed {SEED}"
    assert glob.glob(str(tmp_path / "*.msgpack")) == [str(path)]


def test_headroom_killed_at_random_moments_leaves_no_or_a_whole_result(tmp_path):
    rng = random.Random(SEED)
    cmd = [os.path.join(BIN, "replay"), "headroom", "mobilenet_v3_large", "--no-confirm", "--max-batch", "2",
           "--step", "224", "--out", str(tmp_path)]
    path = tmp_path / "headroom_n150_dram_mobilenet_v3_large.json"
    assert _kill_after(_start(cmd), rng.uniform(1.0, 8.0))
    assert not path.exists() or json.loads(path.read_text())["model"] == "mobilenet_v3_large"
    t = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t
    assert p.returncode == 0, p.stderr
    whole = json.loads(path.read_text())
    _kill_after(_start(cmd), rng.uniform(0.7, 1.05) * took)
    again = json.loads(path.read_text())  # the old result or the new one, never a part
    assert set(again) == set(whole) and again["model"] == whole["model"], f"seed {SEED}"
    assert glob.glob(str(tmp_path / "*.json")) == [str(path)]
