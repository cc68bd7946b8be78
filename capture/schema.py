"""The optrace trace format: the contract between capture (torch) and replay (ttnn, no torch).

This module *is* the schema. It imports neither torch nor ttnn, so the ttnn environment can read
traces. Every field is documented in docs/trace-format.md; bump FORMAT_VERSION on any change a
reader of the previous version would misread.

A trace file is one msgpack map:
    {"format": "optrace-trace", "version": 1, "header": {...}, "modules": [...], "scopes": [...],
     "ops": [...], "tensors": [...], "calls": [...], "signatures": [...]}

Values (arguments and outputs) are typed two-element arrays ``[tag, payload]`` (see VALUE_TAGS):
a tensor is ``["T", tensor_index]`` into the tensor table; everything torch passes that has no
tag of its own is ``["opaque", repr]``, so no call is ever dropped.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack

from capture.atomic import write_atomic
from capture.gc_pause import gc_paused
from capture.wirecheck import Checker, TraceError, fail_trace, int_list  # noqa: F401 - TraceError is part of the schema's API

FORMAT = "optrace-trace"
FORMAT_VERSION = 1

# tag -> what its payload is. Payload types are checked by the reader.
VALUE_TAGS = {
    "T": "tensor: index into the tensor table",
    "int": "int (SymInts are made concrete)",
    "float": "float, inf and nan included (msgpack doubles)",
    "bool": "bool",
    "str": "str",
    "none": "None (payload nil)",
    "list": "list of tagged values",
    "dtype": "torch dtype name, e.g. 'float32'",
    "device": "device string, e.g. 'cpu'",
    "layout": "torch layout name, e.g. 'strided'",
    "memory_format": "memory format name, e.g. 'contiguous_format'",
    "opaque": "repr() of a value with no tag of its own",
}

TENSOR_KINDS = ("input", "param", "buffer", "constant", "activation")
GRAD_MODES = ("no_grad", "inference_mode", "grad")
TENSOR_MODES = ("real", "fake")
VOLATILE_HEADER_FIELDS = ("created_utc", "capture_s", "versions")


# ---------------------------------------------------------------------------------------------
# Records: each states its wire layout once, in to_wire and the from_wire beside it.

@dataclass
class TensorMeta:
    """One tensor seen during capture: metadata only, never data.

    Wire: ``[shape, dtype_index, stride or nil when contiguous, storage_offset, storage_id, kind_index, name]``.
    """
    shape: list[int]
    dtype: str
    stride: list[int]
    storage_offset: int
    storage_id: int          # equal for a view and its base; never reused within a trace
    kind: str                # one of TENSOR_KINDS
    name: str = ""           # parameter/buffer name for params and buffers, input index for inputs

    def to_wire(self, dtype_index: dict[str, int]) -> list:
        """The wire entry; dtype_index maps dtype names to their index in the trace's dtypes table."""
        # a contiguous stride is stored as nil: most tensors are contiguous
        stride = None if self.stride == contiguous_stride(self.shape) else self.stride
        return [self.shape, dtype_index[self.dtype], stride, self.storage_offset, self.storage_id,
                TENSOR_KINDS.index(self.kind), self.name]

    @staticmethod
    def from_wire(raw: Any, c: Checker, i: int, dtypes: list[str]) -> TensorMeta:
        """tensors[i] read back; dtypes is the trace's dtypes table."""
        if type(raw) is list and len(raw) == 7:   # a valid entry passes these checks with no message made
            shape, dtype, stride, offset, storage, kind, name = raw
            if (int_list(shape) and type(dtype) is int and 0 <= dtype < len(dtypes) and type(offset) is int
                    and offset >= 0 and type(storage) is int and storage >= 0 and type(kind) is int
                    and 0 <= kind < len(TENSOR_KINDS) and type(name) is str
                    and (stride is None or (int_list(stride) and len(stride) == len(shape)))):
                return TensorMeta(shape, dtypes[dtype], contiguous_stride(shape) if stride is None else stride,
                                  offset, storage, TENSOR_KINDS[kind], name)
        w = f"tensors[{i}]"
        c.lst(raw, w, 7)
        shape = c.ints(raw[0], w + " shape")
        stride = contiguous_stride(shape) if raw[2] is None else c.ints(raw[2], w + " stride")
        c.need(len(shape) == len(stride), f"{w} shape and stride differ in rank")
        return TensorMeta(shape=shape, dtype=dtypes[c.int_(raw[1], w + " dtype", 0, len(dtypes))], stride=stride,
                          storage_offset=c.int_(raw[3], w + " storage offset", 0),
                          storage_id=c.int_(raw[4], w + " storage id", 0),
                          kind=TENSOR_KINDS[c.int_(raw[5], w + " kind", 0, len(TENSOR_KINDS))],
                          name=c.str_(raw[6], w + " name"))


def contiguous_stride(shape: list[int]) -> list[int]:
    """The row-major stride of shape (size-0 dimensions count as 1, as torch does)."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= max(d, 1)
    return out[::-1]


@dataclass
class OpCall:
    """One aten call in execution order.

    Wire: ``[op, args, outputs, scope]``; the index is the position in the list and the signature
    is set by the signature that lists the call.
    """
    index: int
    op: int                  # index into the ops table
    args: list               # tagged values, one per schema argument, in schema order
    outputs: list            # tagged values, one per schema return
    scope: int               # index into the scopes table: the module stack executing the call
    signature: int           # index into the signatures table (derived from it on read)

    def to_wire(self) -> list:
        """The wire entry (index and signature are implied)."""
        return [self.op, self.args, self.outputs, self.scope]

    @staticmethod
    def from_wire(raw: Any, c: Checker, i: int, ops: list[OpInfo], n_tensors: int, n_scopes: int) -> OpCall:
        """calls[i] read back, its signature not yet known (-1)."""
        if type(raw) is list and len(raw) == 4:   # a valid entry passes these checks with no message made
            op, args, outputs, scope = raw
            if (type(op) is int and 0 <= op < len(ops) and type(args) is list and len(args) == len(ops[op].arg_names)
                    and type(outputs) is list and type(scope) is int and 0 <= scope < n_scopes
                    and c.values_ok(args, n_tensors) and c.values_ok(outputs, n_tensors)):
                return OpCall(i, op, args, outputs, scope, -1)
        w = f"calls[{i}]"
        c.lst(raw, w, 4)
        op = c.int_(raw[0], w + " op", 0, len(ops))
        args = c.lst(raw[1], w + " args", len(ops[op].arg_names))
        outputs = c.lst(raw[2], w + " outputs")
        if not (c.values_ok(args, n_tensors) and c.values_ok(outputs, n_tensors)):  # say which
            for j, v in enumerate(args):
                c.value(v, f"{w} arg {ops[op].arg_names[j]}", n_tensors)
            for j, v in enumerate(outputs):
                c.value(v, f"{w} output {j}", n_tensors)
        return OpCall(index=i, op=op, args=args, outputs=raw[2], scope=c.int_(raw[3], w + " scope", 0, n_scopes),
                      signature=-1)


@dataclass
class OpInfo:
    """One distinct aten overload, with the names of its schema arguments and returns.

    Wire: ``[name, arg_names, return_count, schema]``.
    """
    name: str                # e.g. "aten.view.default"
    arg_names: list[str]
    return_count: int
    schema: str              # str(func._schema), for humans and for replay's argument checks

    def to_wire(self) -> list:
        """The wire entry."""
        return [self.name, self.arg_names, self.return_count, self.schema]

    @staticmethod
    def from_wire(raw: Any, c: Checker, i: int) -> OpInfo:
        """ops[i] read back."""
        w = f"ops[{i}]"
        c.lst(raw, w, 4)
        arg_names = c.strs(raw[1], w + " arg names", w + " arg name")
        return OpInfo(name=c.str_(raw[0], w + " name"), arg_names=arg_names,
                      return_count=c.int_(raw[2], w + " return count", 0), schema=c.str_(raw[3], w + " schema"))


@dataclass
class ModuleInfo:
    """One nn.Module of the traced model. Wire: ``[path, cls]``."""
    path: str                # e.g. "model.22.cv4.0"; the root model is ""
    cls: str                 # e.g. "Conv"

    def to_wire(self) -> list:
        """The wire entry."""
        return [self.path, self.cls]

    @staticmethod
    def from_wire(raw: Any, c: Checker, i: int) -> ModuleInfo:
        """modules[i] read back."""
        c.lst(raw, f"modules[{i}]", 2)
        return ModuleInfo(path=c.str_(raw[0], f"modules[{i}] path"), cls=c.str_(raw[1], f"modules[{i}] class"))


@dataclass
class Signature:
    """A unique (op, argument metadata) pair: what replay executes once and fans out to calls.

    ``args`` are the call's tagged values with each tensor replaced by its metadata
    ``["T", [shape, dtype, stride]]``; ``outputs`` likewise for the first call seen. On the wire a
    signature is ``[id, count, calls]``: its op, args and outputs are those of its first call,
    materialized by the reader (and the id re-checked), which keeps traces small.
    """
    id: str                  # 16 hex chars of sha256 over the canonical (op, args) encoding
    op: str
    args: list
    outputs: list
    count: int
    calls: list[int]

    def to_wire(self) -> list:
        """The wire entry: op, args and outputs are those of its first call."""
        return [self.id, self.count, self.calls]

    @staticmethod
    def from_wire(raw: Any, c: Checker, i: int, calls: list[OpCall], ops: list[OpInfo],
                  tensors: list[TensorMeta]) -> Signature:
        """signatures[i] read back and materialized from its first call; claims its calls (sets their
        ``signature`` to i), so a call listed twice is refused."""
        w = f"signatures[{i}]"
        c.lst(raw, w, 3)
        sid = c.str_(raw[0], w + " id")
        count = c.int_(raw[1], w + " count", 1)
        members = c.ints(raw[2], w + " calls")
        c.need(len(members) == count, f"signature {sid} count disagrees with its call list")
        for ci in members:
            c.need(0 <= ci < len(calls) and calls[ci].signature == -1,
                   f"signature {sid} lists call {ci}, which is missing or already taken")
            calls[ci].signature = i
        first = calls[members[0]]
        name = ops[first.op].name
        sargs = [signature_value(v, tensors) for v in first.args]
        c.need(signature_id(name, sargs) == sid, f"signature {sid} does not match its calls")
        return Signature(id=sid, op=name, args=sargs, outputs=[signature_value(v, tensors) for v in first.outputs],
                         count=count, calls=members)

    def to_full_wire(self, arg_names: list[str]) -> list:
        """The self-contained form sent to replay workers: op, args and outputs materialized."""
        return [self.id, self.op, self.args, self.outputs, self.count, self.calls, arg_names]


@dataclass(kw_only=True)
class Trace:
    """One captured forward: header, module and scope tables, ops, tensors, calls and signatures.

    Wire: the top-level map of the module docstring; ``path`` is where it was read from (not stored).
    """
    header: dict
    modules: list[ModuleInfo]
    scopes: list[list[int]]   # each a stack of module indices, outermost first
    ops: list[OpInfo]
    tensors: list[TensorMeta]
    calls: list[OpCall]
    signatures: list[Signature]
    path: str = field(default="", compare=False)

    # -- convenience views used by replay and reports --------------------------------------
    @property
    def model_name(self) -> str:
        """The registry name of the traced model (header.model.name)."""
        return str(self.header["model"]["name"])

    def module_path(self, call: OpCall) -> str:
        """The innermost module executing call ("" at the root)."""
        stack = self.scopes[call.scope]
        return self.modules[stack[-1]].path if stack else ""

    def module_class(self, call: OpCall) -> str:
        """The class name of the innermost module executing call."""
        stack = self.scopes[call.scope]
        return self.modules[stack[-1]].cls if stack else ""

    def op_name(self, call: OpCall) -> str:
        """The overload call executes, e.g. "aten.view.default"."""
        return self.ops[call.op].name

    def named_args(self, call: OpCall) -> dict[str, list]:
        """The call's tagged arguments by schema argument name."""
        return dict(zip(self.ops[call.op].arg_names, call.args))

    def to_wire(self) -> dict:
        """The top-level wire map."""
        dtypes = sorted({t.dtype for t in self.tensors})
        dtype_index = {d: i for i, d in enumerate(dtypes)}
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "header": self.header,
            "modules": [m.to_wire() for m in self.modules], "scopes": self.scopes,
            "ops": [o.to_wire() for o in self.ops], "dtypes": dtypes,
            "tensors": [t.to_wire(dtype_index) for t in self.tensors],
            "calls": [c.to_wire() for c in self.calls],
            "signatures": [s.to_wire() for s in self.signatures],
        }

    @staticmethod
    def from_wire(doc: Any, path: str = "<bytes>") -> Trace:
        """The decoded top-level map read back and fully validated; raises TraceError (one line)."""
        c = Checker(path, VALUE_TAGS)
        _check_envelope(doc, c)
        header = _check_header(doc["header"], c)
        modules = [ModuleInfo.from_wire(m, c, i) for i, m in enumerate(c.lst(doc["modules"], "modules"))]
        scopes = _check_scopes(doc["scopes"], c, len(modules))
        ops = [OpInfo.from_wire(o, c, i) for i, o in enumerate(c.lst(doc["ops"], "ops"))]
        dtypes = c.strs(doc["dtypes"], "dtypes", "dtypes[{j}]")
        tensors = [TensorMeta.from_wire(t, c, i, dtypes) for i, t in enumerate(c.lst(doc["tensors"], "tensors"))]
        calls = [OpCall.from_wire(k, c, i, ops, len(tensors), len(scopes))
                 for i, k in enumerate(c.lst(doc["calls"], "calls"))]
        c.need(header["call_count"] == len(calls),
               f"header says {header['call_count']} calls but the file holds {len(calls)}")
        signatures = [Signature.from_wire(s, c, i, calls, ops, tensors)
                      for i, s in enumerate(c.lst(doc["signatures"], "signatures"))]
        c.need(all(k.signature >= 0 for k in calls), "some calls belong to no signature")
        return Trace(header=header, modules=modules, scopes=scopes, ops=ops, tensors=tensors, calls=calls,
                     signatures=signatures, path=path)


def _check_envelope(doc: Any, c: Checker) -> None:
    """Format name, version and the top-level keys."""
    c.need(isinstance(doc, dict), "top level must be a map")
    c.need(doc.get("format") == FORMAT, f"format must be {FORMAT!r}")
    version = doc.get("version")
    c.need(version == FORMAT_VERSION,
           f"format version {version!r} is not supported (this optrace reads version "
           f"{FORMAT_VERSION}; re-capture with trace-model)")
    for key in ("header", "modules", "scopes", "ops", "dtypes", "tensors", "calls", "signatures"):
        c.need(key in doc, f"missing {key!r}")


def _check_header(header: Any, c: Checker) -> dict:
    """The header keys a reader relies on; unknown keys are kept (additions need no new version)."""
    c.need(isinstance(header, dict), "header must be a map")
    for key in ("model", "call_count", "grad_mode", "tensor_mode", "via"):
        c.need(key in header, f"header misses {key!r}")
    c.need(header["grad_mode"] in GRAD_MODES, "header grad_mode is unknown")
    c.need(header["tensor_mode"] in TENSOR_MODES, "header tensor_mode is unknown")
    c.need(isinstance(header["model"], dict) and isinstance(header["model"].get("name"), str),
           "header model must be a map with a name")
    return header


def _check_scopes(scopes: Any, c: Checker, n_modules: int) -> list[list[int]]:
    """Each scope a list of module indices."""
    if type(scopes) is list and all(int_list(s) and all(0 <= m < n_modules for m in s) for s in scopes):
        return scopes                       # a valid table: no message made per entry
    for i, s in enumerate(c.lst(scopes, "scopes")):
        for j, m in enumerate(c.lst(s, f"scopes[{i}]")):
            c.int_(m, f"scopes[{i}][{j}]", 0, n_modules)
    return scopes


# ---------------------------------------------------------------------------------------------
# Signatures

def tensor_key(meta: TensorMeta) -> list:
    """What of a tensor makes two calls the same signature: shape, dtype, stride."""
    return [meta.shape, meta.dtype, meta.stride]


def signature_value(value: list, tensors: list[TensorMeta]) -> list:
    """A tagged value with tensor references replaced by their signature metadata."""
    tag, payload = value
    if tag == "T":
        return ["T", tensor_key(tensors[payload])]
    if tag == "list":
        return ["list", [signature_value(v, tensors) for v in payload]]
    return value


def tensor_payloads(values: list) -> list:
    """The payloads of every tensor among tagged values, nested lists included, in order
    (tensor indices in calls, [shape, dtype, stride] in signatures)."""
    out = []
    for tag, payload in values:
        if tag == "T":
            out.append(payload)
        elif tag == "list":
            out.extend(tensor_payloads(payload))
    return out


_packers = threading.local()                     # a Packer per thread: msgpack.packb makes one per call, 3x the packing


def signature_id(op: str, sig_args: list) -> str:
    """A stable 16-hex-digit id for (op, argument metadata)."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return hashlib.sha256(packer.pack([op, sig_args])).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Writing

def write_trace(trace: Trace, path: str) -> int:
    """Write atomically (temporary file in the same folder, then rename); returns bytes written.
    Cyclic GC waits meanwhile (the wire form is as many small acyclic lists as the trace)."""
    with gc_paused():
        blob = msgpack.packb(trace.to_wire(), use_bin_type=True)
    return write_atomic(path, blob)


# ---------------------------------------------------------------------------------------------
# Reading: every check raises TraceError with one line; nothing of the file is trusted.

MAX_TRACE_BYTES = 2 << 30


def _no_ext(code, data):
    raise ValueError(f"msgpack extension type {code} is not allowed")


def read_trace(path: str) -> Trace:
    """Read and fully validate a trace; raises TraceError (one line) on anything unexpected."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from None
    if size > MAX_TRACE_BYTES:
        raise TraceError(f"{path}: not a valid optrace trace: file is larger than {MAX_TRACE_BYTES} B")
    with open(path, "rb") as f:
        blob = f.read()
    return parse_trace(blob, path)


def parse_trace(blob: bytes, path: str = "<bytes>") -> Trace:
    """Validate and decode trace bytes (see read_trace). Cyclic GC waits meanwhile: a trace is
    hundreds of thousands of small acyclic lists, and GC passes over them cost 3x the decoding."""
    with gc_paused():
        return _parse(blob, path)


def _parse(blob: bytes, path: str) -> Trace:
    try:
        doc = msgpack.unpackb(blob, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except Exception as e:  # msgpack raises many types for hostile input
        msg = " ".join(str(e).split())[:120]
        raise TraceError(f"{path}: not a valid optrace trace: not msgpack ({type(e).__name__}: {msg})") from None
    try:
        return Trace.from_wire(doc, path)
    except TraceError:
        raise
    except (RecursionError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise fail_trace(path, f"malformed structure ({type(e).__name__})") from None
