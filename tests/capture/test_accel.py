"""The recorder's accelerators (the C bookkeeping, the C++ dispatch): built by the setup, and changing
nothing in a trace but its speed."""
import shutil
import sysconfig

import msgpack
import pytest

torch = pytest.importorskip("torch", reason="capture tests run in the torch environment (.venv)")

from capture import accel  # noqa: E402
from capture.capture import capture_model, record_forward  # noqa: E402
from capture.recorder import ModuleStack  # noqa: E402
from capture.registry import load_registry  # noqa: E402

REG = load_registry()
_CXX = (sysconfig.get_config_var("CXX") or "c++").split()[0]
needs_cxx = pytest.mark.skipif(shutil.which(_CXX) is None,
                               reason=f"no C++ compiler ({_CXX}): torch calls the recorder from Python here")
# one model per source and per path of the bookkeeping: in-place ops (touched tensors), lists of tensors,
# fake tensors with shadows, keyword arguments and named inputs
SAMPLE = [("resnet18", False), ("swin_t", False), ("yolov8n_seg", True), ("hf_segformer", False)]


def _env_switch(monkeypatch, env: str):
    """switch(on): env set ("1") or cleared for the test, the modules' cached loads cleared after each
    change (the C++ dispatch loads only with the C module); undone after the test."""
    def switch(on: bool):
        monkeypatch.setenv(env, "1" if on else "")
        accel.load.cache_clear()
        accel.load_dispatch.cache_clear()
    yield switch
    monkeypatch.delenv(env, raising=False)
    accel.load.cache_clear()
    accel.load_dispatch.cache_clear()


@pytest.fixture
def pure_python(monkeypatch):
    """The recorder without its accelerator for one test (OPTRACE_PURE_PYTHON=1)."""
    yield from _env_switch(monkeypatch, accel.PURE_ENV)


@pytest.fixture
def python_dispatch(monkeypatch):
    """Torch calls the recorder from Python for one test (OPTRACE_PYTHON_DISPATCH=1): the C++
    dispatch switched off, the C bookkeeping kept."""
    yield from _env_switch(monkeypatch, accel.PYTHON_DISPATCH_ENV)


def _wire(name: str, fake: bool) -> bytes:
    wire = capture_model(REG[name], fake=fake).to_wire()
    wire["header"] = {k: v for k, v in wire["header"].items() if k not in ("created_utc", "capture_s")}
    return msgpack.packb(wire, use_bin_type=True)


def _identical_either_way(switch, load, name: str, fake: bool) -> None:
    """The model's trace with a module switched off (load() gives None) and on: byte-identical."""
    switch(True)
    assert load() is None
    without = _wire(name, fake)
    switch(False)
    assert load() is not None
    assert _wire(name, fake) == without


def test_the_setup_built_a_current_accelerator_for_the_capture_environment():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): capture runs in pure Python here")
    assert accel.load() is not None, f"{accel.target().name} missing or stale: run `python -m capture.accel`"
    xs = [torch.randn(1, 3, 8, 8)]
    _, _, recorder = record_forward(torch.nn.Conv2d(3, 4, 3), xs)
    assert recorder.accelerated


@needs_cxx
def test_the_setup_built_a_current_cpp_dispatch_and_the_recorder_is_dispatched_by_it():
    assert accel.load_dispatch() is not None, f"{accel.dispatch_target().name} missing or stale: run `python -m capture.accel`"
    _, _, recorder = record_forward(torch.nn.Conv2d(3, 4, 3), [torch.randn(1, 3, 8, 8)])
    assert recorder.adopted and len(recorder.rec.calls) == 1


REAL = [(n, f) for n, f in SAMPLE if not f]


@needs_cxx
@pytest.mark.parametrize("name,fake", REAL, ids=[n for n, _ in REAL])
def test_a_trace_is_byte_identical_with_and_without_the_cpp_dispatch(name, fake, python_dispatch):
    _identical_either_way(python_dispatch, accel.load_dispatch, name, fake)


class _ReadsTheModeStack(torch.nn.Module):
    """A forward that asks torch which dispatch mode is on (as Dynamo and torch's own helpers do),
    records what it saw, and runs another mode inside the recorder."""

    def forward(self, x):
        from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode

        class Counting(TorchDispatchMode):
            calls = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Counting.calls += 1
                return func(*args, **(kwargs or {}))

        self.seen = _get_current_dispatch_mode()
        with Counting():
            y = x.sin()
        self.counted = Counting.calls
        return y + 1


@needs_cxx
def test_the_cpp_dispatch_leaves_the_mode_stack_as_torch_keeps_it(python_dispatch):
    """Code in the forward reads the stack and pushes its own mode: it sees the recorder, its mode
    runs, the recorder still records the calls that mode passes on, and after the capture torch
    dispatches modes through Python again."""
    python_dispatch(False)
    model = _ReadsTheModeStack()
    _, _, recorder = record_forward(model, [torch.randn(3)])
    assert recorder.adopted and model.seen is recorder and model.counted == 1
    assert [recorder.rec.ops[c.op].name for c in recorder.rec.calls] == ["aten.sin.default", "aten.add.Tensor"]
    from torch.utils._python_dispatch import TorchDispatchMode

    class Doubling(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {})) * 2

    x = torch.ones(2)
    with Doubling():
        y = x.add(1)  # (1 + 1) * 2: the mode ran (the mul it called ran below it)
    assert y.tolist() == [4.0, 4.0]


@needs_cxx
def test_a_recorder_entered_inside_another_records_through_python(python_dispatch):
    python_dispatch(False)
    inner = []

    class Nested(torch.nn.Module):
        def forward(self, x):
            _, _, r = record_forward(torch.nn.ReLU(), [x])
            inner.append(r)
            return x.cos()

    _, _, outer = record_forward(Nested(), [torch.randn(3)])
    assert outer.adopted and not inner[0].adopted
    assert [inner[0].rec.ops[c.op].name for c in inner[0].rec.calls] == ["aten.relu.default"]
    assert "aten.cos.default" in [outer.rec.ops[c.op].name for c in outer.rec.calls]


@pytest.mark.parametrize("name,fake", SAMPLE, ids=[n for n, _ in SAMPLE])
def test_a_trace_is_byte_identical_with_and_without_the_accelerator(name, fake, pure_python):
    _identical_either_way(pure_python, accel.load, name, fake)


def test_a_stale_build_is_not_loaded(monkeypatch, pure_python):
    pure_python(False)
    monkeypatch.setattr(accel, "source_sha", lambda: "0" * 16)  # as if _accel.c changed after the build
    accel.load.cache_clear()
    assert accel.load() is None
    _, _, recorder = record_forward(torch.nn.Linear(4, 2), [torch.randn(3, 4)])
    assert not recorder.accelerated and len(recorder.rec.calls) > 0


def test_a_cpp_dispatch_built_for_another_source_or_torch_is_not_loaded(monkeypatch, python_dispatch):
    python_dispatch(False)
    monkeypatch.setattr(accel, "dispatch_sha", lambda: "0" * 16)  # as if _dispatch.cpp or torch changed
    accel.load_dispatch.cache_clear()
    assert accel.load_dispatch() is None
    _, _, recorder = record_forward(torch.nn.Linear(4, 2), [torch.randn(3, 4)])
    assert recorder.accelerated and not recorder.adopted and len(recorder.rec.calls) > 0


def test_check_says_whether_the_build_is_current(capsys):
    assert accel.main(["--check"]) == (0 if shutil.which(_CXX) else 1)  # 1: a module missing or stale
    out = capsys.readouterr().out
    assert "_accel is current" in out and ("_dispatch is current" in out or shutil.which(_CXX) is None)


class _Raises(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) + torch.ones(2, 3).sum(dim=5)  # dim out of range: the op itself raises


class _Net(torch.nn.Module):
    """A model with a module built during forward, and one whose forward raises when asked to."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)
        self.bad = _Raises()

    def forward(self, x, fail=False):
        y = torch.nn.Tanh()(self.fc(x))  # built during forward, not part of the model
        return self.bad(y) if fail else y * 2


@pytest.mark.parametrize("pure", [True, False], ids=["python", "accelerated"])
def test_the_module_stack_names_modules_built_during_forward_and_unwinds_on_errors(pure, pure_python):
    pure_python(pure)
    model, xs = _Net(), [torch.randn(2, 3)]
    call_impl = torch.nn.Module.__dict__["_call_impl"]
    modules, _, recorder = record_forward(model, xs)
    paths = [[modules.modules[i].path for i in modules.scopes[c.scope]] for c in recorder.rec.calls]
    assert ["", "<Tanh>"] in paths and ["", "fc"] in paths
    assert paths[-1] == [""]  # the multiplication ran after both modules returned
    stack = ModuleStack(model)
    with pytest.raises(IndexError), stack:
        model(*xs, fail=True)
    assert stack.stack == [] and stack.current_scope == 0  # left bad and the root as the error passed
    assert torch.nn.Module.__dict__["_call_impl"] is call_impl  # restored after the error


@torch.compile(backend="eager")
def _compiled(x):
    return torch.sin(x) * 2


class _CallsCompiled(torch.nn.Module):
    def forward(self, x):
        return _compiled(x) + 1


def test_a_compiled_function_inside_the_model_is_recorded_alike_on_both_paths(pure_python):
    """While Dynamo's frame evaluator is installed, the accelerated dispatch runs torch's guarded
    method: Dynamo must not compile the recorder's own frames."""
    recorded = []
    for pure in (True, False):
        pure_python(pure)
        _, _, recorder = record_forward(_CallsCompiled(), [torch.randn(3)])
        recorded.append([(recorder.rec.ops[c.op].name, c.args, c.outputs) for c in recorder.rec.calls])
    assert [name for name, _, _ in recorded[1]] == ["aten.sin.default", "aten.mul.Tensor", "aten.add.Tensor"]
    assert recorded[0] == recorded[1]


def test_the_accelerated_recording_stays_out_of_the_cyclic_collector(pure_python):
    """Its records hold no cycles, so they are made untracked: the collector's first pass after a
    capture (and every pass after it) does not walk the whole recording."""
    import gc

    from capture.capture import record_calls
    pure_python(False)
    model, xs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), [torch.randn(1, 3, 8, 8)]
    _, table, recorder, calls, sigs = record_calls(model, xs)
    assert recorder.accelerated and len(calls) >= 2
    made = [calls[0], calls[0].args, calls[0].outputs, recorder.rec.calls[0], table.metas[0],
            table.metas[0].shape, sigs[0].args]
    assert [gc.is_tracked(o) for o in made] == [False] * len(made)
    pure_python(True)
    _, table, recorder, calls, _ = record_calls(model, xs)
    assert not recorder.accelerated and gc.is_tracked(calls[0].args)  # the Python path: plain containers
