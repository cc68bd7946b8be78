"""The HTML report's building blocks: escaping, status colours and badges, tables, anchors, the CSS.

Every string that comes from a trace, a result or an error message goes through ``e()``.
"""
from __future__ import annotations

import html

STATUS_COLORS = {
    "pass": "#3a9d4a", "skipped": "#9aa5b1", "folded": "#5b8fb9", "not_run": "#d5dae0", "oom_dram": "#d62728",
    "oom_l1": "#ff7f0e", "oom_l1_small": "#f2b134", "cb_overflow": "#e377c2", "unsupported": "#8c6bb1",
    "ttnn_error": "#8c1c13", "mismatch": "#bcbd22", "crash": "#222222", "timeout": "#8c564b",
}
OTHER_COLOR = "#17becf"

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:1em 2em;color:#1d232a}
h1{font-size:1.6em}h2{border-bottom:2px solid #dde;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d8dce2;padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f2f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.prov{background:#f6f8fa;border:1px solid #dde;padding:.6em 1em;border-radius:4px}
.note{font-weight:600;color:#8a4b00}
.st{display:inline-block;padding:0 5px;border-radius:3px;color:#fff;font-size:12px}
.scroll{overflow:auto;max-width:100%;max-height:85vh;border:1px solid #dde}
.matrix{display:table;margin:0;font-size:11px}.matrix td{text-align:center;min-width:2em;padding:1px 2px}
.matrix td:first-child,.matrix th:first-child{text-align:left;position:sticky;left:0;background:#fff;z-index:1}
.matrix th.m{writing-mode:vertical-rl;transform:rotate(180deg);position:sticky;top:0;z-index:2;max-height:14em}
.matrix th.g{font-weight:600;text-align:left;white-space:nowrap;border-left:2px solid #9aa5b1}
.chart-box{overflow:auto;max-width:100%;max-height:70vh}
nav a{margin-right:1em}.models p{margin:.15em 0}.models a{margin-right:.7em;white-space:nowrap}
details{margin:.4em 0}summary{cursor:pointer}
section.model{content-visibility:auto;contain-intrinsic-size:auto 900px}
"""


def e(value: object) -> str:
    """HTML-escape anything for text and attribute values."""
    return html.escape(str(value), quote=True)


def color(status: str) -> str:
    """The colour a status is drawn in."""
    return STATUS_COLORS.get(status, OTHER_COLOR)


def badge(status: str) -> str:
    """A status as a coloured label."""
    fg = "#1d232a" if status in ("not_run", "oom_l1_small", "mismatch") else "#fff"
    return f'<span class="st" style="background:{color(status)};color:{fg}">{e(status)}</span>'


def table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """Cells in rows are already HTML; headers are escaped here."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def model_anchor(i: int) -> str:
    """The id of the i-th model's section."""
    return f"model-{i}"


def context_anchor(i: int) -> str:
    """The id of the i-th in-context section (one per model replayed in context)."""
    return "context" if i == 0 else f"context-{i}"
