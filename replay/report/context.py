"""The report's in-context section: a --mode model results set (one model) as a ContextModel.

Reads what replay.context.plan journaled: the header's ``context`` summary, and per signature
``extra.context`` and ``extra.isolated``.
"""
from __future__ import annotations

from typing import Iterable

from replay.context.plan import DIFFERENCE_REASONS
from replay.report.data import ContextModel, ContextRow
from replay.report.remedies import remedy_text
from replay.results import BLOCKING, ReplayResult


def context_rows(results: Iterable[ReplayResult], shapes: dict[str, str]) -> tuple[list[ContextRow], int]:
    """A row per signature failing alone or in context, by first call; and how many signatures pass
    alone but fail in context (cascades aside)."""
    rows, flips = [], 0
    for r in results:
        ctx, iso = r.extra.get("context"), r.extra.get("isolated")
        if not isinstance(ctx, dict) or not isinstance(iso, dict):
            continue
        if r.status not in BLOCKING and iso.get("status") not in BLOCKING:
            continue
        why = ctx.get("why", "")
        flips += r.status in BLOCKING and iso.get("status") not in BLOCKING and why != "cascade"
        rows.append(ContextRow(signature_id=r.signature_id, op=r.op, input_shapes=shapes.get(r.signature_id, ""),
                               first_call=ctx.get("first_call", -1), module_path=ctx.get("module_path", ""),
                               isolated_status=iso.get("status", "not_run"), context_status=r.status,
                               failing_calls=len(ctx.get("failing_calls") or []), why=why,
                               why_text=DIFFERENCE_REASONS.get(why, why),
                               requested_bytes=r.oom.requested_bytes if r.oom else iso.get("requested_bytes"),
                               remedy=remedy_text(r)))
    rows.sort(key=lambda x: x.first_call)
    return rows, flips


def _first_failure_text(first: int | None, rows: list[ContextRow]) -> str:
    if first is None:
        return "none"
    row = next((x for x in rows if x.first_call == first), None)
    if row is None:
        return f"call {first}"
    return (f"call {first} in {row.module_path or '(model)'}: {row.op} {row.input_shapes} -> "
            f"{row.context_status} (alone: {row.isolated_status}); {row.why_text}")


def context_models(header: dict, results: Iterable[ReplayResult], shapes: dict[str, str]) -> list[ContextModel]:
    """The report's in-context section for a --mode model results set (one model)."""
    results = list(results)
    s = header.get("context") or {}
    rows, flips = context_rows(results, shapes)
    first = s.get("first_failure")
    allocator = next((r.extra["context"].get("allocator") for r in results
                      if isinstance(r.extra.get("context"), dict) and r.extra["context"].get("first_call") == first),
                     None)
    return [ContextModel(model=str(header.get("model", s.get("model", ""))),
                         backend=str(s.get("backend", header.get("backend"))),
                         peak_dram_bytes=int(s.get("peak_dram_bytes", 0)), peak_dram_call=int(s.get("peak_dram_call", -1)),
                         peak_l1_bytes=int(s.get("peak_l1_bytes", 0)), peak_l1_call=int(s.get("peak_l1_call", -1)),
                         resident_bytes=dict(s.get("resident_bytes") or {}), first_failure=first,
                         first_failure_text=_first_failure_text(first, rows), allocator=allocator,
                         failing_calls=int(s.get("failing_calls", 0)), cascaded_calls=int(s.get("cascaded_calls", 0)),
                         isolated_pass_context_fail=flips, rows=rows)]
