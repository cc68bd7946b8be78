"""Lineage: which calls of a trace a port computes once, at load time, from the weights alone.

Imports neither torch nor ttnn. A call is *folded* when every tensor it reads derives, through the
trace's data flow (tensor table + calls), only from parameters, buffers, constants and shape-only
creation ops (``arange``, ``zeros``, ``full``, ...), never from a model input: Swin's gather of its
relative-position bias table by a constant index buffer, a weight's transpose. A port computes those
on the host when it loads the model and uploads the results it hands the device's ops.

Derivation is tracked per *storage* (the trace's ``storage_id``), in execution order, because views
share their base's storage and in-place ops write into it: a storage holds input-derived data from
the moment any call that reads input-derived data writes into it (produces an output on it), and a
model input's storage holds it from the start. A parameter updated in place with an activation
(``buffer.add_(x)``) is input-derived from that call on; a view of a parameter is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from capture.schema import Trace, tensor_payloads

# Creation ops that read only the shape (and dtype) of their tensor arguments, never their values:
# their output is load-time data even when the tensor they copy the shape of is an activation.
SHAPE_ONLY_OPS = frozenset(f"aten.{name}" for name in (
    "zeros_like.default", "ones_like.default", "full_like.default", "empty_like.default",
    "new_zeros.default", "new_ones.default", "new_full.default", "new_empty.default", "new_empty_strided.default",
    "zeros.default", "ones.default", "full.default", "empty.memory_format", "empty_strided.default",
    "arange.default", "arange.start", "arange.start_step", "linspace.default", "eye.default",
    "scalar_tensor.default"))
# Uninitialised allocations: no values to compute, so never folded (replay says what a port does: skip).
UNINITIALISED_OPS = frozenset(f"aten.{name}" for name in (
    "empty_like.default", "new_empty.default", "new_empty_strided.default", "empty.memory_format",
    "empty_strided.default"))
# Random values are new on every forward: like a model input, never load-time data.
RANDOM_OPS = frozenset(f"aten.{name}" for name in (
    "randn.default", "rand.default", "randint.low", "rand_like.default", "randn_like.default",
    "normal_.default", "uniform_.default", "bernoulli_.float", "bernoulli.default"))
FOLDED_REASON = "computed at load time from weights/buffers: a port computes it once and uploads the result"


@dataclass(kw_only=True)
class FoldedResult:
    """A tensor a folded call produced that a call left on the device reads: a port uploads it."""
    tensor: int                  # index in the trace's tensor table
    storage_id: int              # views of one folded result share it
    view_of_weight: bool         # a view of a parameter/buffer (a transposed weight): it replaces that weight
    shape: list[int]
    dtype: str                   # as traced
    bytes: int                   # logical bytes as traced (shape x element size of the traced dtype)
    produced_by: int             # the folded call that made it
    first_use: int               # the first call on the device that reads it


@dataclass(kw_only=True)
class Lineage:
    """Per trace: the folded calls and the folded results a port uploads."""
    folded: set[int]                         # indices of folded calls
    uploads: list[FoldedResult] = field(default_factory=list)   # in order of first use

    def is_folded(self, call_index: int) -> bool:
        """Whether a port computes this call at load time."""
        return call_index in self.folded

    def upload_bytes(self, new_only: bool = False) -> int:
        """Bytes of the folded results a port uploads, each storage once (its largest view); ``new_only``:
        without those that are views of a weight (they replace it)."""
        per_storage: dict[int, int] = {}
        for u in self.uploads:
            if not (new_only and u.view_of_weight):
                per_storage[u.storage_id] = max(per_storage.get(u.storage_id, 0), u.bytes)
        return sum(per_storage.values())


# Bytes per element of the traced dtypes (torch names).
_ELEMENT_BYTES = {"float64": 8, "int64": 8, "complex64": 8, "float32": 4, "int32": 4, "uint32": 4,
                  "float16": 2, "bfloat16": 2, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1}


def traced_bytes(shape: list[int], dtype: str) -> int:
    """Logical bytes of a tensor as traced."""
    n = 1
    for d in shape:
        n *= d
    return n * _ELEMENT_BYTES.get(dtype, 4)


def input_derived_calls(trace: Trace) -> list[bool]:
    """Per call, in order: whether any tensor it reads derives from a model input (or it draws random values)."""
    metas = trace.tensors
    derived = {m.storage_id for m in metas if m.kind == "input"}     # storages holding input-derived data
    out = []
    for call in trace.calls:
        op = trace.op_name(call)
        reads = [] if op in SHAPE_ONLY_OPS else tensor_payloads(call.args)
        tainted = op in RANDOM_OPS or any(metas[t].storage_id in derived for t in reads)
        if tainted:
            derived.update(metas[t].storage_id for t in tensor_payloads(call.outputs))
        out.append(tainted)
    return out


def lineage(trace: Trace) -> Lineage:
    """The trace's folded calls, and the folded results the calls left on the device read."""
    tainted = input_derived_calls(trace)
    folded = {i for i, derived in enumerate(tainted)
              if not derived and trace.op_name(trace.calls[i]) not in UNINITIALISED_OPS}
    metas = trace.tensors
    weight_storages = {m.storage_id for m in metas if m.kind in ("param", "buffer")}
    produced_by: dict[int, int] = {}
    uploads: dict[int, FoldedResult] = {}
    for call in trace.calls:
        if call.index in folded:
            for t in tensor_payloads(call.outputs):
                produced_by[t] = call.index
            continue
        for t in tensor_payloads(call.args):
            if t in produced_by and t not in uploads:
                m = metas[t]
                uploads[t] = FoldedResult(tensor=t, storage_id=m.storage_id, shape=list(m.shape), dtype=m.dtype,
                                          view_of_weight=m.storage_id in weight_storages,
                                          bytes=traced_bytes(m.shape, m.dtype), produced_by=produced_by[t],
                                          first_use=call.index)
    return Lineage(folded=folded, uploads=list(uploads.values()))
