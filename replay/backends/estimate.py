"""The estimate backend: what an op would allocate on a Tenstorrent device, without a device.

Imports neither torch nor ttnn. Replaying a signature places its input tensors on an empty device,
then the op's own buffers: its outputs (shapes as traced) plus whatever the op family allocates
besides them. That per-op knowledge is a table of small rules keyed by aten overload, like
torch/utils/flop_counter.py's formulas (``@register_rule("aten.view.default")``); ``rules_table()``
lists it; the rules live in replay/backends/estimate_rules.py, what they return in estimate_plan.py. Every buffer goes through the allocator model of replay/backends/footprint.py; the first one that
does not fit is the OOM ttnn would report. Rules are checked against ttnn's own allocations on the
mock device in tests/replay/test_estimate_vs_ttnn.py.

Tensors are placed as a port holds them (replay.mapping.plan_replay: channels-last conv/pool inputs,
host conv weights, pre-transposed linear weights), and what a port skips or cannot express is
skipped or unsupported here too. A port of several ttnn calls holds each call's result
(replay/backends/ttnn_calls.py). conv2d: a 1x1 matmul conv writes its output to DRAM, as ttnn does.
concat through row major: untilized inputs, the row-major result, its row staging (an entry larger
than a core's L1 is cb_overflow). slice inside tiles, stack, training batch_norm and bilinear upsample
(its L1 shards, whatever the placement) allocate what the mock device shows. conv2d on an L1 input: ttnn's
auto-shard choice (height, block or width), the sharded input copy, the halo, the sharded output, and
its program's circular buffers against the L1 buffers beside them (replay/backends/estimate_conv.py;
conv_transpose2d as the stride-1 conv over its zero-inserted input). Pools on an L1 input: the same auto-shard,
copy and halo, the sharded output (and indices) copied to interleaved L1 results (replay/backends/estimate_pool.py).
Each program's static circular buffers (replay/backends/estimate_cbs.py: unary, binary, softmax, transpose,
batch_norm, pad, concat, matmul on a 2-d grid) must fit below the lowest L1 buffer alive when it runs, else
cb_overflow: the op's L1 buffers are placed in the in-context estimate's bank model (replay/backends/bank.py),
so a buffer the op frees above live ones leaves a hole. Not modelled: the circular buffers of untilize, 1-d
matmuls and the other programs without a rule, fragmentation from earlier ops.
`benchmarks/bench_estimate.py --device-results DIR -v` lists every disagreement with the zoo.
"""
from __future__ import annotations

import time

from capture.schema import tensor_payloads
from replay.backends.bank import BankAllocator, l1_below_buffers
from replay.backends.devices import BLOCK_FLOAT_DTYPES, DeviceSpec, get_device
from replay.backends.estimate_plan import (RULES, Buffer, CircularBuffer, EstimateSettings, OpCase, Plan,
                                           circular_buffer_overflow, place, register_rule, rules_table)
from replay.backends.estimate_rules import outputs_only   # importing it registers every rule
from replay.backends.footprint import Allocation, normalize
from replay.mapping import NO_MAPPING, Case, PortSettings, Replay, plan_replay
from replay.results import ESTIMATE_NOTE, OomInfo, ReplayResult, TensorFootprint, oom_status

# what the in-context estimate (replay/context/estimate.py) and the tests take from here
__all__ = ["RULES", "Buffer", "CircularBuffer", "EstimateBackend", "EstimateSettings", "OpCase", "Plan",
           "circular_buffer_overflow", "circular_clash", "op_case", "outputs_only", "place", "place_tensors", "program_clash",
           "register_rule", "rules_table"]

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
# torch dtype -> ttnn dtype for non-float tensors (float tensors take EstimateSettings.dtype). ttnn has no
# 64-bit or bool tensors: integers become int32, masks bfloat16 (as replay/mapping/ places them).
INT_DTYPES = {"int64": "int32", "int32": "int32", "int16": "int32", "int8": "int32", "uint8": "int32",
              "bool": "bfloat16"}


# ---------------------------------------------------------------------------------------------
# The backend

def _ttnn_dtype(torch_dtype: str, settings: EstimateSettings) -> str | None:
    if torch_dtype in FLOAT_DTYPES:
        return settings.dtype
    return INT_DTYPES.get(torch_dtype)


def place_tensors(metas: list, settings: EstimateSettings, role: str) -> tuple[list[Buffer], str]:
    """Traced tensors ([shape, dtype, stride] each) as the Buffers a port would place under settings;
    or ([], why) when one has no ttnn dtype."""
    bufs = []
    for shape, dtype, _stride in metas:
        dt = _ttnn_dtype(dtype, settings)
        if dt is None:
            return [], f"{role} dtype {dtype} has no ttnn equivalent"
        layout = "TILE" if dt in BLOCK_FLOAT_DTYPES else settings.layout
        bufs.append(Buffer(tuple(shape), dt, layout, settings.memory.upper(), role))
    return bufs, ""


def _port_buffers(port: Replay, out_metas: list, settings: EstimateSettings) -> tuple[list, list, str]:
    """Inputs and outputs as the port holds them (replay.mapping): channels-last conv/pool inputs,
    transposed linear weights, leading 1s for expand; host tensors (conv weights) are not on the device."""
    inputs = []
    for t in port.inputs:
        if t.memory == "host":
            continue
        layout = "TILE" if t.dtype in BLOCK_FLOAT_DTYPES else t.layout
        inputs.append(Buffer(tuple(t.shape), t.dtype, layout, t.memory, "input"))
    outputs, why = place_tensors(out_metas, settings, "output")
    if port.expected and outputs:
        # what the port's calls return (ttnn returns batch_norm's values only, max_pool2d no indices)
        outputs = [Buffer(tuple(shape), b.dtype, b.layout, b.memory, b.role)
                   for shape, b in zip(port.expected, outputs + outputs[-1:] * len(port.expected))]
    return inputs, outputs, why


def op_case(case: Case, port: Replay, settings: EstimateSettings, device) -> tuple[OpCase | None, str, str]:
    """The OpCase the per-op rules see for one case under its port plan (replay.mapping.plan_replay):
    (OpCase, "", ""), or (None, status, reason) for what a port skips or cannot express. The single-op
    backend and the in-context simulation (replay/context/estimate.py) both build their cases here."""
    if port.status == "skip" or (port.status == "unsupported" and port.reason != NO_MAPPING):
        # what a port would not issue (or cannot express) allocates nothing
        return None, "skipped" if port.status == "skip" else "unsupported", port.reason
    out_metas = tensor_payloads(case.outputs)
    if port.status == "mapped":
        inputs, outputs, why = _port_buffers(port, out_metas, settings)
    else:   # no mapping yet: the tensors as traced
        inputs, why = place_tensors(tensor_payloads(case.args), settings, "input")
        outputs, why_out = place_tensors(out_metas, settings, "output")
        why = why or why_out
    if why:
        return None, "unsupported", why
    return OpCase(case.op, dict(zip(case.arg_names, case.args)), inputs, outputs, settings, device,
                  port if port.status == "mapped" else None), "", ""


def apply_rule(opc: OpCase) -> Plan:
    """The op's rule (outputs_only when it has none) applied to the case; a plan that holds a block float
    in row major is what ttnn refuses ("Only TILE layout is supported for BFLOAT8_B dtype!": bilinear
    upsample, grid_sample on a bfloat8_b input, measured on the mock n150): ttnn_error."""
    plan = RULES.get(opc.op, outputs_only)(opc)
    if not plan.status and any(b.layout == "ROW_MAJOR" and b.dtype in BLOCK_FLOAT_DTYPES
                               for b in opc.inputs + opc.outputs + plan.buffers):
        plan.status = "ttnn_error"
        plan.reason = (f"{plan.ttnn_call or opc.op}: a block float in row major, which ttnn refuses "
                       "(\"Only TILE layout is supported for BFLOAT8_B dtype!\")")
    return plan


def circular_clash(plan: Plan, l1_below_bytes: int) -> str:
    """Why the plan's static circular buffers do not fit in the ``l1_below_bytes`` per core that lie
    below the lowest L1 buffer alive at its end (tt-metal: "clash with L1 buffers"), or ""."""
    if not plan.l1_circular_bytes or plan.l1_circular_bytes <= l1_below_bytes:
        return ""
    return (f"static circular buffers ({plan.l1_circular_bytes:,} B per core) clash with L1 buffers "
            f"({l1_below_bytes:,} B per core below them)")


def program_clash(plan: Plan, buf: Buffer, l1_below_bytes: int, device: DeviceSpec) -> str:
    """Why a program that runs once ``buf`` is allocated cannot be made or place its circular buffers, in
    ttnn's order, or "": an entry beyond a core's L1 (circular_buffer_overflow: refused when the program is
    made), then a clash with the ``l1_below_bytes`` per core below the lowest L1 buffer alive then
    (replay/backends/estimate_cbs.py). A program sized from the free L1 is sized here first (Plan.size_programs);
    the single-op and in-context estimates both judge their programs here."""
    plan.size_programs(buf, l1_below_bytes)
    programs = plan.programs_after(buf)
    if not programs:
        return ""
    overflow = circular_buffer_overflow(plan, device)
    if overflow:
        return overflow
    for program, cb_bytes in programs:
        if cb_bytes > l1_below_bytes:
            return (f"{program}: circular buffers ({cb_bytes:,} B per core) clash with L1 buffers "
                    f"({l1_below_bytes:,} B per core below them)")
    return ""


def _tensor_footprint(b: Buffer, a: Allocation) -> TensorFootprint:
    return TensorFootprint(list(b.shape), b.dtype, b.layout, b.memory, a.logical_bytes,
                           list(a.padded_shape), a.total_bytes)


class EstimateBackend:
    """The estimate as a backend: ``EstimateBackend(settings).run(case)`` -> pass, oom_* or why not."""
    name = "estimate"

    def __init__(self, settings: EstimateSettings = EstimateSettings()):
        normalize(settings.dtype, settings.layout, settings.memory)  # FootprintError on bad settings
        self.settings = settings
        self.device = get_device(settings.device)

    def run(self, case: Case) -> ReplayResult:
        """Estimate one signature on settings.device."""
        t0 = time.perf_counter()
        result = ReplayResult(signature_id=case.id, op=case.op, status="pass", backend="estimate",
                              device=self.device.name, mock=False, reason=ESTIMATE_NOTE,
                              extra={"note": ESTIMATE_NOTE})
        self._judge(case, result)
        result.time_s = time.perf_counter() - t0
        return result

    def _judge(self, case: Case, result: ReplayResult) -> None:
        settings = self.settings
        port = plan_replay(case, PortSettings(settings.dtype, settings.layout, settings.memory))
        opc, status, why = op_case(case, port, settings, self.device)
        if opc is None:
            result.status, result.reason = status, f"{why}; {ESTIMATE_NOTE}"
            return
        plan = apply_rule(opc)
        result.ttnn_call = plan.ttnn_call
        result.extra["rule"] = RULES.get(case.op, outputs_only).__name__
        if plan.status:
            result.status, result.reason = plan.status, f"{plan.reason}; {ESTIMATE_NOTE}"
            return
        l1_used = self._allocate(opc.inputs, opc.outputs, plan, result)
        if l1_used is None:
            return
        _, bank = self.device.banks("L1", settings.l1_small_bytes)
        overflow = circular_buffer_overflow(plan, self.device) or circular_clash(plan, bank - l1_used)
        if overflow:
            result.status, result.reason = "cb_overflow", f"{result.ttnn_call or case.op}: {overflow}; {ESTIMATE_NOTE}"
        elif plan.reason:
            result.reason = f"{plan.reason}; {ESTIMATE_NOTE}"

    @staticmethod
    def _oom(result: ReplayResult, b: Buffer, a: Allocation, phase: str, allocated: int, largest: int,
             cause: str) -> None:
        """Record that ``b`` (placed as ``a``) does not fit beside the ``allocated`` bytes per bank."""
        result.status = oom_status(b.memory)
        result.oom = OomInfo(requested_bytes=a.total_bytes, buffer_type=b.memory, num_banks=a.num_banks,
                             per_bank_bytes=a.message_per_bank_bytes, bank_bytes=a.bank_bytes,
                             allocated_bytes=allocated, free_bytes=a.bank_bytes - allocated,
                             largest_free_bytes=largest, cause=cause, phase=phase)

    def _allocate(self, inputs: list, outputs: list, plan: Plan, result: ReplayResult) -> int | None:
        """Place inputs, then the op's buffers, on an empty device; the L1 bytes per bank in use at the
        end, or None (and oom_*) at the first that does not fit."""
        placed = {}
        for b in inputs + outputs + plan.buffers:
            if id(b) not in placed:
                placed[id(b)] = place(b, self.device, self.settings.l1_small_bytes)
        result.inputs = [_tensor_footprint(b, placed[id(b)]) for b in inputs]
        result.outputs = [_tensor_footprint(b, placed[id(b)]) for b in outputs]
        used = {"DRAM": 0, "L1": 0}
        l1 = BankAllocator(self.device.banks("L1", self.settings.l1_small_bytes)[1], top_down=True)
        l1_addrs: dict[int, int] = {}      # id(Buffer) -> its offset in the L1 bank
        for phase, bufs in (("inputs", inputs), ("op", plan.buffers)):
            for b in bufs:
                for r in plan.freed_before(b):
                    used[r.memory] -= placed[id(r)].per_bank_bytes
                    if id(r) in l1_addrs:
                        l1.release(l1_addrs.pop(id(r)), placed[id(r)].per_bank_bytes)
                a = placed[id(b)]
                before = used[b.memory]
                if before + a.per_bank_bytes > a.bank_bytes:
                    free = a.bank_bytes - before
                    self._oom(result, b, a, phase, before, free, "exhaustion")
                    result.reason = (f"{b.role} {list(b.shape)} {b.dtype} needs {a.per_bank_bytes:,} B "
                                     f"per bank, {free:,} B free of {a.bank_bytes:,}; {ESTIMATE_NOTE}")
                    return None
                used[b.memory] = before + a.per_bank_bytes
                if b.memory == "L1" and a.per_bank_bytes:
                    addr = l1.alloc(a.per_bank_bytes)
                    if addr is None:     # enough bytes free, but no hole holds it (a freed buffer above live ones)
                        self._oom(result, b, a, phase, before, l1.largest, "fragmentation")
                        result.reason = (f"{b.role} {list(b.shape)} {b.dtype} needs {a.per_bank_bytes:,} B per bank, "
                                         f"largest free block {l1.largest:,} B ({a.bank_bytes - before:,} B free); "
                                         f"{ESTIMATE_NOTE}")
                        return None
                    l1_addrs[id(b)] = addr
                clash = program_clash(plan, b, l1_below_buffers(l1, self.device), self.device)
                if clash:
                    result.status = "cb_overflow"
                    result.reason = f"{clash}; {ESTIMATE_NOTE}"
                    return None
        result.extra["extra_buffers"] = [b.role for b in plan.buffers if b.role != "output"]
        # the op's own buffers in allocation order: [role, memory, total bytes, per-bank bytes]
        result.extra["buffers"] = [[b.role, b.memory, placed[id(b)].total_bytes, placed[id(b)].per_bank_bytes]
                                   for b in plan.buffers]
        return used["L1"]
