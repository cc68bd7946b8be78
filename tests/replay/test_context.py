"""In-context replay on the estimate: lifetimes from the trace, the simulated allocator, the report."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from click.testing import CliRunner  # noqa: E402

from capture.schema import read_trace  # noqa: E402
from context_trace import BIG, build_trace, keeps_input_alive  # noqa: E402
from replay.backends.bank import BankAllocator  # noqa: E402
from replay.backends.base import case_of  # noqa: E402
from replay.backends.estimate import EstimateBackend, EstimateSettings  # noqa: E402
from replay.cli import main  # noqa: E402
from replay.context.changes import ContextChanges  # noqa: E402
from replay.context.plan import CallRecord, plan_context, read_calls, why_differs  # noqa: E402
from replay.context.estimate import simulate_estimate  # noqa: E402
from replay.results import ReplayResult, read_results  # noqa: E402


def test_a_view_keeps_its_base_alive_until_the_views_last_use(tmp_path):
    trace = build_trace("views", str(tmp_path / "v.msgpack"), {"x": [4, 64], "y": [4, 64], "v": [256], "z": [256]},
                        [("aten.relu.default", ["x"], "y"), ("aten.view.default", ["y", ["list", [["int", 256]]]], "v"),
                         ("aten.relu.default", ["v"], "z")])
    plan = plan_context(read_trace(trace.path))
    y, v = 1, 2  # tensor indices in first-seen order: x, y, v, z
    assert plan.steps[0].free_after == [0]                    # x: last used by call 0
    assert sorted(plan.steps[2].free_after) == [y, v, 3]      # y lives as long as its view v
    assert plan.inputs == [0] and plan.resident == []


def test_the_second_relu_fits_alone_but_not_beside_the_live_model_input(tmp_path):
    records, summary = simulate_estimate(read_trace(keeps_input_alive(str(tmp_path / "k.msgpack")).path))
    assert [r.status for r in records] == ["pass", "oom_dram", "oom_dram"]
    # add's input z never came to be: it gets a stand-in (y is freed by then), then its own output fails
    assert records[2].standins == 1 and not records[2].cascade
    assert summary.first_failure == 1 and summary.failing_calls == 2 and summary.cascaded_calls == 0
    assert records[1].allocator["live_per_bank"]["DRAM"] == 2 * 436_908_032
    assert records[1].oom["per_bank_bytes"] == 436_908_032 >= BIG[2] * BIG[3] * 2 // 12


def test_first_fit_allocator_fails_on_fragmentation_with_enough_free_bytes():
    bank = BankAllocator(100)
    a, b, c = bank.alloc(30), bank.alloc(30), bank.alloc(30)
    bank.release(a, 30)
    bank.release(c, 30)
    assert bank.free_bytes == 70 and bank.largest == 40 and bank.alloc(50) is None
    bank.release(b, 30)
    assert bank.largest == 100
    top = BankAllocator(100, top_down=True)
    assert top.alloc(10) == 90


def test_why_differs_names_fragmentation_program_cache_and_live_tensors():
    iso = ReplayResult(signature_id="s", op="aten.relu.default", status="pass", backend="ttnn", device="n150", mock=True)
    oom = {"per_bank_bytes": 50, "bank_bytes": 100, "allocated_bytes": 70, "free_bytes": 60, "largest_free_bytes": 40,
           "buffer_type": "DRAM", "requested_bytes": 600, "num_banks": 12, "cause": "fragmentation", "phase": "op"}
    rec = CallRecord(index=3, signature_id="s", op="aten.relu.default", module_path="", status="oom_dram", oom=oom)
    assert why_differs(rec, iso) == "fragmentation"
    rec.oom = oom = {**oom, "free_bytes": 30, "largest_free_bytes": 30}
    rec.allocator = {"program_cache_entries": 4, "live_per_bank": {"DRAM": 40}}
    assert why_differs(rec, iso) == "program_cache"            # 60 B held by no live tensor of ours
    rec.oom, rec.allocator = oom, {"program_cache_entries": 0, "live_per_bank": {"DRAM": 70}}
    assert why_differs(rec, iso) == "live_tensors"
    assert why_differs(rec, ReplayResult(signature_id="s", op="aten.relu.default", status="oom_dram", backend="ttnn",
                                          device="n150", mock=True)) == "same"


def test_replay_mode_model_on_the_estimate_writes_results_calls_and_a_report_with_both_verdicts(tmp_path):
    trace = keeps_input_alive(str(tmp_path / "k.msgpack"))
    out, rep = tmp_path / "results", tmp_path / "reports"
    res = CliRunner().invoke(main, ["run", trace.path, "--mode", "model", "--backend", "estimate",
                                    "--out", str(out), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    header, results = read_results(str(out / "context_estimate_n150_bfloat16_dram_keeps_input_alive.jsonl"))
    assert header["mode"] == "model" and header["context"]["first_failure"] == 1
    relu = next(r for r in results if r.op == "aten.relu.default")
    assert relu.status == "oom_dram" and relu.extra["isolated"]["status"] == "pass"
    _, records, summary = read_calls(str(out / "context_estimate_n150_bfloat16_dram_keeps_input_alive.calls.jsonl"))
    assert len(records) == 3 and summary.peak_dram_call == 0
    md = (rep / "context_keeps_input_alive" / "summary.md").read_text()
    assert "| 1 | layer1 | aten.relu.default |" in md and "live tensors" in md
    html = (rep / "context_keeps_input_alive" / "report.html").read_text()
    assert "Failing ops: alone and in context" in html
    # and `replay report` re-renders it from the stored results
    res = CliRunner().invoke(main, ["report", str(out / "context_estimate_n150_bfloat16_dram_keeps_input_alive.jsonl"),
                                    "--report", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    assert "in context" in (tmp_path / "again" / "summary.md").read_text()


def test_folded_calls_are_not_run_in_context_and_the_results_a_port_uploads_are_resident():
    from replay.lineage import lineage
    trace = read_trace(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "traces", "swin_t.msgpack"))
    lin, plan = lineage(trace), plan_context(trace)
    assert {s.index for s in plan.steps if s.folded} == lin.folded
    assert {u.tensor for u in lin.uploads} <= set(plan.resident)
    tables = [i for i, m in enumerate(trace.tensors) if m.name.endswith("relative_position_bias_table")]
    assert tables and not set(tables) & set(plan.resident)   # only the folded gather reads them
    assert not any(t in s.free_after for s in plan.steps for t in plan.resident)
    records, summary = simulate_estimate(trace)
    assert [r.index for r in records if r.status == "folded"] == sorted(lin.folded)
    assert summary.by_status["folded"] == len(lin.folded) and summary.first_failure is None
    gathers = [r for r in records if r.op == "aten.index.Tensor"]
    assert gathers and all(r.status == "folded" and "load time" in r.reason for r in gathers)


def test_a_conv_in_l1_in_context_gets_the_sharded_conv_verdict_the_single_op_estimate_gives():
    # the in-context call is the port's (replay.mapping): channels-last input, host weight, ttnn's auto-shard
    # with its circular buffers against the live L1 buffers; the mock device agrees on every call of both
    # (benchmarks/bench_context_estimate.py --memory l1 --weights-dram: 339/339, 229/229)
    from sample import TRACES
    l1 = EstimateSettings("n150", memory="l1")
    for model, status, why in (("yolov8s", "cb_overflow", "clash with L1 buffers"),
                               ("resnet50", "pass", "height sharded on 56 cores")):
        trace = read_trace(os.path.join(TRACES, f"{model}.msgpack"))
        records, _ = simulate_estimate(trace, l1, ContextChanges(weights_dram=True), stop_after=1)
        sig = trace.signatures[trace.calls[0].signature]
        alone = EstimateBackend(l1).run(case_of(sig, trace.ops[trace.calls[0].op].arg_names))
        assert (records[0].status, alone.status) == (status, status), (model, records[0].reason)
        assert why in records[0].reason and why in alone.reason
        assert records[1].status == "skipped"          # aten.empty: what the port never issues
    # weights in L1 too: the first conv's sharded output does not fit, as on the mock device (3,211,264 B)
    records, _ = simulate_estimate(trace, l1, stop_after=0)
    assert records[0].status == "oom_l1" and records[0].oom["requested_bytes"] == 3_211_264



def test_the_simulated_allocator_takes_the_first_hole_that_fits_as_the_mock_device_does():
    # measured on the mock n150 (ttnn 0.81.1): a 48 KiB buffer per bank goes into the 256 KiB hole found first
    # (DRAM from the bottom, L1 from the top), not into the smaller 64 KiB one
    kib = 1024
    for top_down in (False, True):
        bank = BankAllocator(1024 * kib, top_down=top_down)
        a, _, c, _ = bank.alloc(256 * kib), bank.alloc(4 * kib), bank.alloc(64 * kib), bank.alloc(4 * kib)
        bank.release(a, 256 * kib)
        bank.release(c, 64 * kib)
        assert bank.alloc(48 * kib) == (a + 208 * kib if top_down else a)


def test_a_reshape_that_moves_no_data_is_held_in_its_own_shape_so_its_consumer_does_not_re_hold_it():
    # swin_t's attention: q @ k^T [192, 49, 49] reshaped (a view of the same buffer) to [64, 3, 49, 49], then
    # + the relative-position bias; the mock device re-holds neither input of that add (0), nor does the estimate
    from sample import TRACES
    trace = read_trace(os.path.join(TRACES, "swin_t.msgpack"))
    records, _ = simulate_estimate(trace, EstimateSettings("n150", memory="dram"), stop_after=33)
    add = records[33]
    assert (add.op, add.module_path, add.status) == ("aten.add.Tensor", "layers.0.blocks.0.attn", "pass")
    assert add.reheld == 0 and add.standins == 0


def test_with_no_l1_buffer_alive_a_program_may_use_the_whole_l1_in_context_as_it_does_alone(tmp_path):
    # yolov8s's Detect-head concat at 5824 and 5856 (tests/replay/test_estimate_vs_ttnn.py CONCAT_ROWS): its
    # row-staging entry fits a core's L1 with L1_SMALL's region at the smaller and outgrows it at the larger,
    # on the mock n150 alone and in the model (replay headroom yolov8s: 5824 x 5824 on both); the in-context
    # estimate left L1_SMALL out and put the model's bound one step lower than the device's
    for n, status in ((695604, "pass"), (703269, "cb_overflow")):
        trace = build_trace("cat", str(tmp_path / f"cat{n}.msgpack"), {"a": [1, 2, n], "b": [1, 2, n], "c": [1, 4, n]},
                            [("aten.cat.default", [("a", "b"), ["int", 1]], "c")])
        records, _ = simulate_estimate(trace, EstimateSettings("n150", memory="dram"))
        assert records[0].status == status, records[0].reason


def test_a_staging_entry_beyond_a_cores_l1_gets_ttnns_words_in_context_as_it_does_alone(tmp_path):
    # the larger of yolov8s's Detect-head concats above: ttnn refuses its program when it is made ("required
    # DFB entry size ... exceeds per-core L1 capacity") before any clash with L1 buffers; both estimates say so
    n = 703269
    trace = read_trace(build_trace("cat", str(tmp_path / "cat.msgpack"), {"a": [1, 2, n], "b": [1, 2, n], "c": [1, 4, n]},
                                   [("aten.cat.default", [("a", "b"), ["int", 1]], "c")]).path)
    settings = EstimateSettings("n150", memory="dram")
    records, _ = simulate_estimate(trace, settings)
    sig = trace.signatures[trace.calls[0].signature]
    alone = EstimateBackend(settings).run(case_of(sig, trace.ops[trace.calls[0].op].arg_names))
    assert records[0].status == alone.status == "cb_overflow", (records[0].reason, alone.reason)
    words, alone_words = records[0].reason.split("; ")[0], alone.reason.split("; ")[0]
    assert words == alone_words and "exceeds per-core L1 capacity" in words, (words, alone_words)
