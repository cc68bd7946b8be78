"""Remedies in context on the estimate: the change that lets a model's failing calls pass, checked by
replaying the model again with it applied; the changes themselves (frees, placement) on real traces."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture.schema import read_trace  # noqa: E402
from context_trace import build_trace  # noqa: E402
from replay.backends.estimate import EstimateSettings  # noqa: E402
from replay.context.changes import ContextChanges, held_spec, with_frees  # noqa: E402
from replay.context.estimate import simulate_estimate  # noqa: E402
from replay.context.plan import plan_context  # noqa: E402
from replay.context.run import run_context  # noqa: E402
from replay.mapping import InputTensor  # noqa: E402
from replay.results import read_results  # noqa: E402
from replay.run.runner import RunSettings  # noqa: E402
from replay.studies.context_remedies import failing, find_context_remedies  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
L1 = EstimateSettings("n150", "bfloat16", memory="l1")


def test_resnet50_in_l1_fails_until_its_weights_are_held_in_dram_and_then_passes_when_replayed_again(tmp_path):
    trace = read_trace(os.path.join(REPO, "traces", "resnet50.msgpack"))
    records, summary = simulate_estimate(trace, L1)
    assert summary.first_failure == 0 and failing(records)       # the weights alone fill L1
    settings = RunSettings(backend="estimate", device="n150", memory="l1")
    remedy = find_context_remedies(trace, settings, str(tmp_path), records, progress=False)
    assert remedy.changes == ContextChanges(weights_dram=True)
    first = remedy.calls[0]
    # what the weights take in L1 as the run holds them (an n150 has 64 x ~1.4 MB of L1)
    assert first.call == 0 and first.remedy == "hold the weights in DRAM" and 1_000_000 < first.bytes_freed < 94_000_000
    assert all(c.passes and c.fixed_by == 0 for c in remedy.calls)
    assert remedy.passes and remedy.verified_on == "estimate" and remedy.verified_first_failure is None
    again, summary2 = simulate_estimate(trace, L1, remedy.changes)     # the same change, replayed independently
    assert not failing(again) and summary2.resident_bytes["L1"] < summary.resident_bytes["L1"]


def test_a_model_that_passes_in_context_is_not_searched_and_stores_no_remedy(tmp_path):
    trace = read_trace(os.path.join(REPO, "traces", "resnet50.msgpack"))

    def never(*args):
        raise AssertionError("the remedy search ran for a model with no failing call")
    settings = RunSettings(backend="estimate", device="n150", memory="dram")
    [(results_path, _)] = run_context([trace], settings, str(tmp_path), progress=False, remedies=never)
    header, results = read_results(results_path)
    assert header["context"]["failing_calls"] == 0 and header["context_remedy"] is None
    assert not any("context_remedy" in r.extra for r in results)


def test_a_tensor_freed_after_its_own_last_use_no_longer_waits_for_its_view(tmp_path):
    trace = build_trace("views", str(tmp_path / "v.msgpack"), {"x": [4, 64], "y": [4, 64], "v": [256], "z": [256]},
                        [("aten.relu.default", ["x"], "y"), ("aten.view.default", ["y", ["list", [["int", 256]]]], "v"),
                         ("aten.relu.default", ["v"], "z")])
    plan = plan_context(read_trace(trace.path))
    y = 1
    assert y in plan.steps[2].free_after and y not in plan.steps[1].free_after
    freed = with_frees(plan, ContextChanges(free_early=[y]))
    assert y in freed.steps[1].free_after                        # right after the view, its last use
    assert y not in plan.steps[1].free_after                     # the plan itself is left alone


def test_held_spec_moves_weights_and_named_activations_and_converts_weights_to_bfloat8_b():
    trace = read_trace(os.path.join(REPO, "traces", "resnet50.msgpack"))
    plan = plan_context(trace)
    weight = next(t for t in plan.resident if plan.tensors[t].kind == "param")
    act = next(t for s in plan.steps for t in s.outputs if plan.tensors[t].kind == "activation")
    spec = InputTensor("self", [1, 64], "bfloat16", "TILE", "L1")
    assert held_spec(plan, weight, spec, ContextChanges(weights_dram=True)).memory == "DRAM"
    assert held_spec(plan, act, spec, ContextChanges(weights_dram=True)).memory == "L1"
    assert held_spec(plan, act, spec, ContextChanges(dram_tensors=[act])).memory == "DRAM"
    assert held_spec(plan, weight, spec, ContextChanges(weights_dtype="bfloat8_b")).dtype == "bfloat8_b"
    host = InputTensor("weight", [64, 3, 7, 7], "bfloat16", "ROW_MAJOR", "host")
    assert held_spec(plan, weight, host, ContextChanges(weights_dram=True)) == host   # ttnn prepares it from host


def test_changes_round_trip_through_json_and_add_up():
    a = ContextChanges(dram_tensors=[3, 1], fold_calls=[7])
    b = ContextChanges(dram_tensors=[2], weights_dtype="bfloat8_b")
    both = a.plus(b)
    assert both.dram_tensors == [1, 2, 3] and both.fold_calls == [7] and both.weights_dtype == "bfloat8_b"
    assert ContextChanges.from_json(both.to_json()) == both and not ContextChanges() and both


def test_mode_model_over_two_traces_writes_one_combined_report_whose_counts_reconcile(tmp_path):
    from click.testing import CliRunner
    from replay.cli import main
    traces = [os.path.join(REPO, "traces", f"{m}.msgpack") for m in ("resnet50", "mobilenet_v3_large")]
    out, rep = tmp_path / "results", tmp_path / "reports"
    res = CliRunner().invoke(main, ["run", *traces, "--mode", "model", "--backend", "estimate", "--memory", "l1",
                                    "--out", str(out), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in rep.iterdir()) == ["context", "context_mobilenet_v3_large", "context_resnet50"]
    import json
    combined = json.loads((rep / "context" / "report.json").read_text())
    calls = {m: len(read_trace(t).calls) for m, t in zip(("resnet50", "mobilenet_v3_large"), traces)}
    assert {m["model"]: sum(m["by_status"].values()) for m in combined["models"]} == calls
    assert {m["model"]: m["calls"] for m in combined["models"]} == calls
    assert [c["model"] for c in combined["context"]] == ["mobilenet_v3_large", "resnet50"]
    assert all(c["remedy_passes"] and c["remedy_changes"] for c in combined["context"])
    for m in combined["models"]:      # each model's per-op cells add up to its calls
        assert sum(cells[m["model"]]["calls"] for cells in combined["matrix"].values()
                   if m["model"] in cells) == m["calls"]
    html = (rep / "context" / "report.html").read_text()
    assert html.count("<h3>Remedies in context</h3>") == 2 and 'id="context-1"' in html
    assert "on the estimate (no device): no call fails" in html
    again = tmp_path / "again"                      # re-rendered from the two results files
    files = sorted(str(p) for p in out.glob("context_*.jsonl") if not p.name.endswith(".calls.jsonl"))
    res = CliRunner().invoke(main, ["report", *files, "--report", str(again)])
    assert res.exit_code == 0, res.output
    assert json.loads((again / "context" / "report.json").read_text())["models"] == combined["models"]


def test_a_view_padded_past_dram_by_its_trailing_ones_passes_in_context_once_they_are_folded(tmp_path):
    from context_trace import trailing_ones
    trace = read_trace(trailing_ones(str(tmp_path / "t.msgpack")).path)
    records, summary = simulate_estimate(trace, EstimateSettings("n150", "bfloat16", memory="dram"))
    assert [r.status for r in records] == ["pass", "oom_dram", "oom_dram", "pass"]
    assert records[2].cascade                         # v never came to be; its stand-in does not fit either
    settings = RunSettings(backend="estimate", device="n150", memory="dram")
    remedy = find_context_remedies(trace, settings, str(tmp_path), records, progress=False)
    assert remedy.changes == ContextChanges(fold_calls=[1]) and remedy.passes
    call, cascade = remedy.calls                       # the view, and the next view that only repeated it
    assert call.call == 1 and call.remedy == "fold its trailing 1s: [160, 100, 512]" and call.passes
    assert cascade.call == 2 and cascade.fixed_by == 1 and cascade.remedy == "the change for call 1"
    assert call.bytes_freed > 16_000_000_000          # 16.8 GB padded, 16 MB folded


def test_weights_in_bfloat8_b_take_about_half_the_resident_dram_and_the_model_still_passes():
    trace = read_trace(os.path.join(REPO, "traces", "resnet50.msgpack"))
    dram = EstimateSettings("n150", "bfloat16", memory="dram")
    _, plain = simulate_estimate(trace, dram)
    records, bf8 = simulate_estimate(trace, dram, ContextChanges(weights_dtype="bfloat8_b"))
    assert not failing(records)
    assert 0.45 < bf8.resident_bytes["DRAM"] / plain.resident_bytes["DRAM"] < 0.75   # 1088 of 2048 B per tile
