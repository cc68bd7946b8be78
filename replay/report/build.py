"""Per-model impact reports: what fails, where in each model, and which fix unblocks most.

Imports neither torch nor ttnn, so reports render anywhere. ``build_report`` turns traces plus one
results set into a ``Report`` (plain dataclasses, no formatting); ``write_report`` writes it as
HTML, Markdown, a failures CSV and JSON; ``render_terminal`` gives one compact table per model.
The data model is report_data.py; the formats live in report_html.py and report_text.py.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict

from capture.atomic import write_atomic
from capture.schema import Trace
from replay.report.attribution import (MEMORY_FAILURES, NOT_RUN, NOT_RUN_NOTE, REPORT_STATUSES,
                                Attribution, ModelAttribution, attribute, format_shapes, input_shapes,
                                is_blocked, is_failing, status_order, worst_status)
from replay.report.data import (REPORT_FORMAT, REPORT_VERSION, FailureRow, FirstBlock, LayerRow,  # noqa: F401
                                MatrixCell, MemoryLimit, ModelReport, OpFix, Provenance, ReasonRow, Report,
                                SignatureRow, TensorRow)
from replay.studies.remedies import remedy_rows, remedy_text
from replay.results import ESTIMATE_NOTE, MOCK_NOTE, ReplayResult

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
    return Provenance(version("optrace"), ttnn, version("torch"), backend, device, mock, note,
                      str(header.get("dtype") or "unknown"), str(header.get("memory") or "unknown"),
                      [dict(t) for t in listed if isinstance(t, dict)],
                      str(header.get("created_utc") or header.get("started_utc") or ""))


def _result_bytes(r: ReplayResult | None) -> tuple[int, int]:
    if r is None:
        return 0, 0
    ts = r.inputs + r.outputs
    return sum(t.logical_bytes for t in ts), sum(t.padded_bytes for t in ts)


def _largest_footprint(r: ReplayResult):
    ts = r.inputs + r.outputs
    return max(ts, key=lambda t: t.padded_bytes) if ts else None


class _Builder:
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
        return SignatureRow(sid, self.att.signatures[sid].op, self.shapes[sid], self.att.status(sid),
                            self.reason(sid), sum(calls_by_model.values()), list(calls_by_model),
                            calls_by_model, oom.requested_bytes if oom else None,
                            oom.buffer_type if oom else "", r.ttnn_call if r else "",
                            r.error_signature if r else "")

    def model(self, m: ModelAttribution) -> ModelReport:
        att = self.att
        by_status = m.by_status()
        blocked = sum(n for s, n in by_status.items() if is_blocked(s))
        sig_calls = m.calls_of()

        first = None
        not_run_before = 0
        for c in m.calls:
            if c.status == NOT_RUN:
                not_run_before += 1
            elif is_failing(c.status):
                r = att.results[c.signature_id]
                first = FirstBlock(c.index, c.module_path, c.module_class, c.op, self.shapes[c.signature_id],
                                   c.status, r.reason, c.signature_id,
                                   r.oom.requested_bytes if r.oom else None,
                                   r.oom.buffer_type if r.oom else "", not_run_before)
                break

        failing = [sid for sid in sig_calls if is_failing(att.status(sid))]
        failing.sort(key=lambda sid: (-len(sig_calls[sid]), sig_calls[sid][0].index))
        top = [self.sig_row(sid, {m.model: len(sig_calls[sid])}) for sid in failing[:TOP_N]]

        reasons: dict[tuple[str, str], list] = defaultdict(lambda: [0, set()])
        for c in m.calls:
            if c.status != "pass":
                entry = reasons[(c.status, self.reason(c.signature_id))]
                entry[0] += 1
                entry[1].add(c.signature_id)
        order = status_order(s for s, _ in reasons)
        reason_rows = sorted((ReasonRow(s, why, n, len(sids)) for (s, why), (n, sids) in reasons.items()),
                             key=lambda row: (order.index(row.status), -row.calls, row.reason))

        layers: dict[str, LayerRow] = {}
        for c in m.calls:
            row = layers.get(c.module_path)
            if row is None:
                row = layers[c.module_path] = LayerRow(c.module_path, c.module_class, c.index, 0, {})
            row.calls += 1
            row.statuses[c.status] = row.statuses.get(c.status, 0) + 1
        layer_rows = []
        for row in layers.values():
            if any(is_blocked(s) for s in row.statuses):
                row.statuses = {s: row.statuses[s] for s in status_order(row.statuses)}
                layer_rows.append(row)

        tensors = []
        for sid, calls in sig_calls.items():
            r = att.results.get(sid)
            if r is None:
                continue
            for role, ts in (("input", r.inputs), ("output", r.outputs)):
                for i, t in enumerate(ts):
                    blowup = t.padded_bytes / t.logical_bytes if t.logical_bytes else 1.0
                    tensors.append(TensorRow(sid, r.op, f"{role} {i}", list(t.shape), list(t.padded_shape),
                                             t.dtype, t.layout, t.memory, t.logical_bytes, t.padded_bytes,
                                             round(blowup, 3), r.status, len(calls)))
        largest = sorted(tensors, key=lambda t: (-t.padded_bytes, t.signature_id, t.role))[:TOP_N]
        padded = [t for t in tensors if t.padded_bytes > t.logical_bytes]
        worst = sorted(padded, key=lambda t: (-t.blowup, -(t.padded_bytes - t.logical_bytes),
                                              t.signature_id, t.role))[:TOP_N]

        failures = []
        groups: dict[tuple[str, str], list] = {}
        for c in m.calls:
            if is_blocked(c.status):
                groups.setdefault((c.signature_id, c.module_path), []).append(c)
        for (sid, path), calls in sorted(groups.items(), key=lambda kv: kv[1][0].index):
            r = att.results.get(sid)
            oom = r.oom if r else None
            logical, padded_b = _result_bytes(r)
            failures.append(FailureRow(
                m.model, path, sid, calls[0].op, self.shapes[sid], len(calls), calls[0].index, calls[0].status,
                self.reason(sid), oom.buffer_type if oom else "", oom.requested_bytes if oom else None,
                oom.per_bank_bytes if oom else None, oom.num_banks if oom else None,
                oom.cause if oom else "", r.device if r else self.prov.device,
                r.mock if r else self.prov.mock, r.backend if r else self.prov.backend, logical, padded_b,
                remedy_text(r)))

        return ModelReport(m.model, m.trace_path, m.trace_sha256, len(m.calls), len(m.signature_ids),
                           by_status, blocked, round(100.0 * blocked / len(m.calls), 2) if m.calls else 0.0,
                           first, top, reason_rows, layer_rows, largest, worst, failures)

    def cross(self):
        att = self.att
        matrix: dict[str, dict[str, MatrixCell]] = {}
        for m in att.models:
            per_op: dict[str, Counter] = defaultdict(Counter)
            for c in m.calls:
                per_op[c.op][c.status] += 1
            for op, counts in per_op.items():
                matrix.setdefault(op, {})[m.model] = MatrixCell(
                    sum(counts.values()), worst_status(counts),
                    {s: counts[s] for s in status_order(counts)})
        ops = sorted(matrix, key=lambda op: (-sum(is_blocked(c.status) for c in matrix[op].values()),
                                             -sum(c.calls for c in matrix[op].values()), op))

        calls_by: dict[str, dict[str, int]] = defaultdict(dict)
        for m in att.models:
            for sid, calls in m.calls_of().items():
                calls_by[sid][m.model] = len(calls)
        shared = [self.sig_row(sid, cbm) for sid, cbm in calls_by.items() if len(cbm) > 1]
        shared.sort(key=lambda r: (-len(r.models), -r.calls, r.op, r.signature_id))

        fix = [self.sig_row(sid, cbm) for sid, cbm in calls_by.items() if is_failing(att.status(sid))]
        fix.sort(key=lambda r: (-len(r.models), -r.calls, r.op, r.signature_id))

        by_op: dict[str, OpFix] = {}
        for row in fix:
            f = by_op.setdefault(row.op, OpFix(row.op, [], 0, 0, {}))
            f.models = [m.model for m in att.models if m.model in set(f.models) | set(row.models)]
            f.calls += row.calls
            f.failing_signatures += 1
            f.statuses[row.status] = f.statuses.get(row.status, 0) + row.calls
        fix_ops = sorted(by_op.values(), key=lambda f: (-len(f.models), -f.calls, f.op))
        for f in fix_ops:
            f.statuses = {s: f.statuses[s] for s in status_order(f.statuses)}
        return ops, matrix, shared, fix, fix_ops, self.memory_limits()

    def memory_limits(self) -> list[MemoryLimit]:
        per_op: dict[str, dict[str, list]] = defaultdict(lambda: {"pass": [], "fail": []})
        for sid, r in self.att.results.items():
            t = _largest_footprint(r)
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
            rows.append(MemoryLimit(op, len(seen["pass"]), lp[0] if lp else None, list(lp[2]) if lp else None,
                                    lp[1] if lp else "", len(seen["fail"]), sf[0], list(sf[2]), sf[1], sf[3],
                                    bool(lp and sf[0] < lp[0])))
        rows.sort(key=lambda r: (r.smallest_fail_bytes, r.op))
        return rows


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
    models = [b.model(m) for m in att.models]
    ops, matrix, shared, fix, fix_ops, limits = b.cross()
    shown = {s for m in models for s in m.by_status}
    statuses = {s: REPORT_STATUSES.get(s, "a status this optrace does not know")
                for s in status_order(shown | {"pass"})}
    not_run = sum(m.by_status.get(NOT_RUN, 0) for m in models)
    if not_run:
        warnings.append(f"{not_run} calls have no result (not_run): the run was interrupted or is incomplete")
    if att.orphan_results:
        warnings.append(f"{len(att.orphan_results)} results belong to signatures no trace here holds; "
                        "they are not counted")
    report = Report(prov, statuses, models, ops, matrix, shared, fix, fix_ops, limits, att.orphan_results,
                    warnings)
    if header.get("mode") == "model":  # replay --mode model: isolated and in-context verdicts side by side
        from replay.context.plan import context_models
        report.context = context_models(header, att.results.values(), b.shapes)
    report.remedies = remedy_rows(att.results.values(), b.shapes)
    return report


# ---------------------------------------------------------------------------------------------
# Writing

def write_report(report: Report, out_dir: str = "reports") -> dict[str, str]:
    """Write report.html, summary.md, failures.csv and report.json into out_dir; returns their paths."""
    from replay.report.html import render_html
    from replay.report.text import render_csv, render_markdown
    files = {
        "html": ("report.html", render_html(report)),
        "markdown": ("summary.md", render_markdown(report)),
        "csv": ("failures.csv", render_csv(report)),
        "json": ("report.json", json.dumps(report.to_json(), indent=1, sort_keys=True) + "\n"),
    }
    paths = {}
    for kind, (name, text) in files.items():
        paths[kind] = os.path.join(out_dir, name)
        write_atomic(paths[kind], text)
    return paths


def render_terminal(report: Report) -> str:
    """One compact table per model, for the end of a replay run."""
    from replay.report.text import render_terminal as render
    return render(report)
