"""The zoo's views: models grouped by task and family, summaries per group, and the fix order.

Imports neither torch nor ttnn. A trace names its model's ``task`` (classification, detection, ...)
and ``family`` (resnet, yolov8, ...) in ``header.model``; absent, they are "unknown". Over a whole
zoo the useful question is not which op blocks most models but which fixes *unblock* them: a model
is unblocked when every op failing in it is fixed. ``fix_order`` answers it greedily: fix first the op
that alone unblocks the most models (with the fixes before it), then the next.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

from capture.schema import Trace
from replay.report.attribution import is_blocked, is_failing, status_order
from replay.report.data import FixStep, GroupSummary, MatrixCell, ModelReport, OpFix, SignatureRow

UNKNOWN = "unknown"
TOP_OPS = 5   # blocking ops named per group


def model_group(trace: Trace) -> tuple[str, str]:
    """(task, family) of a trace's model, "unknown" where the header does not say."""
    model = trace.header.get("model") if isinstance(trace.header.get("model"), dict) else {}
    task, family = model.get("task"), model.get("family")
    return (str(task) if task else UNKNOWN), (str(family) if family else UNKNOWN)


def failing_ops(matrix: dict[str, dict[str, MatrixCell]]) -> dict[str, set[str]]:
    """Model -> the ops with a failing call in it (what a fix must remove before the model runs)."""
    out: dict[str, set[str]] = defaultdict(set)
    for op, cells in matrix.items():
        for model, cell in cells.items():
            if any(is_failing(s) and is_blocked(s) for s in cell.statuses):
                out[model].add(op)
    return out


def natural(name: str) -> list:
    """A sort key that puts resnet18 before resnet101 and swin_t-2 before swin_t-10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def grouped(models: list[ModelReport]) -> list[ModelReport]:
    """Models ordered by task, then family, then name (the matrix's columns and the model index)."""
    return sorted(models, key=lambda m: (m.task == UNKNOWN, m.task, m.family == UNKNOWN, m.family, natural(m.model)))


def group_summaries(models: list[ModelReport], matrix: dict[str, dict[str, MatrixCell]]) -> list[GroupSummary]:
    """One summary per task and one per family: models, how many are blocked, calls, the ops blocking most."""
    ops_of = failing_ops(matrix)
    out = []
    for kind in ("task", "family"):
        members: dict[str, list[ModelReport]] = defaultdict(list)
        for m in models:
            members[m.task if kind == "task" else m.family].append(m)
        for name, ms in members.items():
            blocking = Counter(op for m in ms for op in ops_of.get(m.model, ()))
            out.append(GroupSummary(kind=kind, name=name, task=ms[0].task if kind == "family" else name,
                                    models=[m.model for m in ms], calls=sum(m.calls for m in ms),
                                    blocked_calls=sum(m.blocked_calls for m in ms),
                                    models_blocked=sum(m.blocked_calls > 0 for m in ms),
                                    models_failing=sum(bool(ops_of.get(m.model)) for m in ms),
                                    top_ops=dict(sorted(blocking.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_OPS])))
    return sorted(out, key=lambda g: (g.kind != "task", g.task == UNKNOWN, g.task, g.name == UNKNOWN,
                                      -g.models_blocked, g.name))


def fix_order(matrix: dict[str, dict[str, MatrixCell]], models: list[str]) -> list[FixStep]:
    """Ops in the order that unblocks the most models soonest: each step fixes the op that, with the
    fixes before it, leaves the most models with no failing op (ties: the op blocking most models)."""
    left = {m: set(ops) for m, ops in failing_ops(matrix).items() if ops}
    blocks = Counter(op for ops in left.values() for op in ops)
    steps, cleared = [], 0
    while left:
        unblocks: dict[str, list[str]] = defaultdict(list)
        for m, ops in left.items():
            if len(ops) == 1:
                unblocks[next(iter(ops))].append(m)
        pending = Counter(op for ops in left.values() for op in ops)
        op = min(pending, key=lambda o: (-len(unblocks.get(o, [])), -pending[o], -blocks[o], o))
        now = [m for m in models if m in unblocks.get(op, [])]
        cleared += len(now)
        steps.append(FixStep(op=op, models_blocked=blocks[op], unblocks=now, unblocked_total=cleared,
                             still_blocked=len(left) - len(now)))
        for m in list(left):
            left[m].discard(op)
            if not left[m]:
                del left[m]
    return steps


def fix_by_op(fix: list[SignatureRow], models: list[str]) -> list[OpFix]:
    """Every op with a failing signature, with all the models (in ``models``' order) and calls they block,
    most models blocked first."""
    blocked: dict[str, set[str]] = defaultdict(set)
    calls: Counter = Counter()
    sigs: Counter = Counter()
    statuses: dict[str, Counter] = defaultdict(Counter)
    for row in fix:
        blocked[row.op] |= set(row.models)
        calls[row.op] += row.calls
        sigs[row.op] += 1
        statuses[row.op][row.status] += row.calls
    out = [OpFix(op=op, models=[m for m in models if m in blocked[op]], calls=calls[op], failing_signatures=sigs[op],
                 statuses={s: statuses[op][s] for s in status_order(statuses[op])}) for op in blocked]
    return sorted(out, key=lambda f: (-len(f.models), -f.calls, f.op))
