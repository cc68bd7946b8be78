"""Numerics: ttnn's outputs against the torch reference (PCC and max abs error), on a real board.

The coordinator (torch env) prepares each signature: the torch backend's builder makes inputs with
valid values, torch computes the reference, and both are laid out the way the port holds them (the
mapping's declared ``permute`` then a row-major reshape). The inputs travel to the worker as wire
arrays; the worker uploads them instead of allocating uninitialised tensors and sends its outputs
back (``replay.backends.ttnn_ops``); ``judge`` compares and sets ``numerics`` and, below the PCC
threshold, status ``mismatch``.

Only on a real board: on the mock device outputs are garbage, so nothing is sent and numerics stay
``not_checked (mock device)``. ``OPTRACE_NUMERICS_ON_MOCK=1`` sends data anyway, for testing the
path end to end (a garbage output must then come out as ``mismatch``).

A wire array is ``{"dtype": numpy dtype name, "shape": [...], "data": C-order bytes}``. This
module imports numpy only; torch is imported inside ``prepare``, which runs on the coordinator.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from replay.mapping import MAPPINGS, Case, PortSettings, plan_replay

NUMERICS_ON_MOCK_ENV = "OPTRACE_NUMERICS_ON_MOCK"
DEFAULT_PCC = 0.99
# Input plus output bytes (float32 on the wire) above which a signature's data is not sent.
DEFAULT_MAX_BYTES = 256 << 20

# Mapping families (the mapping function's name) whose ttnn calls compute what the aten op
# computes, with how many outputs are compared (None: all). Anything else stays not_checked.
CHECKED: dict[str, int | None] = {
    # elementwise
    "unary": None, "binary": None, "where": None, "masked_fill": None,
    # normalization, softmax, matmul, attention (aten also returns saved statistics: output 0 only)
    "softmax": None, "log_softmax": None, "layer_norm": 1, "batch_norm": 1, "group_norm": 1,
    "linear": None, "addmm": None, "matmul": None, "baddbmm": None, "sdpa": 1, "embedding": None,
    # data movement
    "reshape": None, "permute": None, "transpose": None, "t_": None, "expand": None, "slice_": None,
    "select": None, "split": None, "unbind": None, "cat": None, "stack": None, "pad": None,
    "roll": None, "repeat": None, "clone": None, "to_copy": None, "full": None, "fill": None,
    "arange": None,
    # reductions (values only where aten also returns indices)
    "reduce": 1, "vector_norm": None, "cumsum": None, "topk": 1, "sort": 1,
    # channels-last conv and pools (max pool's indices differ in convention: values only)
    "convolution": None, "max_pool2d": 1, "avg_pool2d": None, "adaptive_pool2d": 1, "upsample": None,
}
NOT_CHECKED = {
    "argmax": "indices: near-ties under bfloat16 pick other elements than float32 torch",
    "copy_": "ttnn.copy writes into its destination; no output to read back",
}


# ---------------------------------------------------------------------------------------------
# The comparison

def compare(reference, actual, threshold: float = DEFAULT_PCC) -> tuple[bool, float, float]:
    """(ok, pcc, max_abs) of two arrays of equal size, flattened, in float64.

    Elements where the reference is NaN or infinite are left out (torch's NaN for log(-1) is no
    target); a NaN/inf in ``actual`` where the reference is finite fails with pcc NaN and max_abs
    inf. When either side is constant, pcc is 1.0 if the two agree (rtol and atol 1e-2), else 0.0.
    Nothing left to compare counts as agreement.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    act = np.asarray(actual, dtype=np.float64).ravel()
    if ref.size != act.size:
        raise ValueError(f"compare: {ref.size} reference elements, {act.size} actual")
    finite = np.isfinite(ref)
    ref, act = ref[finite], act[finite]
    if not np.isfinite(act).all():
        return False, math.nan, math.inf
    if ref.size == 0:
        return True, 1.0, 0.0
    max_abs = float(np.max(np.abs(ref - act)))
    if np.ptp(ref) == 0 or np.ptp(act) == 0:
        pcc = 1.0 if np.allclose(act, ref, rtol=1e-2, atol=1e-2) else 0.0
    else:
        rc, ac = ref - ref.mean(), act - act.mean()
        pcc = float(np.clip(np.dot(rc, ac) / math.sqrt(np.dot(rc, rc) * np.dot(ac, ac)), -1.0, 1.0))
    return pcc >= threshold, pcc, max_abs


# ---------------------------------------------------------------------------------------------
# Wire arrays

def to_wire(array: np.ndarray) -> dict:
    """A numpy array as a wire array (dtype name, shape, C-order bytes)."""
    a = np.ascontiguousarray(array)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.tobytes()}


def from_wire(wire: dict) -> np.ndarray:
    """A writable C-order array (ttnn will not take a read-only buffer)."""
    return np.frombuffer(wire["data"], dtype=np.dtype(wire["dtype"])).reshape(wire["shape"]).copy()


# ---------------------------------------------------------------------------------------------
# Coordinator side: inputs and reference in the port's layout

@dataclass
class Prepared:
    """One signature's data for the worker and the reference kept here; or why there is none."""
    inputs: dict[str, dict] = field(default_factory=dict)     # wire arrays by the plan's input name
    reference: list[np.ndarray] = field(default_factory=list)  # torch's outputs in the port's layout
    reason: str = ""                                            # why not checked ("" when prepared)


def family_of(op: str) -> str:
    """The mapping function's name for an aten overload ("binary", "reshape"), or "" when unmapped."""
    m = MAPPINGS.get(op)
    return m.fn.__name__ if m is not None and m.fn is not None else ""


def _why_not(case, family: str) -> str:
    if family in NOT_CHECKED:
        return NOT_CHECKED[family]
    if family not in CHECKED:
        return "no data transform mirrored for this op family yet"
    if family in ("addmm", "baddbmm") and (case.get("beta", 1) != 1 or case.get("alpha", 1) != 1):
        return "beta/alpha != 1 are replayed as a plain matmul"
    return ""


def _source(named: dict, name: str):
    """The torch value behind a plan input: an argument, or item i of list argument `x` for `x_i`."""
    if name in named:
        return named[name]
    m = re.fullmatch(r"(.+)_(\d+)", name)
    if m and isinstance(named.get(m.group(1)), (list, tuple)):
        items = named[m.group(1)]
        return items[int(m.group(2))] if int(m.group(2)) < len(items) else None
    return None


def _port_layout(t, permute: list[int] | None, shape: list[int], what: str):
    if permute is not None:
        t = t.permute(permute)
    if t.numel() != math.prod(shape):
        raise ValueError(f"{what} held as {shape} is not a reshape of {list(t.shape)}")
    return t.reshape(shape)


def _numpy(t, ttnn_dtype: str) -> np.ndarray:
    import torch
    if ttnn_dtype in ("int32", "uint32"):
        return t.to(torch.int64).numpy().astype(ttnn_dtype)
    return t.to(torch.float32).numpy()     # floats and bools (ttnn holds bools as 0/1 floats)


def _tensors(v) -> list:
    import torch
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in _tensors(x)]
    return []


def prepare(sig, arg_names: list[str], settings=None, seed: int = 0,
            max_bytes: int = DEFAULT_MAX_BYTES) -> Prepared:
    """Inputs (wire arrays) and reference outputs of one signature, both in the port's layout.

    ``settings`` is the mapping's PortSettings (dtype, layout, memory) the worker uses.
    """
    import torch

    from replay.backends.torch_ref import NotBuildable, build_inputs, signature_bytes

    case = Case.from_wire(sig.to_full_wire(arg_names))
    plan = plan_replay(case, settings or PortSettings())
    if plan.status != "mapped":
        return Prepared(reason="not replayed")
    why = _why_not(case, family_of(sig.op))
    if why:
        return Prepared(reason=why)
    try:
        size = signature_bytes(sig)
    except NotBuildable as e:
        return Prepared(reason=f"no torch reference: {e}")
    if size > max_bytes:
        return Prepared(reason=f"{size / 2**20:.0f} MiB of data is above the {max_bytes / 2**20:.0f} MiB sent per op")
    try:
        op, args, kwargs, named = build_inputs(sig, arg_names, seed)
        with torch.no_grad():
            outputs = _tensors(op(*args, **kwargs))
        prepared = Prepared()
        for spec in plan.inputs:
            src = _source(named, spec.name)
            if not isinstance(src, torch.Tensor):
                return Prepared(reason=f"input {spec.name!r} has no traced tensor to take values from")
            t = _port_layout(src.detach(), spec.permute, spec.shape, f"input {spec.name!r}")
            prepared.inputs[spec.name] = to_wire(_numpy(t, spec.dtype))
        count = CHECKED[family_of(sig.op)]
        expected = plan.expected or [list(o.shape) or [1] for o in outputs]    # arange declares none
        for i, (out, shape) in enumerate(zip(outputs[:count], expected)):
            t = _port_layout(out.detach(), plan.output_permute, shape, f"output {i}")
            prepared.reference.append(_numpy(t, "float32"))
    except (NotBuildable, ValueError, RuntimeError, TypeError, IndexError) as e:
        return Prepared(reason=f"no torch reference: {type(e).__name__}: {str(e)[:200]}")
    return prepared


def judge(result, prepared: Prepared | None, actual: list | None, threshold: float = DEFAULT_PCC) -> None:
    """Set ``result.numerics`` (and status ``mismatch`` below threshold) from the read-back outputs."""
    if result.status != "pass":
        return
    if prepared is None or prepared.reason:
        reason = prepared.reason if prepared else "no data sent"
        result.numerics = f"not_checked ({reason})"
        return
    if not actual:
        result.numerics = f"not_checked ({result.extra.get('numerics_path') or 'no outputs read back'})"
        return
    worst = None
    for i, (ref, wire) in enumerate(zip(prepared.reference, actual)):
        got = from_wire(wire)
        if list(got.shape) != list(ref.shape):
            result.numerics = f"not_checked (output {i} is {list(got.shape)}, torch's {list(ref.shape)})"
            return
        ok, pcc, max_abs = compare(ref, got, threshold)
        if worst is None or not (pcc >= worst[2]):       # NaN pcc is the worst
            worst = (i, ok, pcc, max_abs)
    if worst is None:
        result.numerics = "not_checked (no output to compare)"
        return
    i, ok, pcc, max_abs = worst
    result.numerics = f"pcc={pcc:.5f} max_abs={max_abs:.4g}"
    if not ok:
        result.status = "mismatch"
        result.reason = (f"output {i}: pcc {pcc:.5f} < {threshold:g} vs torch (max abs error {max_abs:.4g})"
                         + (" -- mock device: outputs are not computed" if result.mock else ""))
