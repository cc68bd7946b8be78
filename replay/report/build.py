"""Per-model impact reports: what fails, where in each model, and which fix unblocks most.

Imports neither torch nor ttnn, so reports render anywhere. ``build_report`` turns traces plus one
results set into a ``Report`` (plain dataclasses, no formatting); ``write_report`` writes it as
HTML, Markdown, a failures CSV and JSON; ``render_terminal`` gives one compact table per model.
The data model is data.py; the accounting attribution.py; the formats live in html.py and text.py.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from typing import Callable

from capture.atomic import write_atomic
from capture.schema import Trace
from replay.lineage import FOLDED_REASON
from replay.report.attribution import (FOLDED, MEMORY_FAILURES, NOT_RUN, NOT_RUN_NOTE, REPORT_STATUSES, Attribution,
                                       ModelAttribution, attribute, is_blocked, is_failing, status_order,
                                       worst_status)
from replay.report.context import context_models
from replay.report.data import (FailureRow, FirstBlock, Folded, FoldedUpload, LayerRow, MatrixCell, MemoryLimit,
                                ModelReport, OpFix, Provenance, ReasonRow, Report, SignatureRow, TensorRow)
from replay.report.groups import UNKNOWN, fix_by_op, fix_order, group_summaries, model_group
from replay.report.html import render_html
from replay.report.remedies import remedy_rows, remedy_text
from replay.report.text import render_csv, render_markdown
from replay.report.text import render_terminal as render_text_terminal
from replay.results import ESTIMATE_NOTE, MOCK_NOTE, ReplayResult
from replay.shapes import format_shapes, input_shapes

TOP_N = 10  # rows in per-model "top" tables


# ---------------------------------------------------------------------------------------------
# Building

def provenance(header: dict, traces: list[Trace], results: list[ReplayResult]) -> Provenance:
    """Provenance from the results header, falling back to the results and the trace headers."""
    versions = header.get("versions") if isinstance(header.get("versions"), dict) else {}

    def version(name: str) -> str:
        v = header.get(name) or versions.get(name)
        if not v and name in ("torch", "optrace"):  # traces record what captured them
            found = sorted({str(t.header.get("versions", {}).get(name)) for t in traces
                            if t.header.get("versions", {}).get(name)})
            v = ", ".join(found)
        return str(v) if v else "unknown"

    mock = bool(header.get("mock")) or any(r.mock for r in results)
    backend = str(header.get("backend") or ", ".join(sorted({r.backend for r in results})) or "unknown")
    device = str(header.get("device") or ", ".join(sorted({r.device for r in results})) or "unknown")
    note = MOCK_NOTE if mock else ESTIMATE_NOTE if backend == "estimate" else ""
    ttnn = version("ttnn")
    if ttnn == "unknown" and backend in ("estimate", "torch"):
        ttnn = f"not used ({backend} backend)"
    listed = header.get("traces") if isinstance(header.get("traces"), list) else None
    if listed is None:
        listed = [{"path": t.path, "model": t.model_name, "sha256": ""} for t in traces]
    return Provenance(optrace=version("optrace"), ttnn=ttnn, torch=version("torch"), backend=backend, device=device,
                      mock=mock, note=note, dtype=str(header.get("dtype") or "unknown"),
                      memory=str(header.get("memory") or "unknown"),
                      traces=[dict(t) for t in listed if isinstance(t, dict)],
                      created_utc=str(header.get("created_utc") or header.get("started_utc") or ""))


def _result_bytes(r: ReplayResult | None) -> tuple[int, int]:
    if r is None:
        return 0, 0
    ts = r.inputs + r.outputs
    return sum(t.logical_bytes for t in ts), sum(t.padded_bytes for t in ts)


def _largest_footprint(r: ReplayResult):
    ts = r.inputs + r.outputs
    return max(ts, key=lambda t: t.padded_bytes) if ts else None


def _by_fix_rank(rows: list[SignatureRow]) -> list[SignatureRow]:
    """Most models first, then most calls."""
    return sorted(rows, key=lambda r: (-len(r.models), -r.calls, r.op, r.signature_id))


class _Builder:
    """The report's views of one Attribution: a ModelReport per model, then the cross-model tables."""

    def __init__(self, att: Attribution, prov: Provenance):
        self.att = att
        self.prov = prov
        self.shapes = {sid: format_shapes(input_shapes(s)) for sid, s in att.signatures.items()}

    def reason(self, sid: str) -> str:
        r = self.att.results.get(sid)
        return NOT_RUN_NOTE if r is None else r.reason

    def sig_row(self, sid: str, calls_by_model: dict[str, int]) -> SignatureRow:
        r = self.att.results.get(sid)
        oom = r.oom if r else None
        return SignatureRow(signature_id=sid, op=self.att.signatures[sid].op, input_shapes=self.shapes[sid],
                            status=self.att.status(sid), reason=self.reason(sid), calls=sum(calls_by_model.values()),
                            models=list(calls_by_model), calls_by_model=calls_by_model,
                            requested_bytes=oom.requested_bytes if oom else None,
                            buffer_type=oom.buffer_type if oom else "", ttnn_call=r.ttnn_call if r else "",
                            error_signature=r.error_signature if r else "")

    # -- one model ---------------------------------------------------------------------------

    def model(self, m: ModelAttribution, group: tuple[str, str] = (UNKNOWN, UNKNOWN)) -> ModelReport:
        by_status = m.by_status()
        blocked = sum(n for s, n in by_status.items() if is_blocked(s))
        sig_calls = m.calls_of()
        tensors = self.tensor_rows(_on_device(sig_calls))
        return ModelReport(model=m.model, trace_path=m.trace_path, trace_sha256=m.trace_sha256, calls=len(m.calls),
                           unique_signatures=len(m.signature_ids), by_status=by_status, blocked_calls=blocked,
                           blocked_pct=round(100.0 * blocked / len(m.calls), 2) if m.calls else 0.0,
                           first_block=self.first_block(m), top_blocking=self.top_blocking(m, sig_calls),
                           reasons=self.reason_rows(m), layers=self.layer_rows(m),
                           largest_tensors=sorted(tensors, key=lambda t: (-t.padded_bytes, t.signature_id,
                                                                          t.role))[:TOP_N],
                           worst_padding=_worst_padding(tensors), failures=self.failure_rows(m),
                           folded=folded_summary(m), task=group[0], family=group[1])

    def first_block(self, m: ModelAttribution) -> FirstBlock | None:
        """The first failing call in execution order, with how many calls before it had no result."""
        not_run_before = 0
        for c in m.calls:
            if c.status == NOT_RUN:
                not_run_before += 1
            elif is_failing(c.status):
                r = self.att.results[c.signature_id]
                return FirstBlock(call_index=c.index, module_path=c.module_path, module_class=c.module_class,
                                  op=c.op, input_shapes=self.shapes[c.signature_id], status=c.status,
                                  reason=r.reason, signature_id=c.signature_id,
                                  requested_bytes=r.oom.requested_bytes if r.oom else None,
                                  buffer_type=r.oom.buffer_type if r.oom else "", not_run_before=not_run_before)
        return None

    def top_blocking(self, m: ModelAttribution, sig_calls: dict[str, list]) -> list[SignatureRow]:
        """The model's failing signatures with the most calls."""
        sig_calls = _on_device(sig_calls)
        failing = [sid for sid in sig_calls if is_failing(self.att.status(sid))]
        failing.sort(key=lambda sid: (-len(sig_calls[sid]), sig_calls[sid][0].index))
        return [self.sig_row(sid, {m.model: len(sig_calls[sid])}) for sid in failing[:TOP_N]]

    def reason_rows(self, m: ModelAttribution) -> list[ReasonRow]:
        """Calls that did not pass, grouped by (status, reason)."""
        reasons: dict[tuple[str, str], list] = defaultdict(lambda: [0, set()])
        for c in m.calls:
            if c.status != "pass":
                entry = reasons[(c.status, FOLDED_REASON if c.status == FOLDED else self.reason(c.signature_id))]
                entry[0] += 1
                entry[1].add(c.signature_id)
        order = status_order(s for s, _ in reasons)
        return sorted((ReasonRow(status=s, reason=why, calls=n, signatures=len(sids))
                       for (s, why), (n, sids) in reasons.items()),
                      key=lambda row: (order.index(row.status), -row.calls, row.reason))

    def layer_rows(self, m: ModelAttribution) -> list[LayerRow]:
        """Every module path with a blocked call, in execution order, with its calls per status."""
        first: dict[str, tuple[str, int]] = {}
        counts: dict[str, Counter] = defaultdict(Counter)
        for c in m.calls:
            first.setdefault(c.module_path, (c.module_class, c.index))
            counts[c.module_path][c.status] += 1
        return [LayerRow(module_path=path, module_class=cls, first_call=index, calls=sum(counts[path].values()),
                         statuses={s: counts[path][s] for s in status_order(counts[path])})
                for path, (cls, index) in first.items() if any(is_blocked(s) for s in counts[path])]

    def tensor_rows(self, sig_calls: dict[str, list]) -> list[TensorRow]:
        """Every input and output footprint of the model's signatures."""
        tensors = []
        for sid, calls in sig_calls.items():
            r = self.att.results.get(sid)
            if r is None:
                continue
            for role, ts in (("input", r.inputs), ("output", r.outputs)):
                for i, t in enumerate(ts):
                    blowup = t.padded_bytes / t.logical_bytes if t.logical_bytes else 1.0
                    tensors.append(TensorRow(signature_id=sid, op=r.op, role=f"{role} {i}", shape=list(t.shape),
                                             padded_shape=list(t.padded_shape), dtype=t.dtype, layout=t.layout,
                                             memory=t.memory, logical_bytes=t.logical_bytes,
                                             padded_bytes=t.padded_bytes, blowup=round(blowup, 3), status=r.status,
                                             calls=len(calls)))
        return tensors

    def failure_rows(self, m: ModelAttribution) -> list[FailureRow]:
        """One row per blocked (signature, module path), by first call: the rows of failures.csv."""
        groups: dict[tuple[str, str], list] = {}
        for c in m.calls:
            if is_blocked(c.status):
                groups.setdefault((c.signature_id, c.module_path), []).append(c)
        return [self.failure_row(m.model, sid, path, calls)
                for (sid, path), calls in sorted(groups.items(), key=lambda kv: kv[1][0].index)]

    def failure_row(self, model: str, sid: str, path: str, calls: list) -> FailureRow:
        r = self.att.results.get(sid)
        oom = r.oom if r else None
        logical, padded = _result_bytes(r)
        return FailureRow(model=model, module_path=path, signature_id=sid, op=calls[0].op,
                          input_shapes=self.shapes[sid], calls=len(calls), first_call=calls[0].index,
                          status=calls[0].status, reason=self.reason(sid), buffer_type=oom.buffer_type if oom else "",
                          requested_bytes=oom.requested_bytes if oom else None,
                          per_bank_bytes=oom.per_bank_bytes if oom else None,
                          num_banks=oom.num_banks if oom else None, oom_cause=oom.cause if oom else "",
                          device=r.device if r else self.prov.device, mock=r.mock if r else self.prov.mock,
                          backend=r.backend if r else self.prov.backend, logical_bytes=logical, padded_bytes=padded,
                          remedy=remedy_text(r))

    # -- across models -----------------------------------------------------------------------

    def matrix(self) -> tuple[list[str], dict[str, dict[str, MatrixCell]]]:
        """Ops x models: the ops (most blocked models, then most calls, first) and their cells."""
        matrix: dict[str, dict[str, MatrixCell]] = {}
        for m in self.att.models:
            per_op: dict[str, Counter] = defaultdict(Counter)
            for c in m.calls:
                per_op[c.op][c.status] += 1
            for op, counts in per_op.items():
                matrix.setdefault(op, {})[m.model] = MatrixCell(
                    calls=sum(counts.values()), status=worst_status(counts),
                    statuses={s: counts[s] for s in status_order(counts)})
        ops = sorted(matrix, key=lambda op: (-sum(is_blocked(c.status) for c in matrix[op].values()),
                                             -sum(c.calls for c in matrix[op].values()), op))
        return ops, matrix

    def signature_tables(self) -> tuple[list[SignatureRow], list[SignatureRow]]:
        """(signatures shared by several models, failing signatures), both in fix-ranking order."""
        calls_by: dict[str, dict[str, int]] = defaultdict(dict)
        device_calls_by: dict[str, dict[str, int]] = defaultdict(dict)   # folded calls are no fix's to make
        for m in self.att.models:
            for sid, calls in m.calls_of().items():
                calls_by[sid][m.model] = len(calls)
            for sid, calls in _on_device(m.calls_of()).items():
                device_calls_by[sid][m.model] = len(calls)
        shared = [self.sig_row(sid, cbm) for sid, cbm in calls_by.items() if len(cbm) > 1]
        fix = [self.sig_row(sid, cbm) for sid, cbm in device_calls_by.items() if is_failing(self.att.status(sid))]
        return _by_fix_rank(shared), _by_fix_rank(fix)

    def fix_by_op(self, fix: list[SignatureRow]) -> list[OpFix]:
        """Every op with a failing signature, with all the models and calls they block."""
        return fix_by_op(fix, [m.model for m in self.att.models])

    def memory_limits(self) -> list[MemoryLimit]:
        """Per op that ran out of memory: its largest passing and smallest failing tensor."""
        per_op: dict[str, dict[str, list]] = defaultdict(lambda: {"pass": [], "fail": []})
        on_device = {c.signature_id for m in self.att.models for c in m.calls if c.status != FOLDED}
        for sid, r in self.att.results.items():
            t = _largest_footprint(r) if sid in on_device else None
            if t is None:
                continue
            if r.status == "pass":
                per_op[r.op]["pass"].append((t.padded_bytes, sid, t.shape, r.status))
            elif r.status in MEMORY_FAILURES:
                per_op[r.op]["fail"].append((t.padded_bytes, sid, t.shape, r.status))
        rows = []
        for op, seen in per_op.items():
            if not seen["fail"]:
                continue  # an op that never ran out of memory has no limit to show
            lp = max(seen["pass"], key=lambda x: (x[0], x[1])) if seen["pass"] else None
            sf = min(seen["fail"], key=lambda x: (x[0], x[1]))
            rows.append(MemoryLimit(op=op, passing=len(seen["pass"]), largest_pass_bytes=lp[0] if lp else None,
                                    largest_pass_shape=list(lp[2]) if lp else None,
                                    largest_pass_signature=lp[1] if lp else "", failing=len(seen["fail"]),
                                    smallest_fail_bytes=sf[0], smallest_fail_shape=list(sf[2]),
                                    smallest_fail_signature=sf[1], smallest_fail_status=sf[3],
                                    overlap=bool(lp and sf[0] < lp[0])))
        rows.sort(key=lambda r: (r.smallest_fail_bytes, r.op))
        return rows


def _on_device(sig_calls: dict[str, list]) -> dict[str, list]:
    """The calls a port runs on the device, by signature: the folded ones (computed at load time) left out."""
    out = {sid: [c for c in calls if c.status != FOLDED] for sid, calls in sig_calls.items()}
    return {sid: calls for sid, calls in out.items() if calls}


def folded_summary(m: ModelAttribution) -> Folded | None:
    """What of the model a port computes at load time: the folded ops and the results it then uploads."""
    lin = m.lineage
    if not lin.folded:
        return None
    ops = Counter(m.calls[i].op for i in lin.folded)
    uploads = [FoldedUpload(shape=u.shape, dtype=u.dtype, bytes=u.bytes, produced_by_call=u.produced_by,
                            produced_by_op=m.calls[u.produced_by].op, first_use_call=u.first_use,
                            module_path=m.calls[u.first_use].module_path, view_of_weight=u.view_of_weight)
               for u in lin.uploads]
    uploads.sort(key=lambda u: (-u.bytes, u.first_use_call))
    return Folded(calls=len(lin.folded), ops=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
                  upload_bytes=lin.upload_bytes(), new_upload_bytes=lin.upload_bytes(new_only=True),
                  uploads=uploads[:TOP_N], upload_count=len(uploads))


def _worst_padding(tensors: list[TensorRow]) -> list[TensorRow]:
    """The tensors padding inflates most (padded / logical), then by bytes added."""
    padded = [t for t in tensors if t.padded_bytes > t.logical_bytes]
    return sorted(padded, key=lambda t: (-t.blowup, -(t.padded_bytes - t.logical_bytes),
                                         t.signature_id, t.role))[:TOP_N]


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _trace_hashes(traces: list[Trace], header: dict) -> tuple[dict[str, str], list[str]]:
    """sha256 of each trace as the results header lists it (by path, else by model), and a warning
    for every trace file that changed since the results were made."""
    listed = [t for t in header.get("traces") or [] if isinstance(t, dict)] \
        if isinstance(header.get("traces"), list) else []
    by_path = {str(t.get("path", "")): str(t.get("sha256") or "") for t in listed}
    by_model = {str(t.get("model", "")): str(t.get("sha256") or "") for t in listed}
    sha, warnings = {}, []
    for t in traces:
        want = by_path.get(t.path) or by_model.get(t.model_name, "")
        sha[t.path] = want
        if want and t.path and os.path.isfile(t.path) and _file_sha256(t.path) != want:
            warnings.append(f"{t.path} changed since these results were made (sha256 differs): "
                            "signatures it no longer shares with the results count as not_run")
    return sha, warnings


def build_report(traces: list[Trace], header: dict, results: list[ReplayResult]) -> Report:
    """Attribute one results set to the traces and compute every per-model and cross-model view."""
    sha, warnings = _trace_hashes(traces, header)
    att = attribute(traces, results, sha)
    prov = provenance(header, traces, results)
    b = _Builder(att, prov)
    models = [b.model(m, model_group(t)) for m, t in zip(att.models, traces)]
    ops, matrix = b.matrix()
    shared, fix = b.signature_tables()
    shown = {s for m in models for s in m.by_status}
    statuses = {s: REPORT_STATUSES.get(s, "a status this optrace does not know")
                for s in status_order(shown | {"pass"})}
    not_run = sum(m.by_status.get(NOT_RUN, 0) for m in models)
    if not_run:
        warnings.append(f"{not_run} calls have no result (not_run): the run was interrupted or is incomplete")
    if att.orphan_results:
        warnings.append(f"{len(att.orphan_results)} results belong to signatures no trace here holds; "
                        "they are not counted")
    # replay --mode model: isolated and in-context verdicts side by side
    context = context_models(header, att.results.values(), b.shapes) if header.get("mode") == "model" else []
    report = Report(provenance=prov, statuses=statuses, models=models, ops=ops, matrix=matrix, shared=shared,
                    fix_by_signature=fix, fix_by_op=b.fix_by_op(fix), memory_limits=b.memory_limits(),
                    orphan_results=att.orphan_results, warnings=warnings, context=context,
                    remedies=remedy_rows(att.results.values(), b.shapes), groups=group_summaries(models, matrix),
                    fix_order=fix_order(matrix, [m.model for m in models]))
    return report


# ---------------------------------------------------------------------------------------------
# Writing

def render_json(report: Report) -> str:
    """The whole report as JSON (REPORT_FORMAT, versioned), for tools."""
    return json.dumps(report.to_json(), indent=1, sort_keys=True) + "\n"


# The report formats: kind -> (file written into the report folder, renderer). A new format is a
# module with one render function plus one line here.
REPORT_FORMATS: dict[str, tuple[str, Callable[[Report], str]]] = {
    "html": ("report.html", render_html),
    "markdown": ("summary.md", render_markdown),
    "csv": ("failures.csv", render_csv),
    "json": ("report.json", render_json),
}


def write_report(report: Report, out_dir: str = "reports") -> dict[str, str]:
    """Write every REPORT_FORMATS file into out_dir (each atomically); returns kind -> path."""
    paths = {}
    for kind, (name, render) in REPORT_FORMATS.items():
        paths[kind] = os.path.join(out_dir, name)
        write_atomic(paths[kind], render(report))
    return paths


def render_terminal(report: Report) -> str:
    """One compact table per model, for the end of a replay run."""
    return render_text_terminal(report)
