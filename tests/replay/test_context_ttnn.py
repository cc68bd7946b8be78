"""In-context replay on ttnn's mock device: ops that fit alone and fail inside the model.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_context_ttnn.py
"""
import importlib.util
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture.schema import read_trace  # noqa: E402
from context_trace import keeps_input_alive  # noqa: E402
from replay.context.plan import ContextSummary, CallRecord, read_calls  # noqa: E402
from replay.context.run import run_context  # noqa: E402
from replay.context.estimate import simulate_estimate  # noqa: E402
from replay.report.build import build_report  # noqa: E402
from replay.report.text import render_markdown  # noqa: E402
from replay.results import read_results  # noqa: E402
from replay.run.runner import RunSettings  # noqa: E402
from replay.run.worker import read_frame  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
YOLO12X = os.path.join(REPO, "traces", "yolo12x_2176x3840.msgpack")


def context_worker(trace_path: str, *args):
    """(records, summary) from `python -m replay.context.worker` on the mock n150."""
    proc = subprocess.Popen([sys.executable, "-m", "replay.context.worker", trace_path, *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": REPO})
    records, summary = [], None
    while True:
        f = read_frame(proc.stdout)
        if f is None:
            break
        if f["kind"] == "call":
            records.append(CallRecord(**{k: v for k, v in f["record"].items() if k != "kind"}))
        elif f["kind"] == "summary":
            summary = ContextSummary(**f["summary"])
    assert proc.wait(timeout=60) == 0
    return records, summary


def test_relu_that_fits_alone_runs_out_of_dram_while_the_models_input_is_still_alive(tmp_path):
    trace = keeps_input_alive(str(tmp_path / "kia.msgpack"))
    settings = RunSettings(backend="ttnn", device="n150", jobs=1, log_dir=str(tmp_path / "logs"))
    [(results_path, calls_path)] = run_context([read_trace(trace.path)], settings, str(tmp_path / "out"),
                                               progress=False)
    header, results = read_results(results_path)
    relu = next(r for r in results if r.op == "aten.relu.default")
    assert relu.status == "oom_dram" and relu.mock
    assert relu.extra["isolated"]["status"] == "pass"
    assert relu.extra["context"]["first_call"] == 1 and relu.extra["context"]["why"] == "live_tensors"
    _, records, summary = read_calls(calls_path)
    assert [r.status for r in records][:2] == ["pass", "oom_dram"]
    state = records[1].allocator
    assert state["DRAM"]["allocated_per_bank"] == 2 * 436_908_032       # x and y are live
    assert state["live_per_bank"]["DRAM"] == 2 * 436_908_032
    assert summary.first_failure == 1 and summary.peak_dram_bytes == 2 * 12 * 436_908_032
    report = build_report([read_trace(trace.path)], header, results)
    [ctx] = report.context
    assert ctx.isolated_pass_context_fail == 1 and ctx.first_failure == 1
    md = render_markdown(report)
    assert "in context: isolated and in-context verdicts" in md and "| pass | oom_dram |" in md


def test_yolo12x_attention_softmax_passes_alone_but_not_in_context_and_the_estimate_agrees():
    records, summary = context_worker(YOLO12X, "--device", "n150")
    first = records[summary.first_failure]
    assert (first.index, first.op, first.status) == (183, "aten._softmax.default", "oom_dram")
    assert first.allocator["program_cache_entries"] > 0 and first.allocator["top_live"][0]["shape"] == [48, 8160, 8160]
    est_records, est = simulate_estimate(read_trace(YOLO12X))
    assert est.first_failure == summary.first_failure
    failing = {r.index for r in records if r.status.startswith("oom")}
    assert failing == {r.index for r in est_records if r.status.startswith("oom")}
    assert abs(est.peak_dram_bytes - summary.peak_dram_bytes) < 0.05 * summary.peak_dram_bytes
    assert est.resident_bytes == summary.resident_bytes


def test_a_size_search_run_stops_at_the_first_failing_call_and_says_so(tmp_path):
    # headroom's device runs: the relu at call 1 runs out of DRAM; the add after it is never issued
    trace = keeps_input_alive(str(tmp_path / "kia.msgpack"))
    full, _ = context_worker(trace.path, "--device", "n150")
    records, summary = context_worker(trace.path, "--device", "n150", "--stop-at-first-failure")
    assert [r.status for r in full] == ["pass", "oom_dram", full[2].status] and len(full) == 3
    assert [r.status for r in records] == ["pass", "oom_dram"]
    assert not summary.completed and summary.first_failure == 1 and "stopped at call 1" in summary.note
