"""Several replay runs in one report, a column per run (n150 vs p150, DRAM vs L1, ttnn versions).

``compare_runs(runs)`` builds each run's Report (each reconciled against its traces: every call
counted once per run), then the views across them: per model the blocked calls in each run, the
signatures whose verdict differs between runs, the ops x models matrix of each run, and "what changes
if I move to ...": the diff (replay/report/diff.py) from the first run to each other one.
``write_comparison`` writes compare.html, compare.md and compare.json. Imports neither torch nor ttnn.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from capture.atomic import write_atomic
from capture.schema import Trace
from replay.report.attribution import NOT_RUN, worst_status
from replay.report.build import build_report
from replay.report.data import MatrixCell, Report
from replay.report.diff import RUN_KEYS, RunDiff, diff_runs, run_settings
from replay.report.html_parts import color, e, table
from replay.report.text import pct
from replay.results import MOCK_NOTE, ReplayResult

COMPARE_FORMAT = "optrace-comparison"
COMPARE_VERSION = 1


@dataclass(kw_only=True)
class Run:
    """One results file to compare, with the traces it was made from."""
    path: str
    header: dict
    results: list[ReplayResult]
    traces: list[Trace]


@dataclass(kw_only=True)
class RunColumn:
    """A column of the comparison: which run, on what, and its totals."""
    label: str
    path: str
    settings: dict           # RUN_KEYS of its header
    mock: bool
    note: str
    signatures: int
    calls: int
    blocked_calls: int


@dataclass(kw_only=True)
class ModelCell:
    """One model in one run."""
    calls: int
    blocked_calls: int
    first_block: str         # "op (status) at module" or "" when nothing blocks it


@dataclass(kw_only=True)
class VerdictRow:
    """A signature whose status is not the same in every run."""
    signature_id: str
    op: str
    models: list[str]
    statuses: list[str]      # one per run (not_run where a run has no result)


@dataclass(kw_only=True)
class Comparison:
    """Runs side by side (every field a list has one entry per run, in run order)."""
    runs: list[RunColumn]
    models: dict[str, list[ModelCell | None]]      # None: the model is not in that run
    differing: list[VerdictRow]
    matrices: list[dict]                            # per run: {"ops": [...], "cells": {op: {model: MatrixCell}}}
    moves: list[RunDiff]                            # the first run -> each other run
    format: str = COMPARE_FORMAT
    version: int = COMPARE_VERSION

    def to_json(self) -> dict:
        """compare.json's content."""
        return asdict(self)


def run_labels(headers: list[dict], paths: list[str]) -> list[str]:
    """Short distinct names: the settings that differ between the runs ("p150 l1"), else the file names."""
    differing = [k for k in RUN_KEYS if len({str(h.get(k)) for h in headers}) > 1]
    labels = []
    for h, p in zip(headers, paths):
        parts = [("mock" if h.get(k) else "real") if k == "mock" else
                 f"ttnn {h.get(k)}" if k == "ttnn" else str(h.get(k)) for k in differing]
        labels.append(" ".join(parts) or os.path.basename(p))
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {lab}" for i, lab in enumerate(labels)]
    return labels


def _column(label: str, run: Run, rep: Report) -> RunColumn:
    return RunColumn(label=label, path=run.path, settings=run_settings(run.header), mock=bool(run.header.get("mock")),
                     note=run.header.get("note", ""), signatures=len(run.results),
                     calls=sum(m.calls for m in rep.models), blocked_calls=sum(m.blocked_calls for m in rep.models))


def _model_cells(reports: list[Report]) -> dict[str, list[ModelCell | None]]:
    out: dict[str, list[ModelCell | None]] = {}
    for i, rep in enumerate(reports):
        for m in rep.models:
            fb = m.first_block
            cell = ModelCell(calls=m.calls, blocked_calls=m.blocked_calls,
                             first_block=f"{fb.op} ({fb.status}) at {fb.module_path or '(model)'}" if fb else "")
            out.setdefault(m.model, [None] * len(reports))[i] = cell
    return out


def _differing(runs: list[Run], reports: list[Report]) -> list[VerdictRow]:
    by_run = [{r.signature_id: r for r in run.results} for run in runs]
    models: dict[str, list[str]] = {}
    for rep in reports:
        for row in rep.shared + rep.fix_by_signature:
            models.setdefault(row.signature_id, row.models)
    rows = []
    for sid in dict.fromkeys(s for results in by_run for s in results):
        statuses = [results[sid].status if sid in results else NOT_RUN for results in by_run]
        if len(set(statuses)) > 1:
            op = next(results[sid].op for results in by_run if sid in results)
            rows.append(VerdictRow(signature_id=sid, op=op, models=models.get(sid, []), statuses=statuses))
    return sorted(rows, key=lambda r: (worst_status(r.statuses) == "pass", r.op, r.signature_id))


def compare_runs(runs: list[Run]) -> Comparison:
    """Build each run's report and the views across runs (see the module docstring)."""
    reports = [build_report(run.traces, run.header, run.results) for run in runs]
    labels = run_labels([r.header for r in runs], [r.path for r in runs])
    base = runs[0]
    moves = []
    for label, run in list(zip(labels, runs))[1:]:
        traces = {t.model_name: t for t in run.traces} | {t.model_name: t for t in base.traces}
        moves.append(diff_runs((labels[0], base.header, base.results), (label, run.header, run.results),
                               list(traces.values())))
    return Comparison(runs=[_column(lab, run, rep) for lab, run, rep in zip(labels, runs, reports)],
                      models=_model_cells(reports), differing=_differing(runs, reports),
                      matrices=[{"ops": rep.ops, "cells": rep.matrix} for rep in reports], moves=moves)


# ---------------------------------------------------------------------------------------------
# Rendering

def _status(s: str) -> str:
    return f'<span style="color:{color(s)};font-weight:600">{e(s)}</span>'


def _model_text(cell: ModelCell | None) -> str:
    if cell is None:
        return "-"
    return f"{cell.blocked_calls}/{cell.calls} blocked ({pct(cell.blocked_calls, cell.calls)})"


def _move_lines(d: RunDiff, limit: int = 10) -> list[tuple[str, list[str]]]:
    """(headline, rows) of one move, for either format."""
    rows = []
    for kind, changes in (("starts failing", d.regressions), ("stops failing", d.fixes),
                          ("fails differently", d.changed), ("OOM bytes move", d.oom_moved)):
        for c in changes[:limit]:
            rows.append(f"{kind}: {c.op} {c.signature_id} {c.before} -> {c.after}, {c.impact.calls} calls in "
                        f"{', '.join(c.impact.models) or '-'}")
        if len(changes) > limit:
            rows.append(f"{kind}: ... {len(changes) - limit} more")
    what = "; ".join(f"{k} {v[0]} -> {v[1]}" for k, v in d.settings.items()) or "same settings"
    head = (f"Moving from {d.a} to {d.b} ({what}): {len(d.regressions)} signatures start failing "
            f"({d.calls_regressed} calls), {len(d.fixes)} stop failing ({d.calls_fixed} calls), "
            f"{len(d.changed)} fail differently, {len(d.oom_moved)} OOMs move")
    return [(head, rows)]


def _matrix_html(label: str, matrix: dict) -> str:
    models = sorted({m for cells in matrix["cells"].values() for m in cells})
    rows = []
    for op in matrix["ops"]:
        cells = matrix["cells"][op]
        rows.append([e(op)] + [(_status(cells[m].status) + f" {cells[m].calls}") if m in cells else "" for m in models])
    return f"<h3>{e(label)}</h3>" + table(["aten op", *models], rows)


def render_compare_html(c: Comparison) -> str:
    """The comparison as one HTML page."""
    labels = [r.label for r in c.runs]
    mock = any(r.mock for r in c.runs)
    parts = [f"<h1>optrace: {len(c.runs)} runs side by side</h1>"]
    if mock:
        parts.append(f"<p><b>Mock device</b> in {e(', '.join(r.label for r in c.runs if r.mock))}: "
                     f"{e(MOCK_NOTE)}; numerics not checked.</p>")
    parts.append("<h2>Runs</h2>" + table(["run", *RUN_KEYS, "signatures", "calls", "blocked", "file"], [
        [e(r.label), *(e(r.settings.get(k)) for k in RUN_KEYS), str(r.signatures), str(r.calls),
         f"{r.blocked_calls} ({pct(r.blocked_calls, r.calls)})", e(os.path.basename(r.path))] for r in c.runs]))
    parts.append("<h2>Per model</h2>" + table(["model", *labels], [
        [e(m), *(e(_model_text(cell)) + (f"<br><small>{e(cell.first_block)}</small>" if cell and cell.first_block
                                          else "") for cell in cells)] for m, cells in c.models.items()]))
    parts.append("<h2>What changes if I move to ...</h2>")
    for d in c.moves:
        for head, rows in _move_lines(d):
            parts.append(f"<h3>{e(head)}</h3><ul>" + "".join(f"<li>{e(r)}</li>" for r in rows) + "</ul>")
    parts.append(f"<h2>Signatures whose verdict differs ({len(c.differing)})</h2>" + table(
        ["signature", "op", "models", *labels],
        [[e(v.signature_id), e(v.op), e(", ".join(v.models)), *(_status(s) for s in v.statuses)] for v in c.differing]))
    parts.append("<h2>Ops × models, per run</h2>" + "".join(_matrix_html(lab, m) for lab, m in zip(labels, c.matrices)))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}th{background:#f3f3f3}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>optrace comparison</title><style>{style}"
            f"</style></head><body>{''.join(parts)}</body></html>\n")


def render_compare_markdown(c: Comparison) -> str:
    """The comparison as Markdown: runs, per model, the moves, the differing signatures (first 50)."""
    labels = [r.label for r in c.runs]
    out = [f"# optrace: {len(c.runs)} runs side by side", ""]
    if any(r.mock for r in c.runs):
        out += [f"Mock device in {', '.join(r.label for r in c.runs if r.mock)}: {MOCK_NOTE}; numerics not checked.", ""]
    out += ["| run | " + " | ".join(RUN_KEYS) + " | signatures | blocked calls |", "|---" * (len(RUN_KEYS) + 3) + "|"]
    out += [f"| {r.label} | " + " | ".join(str(r.settings.get(k)) for k in RUN_KEYS)
            + f" | {r.signatures} | {r.blocked_calls}/{r.calls} |" for r in c.runs]
    out += ["", "## Per model", "", "| model | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    out += [f"| {m} | " + " | ".join(_model_text(cell) for cell in cells) + " |" for m, cells in c.models.items()]
    out += ["", "## What changes if I move to ...", ""]
    for d in c.moves:
        for head, rows in _move_lines(d):
            out += [f"**{head}**", ""] + [f"- {r}" for r in rows] + [""]
    out += [f"## Signatures whose verdict differs ({len(c.differing)})", "",
            "| signature | op | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    out += [f"| {v.signature_id} | {v.op} | " + " | ".join(v.statuses) + " |" for v in c.differing[:50]]
    if len(c.differing) > 50:
        out.append(f"\n... {len(c.differing) - 50} more in compare.html")
    return "\n".join(out) + "\n"


def write_comparison(c: Comparison, out_dir: str) -> dict[str, str]:
    """compare.html, compare.md and compare.json in out_dir, each written atomically; kind -> path."""
    paths = {"html": os.path.join(out_dir, "compare.html"), "markdown": os.path.join(out_dir, "compare.md"),
             "json": os.path.join(out_dir, "compare.json")}
    write_atomic(paths["html"], render_compare_html(c))
    write_atomic(paths["markdown"], render_compare_markdown(c))
    write_atomic(paths["json"], json.dumps(c.to_json(), indent=1, sort_keys=True, default=_plain) + "\n")
    return paths


def _plain(value):
    if isinstance(value, MatrixCell):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
