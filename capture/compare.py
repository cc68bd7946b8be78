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
    """A (module path, op) whose calls take different argument shapes in the two flows.

    Repeated blocks with the same difference are folded into one: ``module_path`` is then a
    pattern (``layers.2.blocks.*.attn``) and ``modules`` counts them.
    """
    module_path: str
    op: str
    only_eager: Counter       # argument-shapes text -> calls, shapes the export flow lacks
    only_export: Counter
    modules: int = 1


@dataclass(kw_only=True)
class Comparison:
    """Eager vs export of one model: call and signature counts, every op's calls, shape differences."""
    model: str
    eager_calls: int
    export_calls: int
    eager_signatures: int
    export_signatures: int
    decompositions: str
    ops: list[OpCounts]
    shape_diffs: list[ShapeDiff] = field(default_factory=list)
    shared_signatures: int = 0    # signature ids in both traces: replay results carry over

    @property
    def only_eager(self) -> list[OpCounts]:
        """Ops the export flow never calls."""
        return [o for o in self.ops if o.export_calls == 0]

    @property
    def only_export(self) -> list[OpCounts]:
        """Ops the eager flow never calls."""
        return [o for o in self.ops if o.eager_calls == 0]

    @property
    def in_both(self) -> list[OpCounts]:
        """Ops both flows call."""
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
    ops = [OpCounts(op=op, eager_calls=ce[op], export_calls=cx[op]) for op in sorted(set(ce) | set(cx))]
    shared = len({s.id for s in eager.signatures} & {s.id for s in export.signatures})
    return Comparison(model=eager.model_name, eager_calls=len(eager.calls), export_calls=len(export.calls),
                      eager_signatures=len(eager.signatures), export_signatures=len(export.signatures),
                      decompositions=str(export.header.get("decompositions", "")), ops=ops,
                      shape_diffs=_fold(_shapes_by_site(eager), _shapes_by_site(export)), shared_signatures=shared)


def _fold(se: dict, sx: dict) -> list[ShapeDiff]:
    """Per-site differences, repeated blocks with the same difference folded into one pattern."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for path, op in sorted(set(se) & set(sx), key=lambda k: (_natural(k[0]), k[1])):
        e, x = se[(path, op)], sx[(path, op)]
        if e != x:
            groups[(op, frozenset((e - x).items()), frozenset((x - e).items()))].append(path)
    diffs = []
    for (op, e, x), paths in groups.items():
        if len(paths) == 1:
            path = paths[0]
        else:  # digits that vary between the folded paths become '*'
            parts = [p.split(".") for p in paths]
            same_depth = len({len(p) for p in parts}) == 1
            path = ".".join(seg if len({p[i] for p in parts}) == 1 else "*" for i, seg in enumerate(parts[0])) \
                if same_depth else f"{paths[0]} (+{len(paths) - 1} like it)"
        diffs.append(ShapeDiff(module_path=path, op=op, only_eager=Counter(dict(e)), only_export=Counter(dict(x)),
                               modules=len(paths)))
    return diffs


def _natural(path: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split(".")]


def _shapes_cell(shapes: Counter, limit: int = 3) -> str:
    items = [f"{k} x{n}" if n > 1 else k for k, n in shapes.most_common(limit)]
    more = len(shapes) - limit
    return "; ".join(items) + (f"; +{more} more" if more > 0 else "")


def render_comparison(c: Comparison, max_shape_rows: int = 25) -> str:
    """The comparison as plain text for the terminal."""
    lines = [f"{c.model}: eager {c.eager_calls} calls / {c.eager_signatures} signatures, "
             f"export ({c.decompositions or 'no decompositions'}) {c.export_calls} calls / "
             f"{c.export_signatures} signatures ({c.shared_signatures} signatures in both)",
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
        where = d.module_path or "<root>"
        lines.append(f"  {where}  {d.op}" + (f"  ({d.modules} modules)" if d.modules > 1 else ""))
        lines.append(f"    only eager:  {_shapes_cell(d.only_eager) or '-'}")
        lines.append(f"    only export: {_shapes_cell(d.only_export) or '-'}")
    if len(c.shape_diffs) > max_shape_rows:
        lines.append(f"  ... and {len(c.shape_diffs) - max_shape_rows} more")
    return "\n".join(lines)
