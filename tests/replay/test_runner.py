"""The replay runner as a user meets it: crash/hang isolation, kill + resume, shards, bad input.

Runs in the torch environment; ops execute in ttnn worker processes on the mock device.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from replay.results import read_results
from sample import trace_files
from tracekit import unary_trace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")
SMALL = [os.path.join(REPO, "traces", f) for f in ("resnet50.msgpack", "swin_t.msgpack", "yolov8s.msgpack")]


def replay(*args, env=None, timeout=600):
    return subprocess.run([REPLAY, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def statuses(path):
    header, results = read_results(path)
    return header, {r.signature_id: r.status for r in results}


def test_a_crashing_and_a_hanging_op_do_not_stop_the_run(tmp_path):
    trace = unary_trace("crashy", [("aten.relu.default", [1, 64, 32, 32]), ("optrace_test.crash", [1, 8]),
                                   ("optrace_test.hang", [1, 16]), ("aten.sigmoid.default", [1, 32, 64])],
                        str(tmp_path / "crashy.msgpack"))
    env = {**os.environ, "OPTRACE_TEST_OPS": "1"}
    p = replay(str(tmp_path / "crashy.msgpack"), "--backend", "ttnn", "--jobs", "1", "--timeout", "10",
               "--out", str(tmp_path / "r"), "--report", str(tmp_path / "rep"), env=env)
    assert p.returncode == 0, p.stderr
    header, got = statuses(str(tmp_path / "r" / "ttnn_n150_bfloat16_dram.jsonl"))
    by_op = {s.op: got[s.id] for s in trace.signatures}
    assert by_op == {"aten.relu.default": "pass", "optrace_test.crash": "crash",
                     "optrace_test.hang": "timeout", "aten.sigmoid.default": "pass"}
    assert header["mock"] is True and "no arithmetic" in header["note"]


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_results(tmp_path):
    full = tmp_path / "full"
    p = replay(*SMALL, "--backend", "ttnn", "--out", str(full), "--no-report")
    assert p.returncode == 0, p.stderr
    _, expected = statuses(str(full / "ttnn_n150_bfloat16_dram.jsonl"))

    cut = tmp_path / "cut"
    journal = cut / "ttnn_n150_bfloat16_dram.jsonl"
    proc = subprocess.Popen([REPLAY, *SMALL, "--backend", "ttnn", "--out", str(cut), "--no-report", "--jobs", "1"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count("\n") > 60:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _, partial = statuses(str(journal))
    assert 0 < len(partial) < len(expected), "the kill must land mid-run"
    p = replay(*SMALL, "--backend", "ttnn", "--out", str(cut), "--no-report", "--resume")
    assert p.returncode == 0, p.stderr
    _, resumed = statuses(str(journal))
    assert resumed == expected


def test_resume_refuses_results_of_other_settings(tmp_path):
    assert replay(SMALL[0], "--backend", "estimate", "--out", str(tmp_path), "--no-report").returncode == 0
    src = tmp_path / "estimate_n150_bfloat16_dram.jsonl"
    lines = src.read_text().splitlines()
    head = json.loads(lines[0])
    head["identity_key"] = "0" * 16
    src.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    p = replay(SMALL[0], "--backend", "estimate", "--out", str(tmp_path), "--no-report", "--resume")
    assert p.returncode == 2 and "other traces or settings" in p.stderr


def test_shards_cover_every_signature_once_and_merge_into_the_full_run(tmp_path):
    for k in (1, 2, 3):
        p = replay(*SMALL, "--backend", "estimate", "--shard", f"{k}/3", "--out", str(tmp_path))
        assert p.returncode == 0, p.stderr
    shards = [str(tmp_path / f"estimate_n150_bfloat16_dram_shard{k}of3.jsonl") for k in (1, 2, 3)]
    ids = [set(statuses(s)[1]) for s in shards]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    merged = tmp_path / "merged.jsonl"
    assert replay("merge", *shards, "--out", str(merged)).returncode == 0
    p = replay(*SMALL, "--backend", "estimate", "--out", str(tmp_path / "whole"), "--no-report")
    assert p.returncode == 0
    assert statuses(str(merged))[1] == statuses(str(tmp_path / "whole" / "estimate_n150_bfloat16_dram.jsonl"))[1]


def test_merge_refuses_shards_of_different_runs(tmp_path):
    for dev in ("n150", "p150"):
        assert replay(SMALL[0], "--backend", "estimate", "--device", dev, "--shard", "1/2",
                      "--out", str(tmp_path)).returncode == 0
    p = replay("merge", str(tmp_path / "estimate_n150_bfloat16_dram_shard1of2.jsonl"),
               str(tmp_path / "estimate_p150_bfloat16_dram_shard1of2.jsonl"), "--out", str(tmp_path / "m.jsonl"))
    assert p.returncode == 2 and "only shards of one run" in p.stderr
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("args, words", [
    (["no/such/dir"], "no such file"),
    ([SMALL[0], "--device", "n999"], "unknown device"),
    ([SMALL[0], "--backend", "gpu"], "unknown backend"),
    ([SMALL[0], "--shard", "4/3"], "--shard"),
    ([os.path.join(REPO, "models.toml")], "not a valid optrace trace"),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, words):
    p = replay(*args, "--out", str(tmp_path))
    assert p.returncode == 2
    assert words in p.stderr and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_every_committed_trace_replays_on_the_mock_n150_without_optrace_crashes(tmp_path):
    p = replay(*trace_files(), "--backend", "ttnn", "--out", str(tmp_path), "--report",
               str(tmp_path / "rep"))
    assert p.returncode == 0, p.stderr
    header, results = read_results(str(tmp_path / "ttnn_n150_bfloat16_dram.jsonl"))
    assert len(results) == header["unique_signatures"]
    ours = [r for r in results if r.status == "crash" or r.extra.get("internal")]
    assert not ours, [(r.op, r.reason) for r in ours[:5]]
    assert "mock device: ttnn's own allocator and op code, no arithmetic" in p.stdout
    assert (tmp_path / "rep" / "report.html").exists()


def test_the_torch_backend_runs_from_the_cli(tmp_path):
    p = replay(SMALL[0], "--backend", "torch", "--out", str(tmp_path), "--no-report")
    assert p.returncode == 0, p.stderr
    header, got = statuses(str(tmp_path / "torch_n150_bfloat16_dram.jsonl"))
    assert set(got.values()) == {"pass"}


def test_loaded_traces_are_frozen_out_of_the_cyclic_gc_which_stays_on():
    import gc

    from replay.run.runner import load_traces
    gc.unfreeze()
    traces = load_traces(SMALL[:1])
    assert gc.isenabled() and gc.get_freeze_count() > len(traces[0].tensors)
    gc.unfreeze()
