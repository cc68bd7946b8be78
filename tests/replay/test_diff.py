"""`replay diff A B`: signatures that start or stop failing, with their models, layers and calls, OOMs whose
bytes moved; exit 0 / 1 (regressions) / 2 (bad input). Runs the estimate on a real trace (in-process, fast).
"""
import json
import os

import pytest
from click.testing import CliRunner

from capture.schema import read_trace
from replay.cli import main
from replay.lineage import lineage
from replay.results import read_results

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "yolo12x_2176x3840.msgpack")   # fits DRAM, not L1, on an n150


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Estimate results of the trace: DRAM bfloat16, L1 bfloat16, L1 float32."""
    out = str(tmp_path_factory.mktemp("runs"))
    paths = {}
    for memory, dtype in (("dram", "bfloat16"), ("l1", "bfloat16"), ("l1", "float32")):
        r = CliRunner().invoke(main, [TRACE, "--backend", "estimate", "--memory", memory, "--dtype", dtype,
                                      "--out", out, "--no-report", "--no-remedies"])
        assert r.exit_code == 0, r.output
        paths[memory, dtype] = os.path.join(out, f"estimate_n150_{dtype}_{memory}.jsonl")
    return paths


def _diff(a, b):
    r = CliRunner().invoke(main, ["diff", a, b, "--json"])
    return r.exit_code, (json.loads(r.output) if r.exit_code in (0, 1) else r.output)


def test_moving_to_l1_lists_every_signature_that_starts_failing_with_its_calls_and_exits_1(runs):
    code, d = _diff(runs["dram", "bfloat16"], runs["l1", "bfloat16"])
    assert code == 1 and d["settings"] == {"memory": ["dram", "l1"]}
    _, dram = read_results(runs["dram", "bfloat16"])
    _, l1 = read_results(runs["l1", "bfloat16"])
    status = {r.signature_id: r.status for r in l1}
    expected = {r.signature_id for r in dram if r.status in ("pass", "skipped")
                and status[r.signature_id] not in ("pass", "skipped")}
    assert expected and {c["signature_id"] for c in d["regressions"]} == expected
    trace = read_trace(TRACE)
    folded = lineage(trace)
    device_calls = sum(1 for c in trace.calls if trace.signatures[c.signature].id in expected
                       and not folded.is_folded(c.index))
    assert d["calls_regressed"] == device_calls == sum(c["impact"]["calls"] for c in d["regressions"])
    assert d["models_regressed"] == ["yolo12x_2176x3840"]
    first = d["regressions"][0]
    assert first["after"].startswith("oom_l1") and first["requested_bytes_after"] > 0
    assert first["impact"]["layers"] and len(set(first["impact"]["layers"])) == len(first["impact"]["layers"])


def test_moving_back_to_dram_is_the_same_signatures_fixed_and_exits_0(runs):
    code_a, there = _diff(runs["dram", "bfloat16"], runs["l1", "bfloat16"])
    code_b, back = _diff(runs["l1", "bfloat16"], runs["dram", "bfloat16"])
    assert (code_a, code_b) == (1, 0) and not back["regressions"]
    assert [c["signature_id"] for c in back["fixes"]] == [c["signature_id"] for c in there["regressions"]]
    assert back["calls_fixed"] == there["calls_regressed"]


def test_ooms_that_fail_either_way_under_float32_show_the_bytes_that_moved(runs):
    code, d = _diff(runs["l1", "bfloat16"], runs["l1", "float32"])
    assert code == 1 and d["settings"] == {"dtype": ["bfloat16", "float32"]}
    assert d["oom_moved"], "an OOM in both runs whose requested bytes moved"
    _, before = read_results(runs["l1", "bfloat16"])
    requested = {r.signature_id: r.oom.requested_bytes for r in before if r.oom}
    for c in d["oom_moved"]:
        assert c["requested_bytes_before"] == requested[c["signature_id"]] != c["requested_bytes_after"]
    assert d["unchanged"] + len(d["regressions"]) + len(d["fixes"]) + len(d["changed"]) + len(d["oom_moved"]) \
        == d["compared"]


def test_a_run_against_itself_changes_nothing_and_the_text_says_so(runs):
    r = CliRunner().invoke(main, ["diff", runs["l1", "bfloat16"], runs["l1", "bfloat16"]])
    assert r.exit_code == 0
    assert "0 regressed, 0 fixed" in r.output and "same settings" in r.output and "no regressions" in r.output


def test_bad_inputs_are_one_line_and_exit_2(runs, tmp_path):
    r = CliRunner().invoke(main, ["diff", str(tmp_path / "missing.jsonl"), runs["l1", "bfloat16"]])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "missing.jsonl" in r.output
    moved = tmp_path / "moved.jsonl"                    # a results file whose trace is not where it says
    lines = open(runs["l1", "bfloat16"]).read().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["traces"][0]["path"] = str(tmp_path / "gone.msgpack")
    moved.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    r = CliRunner().invoke(main, ["diff", str(moved), runs["l1", "bfloat16"]])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "gone.msgpack" in r.output


def test_report_of_three_runs_has_a_column_per_run_every_call_counted_and_the_moves(runs, tmp_path):
    files = [runs["dram", "bfloat16"], runs["l1", "bfloat16"], runs["l1", "float32"]]
    r = CliRunner().invoke(main, ["report", *files, "--report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    c = json.load(open(tmp_path / "compare.json"))
    assert [run["label"] for run in c["runs"]] == ["dram bfloat16", "l1 bfloat16", "l1 float32"]
    trace_calls = len(read_trace(TRACE).calls)
    assert [cell["calls"] for cell in c["models"]["yolo12x_2176x3840"]] == [trace_calls] * 3
    _, there = _diff(files[0], files[1])
    move = c["moves"][0]
    assert [x["signature_id"] for x in move["regressions"]] == [x["signature_id"] for x in there["regressions"]]
    assert c["runs"][1]["blocked_calls"] - c["runs"][0]["blocked_calls"] == there["calls_regressed"]
    assert all(len(v["statuses"]) == 3 and len(set(v["statuses"])) > 1 for v in c["differing"])
    assert len(c["matrices"]) == 3 and all(m["ops"] for m in c["matrices"])
    page = open(tmp_path / "compare.html").read()
    assert "What changes if I move to" in page and "l1 float32" in page
    assert "Moving from dram bfloat16 to l1 bfloat16" in open(tmp_path / "compare.md").read()
