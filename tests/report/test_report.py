"""What a user reads per model and across models: first blocking op, fix ranking, limits, provenance."""
from __future__ import annotations

import json
import os

import pytest

from replay.lineage import lineage
from replay.report.attribution import FAILING, NOT_RUN
from replay.report.build import build_report, render_terminal, write_report
from replay.report.text import render_markdown
from replay.results import ESTIMATE_NOTE, MOCK_NOTE

from report_inputs import synthetic_results


def device_calls(trace) -> list:
    """The calls a port runs on the device: the folded ones left out."""
    folded = lineage(trace).folded
    return [c for c in trace.calls if c.index not in folded]


@pytest.fixture(scope="module")
def built(traces):
    header, results = synthetic_results(traces, leave_out_every=13)
    return traces, header, results, build_report(traces, header, results)


def test_first_blocking_op_is_the_first_failing_call_in_execution_order(built):
    traces, _, results, report = built
    by_id = {r.signature_id: r for r in results}
    for trace, m in zip(traces, report.models):
        first = next((c for c in device_calls(trace) if trace.signatures[c.signature].id in by_id
                      and by_id[trace.signatures[c.signature].id].status in FAILING), None)
        assert first is not None and m.first_block.call_index == first.index
        r = by_id[trace.signatures[first.signature].id]
        assert m.first_block.module_path == trace.module_path(first)
        assert m.first_block.status == r.status and m.first_block.op == r.op
        assert m.first_block.requested_bytes == (r.oom.requested_bytes if r.oom else None)
        assert m.first_block.not_run_before == sum(
            1 for c in device_calls(trace) if c.index < first.index and trace.signatures[c.signature].id not in by_id)


def test_fix_ranking_puts_the_signature_blocking_most_models_first(built):
    traces, _, results, report = built
    keys = [(len(r.models), r.calls) for r in report.fix_by_signature]
    assert keys == sorted(keys, reverse=True)
    failing = {r.signature_id for r in results if r.status in FAILING}
    on_device = {t.model_name: [t.signatures[c.signature].id for c in device_calls(t)] for t in traces}
    assert {r.signature_id for r in report.fix_by_signature} == failing & {
        sid for sids in on_device.values() for sid in sids}
    for row in report.fix_by_signature[:20]:
        users = [t.model_name for t in traces if row.signature_id in on_device[t.model_name]]
        assert row.models == users
        assert row.calls == sum(sids.count(row.signature_id) for sids in on_device.values())


def test_fix_ranking_by_op_adds_up_its_failing_signatures(built):
    _, _, _, report = built
    for f in report.fix_by_op:
        rows = [r for r in report.fix_by_signature if r.op == f.op]
        assert f.calls == sum(r.calls for r in rows) == sum(f.statuses.values())
        assert f.failing_signatures == len(rows)
        assert set(f.models) == {m for r in rows for m in r.models}
    keys = [(len(f.models), f.calls) for f in report.fix_by_op]
    assert keys == sorted(keys, reverse=True)


def test_ops_by_models_matrix_holds_every_call(built):
    traces, _, _, report = built
    for trace, m in zip(traces, report.models):
        assert sum(report.matrix[op][m.model].calls for op in report.ops if m.model in report.matrix[op]) == \
            len(trace.calls)


def test_memory_limits_are_the_largest_pass_and_smallest_memory_failure(built):
    traces, _, results, report = built
    assert report.memory_limits
    on_device = {t.signatures[c.signature].id for t in traces for c in device_calls(t)}
    for ml in report.memory_limits:
        sizes = {st: [max(t.padded_bytes for t in r.inputs + r.outputs) for r in results
                      if r.op == ml.op and r.status in st and r.inputs + r.outputs and r.signature_id in on_device]
                 for st in [("pass",), ("oom_dram", "oom_l1", "oom_l1_small", "cb_overflow")]}
        passing, failing = sizes.values()
        assert ml.smallest_fail_bytes == min(failing) and ml.failing == len(failing)
        assert ml.largest_pass_bytes == (max(passing) if passing else None)
        assert ml.overlap == bool(passing and min(failing) < max(passing))


def test_largest_tensors_and_padding_blowups_are_sorted(built):
    _, _, _, report = built
    for m in report.models:
        sizes = [t.padded_bytes for t in m.largest_tensors]
        assert sizes == sorted(sizes, reverse=True)
        blowups = [t.blowup for t in m.worst_padding]
        assert blowups == sorted(blowups, reverse=True) and all(b > 1 for b in blowups)


def test_failures_per_layer_cover_every_blocked_call(built):
    _, _, _, report = built
    for m in report.models:
        blocked = sum(n for l in m.layers for s, n in l.statuses.items() if s not in ("pass", "skipped", "folded"))
        assert blocked == m.blocked_calls
        assert sum(f.calls for f in m.failures) == m.blocked_calls


def test_mock_results_carry_the_mock_note_in_every_format(built, tmp_path):
    _, _, _, report = built
    assert report.provenance.mock and report.provenance.note == MOCK_NOTE
    paths = write_report(report, str(tmp_path))
    for kind in ("html", "markdown", "json"):
        text = open(paths[kind], encoding="utf-8").read()
        assert MOCK_NOTE in text or MOCK_NOTE.replace("'", "&#x27;") in text, kind
    assert MOCK_NOTE in render_terminal(report)


def test_provenance_names_versions_device_dtype_memory_and_traces(built):
    traces, _, _, report = built
    text = render_markdown(report) + render_terminal(report)
    for needle in ("optrace 0.1.0", "ttnn 0.81.1", "torch 2.14.1", "device n150", "dtype bfloat16", "memory DRAM"):
        assert needle in text
    for t in traces:
        assert t.model_name in text


def test_estimate_results_say_they_are_an_estimate(traces):
    header, results = synthetic_results(traces[:1])
    for r in results:
        r.backend, r.mock = "estimate", False
    header.update(backend="estimate", mock=False)
    report = build_report(traces[:1], header, results)
    assert report.provenance.note == ESTIMATE_NOTE and ESTIMATE_NOTE in render_terminal(report)
    assert MOCK_NOTE not in render_terminal(report)


def test_report_files_are_written_atomically_and_json_holds_everything(built, tmp_path):
    _, _, _, report = built
    paths = write_report(report, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in paths.values())
    doc = json.load(open(paths["json"]))
    assert doc["format"] == "optrace-report" and doc == json.loads(json.dumps(report.to_json()))
    assert [m["model"] for m in doc["models"]] == [m.model for m in report.models]


def test_terminal_shows_one_table_per_model(built):
    _, _, _, report = built
    text = render_terminal(report)
    for m in report.models:   # a table each, or one line each past TERMINAL_TABLES models (a zoo)
        assert f"{m.model}: {m.calls} calls" in text or f"{m.model} ({m.task}/{m.family}): {m.calls} calls" in text
    assert NOT_RUN in text


def test_a_status_newer_than_this_optrace_is_counted_as_failing(traces):
    header, results = synthetic_results(traces[:1])
    results[0].status = "brand_new_status"
    report = build_report(traces[:1], header, results)
    assert report.statuses["brand_new_status"] == "a status this optrace does not know"
    assert any(r.signature_id == results[0].signature_id for r in report.fix_by_signature)
    assert sum(report.models[0].by_status.values()) == len(traces[0].calls)


def test_an_empty_results_header_renders_with_unknown_provenance(traces):
    report = build_report([], {}, [])
    text = render_terminal(report) + render_markdown(report)
    assert "device unknown (unknown)" in text and "traces: none" in text


def test_reports_render_without_torch_or_ttnn():
    import subprocess
    import sys
    from report_inputs import TRACE_PATHS
    code = ("import sys; sys.modules['torch'] = None; sys.modules['ttnn'] = None\n"
            f"TRACE_PATHS = {TRACE_PATHS!r}\n"
            "from capture.schema import read_trace\n"
            "from replay.report.build import build_report, render_terminal\n"
            "from replay.report.html import render_html\n"
            "from replay.report.text import render_csv, render_markdown\n"
            "r = build_report([read_trace(p) for p in TRACE_PATHS[:2]], {}, [])\n"
            "render_html(r); render_markdown(r); render_csv(r); print(render_terminal(r))\n"
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n")
    from report_inputs import ROOT
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
