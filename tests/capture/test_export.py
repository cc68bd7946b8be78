"""trace-model --via export and --compare: what a user of the compiled-flow op set would see break."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="capture tests run in the torch environment (.venv)")

from capture.export import export_model  # noqa: E402
from capture.registry import load_registry  # noqa: E402
from capture.schema import VOLATILE_HEADER_FIELDS, read_trace  # noqa: E402
from sample import trace_files  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
REG = load_registry()
TTNN_PYTHON = os.path.join(REPO, ".venv-ttnn", "bin", "python")


def run(*argv, cwd=REPO):
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=600)


def export_trace(name):
    return read_trace(os.path.join(REPO, "traces", "export", f"{name}.msgpack"))


def eager_trace(name):
    return read_trace(os.path.join(REPO, "traces", f"{name}.msgpack"))


def _results(folder):
    (path,) = glob.glob(os.path.join(folder, "*.jsonl"))
    rows = [json.loads(line) for line in open(path)]
    return [r for r in rows if r.get("kind") == "result"]


def test_export_trace_replays_on_the_estimate_backend_like_an_eager_one(tmp_path):
    trace = os.path.join("traces", "export", "swin_t.msgpack")
    p = run(os.path.join(BIN, "replay"), trace, "--backend", "estimate", "--out", str(tmp_path), "--no-report")
    assert p.returncode == 0, p.stderr
    results = _results(tmp_path)
    assert len(results) == len(export_trace("swin_t").signatures)
    assert sum(r["status"] == "pass" for r in results) > len(results) // 2


@pytest.mark.skipif(not os.path.exists(TTNN_PYTHON), reason="needs the ttnn environment (.venv-ttnn)")
def test_export_trace_replays_on_the_mock_ttnn_device(tmp_path):
    trace = os.path.join("traces", "export", "resnet50.msgpack")
    p = run(os.path.join(BIN, "replay"), trace, "--backend", "ttnn", "--ttnn-python", TTNN_PYTHON,
            "--out", str(tmp_path), "--no-report", "--jobs", "2")
    assert p.returncode == 0, p.stderr
    results = _results(tmp_path)
    assert len(results) == len(export_trace("resnet50").signatures)
    assert any(r["status"] == "pass" and r["op"] == "aten.convolution.default" for r in results)


# committed export traces of the sample (tests/sample.py; OPTRACE_TEST_ALL_TRACES=1: all of them)
EXPORTED = [os.path.basename(p)[:-len(".msgpack")] for p in trace_files(os.path.join(REPO, "traces", "export"))]


@pytest.mark.parametrize("name", EXPORTED)
def test_every_convolution_has_the_same_module_stack_and_weight_in_eager_and_export(name):
    eager, export = eager_trace(name), export_trace(name)

    def convs(t):
        return [([t.modules[i].path for i in t.scopes[c.scope]], t.tensors[t.named_args(c)["weight"][1]].name)
                for c in t.calls if t.op_name(c) == "aten.convolution.default"]

    assert convs(eager) and convs(eager) == convs(export)
    if name == "yolov8s":
        assert convs(export)[0] == (["", "model.0", "model.0.conv"], "model.0.conv.weight")


def test_export_trace_names_params_and_inputs_and_views_share_their_base_storage():
    t = export_trace("yolov8s")
    assert t.header["via"] == "export" and t.header["decompositions"] == "core_aten"
    assert t.header["torch_version"] == torch.__version__
    first = next(c for c in t.calls if t.op_name(c) == "aten.convolution.default")
    x = t.tensors[t.named_args(first)["input"][1]]
    assert (x.kind, x.name, x.shape) == ("input", "0", [1, 3, 640, 640])
    assert {m.kind for m in t.tensors} <= {"input", "param", "buffer", "constant", "activation"}
    views = [c for c in t.calls if t.op_name(c) in ("aten.view.default", "aten.permute.default")]
    assert views
    for c in views:
        assert t.tensors[c.args[0][1]].storage_id == t.tensors[c.outputs[0][1]].storage_id
    computes = [c for c in t.calls if t.op_name(c) == "aten.convolution.default"]
    assert len({t.tensors[c.outputs[0][1]].storage_id for c in computes}) == len(computes)
    # lifetimes from the graph: a tensor is never read after its last use
    last_use = t.header["tensor_last_use"]
    assert len(last_use) == len(t.tensors)
    for c in t.calls:
        for v in c.args:
            refs = [v] if v[0] == "T" else [x for x in v[1] if x[0] == "T"] if v[0] == "list" else []
            for r in refs:
                assert last_use[r[1]] >= c.index


def _tiny_registry(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text(
        '[detector]\nsource = "torchvision"\nbuild = "retinanet_resnet50_fpn_v2"\ninputs = [[1, 3, 64, 64]]\n\n'
        '[marked]\nsource = "torchvision"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\n'
        'export = "eager-only: detection head filters boxes by score (data-dependent shapes)"\n\n'
        '[small]\nsource = "torchvision"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\n')
    return str(reg)


def test_a_model_torch_export_cannot_export_gets_one_line_and_the_others_go_on(tmp_path):
    reg = _tiny_registry(tmp_path)
    out = tmp_path / "out"
    p = run(os.path.join(BIN, "trace-model"), "detector", "marked", "small", "--via", "export",
            "--registry", reg, "--out", str(out))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "def forward" not in p.stderr  # no partial graph dump
    failed = [line for line in p.stderr.splitlines() if "detector" in line and "FAILED" in line]
    assert len(failed) == 1 and "torch.export" in failed[0] and "data-dependent" in failed[0], p.stderr
    assert len(p.stderr.splitlines()) <= 6, p.stderr   # progress, one line per outcome, summary
    assert [line for line in p.stderr.splitlines() if "marked" in line and "eager-only: detection head" in line]
    assert sorted(os.listdir(out)) == ["small.msgpack"]
    assert read_trace(str(out / "small.msgpack")).header["via"] == "export"


def test_an_eager_only_model_alone_prints_its_reason_and_exits_2(tmp_path):
    reg = _tiny_registry(tmp_path)
    p = run(os.path.join(BIN, "trace-model"), "marked", "--via", "export", "--registry", reg,
            "--out", str(tmp_path / "out"))
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "marked" in lines[0] and "data-dependent shapes" in lines[0], p.stderr
    assert not (tmp_path / "out").exists()


def test_a_malformed_export_field_exits_2_naming_entry_and_field(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text('[tiny]\nsource = "timm"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\nexport = "no"\n')
    p = run(os.path.join(BIN, "trace-model"), "tiny", "--via", "export", "--registry", str(reg))
    assert p.returncode == 2 and "'tiny'" in p.stderr and "'export'" in p.stderr, p.stderr


def test_compare_shows_ops_only_in_one_flow_and_captures_a_missing_trace(tmp_path):
    shutil.copy(os.path.join(REPO, "traces", "resnet50.msgpack"), tmp_path / "resnet50.msgpack")
    p = run(os.path.join(BIN, "trace-model"), "--compare", "resnet50", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "export" / "resnet50.msgpack").exists()   # captured because it was missing
    text = p.stdout
    only_eager = text.split("\nonly eager (")[1].split("\nonly export (")[0]
    only_export = text.split("\nonly export (")[1].split("\nin both (")[0]
    assert "aten.native_batch_norm.default" in only_eager and "aten.relu_.default" in only_eager
    assert "aten._native_batch_norm_legit_no_training.default" in only_export
    assert "aten.convolution.default" in text.split("\nin both (")[1]


def test_compare_lists_shapes_that_differ_for_the_same_module_and_op():
    from capture.compare import compare_traces
    c = compare_traces(eager_trace("yolov8s"), export_trace("yolov8s"))
    conv = next(o for o in c.ops if o.op == "aten.convolution.default")
    assert conv.eager_calls == conv.export_calls == 64
    assert any(d.module_path == "model.22" and d.op == "aten.unsqueeze.default" for d in c.shape_diffs)
    assert not any(d.op == "aten.convolution.default" for d in c.shape_diffs)


@pytest.mark.parametrize("name", EXPORTED)
def test_committed_export_trace_matches_what_trace_model_produces_now(name):
    committed = export_trace(name).to_wire()
    fresh = export_model(REG[name], grad_mode=committed["header"]["grad_mode"]).to_wire()
    for w in (committed, fresh):
        for k in VOLATILE_HEADER_FIELDS:
            w["header"].pop(k, None)
    assert committed == fresh, f"traces/export/{name}.msgpack is stale: re-run trace-model {name} --via export"
