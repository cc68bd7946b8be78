"""The torch reference backend: re-execute one traced signature on the CPU from its metadata alone.

A signature holds no data, only argument metadata. This backend rebuilds every argument (tensors
laid out exactly as traced, values generated so the op does not reject them), calls the aten
overload, and checks that the outputs have the traced count, shapes and dtypes. Agreement on every
signature is the proof that a trace is faithful: what ttnn is asked to do is what torch did.

Signatures too large for this machine run on fake tensors, which check shapes and dtypes only.
Per-op knowledge of valid input values lives in replay/backends/input_rules.py, one small function
per op family.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from capture.schema import Signature, tensor_payloads
from replay.backends.input_rules import input_rule_for
from replay.mapping import Case
from replay.results import ReplayResult, TensorFootprint, one_line

# Above this many input + output bytes a signature runs on fake tensors (TorchSettings.fake_above_bytes).
DEFAULT_FAKE_ABOVE_BYTES = 2 << 30
BACKEND = "torch"


class NotBuildable(Exception):
    """The signature cannot be turned into a torch call (unknown op, opaque argument, ...)."""


# ---------------------------------------------------------------------------------------------
# Decoding tagged values

def _load_torchvision_ops() -> None:
    """torchvision's ops (nms, roi_align, ...) exist in torch.ops once torchvision is imported."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass  # resolve_op then says the op is missing


def resolve_op(name: str) -> torch._ops.OpOverload:
    """``"aten.view.default"`` -> ``torch.ops.aten.view.default``; NotBuildable when unknown."""
    parts = name.split(".")
    if len(parts) != 3:
        raise NotBuildable(f"op name {name!r} is not namespace.op.overload")
    ns, op, overload = parts
    if ns == "torchvision":
        _load_torchvision_ops()
    try:
        return getattr(getattr(getattr(torch.ops, ns), op), overload)
    except (AttributeError, RuntimeError):
        raise NotBuildable(f"torch {torch.__version__} has no op {name}") from None


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32``; NotBuildable when torch has no such dtype."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise NotBuildable(f"unknown dtype {name!r}")
    return dtype


def _named(kind: type, name: str) -> Any:
    value = getattr(torch, name, None)
    if not isinstance(value, kind):
        raise NotBuildable(f"unknown {kind.__name__} {name!r}")
    return value


def tensor_extent(shape: list[int], stride: list[int]) -> int:
    """Elements of the flat buffer a (shape, stride) view reaches from offset 0."""
    if any(d == 0 for d in shape):
        return 0
    return 1 + sum((d - 1) * s for d, s in zip(shape, stride))


def tensor_bytes(shape: list[int], dtype: str) -> int:
    """Bytes of a contiguous tensor of this shape and dtype."""
    numel = 1
    for d in shape:
        numel *= d
    return numel * torch_dtype(dtype).itemsize


class _Builder:
    """Turns tagged values into torch values; remembers the tensors it made for the footprint."""

    def __init__(self, generator: torch.Generator | None):
        self.generator = generator  # None: fake tensors, no data
        self.tensors: list[torch.Tensor] = []

    def tensor(self, shape: list[int], dtype_name: str, stride: list[int]) -> torch.Tensor:
        dtype = torch_dtype(dtype_name)
        extent = tensor_extent(shape, stride)
        if self.generator is None:
            t = torch.empty_strided(shape, stride, dtype=dtype)
        else:
            # a flat buffer of exactly the traced extent, so expanded (stride 0) and overlapping
            # layouts are the traced ones; rules fill the buffer via t._base
            buf = torch.empty(extent, dtype=dtype)
            _fill_random(buf, self.generator)
            t = buf.as_strided(shape, stride)
        self.tensors.append(t)
        return t

    def value(self, v: list) -> Any:
        tag, payload = v
        if tag == "T":
            return self.tensor(*payload)
        if tag == "list":
            return [self.value(x) for x in payload]
        if tag in ("int", "float", "bool", "str"):
            return payload
        if tag == "none":
            return None
        if tag == "dtype":
            return torch_dtype(payload)
        if tag == "device":
            return torch.device(payload)
        if tag == "layout":
            return _named(torch.layout, payload)
        if tag == "memory_format":
            return _named(torch.memory_format, payload)
        raise NotBuildable(f"argument {tag} {str(payload)[:80]!r} cannot be rebuilt")


# Buffers above this many elements repeat one random block: filling GBs with fresh random numbers
# would cost more than most ops, and shapes and dtypes do not depend on the values.
RANDOM_BLOCK = 1 << 16


def _fill_random(buf: torch.Tensor, generator: torch.Generator) -> None:
    n = buf.numel()
    if n > 4 * RANDOM_BLOCK:
        _fill_random(buf[:RANDOM_BLOCK], generator)
        whole = n // RANDOM_BLOCK
        buf[:whole * RANDOM_BLOCK].view(whole, RANDOM_BLOCK).copy_(buf[:RANDOM_BLOCK].expand(whole, -1))
        buf[whole * RANDOM_BLOCK:].copy_(buf[:n - whole * RANDOM_BLOCK])
        return
    if n == 0:
        return
    if buf.dtype.is_floating_point or buf.dtype.is_complex:
        buf.normal_(generator=generator)
    elif buf.dtype == torch.bool:
        buf.random_(0, 2, generator=generator)
    else:  # small non-negative ints: valid counts, sizes and indices for most ops
        buf.random_(0, 8, generator=generator)


# ---------------------------------------------------------------------------------------------
# Comparing outputs

def _describe(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor {list(v.shape)} {str(v.dtype).removeprefix('torch.')}"
    return type(v).__name__


def _strides_differ(got: list[int], traced: list[int], shape: list[int]) -> bool:
    # the stride of a size-1 dim is arbitrary (fake and real tensors choose differently)
    return 0 not in shape and any(g != t for g, t, d in zip(got, traced, shape) if d != 1)


def compare_outputs(got: Any, traced: list, return_count: int = 1) -> tuple[list[str], list[str]]:
    """(differences in count/shape/dtype/kind, differences in stride only) vs the traced outputs.

    ``got`` is what the op returned; ``return_count`` its schema's number of returns.
    """
    got = [] if return_count == 0 else [got] if return_count == 1 else list(got)
    if len(got) != len(traced):
        return [f"{len(got)} outputs, traced {len(traced)}"], []
    diffs: list[str] = []
    strides: list[str] = []

    def walk(g: Any, t: list, where: str) -> None:
        tag, payload = t
        if tag == "T":
            shape, dtype, stride = payload
            if g is None and 0 in shape:   # "no tensor": undefined from the CPU kernel, empty from a meta
                return                     # kernel (a fake-tensor trace: MHA's weights with need_weights off)
            if not isinstance(g, torch.Tensor):
                diffs.append(f"{where}: {_describe(g)}, traced a tensor")
                return
            if list(g.shape) != shape or str(g.dtype).removeprefix("torch.") != dtype:
                diffs.append(f"{where}: {_describe(g)}, traced {shape} {dtype}")
            elif _strides_differ(list(g.stride()), stride, shape):
                strides.append(f"{where}: stride {list(g.stride())}, traced {stride}")
        elif tag == "list":
            if not isinstance(g, (list, tuple)) or len(g) != len(payload):
                n = len(g) if isinstance(g, (list, tuple)) else _describe(g)
                diffs.append(f"{where}: {n} items, traced a list of {len(payload)}")
                return
            for i, (gi, ti) in enumerate(zip(g, payload)):
                walk(gi, ti, f"{where}[{i}]")
        elif tag == "none":
            if g is not None:
                diffs.append(f"{where}: {_describe(g)}, traced None")
        elif tag in ("int", "float", "bool"):
            kinds = {"int": int, "float": float, "bool": bool}
            if isinstance(g, torch.Tensor) or not isinstance(g, kinds[tag]):
                diffs.append(f"{where}: {_describe(g)}, traced {tag}")

    for i, (g, t) in enumerate(zip(got, traced)):
        walk(g, t, f"output {i}")
    return diffs, strides


# ---------------------------------------------------------------------------------------------
# Running one signature

def _footprint(shape: list[int], dtype: str) -> TensorFootprint:
    n = tensor_bytes(shape, dtype)
    return TensorFootprint(list(shape), dtype, "strided", "host", n, list(shape), n)


def signature_bytes(sig: Signature | Case) -> int:
    """Bytes this signature needs on the CPU: input buffers plus traced outputs."""
    inputs = sum(tensor_extent(s, st) * torch_dtype(d).itemsize for s, d, st in tensor_payloads(sig.args))
    return inputs + sum(tensor_bytes(s, d) for s, d, _ in tensor_payloads(sig.outputs))


def _call_args(op: torch._ops.OpOverload, arg_names: list[str], values: list) -> tuple[list, dict]:
    schema_args = op._schema.arguments
    names = [a.name for a in schema_args]
    if names != list(arg_names):
        raise NotBuildable(f"traced arguments {arg_names} differ from torch's schema {names}")
    args = [v for a, v in zip(schema_args, values) if not a.kwarg_only]
    kwargs = {a.name: v for a, v in zip(schema_args, values) if a.kwarg_only}
    return args, kwargs


@dataclass(frozen=True)
class TorchSettings:
    """How the reference builds its inputs."""
    tensors: str = "auto"                          # "auto" | "real" | "fake"
    fake_above_bytes: int = DEFAULT_FAKE_ABOVE_BYTES  # auto: above this many input + output bytes, fake tensors
    seed: int = 0                                  # for the input data

    def __post_init__(self):
        if self.tensors not in ("auto", "real", "fake"):
            raise ValueError(f"settings tensors={self.tensors!r}: expected auto, real or fake")


class TorchBackend:
    """The CPU reference as a backend: ``TorchBackend(settings).run(case)`` re-executes one signature and
    checks its outputs' count, shapes and dtypes against the traced ones."""
    name = BACKEND

    def __init__(self, settings: TorchSettings = TorchSettings()):
        self.settings = settings

    def run(self, case: Case) -> ReplayResult:
        """pass, mismatch (with the differences) or unsupported (the call cannot be rebuilt)."""
        result = ReplayResult(signature_id=case.id, op=case.op, status="unsupported", backend=BACKEND,
                              device="cpu", mock=False)
        try:
            op = resolve_op(case.op)
            result.inputs = [_footprint(s, d) for s, d, _ in tensor_payloads(case.args)]
            fake = self.settings.tensors == "fake" or (self.settings.tensors == "auto" and signature_bytes(case) >
                                                       self.settings.fake_above_bytes)
            got = self._call(op, case, fake, result)
        except NotBuildable as e:
            result.reason = str(e)
            return result
        except Exception as e:  # the op rejected what the trace says it accepted
            result.status = "mismatch"
            result.reason = one_line(f"raised {type(e).__name__}: {e}")
            return result
        _judge(result, case, op, got, fake)
        return result

    def _call(self, op, case: Case, fake: bool, result: ReplayResult):
        """The op's return value on inputs built from the case (real or fake tensors); timed."""
        with FakeTensorMode() if fake else contextlib.nullcontext():
            generator = None if fake else _generator(case, self.settings.seed)
            args, kwargs, _ = _build(op, case, case.arg_names, generator)
            start = time.perf_counter()
            try:
                with torch.no_grad():
                    return op(*args, **kwargs)
            finally:
                result.time_s = time.perf_counter() - start


def _judge(result: ReplayResult, case: Case, op, got, fake: bool) -> None:
    """pass or mismatch from the outputs against the traced ones; strides and fake tensors noted."""
    diffs, stride_diffs = compare_outputs(got, case.outputs, len(op._schema.returns))
    result.outputs = [_footprint(s, d) for s, d, _ in tensor_payloads(case.outputs)]
    result.status = "mismatch" if diffs else "pass"
    result.reason = "; ".join(diffs)
    if stride_diffs:  # informational: ttnn does not see strides, but a faithful trace has them
        result.extra["strides"] = "; ".join(stride_diffs)
    if fake:
        result.extra["tensors"] = "fake"
        note = "ran on fake tensors (too large for this machine): shapes and dtypes only"
        result.reason = f"{result.reason}; {note}" if result.reason else note


def _generator(sig: Signature | Case, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed ^ int(sig.id, 16))


def build_inputs(sig: Signature, arg_names: list[str],
                 seed: int = 0) -> tuple[torch._ops.OpOverload, list, dict, dict]:
    """The op and its real arguments with valid values, as TorchBackend builds them with this seed:
    (op, args, kwargs, values by schema name). Raises NotBuildable."""
    op = resolve_op(sig.op)
    args, kwargs, named = _build(op, sig, arg_names, _generator(sig, seed))
    return op, args, kwargs, named


def _build(op: torch._ops.OpOverload, sig: Signature | Case, arg_names: list[str],
           generator: torch.Generator | None) -> tuple[list, dict, dict]:
    """The call's positional and keyword arguments (and all values by name), valid when tensors are real."""
    builder = _Builder(generator)
    values = [builder.value(v) for v in sig.args]
    args, kwargs = _call_args(op, arg_names, values)
    named = dict(zip(arg_names, values))
    rule = input_rule_for(sig.op)
    if rule is not None and generator is not None:
        with torch.no_grad():
            rule(named, sig)
    return args, kwargs, named
