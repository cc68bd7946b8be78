"""Attribution: every call of every committed trace is counted exactly once, under its result's status."""
from __future__ import annotations

import copy
import os

import pytest

from replay.lineage import lineage
from replay.report.attribution import FOLDED, NOT_RUN, UNBLOCKED, AttributionError, attribute, reconcile
from replay.report.build import build_report
from replay.results import STATUSES, ReplayResult

from report_inputs import TRACE_PATHS, synthetic_results


@pytest.mark.parametrize("index", range(len(TRACE_PATHS)), ids=[os.path.basename(p) for p in TRACE_PATHS])
def test_each_committed_trace_calls_add_up_to_its_trace(traces, index):
    trace = traces[index]
    header, results = synthetic_results([trace], leave_out_every=7)
    report = build_report([trace], header, results)
    (m,) = report.models
    assert sum(m.by_status.values()) == len(trace.calls) == m.calls
    assert m.unique_signatures == len(trace.signatures)
    by_id = {r.signature_id: r.status for r in results}
    folded = lineage(trace).folded
    expected = {}
    for call in trace.calls:
        s = FOLDED if call.index in folded else by_id.get(trace.signatures[call.signature].id, NOT_RUN)
        expected[s] = expected.get(s, 0) + 1
    assert m.by_status == {s: expected[s] for s in m.by_status} and set(m.by_status) == set(expected)
    assert m.blocked_calls == sum(n for s, n in expected.items() if s not in UNBLOCKED)


def test_all_traces_together_reconcile_and_a_shared_signature_has_one_status(traces):
    header, results = synthetic_results(traces, leave_out_every=11)
    att = attribute(traces, results)
    reconcile(att, traces)
    assert sum(len(m.calls) for m in att.models) == sum(len(t.calls) for t in traces)
    statuses = {}
    for m in att.models:
        for c in m.calls:
            if c.status != FOLDED:   # folded is the call's, from the lineage; the rest is the signature's
                assert statuses.setdefault(c.signature_id, c.status) == c.status
    assert any(len(ms) > 1 for ms in att.models_of().values()), "committed traces share no signature"


def test_every_status_including_not_run_and_skipped_is_counted_and_explained(traces):
    header, results = synthetic_results(traces, leave_out_every=11)
    report = build_report(traces, header, results)
    seen = {s for m in report.models for s in m.by_status}
    assert seen == set(STATUSES) | {NOT_RUN}
    assert set(report.statuses) == seen and all(report.statuses.values())
    reasons = [r for m in report.models for r in m.reasons]
    assert any(r.status == "skipped" and "port would not issue" in r.reason for r in reasons)
    assert any(r.status == NOT_RUN and "run stopped" in r.reason for r in reasons)
    for m in report.models:
        assert sum(r.calls for r in m.reasons) == m.calls - m.by_status.get("pass", 0)


def test_no_results_at_all_makes_every_call_not_run_but_the_folded(traces):
    report = build_report(traces[:2], {}, [])
    for m, trace in zip(report.models, traces):
        folded = len(lineage(trace).folded)
        assert m.by_status == {k: v for k, v in {NOT_RUN: m.calls - folded, FOLDED: folded}.items() if v}
        assert m.first_block is None
    assert report.provenance.device == "unknown" and report.provenance.ttnn == "unknown"
    assert any("not_run" in w for w in report.warnings)


def test_a_dropped_call_fails_reconciliation(traces):
    header, results = synthetic_results(traces[:1])
    att = attribute(traces[:1], results)
    att.models[0].calls.pop(3)
    with pytest.raises(AttributionError):
        reconcile(att, traces[:1])


def test_a_call_with_the_wrong_status_fails_reconciliation(traces):
    header, results = synthetic_results(traces[:1])
    att = attribute(traces[:1], results)
    c = att.models[0].calls[0]
    c.status = "timeout" if c.status != "timeout" else "pass"
    with pytest.raises(AttributionError):
        reconcile(att, traces[:1])


def test_results_of_signatures_no_trace_holds_are_reported_not_counted(traces):
    header, results = synthetic_results(traces[:1])
    stray = ReplayResult(signature_id="ffffffffffffffff", op="aten.add.Tensor", status="oom_dram", backend="ttnn",
                         device="n150", mock=True)
    report = build_report(traces[:1], header, results + [stray])
    assert report.orphan_results == ["ffffffffffffffff"]
    assert sum(report.models[0].by_status.values()) == len(traces[0].calls)
    assert all(r.signature_id != stray.signature_id for r in report.fix_by_signature)


def test_the_same_model_twice_is_kept_as_two_models(traces):
    twin = copy.deepcopy(traces[0])
    twin.path = "elsewhere/" + os.path.basename(traces[0].path)
    header, results = synthetic_results([traces[0]])
    report = build_report([traces[0], twin], header, results)
    assert len({m.model for m in report.models}) == 2
    assert report.models[0].by_status == report.models[1].by_status
