"""The HTML report's zoo views, readable at 150+ models: the model index and the ops x models matrix
grouped by task and family, the summaries per task and per family, and the fix order.

Wide content sits in its own scroll box (the matrix keeps its op column and model names in view),
long model lists fold away past ``SHOWN`` names, and every model is one click away in the index.
"""
from __future__ import annotations

from itertools import groupby

from replay.report.data import Report
from replay.report.groups import grouped
from replay.report.html_parts import color, e, model_anchor, table

SHOWN = 8          # model names shown in a cell before the rest fold away


def anchors(report: Report) -> dict[str, str]:
    """Model name -> the id of its section."""
    return {m.model: model_anchor(i) for i, m in enumerate(report.models)}


def model_links(names: list[str], ids: dict[str, str], shown: int = SHOWN) -> str:
    """Links to the models' sections; past ``shown`` the rest fold into a <details>."""
    links = [f'<a href="#{ids[n]}">{e(n)}</a>' if n in ids else e(n) for n in names]
    if len(links) <= shown:
        return ", ".join(links)
    return (", ".join(links[:shown]) + f"<details><summary>{len(links) - shown} more</summary>"
            + ", ".join(links[shown:]) + "</details>")


def model_index(report: Report) -> str:
    """Every model, one click away: grouped by task, then family."""
    ids = anchors(report)
    lines = []
    for task, ms in groupby(grouped(report.models), key=lambda m: m.task):
        fams = []
        for fam, fs in groupby(ms, key=lambda m: m.family):
            fams.append(f"<i>{e(fam)}</i>: " + " ".join(f'<a href="#{ids[m.model]}">{e(m.model)}</a>' for m in fs))
        lines.append(f"<p><b>{e(task)}</b> — " + " · ".join(fams) + "</p>")
    return f'<nav class="models" aria-label="models">{"".join(lines)}</nav>'


def _spans(values: list) -> list[tuple]:
    return [(v, len(list(g))) for v, g in groupby(values)]


def grouped_matrix(report: Report) -> str:
    """The ops x models table, columns grouped by task and family, each cell coloured by its worst status."""
    models = grouped(report.models)
    ids = anchors(report)
    tasks = "".join(f'<th class="g" colspan="{n}">{e(t)}</th>' for t, n in _spans([m.task for m in models]))
    fams = "".join(f'<th class="g" colspan="{n}">{e(f[1])}</th>'
                   for f, n in _spans([(m.task, m.family) for m in models]))
    names = "".join(f'<th class="m"><a href="#{ids[m.model]}">{e(m.model)}</a></th>' for m in models)
    head = (f"<tr><th>task</th>{tasks}</tr><tr><th>family</th>{fams}</tr>"
            f"<tr><th>op (by models blocked)</th>{names}</tr>")
    body = []
    for op in report.ops:
        cells = []
        for m in models:
            c = report.matrix[op].get(m.model)
            if c is None:
                cells.append("<td></td>")
                continue
            tip = f"{m.model}: " + ", ".join(f"{s} {n}" for s, n in c.statuses.items())
            fg = "#1d232a" if c.status in ("not_run", "oom_l1_small", "mismatch") else "#fff"
            cells.append(f'<td style="background:{color(c.status)};color:{fg}" title="{e(tip)}">{c.calls}</td>')
        body.append(f"<tr><td><code>{e(op)}</code></td>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="matrix"><thead>{head}</thead><tbody>{"".join(body)}</tbody>'
            "</table></div><p>Each cell: calls of the op in the model, coloured by its worst status (hover for all). "
            "Ops with the most blocked models first; the table scrolls both ways and keeps the op column.</p>")


def groups_section(report: Report) -> str:
    """Per task, then per family: models, how many are blocked, calls, the ops failing in most of them."""
    if not report.groups:
        return ""
    ids = anchors(report)
    out = ['<section id="groups"><h2>By task and by family</h2>']
    for kind in ("task", "family"):
        rows = [[e(g.name)] + ([e(g.task)] if kind == "family" else [])
                + [str(len(g.models)), str(g.models_blocked), str(g.models_failing), str(g.calls),
                   f"{g.blocked_calls} ({100.0 * g.blocked_calls / g.calls if g.calls else 0:.1f}%)",
                   e(", ".join(f"{op} ({n})" for op, n in g.top_ops.items()) or "-"), model_links(g.models, ids)]
                for g in report.groups if g.kind == kind]
        head = [kind] + (["task"] if kind == "family" else []) + [
            "models", "blocked", "with a failing op", "calls", "blocked calls", "failing in most models", "models"]
        first = 2 if kind == "family" else 1
        out.append(f"<h3>Per {kind}</h3>" + table(head, rows, set(range(first, first + 5))))
    return "\n".join(out) + "</section>"


def fix_order_table(report: Report, shown: int = 25) -> str:
    """The fix order: each op, fixed after the ones above it, and the models that then run."""
    steps = report.fix_order
    if not steps:
        return "<p>No model has a failing op.</p>"
    ids = anchors(report)
    rows = [[str(i + 1), f"<code>{e(s.op)}</code>", str(s.models_blocked), str(len(s.unblocks)),
             model_links(s.unblocks, ids) or "-", str(s.unblocked_total), str(s.still_blocked)]
            for i, s in enumerate(steps)]
    head = ["step", "fix op", "models it fails in", "models unblocked", "which", "unblocked so far", "still blocked"]
    out = table(head, rows[:shown], {0, 2, 3, 5, 6})
    if len(rows) > shown:
        out += f"<details><summary>{len(rows) - shown} more steps</summary>" + table(head, rows[shown:],
                                                                                  {0, 2, 3, 5, 6}) + "</details>"
    return out

