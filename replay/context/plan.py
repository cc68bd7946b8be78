"""In-context replay: one model's whole call sequence, in execution order, on one device.

Isolated replay (runner.py) runs each unique signature alone on an empty device. A port runs the
model: parameters stay resident, activations live until their last use, and ttnn's program cache
keeps reshape page-mapping tensors alive. An op that fits alone can fail in context. This module
holds what both in-context backends share; it imports neither torch nor ttnn.

- ``plan_context(trace)``: the call sequence as Steps, with every tensor's lifetime from the trace:
  parameters, buffers and constants live for the whole run; inputs and activations are freed after
  the last call that uses any tensor of their storage (a view keeps its base alive). Folded calls
  (replay.lineage: computed at load time from weights/buffers) are not run; the folded results the
  other calls read are resident from the start, as a port uploads them, and a weight only folded
  calls read is not placed at all.
- ``CallRecord`` / ``ContextSummary``: one record per call (status, memory in use after it, the
  allocator state when it failed), and the run's peaks. Stored as JSON lines in a ``.calls.jsonl``
  file next to the per-signature results journal (see docs/in-context.md).
- ``signature_results`` and ``why_differs``: per-signature results for the report, each with the
  isolated verdict beside the in-context one and the reason they differ.

The ttnn side is replay/context/worker.py, the estimate side replay/context/estimate.py;
replay/context/run.py runs either and writes the results.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from capture.atomic import write_atomic
from capture.schema import Trace, tensor_payloads
from replay.lineage import FOLDED_REASON, lineage
from replay.mapping import Case, InputTensor, plan_replay
from replay.results import BLOCKING, OOM_STATUSES, OomInfo, ReplayResult
from replay.shapes import strip_trailing_ones

CONTEXT_FORMAT = "optrace-context-calls"
CONTEXT_VERSION = 1
RESIDENT_KINDS = ("param", "buffer", "constant")
FOLDED = "folded"
# Why an op that fits alone fails in context (why_differs), in the words the report uses.
DIFFERENCE_REASONS = {
    "live_tensors": "the model's live tensors (parameters, activations not yet freed) leave too little room",
    "fragmentation": "enough memory is free in total, but no free block is large enough (fragmentation)",
    "program_cache": "reshape page-mapping tensors kept by ttnn's program cache hold the missing room",
    "cascade": "its input's producer failed in context, and a stand-in for that input does not fit either",
    "same": "fails alone too",
    "passes_in_context": "fails alone but passes in context (a stand-in input, or an ordering effect)",
    "other": "a non-memory error that appears only in context",
}


# ---------------------------------------------------------------------------------------------
# The plan: steps and lifetimes

@dataclass(kw_only=True)
class Step:
    """One call of the sequence, with the trace tensors it reads and writes."""
    index: int                   # call index in the trace
    signature_id: str
    op: str
    module_path: str
    args: dict[str, int]         # mapping input name ("self", "tensors_0") -> trace tensor index
    arg_order: list[int]         # tensor arguments in schema order, nested lists flattened
    outputs: list[int]           # trace tensor indices of the outputs, flattened
    free_after: list[int]        # tensors whose storage is used for the last time by this call
    folded: bool = False         # computed at load time (replay.lineage): not run, its read results resident


@dataclass
class ContextPlan:
    """One model's calls as Steps, with the tensors allocated before the first call."""
    model: str
    trace_path: str
    steps: list[Step]
    resident: list[int]          # params, buffers, constants, folded results used: allocated first, never freed
    inputs: list[int]            # model inputs: allocated first, freed after their last use
    tensors: list                # the trace's TensorMeta table


def _bind(names: list[str], values: list) -> tuple[dict[str, int], list[int]]:
    named, order = {}, []
    for name, (tag, payload) in zip(names, values):
        if tag == "T":
            named[name] = payload
            order.append(payload)
        elif tag == "list":
            k = 0
            for tag2, p2 in payload:
                if tag2 == "T":
                    named[f"{name}_{k}"] = p2
                    order.append(p2)
                    k += 1
    return named, order


def plan_context(trace: Trace) -> ContextPlan:
    """The trace's calls as Steps with lifetimes (storage-level: a view keeps its base alive); folded
    calls are marked, and the folded results the device's calls read are resident."""
    metas = trace.tensors
    lin = lineage(trace)
    last_use: dict[int, int] = {}
    steps, folded_out = [], set()
    for call in trace.calls:
        names = trace.ops[call.op].arg_names
        named, order = _bind(names, call.args)
        outs = tensor_payloads(call.outputs)
        folded = lin.is_folded(call.index)
        if folded:
            folded_out.update(outs)
        else:
            for t in order + outs:
                last_use[metas[t].storage_id] = call.index
        steps.append(Step(index=call.index, signature_id=trace.signatures[call.signature].id,
                          op=trace.op_name(call), module_path=trace.module_path(call), args=named,
                          arg_order=order, outputs=outs, free_after=[], folded=folded))
    seen: set[int] = set()
    resident, inputs = [], []
    for s in steps:
        if s.folded:
            continue
        for t in s.arg_order + s.outputs:
            if t in seen:
                continue
            seen.add(t)
            kind = metas[t].kind
            if kind in RESIDENT_KINDS or t in folded_out:
                resident.append(t)
            elif kind == "input":
                inputs.append(t)
    # A storage that holds a parameter (a weight's transposed view, say) is resident too.
    resident_storages = {metas[t].storage_id for t in resident}
    by_storage: dict[int, list[int]] = {}
    for t in sorted(seen):
        if metas[t].storage_id not in resident_storages:
            by_storage.setdefault(metas[t].storage_id, []).append(t)
    for storage, ts in by_storage.items():
        steps[last_use[storage]].free_after.extend(ts)
    return ContextPlan(trace.model_name, trace.path, steps, resident, inputs, metas)


def folded_record(step: Step) -> CallRecord:
    """The record of a folded call: not run on the device (a port computed it at load time)."""
    return CallRecord(index=step.index, signature_id=step.signature_id, op=step.op, module_path=step.module_path,
                      status=FOLDED, reason=FOLDED_REASON)


def prepared_shape(shape: list[int]) -> list[int]:
    """How a port holds a weight on the device: a conv weight [Cout, Cin, kh, kw] as ttnn prepares
    it, [1, 1, Cin*kh*kw, Cout] (in TILE its traced shape would pad each 3x3 kernel to a tile);
    anything else as traced."""
    if len(shape) == 4:
        return [1, 1, shape[1] * shape[2] * shape[3], shape[0]]
    return list(shape) or [1]


def port_replays(trace: Trace, settings) -> dict:
    """Signature id -> its Replay (replay.mapping) under PortSettings."""
    out = {}
    for s in trace.signatures:
        names = trace.ops[trace.calls[s.calls[0]].op].arg_names
        out[s.id] = plan_replay(Case.from_wire(s.to_full_wire(names)), settings)
    return out


def holds_as(shape, dtype: str, layout: str, memory: str, spec: InputTensor, folded: bool = False) -> bool:
    """A live tensor held so is what a consumer's port wants (``spec``), or must be re-held: the same
    shape (trailing 1s aside for a folded call's output), dtype, layout and memory. Both in-context
    backends decide it here."""
    same_shape = list(shape) == list(spec.shape) or \
        (folded and strip_trailing_ones(list(shape)) == strip_trailing_ones(list(spec.shape)))
    return same_shape and dtype == spec.dtype and layout == spec.layout and memory == spec.memory


def aliases(plan: ContextPlan, step: Step, live) -> list[tuple[int, int]]:
    """(output, input) pairs of a call a port never issues (a view, an alias): each output is the first
    live input of its storage. Both in-context backends alias them so."""
    out = []
    for t in step.outputs:
        src = next((tid for tid in step.arg_order
                    if tid in live and plan.tensors[tid].storage_id == plan.tensors[t].storage_id), None)
        if src is not None:
            out.append((t, src))
    return out


@dataclass
class Resident:
    """A tensor allocated before the first call, as ``spec``; ``pinned`` when it is a device stand-in for
    a weight the port hands ttnn from the host (the consumer gets the host tensor, not this one)."""
    spec: InputTensor
    pinned: bool = False


def resident_specs(plan: ContextPlan, replays: dict, default_dtype: str) -> dict[int, Resident]:
    """Each resident tensor (parameter, buffer, constant, input) -> how it is allocated before the first
    call: as its first mapped consumer's port wants it; a weight the port hands ttnn from the host
    (conv) as the DRAM tensor ttnn prepares from it (prepared_shape), pinned."""
    want = {}
    for step in plan.steps:
        r = replays[step.signature_id]
        if r.status != "mapped" or step.folded:
            continue
        for spec in r.inputs:
            tid = step.args.get(spec.name)
            if tid is not None and tid not in want:
                want[tid] = spec
    out = {}
    for tid in plan.resident + plan.inputs:
        meta, spec = plan.tensors[tid], want.get(tid)
        if spec is None or spec.memory == "host":
            dtype = default_dtype if meta.dtype.startswith(("float", "bfloat")) else "int32"
            out[tid] = Resident(InputTensor(str(tid), prepared_shape(meta.shape), dtype, "TILE", "DRAM"), pinned=True)
        else:
            out[tid] = Resident(spec)
    return out


# ---------------------------------------------------------------------------------------------
# Records

@dataclass(kw_only=True)
class CallRecord:
    """One call replayed in context."""
    index: int
    signature_id: str
    op: str
    module_path: str
    status: str
    reason: str = ""
    oom: dict | None = None              # OomInfo as a dict when the call ran out of memory
    dram_bytes: int = 0                  # DRAM in use after the call, before its dead tensors are freed
    l1_bytes: int = 0
    live_tensors: int = 0                # trace tensors resident after the call
    standins: int = 0                    # inputs allocated fresh (their producer failed or was not replayed)
    reheld: int = 0                      # inputs re-held in the layout this call's port needs
    cascade: bool = False                # failed allocating a stand-in for a failed producer's output
    allocator: dict | None = None        # the allocator's state when the call failed
    time_s: float = 0.0

    def to_json(self) -> dict:
        return {"kind": "call", **asdict(self)}


@dataclass(kw_only=True)
class ContextSummary:
    """The run of one model in context: peaks, counts by status, the first failure."""
    model: str
    backend: str
    device: str
    calls: int = 0
    by_status: dict = field(default_factory=dict)
    peak_dram_bytes: int = 0
    peak_dram_call: int = -1
    peak_l1_bytes: int = 0
    peak_l1_call: int = -1
    resident_bytes: dict = field(default_factory=dict)   # params/buffers/constants, per memory
    first_failure: int | None = None                     # call index of the first failing call
    failing_calls: int = 0
    cascaded_calls: int = 0                              # failures that only repeat a producer's
    completed: bool = True                               # False when the worker died mid-sequence
    note: str = ""
    time_s: float = 0.0

    def to_json(self) -> dict:
        return {"kind": "summary", **asdict(self)}


def summarize(model: str, backend: str, device: str, records: list[CallRecord], total_calls: int) -> ContextSummary:
    """Peaks, counts and the first failure over a sequence of records."""
    s = ContextSummary(model=model, backend=backend, device=device, calls=total_calls)
    for r in records:
        s.by_status[r.status] = s.by_status.get(r.status, 0) + 1
        if r.dram_bytes > s.peak_dram_bytes:
            s.peak_dram_bytes, s.peak_dram_call = r.dram_bytes, r.index
        if r.l1_bytes > s.peak_l1_bytes:
            s.peak_l1_bytes, s.peak_l1_call = r.l1_bytes, r.index
        if r.status in BLOCKING and r.status != "unsupported":
            s.failing_calls += 1
            s.cascaded_calls += r.cascade
            if s.first_failure is None and not r.cascade:
                s.first_failure = r.index
        s.time_s += r.time_s
    s.completed = len(records) == total_calls
    return s


def write_calls(path: str, header: dict, records: list[CallRecord], summary: ContextSummary) -> None:
    """The per-call file: a header line, one line per call, a summary line (atomic)."""
    lines = [json.dumps({"kind": "header", "format": CONTEXT_FORMAT, "version": CONTEXT_VERSION, **header},
                        sort_keys=True)]
    lines += [json.dumps(r.to_json(), sort_keys=True) for r in records]
    lines.append(json.dumps(summary.to_json(), sort_keys=True))
    write_atomic(path, "\n".join(lines) + "\n")


def read_calls(path: str) -> tuple[dict, list[CallRecord], ContextSummary | None]:
    """Read a per-call file: (header, records, summary or None when the run did not finish)."""
    header, records, summary = {}, [], None
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            kind = d.pop("kind", "")
            if kind == "header":
                header = d
            elif kind == "call":
                records.append(CallRecord(**d))
            elif kind == "summary":
                summary = ContextSummary(**d)
    return header, records, summary


# ---------------------------------------------------------------------------------------------
# Per-signature results for the report

def why_differs(context: CallRecord, isolated: ReplayResult | None) -> str:
    """A DIFFERENCE_REASONS key: why this call's in-context verdict differs from the isolated one."""
    iso = isolated.status if isolated else "not_run"
    if context.status == iso or (context.status in BLOCKING and iso in BLOCKING):
        return "same"
    if context.status not in BLOCKING:
        return "passes_in_context"
    if context.status not in OOM_STATUSES or not context.oom:
        return "other"
    oom = context.oom
    need, free, largest = oom["per_bank_bytes"], oom.get("free_bytes"), oom.get("largest_free_bytes")
    if free is not None and largest is not None and free >= need > largest:
        return "fragmentation"
    alloc = context.allocator or {}
    held = (alloc.get("live_per_bank") or {}).get(oom["buffer_type"])
    if held is not None and oom.get("allocated_bytes") is not None:
        untracked = oom["allocated_bytes"] - held           # what no live tensor of ours holds
        if alloc.get("program_cache_entries") and untracked > 0 and \
                need <= oom["bank_bytes"] - held and need > oom["bank_bytes"] - oom["allocated_bytes"]:
            return "program_cache"
    return "live_tensors"


def signature_results(plan: ContextPlan, records: list[CallRecord], isolated: dict[str, ReplayResult],
                      backend: str, device: str, mock: bool) -> list[ReplayResult]:
    """One result per signature reached: the first failing call's verdict (else the first call's),
    with ``extra["context"]`` (calls, failing calls, why it differs) and ``extra["isolated"]``."""
    by_sig: dict[str, list[CallRecord]] = {}
    for r in records:
        if r.status != FOLDED:   # a folded call is the call's own verdict (the lineage's), not its signature's
            by_sig.setdefault(r.signature_id, []).append(r)
    out = []
    for sid, recs in by_sig.items():
        failing = [r for r in recs if r.status in BLOCKING]
        first = failing[0] if failing else recs[0]
        iso = isolated.get(sid)
        res = ReplayResult(signature_id=sid, op=first.op, status=first.status, backend=backend, device=device,
                           mock=mock, reason=first.reason)
        if first.oom:
            res.oom = OomInfo(**first.oom)
        if iso is not None:
            res.ttnn_call, res.inputs, res.outputs = iso.ttnn_call, iso.inputs, iso.outputs
            res.error_signature = iso.error_signature if first.status == iso.status else ""
        why = "cascade" if first.cascade else why_differs(first, iso)
        res.extra = {
            "mode": "model",
            "context": {"calls": len(recs), "failing_calls": [r.index for r in failing][:50],
                        "first_call": first.index, "module_path": first.module_path, "status": first.status,
                        "why": why, "allocator": first.allocator},
            "isolated": {"status": iso.status if iso else "not_run", "reason": iso.reason if iso else "",
                         "requested_bytes": iso.oom.requested_bytes if iso and iso.oom else None},
        }
        out.append(res)
    return out
