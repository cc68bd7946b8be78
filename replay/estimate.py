"""The estimate backend: what an op would allocate on a Tenstorrent device, without a device.

Imports neither torch nor ttnn. Replaying a signature places its input tensors on an empty device,
then the op's own buffers: its outputs (shapes as traced) plus whatever the op family allocates
besides them. That per-op knowledge is a table of small rules keyed by aten overload, like
torch/utils/flop_counter.py's formulas (``@register_rule("aten.view.default")``); ``rules_table()``
lists it. Every buffer goes through the allocator model of replay/footprint.py; the first one that
does not fit is the OOM ttnn would report. Rules are checked against ttnn's own allocations on the
mock device in tests/replay/test_estimate_vs_ttnn.py.

Not modelled: circular buffers (cb_overflow), sharded memory, fragmentation from earlier ops.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from replay.devices import BLOCK_FLOAT_DTYPES, L1_SMALL_BYTES, TILE_HW, DeviceSpec, get_device
from replay.footprint import Allocation, allocate, normalize
from replay.results import ESTIMATE_NOTE, OomInfo, ReplayResult, TensorFootprint, oom_status

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
# torch dtype -> ttnn dtype for non-float tensors (float tensors take Settings.dtype). ttnn has no
# 64-bit or bool tensors: integers become int32, masks bfloat16 (as replay/mapping/ places them).
INT_DTYPES = {"int64": "int32", "int32": "int32", "int16": "int32", "int8": "int32", "uint8": "int32",
              "bool": "bfloat16"}


@dataclass(frozen=True)
class Settings:
    """How a port would place tensors: the board, float dtype, layout and memory of every tensor."""
    device: str = "n150"
    dtype: str = "bfloat16"          # float tensors become this ttnn dtype
    layout: str = "TILE"             # "TILE" | "ROW_MAJOR" (block floats are always TILE)
    memory: str = "dram"             # "dram" | "l1"
    l1_small_bytes: int = L1_SMALL_BYTES


@dataclass
class Buffer:
    """One device buffer an op case needs; ``role`` is "input", "output" or what the extra is for."""
    shape: tuple
    dtype: str
    layout: str
    memory: str
    role: str


@dataclass
class OpCase:
    """One signature as the rules see it: named arguments, input and output tensors as placed."""
    op: str
    args: dict                                   # arg name -> tagged value
    inputs: list[Buffer]
    outputs: list[Buffer]
    settings: Settings
    device: DeviceSpec


@dataclass
class Plan:
    """What a rule decides: the op's buffers (outputs first), or skipped/unsupported with a reason."""
    buffers: list[Buffer] = field(default_factory=list)
    status: str = ""                             # "" (allocate), "skipped" or "unsupported"
    reason: str = ""
    ttnn_call: str = ""


Rule = Callable[[OpCase], Plan]
RULES: dict[str, Rule] = {}


def register_rule(*ops: str):
    """Register a rule for one or more aten overloads, e.g. ``@register_rule("aten.view.default")``."""
    def wrap(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn
    return wrap


def rules_table() -> list[tuple[str, str, str]]:
    """(aten overload, rule name, first docstring line) for every registered rule, sorted."""
    return sorted((op, fn.__name__, (fn.__doc__ or "").strip().split("\n")[0]) for op, fn in RULES.items())


# ---------------------------------------------------------------------------------------------
# Rules

def outputs_only(case: OpCase) -> Plan:
    """Default: the op allocates its outputs, as traced, and nothing else we know of."""
    return Plan(list(case.outputs))


@register_rule("aten.detach.default", "aten.alias.default", "aten.lift_fresh.default",
               "aten._assert_async.msg", "aten._assert_async.default", "aten.sym_size.int",
               "aten._local_scalar_dense.default", "aten.sym_numel.default", "aten.sym_stride.int",
               "aten.prim_layout.default", "aten.dim.default", "aten.is_same_size.default")
def metadata_only(case: OpCase) -> Plan:
    """Pure metadata or host bookkeeping: a port issues no device op."""
    return Plan(status="skipped", reason=f"{case.op} is metadata only; a port issues no ttnn op")


def _reshape_is_view(src: tuple, dst: tuple, layout: str) -> bool:
    # ttnn reshapes in place when the last dim stays and the tile rows need no reshuffling.
    s, d = _as2(src), _as2(dst)
    if s[-1] != d[-1]:
        return False
    return layout == "ROW_MAJOR" or s[-2] == d[-2] or (s[-2] % TILE_HW == 0 and d[-2] % TILE_HW == 0)


def _as2(shape: tuple) -> tuple:
    return tuple(shape) if len(shape) >= 2 else (1,) + tuple(shape) if shape else (1, 1)


def _as3(shape: tuple) -> tuple[int, int, int]:
    s = _as2(shape)
    lead = 1
    for d in s[:-2]:
        lead *= d
    return lead, s[-2], s[-1]


def _mapping_segments(src: tuple, dst: tuple) -> int:
    """Data segments of the first output tile that are contiguous in both input and output tiles."""
    _, h1, w1 = _as3(src)
    _, h2, w2 = _as3(dst)
    n = 0
    for row in range(min(TILE_HW, h2)):
        for c0 in range(0, min(TILE_HW, w2), 16):  # a tile row is two face rows
            f0 = row * w2 + c0
            f1 = row * w2 + min(c0 + 16, w2)
            n += 1
            # breaks where the input changes row (or face row) inside this run
            for p in range(f0 + 1, f1):
                x = p % w1
                if x == 0 or x % 16 == 0:
                    n += 1
    return max(n, 1)


@register_rule("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
               "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.unsqueeze.default",
               "aten.flatten.using_ints", "aten.unflatten.int", "aten.view_as.default")
def reshape(case: OpCase) -> Plan:
    """ttnn.reshape: free when a view; else padded output + a DRAM page-mapping tensor the program
    cache keeps (one page per output tile, 16 B per segment: approximate); bfloat8_b and bfloat4_b
    go through bfloat16 (input and output copies)."""
    if not case.inputs or not case.outputs:
        return outputs_only(case)
    src, out = case.inputs[0], case.outputs[0]
    call = f"ttnn.reshape(x, {list(out.shape)})"
    if _reshape_is_view(src.shape, out.shape, src.layout):
        return Plan([], ttnn_call=call, reason="view: no allocation")
    if src.layout != "TILE":
        return Plan([out], ttnn_call=call)
    c2, h2, w2 = _as3(out.shape)
    out_tiles = c2 * (-(-h2 // TILE_HW)) * (-(-w2 // TILE_HW))
    page = _up(16 * _mapping_segments(src.shape, out.shape), case.device.dram_alignment)
    mapping = Buffer((out_tiles, page // 4), "uint32", "ROW_MAJOR", "DRAM", "reshape page-mapping tensor")
    if src.dtype in BLOCK_FLOAT_DTYPES:
        as_bf16 = Buffer(src.shape, "bfloat16", "TILE", src.memory, "input typecast to bfloat16")
        out_bf16 = Buffer(out.shape, "bfloat16", "TILE", out.memory, "output in bfloat16")
        return Plan([as_bf16, out_bf16, mapping, out], ttnn_call=call)
    return Plan([out, mapping], ttnn_call=call)


def _up(x: int, m: int) -> int:
    return -(-x // m) * m


@register_rule("aten.permute.default")
def permute(case: OpCase) -> Plan:
    """ttnn.permute: identity is free; otherwise the padded output only (stays in TILE)."""
    dims = case.args.get("dims", ["list", []])[1]
    order = [v[1] for v in dims] if isinstance(dims, list) else []
    rank = len(case.inputs[0].shape) if case.inputs else 0
    if order and [d % rank for d in order] == list(range(rank)):
        return Plan([], ttnn_call=f"ttnn.permute(x, {order})", reason="identity permutation")
    return Plan(list(case.outputs), ttnn_call=f"ttnn.permute(x, {order})")


# ---------------------------------------------------------------------------------------------
# The backend

def _ttnn_dtype(torch_dtype: str, settings: Settings) -> str | None:
    if torch_dtype in FLOAT_DTYPES:
        return settings.dtype
    return INT_DTYPES.get(torch_dtype)


def _tensors(values: list, out: list) -> None:
    for v in values:
        if v[0] == "T":
            out.append(v[1])
        elif v[0] == "list":
            _tensors(v[1], out)


def _place(metas: list, settings: Settings, role: str) -> tuple[list[Buffer], str]:
    bufs = []
    for shape, dtype, _stride in metas:
        dt = _ttnn_dtype(dtype, settings)
        if dt is None:
            return [], f"{role} dtype {dtype} has no ttnn equivalent"
        layout = "TILE" if dt in BLOCK_FLOAT_DTYPES else settings.layout
        bufs.append(Buffer(tuple(shape), dt, layout, settings.memory.upper(), role))
    return bufs, ""


def _tensor_footprint(b: Buffer, a: Allocation) -> TensorFootprint:
    return TensorFootprint(list(b.shape), b.dtype, b.layout, b.memory, a.logical_bytes,
                           list(a.padded_shape), a.total_bytes)


def run_signature(sig, arg_names: list[str], settings: Settings = Settings()) -> ReplayResult:
    """Estimate one signature (capture.schema.Signature) on settings.device: pass, oom_* or why not."""
    t0 = time.perf_counter()
    device = get_device(settings.device)
    normalize(settings.dtype, settings.layout, settings.memory)  # FootprintError on bad settings
    result = ReplayResult(signature_id=sig.id, op=sig.op, status="pass", backend="estimate",
                          device=device.name, mock=False, reason=ESTIMATE_NOTE,
                          extra={"note": ESTIMATE_NOTE})
    in_metas, out_metas = [], []
    _tensors(sig.args, in_metas)
    _tensors(sig.outputs, out_metas)
    inputs, why = _place(in_metas, settings, "input")
    outputs, why_out = _place(out_metas, settings, "output")
    if why or why_out:
        result.status, result.reason = "unsupported", f"{why or why_out}; {ESTIMATE_NOTE}"
        return _done(result, t0)
    case = OpCase(sig.op, dict(zip(arg_names, sig.args)), inputs, outputs, settings, device)
    rule = RULES.get(sig.op, outputs_only)
    plan = rule(case)
    result.ttnn_call = plan.ttnn_call
    result.extra["rule"] = rule.__name__
    if plan.status:
        result.status, result.reason = plan.status, f"{plan.reason}; {ESTIMATE_NOTE}"
        return _done(result, t0)
    placed = {}
    for b in inputs + outputs + plan.buffers:
        if id(b) not in placed:
            placed[id(b)] = allocate(b.shape, b.dtype, b.layout, b.memory, device, settings.l1_small_bytes)
    result.inputs = [_tensor_footprint(b, placed[id(b)]) for b in inputs]
    result.outputs = [_tensor_footprint(b, placed[id(b)]) for b in outputs]
    used = {"DRAM": 0, "L1": 0}
    for phase, bufs in (("inputs", inputs), ("op", plan.buffers)):
        for b in bufs:
            a = placed[id(b)]
            before = used[b.memory]
            if before + a.per_bank_bytes > a.bank_bytes:
                free = a.bank_bytes - before
                result.status = oom_status(b.memory)
                result.oom = OomInfo(a.total_bytes, b.memory, a.num_banks, a.message_per_bank_bytes,
                                     a.bank_bytes, before, free, free, "exhaustion", phase)
                result.reason = (f"{b.role} {list(b.shape)} {b.dtype} needs {a.per_bank_bytes:,} B "
                                 f"per bank, {free:,} B free of {a.bank_bytes:,}; {ESTIMATE_NOTE}")
                return _done(result, t0)
            used[b.memory] = before + a.per_bank_bytes
    result.extra["extra_buffers"] = [b.role for b in plan.buffers if b.role != "output"]
    # the op's own buffers in allocation order: [role, memory, total bytes, per-bank bytes]
    result.extra["buffers"] = [[b.role, b.memory, placed[id(b)].total_bytes, placed[id(b)].per_bank_bytes]
                               for b in plan.buffers]
    if plan.reason:
        result.reason = f"{plan.reason}; {ESTIMATE_NOTE}"
    return _done(result, t0)


def _done(result: ReplayResult, t0: float) -> ReplayResult:
    result.time_s = time.perf_counter() - t0
    return result
