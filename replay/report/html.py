"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

Every string that comes from a trace, a result or an error message goes through ``e()``.
"""
from __future__ import annotations

import math

from replay.report.data import ModelReport, Report, SignatureRow, TensorRow
from replay.report.groups import grouped
from replay.report.html_groups import SHOWN, anchors, fix_order_table, grouped_matrix, groups_section, model_index, \
    model_links
from replay.report.html_parts import CSS, badge, color, context_anchor, e, model_anchor, table
from replay.report.text import first_block_text, fmt_bytes, folded_text, pct, provenance_lines

# ---------------------------------------------------------------------------------------------
# Charts (inline SVG)

def status_chart(report: Report) -> str:
    """One stacked bar per model: share of calls per status."""
    label_w, bar_w, row_h = 220, 700, 22
    rows = []
    for i, m in enumerate(grouped(report.models)):
        y = i * row_h
        x = float(label_w)
        parts = []
        for s, n in m.by_status.items():
            w = bar_w * n / m.calls if m.calls else 0
            parts.append(f'<rect x="{x:.2f}" y="{y + 3}" width="{w:.2f}" height="{row_h - 6}" fill="{color(s)}">'
                         f'<title>{e(m.model)}: {e(s)} {n} calls ({pct(n, m.calls)})</title></rect>')
            x += w
        rows.append(f'<text x="{label_w - 6}" y="{y + row_h - 7}" text-anchor="end">{e(m.model)}</text>'
                    + "".join(parts)
                    + f'<text x="{label_w + bar_w + 6}" y="{y + row_h - 7}">{m.blocked_pct:.1f}% blocked</text>')
    legend_y = len(report.models) * row_h + 16
    legend, lx = [], label_w
    for s in report.statuses:
        if lx + 24 + 8 * len(s) > label_w + bar_w:  # wrap the legend onto another line
            lx, legend_y = label_w, legend_y + 18
        legend.append(f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{color(s)}"/>'
                      f'<text x="{lx + 16}" y="{legend_y}">{e(s)}</text>')
        lx += 24 + 8 * len(s)
    height = legend_y + 10
    return (f'<svg class="chart" role="img" aria-label="calls by status per model" xmlns="http://www.w3.org/2000/svg" '
            f'width="{label_w + bar_w + 120}" height="{height}" font-size="12">' + "".join(rows) + "".join(legend)
            + "</svg>")


def failure_bytes(r: SignatureRow, padded: dict[str, int]) -> int:
    """Bytes a failing signature stands for: what the failed allocation requested, else its padded tensors."""
    return r.requested_bytes if r.requested_bytes is not None else padded.get(r.signature_id, 0)


def bytes_chart(report: Report, limit: int = 25) -> str:
    """Failing signatures by bytes (requested by the failed allocation, else the op's padded
    tensors), log scale, biggest first."""
    padded = {f.signature_id: f.padded_bytes for m in report.models for f in m.failures}
    rows = [(failure_bytes(r, padded), r) for r in report.fix_by_signature]
    rows = sorted((x for x in rows if x[0] > 0), key=lambda x: (-x[0], x[1].signature_id))[:limit]
    if not rows:
        return "<p>No failing signature has a byte size.</p>"
    label_w, bar_w, row_h = 420, 520, 20
    top = math.log10(max(b for b, _ in rows)) + 0.1
    parts = []
    for i, (b, r) in enumerate(rows):
        y = i * row_h
        w = bar_w * max(math.log10(max(b, 1)), 0.05) / top
        label = f"{r.op} {r.input_shapes}"
        label = label if len(label) <= 64 else label[:61] + "..."
        parts.append(f'<text x="{label_w - 6}" y="{y + row_h - 6}" text-anchor="end">{e(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.2f}" height="{row_h - 6}" fill="{color(r.status)}">'
                     f'<title>{e(r.op)} {e(r.input_shapes)}: {e(r.status)}, {e(fmt_bytes(b))}, '
                     f'{len(r.models)} models, {r.calls} calls</title></rect>'
                     f'<text x="{label_w + w + 4:.2f}" y="{y + row_h - 6}">{e(fmt_bytes(b))} ({e(r.status)})</text>')
    return (f'<svg class="chart" role="img" aria-label="failures by bytes" xmlns="http://www.w3.org/2000/svg" '
            f'width="{label_w + bar_w + 160}" height="{len(rows) * row_h + 4}" font-size="11">' + "".join(parts)
            + "</svg><p>Bar length is log-scaled bytes.</p>")


# ---------------------------------------------------------------------------------------------
# Sections

def sig_rows(rows: list[SignatureRow], with_models: bool) -> str:
    """A table of signatures with their results (and, with_models, the calls per model)."""
    out = []
    for r in rows:
        cells = [f"<code>{e(r.op)}</code>", f"<code>{e(r.input_shapes)}</code>", badge(r.status)]
        if with_models:
            cells.append(str(len(r.models)))
            per = list(r.calls_by_model.items())
            cells.append(e(", ".join(f"{m} ({n})" for m, n in per[:SHOWN]))
                         + (f" and {len(per) - SHOWN} more" if len(per) > SHOWN else ""))
        cells += [str(r.calls), e(fmt_bytes(r.requested_bytes)) + (f" {e(r.buffer_type)}" if r.buffer_type else ""),
                  e(r.reason[:300]), f"<code>{e(r.signature_id)}</code>"]
        out.append(cells)
    headers = ["op", "input shapes", "status"] + (["models", "calls per model"] if with_models else []) + [
        "calls", "requested", "reason", "signature"]
    numeric = {3, 5} if with_models else {3}
    return table(headers, out, numeric)


def tensor_table(rows: list[TensorRow]) -> str:
    """A table of tensors as replay placed them: shapes, placement, logical and padded bytes."""
    return table(["op", "tensor", "shape", "padded shape", "dtype", "layout", "memory", "logical", "padded",
                  "blow-up", "status", "calls"],
                 [[f"<code>{e(t.op)}</code>", e(t.role), f"<code>{e(t.shape)}</code>", f"<code>{e(t.padded_shape)}</code>",
                   e(t.dtype), e(t.layout), e(t.memory), e(fmt_bytes(t.logical_bytes)), e(fmt_bytes(t.padded_bytes)),
                   f"{t.blowup:.2f}x", badge(t.status), str(t.calls)] for t in rows], {7, 8, 9, 11})


ROWS = 100   # rows of a long table in the page; every row is in failures.csv / report.json


def more_in(rows: int, where: str) -> str:
    """A note that a table shows its first ROWS rows only, and where the rest are."""
    return f"<p>The first {ROWS} of {rows} rows; all of them are in {where}.</p>" if rows > ROWS else ""


def model_section(i: int, m: ModelReport) -> str:
    """One model's section: its statuses, first blocking op, top failures, layers and tensors."""
    out = [f'<section id="{model_anchor(i)}" class="model"><h2>{e(m.model)}</h2>',
           f"<p>Task <b>{e(m.task)}</b>, family <b>{e(m.family)}</b>. {m.calls} calls, {m.unique_signatures} "
           f"unique signatures, <b>{m.blocked_calls} calls blocked "
           f"({m.blocked_pct:.1f}%)</b>. Trace <code>{e(m.trace_path)}</code>"
           + (f" sha256 <code>{e(m.trace_sha256)}</code>" if m.trace_sha256 else "") + ".</p>",
           table(["status", "calls", "%"], [[badge(s), str(n), pct(n, m.calls)] for s, n in m.by_status.items()],
                 {1, 2})]
    out.append(f"<h3>First blocking op</h3><p>{e(first_block_text(m))}</p>")
    f = m.first_block
    if f and f.reason:
        out.append(f"<p>Reason: <code>{e(f.reason)}</code></p>")
    if f and f.not_run_before:
        out.append(f"<p>{f.not_run_before} calls before it have no result (run interrupted): "
                   "the first blocking op may be earlier.</p>")
    if m.folded:
        out.append(f"<h3>Folded: computed at load time from weights/buffers</h3><p>{e(folded_text(m, 12))}</p>"
                   + table(["shape", "dtype", "bytes", "made by", "first read by", "module"],
                           [[f"<code>{e(u.shape)}</code>", e(u.dtype), e(fmt_bytes(u.bytes)),
                             f"<code>{e(u.produced_by_op)}</code> (call {u.produced_by_call})",
                             str(u.first_use_call), f"<code>{e(u.module_path or '(model)')}</code>"
                             + (" (view of a weight)" if u.view_of_weight else "")] for u in m.folded.uploads], {2, 4}))
    if m.top_blocking:
        out.append("<h3>Top blocking signatures</h3>" + sig_rows(m.top_blocking, with_models=False))
    if m.reasons:
        out.append("<h3>Why calls did not pass</h3>" + table(
            ["status", "reason", "calls", "signatures"],
            [[badge(r.status), e(r.reason), str(r.calls), str(r.signatures)] for r in m.reasons], {2, 3}))
    if m.layers:
        out.append(f"<details><summary>Failures per layer ({len(m.layers)} layers with blocked calls)</summary>"
                   + more_in(len(m.layers), "failures.csv")
                   + table(["module path", "class", "first call", "calls", "statuses"],
                           [[f"<code>{e(l.module_path or '(model)')}</code>", e(l.module_class), str(l.first_call),
                             str(l.calls), " ".join(f"{badge(s)} {n}" for s, n in l.statuses.items())]
                            for l in m.layers[:ROWS]], {2, 3}) + "</details>")
    if m.largest_tensors:
        out.append("<details><summary>Largest tensors (padded)</summary>" + tensor_table(m.largest_tensors)
                   + "</details>")
    if m.worst_padding:
        out.append("<details><summary>Worst padding blow-ups</summary>" + tensor_table(m.worst_padding)
                   + "</details>")
    if m.failures:
        out.append(failures_details(m))
    out.append('<p><a href="#top">back to top</a></p></section>')
    return "\n".join(out)


def failures_details(m: ModelReport) -> str:
    """Every blocked (signature, layer) of a model, folded away (the first ROWS; all in failures.csv)."""
    return (f"<details><summary>All blocked calls by signature and layer ({len(m.failures)} rows)</summary>"
            + more_in(len(m.failures), "failures.csv")
            + table(["call", "module path", "op", "input shapes", "status", "calls", "requested",
                     "per bank", "banks", "reason"],
                    [[str(r.first_call), f"<code>{e(r.module_path or '(model)')}</code>", f"<code>{e(r.op)}</code>",
                      f"<code>{e(r.input_shapes)}</code>", badge(r.status), str(r.calls),
                      e(fmt_bytes(r.requested_bytes)) + (f" {e(r.buffer_type)}" if r.buffer_type else ""),
                      e(fmt_bytes(r.per_bank_bytes)), e(r.num_banks if r.num_banks is not None else "-"),
                      e(r.reason[:300])] for r in m.failures[:ROWS]], {0, 5, 6, 7, 8}) + "</details>")


def fix_signatures(report: Report, shown: int = 30) -> str:
    """The failing signatures by models blocked; those past ``shown`` folded away."""
    rows = report.fix_by_signature
    if not rows:
        return "<p>None.</p>"
    out = sig_rows(rows[:shown], with_models=True)
    if len(rows) > shown:
        out += (f"<details><summary>{len(rows) - shown} more failing signatures</summary>"
                + sig_rows(rows[shown:], with_models=True) + "</details>")
    return out


def context_sections(report: Report) -> str:
    """In-context runs: peaks, the first failure with the allocator's state, verdicts side by side."""
    out = []
    for i, c in enumerate(report.context):
        resident = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in c.resident_bytes.items() if k != "failed")
        out.append(f'<section id="{context_anchor(i)}"><h2>{e(c.model)} in context ({e(c.backend)})</h2>'
                   f"<p>Peak DRAM <b>{e(fmt_bytes(c.peak_dram_bytes))}</b> (after call {c.peak_dram_call}), peak L1 "
                   f"<b>{e(fmt_bytes(c.peak_l1_bytes))}</b> (after call {c.peak_l1_call}); resident before the first "
                   f"call: {e(resident)}. {c.failing_calls} calls fail in context ({c.cascaded_calls} only because "
                   f"a producer failed); {c.isolated_pass_context_fail} signatures pass alone and fail in context.</p>"
                   f"<p>First failure in context: {e(c.first_failure_text)}</p>")
        a = c.allocator
        if a:
            rows = [[e(m), str(a[m]["banks"]), e(fmt_bytes(a[m]["allocated_per_bank"])),
                     e(fmt_bytes((a.get("live_per_bank") or {}).get(m))), e(fmt_bytes(a[m]["free_per_bank"])),
                     e(fmt_bytes(a[m]["largest_free_per_bank"]))] for m in ("DRAM", "L1") if m in a]
            out.append(f"<h3>Allocator at the first failure ({a.get('program_cache_entries', 0)} programs cached, "
                       f"{a.get('live_tensors', 0)} live tensors)</h3>"
                       + table(["memory", "banks", "allocated / bank", "held by live tensors / bank", "free / bank",
                                "largest free block"], rows, {1, 2, 3, 4, 5})
                       + table(["tensor", "kind", "shape", "memory", "per bank", "made by call", "module"],
                               [[str(t["tensor"]), e(t["kind"]), f"<code>{e(t['shape'])}</code>", e(t["memory"]),
                                 e(fmt_bytes(t["per_bank_bytes"])), e(t.get("produced_by_call", "")),
                                 f"<code>{e(t.get('module_path') or '')}</code>"] for t in a.get("top_live", [])],
                               {0, 4, 5}))
        if c.rows:
            out.append("<h3>Failing ops: alone and in context</h3>" + table(
                ["call", "module", "op", "input shapes", "alone", "in context", "failing calls", "why", "remedy"],
                [[str(r.first_call), f"<code>{e(r.module_path)}</code>", f"<code>{e(r.op)}</code>",
                  f"<code>{e(r.input_shapes)}</code>", badge(r.isolated_status), badge(r.context_status),
                  str(r.failing_calls), e(r.why_text), e(r.remedy or "-")] for r in c.rows], {0, 6}))
        out.append(context_remedies_html(c))
        out.append("</section>")
    return "\n".join(out)


def context_remedies_html(c) -> str:
    """Remedies in context: the changes found, whether the model then passes, and per failing call its change."""
    if not c.remedy_verdict:
        return ""
    changes = "".join(f"<li>{e(x)}</li>" for x in c.remedy_changes) or "<li>none found</li>"
    verdict = f'<p class="{"" if c.remedy_passes else "note"}">{e(c.remedy_verdict)}</p>'
    rows = [[str(r.call), f"<code>{e(r.module_path or '(model)')}</code>", f"<code>{e(r.op)}</code>", badge(r.status),
             e(r.remedy) + (f" ({e(r.why_none)})" if r.why_none else ""), e(fmt_bytes(r.bytes_freed)),
             e(r.fixed_by if r.fixed_by is not None else "-"), "passes" if r.passes else "<b>still fails</b>",
             e(r.found_on)] for r in c.remedies[:ROWS]]
    return ("<h3>Remedies in context</h3><p>For each call failing in context, the cheapest change that lets it "
            "pass (searched on the estimate, then on the device), and the whole model replayed again with every "
            f"change found:</p><ul>{changes}</ul>{verdict}{more_in(len(c.remedies), 'report.json')}"
            + table(["call", "module", "op", "in context", "change", "bytes freed", "fixed by call",
                     "with every change", "found on"], rows, {0, 5, 6}))


def remedies_section(report: Report) -> str:
    """The remedies table (empty when no remedy was tried)."""
    if not report.remedies:
        return ""
    return ('<section id="remedies"><h2>Remedies</h2><p>For each failing signature, the cheapest configuration '
            "on the same device that runs (fewest bytes of inputs and outputs), or none.</p>"
            + table(["op", "input shapes", "status", "remedy", "bytes needed", "tried"],
                    [[f"<code>{e(r.op)}</code>", f"<code>{e(r.input_shapes)}</code>", badge(r.status), e(r.remedy),
                      e(fmt_bytes(r.bytes_needed)), e("; ".join(r.tried))] for r in report.remedies], {4})
            + "</section>")


def headroom_section(report: Report) -> str:
    """The maximum-supported-size table (empty without stored `replay headroom` results)."""
    if not report.headroom:
        return ""
    return ('<section id="headroom"><h2>Maximum supported size</h2>'
            "<p>From <code>replay headroom MODEL</code>: the largest input that replays in context without "
            "a failure, run on the device named under confirmed (else the estimate).</p>"
            + table(["model", "largest", "batch", "height", "width", "confirmed", "what fails just above",
                     "estimate's bound", "why they differ", "note"],
                    [[e(h.model), e(h.axis), str(h.batch), str(h.height), str(h.width), e(h.confirmed or "-"),
                      e(h.first_failing_above), e(h.estimate_bound or "-"), e(h.why or "-"), e(h.note)]
                     for h in report.headroom], {2, 3, 4})
            + "</section>")


def summary_table(report: Report) -> str:
    """One row per model, grouped by task and family: calls, signatures, blocked calls, statuses, the
    first blocking op."""
    ids = anchors(report)
    return table(["model", "task", "family", "calls", "signatures", "blocked", "statuses", "first blocking op"],
                 [[f'<a href="#{ids[m.model]}">{e(m.model)}</a>', e(m.task), e(m.family), str(m.calls),
                   str(m.unique_signatures), f"{m.blocked_calls} ({m.blocked_pct:.1f}%)",
                   " ".join(f"{badge(s)} {n}" for s, n in m.by_status.items()), e(first_block_text(m))]
                  for m in grouped(report.models)], {3, 4, 5})


def fix_ops_table(report: Report) -> str:
    """The failing ops by models blocked."""
    if not report.fix_by_op:
        return "<p>Nothing fails.</p>"
    ids = anchors(report)
    return table(["op", "models blocked", "calls", "failing signatures", "statuses"],
                 [[f"<code>{e(f.op)}</code>", f"{len(f.models)}: {model_links(f.models, ids)}", str(f.calls),
                   str(f.failing_signatures), " ".join(f"{badge(s)} {n}" for s, n in f.statuses.items())]
                  for f in report.fix_by_op], {2, 3})


def limits_table(report: Report) -> str:
    """Memory limits per op: the largest tensor that passed and the smallest that failed for memory."""
    if not report.memory_limits:
        return "<p>No op ran out of memory.</p>"
    return table(["op", "passing", "largest pass", "shape", "memory failures", "smallest failure", "shape",
                  "status", "note"],
                 [[f"<code>{e(l.op)}</code>", str(l.passing), e(fmt_bytes(l.largest_pass_bytes)),
                   f"<code>{e(l.largest_pass_shape or '-')}</code>", str(l.failing),
                   e(fmt_bytes(l.smallest_fail_bytes)), f"<code>{e(l.smallest_fail_shape)}</code>",
                   badge(l.smallest_fail_status),
                   "a failure is smaller than a pass: size alone does not explain it" if l.overlap else ""]
                  for l in report.memory_limits], {1, 2, 4, 5})


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    p = report.provenance
    lines = provenance_lines(p)
    shown = [(f'<span class="note">{e(line)}</span>' if line == p.note else e(line)) for line in lines]
    if len(p.traces) > SHOWN:   # the traces line of a zoo: folded, one click away
        shown[-1] = f"<details><summary>{len(p.traces)} traces</summary>{e(lines[-1])}</details>"
    prov = "<br>".join(shown)
    nav = ['<a href="#summary">summary</a>', '<a href="#groups">by task and family</a>' if report.groups else "",
           '<a href="#fix">fix ranking</a>', '<a href="#matrix">ops x models</a>',
           '<a href="#shared">shared signatures</a>', '<a href="#limits">memory limits</a>']
    nav += [f'<a href="#{context_anchor(i)}">{e(c.model)} in context</a>' for i, c in enumerate(report.context)]
    summary, fix_ops, limits = summary_table(report), fix_ops_table(report), limits_table(report)
    legend = table(["status", "meaning"], [[badge(s), e(why)] for s, why in report.statuses.items()])
    warnings = "".join(f'<p class="note">{e(w)}</p>' for w in report.warnings)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>optrace impact report: {e(p.device)} ({e(p.backend)})</title><style>{CSS}</style></head>",
        '<body id="top"><h1>optrace impact report</h1>', f'<div class="prov">{prov}</div>', warnings,
        "<nav><p>" + " ".join(n for n in nav if n) + "</p></nav>",
        f"<h2>Models ({len(report.models)})</h2>", model_index(report),
        '<section id="summary"><h2>Summary</h2>', f'<div class="chart-box">{status_chart(report)}</div>', summary,
        legend, "</section>", groups_section(report),
        '<section id="fix"><h2>Fix ranking</h2><h3>Fix order: by models unblocked</h3>',
        "<p>Each op fixed after the ones above it; a model is unblocked when no op fails in it any more.</p>",
        fix_order_table(report), "<h3>Failing ops, by models blocked</h3>", fix_ops,
        "<h3>Failing signatures, by models blocked</h3>", fix_signatures(report),
        "<h3>Failures by bytes</h3>", bytes_chart(report), "</section>",
        '<section id="matrix"><h2>Ops x models</h2>', grouped_matrix(report), "</section>",
        f'<section id="shared"><h2>Signatures shared by several models ({len(report.shared)})</h2>',
        f"<details><summary>show</summary>{more_in(len(report.shared), 'report.json')}"
        f"{sig_rows(report.shared[:ROWS], with_models=True)}</details>"
        if report.shared else "<p>None.</p>", "</section>",
        '<section id="limits"><h2>Memory limits per op</h2>',
        "<p>Sizes are the largest tensor of the op (padded bytes as replay placed it).</p>", limits, "</section>",
        context_sections(report), remedies_section(report), headroom_section(report),
    ]
    parts += [model_section(i, m) for i, m in enumerate(report.models)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
