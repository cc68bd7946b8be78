"""The report on real results: `replay --backend estimate` over the trace sample end to end, then `replay report`."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from capture.schema import read_trace
from replay.report.build import build_report
from replay.results import read_results

from report_inputs import ROOT, TRACE_PATHS

REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")


@pytest.fixture(scope="module")
def estimate_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("estimate")
    cmd = [REPLAY, "--backend", "estimate", *TRACE_PATHS, "--out", str(out / "results"), "--report",
           str(out / "reports"), "--jobs", "2"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (results_file,) = [os.path.join(out, "results", f) for f in os.listdir(out / "results")
                       if f.endswith(".jsonl")]
    return out, results_file, p.stdout


def test_estimate_run_writes_every_report_format(estimate_run):
    out, _, stdout = estimate_run
    assert sorted(os.listdir(out / "reports")) == ["failures.csv", "report.html", "report.json", "summary.md"]
    assert "estimate: optrace's analytic memory model, no device" in stdout


def test_estimate_results_reconcile_with_every_committed_trace(estimate_run):
    _, results_file, _ = estimate_run
    header, results = read_results(results_file)
    traces = [read_trace(p) for p in TRACE_PATHS]
    report = build_report(traces, header, results)
    for t, m in zip(traces, report.models):
        assert sum(m.by_status.values()) == len(t.calls)
    assert "not_run" not in {s for m in report.models for s in m.by_status}, "a finished run left calls unrun"
    assert not report.warnings


def test_estimate_csv_numbers_equal_the_stored_results(estimate_run):
    out, results_file, _ = estimate_run
    _, results = read_results(results_file)
    by_id = {r.signature_id: r for r in results}
    with open(out / "reports" / "failures.csv", newline="") as f:
        for row in csv.DictReader(f):
            r = by_id[row["Signature_Id"]]
            assert row["Status"] == r.status and row["Mock_Or_Real"] == "estimate"
            assert row["Total_Memory_B"] == (str(r.oom.requested_bytes) if r.oom else "")
            assert int(row["Padded_Bytes"]) == sum(t.padded_bytes for t in r.inputs + r.outputs)


def test_replay_report_re_renders_the_same_report_from_stored_results(estimate_run):
    out, results_file, _ = estimate_run
    p = subprocess.run([REPLAY, "report", results_file, "--report", str(out / "again")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    first = json.load(open(out / "reports" / "report.json"))
    again = json.load(open(out / "again" / "report.json"))
    assert first == again
