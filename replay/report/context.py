"""The report's in-context section: a --mode model results set (one model) as a ContextModel.

Reads what replay.context.plan journaled: the header's ``context`` summary, and per signature
``extra.context`` and ``extra.isolated``; and what replay.studies.context_remedies found (the
header's ``context_remedy``): per failing call the change that lets it pass, checked by a replay.
"""
from __future__ import annotations

from typing import Iterable

from replay.context.plan import DIFFERENCE_REASONS
from replay.report.data import ContextModel, ContextRemedyRow, ContextRow
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


def describe_changes(changes: dict) -> list[str]:
    """A ContextChanges (as stored) in a user's words, one line per kind of change."""
    out = []
    if changes.get("weights_dram"):
        out.append("hold every weight (parameters and buffers) in DRAM")
    if changes.get("weights_dtype"):
        out.append(f"hold float weights in {changes['weights_dtype']}")
    if changes.get("dram_tensors"):
        out.append(f"hold {len(changes['dram_tensors'])} activations in DRAM")
    if changes.get("free_early"):
        out.append(f"free {len(changes['free_early'])} tensors right after their own last use")
    if changes.get("fold_calls"):
        out.append("fold the trailing 1s of calls " + ", ".join(map(str, changes["fold_calls"][:20])))
    return out


def remedy_verdict(remedy: dict, device: str) -> str:
    """What replaying the model again with every change found showed, naming where it ran."""
    on = {"mock": f"the mock {device} (ttnn's allocator and op code, no arithmetic)", "real": f"a real {device}",
          "estimate": "the estimate (no device)"}.get(remedy.get("verified_on", ""), remedy.get("verified_on", "?"))
    if remedy.get("passes"):
        return f"replayed again with every change applied, on {on}: no call fails"
    return (f"replayed again with every change applied, on {on}: {remedy.get('verified_failing_calls')} calls still "
            f"fail, the first at call {remedy.get('verified_first_failure')}")


def remedy_rows(remedy: dict) -> list[ContextRemedyRow]:
    """One row per call the search looked at, in call order."""
    return [ContextRemedyRow(call=c["call"], op=c["op"], module_path=c.get("module_path", ""), status=c["status"],
                             remedy=c["remedy"], bytes_freed=c.get("bytes_freed"), fixed_by=c.get("fixed_by"),
                             passes=bool(c.get("passes")), found_on=c.get("found_on", ""),
                             why_none=c.get("why_none", "")) for c in remedy.get("calls", [])]


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
                         isolated_pass_context_fail=flips, rows=rows, **_remedy_fields(header))]


def _remedy_fields(header: dict) -> dict:
    remedy = header.get("context_remedy")
    if not isinstance(remedy, dict):
        return {}
    return {"remedies": remedy_rows(remedy), "remedy_changes": describe_changes(remedy.get("changes") or {}),
            "remedy_verdict": remedy_verdict(remedy, str(header.get("device", ""))),
            "remedy_passes": bool(remedy.get("passes"))}
