"""Capture: what a user of trace-model would see break."""
import os
import subprocess
import sys
from collections import Counter

import pytest

torch = pytest.importorskip("torch", reason="capture tests run in the torch environment (.venv)")

from capture.capture import capture_model, grad_context, make_inputs  # noqa: E402
from capture.registry import build_model, load_registry  # noqa: E402
from capture.schema import read_trace, write_trace  # noqa: E402
from sample import all_traces, trace_names  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REG = load_registry()


@pytest.fixture(scope="module")
def yolo_trace():
    return capture_model(REG["yolov8s"])


class _Count(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def test_no_aten_call_is_lost_compared_with_an_independent_count(yolo_trace):
    entry = REG["yolov8s"]
    model = build_model(entry)
    xs = make_inputs(entry, entry.inputs, None)
    counter = _Count()
    with grad_context("no_grad"), counter:
        model(*xs)
    recorded = Counter(yolo_trace.op_name(c) for c in yolo_trace.calls)
    expected = Counter({k if k.startswith("aten.") else k: v for k, v in counter.ops.items()})
    assert sum(recorded.values()) == sum(expected.values()) == yolo_trace.header["call_count"]
    assert recorded == expected


def test_first_convolution_of_yolov8s_is_attributed_to_model_0_conv(yolo_trace):
    first = next(c for c in yolo_trace.calls if yolo_trace.op_name(c) == "aten.convolution.default")
    assert yolo_trace.module_path(first) == "model.0.conv"
    assert yolo_trace.module_class(first) == "Conv2d"
    stack = [yolo_trace.modules[i].path for i in yolo_trace.scopes[first.scope]]
    assert stack == ["", "model.0", "model.0.conv"]  # ultralytics iterates self.model, never calls it
    weight = yolo_trace.tensors[yolo_trace.named_args(first)["weight"][1]]
    assert (weight.kind, weight.name) == ("param", "model.0.conv.weight")
    x = yolo_trace.tensors[yolo_trace.named_args(first)["input"][1]]
    assert x.kind == "input" and x.shape == [1, 3, 640, 640]


def test_a_view_and_its_base_share_a_storage_id(yolo_trace):
    views = [c for c in yolo_trace.calls if yolo_trace.op_name(c) == "aten.view.default"]
    assert views
    for c in views:
        base = yolo_trace.tensors[yolo_trace.named_args(c)["self"][1]]
        out = yolo_trace.tensors[c.outputs[0][1]]
        assert out.storage_id == base.storage_id
    convs = [c for c in yolo_trace.calls if yolo_trace.op_name(c) == "aten.convolution.default"][:2]
    a, b = (yolo_trace.tensors[c.outputs[0][1]].storage_id for c in convs)
    assert a != b


def test_fake_and_real_capture_give_identical_calls_and_signatures(yolo_trace):
    fake = capture_model(REG["yolov8s"], fake=True)
    assert fake.header["tensor_mode"] == "fake" and yolo_trace.header["tensor_mode"] == "real"
    assert [(c.op, c.args, c.outputs, c.scope) for c in fake.calls] == \
           [(c.op, c.args, c.outputs, c.scope) for c in yolo_trace.calls]
    assert [s.to_wire() for s in fake.signatures] == [s.to_wire() for s in yolo_trace.signatures]


def test_round_trip_keeps_every_call_and_signature(yolo_trace, tmp_path):
    path = tmp_path / "t.msgpack"
    write_trace(yolo_trace, str(path))
    back = read_trace(str(path))
    assert back.to_wire() == yolo_trace.to_wire()
    assert sum(s.count for s in back.signatures) == len(back.calls) == back.header["call_count"]
    assert [s.args for s in back.signatures] == [s.args for s in yolo_trace.signatures]


def test_grad_mode_is_recorded_and_changes_the_ops():
    inf = capture_model(REG["vit_b_16"], grad_mode="inference_mode")
    ng = capture_model(REG["vit_b_16"], grad_mode="no_grad")
    assert inf.header["grad_mode"] == "inference_mode" and ng.header["grad_mode"] == "no_grad"
    assert {inf.op_name(c) for c in inf.calls} != {ng.op_name(c) for c in ng.calls}


def test_nan_and_inf_arguments_survive_the_round_trip(tmp_path):
    from capture.recorder import ModuleStack, Recorder, TensorTable
    model = torch.nn.Identity()
    rec = Recorder(ModuleStack(model), TensorTable({}))
    with rec:
        x = torch.ones(3)
        torch.clamp(x, min=float("-inf"), max=float("nan"))
    clamp = [c for c in rec.rec.calls if rec.rec.ops[c.op].name == "aten.clamp.default"][0]
    lo, hi = clamp.args[1][1], clamp.args[2][1]
    assert lo == float("-inf") and hi != hi


def _committed_vs_fresh(name):
    committed = read_trace(os.path.join(REPO, "traces", f"{name}.msgpack"))
    entry = REG[name]
    fresh = capture_model(entry, grad_mode=committed.header["grad_mode"],
                          fake=committed.header["tensor_mode"] == "fake")
    a, b = committed.to_wire(), fresh.to_wire()
    for w in (a, b):
        for k in ("created_utc", "capture_s", "versions"):
            w["header"].pop(k, None)
    return a, b


# The fixed sample covering every source and task (tests/sample.py); OPTRACE_TEST_ALL_TRACES=1
# (scripts/check-zoo.sh): every registry entry that is not skipped.
FRESH = sorted(n for n in REG if not getattr(REG[n], "skip", "")) if all_traces() else trace_names()


def _shapes_differ_only(a: dict, b: dict) -> int:
    """How many tensors differ when two wire traces are equal but for their tensors' shapes and
    strides and the signatures made from them (a data-dependent size, e.g. boxes kept after a score
    threshold, decided by the CPU's float kernels); 0 when they differ otherwise."""
    if any(a[k] != b[k] for k in a.keys() | b.keys() if k not in ("tensors", "signatures")):
        return 0
    if len(a["tensors"]) != len(b["tensors"]):
        return 0
    if any(x[1] != y[1] or x[3:] != y[3:] for x, y in zip(a["tensors"], b["tensors"])):
        return 0
    return sum(x != y for x, y in zip(a["tensors"], b["tensors"]))


@pytest.mark.parametrize("name", FRESH)
def test_committed_trace_matches_what_trace_model_produces_now(name):
    a, b = _committed_vs_fresh(name)
    if a != b and (n := _shapes_differ_only(a, b)):
        pytest.fail(f"traces/{name}.msgpack: the same calls, but {n} tensors of other shapes (data-dependent sizes "
                    f"from this CPU's float kernels, docs/models.md): re-run trace-model {name} to take this "
                    f"machine's", pytrace=False)
    assert a == b, f"traces/{name}.msgpack is stale: re-run trace-model {name}"


def test_symbolic_sizes_become_plain_ints_in_the_tensor_table():
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    from capture.recorder import TensorTable
    mode = FakeTensorMode(shape_env=ShapeEnv())
    x = mode.from_tensor(torch.empty(2, 3, 5), source=ConstantSource("x"),
                         symbolic_context=StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC] * 3))
    assert any(isinstance(d, torch.SymInt) for d in x.shape)
    table = TensorTable({})
    plain = torch.empty(4, 6)
    table.ref(plain, False), table.ref(x, True)
    metas = table.metas
    assert [(m.shape, m.stride) for m in metas] == [([4, 6], [6, 1]), ([2, 3, 5], [15, 5, 1])]
    assert all(type(d) is int for m in metas for d in m.shape + m.stride)
