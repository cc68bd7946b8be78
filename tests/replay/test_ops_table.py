"""`replay ops`: every op in the committed traces is mapped to a ttnn call or says why not."""
import os
from collections import Counter

import pytest
from click.testing import CliRunner

from capture.schema import read_trace
from replay.cli import main
from replay.mapping import MAPPINGS, NO_MAPPING, Case, PortSettings, mapping_table, plan_replay
from replay.run.runner import collect_cases
from sample import trace_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# traces/export/ holds torch.export traces when they are committed; they are checked the same way.
TRACE_FILES = trace_files() + trace_files(os.path.join(ROOT, "traces", "export"))   # tests/sample.py


@pytest.fixture(scope="module")
def traces():
    assert TRACE_FILES, "no committed traces under traces/"
    return [read_trace(p) for p in TRACE_FILES]


@pytest.fixture(scope="module")
def op_calls(traces):
    calls = Counter()
    for t in traces:
        calls.update(t.op_name(c) for c in t.calls)
    return calls


def test_every_traced_op_is_mapped_or_says_what_to_do(op_calls):
    rows = mapping_table(sorted(op_calls))
    assert [r["op"] for r in rows] == sorted(op_calls)
    vague = [r for r in rows if r["status"] not in ("mapped", "skip", "unsupported")
             or (r["status"] != "mapped" and (len(r["ttnn"]) < 20 or r["ttnn"] == NO_MAPPING))]
    assert not vague, f"ops with no mapping and no specific reason (add them to replay/mapping/): {vague}"
    mapped = [r for r in rows if r["status"] == "mapped"]
    assert all(r["ttnn"].startswith("ttnn.") for r in mapped), mapped


def test_every_traced_signature_plans_a_ttnn_call_or_gives_a_reason(traces):
    bad = []
    for t in traces:
        for case in collect_cases([t]):
            wire = case.sig.to_full_wire(case.arg_names)
            for memory in ("dram", "l1"):
                r = plan_replay(Case.from_wire(wire), PortSettings(memory=memory))
                if r.status == "mapped" and not r.calls and r.op not in ("aten.arange.default",):
                    bad.append((r.op, "mapped without calls"))
                elif r.status != "mapped" and len(r.reason) < 20:
                    bad.append((r.op, r.status, r.reason))
    assert not bad, bad[:10]


def test_an_op_optrace_does_not_know_is_unsupported_with_where_to_add_it():
    [row] = mapping_table(["aten.made_up_op.default"])
    assert row == {"op": "aten.made_up_op.default", "status": "unsupported",
                   "ttnn": "no mapping in optrace yet: add one in replay/mapping/"}
    assert "aten.made_up_op.default" not in MAPPINGS


def test_replay_ops_prints_op_ttnn_call_status_and_call_counts(op_calls):
    res = CliRunner().invoke(main, ["ops", *TRACE_FILES])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["aten", "op", "status", "calls"]
    body = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(body) == set(op_calls)
    for op, n in op_calls.items():
        assert int(body[op][2]) == n
    assert body["aten.convolution.default"][1] == "mapped" and "ttnn.conv2d" in res.output
    assert body["aten.index.Tensor"][1] == "mapped" and "ttnn.embedding" in res.output
    assert body["aten.index_select.default"][1] == "unsupported"


def test_replay_ops_on_a_missing_folder_is_a_one_line_error():
    res = CliRunner().invoke(main, ["ops", "/nonexistent/traces"])
    assert res.exit_code == 2 and "no such file or folder" in res.output


def test_registering_an_op_twice_is_refused_with_its_name():
    from replay.mapping import register, register_skip
    with pytest.raises(RuntimeError, match=r"duplicate registration for aten\.relu\.default"):
        register("aten.relu.default", ttnn="ttnn.relu")(lambda p, case: None)
    with pytest.raises(RuntimeError, match=r"aten\.detach\.default"):
        register_skip("again", "aten.detach.default")
    assert MAPPINGS["aten.relu.default"].kind == "mapped"


@pytest.mark.parametrize("target", ["relu", "aten.relu", "torch.relu(x)", "aten..default"])
def test_registering_a_target_that_is_not_an_aten_overload_name_is_refused(target):
    from replay.mapping import register_unsupported
    with pytest.raises(ValueError, match="expected an aten overload name") as e:
        register_unsupported("no reason", target)
    assert repr(target) in str(e.value) and target not in MAPPINGS
