"""Plain-text formats of a Report: the terminal tables, the Markdown summary and the failures CSV."""
from __future__ import annotations

import csv
import io

from replay.report.data import FailureRow, ModelReport, Provenance, Report

MIB = 1 << 20
# Statuses whose reasons are categorical, so the Markdown summary groups calls by reason.
EXPLAINED = ("skipped", "unsupported", "not_run")

# The original study's columns first (kept verbatim so its spreadsheets keep working), then ours.
CSV_COLUMNS = ("Operator", "Input_Shape", "Total_Memory_B", "Total_Memory_MB", "Per_Bank_Memory_B",
               "Per_Bank_Memory_KB", "Num_Banks", "Model", "Module_Path", "Calls", "First_Call", "Status",
               "Buffer_Type", "OOM_Cause", "Device", "Mock_Or_Real", "Backend", "Logical_Bytes",
               "Padded_Bytes", "Reason", "Signature_Id", "Remedy")


def fmt_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> '-'."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def pct(part: int, whole: int) -> str:
    """part as a percentage of whole, one decimal; "-" when whole is 0."""
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def run_kind(mock: bool, backend: str) -> str:
    """'mock', 'real' or 'estimate': what produced a result."""
    if backend in ("estimate", "unknown"):
        return backend
    return "mock" if mock else "real"


def provenance_lines(p: Provenance) -> list[str]:
    """The provenance as text lines: versions, backend, device, placement, the mock/estimate note, traces."""
    lines = [f"optrace {p.optrace}, ttnn {p.ttnn}, torch {p.torch}; backend {p.backend}, device {p.device} "
             f"({run_kind(p.mock, p.backend)}), dtype {p.dtype}, memory {p.memory}"]
    if p.note:
        lines.append(p.note)
    lines.append("traces: " + (", ".join(f"{t.get('model', '?')} ({t.get('path', '?')}"
                                        + (f", sha256 {str(t['sha256'])[:12]}" if t.get("sha256") else "") + ")"
                                        for t in p.traces) or "none"))
    return lines


def first_block_text(m: ModelReport) -> str:
    """The model's first blocking op in one line, or "none"."""
    f = m.first_block
    if f is None:
        return "none" + (" (some calls not run)" if m.by_status.get("not_run") else "")
    req = f", requested {fmt_bytes(f.requested_bytes)} {f.buffer_type}" if f.requested_bytes is not None else ""
    return (f"call {f.call_index} in {f.module_path or '(model)'}: {f.op} {f.input_shapes} -> "
            f"{f.status}{req}")


def folded_text(m: ModelReport, ops: int = 4) -> str:
    """What a port computes at load time, in one line: calls, the top ops, the bytes it then uploads."""
    f = m.folded
    if f is None:
        return "none"
    top = ", ".join(f"{op} {n}" for op, n in list(f.ops.items())[:ops])
    more = f", {len(f.ops) - ops} more ops" if len(f.ops) > ops else ""
    return (f"{f.calls} calls ({top}{more}); a port uploads {f.upload_count} folded results, "
            f"{fmt_bytes(f.upload_bytes)} as traced ({fmt_bytes(f.new_upload_bytes)} not views of weights)")


# ---------------------------------------------------------------------------------------------
# Terminal

def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
            for r in rows]


TERMINAL_TABLES = 20   # more models than this: one line each in the terminal (the tables are in the report)


def zoo_lines(report: Report) -> list[str]:
    """A zoo in the terminal: one line per model, one per task, the first steps of the fix order."""
    out = [""] + [f"{m.model} ({m.task}/{m.family}): {m.calls} calls, {m.blocked_calls} blocked "
                  f"({m.blocked_pct:.1f}%); first blocking: {first_block_text(m)}" for m in report.models]
    out += [""] + [f"task {g.name}: {len(g.models)} models, {g.models_blocked} blocked, {g.blocked_calls} of "
                   f"{g.calls} calls blocked" for g in report.groups if g.kind == "task"]
    if report.fix_order:
        out.append("fix order (op: models unblocked, so far): " + "; ".join(
            f"{st.op} {len(st.unblocks)}, {st.unblocked_total}" for st in report.fix_order[:5]))
    return out


def render_terminal(report: Report) -> str:
    """One compact table per model (one line each for a zoo) and a one-line provenance."""
    lines = provenance_lines(report.provenance)
    if len(report.provenance.traces) > TERMINAL_TABLES:
        lines[-1] = f"traces: {len(report.provenance.traces)} (listed in report.html and report.json)"
    out = lines + [f"warning: {w}" for w in report.warnings]
    if len(report.models) > TERMINAL_TABLES:
        out += zoo_lines(report)
    for m in report.models if len(report.models) <= TERMINAL_TABLES else []:
        out.append("")
        out.append(f"{m.model}: {m.calls} calls, {m.unique_signatures} signatures, "
                   f"{m.blocked_calls} blocked ({m.blocked_pct:.1f}%)")
        rows = [["status", "calls", "%"]] + [[s, str(n), pct(n, m.calls)] for s, n in m.by_status.items()]
        out += ["  " + line for line in _table(rows, {1, 2})]
        out.append("  first blocking: " + first_block_text(m))
        if m.folded:
            out.append("  folded (load time): " + folded_text(m))
    out += context_lines(report) + headroom_lines(report)
    if report.fix_by_op:
        out.append("")
        out.append("fix first (op: models blocked, calls): " + "; ".join(
            f"{f.op} {len(f.models)}/{f.calls}" for f in report.fix_by_op[:5]))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown

def _md(text: object) -> str:
    """A table cell: pipes escaped, newlines flattened, angle brackets made inert."""
    s = " ".join(str(text).split())
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") or "-"


def render_markdown(report: Report, top: int = 15) -> str:
    """A summary to paste into an issue."""
    p = report.provenance
    out = ["# optrace impact report", ""]
    out += [_md(line) + "  " for line in provenance_lines(p)]
    out += [f"**warning:** {_md(w)}  " for w in report.warnings]
    out += ["", "## Models", "",
            "| model | calls | signatures | blocked | statuses | first blocking op |",
            "|---|---:|---:|---:|---|---|"]
    for m in report.models:
        statuses = ", ".join(f"{s} {n}" for s, n in m.by_status.items())
        out.append(f"| {_md(m.model)} | {m.calls} | {m.unique_signatures} | {m.blocked_calls} "
                   f"({m.blocked_pct:.1f}%) | {_md(statuses)} | {_md(first_block_text(m))} |")
    out += groups_markdown(report) + fix_order_markdown(report, top)
    out += fix_markdown(report, top) + folded_markdown(report, top) + reasons_markdown(report, top)
    out += limits_markdown(report, top)
    out += context_markdown(report, top) + remedies_markdown(report, top) + headroom_markdown(report)
    out += ["", "## Statuses", ""] + [f"- `{s}`: {_md(why)}" for s, why in report.statuses.items()]
    return "\n".join(out) + "\n"


def _names(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def groups_markdown(report: Report) -> list[str]:
    """Markdown of the summaries per task and per family (nothing when every model is "unknown")."""
    if not report.groups or all(g.name == "unknown" for g in report.groups):
        return []
    out = []
    for kind in ("task", "family"):
        out += ["", f"## Per {kind}", "", f"| {kind} | models | blocked | with a failing op | blocked calls | "
                "failing in most models |", "|---|---:|---:|---:|---:|---|"]
        for g in (g for g in report.groups if g.kind == kind):
            ops = ", ".join(f"{o} ({n})" for o, n in g.top_ops.items())
            out.append(f"| {_md(g.name)} | {len(g.models)} | {g.models_blocked} | {g.models_failing} | "
                       f"{g.blocked_calls} of {g.calls} | {_md(ops)} |")
    return out


def fix_order_markdown(report: Report, top: int) -> list[str]:
    """Markdown of the fix order: each op fixed after the ones above it, and the models that then run."""
    if not report.fix_order:
        return []
    out = ["", "## Fix order: by models unblocked", "",
           "| step | fix op | models it fails in | unblocks | unblocked so far | still blocked |",
           "|---:|---|---:|---|---:|---:|"]
    for i, st in enumerate(report.fix_order[:top]):
        out.append(f"| {i + 1} | {_md(st.op)} | {st.models_blocked} | {len(st.unblocks)}"
                   f"{': ' + _md(_names(st.unblocks)) if st.unblocks else ''} | {st.unblocked_total} | "
                   f"{st.still_blocked} |")
    return out


def fix_markdown(report: Report, top: int) -> list[str]:
    """Markdown of the fix ranking: failing ops, then failing signatures, by models blocked."""
    out: list[str] = []
    if report.fix_by_op:
        out += ["", "## Fix first: failing ops by models blocked", "",
                "| op | models blocked | calls | failing signatures | statuses |", "|---|---:|---:|---:|---|"]
        for f in report.fix_by_op[:top]:
            out.append(f"| {_md(f.op)} | {len(f.models)} ({_md(_names(f.models))}) | {f.calls} | "
                       f"{f.failing_signatures} | {_md(', '.join(f'{s} {n}' for s, n in f.statuses.items()))} |")
        out += ["", "## Failing signatures by models blocked", "",
                "| op | input shapes | status | models | calls | requested | reason |",
                "|---|---|---|---:|---:|---:|---|"]
        for r in report.fix_by_signature[:top]:
            out.append(f"| {_md(r.op)} | {_md(r.input_shapes)} | {r.status} | {len(r.models)} | {r.calls} | "
                       f"{fmt_bytes(r.requested_bytes)} | {_md(r.reason[:160])} |")
        if len(report.fix_by_signature) > top:
            out.append(f"\n{len(report.fix_by_signature) - top} more failing signatures in report.html.")
    return out


def folded_markdown(report: Report, top: int) -> list[str]:
    """Markdown of what each model folds: calls and ops a port computes at load time, the results it uploads."""
    models = [m for m in report.models if m.folded]
    if not models:
        return []
    out = ["", "## Folded: computed at load time from weights/buffers", "",
           "| model | folded calls | ops | folded results uploaded | bytes (as traced) | not views of weights |",
           "|---|---:|---|---:|---:|---:|"]
    for m in models:
        f = m.folded
        out.append(f"| {_md(m.model)} | {f.calls} | {_md(', '.join(f'{op} {n}' for op, n in f.ops.items()))} | "
                   f"{f.upload_count} | {fmt_bytes(f.upload_bytes)} | {fmt_bytes(f.new_upload_bytes)} |")
    out += ["", "Largest folded results a port uploads:", "",
            "| model | shape | dtype | bytes | made by | first read by (call, module) |", "|---|---|---|---:|---|---|"]
    for m in models:
        for u in m.folded.uploads[:top]:
            out.append(f"| {_md(m.model)} | {u.shape} | {u.dtype} | {fmt_bytes(u.bytes)} | "
                       f"{_md(u.produced_by_op)} (call {u.produced_by_call}) | {u.first_use_call}, "
                       f"{_md(u.module_path or '(model)')}{' (view of a weight)' if u.view_of_weight else ''} |")
    return out


def reasons_markdown(report: Report, top: int) -> list[str]:
    """Markdown of why calls were not replayed or not supported (skipped, unsupported, not_run), all models."""
    out: list[str] = []
    reasons: dict[tuple[str, str], int] = {}
    for m in report.models:
        for r in m.reasons:
            if r.status not in EXPLAINED:
                continue  # failures are in the fix ranking; their reasons differ by sizes
            reasons[(r.status, r.reason)] = reasons.get((r.status, r.reason), 0) + r.calls
    if reasons:
        out += ["", "## Calls not replayed or not supported, and why (all models)", "", "| status | reason | calls |", "|---|---|---:|"]
        ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        for (status, why), n in ranked[:top]:
            out.append(f"| {status} | {_md(why[:200])} | {n} |")
        if len(ranked) > top:
            out.append(f"\n{len(ranked) - top} more reasons in report.html.")
    return out


def limits_markdown(report: Report, top: int) -> list[str]:
    """Markdown of the memory limits per op."""
    out: list[str] = []
    if report.memory_limits:
        out += ["", "## Memory limits per op", "",
                "| op | largest pass | smallest memory failure | status |", "|---|---:|---:|---|"]
        for ml in report.memory_limits[:top]:
            out.append(f"| {_md(ml.op)} | {fmt_bytes(ml.largest_pass_bytes)} | {fmt_bytes(ml.smallest_fail_bytes)} "
                       f"| {ml.smallest_fail_status}{' (overlaps a pass)' if ml.overlap else ''} |")
    return out


def context_lines(report: Report) -> list[str]:
    """Terminal lines of an in-context run: peaks, first failure, ops that fail only in context."""
    out = []
    for c in report.context:
        out += ["", f"{c.model} in context ({c.backend}): peak DRAM {fmt_bytes(c.peak_dram_bytes)} (call "
                    f"{c.peak_dram_call}), peak L1 {fmt_bytes(c.peak_l1_bytes)}; {c.failing_calls} calls fail in "
                    f"context ({c.cascaded_calls} only because a producer failed); "
                    f"{c.isolated_pass_context_fail} signatures pass alone but fail in context",
                f"  first failure in context: {c.first_failure_text}"]
        if c.remedy_verdict:
            out += [f"  remedies in context: {'; '.join(c.remedy_changes) or 'none found'}",
                    f"  {c.remedy_verdict}"]
    return out


def context_markdown(report: Report, top: int) -> list[str]:
    """Markdown of the in-context runs: peaks, the first failure, verdicts alone and in context."""
    out = []
    for c in report.context:
        out += ["", f"## {_md(c.model)} in context: isolated and in-context verdicts", "",
                f"Peak DRAM {fmt_bytes(c.peak_dram_bytes)} (after call {c.peak_dram_call}), peak L1 "
                f"{fmt_bytes(c.peak_l1_bytes)}; resident before the first call: "
                + _md(", ".join(f"{k} {fmt_bytes(v)}" for k, v in c.resident_bytes.items() if k != "failed"))
                + f". First failure in context: {_md(c.first_failure_text)}.", ""]
        if c.rows:
            out += ["| call | module | op | input shapes | alone | in context | failing calls | why | remedy |",
                    "|---:|---|---|---|---|---|---:|---|---|"]
            for r in c.rows[:top]:
                out.append(f"| {r.first_call} | {_md(r.module_path)} | {_md(r.op)} | {_md(r.input_shapes)} | "
                           f"{r.isolated_status} | {r.context_status} | {r.failing_calls} | {_md(r.why_text)} | "
                           f"{_md(r.remedy)} |")
        out += context_remedies_markdown(c, top)
    return out


def context_remedies_markdown(c, top: int) -> list[str]:
    """Markdown of the remedies in context: the changes, the replay that checks them, the calls."""
    if not c.remedy_verdict:
        return []
    out = ["", f"### Remedies in context: {_md('; '.join(c.remedy_changes) or 'none found')}", "",
           f"{_md(c.remedy_verdict)}.", "",
           "| call | module | op | in context | change | bytes freed | fixed by call | with every change |",
           "|---:|---|---|---|---|---:|---:|---|"]
    for r in c.remedies[:top]:
        out.append(f"| {r.call} | {_md(r.module_path)} | {_md(r.op)} | {r.status} | {_md(r.remedy)} | "
                   f"{fmt_bytes(r.bytes_freed)} | {r.fixed_by if r.fixed_by is not None else '-'} | "
                   f"{'passes' if r.passes else 'still fails'} |")
    if len(c.remedies) > top:
        out.append(f"| | | {len(c.remedies) - top} more calls in report.html and report.json | | | | | |")
    return out


def remedies_markdown(report: Report, top: int) -> list[str]:
    """Markdown of the remedies table (nothing when no remedy was tried)."""
    if not report.remedies:
        return []
    out = ["", "## Remedies: the cheapest configuration that runs", "",
           "| op | input shapes | status | remedy | bytes needed |", "|---|---|---|---|---:|"]
    for r in report.remedies[:top]:
        out.append(f"| {_md(r.op)} | {_md(r.input_shapes)} | {r.status} | {_md(r.remedy)} | "
                   f"{fmt_bytes(r.bytes_needed)} |")
    return out


def headroom_markdown(report: Report) -> list[str]:
    """Markdown of the maximum-supported-size table (nothing without stored headroom results)."""
    if not report.headroom:
        return []
    out = ["", "## Maximum supported size", "",
           ("| model | largest | batch | height | width | confirmed | what fails just above | estimate's bound | "
            "why they differ |"), "|---|---|---:|---:|---:|---|---|---|---|"]
    for h in report.headroom:
        out.append(f"| {_md(h.model)} | {_md(h.axis)} | {h.batch} | {h.height} | {h.width} | {h.confirmed or '-'} | "
                   f"{_md(h.first_failing_above)} | {_md(h.estimate_bound)} | {_md(h.why)} |")
    return out


def headroom_lines(report: Report) -> list[str]:
    """Terminal lines of the maximum-supported-size table (stored `replay headroom` results)."""
    if not report.headroom:
        return []
    out = ["", "maximum supported size (replay headroom):"]
    for h in report.headroom:
        out.append(f"  {h.model} largest {h.axis or 'size'}: batch {h.batch}, {h.height} x {h.width} "
                   f"({'confirmed on the ' + h.confirmed + ' device' if h.confirmed else 'estimate'}); "
                   f"just above: {h.first_failing_above}")
        if h.why:
            out.append(f"    estimate's bound {h.estimate_bound}: {h.why}")
    return out


# ---------------------------------------------------------------------------------------------
# CSV

def csv_row(f: FailureRow) -> dict:
    """One failures.csv row (CSV_COLUMNS) of a FailureRow."""
    def maybe(n, div=1, digits=0):
        if n is None:
            return ""
        return n if div == 1 else f"{n / div:.{digits}f}"
    return {
        "Operator": f.op, "Input_Shape": f.input_shapes,
        "Total_Memory_B": maybe(f.requested_bytes), "Total_Memory_MB": maybe(f.requested_bytes, MIB, 3),
        "Per_Bank_Memory_B": maybe(f.per_bank_bytes), "Per_Bank_Memory_KB": maybe(f.per_bank_bytes, 1024, 3),
        "Num_Banks": maybe(f.num_banks), "Model": f.model, "Module_Path": f.module_path, "Calls": f.calls,
        "First_Call": f.first_call, "Status": f.status, "Buffer_Type": f.buffer_type, "OOM_Cause": f.oom_cause,
        "Device": f.device, "Mock_Or_Real": run_kind(f.mock, f.backend), "Backend": f.backend,
        "Logical_Bytes": f.logical_bytes, "Padded_Bytes": f.padded_bytes, "Reason": f.reason,
        "Signature_Id": f.signature_id, "Remedy": f.remedy,
    }


def render_csv(report: Report) -> str:
    """failures.csv: one row per blocked (model, signature, module path); MB = B / 2**20, KB = B / 1024."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for m in report.models:
        for f in m.failures:
            w.writerow(csv_row(f))
    return buf.getvalue()
