"""Capture one registry model: build it, run one eval forward under the Recorder, make a Trace."""
from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.metadata
import platform
import time

from capture.registry import ModelEntry, build_model
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
    for dist in ("optrace", "torch", "torchvision", "timm", "ultralytics"):
        out[dist] = dist_version(dist)
    return out


def grad_context(grad_mode: str):
    """The context manager of a grad mode name (GRAD_MODES)."""
    import torch  # here, not at the top: replay imports this module (dist_version, build_signatures) without torch
    return {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
            "grad": torch.enable_grad}[grad_mode]()


def make_inputs(entry: ModelEntry, shapes: list[list[int]], fake_mode):
    """Seeded random inputs of the given shapes in the entry's dtype (empty fake ones under fake_mode)."""
    import torch  # see grad_context
    dtype = getattr(torch, entry.dtype)
    gen = torch.Generator().manual_seed(entry.seed)
    if fake_mode is None:
        return [torch.rand(s, dtype=dtype, generator=gen) for s in shapes]
    with fake_mode:
        return [torch.empty(s, dtype=dtype) for s in shapes]


def build_signatures(rec, tensors) -> tuple[list[OpCall], list[Signature]]:
    """Intern each call's (op, argument metadata) as a signature; calls reference it by index."""
    sig_index: dict[str, int] = {}
    sigs: list[Signature] = []
    calls: list[OpCall] = []
    for i, raw in enumerate(rec.calls):
        name = rec.ops[raw.op].name
        sargs = [signature_value(v, tensors) for v in raw.args]
        sid = signature_id(name, sargs)
        k = sig_index.get(sid)
        if k is None:
            k = sig_index[sid] = len(sigs)
            sigs.append(Signature(id=sid, op=name, args=sargs,
                                  outputs=[signature_value(v, tensors) for v in raw.outputs], count=0, calls=[]))
        sigs[k].count += 1
        sigs[k].calls.append(i)
        calls.append(OpCall(index=i, op=raw.op, args=raw.args, outputs=raw.outputs, scope=raw.scope, signature=k))
    return calls, sigs


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


def tensor_kinds(model, inputs) -> dict:
    """Parameters, buffers and inputs: id(tensor) -> (kind, name, tensor). Holding the tensor keeps
    its id from being reused while the table is in use."""
    kinds = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        kinds.setdefault(id(p), ("param", n, p))
    for n, b in model.named_buffers(remove_duplicate=False):
        kinds.setdefault(id(b), ("buffer", n, b))
    for i, x in enumerate(inputs):
        kinds[id(x)] = ("input", str(i), x)
    return kinds


def record_forward(model, inputs, grad_mode: str = "no_grad", fake_mode=None):
    """Run one forward under the recorder; returns (module stack, tensor table, recorder)."""
    from capture.recorder import ModuleStack, Recorder, TensorTable  # imports torch

    modules = ModuleStack(model)
    table = TensorTable(tensor_kinds(model, inputs))
    recorder = Recorder(modules, table, fake_mode)
    # The recorder allocates many small objects per call; cyclic GC passes over the model's
    # objects would cost more than the recording itself (nothing recorded here forms cycles).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(grad_context(grad_mode))
            if fake_mode is not None:
                stack.enter_context(fake_mode)
            stack.enter_context(modules)
            stack.enter_context(recorder)
            model(*inputs)
    finally:
        if gc_was_enabled:
            gc.enable()
        table.close()
    return modules, table, recorder


def capture_model(entry: ModelEntry, *, fake: bool | None = None, grad_mode: str = "no_grad",
                  inputs: list[list[int]] | None = None) -> Trace:
    """Trace one forward of the entry; fake=None uses the entry's capture mode."""
    use_fake = entry.capture == "fake" if fake is None else fake
    shapes = inputs or entry.inputs
    model = build_model(entry)
    fake_mode = None
    if use_fake:
        from torch._subclasses.fake_tensor import FakeTensorMode  # see grad_context
        fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    xs = make_inputs(entry, shapes, fake_mode)

    t0 = time.perf_counter()
    modules, table, recorder = record_forward(model, xs, grad_mode, fake_mode)
    capture_s = time.perf_counter() - t0

    calls, sigs = build_signatures(recorder.rec, table.metas)
    header = trace_header(entry, shapes, grad_mode, "fake" if use_fake else "real", "eager", len(calls), capture_s)
    return Trace(header=header, modules=modules.modules, scopes=modules.scopes, ops=recorder.rec.ops,
                 tensors=table.metas, calls=calls, signatures=sigs)
