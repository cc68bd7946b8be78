"""One report over several results sets: `replay run --mode model` over several traces.

Each in-context run is its own results set (a signature's verdict in context belongs to one model),
so each model is attributed and reconciled on its own (build.build_report); ``combine_reports`` then
puts those reports side by side: every model's page, the in-context sections, and the cross-model
views (ops x models matrix, fix ranking, shared signatures, memory limits) recomputed over all of
them. A signature two models share may have two verdicts in context; the cross-model rows show the
worse. Imports neither torch nor ttnn.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from capture.schema import Trace
from replay.report.attribution import NOT_RUN, NOT_RUN_NOTE, is_blocked, status_order, worst_status
from replay.report.groups import fix_by_op, fix_order, group_summaries
from replay.report.data import MemoryLimit, Provenance, Report, SignatureRow
from replay.results import ReplayResult
from replay.shapes import format_shapes, input_shapes


def _merge_rows(rows: list[SignatureRow]) -> list[SignatureRow]:
    """Signature rows of several reports, one per signature: models and calls added, the worse status kept."""
    by_id: dict[str, SignatureRow] = {}
    for r in rows:
        cur = by_id.get(r.signature_id)
        if cur is None:
            by_id[r.signature_id] = replace(r, models=list(r.models), calls_by_model=dict(r.calls_by_model))
            continue
        for m, n in r.calls_by_model.items():
            if m not in cur.calls_by_model:
                cur.models.append(m)
                cur.calls_by_model[m] = n
                cur.calls += n
        if worst_status([cur.status, r.status]) != cur.status:
            cur.status, cur.reason, cur.requested_bytes, cur.buffer_type = \
                r.status, r.reason, r.requested_bytes, r.buffer_type
    return sorted(by_id.values(), key=lambda r: (-len(r.models), -r.calls, r.op, r.signature_id))


def _limits(reports: list[Report]) -> list[MemoryLimit]:
    """Per op: the largest pass and the smallest memory failure over every report."""
    by_op: dict[str, MemoryLimit] = {}
    for rep in reports:
        for lim in rep.memory_limits:
            cur = by_op.get(lim.op)
            if cur is None:
                by_op[lim.op] = replace(lim)
                continue
            cur.passing += lim.passing
            cur.failing += lim.failing
            if lim.largest_pass_bytes is not None and (cur.largest_pass_bytes or -1) < lim.largest_pass_bytes:
                cur.largest_pass_bytes, cur.largest_pass_shape, cur.largest_pass_signature = \
                    lim.largest_pass_bytes, lim.largest_pass_shape, lim.largest_pass_signature
            if lim.smallest_fail_bytes is not None and (cur.smallest_fail_bytes is None
                                                        or lim.smallest_fail_bytes < cur.smallest_fail_bytes):
                cur.smallest_fail_bytes, cur.smallest_fail_shape, cur.smallest_fail_signature, \
                    cur.smallest_fail_status = (lim.smallest_fail_bytes, lim.smallest_fail_shape,
                                                lim.smallest_fail_signature, lim.smallest_fail_status)
            cur.overlap = bool(cur.largest_pass_bytes is not None and cur.smallest_fail_bytes is not None
                               and cur.smallest_fail_bytes < cur.largest_pass_bytes)
    return sorted(by_op.values(), key=lambda r: (r.smallest_fail_bytes or 0, r.op))


def _provenance(reports: list[Report]) -> Provenance:
    first = reports[0].provenance
    return replace(first, traces=[t for r in reports for t in r.provenance.traces],
                   mock=any(r.provenance.mock for r in reports),
                   note=next((r.provenance.note for r in reports if r.provenance.note), first.note))


def shared_signatures(parts: list[tuple[Trace, dict[str, ReplayResult]]]) -> list[SignatureRow]:
    """Signatures several models use, from each model's trace and its own results (by signature id);
    each row shows the worse verdict."""
    users: dict[str, list[tuple[str, int, ReplayResult | None]]] = defaultdict(list)
    sigs = {}
    for trace, results in parts:
        for sig in trace.signatures:
            users[sig.id].append((trace.model_name, sig.count, results.get(sig.id)))
            sigs.setdefault(sig.id, sig)
    rows = []
    for sid, used in users.items():
        if len(used) < 2:
            continue
        status = worst_status([r.status if r else NOT_RUN for _, _, r in used])
        r = next((r for _, _, r in used if (r.status if r else NOT_RUN) == status), None)
        rows.append(SignatureRow(signature_id=sid, op=sigs[sid].op, input_shapes=format_shapes(input_shapes(sigs[sid])),
                                 status=status, reason=r.reason if r else NOT_RUN_NOTE, calls=sum(n for _, n, _ in used),
                                 models=[m for m, _, _ in used], calls_by_model={m: n for m, n, _ in used},
                                 requested_bytes=r.oom.requested_bytes if r and r.oom else None,
                                 buffer_type=r.oom.buffer_type if r and r.oom else "",
                                 ttnn_call=r.ttnn_call if r else "", error_signature=r.error_signature if r else ""))
    return sorted(rows, key=lambda r: (-len(r.models), -r.calls, r.op, r.signature_id))


def combine_reports(reports: list[Report], shared: list[SignatureRow] | None = None) -> Report:
    """Several reports (each over its own results set and models) as one; ``shared``: the signatures
    several models use (every report holds one model, so none of them knows), else none."""
    if len(reports) == 1:
        return reports[0]
    models = [m for r in reports for m in r.models]
    names = [m.model for m in models]
    if len(set(names)) != len(names):
        raise ValueError("combine_reports: a model appears in two reports; combine reports over distinct models")
    matrix: dict = {}
    for r in reports:
        for op, cells in r.matrix.items():
            matrix.setdefault(op, {}).update(cells)
    ops = sorted(matrix, key=lambda op: (-sum(is_blocked(c.status) for c in matrix[op].values()),
                                         -sum(c.calls for c in matrix[op].values()), op))
    fix = _merge_rows([row for r in reports for row in r.fix_by_signature])
    statuses: dict[str, str] = {}
    for r in reports:
        statuses.update(r.statuses)
    statuses = {s: statuses[s] for s in status_order(statuses)}
    return Report(provenance=_provenance(reports), statuses=statuses, models=models, ops=ops, matrix=matrix,
                  shared=shared or [], fix_by_signature=fix, fix_by_op=fix_by_op(fix, names),
                  memory_limits=_limits(reports), orphan_results=sorted({o for r in reports for o in r.orphan_results}),
                  warnings=[w for r in reports for w in r.warnings], context=[c for r in reports for c in r.context],
                  remedies=[x for r in reports for x in r.remedies], headroom=[h for r in reports for h in r.headroom],
                  groups=group_summaries(models, matrix), fix_order=fix_order(matrix, names))
