"""The estimate backend's in-context mode: a model's call sequence on a simulated allocator.

Imports neither torch nor ttnn. Each call's buffers come from the estimate's per-op rules
(replay/backends/estimate.py); they are placed by a pure-Python allocator with one free list per bank type.
Interleaved buffers take the same offset in every bank of their type, so one simulated bank stands
for all of them; an allocation fails when its per-bank size exceeds the largest free block.

Simplifications (documented in docs/in-context.md): first-fit (ttnn's allocator is best-fit), DRAM
bottom-up and L1 top-down as in tt-metal; circular buffers only where one entry outgrows a core's L1
(concat's row staging: cb_overflow), no op scratch buffers, no L1_SMALL region use; ttnn's program
cache is modelled only for reshape page-mapping tensors (allocated by the first call of a reshape
signature, kept to the end, shared by later calls of that signature).
"""
from __future__ import annotations

import time
from dataclasses import replace

from capture.schema import Trace, tensor_payloads
from replay.context.changes import ContextChanges, resident_under, with_frees, writes_dram
from replay.context.plan import (CallRecord, ContextPlan, folded_record, plan_context, port_replays, resident_specs,
                                 summarize)
from replay.backends.devices import get_device
from replay.backends.estimate import (RULES, Buffer, EstimateSettings, OpCase, circular_buffer_overflow, outputs_only,
                                      place_tensors)
from replay.backends.footprint import allocate
from replay.mapping import PortSettings
from replay.results import oom_status
from replay.shapes import fold_trailing_ones

MAPPING_ROLE = "reshape page-mapping tensor"


class BankAllocator:
    """One bank's free list: first fit, from the bottom (DRAM) or the top (L1)."""

    def __init__(self, size: int, top_down: bool = False):
        self.size, self.top_down = size, top_down
        self.free: list[list[int]] = [[0, size]]      # [start, length], sorted by start

    def alloc(self, n: int) -> int | None:
        blocks = reversed(self.free) if self.top_down else self.free
        for b in blocks:
            if b[1] >= n:
                addr = b[0] + b[1] - n if self.top_down else b[0]
                if self.top_down:
                    b[1] -= n
                else:
                    b[0] += n
                    b[1] -= n
                self.free = [x for x in self.free if x[1] > 0]
                return addr
        return None

    def release(self, addr: int, n: int) -> None:
        self.free.append([addr, n])
        self.free.sort()
        merged = [self.free[0]]
        for s, ln in self.free[1:]:
            last = merged[-1]
            if last[0] + last[1] == s:
                last[1] += ln
            else:
                merged.append([s, ln])
        self.free = merged

    @property
    def free_bytes(self) -> int:
        return sum(b[1] for b in self.free)

    @property
    def largest(self) -> int:
        return max((b[1] for b in self.free), default=0)


class Alloc:
    """A placed buffer; several trace tensors (views) may share one."""

    def __init__(self, memory: str, addr: int, per_bank: int, total: int, shape, role: str):
        self.memory, self.addr, self.per_bank, self.total, self.shape, self.role = \
            memory, addr, per_bank, total, tuple(shape), role
        self.refs = 0


class Simulation:
    """One model's call sequence on the simulated allocator: live tensors, cached mapping tensors, failures."""

    def __init__(self, plan: ContextPlan, trace: Trace, settings: EstimateSettings,
                 changes: ContextChanges | None = None):
        self.changes = changes or ContextChanges()
        self.plan, self.trace, self.settings = with_frees(plan, self.changes), trace, settings
        self.device = get_device(settings.device)
        self.banks = {m: BankAllocator(self.device.banks(m, settings.l1_small_bytes)[1], top_down=(m == "L1"))
                      for m in ("DRAM", "L1")}
        self.live: dict[int, Alloc] = {}
        self.cache: dict[str, Alloc] = {}          # signature id -> its cached page-mapping tensor
        self.failed: set[int] = set()
        self.cases: dict[tuple, tuple] = {}       # (signature id, memory) -> its placed case

    # -- allocator ---------------------------------------------------------------------------
    def place(self, buf):
        """(Alloc, None) or (None, OomInfo dict) for one estimate Buffer."""
        a = allocate(buf.shape, buf.dtype, buf.layout, buf.memory, self.device, self.settings.l1_small_bytes)
        bank = self.banks[buf.memory]
        addr = bank.alloc(a.per_bank_bytes) if a.per_bank_bytes else 0
        if addr is None:
            used = bank.size - bank.free_bytes
            cause = "fragmentation" if bank.free_bytes >= a.per_bank_bytes else "exhaustion"
            return None, {"requested_bytes": a.total_bytes, "buffer_type": buf.memory, "num_banks": a.num_banks,
                          "per_bank_bytes": a.per_bank_bytes, "bank_bytes": bank.size, "allocated_bytes": used,
                          "free_bytes": bank.free_bytes, "largest_free_bytes": bank.largest, "cause": cause,
                          "phase": "op"}
        return Alloc(buf.memory, addr, a.per_bank_bytes, a.total_bytes, buf.shape, buf.role), None

    def hold(self, tid: int, alloc: Alloc) -> None:
        self.drop(tid)
        alloc.refs += 1
        self.live[tid] = alloc

    def drop(self, tid: int) -> None:
        a = self.live.pop(tid, None)
        if a is not None:
            a.refs -= 1
            if a.refs == 0:
                self.banks[a.memory].release(a.addr, a.per_bank)

    def in_use(self) -> tuple[int, int]:
        out = []
        for m in ("DRAM", "L1"):
            b = self.banks[m]
            out.append((b.size - b.free_bytes) * self.device.banks(m, self.settings.l1_small_bytes)[0])
        return out[0], out[1]

    def state(self) -> dict:
        s = {"program_cache_entries": len(self.cache), "live_tensors": len(self.live),
             "live_per_bank": {"DRAM": 0, "L1": 0}}
        for m, b in self.banks.items():
            s[m] = {"banks": self.device.banks(m, self.settings.l1_small_bytes)[0],
                    "allocated_per_bank": b.size - b.free_bytes, "free_per_bank": b.free_bytes,
                    "largest_free_per_bank": b.largest}
        seen, top = set(), []
        for tid, a in self.live.items():
            if id(a) in seen:
                continue
            seen.add(id(a))
            s["live_per_bank"][a.memory] += a.per_bank
            meta = self.plan.tensors[tid]
            top.append({"tensor": tid, "kind": meta.kind, "name": meta.name, "shape": list(a.shape),
                        "memory": a.memory, "per_bank_bytes": a.per_bank})
        s["top_live"] = sorted(top, key=lambda x: -x["per_bank_bytes"])[:8]
        return s

    # -- the sequence ------------------------------------------------------------------------
    def case(self, step, call):
        """(input buffers, output buffers, the op's buffer plan, why not) of one call under the changes:
        a call writing a tensor held in DRAM places its buffers in DRAM; a folded call is its folded signature."""
        sig = self.trace.signatures[call.signature]
        names = self.trace.ops[call.op].arg_names
        settings = replace(self.settings, memory="dram") if writes_dram(step, self.changes) else self.settings
        if step.index in self.changes.fold_calls:
            sig = fold_trailing_ones(sig, names) or sig
            names = ["self", "size"] if sig.op == "aten.view.default" and len(sig.args) == 2 else names
        key = (sig.id, settings.memory)
        if key not in self.cases:
            ins, why = place_tensors(tensor_payloads(sig.args), settings, "input")
            outs, why2 = place_tensors(tensor_payloads(sig.outputs), settings, "output")
            plan = None
            if not (why or why2):
                plan = RULES.get(sig.op, outputs_only)(OpCase(sig.op, dict(zip(names, sig.args)), ins, outs,
                                                              settings, self.device))
            self.cases[key] = (ins, outs, plan, why or why2)
        return self.cases[key]

    def place_resident(self) -> dict:
        """Parameters, buffers, constants and inputs, placed as the port holds them (replay.mapping)."""
        replays = port_replays(self.trace, PortSettings(self.settings.dtype, self.settings.layout,
                                                        self.settings.memory))
        placed = {"DRAM": 0, "L1": 0, "failed": 0}
        specs = resident_under(self.plan, resident_specs(self.plan, replays, self.settings.dtype), self.changes)
        for tid, resident in specs.items():
            spec = resident.spec
            a, _ = self.place(Buffer(tuple(spec.shape), spec.dtype, spec.layout, spec.memory, "resident"))
            if a is None:
                placed["failed"] += 1
                continue
            self.hold(tid, a)
            placed[a.memory] += a.total
        return placed

    def run_step(self, step, call) -> CallRecord:
        """One call in context: stand-ins for missing inputs, the op's buffers, outputs held, dead freed."""
        t0 = time.perf_counter()
        if step.folded:
            return self._finish(step, folded_record(step), t0)
        rec = CallRecord(index=step.index, signature_id=step.signature_id, op=step.op, module_path=step.module_path,
                         status="pass")
        ins, outs, plan, why = self.case(step, call)
        if why or plan is None or plan.status:
            rec.status = "unsupported" if (why or plan is None or plan.status == "unsupported") else "skipped"
            rec.reason = why or plan.reason
            if rec.status == "skipped":
                self._alias(step)
            return self._finish(step, rec, t0)
        made: dict[int, Alloc] = {}
        temps: list[Alloc] = []
        oom = self._standins(step, ins, rec) or self._op_buffers(step, plan, outs, made, temps)
        if oom is not None:
            self._fail(step, rec, oom, made)
            return self._finish(step, rec, t0)
        overflow = circular_buffer_overflow(plan, self.device)
        if overflow:
            self._overflow(step, rec, overflow, made)
            return self._finish(step, rec, t0)
        for buf, tid in zip(outs, step.outputs):
            a = made.get(id(buf))
            if a is not None:
                self.hold(tid, a)
            elif step.arg_order and step.arg_order[0] in self.live:   # a view: shares its input
                self.hold(tid, self.live[step.arg_order[0]])
        rec.dram_bytes, rec.l1_bytes = self.in_use()
        for a in temps:
            self.banks[a.memory].release(a.addr, a.per_bank)
        return self._finish(step, rec, t0, measured=True)

    def _standins(self, step, ins: list, rec: CallRecord) -> dict | None:
        """Allocate the inputs no live tensor provides; the OomInfo dict of the first that does not fit."""
        for buf, tid in zip(ins, step.arg_order):
            if tid in self.live:
                continue
            a, oom = self.place(buf)
            if a is None:
                oom["phase"] = "inputs"
                rec.cascade = tid in self.failed
                return oom
            rec.standins += 1
            self.hold(tid, a)
        return None

    def _op_buffers(self, step, plan, outs: list, made: dict, temps: list) -> dict | None:
        """Allocate the op's buffers (outputs, temporaries, a cached mapping tensor once per signature)."""
        for buf in plan.buffers:
            if buf.role == MAPPING_ROLE and step.signature_id in self.cache:
                continue
            for r in plan.freed_before(buf):          # freed by the op before this buffer
                freed = made.pop(id(r), None)
                if freed is not None:
                    temps.remove(freed)
                    self.banks[freed.memory].release(freed.addr, freed.per_bank)
            a, oom = self.place(buf)
            if a is None:
                return oom
            made[id(buf)] = a
            if buf.role == MAPPING_ROLE:
                self.cache[step.signature_id] = a
            elif all(buf is not o for o in outs):
                temps.append(a)
        return None

    def _fail(self, step, rec: CallRecord, oom: dict, made: dict) -> None:
        """Record the call's OOM with the allocator's state, and give back what it had allocated."""
        rec.status, rec.oom = oom_status(oom["buffer_type"]), oom
        rec.reason = (f"{oom['buffer_type']} buffer needs {oom['per_bank_bytes']:,} B per bank, largest free "
                      f"block {oom['largest_free_bytes']:,} B ({oom['free_bytes']:,} B free); estimate in context")
        self._give_back(step, rec, made)

    def _overflow(self, step, rec: CallRecord, why: str, made: dict) -> None:
        """Record the call's circular-buffer overflow, and give back what it had allocated."""
        rec.status, rec.reason = "cb_overflow", f"{why}; estimate in context"
        self._give_back(step, rec, made)

    def _give_back(self, step, rec: CallRecord, made: dict) -> None:
        """After a failed call: note the allocator's state, free what the call had allocated, mark its outputs failed."""
        rec.allocator = self.state()
        for a in made.values():
            if a.role == MAPPING_ROLE:
                self.cache.pop(step.signature_id, None)
            self.banks[a.memory].release(a.addr, a.per_bank)
        self.failed.update(step.outputs)

    def _alias(self, step) -> None:
        for out in step.outputs:
            for tid in step.arg_order:
                if tid in self.live and self.plan.tensors[tid].storage_id == self.plan.tensors[out].storage_id:
                    self.hold(out, self.live[tid])
                    break

    def _finish(self, step, rec, t0, measured: bool = False) -> CallRecord:
        if not measured:
            rec.dram_bytes, rec.l1_bytes = self.in_use()
        for tid in step.free_after:
            self.drop(tid)
        rec.live_tensors = len(self.live)
        rec.time_s = time.perf_counter() - t0
        return rec


def simulate_estimate(trace: Trace, settings: EstimateSettings = EstimateSettings(),
                      changes: ContextChanges | None = None, stop_after: int | None = None):
    """Replay the trace's calls in context on the estimate, with the port's changes applied: (records,
    ContextSummary); with ``stop_after``, only the calls up to that index."""
    plan = plan_context(trace)
    sim = Simulation(plan, trace, settings, changes)
    resident = sim.place_resident()
    records = []
    for step, call in zip(sim.plan.steps, trace.calls):
        if stop_after is not None and step.index > stop_after:
            break
        records.append(sim.run_step(step, call))
    summary = summarize(plan.model, "estimate", sim.device.name, records, len(plan.steps))
    summary.resident_bytes = resident
    summary.note = "estimate in context: first-fit allocator simulation, no device"
    return records, summary
