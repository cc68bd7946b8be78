"""The registry: aten overload name -> mapping function (or skip/unsupported reason)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from replay.mapping.case import Case
from replay.mapping.plan import NotReplayed, Port, Replay, PortSettings


@dataclass
class Mapping:
    """One registry entry: what a port does for an aten overload, and the function that plans it."""
    op: str
    fn: Callable[[Port, Case], None] | None
    ttnn: str                     # what it becomes, for the table
    kind: str                     # mapped | skip | unsupported
    reason: str = ""


# aten overload name -> its entry; filled by the family modules on import, read through plan_replay and the tables
MAPPINGS: dict[str, Mapping] = {}
NO_MAPPING = "no mapping in optrace yet: add one in replay/mapping/"
# namespace.op.overload, as torch names an OpOverload ("aten.add.Tensor", "aten.view.default")
_OVERLOAD_NAME = re.compile(r"[a-z_][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")


def _add(entry: Mapping, registering: str) -> None:
    """Put one entry in MAPPINGS; refuses a target that is not an overload name, or one already registered."""
    if not isinstance(entry.op, str) or not _OVERLOAD_NAME.fullmatch(entry.op):
        raise ValueError(f"{registering}: expected an aten overload name like 'aten.add.Tensor', got {entry.op!r}")
    if entry.op in MAPPINGS:
        raise RuntimeError(f"{registering}: duplicate registration for {entry.op} "
                           f"(already {MAPPINGS[entry.op].kind})")
    MAPPINGS[entry.op] = entry


def register(*ops: str, ttnn: str):
    """Register a mapping function for these aten overloads."""
    def deco(fn):
        for op in ops:
            _add(Mapping(op, fn, ttnn, "mapped"), f"register({fn.__name__})")
        return fn
    return deco


def register_skip(reason: str, *ops: str) -> None:
    """Register ops a port never issues, with the reason (a skipped result, not a failure)."""
    for op in ops:
        _add(Mapping(op, None, "-", "skip", reason), "register_skip")


def register_unsupported(reason: str, *ops: str) -> None:
    """Register ops ttnn cannot express, with the reason a user can act on."""
    for op in ops:
        _add(Mapping(op, None, "-", "unsupported", reason), "register_unsupported")


def plan_replay(case: Case, settings: PortSettings | None = None) -> Replay:
    """Translate one captured signature into its Replay (mapped, skip or unsupported)."""
    settings = settings or PortSettings()
    m = MAPPINGS.get(case.op)
    if m is None:
        return Replay(op=case.op, status="unsupported", reason=NO_MAPPING)
    if m.kind != "mapped":
        return Replay(op=case.op, status=m.kind, reason=m.reason)
    port = Port(case, settings)
    try:
        m.fn(port, case)
    except NotReplayed as e:
        return Replay(op=case.op, status=e.status, reason=e.reason)
    return port.finish()


def table_rows() -> list[tuple[str, str, str]]:
    """The registry as (aten op, ttnn call or reason, status) rows, mapped ops first."""
    return [(m.op, m.ttnn if m.kind == "mapped" else m.reason, m.kind) for m in sorted(
        MAPPINGS.values(), key=lambda m: (m.kind != "mapped", m.op))]


def print_table(file=None) -> None:
    """Print the registry: aten op -> ttnn call (or reason) -> status."""
    rows = table_rows()
    w = max(len(r[0]) for r in rows)
    for op, what, kind in rows:
        print(f"{op:<{w}}  {kind:<11}  {what}", file=file)
    counts = {k: sum(1 for r in rows if r[2] == k) for k in ("mapped", "skip", "unsupported")}
    print(f"{len(rows)} aten overloads: " + ", ".join(f"{v} {k}" for k, v in counts.items()), file=file)


def mapping_table(op_names: list[str]) -> list[dict]:
    """For each aten op: {"op", "status" (mapped|skip|unsupported), "ttnn" (the call, or the reason)}."""
    rows = []
    for op in op_names:
        m = MAPPINGS.get(op)
        if m is None:
            rows.append({"op": op, "status": "unsupported", "ttnn": NO_MAPPING})
        else:
            rows.append({"op": op, "status": m.kind, "ttnn": m.ttnn if m.kind == "mapped" else m.reason})
    return rows
