"""Capture one model: build it (or take the user's), run one eval forward under the Recorder, make a Trace."""
from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import platform
import time

from capture.accel import load as accelerator
from capture.gc_pause import gc_paused
from capture.inputs import InputSpec, as_example, example_shapes, make_example
from capture.registry import ModelEntry, build_with_inputs, input_specs_for
from capture.schema import FORMAT_VERSION, OpCall, Signature, Trace, signature_id, signature_value


def dist_version(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions() -> dict:
    """Python's and the capture libraries' versions, as the trace header records them."""
    out = {"python": platform.python_version()}
    for dist in ("optrace", "torch", "torchvision", "timm", "ultralytics", "transformers"):
        out[dist] = dist_version(dist)
    return out


def grad_context(grad_mode: str):
    """The context manager of a grad mode name (GRAD_MODES)."""
    import torch  # here, not at the top: replay imports this module (dist_version, build_signatures) without torch
    return {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
            "grad": torch.enable_grad}[grad_mode]()


def make_inputs(entry: ModelEntry, shapes: list[list[int]], fake_mode):
    """Seeded random positional inputs of the given shapes in the entry's dtype (empty fake ones
    under fake_mode); make_example does named and typed inputs."""
    return make_example([InputSpec(shape=s) for s in shapes], dtype=entry.dtype, seed=entry.seed,
                        fake_mode=fake_mode)[0]


def _hashable(values: list, tensor_class: list) -> tuple:
    """Tagged values as a tuple equal for calls with equal signature metadata: a tensor is its
    class (tensor_class, by [shape, dtype, stride]), an int itself, anything else (tag, payload)."""
    out = []
    for tag, payload in values:
        if tag == "int":
            out.append(payload)
        elif tag == "T":
            out.append(tensor_class[payload])
        elif tag == "list":
            out.append(("list", _hashable(payload, tensor_class)))
        else:
            out.append((tag, payload))
    return tuple(out)


def _tensor_classes(tensors) -> list[tuple]:
    """Per tensor, a token shared by tensors with equal signature metadata (schema.tensor_key)."""
    ids: dict[tuple, tuple] = {}
    return [ids.setdefault((tuple(m.shape), m.dtype, tuple(m.stride)), ("T", len(ids))) for m in tensors]


def build_signatures(rec, tensors, tensor_class: list | None = None) -> tuple[list[OpCall], list[Signature]]:
    """Intern each call's (op, argument metadata) as a signature; calls reference it by index.
    A signature's id is hashed once; calls repeating one are matched on a tuple of their arguments.
    tensor_class: per tensor, a token shared by tensors with equal signature metadata (the recorder's
    TensorTable.classes, made as entries are); made from tensors when not given."""
    with gc_paused():
        return _interned(rec, tensors, _tensor_classes(tensors) if tensor_class is None else tensor_class)


def _signature_values(values: list, tensors: list) -> list:
    return [signature_value(v, tensors) for v in values]


def _interned(rec, tensors, tensor_class: list) -> tuple[list[OpCall], list[Signature]]:
    sig_index: dict[str, int] = {}
    sigs: list[Signature] = []
    fast = accelerator()
    values = fast.signature_values if fast else _signature_values

    def new_signature(raw) -> int:
        """The index of the signature of a call whose argument metadata was not met before (made when
        its id is new: two keys can hash to one id, e.g. an int argument and the same value as a list)."""
        name = rec.ops[raw.op].name
        sargs = values(raw.args, tensors)
        sid = signature_id(name, sargs)
        k = sig_index.get(sid)
        if k is None:
            k = sig_index[sid] = len(sigs)
            sigs.append(Signature(id=sid, op=name, args=sargs, outputs=values(raw.outputs, tensors), count=0, calls=[]))
        return k

    calls = (fast.intern_calls if fast else _intern_calls)(rec.calls, tensor_class, new_signature, sigs, OpCall)
    for sig in sigs:
        sig.count = len(sig.calls)
    return calls, sigs


def _intern_calls(raw_calls: list, tensor_class: list, new_signature, sigs: list[Signature], opcall) -> list[OpCall]:
    """Each raw call as an opcall record of its signature, listed in that signature's calls; calls
    repeating one are matched on a tuple of their arguments (_hashable), new_signature(raw) finds the rest."""
    seen: dict[tuple, int] = {}                   # (op, hashable args) -> signature index
    calls = []
    for i, raw in enumerate(raw_calls):
        key = (raw.op, _hashable(raw.args, tensor_class))
        k = seen.get(key)
        if k is None:
            k = seen[key] = new_signature(raw)
        sigs[k].calls.append(i)
        calls.append(opcall(index=i, op=raw.op, args=raw.args, outputs=raw.outputs, scope=raw.scope, signature=k))
    return calls


def trace_header(entry: ModelEntry, shapes: list[list[int]], grad_mode: str, tensor_mode: str, via: str,
                 call_count: int, capture_s: float, **extra) -> dict:
    """The trace header both capture routes write (docs/trace-format.md)."""
    return {
        "format_version": FORMAT_VERSION,
        "versions": package_versions(),
        "model": entry.to_dict(),
        "input_shapes": shapes,
        "grad_mode": grad_mode,
        "tensor_mode": tensor_mode,
        "via": via,
        "call_count": call_count,
        **extra,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "capture_s": round(capture_s, 3),
    }


def tensor_kinds(model, inputs, kwargs: dict | None = None, named_modules: list | None = None) -> dict:
    """Parameters, buffers and inputs: id(tensor) -> (kind, name, tensor). Holding the tensor keeps
    its id from being reused while the table is in use. Positional inputs are named by position,
    keyword inputs by their keyword. named_modules: model.named_modules(remove_duplicate=False), if
    the caller walked it already."""
    kinds, buffers = {}, []
    # one walk for what named_parameters and named_buffers (remove_duplicate=False) yield, in their
    # order (parameters before buffers); their generator machinery cost 4x the walk
    if named_modules is None:
        named_modules = model.named_modules(remove_duplicate=False)
    for prefix, module in named_modules:
        dot = prefix + "." if prefix else ""
        for n, p in module._parameters.items():
            if p is not None:
                kinds.setdefault(id(p), ("param", dot + n, p))
        buffers += [(dot + n, b) for n, b in module._buffers.items() if b is not None]
    for n, b in buffers:
        kinds.setdefault(id(b), ("buffer", n, b))
    for i, x in enumerate(inputs):
        kinds[id(x)] = ("input", str(i), x)
    for k, x in (kwargs or {}).items():
        kinds[id(x)] = ("input", k, x)
    return kinds


def record_forward(model, inputs, grad_mode: str = "no_grad", fake_mode=None, kwargs: dict | None = None):
    """Run one forward, model(*inputs, **kwargs), under the recorder; returns (module stack, tensor
    table, recorder)."""
    from capture.recorder import ModuleStack, Recorder, TensorTable  # imports torch

    kwargs = kwargs or {}
    named_modules = list(model.named_modules(remove_duplicate=False))  # one walk for both tables
    modules = ModuleStack(model, named_modules)
    table = TensorTable(tensor_kinds(model, inputs, kwargs, named_modules))
    recorder = Recorder(modules, table, fake_mode)
    try:
        with gc_paused(), contextlib.ExitStack() as stack:
            stack.enter_context(grad_context(grad_mode))
            if fake_mode is not None:
                stack.enter_context(fake_mode)
            stack.enter_context(modules)
            stack.enter_context(recorder)
            model(*inputs, **kwargs)
    finally:
        recorder.close()
        table.close()
    return modules, table, recorder


def record_calls(model, inputs, grad_mode: str = "no_grad", fake_mode=None, kwargs: dict | None = None):
    """record_forward, then its calls interned (build_signatures): (module stack, tensor table,
    recorder, calls, signatures). Cyclic GC stays paused from the forward to the last signature:
    re-enabled in between, its first pass would walk every object of the recording, all still young.
    (Not gc.freeze + unfreeze after it, to spare that one pass: freezing resets the collector's
    counts, so a process capturing model after model never ran a full pass again and kept every
    model that was cyclic garbage: 0.2 GB more per capture of hf_detr.)"""
    with gc_paused():
        modules, table, recorder = record_forward(model, inputs, grad_mode, fake_mode, kwargs)
        calls, sigs = build_signatures(recorder.rec, table.metas, table.classes)
    return modules, table, recorder, calls, sigs


# Torch threads of a captured forward. Fixed, so that a capture is the same on any machine and in
# any `--jobs` worker: with 2 threads float sums run in another order, and the R-CNNs' random-weight
# scores then keep 880 boxes after NMS instead of 879 (other calls, other signatures).
CAPTURE_THREADS = 1


@contextlib.contextmanager
def fixed_threads(n: int):
    """torch's intra-op thread count set to n for a block, then restored."""
    import torch  # see grad_context
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


def trace_forward(model, args: list, kwargs: dict, *, entry: ModelEntry, shapes: list[list[int]],
                  grad_mode: str = "no_grad", fake_mode=None) -> Trace:
    """Record one forward of a built model on given inputs as a Trace whose header names entry
    (with CAPTURE_THREADS torch threads)."""
    t0 = time.perf_counter()
    with fixed_threads(CAPTURE_THREADS):
        modules, table, recorder, calls, sigs = record_calls(model, args, grad_mode, fake_mode, kwargs)
    capture_s = time.perf_counter() - t0
    header = trace_header(entry, shapes, grad_mode,
                          "fake" if fake_mode is not None else "real", "eager", len(calls), capture_s)
    return Trace(header=header, modules=modules.modules, scopes=modules.scopes, ops=recorder.rec.ops,
                 tensors=table.metas, calls=calls, signatures=sigs)


def entry_for_inputs(entry: ModelEntry, specs: list[InputSpec]) -> ModelEntry:
    """The entry as its trace header records it: an entry with no inputs of its own (ad hoc, or
    inputs from the builder) records the specs the forward was fed."""
    from dataclasses import replace
    if entry.inputs:
        return entry
    plain = all(s.is_plain() for s in specs)
    return replace(entry, inputs=[s.shape for s in specs], input_specs=[] if plain else specs)


def forward_inputs(entry: ModelEntry, example, inputs: list[list[int]] | None, **make) -> tuple[tuple, dict, list]:
    """(args, kwargs, input specs) of one forward: the example a python entry's callable returned,
    unless inputs (--input shapes) override it; else made from the entry's input specs, with make
    passed on to make_example (fake_mode=, empty=)."""
    if example is not None and not inputs:
        args, kwargs = as_example(example)
        return args, kwargs, example_shapes(args, kwargs)
    specs = input_specs_for(entry, inputs)
    args, kwargs = make_example(specs, dtype=entry.dtype, seed=entry.seed, **make)
    return args, kwargs, specs


def capture_model(entry: ModelEntry, *, fake: bool | None = None, grad_mode: str = "no_grad",
                  inputs: list[list[int]] | None = None) -> Trace:
    """Trace one forward of the entry; fake=None uses the entry's capture mode. inputs overrides the
    entry's input shapes; inputs a python entry's callable returned are used when none are given."""
    use_fake = entry.capture == "fake" if fake is None else fake
    model, example = build_with_inputs(entry)
    return trace_built(model, example, entry, fake=use_fake, grad_mode=grad_mode, inputs=inputs)


def trace_built(model, example, entry: ModelEntry, *, fake: bool, grad_mode: str = "no_grad",
                inputs: list[list[int]] | None = None) -> Trace:
    """capture_model on a model already built from entry (``build_with_inputs``): tracing one model at
    many input sizes builds it once."""
    fake_mode = None
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode  # see grad_context
        fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    args, kwargs, specs = forward_inputs(entry, example, inputs, fake_mode=fake_mode)
    return trace_forward(model, args, kwargs, entry=entry_for_inputs(entry, specs),
                         shapes=[s.shape for s in specs], grad_mode=grad_mode, fake_mode=fake_mode)
