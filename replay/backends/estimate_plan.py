"""What the estimate's per-op rules decide, and the registry that holds them.

Imports neither torch nor ttnn. A rule (replay/backends/estimate_rules.py) gets an OpCase: one signature's
named arguments and its input and output Buffers as a port places them. It returns a Plan: the op's own
buffers in allocation order (and what the op frees before each), its programs' circular buffers, or
skipped/unsupported with a reason. ``place`` is one Buffer's allocation, interleaved or sharded, in the
allocator model of replay/backends/footprint.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from replay.backends.devices import L1_SMALL_BYTES, DeviceSpec
from replay.backends.footprint import Allocation, allocate
from replay.mapping import Replay


@dataclass(frozen=True)
class EstimateSettings:
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
    cores: int = 0           # >0: height sharded on this many cores, rows split evenly (shape: all rows)


@dataclass
class OpCase:
    """One signature as the rules see it: named arguments, input and output tensors as placed."""
    op: str
    args: dict                                   # arg name -> tagged value
    inputs: list[Buffer]
    outputs: list[Buffer]
    settings: EstimateSettings
    device: DeviceSpec
    port: Replay | None = None                   # the ttnn calls a port makes (replay.mapping)


@dataclass
class CircularBuffer:
    """A static circular (dataflow) buffer an op's program places in the L1 of every core it runs on;
    ``after``: the buffer (the program's output) once allocated the program runs, its circular buffers
    then below the L1 buffers alive (replay/backends/estimate_cbs.py); None: not checked against them."""
    role: str
    page_bytes: int          # one entry
    entries: int
    after: Buffer | None = None
    # a program sized from the L1 free at its call (ttnn's get_max_l1_space): (role, page bytes) from the
    # per-core L1 below the lowest buffer once ``sized_at`` is allocated; page_bytes 0 until then
    sized_by: Callable[[int], tuple[str, int]] | None = None
    sized_at: Buffer | None = None


@dataclass
class Plan:
    """What a rule decides: the op's buffers (outputs first) and its programs' circular buffers, or
    skipped/unsupported with a reason."""
    buffers: list[Buffer] = field(default_factory=list)
    status: str = ""                             # "" (allocate), "skipped" or "unsupported"
    reason: str = ""
    ttnn_call: str = ""
    circular_buffers: list[CircularBuffer] = field(default_factory=list)
    # (buffer, earlier buffers of this plan the op frees just before allocating it)
    frees: list[tuple[Buffer, tuple[Buffer, ...]]] = field(default_factory=list)
    # per-core bytes of the last program's static circular buffers: they must fit in each core's L1
    # below the L1 buffers alive when it runs (tt-metal: "clash with L1 buffers" / "grow to")
    l1_circular_bytes: int = 0

    def size_programs(self, buf: Buffer, l1_below_bytes: int) -> None:
        """Size the circular buffers of programs sized from the free L1 once ``buf`` is allocated, given the
        ``l1_below_bytes`` per core below the lowest L1 buffer then; once (ttnn's program cache keeps them)."""
        for cb in self.circular_buffers:
            if cb.sized_by is not None and cb.sized_at is buf:
                cb.role, cb.page_bytes = cb.sized_by(l1_below_bytes)
                cb.sized_by = None

    def programs_after(self, buf: Buffer) -> list[tuple[str, int]]:
        """(program, per-core circular-buffer bytes) of each program that runs once ``buf`` is allocated."""
        total: dict[str, int] = {}
        for cb in self.circular_buffers:
            if cb.after is buf:
                total[cb.role] = total.get(cb.role, 0) + cb.page_bytes * cb.entries
        return [(role, n) for role, n in total.items() if n]

    def freed_before(self, buf: Buffer) -> tuple[Buffer, ...]:
        """The plan's buffers the op frees just before allocating ``buf``."""
        return next((freed for b, freed in self.frees if b is buf), ())


def circular_buffer_overflow(plan: Plan, device: DeviceSpec) -> str:
    """Why tt-metal refuses the plan's circular buffers, in its words, or "" when it does not: an entry
    larger than a core's L1 above the firmware (the allocatable L1 bank, L1_SMALL included)."""
    for cb in plan.circular_buffers:
        if cb.page_bytes > device.l1_bank_bytes:
            return (f"{cb.role}: required DFB entry size ({cb.page_bytes:,} B) exceeds per-core L1 capacity "
                    f"({device.l1_bank_bytes:,} B)")
    return ""


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


def plan_of_events(events: list[tuple[str, Buffer]], **kw) -> Plan:
    """A Plan from an allocation sequence: ("alloc", buffer) and ("free", buffer) in the order ttnn
    makes them (frees after the last allocation change no verdict)."""
    buffers, frees, pending = [], [], []
    for kind, b in events:
        if kind == "free":
            pending.append(b)
            continue
        buffers.append(b)
        if pending:
            frees.append((b, tuple(pending)))
            pending = []
    return Plan(buffers, frees=frees, **kw)


def place(b: Buffer, device: DeviceSpec, l1_small_bytes: int = L1_SMALL_BYTES) -> Allocation:
    """The allocation of one buffer: interleaved over every bank, or (b.cores) one shard of rows per core."""
    a = allocate(b.shape, b.dtype, b.layout, b.memory, device, l1_small_bytes)
    if not b.cores:
        return a
    rows = -(-a.pages // b.cores)
    return replace(a, num_banks=b.cores, per_bank_bytes=rows * a.page_bytes, total_bytes=b.cores * rows * a.page_bytes,
                   pages=b.cores * rows)
