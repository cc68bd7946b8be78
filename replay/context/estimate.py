"""The estimate backend's in-context mode: a model's call sequence on a simulated allocator.

Imports neither torch nor ttnn. Each call is replayed as the ttnn worker (replay/context/worker.py)
replays it: the port's ttnn calls (replay.mapping, under the port's changes), its inputs held as the
port wants them (channels-last conv inputs, host conv weights; a live tensor held otherwise is
re-held, a missing one gets a stand-in), and the single-op estimate's case and per-op rule for the
op's buffers (replay/backends/estimate.op_case: sharded conv2d in L1 with its halo and circular
buffers, training batch_norm, the results of a port of several calls, ...). The buffers are placed by
a pure-Python allocator with one free list per bank type (replay/backends/bank.py, as the single-op
estimate places an op's L1 buffers); an allocation fails when its per-bank size exceeds the largest free
block. A program's static circular buffers must fit below the lowest live L1 buffer (tt-metal's
"clash with L1 buffers"; estimate.program_clash, as for the op alone).

Simplifications (documented in docs/in-context.md): first-fit, DRAM bottom-up and L1 top-down, as the
mock device places buffers; circular buffers only where the single-op rules model them
(conv2d in L1, concat's row staging), no op scratch buffers, no L1_SMALL region use; ttnn's program
cache is modelled only for reshape page-mapping tensors (allocated by the first call of a reshape
signature, kept to the end, shared by later calls of that signature).
"""
from __future__ import annotations

import time
from dataclasses import replace

from capture.schema import Trace
from replay.context.changes import (ContextChanges, call_case, call_replays, folded_outputs, held_spec,
                                    resident_under, with_frees, writes_dram)
from replay.context.plan import (CallRecord, ContextPlan, aliases, folded_record, holds_as, plan_context,
                                 port_replays, resident_specs, summarize)
from replay.backends.bank import BankAllocator, l1_below_buffers
from replay.backends.devices import BLOCK_FLOAT_DTYPES, get_device
from replay.backends.estimate import (Buffer, EstimateSettings, apply_rule, circular_buffer_overflow, circular_clash,
                                      op_case, place, program_clash)
from replay.mapping import PortSettings, Replay
from replay.results import oom_status

MAPPING_ROLE = "reshape page-mapping tensor"


class Alloc:
    """A placed buffer; several trace tensors (views) may share one. ``shape`` is the tensor's shape as the
    port holds it (a sharded conv output's buffer is laid out per core, its tensor is [1, 1, N*H*W, C])."""

    def __init__(self, memory: str, addr: int, per_bank: int, total: int, shape, role: str,
                 dtype: str = "", layout: str = ""):
        self.memory, self.addr, self.per_bank, self.total, self.shape, self.role = \
            memory, addr, per_bank, total, tuple(shape), role
        self.dtype, self.layout = dtype, layout
        self.refs = 0

    def holds(self, spec, folded: bool = False, shape=None) -> bool:
        """Held as the port wants ``spec`` (replay.context.plan.holds_as, as the ttnn worker checks); ``shape``:
        the tensor's when it is a view of this buffer in another shape (a reshape that moves no data)."""
        return holds_as(self.shape if shape is None else shape, self.dtype, self.layout, self.memory, spec, folded)


class Simulation:
    """One model's call sequence on the simulated allocator: live tensors, cached mapping tensors, failures.
    Each call is the port's (replay.mapping, under the changes, as the ttnn worker replays it): its inputs
    held as the port wants them (re-held otherwise), the single-op estimate's rule for its buffers."""

    def __init__(self, plan: ContextPlan, trace: Trace, settings: EstimateSettings,
                 changes: ContextChanges | None = None):
        self.changes = changes or ContextChanges()
        self.plan, self.trace, self.settings = with_frees(plan, self.changes), trace, settings
        self.device = get_device(settings.device)
        self.banks = {m: BankAllocator(self.device.banks(m, settings.l1_small_bytes)[1], top_down=(m == "L1"))
                      for m in ("DRAM", "L1")}
        self.live: dict[int, Alloc] = {}
        self.view_shapes: dict[int, tuple] = {}    # a live view's own shape (its buffer is another tensor's)
        self.pinned: dict[int, Alloc] = {}         # device stand-ins for weights the port hands ttnn from the host
        self.cache: dict[str, Alloc] = {}          # signature id -> its cached page-mapping tensor
        self.failed: set[int] = set()
        self.cases: dict[tuple, tuple] = {}       # (port, held inputs, memory) -> (OpCase, Plan, why not)
        port_settings = PortSettings(settings.dtype, settings.layout, settings.memory)
        self.replays = port_replays(trace, port_settings)
        self.call_replays = call_replays(trace, self.plan, port_settings, self.changes)
        self.folded = folded_outputs(self.plan, self.changes)

    # -- allocator ---------------------------------------------------------------------------
    def place(self, buf, shape=None):
        """(Alloc, None) or (None, OomInfo dict) for one estimate Buffer (interleaved, or sharded on
        ``buf.cores``: one shard per bank at the same address); ``shape``: the tensor's, when not the buffer's."""
        a = place(buf, self.device, self.settings.l1_small_bytes)
        bank = self.banks[buf.memory]
        addr = bank.alloc(a.per_bank_bytes) if a.per_bank_bytes else 0
        if addr is None:
            used = bank.size - bank.free_bytes
            cause = "fragmentation" if bank.free_bytes >= a.per_bank_bytes else "exhaustion"
            return None, {"requested_bytes": a.total_bytes, "buffer_type": buf.memory, "num_banks": a.num_banks,
                          "per_bank_bytes": a.message_per_bank_bytes, "bank_bytes": bank.size,
                          "allocated_bytes": used, "free_bytes": bank.free_bytes, "largest_free_bytes": bank.largest,
                          "cause": cause, "phase": "op"}
        return Alloc(buf.memory, addr, a.per_bank_bytes, a.total_bytes, buf.shape if shape is None else shape,
                     buf.role, buf.dtype, buf.layout), None

    def hold(self, tid: int, alloc: Alloc, shape=None) -> None:
        self.drop(tid)
        alloc.refs += 1
        self.live[tid] = alloc
        if shape is not None and tuple(shape) != alloc.shape:
            self.view_shapes[tid] = tuple(shape)

    def drop(self, tid: int, held: dict | None = None) -> None:
        a = (self.live if held is None else held).pop(tid, None)
        if held is None:
            self.view_shapes.pop(tid, None)
        if a is not None:
            a.refs -= 1
            if a.refs == 0:
                self.banks[a.memory].release(a.addr, a.per_bank)

    def release(self, a: Alloc) -> None:
        """Give back a buffer no trace tensor holds (an op's temporary, an unnamed input)."""
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
        for tid, a in list(self.live.items()) + list(self.pinned.items()):
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
    def port_of(self, step) -> Replay:
        """The port's ttnn calls for one call, as the ttnn worker replays it (the changes' own Replay
        for a folded call or one writing DRAM)."""
        return self.call_replays.get(step.index) or self.replays[step.signature_id]

    def case(self, step, call, port: Replay):
        """(OpCase, Plan, why not) of one mapped call: the port's inputs held as the changes say, the
        single-op estimate's case and rule (replay/backends/estimate.op_case); cached per distinct case."""
        held = replace(port, inputs=[held_spec(self.plan, step.args.get(t.name), t, self.changes)
                                     for t in port.inputs])
        settings = replace(self.settings, memory="dram") if writes_dram(step, self.changes) else self.settings
        key = (id(port), settings.memory, tuple((tuple(t.shape), t.dtype, t.layout, t.memory) for t in held.inputs))
        if key not in self.cases:
            opc, status, why = op_case(call_case(self.trace, step, call, self.changes), held, settings, self.device)
            plan = None
            if opc is not None:
                logical = list(opc.outputs)    # the rule may replace an output by its sharded buffer
                plan = apply_rule(opc)
                opc = replace(opc, outputs=list(zip(opc.outputs, logical)))
            self.cases[key] = (held, opc, plan, (status, why))
        return self.cases[key]

    def place_resident(self) -> dict:
        """Parameters, buffers, constants and inputs, placed as the port holds them (replay.mapping); a
        weight ttnn takes from the host as its pinned device stand-in (resident_specs)."""
        placed = {"DRAM": 0, "L1": 0, "failed": 0}
        specs = resident_under(self.plan, resident_specs(self.plan, self.replays, self.settings.dtype), self.changes)
        for tid, resident in specs.items():
            spec = resident.spec
            layout = "TILE" if spec.dtype in BLOCK_FLOAT_DTYPES else spec.layout
            a, _ = self.place(Buffer(tuple(spec.shape), spec.dtype, layout, spec.memory, "resident"))
            if a is None:
                placed["failed"] += 1
                continue
            a.refs += 1
            (self.pinned if resident.pinned else self.live)[tid] = a
            placed[a.memory] += a.total
        return placed

    def run_step(self, step, call) -> CallRecord:
        """One call in context: the port's inputs (live, re-held or stand-ins), the op's buffers, outputs held,
        dead tensors freed."""
        t0 = time.perf_counter()
        if step.folded:
            return self._finish(step, folded_record(step), t0)
        rec = CallRecord(index=step.index, signature_id=step.signature_id, op=step.op, module_path=step.module_path,
                         status="pass")
        port = self.port_of(step)
        held, opc, plan, (status, why) = self.case(step, call, port) if port.status == "mapped" else \
            (None, None, None, ("skipped" if port.status == "skip" else "unsupported", port.reason))
        if opc is None or plan.status:
            rec.status, rec.reason = (status, why) if opc is None else (plan.status, plan.reason)
            if rec.status == "skipped":    # a view or alias a port never issues: outputs are their input
                self._alias(step)
            return self._finish(step, rec, t0)
        made: dict[int, Alloc] = {}
        temps: list[Alloc] = []
        oom, clash = self._inputs(step, held, opc, rec, temps), ""
        if oom is None:
            oom, clash = self._op_buffers(step, plan, opc, made, temps)
        if oom is not None:
            self._fail(step, rec, oom, made, temps)
            return self._finish(step, rec, t0)
        overflow = clash or circular_buffer_overflow(plan, self.device) or \
            circular_clash(plan, l1_below_buffers(self.banks["L1"], self.device))
        if overflow:
            self._overflow(step, rec, overflow, made, temps)
            return self._finish(step, rec, t0)
        for (buf, logical), tid in zip(opc.outputs, step.outputs):
            a = made.get(id(buf))
            if a is not None:
                self.hold(tid, a)
            elif step.arg_order and step.arg_order[0] in self.live:   # a view: shares its input's buffer
                self.hold(tid, self.live[step.arg_order[0]], logical.shape)
        for a in temps:
            self.release(a)
        if plan.reason:
            rec.reason = f"{plan.reason}; estimate in context"
        return self._finish(step, rec, t0)

    def _inputs(self, step, held: Replay, opc, rec: CallRecord, temps: list) -> dict | None:
        """Each device input as the port wants it, as the ttnn worker gets it: the live tensor when held
        so, else re-held (the old one dropped, a new one placed) or a fresh stand-in; the OomInfo dict of
        the first that does not fit."""
        device_inputs = [t for t in held.inputs if t.memory != "host"]
        for spec, buf in zip(device_inputs, opc.inputs):
            tid = step.args.get(spec.name)
            cur = self.live.get(tid) if tid is not None else None
            if cur is not None and cur.holds(spec, tid in self.folded, self.view_shapes.get(tid)):
                continue
            if cur is not None:
                rec.reheld += 1        # a port would hold it this way: replace, do not copy
                self.drop(tid)
            else:
                rec.standins += 1
                rec.cascade = rec.cascade or tid in self.failed
            a, oom = self.place(buf, spec.shape)
            if a is None:
                oom["phase"] = "inputs"
                return oom
            if tid is None:
                temps.append(a)
            else:
                self.hold(tid, a)
        return None

    def _op_buffers(self, step, plan, opc, made: dict, temps: list) -> tuple[dict | None, str]:
        """Allocate the op's buffers (outputs, temporaries, a cached mapping tensor once per signature): (the
        OomInfo dict of the first that does not fit, or None; why a program that runs once a buffer is allocated
        cannot place its circular buffers below the live L1 buffers (estimate.program_clash), or "")."""
        logical = {id(b): lg.shape for b, lg in opc.outputs}     # output buffer -> its tensor's shape
        for buf in plan.buffers:
            if buf.role == MAPPING_ROLE and step.signature_id in self.cache:
                continue
            for r in plan.freed_before(buf):          # freed by the op before this buffer
                freed = made.pop(id(r), None)
                if freed is not None:
                    temps.remove(freed)
                    self.release(freed)
            a, oom = self.place(buf, logical.get(id(buf)))
            if a is None:
                return oom, ""
            made[id(buf)] = a
            if buf.role == MAPPING_ROLE:
                self.cache[step.signature_id] = a
            elif id(buf) not in logical:
                temps.append(a)
            clash = program_clash(plan, buf, l1_below_buffers(self.banks["L1"], self.device), self.device)
            if clash:
                return None, clash
        return None, ""

    def _fail(self, step, rec: CallRecord, oom: dict, made: dict, temps: list) -> None:
        """Record the call's OOM with the allocator's state, and give back what it had allocated."""
        rec.status, rec.oom = oom_status(oom["buffer_type"]), oom
        rec.cascade = rec.cascade and oom["phase"] == "inputs"     # only a stand-in that does not fit repeats its producer
        rec.reason = (f"{oom['buffer_type']} buffer needs {oom['per_bank_bytes']:,} B per bank, largest free "
                      f"block {oom['largest_free_bytes']:,} B ({oom['free_bytes']:,} B free); estimate in context")
        self._give_back(step, rec, made, temps)

    def _overflow(self, step, rec: CallRecord, why: str, made: dict, temps: list) -> None:
        """Record the call's circular-buffer overflow, and give back what it had allocated."""
        rec.status, rec.reason, rec.cascade = "cb_overflow", f"{why}; estimate in context", False
        self._give_back(step, rec, made, temps)

    def _give_back(self, step, rec: CallRecord, made: dict, temps: list) -> None:
        """After a failed call: note the allocator's state, free what the call had allocated, mark its outputs failed."""
        rec.allocator = self.state()
        for a in made.values():
            if a.role == MAPPING_ROLE:
                self.cache.pop(step.signature_id, None)
            if a not in temps:
                self.release(a)
        for a in temps:
            self.release(a)
        self.failed.update(step.outputs)

    def _alias(self, step) -> None:
        for out, tid in aliases(self.plan, step, self.live):
            self.hold(out, self.live[tid])

    def _finish(self, step, rec, t0) -> CallRecord:
        rec.dram_bytes, rec.l1_bytes = self.in_use()
        for tid in step.free_after:
            self.drop(tid)
            self.drop(tid, self.pinned)
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
    summary.note = "estimate in context: allocator simulation, no device"
    return records, summary
