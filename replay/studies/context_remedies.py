"""Remedies in context: for each call that fails inside a model, the cheapest change that lets it pass.

An op that fits alone can fail in context (live tensors, fragmentation); its isolated remedy
(replay/studies/remedies.py) then has nothing to say. Here the model's whole sequence is replayed
again with one change at a time (replay/context/changes.py) for its first failing call, cheapest first:

1. fold its trailing 1s (a reshape/permute a port writes without them): touches no other tensor;
2. free the live tensors already used for the last time (kept only because a later view shares their
   storage; the port's reshape made a new buffer) right after their own last use;
3. in an L1 run, hold its outputs in DRAM; then the largest live L1 activations at that call
   (the largest, then the three largest); then every weight (parameters and buffers);
4. hold float weights in bfloat8_b.

Each change is replayed on the whole sequence (first only up to the failing call, which rules most
out); among those after which every call up to the failing one passes, the one that leaves the fewest
failing calls is kept, the cheapest among equals (cost: the bytes a change moves or converts, 0 for
1 and 2), and the search goes on at the next failing call with the kept changes applied. A call a
kept change fixed on the way is credited to it (``fixed_by``). The search runs on the estimate
(about a second a run); on ttnn the changed model is then replayed on the device (the mock device
when there is no board), and where the device still fails, the search goes on there for up to
``device_runs`` more runs. The result (``ModelRemedy``) says what the last full replay with every
change found showed, and on what.
Imports neither torch nor ttnn.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace

from capture.schema import Trace
from replay.backends.devices import get_device
from replay.backends.footprint import allocate
from replay.context.changes import WEIGHT_DTYPE, CallRemedy, ContextChanges, ModelRemedy, is_float, is_weight
from replay.context.plan import CallRecord, ContextPlan, plan_context, port_replays, resident_specs
from replay.context.run import in_context
from replay.mapping import PortSettings
from replay.results import BLOCKING, MEMORY_FAILURES
from replay.run.runner import RunSettings
from replay.shapes import fold_trailing_ones

DEVICE_RUNS = 16         # device runs at most, after the estimate's changes are checked
ESTIMATE_RUNS = 120      # estimate runs at most


@dataclass(kw_only=True)
class Candidate:
    """One change to try for a failing call: what a user would do, its cost and the bytes it frees."""
    name: str
    changes: ContextChanges
    cost_bytes: int          # bytes moved or converted (what makes one change cheaper than another)
    freed_bytes: int         # bytes taken out of the memory that ran out


def failing(records: list[CallRecord]) -> list[CallRecord]:
    """Calls that fail in context, cascades aside (what summarize counts, minus repeated failures)."""
    return [r for r in records if r.status in BLOCKING and r.status != "unsupported" and not r.cascade]


class Search:
    """The state of one model's search: the kept changes, the calls given up on, what each call got."""

    def __init__(self, trace: Trace, settings: RunSettings, log_dir: str):
        self.trace, self.settings, self.log_dir = trace, settings, log_dir
        self.plan: ContextPlan = plan_context(trace)
        self.device = get_device(settings.device)
        self.changes = ContextChanges()
        self.given_up: set[int] = set()
        self.found: dict[int, CallRemedy] = {}
        self.runs = 0
        self.original: dict[int, CallRecord] = {}
        self.resident_bytes: dict = {}       # bytes placed before the first call, with the kept changes
        replays = port_replays(trace, PortSettings(settings.dtype, "TILE", settings.memory))
        self.resident = resident_specs(self.plan, replays, settings.dtype)   # how the run holds each

    # -- bytes -------------------------------------------------------------------------------
    def tensor_bytes(self, tid: int, memory: str, dtype: str | None = None) -> int:
        """Bytes one trace tensor takes in memory (DRAM or L1) as the run holds it (a resident one as
        placed before the first call, else TILE in the run's dtype), in dtype when given; 0 when the run
        holds it elsewhere."""
        spec = self.resident[tid].spec if tid in self.resident else None
        if spec is not None and spec.memory.upper() != memory.upper():
            return 0
        shape = spec.shape if spec is not None else self.plan.tensors[tid].shape
        dt = dtype or (spec.dtype if spec is not None else
                       self.settings.dtype if is_float(self.plan, tid) else "int32")
        try:
            layout = spec.layout if spec is not None and not dtype else "TILE"
            return allocate(tuple(shape) or (1,), dt, layout, memory.upper(), self.device).total_bytes
        except (KeyError, ValueError):
            return 0

    def weights(self) -> list[int]:
        """The parameters and buffers the sequence uses."""
        return [t for t in self.plan.resident if is_weight(self.plan, t)]

    # -- candidates --------------------------------------------------------------------------
    def candidates(self, rec: CallRecord) -> list[Candidate]:
        """The changes to try for one failing call, cheapest first."""
        memory = (rec.oom or {}).get("buffer_type") or ("L1" if rec.status != "oom_dram" else "DRAM")
        out = self._fold(rec) + self._free(rec, memory)
        if self.settings.memory == "l1":
            out += self._to_dram(rec)
        if self.settings.dtype != WEIGHT_DTYPE and not self.changes.weights_dtype:
            params = [t for t in self.weights() if is_float(self.plan, t)]
            full = sum(self.tensor_bytes(t, memory) for t in params)
            half = sum(self.tensor_bytes(t, memory, WEIGHT_DTYPE) for t in params)
            if params:
                out.append(Candidate(name="hold the weights in bfloat8_b", cost_bytes=full, freed_bytes=full - half,
                                     changes=ContextChanges(weights_dtype=WEIGHT_DTYPE)))
        return sorted(out, key=lambda c: c.cost_bytes)

    def _fold(self, rec: CallRecord) -> list[Candidate]:
        call = self.trace.calls[rec.index]
        sig = self.trace.signatures[call.signature]
        folded = fold_trailing_ones(sig, self.trace.ops[call.op].arg_names)
        if folded is None or rec.index in self.changes.fold_calls:
            return []
        memory = "l1" if self.settings.memory == "l1" else "dram"
        before = sum(self.tensor_bytes(t, memory) for t in self.plan.steps[rec.index].outputs)
        shape = folded.outputs[0][1][0]
        after = allocate(tuple(shape) or (1,), self.settings.dtype, "TILE", memory.upper(), self.device).total_bytes
        return [Candidate(name=f"fold its trailing 1s: {shape}", cost_bytes=0, freed_bytes=max(before - after, 0),
                          changes=ContextChanges(fold_calls=[rec.index]))]

    def _free(self, rec: CallRecord, memory: str) -> list[Candidate]:
        later = {t for st in self.plan.steps[rec.index:] for t in st.arg_order}
        live = (rec.allocator or {}).get("top_live", [])
        done = [t for t in live if t.get("memory") == memory and t["tensor"] not in later
                and self.plan.tensors[t["tensor"]].kind not in ("param", "buffer")
                and t["tensor"] not in self.changes.free_early]
        if not done:
            return []
        banks = (rec.allocator or {}).get(memory, {}).get("banks", 1)
        return [Candidate(name=f"free {len(done)} tensor(s) right after their own last use", cost_bytes=0,
                          freed_bytes=sum(t["per_bank_bytes"] for t in done) * banks,
                          changes=ContextChanges(free_early=[t["tensor"] for t in done]))]

    def _to_dram(self, rec: CallRecord) -> list[Candidate]:
        out = []
        outs = [t for t in self.plan.steps[rec.index].outputs if t not in self.changes.dram_tensors]
        if outs:
            b = sum(self.tensor_bytes(t, "l1") for t in outs)
            out.append(Candidate(name="hold its output in DRAM", cost_bytes=b, freed_bytes=b,
                                 changes=ContextChanges(dram_tensors=outs)))
        live = [(t["per_bank_bytes"] * (rec.allocator or {}).get("L1", {}).get("banks", 1), t["tensor"])
                for t in (rec.allocator or {}).get("top_live", [])
                if t.get("memory") == "L1" and self.plan.tensors[t["tensor"]].kind not in ("param", "buffer",
                                                                                           "constant")
                and t["tensor"] not in outs and t["tensor"] not in self.changes.dram_tensors]
        live.sort(reverse=True)
        for picked in ([live[:1]] if live else []) + ([live[:3]] if len(live) > 1 else []):
            what = "the largest live activation" if len(picked) == 1 else f"the {len(picked)} largest live activations"
            b = sum(x for x, _ in picked)
            out.append(Candidate(name=f"hold {what} in DRAM", cost_bytes=b, freed_bytes=b,
                                 changes=ContextChanges(dram_tensors=[t for _, t in picked])))
        if not self.changes.weights_dram:
            b = sum(self.tensor_bytes(t, "l1") for t in self.weights())
            if b:
                out.append(Candidate(name="hold the weights in DRAM", cost_bytes=b, freed_bytes=b,
                                     changes=ContextChanges(weights_dram=True)))
        return out

    # -- the search --------------------------------------------------------------------------
    def run(self, settings: RunSettings, changes: ContextChanges, stop_after: int | None = None):
        """(records, summary, info) of the sequence with the changes, on settings.backend."""
        self.runs += 1
        return in_context(self.trace, settings, self.log_dir, changes, stop_after)

    def target(self, records: list[CallRecord]) -> CallRecord | None:
        """The first failing call not given up on."""
        return next((r for r in failing(records) if r.index not in self.given_up), None)

    def passes_up_to(self, records: list[CallRecord], index: int) -> bool:
        """Every call up to index passes, except those given up on."""
        return all(r.index in self.given_up or r.index > index for r in failing(records))

    def step(self, settings: RunSettings, rec: CallRecord, found_on: str) -> list[CallRecord] | None:
        """Try every candidate for one failing call on the whole sequence; keep the one that leaves the
        fewest failing calls, the cheapest among equals, provided every call up to this one passes.
        Returns the kept run's records (None when no candidate lets the call pass)."""
        best = None
        for cand in self.candidates(rec):
            trial = self.changes.plus(cand.changes)
            if not self.passes_up_to(self.run(settings, trial, stop_after=rec.index)[0], rec.index):
                continue          # the calls up to the failing one are enough to rule it out
            records, summary, _ = self.run(settings, trial)
            if self.passes_up_to(records, rec.index):
                key = (len(failing(records)), cand.cost_bytes)
                if best is None or key < best[0]:
                    best = (key, cand, trial, records, summary)
                if key[0] == 0:
                    break
        if best is None:
            self.given_up.add(rec.index)
            why = "not a memory failure" if rec.status not in MEMORY_FAILURES else "no change tried lets it pass"
            self.found[rec.index] = self.remedy(rec, "none", None, None, found_on, why)
            return None
        _, cand, self.changes, records, summary = best
        freed = cand.freed_bytes
        if cand.changes.weights_dram or cand.changes.weights_dtype:   # measured: what the weights held there
            memory = (rec.oom or {}).get("buffer_type") or "L1"
            freed = max(self.resident_bytes.get(memory, 0) - summary.resident_bytes.get(memory, 0), 0)
        self.resident_bytes = dict(summary.resident_bytes)
        self.found[rec.index] = self.remedy(rec, cand.name, freed, rec.index, found_on)
        return records

    def remedy(self, rec: CallRecord, name: str, freed, fixed_by, found_on: str, why: str = "") -> CallRemedy:
        """A CallRemedy for one call (its status as in the run without changes)."""
        status = self.original[rec.index].status if rec.index in self.original else rec.status
        return CallRemedy(call=rec.index, signature_id=rec.signature_id, op=rec.op, module_path=rec.module_path,
                          status=status, remedy=name, bytes_freed=freed, fixed_by=fixed_by, found_on=found_on,
                          why_none=why)

    def credit(self, before: list[CallRecord], after: list[CallRecord], by: int, found_on: str) -> None:
        """Calls failing before the change kept at call ``by`` (cascades too) that pass after it: fixed by it."""
        still = {r.index for r in after if r.status in BLOCKING and r.status != "unsupported"}
        for r in before:
            prior = self.found.get(r.index)
            if r.status in BLOCKING and r.status != "unsupported" and r.index not in still and r.index != by \
                    and (prior is None or prior.fixed_by is None):
                self.found[r.index] = self.remedy(r, f"the change for call {by}", None, by, found_on)

    def search(self, settings: RunSettings, records: list[CallRecord], max_runs: int, found_on: str):
        """Fix failing calls one by one on settings.backend; returns the last full run's records."""
        start = self.runs
        while self.runs - start < max_runs:
            rec = self.target(records)
            if rec is None:
                break
            if rec.status not in MEMORY_FAILURES:   # the latest word on it, whatever an earlier run said
                self.given_up.add(rec.index)
                self.found[rec.index] = self.remedy(rec, "none", None, None, found_on,
                                                    f"{rec.status} on {found_on}: not a memory failure")
                continue
            kept = self.step(settings, rec, found_on)
            if kept is not None:
                self.credit(records, kept, rec.index, found_on)
                records = kept
        return records


def find_context_remedies(trace: Trace, settings: RunSettings, log_dir: str, records: list[CallRecord],
                          info: dict | None = None, device_runs: int = DEVICE_RUNS, progress: bool = True
                          ) -> ModelRemedy:
    """The changes that make the model's sequence pass (searched on the estimate, then checked and,
    where it still fails, searched on the run's backend); every failing call of ``records`` (the run
    without changes; ``info``: its worker's ready info) gets a row."""
    t0 = time.monotonic()
    s = Search(trace, settings, log_dir)
    s.original = {r.index: r for r in failing(records)}
    est = replace(settings, backend="estimate")
    est_records, summary, _ = s.run(est, ContextChanges())
    s.resident_bytes = dict(summary.resident_bytes)
    final = s.search(est, est_records, ESTIMATE_RUNS, "estimate")
    verified_on = "estimate"
    if settings.backend != "estimate":
        verified_on = "mock" if (info or {}).get("mock") else "real"
        final = records          # nothing found: the run without changes is the device's word
        if s.changes:            # the device has the last word on what the estimate found
            final, summary, info = s.run(settings, s.changes)
            s.resident_bytes = dict(summary.resident_bytes)
            verified_on = "mock" if info.get("mock") else "real"
        # where the device still fails (the estimate's changes do not carry over, or the estimate sees
        # no failure there: circular buffers, op scratch), the search goes on on the device; what the
        # estimate gave up on stays given up (its allocator agrees with the device's on what cannot fit)
        final = s.search(settings, final, device_runs, verified_on)
    left = failing(final)
    still = {r.index for r in final if r.status in BLOCKING and r.status != "unsupported"}
    for i, rec in s.original.items():   # never targeted nor credited: the last replay says
        s.found.setdefault(i, s.remedy(rec, "passes with the changes found", None, None, verified_on)
                           if i not in still else
                           s.remedy(rec, "none", None, None, verified_on, "the search ran out of runs"))
    for i, found in s.found.items():
        found.passes = i not in still and len(final) > i
    if progress:
        sys.stderr.write(f"context remedies {trace.model_name}: {len(s.original)} failing calls; with the changes "
                         f"found, {len(left)} fail on {verified_on} ({s.runs} runs, {time.monotonic() - t0:.1f} s)\n")
    return ModelRemedy(changes=s.changes, calls=[s.found[i] for i in sorted(s.found)], verified_on=verified_on,
                       verified_failing_calls=len(still),
                       verified_first_failure=left[0].index if left else None, searched_runs=s.runs,
                       time_s=round(time.monotonic() - t0, 2))
