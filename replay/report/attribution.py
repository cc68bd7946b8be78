"""Attribution: fan each replay result out to every call of its signature, model by model.

Imports neither torch nor ttnn. Replay runs each unique signature once; this module copies its
result back to every call that has that signature, in every trace, keeping the model, call index
and module path. The invariant the reports rest on (checked by ``reconcile``): for every model,
the calls counted under all statuses add up to exactly the calls in its trace.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from capture.schema import Signature, Trace
from replay.lineage import Lineage, lineage
from replay.results import BLOCKING, MEMORY_FAILURES, STATUSES, ReplayResult

NOT_RUN = "not_run"
NOT_RUN_NOTE = "no result: the run stopped before this signature was replayed"
# Every status a report can show: the replay statuses plus not_run, which only attribution creates.
REPORT_STATUSES = {**STATUSES, NOT_RUN: NOT_RUN_NOTE}
FOLDED = "folded"
# A call is blocked unless it passed, a port would not issue it, or a port computes it at load time
# (folded, from the trace's lineage); not_run is blocked (unproven).
UNBLOCKED = ("pass", "skipped", FOLDED)
# Statuses that show a failure a fix could remove (not_run is unknown, not a failure).
FAILING = BLOCKING
# Worst first: which status a cell of the ops x models matrix shows when it holds several.
SEVERITY = ("crash", "timeout", "oom_dram", "oom_l1", "oom_l1_small", "cb_overflow", "ttnn_error",
            "mismatch", "unsupported", NOT_RUN, "skipped", FOLDED, "pass")


class AttributionError(AssertionError):
    """Attributed calls do not add up to a trace's calls: a bug in optrace, never in the input."""


def status_order(statuses) -> list[str]:
    """Statuses in display order (pass first, then the REPORT_STATUSES order, unknown ones last)."""
    known = list(REPORT_STATUSES)
    return sorted(set(statuses), key=lambda s: (known.index(s) if s in known else len(known), s))


def worst_status(statuses) -> str:
    """The most severe of some statuses (unknown statuses rank just after crash)."""
    rank = {s: i for i, s in enumerate(SEVERITY)}
    return min(statuses, key=lambda s: (rank.get(s, 0.5), s))


def is_blocked(status: str) -> bool:
    """A call with this status blocks its model: anything but pass and skipped (not_run is unproven)."""
    return status not in UNBLOCKED


def is_failing(status: str) -> bool:
    """A status a fix could remove: a replay failure, or a status newer than this optrace."""
    return status in FAILING or status not in REPORT_STATUSES


@dataclass(kw_only=True)
class AttributedCall:
    """One call of a trace with the status its signature's result gave it."""
    index: int               # call index in the trace (execution order)
    signature_id: str
    op: str                  # aten overload
    module_path: str         # innermost module executing the call; "" is the root model
    module_class: str
    status: str              # a REPORT_STATUSES key (or a status a newer replay invented); folded from the lineage


@dataclass(kw_only=True)
class ModelAttribution:
    """All calls of one model's trace, in execution order, each with a status."""
    model: str
    trace_path: str
    trace_sha256: str
    calls: list[AttributedCall]
    signature_ids: list[str]  # unique, in order of first call
    lineage: Lineage          # which calls are folded, and the folded results a port uploads

    def by_status(self) -> dict[str, int]:
        """Calls per status, display order, only statuses that occur."""
        counts = Counter(c.status for c in self.calls)
        return {s: counts[s] for s in status_order(counts)}

    def calls_of(self) -> dict[str, list[AttributedCall]]:
        """Signature id -> its calls in this model."""
        out: dict[str, list[AttributedCall]] = {}
        for c in self.calls:
            out.setdefault(c.signature_id, []).append(c)
        return out


@dataclass(kw_only=True)
class Attribution:
    """Every model's attributed calls, with the signatures and results they rest on."""
    models: list[ModelAttribution]
    signatures: dict[str, Signature]          # id -> the signature (as the first trace holding it has it)
    results: dict[str, ReplayResult]          # id -> result, only ids some trace holds
    orphan_results: list[str] = field(default_factory=list)  # result ids no trace holds

    def status(self, signature_id: str) -> str:
        """The status of a signature's result; not_run when it has none."""
        r = self.results.get(signature_id)
        return r.status if r else NOT_RUN

    def models_of(self) -> dict[str, list[str]]:
        """Signature id -> models using it, in model order."""
        out: dict[str, list[str]] = {}
        for m in self.models:
            for sid in m.signature_ids:
                out.setdefault(sid, []).append(m.model)
        return out


def model_name(trace: Trace) -> str:
    """The model a trace holds, as the reports name it."""
    return trace.model_name


def attribute(traces: list[Trace], results: list[ReplayResult], trace_sha256: dict[str, str] | None = None
              ) -> Attribution:
    """Give every call of every trace the status of its signature's result (not_run when none)."""
    by_id = {r.signature_id: r for r in results}
    signatures: dict[str, Signature] = {}
    models: list[ModelAttribution] = []
    seen_names: Counter = Counter()
    for trace in traces:
        name = model_name(trace)
        seen_names[name] += 1
        if seen_names[name] > 1:  # the same model twice (two resolutions, say): keep both apart
            name = f"{name} ({trace.path or seen_names[name]})"
        lin = lineage(trace)
        calls = []
        for call in trace.calls:
            sig = trace.signatures[call.signature]
            signatures.setdefault(sig.id, sig)
            r = by_id.get(sig.id)
            status = FOLDED if lin.is_folded(call.index) else r.status if r else NOT_RUN
            calls.append(AttributedCall(index=call.index, signature_id=sig.id, op=sig.op,
                                        module_path=trace.module_path(call), module_class=trace.module_class(call),
                                        status=status))
        order = list(dict.fromkeys(c.signature_id for c in calls))
        models.append(ModelAttribution(model=name, trace_path=trace.path,
                                       trace_sha256=(trace_sha256 or {}).get(trace.path, ""), calls=calls,
                                       signature_ids=order, lineage=lin))
    att = Attribution(models=models, signatures=signatures,
                      results={k: v for k, v in by_id.items() if k in signatures},
                      orphan_results=sorted(k for k in by_id if k not in signatures))
    reconcile(att, traces)
    return att


def reconcile(att: Attribution, traces: list[Trace]) -> None:
    """Raise AttributionError unless each model's calls by status add up to its trace's calls,
    each call counted once, and each call's status is its signature's result's status (folded
    exactly when the lineage folds the call)."""
    if len(att.models) != len(traces):
        raise AttributionError(f"{len(traces)} traces but {len(att.models)} models attributed")
    for m, trace in zip(att.models, traces):
        total = sum(m.by_status().values())
        if total != len(trace.calls) or len(m.calls) != len(trace.calls):
            raise AttributionError(f"{m.model}: {total} calls attributed, trace has {len(trace.calls)}")
        if [c.index for c in m.calls] != list(range(len(trace.calls))):
            raise AttributionError(f"{m.model}: calls counted twice or dropped")
        per_sig = Counter(c.signature_id for c in m.calls)
        for sig in trace.signatures:
            if per_sig[sig.id] != sig.count:
                raise AttributionError(f"{m.model}: signature {sig.id} has {sig.count} calls, "
                                       f"{per_sig[sig.id]} attributed")
        for c in m.calls:
            want = FOLDED if m.lineage.is_folded(c.index) else att.status(c.signature_id)
            if c.status != want:
                raise AttributionError(f"{m.model}: call {c.index} has status {c.status}, it should be {want}")
