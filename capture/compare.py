"""Eager vs export op sets of one model: what a compiled (torch.export) flow meets that eager does not.

An op only in the eager trace is a replay failure a compiled flow would not meet (it decomposes or
fuses it away); an op only in the export trace is one it meets that eager replay never tried.
Shapes are compared per (module path, op): the same module calling the same op with different
argument shapes in the two flows (e.g. a decomposition that reshapes first) is listed.
Imports neither torch nor ttnn: it reads two trace files.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from capture.schema import Trace


@dataclass
class OpCounts:
    """One op with its number of calls in each flow (0: the flow never calls it)."""
    op: str
    eager_calls: int
    export_calls: int


@dataclass
class ShapeDiff:
    """A (module path, op) whose calls take different argument shapes in the two flows."""
    module_path: str
    op: str
    eager_shapes: Counter     # argument-shapes text -> calls
    export_shapes: Counter


@dataclass
class Comparison:
    model: str
    eager_calls: int
    export_calls: int
    eager_signatures: int
    export_signatures: int
    decompositions: str
    ops: list[OpCounts]
    shape_diffs: list[ShapeDiff] = field(default_factory=list)

    @property
    def only_eager(self) -> list[OpCounts]:
        return [o for o in self.ops if o.export_calls == 0]

    @property
    def only_export(self) -> list[OpCounts]:
        return [o for o in self.ops if o.eager_calls == 0]

    @property
    def in_both(self) -> list[OpCounts]:
        return [o for o in self.ops if o.eager_calls and o.export_calls]


def _shapes_text(trace: Trace, args: list) -> str:
    """The tensor arguments of a call as '1x64x80x80, 64x64x3x3' (lists bracketed)."""
    def one(v):
        tag, payload = v
        if tag == "T":
            return "x".join(map(str, trace.tensors[payload].shape)) or "scalar"
        if tag == "list" and any(x[0] == "T" for x in payload):
            return "[" + ", ".join(one(x) for x in payload if x[0] == "T") + "]"
        return None
    return ", ".join(s for s in map(one, args) if s is not None)


def _shapes_by_site(trace: Trace) -> dict[tuple[str, str], Counter]:
    sites: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for c in trace.calls:
        sites[(trace.module_path(c), trace.op_name(c))][_shapes_text(trace, c.args)] += 1
    return sites


def compare_traces(eager: Trace, export: Trace) -> Comparison:
    """Op sets, calls per op, and per-site shape differences of two traces of one model."""
    ce = Counter(eager.op_name(c) for c in eager.calls)
    cx = Counter(export.op_name(c) for c in export.calls)
    ops = [OpCounts(op, ce[op], cx[op]) for op in sorted(set(ce) | set(cx))]
    se, sx = _shapes_by_site(eager), _shapes_by_site(export)
    diffs = [ShapeDiff(path, op, se[(path, op)], sx[(path, op)])
             for (path, op) in sorted(set(se) & set(sx)) if se[(path, op)] != sx[(path, op)]]
    return Comparison(str(eager.header["model"]["name"]), len(eager.calls), len(export.calls),
                      len(eager.signatures), len(export.signatures),
                      str(export.header.get("decompositions", "")), ops, diffs)


def _shapes_cell(shapes: Counter, limit: int = 2) -> str:
    items = [f"{k} x{n}" if n > 1 else k for k, n in shapes.most_common(limit)]
    more = len(shapes) - limit
    return "; ".join(items) + (f"; +{more} more" if more > 0 else "")


def render_comparison(c: Comparison, max_shape_rows: int = 25) -> str:
    """The comparison as plain text for the terminal."""
    lines = [f"{c.model}: eager {c.eager_calls} calls / {c.eager_signatures} signatures, "
             f"export ({c.decompositions or 'no decompositions'}) {c.export_calls} calls / "
             f"{c.export_signatures} signatures",
             f"ops: {len(c.in_both)} in both, {len(c.only_eager)} only eager, {len(c.only_export)} only export"]

    def table(title: str, rows: list[OpCounts]):
        lines.append("")
        lines.append(title)
        if not rows:
            lines.append("  (none)")
            return
        width = max(len(o.op) for o in rows)
        lines.append(f"  {'op':{width}}  {'eager':>6}  {'export':>6}")
        for o in sorted(rows, key=lambda o: (-(o.eager_calls + o.export_calls), o.op)):
            lines.append(f"  {o.op:{width}}  {o.eager_calls:>6}  {o.export_calls:>6}")

    table("only eager (a compiled flow never meets these; eager replay failures here do not block it):",
          c.only_eager)
    table("only export (a compiled flow meets these; eager replay never tried them):", c.only_export)
    table("in both (calls per flow):", c.in_both)
    lines.append("")
    lines.append(f"shapes that differ, same module and op ({len(c.shape_diffs)}):")
    if not c.shape_diffs:
        lines.append("  (none)")
    for d in c.shape_diffs[:max_shape_rows]:
        lines.append(f"  {d.module_path or '<root>'}  {d.op}")
        lines.append(f"    eager:  {_shapes_cell(d.eager_shapes)}")
        lines.append(f"    export: {_shapes_cell(d.export_shapes)}")
    if len(c.shape_diffs) > max_shape_rows:
        lines.append(f"  ... and {len(c.shape_diffs) - max_shape_rows} more")
    return "\n".join(lines)
