"""Changes a port can make to how a model holds its tensors, applied to an in-context replay.

A ``ContextChanges`` says, by trace tensor and call index, what the port does differently from
the run's settings: hold some activations (or all weights: parameters and buffers) in DRAM, hold
float weights in bfloat8_b, free a tensor right after its own last use (the plan keeps a tensor
until the last use of any tensor of its storage: right for a view that shares the buffer, one call
too long when the port's reshape made a new one), and replay some reshapes/permutes with their
size-1 trailing dims folded away. Both in-context backends (replay/context/estimate.py,
replay/context/worker.py) apply the same changes through the helpers here;
replay/studies/context_remedies.py searches for the cheapest ones. Imports neither torch nor ttnn.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from capture.schema import Trace
from replay.context.plan import ContextPlan, Resident
from replay.mapping import Case, InputTensor, PortSettings, Replay, plan_replay
from replay.shapes import fold_trailing_ones

WEIGHT_DTYPE = "bfloat8_b"


@dataclass(kw_only=True)
class ContextChanges:
    """What the port changes, relative to the run's settings (empty: nothing)."""
    dram_tensors: list[int] = field(default_factory=list)   # activations held in DRAM: written and read there
    weights_dram: bool = False                               # every parameter and buffer held in DRAM
    weights_dtype: str = ""                                  # "bfloat8_b": float parameters and buffers held so
    free_early: list[int] = field(default_factory=list)     # tensors freed after their own last use
    fold_calls: list[int] = field(default_factory=list)     # reshape/permute calls with trailing 1s folded

    def to_json(self) -> dict:
        """The changes as plain JSON (what the ttnn worker gets and the results header stores)."""
        return asdict(self)

    @staticmethod
    def from_json(d: dict | str | None) -> "ContextChanges":
        """Read changes back from to_json's dict (or its JSON text); None is no change."""
        if isinstance(d, str):
            d = json.loads(d)
        return ContextChanges(**(d or {}))

    def __bool__(self) -> bool:
        return bool(self.dram_tensors or self.weights_dram or self.weights_dtype or self.free_early
                    or self.fold_calls)

    def plus(self, other: "ContextChanges") -> "ContextChanges":
        """These changes and other's together."""
        return ContextChanges(dram_tensors=sorted(set(self.dram_tensors) | set(other.dram_tensors)),
                              weights_dram=self.weights_dram or other.weights_dram,
                              weights_dtype=other.weights_dtype or self.weights_dtype,
                              free_early=sorted(set(self.free_early) | set(other.free_early)),
                              fold_calls=sorted(set(self.fold_calls) | set(other.fold_calls)))


def is_weight(plan: ContextPlan, tid: int) -> bool:
    """A parameter or buffer of the model (weights, norm statistics): what a port uploads once."""
    return plan.tensors[tid].kind in ("param", "buffer")


def is_float(plan: ContextPlan, tid: int) -> bool:
    """A float tensor in the trace."""
    return plan.tensors[tid].dtype.startswith(("float", "bfloat"))


def with_frees(plan: ContextPlan, changes: ContextChanges) -> ContextPlan:
    """The plan with each ``free_early`` tensor freed after the last call that uses it (itself, not its storage)."""
    if not changes.free_early:
        return plan
    wanted = set(changes.free_early)
    last: dict[int, int] = {}
    for i, s in enumerate(plan.steps):
        for t in s.arg_order + s.outputs:
            if t in wanted:
                last[t] = i
    steps = [replace(s, free_after=list(s.free_after)) for s in plan.steps]
    for t, i in sorted(last.items()):
        steps[i].free_after.append(t)
    return replace(plan, steps=steps)


def held_spec(plan: ContextPlan, tid: int | None, spec: InputTensor, changes: ContextChanges) -> InputTensor:
    """How a tensor is held under the changes, given how the run's settings would hold it."""
    if tid is None or spec.memory == "host":
        return spec
    if tid in changes.dram_tensors or (changes.weights_dram and is_weight(plan, tid)):
        spec = replace(spec, memory="DRAM")
    if changes.weights_dtype and is_weight(plan, tid) and is_float(plan, tid):
        spec = replace(spec, dtype=changes.weights_dtype, layout="TILE")
    return spec


def resident_under(plan: ContextPlan, resident: dict[int, Resident], changes: ContextChanges) -> dict[int, Resident]:
    """The tensors allocated before the first call, held as the changes say."""
    return {tid: Resident(held_spec(plan, tid, r.spec, changes), r.pinned) for tid, r in resident.items()}


def writes_dram(step, changes: ContextChanges) -> bool:
    """The call writes its outputs to DRAM (one of them is held there)."""
    return any(t in changes.dram_tensors for t in step.outputs)


def call_settings(step, settings: PortSettings, changes: ContextChanges) -> PortSettings:
    """The port settings one call runs with: DRAM when it writes a tensor held in DRAM."""
    return replace(settings, memory="dram") if writes_dram(step, changes) else settings


def call_replays(trace: Trace, plan: ContextPlan, settings: PortSettings, changes: ContextChanges) -> dict[int, Replay]:
    """Call index -> its Replay, for the calls the changes replay differently (folded, or writing DRAM)."""
    out: dict[int, Replay] = {}
    for step, call in zip(plan.steps, trace.calls):
        if step.index not in changes.fold_calls and not writes_dram(step, changes):
            continue
        out[step.index] = plan_replay(call_case(trace, step, call, changes), call_settings(step, settings, changes))
    return out


def call_case(trace: Trace, step, call, changes: ContextChanges) -> Case:
    """The case one call replays under the changes: its signature, or its folded signature."""
    sig = trace.signatures[call.signature]
    names = trace.ops[call.op].arg_names
    if step.index in changes.fold_calls:
        sig = fold_trailing_ones(sig, names) or sig
        names = ["self", "size"] if sig.op == "aten.view.default" and len(sig.args) == 2 else names
    return Case.from_wire(sig.to_full_wire(names))


def folded_outputs(plan: ContextPlan, changes: ContextChanges) -> set[int]:
    """Trace tensors a folded call produces (held with their trailing 1s folded away)."""
    return {t for s in plan.steps if s.index in changes.fold_calls for t in s.outputs}


@dataclass(kw_only=True)
class CallRemedy:
    """A call that failed in context and what makes it pass: its own change, an earlier call's, or none."""
    call: int
    signature_id: str
    op: str
    module_path: str
    status: str                      # its status in the run without changes
    remedy: str                      # what the port changes, e.g. "hold its output in DRAM"; "none"
    bytes_freed: int | None = None   # bytes the change takes out of the memory that ran out
    fixed_by: int | None = None      # the call whose change made this one pass (itself, or an earlier one)
    found_on: str = ""               # the backend the change was found on: "estimate", "mock", "real"
    why_none: str = ""               # when no change was found
    passes: bool = False             # the call passes in the last replay with every change found


@dataclass(kw_only=True)
class ModelRemedy:
    """The changes that make one model's sequence pass (as far as found), checked by replaying it again."""
    changes: ContextChanges
    calls: list[CallRemedy]
    verified_on: str                 # the backend the changed model was replayed on: "mock", "real", "estimate"
    verified_failing_calls: int      # failing calls (cascades included) in that replay
    verified_first_failure: int | None
    searched_runs: int               # in-context runs the search made (estimate and device)
    time_s: float = 0.0

    @property
    def passes(self) -> bool:
        """The model replayed with the changes applied has no failing call (unsupported ops, a mapping
        gap rather than memory, aside)."""
        return self.verified_failing_calls == 0

    def to_json(self) -> dict:
        """As the results header stores it (``context_remedy``)."""
        return {**asdict(self), "passes": self.passes}
