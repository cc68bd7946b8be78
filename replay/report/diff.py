"""Two replay runs side by side: which signatures start or stop failing, what each change touches.

``diff_runs(a, b, traces)`` compares two results sets (boards, memory placements, dtypes, ttnn
versions) signature by signature: regressions (passed or skipped in A, failing in B), fixes (the
other way), failures that changed kind (oom_l1 -> cb_overflow), and OOMs whose requested bytes
moved; each with the models, layers and device calls it affects (from the traces, every call
counted once; calls a port folds at load time are no device call). Imports neither torch nor ttnn.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from capture.schema import Trace
from replay.report.attribution import FOLDED, NOT_RUN, attribute, is_failing
from replay.report.text import fmt_bytes
from replay.results import MOCK_NOTE, ReplayResult

# What tells two runs apart, as a label and in "what changed" lines.
RUN_KEYS = ("backend", "device", "memory", "dtype", "ttnn", "mock")


@dataclass(kw_only=True)
class Impact:
    """Where one signature occurs: the models, the layers (module paths) and its device calls."""
    models: list[str]
    layers: list[str]
    calls: int


@dataclass(kw_only=True)
class Change:
    """One signature whose verdict differs between run A and run B."""
    signature_id: str
    op: str
    before: str              # status in A (not_run when A has no result)
    after: str
    reason: str              # B's reason when it fails there, else A's
    impact: Impact
    requested_bytes_before: int | None = None
    requested_bytes_after: int | None = None


@dataclass(kw_only=True)
class RunDiff:
    """Run A against run B: every changed signature, in four kinds, and what set the runs apart."""
    a: str                   # labels (file names)
    b: str
    settings: dict           # RUN_KEYS that differ: key -> [A's, B's]
    regressions: list[Change]
    fixes: list[Change]
    changed: list[Change]    # failing in both, with another status
    oom_moved: list[Change]  # an OOM in both whose requested bytes moved
    only_a: int              # signatures with a result in A only
    only_b: int
    compared: int            # signatures with a result in both
    unchanged: int
    mock: bool               # either run was on ttnn's mock device
    calls_regressed: int = 0
    calls_fixed: int = 0
    models_regressed: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The diff as JSON (``replay diff --json``)."""
        return asdict(self)


def run_settings(header: dict) -> dict:
    """The RUN_KEYS of a results header."""
    return {k: header.get(k) for k in RUN_KEYS}


def impacts(traces: list[Trace]) -> dict[str, Impact]:
    """Signature id -> the models, layers and device calls it has in the traces."""
    att = attribute(traces, [])
    out: dict[str, Impact] = {}
    for m in att.models:
        for sid, calls in m.calls_of().items():
            device = [c for c in calls if c.status != FOLDED]
            imp = out.setdefault(sid, Impact(models=[], layers=[], calls=0))
            if m.model not in imp.models:
                imp.models.append(m.model)
            for c in device:
                layer = c.module_path or "(model)"
                if layer not in imp.layers:
                    imp.layers.append(layer)
            imp.calls += len(device)
    return out


def _requested(r: ReplayResult | None) -> int | None:
    return r.oom.requested_bytes if r is not None and r.oom is not None else None


def _change(sid: str, a: ReplayResult | None, b: ReplayResult | None, impact: Impact | None) -> Change:
    before, after = (a.status if a else NOT_RUN), (b.status if b else NOT_RUN)
    reason = (b.reason if b and is_failing(after) else a.reason if a else "") or ""
    return Change(signature_id=sid, op=(a or b).op, before=before, after=after, reason=reason[:300],
                  impact=impact or Impact(models=[], layers=[], calls=0),
                  requested_bytes_before=_requested(a), requested_bytes_after=_requested(b))


def diff_runs(a: tuple[str, dict, list[ReplayResult]], b: tuple[str, dict, list[ReplayResult]],
              traces: list[Trace]) -> RunDiff:
    """Compare (label, header, results) A with B over the traces' signatures (calls counted from them)."""
    (a_name, a_header, a_results), (b_name, b_header, b_results) = a, b
    ra = {r.signature_id: r for r in a_results}
    rb = {r.signature_id: r for r in b_results}
    imp = impacts(traces)
    kinds: dict[str, list[Change]] = {"regressions": [], "fixes": [], "changed": [], "oom_moved": []}
    both = [sid for sid in ra if sid in rb]
    for sid in both:
        x, y = ra[sid], rb[sid]
        fa, fb = is_failing(x.status), is_failing(y.status)
        kind = ("regressions" if fb and not fa else "fixes" if fa and not fb else
                "changed" if fa and x.status != y.status else
                "oom_moved" if _requested(x) is not None and _requested(y) is not None
                and _requested(x) != _requested(y) else None)
        if kind:
            kinds[kind].append(_change(sid, x, y, imp.get(sid)))
    for changes in kinds.values():
        changes.sort(key=lambda c: (-c.impact.calls, -len(c.impact.models), c.op, c.signature_id))
    sa, sb = run_settings(a_header), run_settings(b_header)
    reg = kinds["regressions"]
    return RunDiff(a=a_name, b=b_name, settings={k: [sa[k], sb[k]] for k in RUN_KEYS if sa[k] != sb[k]},
                   **kinds, only_a=sum(sid not in rb for sid in ra), only_b=sum(sid not in ra for sid in rb),
                   compared=len(both), unchanged=len(both) - sum(len(v) for v in kinds.values()),
                   mock=bool(a_header.get("mock") or b_header.get("mock")),
                   calls_regressed=sum(c.impact.calls for c in reg),
                   calls_fixed=sum(c.impact.calls for c in kinds["fixes"]),
                   models_regressed=sorted({m for c in reg for m in c.impact.models}))


def _rows(title: str, changes: list[Change], limit: int) -> list[str]:
    if not changes:
        return []
    lines = [f"{title} ({len(changes)} signatures, {sum(c.impact.calls for c in changes)} calls):"]
    for c in changes[:limit]:
        moved = ""
        if c.requested_bytes_before is not None or c.requested_bytes_after is not None:
            moved = f"  requested {fmt_bytes(c.requested_bytes_before)} -> {fmt_bytes(c.requested_bytes_after)}"
        layers = ", ".join(c.impact.layers[:3]) + (" ..." if len(c.impact.layers) > 3 else "")
        lines.append(f"  {c.signature_id}  {c.op:34} {c.before} -> {c.after}{moved}")
        lines.append(f"      {c.impact.calls} calls in {', '.join(c.impact.models) or '-'}; layers {layers or '-'}")
        if c.reason and c.after != "pass":
            lines.append(f"      {c.reason[:160]}")
    if len(changes) > limit:
        lines.append(f"  ... {len(changes) - limit} more (--json lists all)")
    return lines


def render_diff(d: RunDiff, limit: int = 20) -> str:
    """The diff for a terminal: what set the runs apart, then each kind of change with its impact."""
    what = "; ".join(f"{k} {v[0]} -> {v[1]}" for k, v in d.settings.items()) or "same settings"
    out = [f"replay diff {d.a} -> {d.b} ({what})",
           f"{d.compared} signatures in both: {len(d.regressions)} regressed, {len(d.fixes)} fixed, "
           f"{len(d.changed)} fail differently, {len(d.oom_moved)} OOMs moved, {d.unchanged} unchanged"
           + (f"; {d.only_a} only in {d.a}" if d.only_a else "") + (f"; {d.only_b} only in {d.b}" if d.only_b else "")]
    if d.mock:
        out.append(f"(results from {MOCK_NOTE}; numerics not checked)")
    for title, changes in (("regressions: start failing", d.regressions), ("fixes: stop failing", d.fixes),
                           ("failing differently", d.changed), ("OOM requested bytes moved", d.oom_moved)):
        out += _rows(title, changes, limit)
    out.append(f"exit status {1 if d.regressions else 0}: "
               + (f"{d.calls_regressed} calls of {', '.join(d.models_regressed)} regressed" if d.regressions
                  else "no regressions"))
    return "\n".join(out) + "\n"


def render_diff_json(d: RunDiff) -> str:
    """The diff as one JSON document."""
    return json.dumps(d.to_json(), indent=1, sort_keys=True) + "\n"


def label(path: str) -> str:
    """A results file as a diff names it."""
    return os.path.basename(path)
