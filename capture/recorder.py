"""The recorder: a TorchDispatchMode that keeps every aten call of a forward, in order.

Nothing is filtered here (views, in-place ops, creation ops: all of it); replay decides what to
skip. Per call it keeps the overload, every schema argument by name as a typed value, the outputs,
and the module stack executing it. Tensors go into a table keyed by ``id()`` checked against a weak
reference (ids are reused), and storages likewise by their Python storage object, which torch keeps
exactly as long as the StorageImpl lives (PyObject preservation): a weak reference tells a reused id
from the same storage without keeping any storage's memory alive.

Fake-tensor capture: under ``FakeTensorMode`` no data exists, so a model reading a tensor's value
(ultralytics reads ``Detect.stride`` with ``.item()``) would fail. Small tensors keep a real
*shadow* computed alongside (constant propagation for tensors of at most SHADOW_MAX_NUMEL
elements); data-dependent ops on them are answered from the shadow. This works for any model,
not just ultralytics.
"""
from __future__ import annotations

import types
import weakref
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils.weak import WeakIdKeyDictionary

from capture.accel import load as accelerator
from capture.accel import load_dispatch
from capture.schema import ModuleInfo, OpInfo, TensorMeta

SHADOW_MAX_NUMEL = 4096
_NEW = object()                                  # an overload not met yet
_NONE = ["none", None]
# constants whose tagged value is cached per recorder: singletons torch passes by value, hashable
# and never equal to a value of another type (unlike 1 == True == 1.0)
_CACHED_CONSTANTS = (torch.dtype, torch.memory_format, torch.layout, torch.device)


def _name(x) -> str:
    return str(x).removeprefix("torch.")


def overload_name(func) -> str:
    """The name a trace gives an overload: "aten.view.default", or torch's own name outside aten."""
    return f"aten.{func._opname}.{func._overloadname}" if func.namespace == "aten" else str(func)


def encode_constant(v) -> list:
    """A non-tensor, non-list value as a tagged value (capture/schema.py VALUE_TAGS)."""
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, (int, torch.SymInt)):
        return ["int", int(v)]
    if isinstance(v, (float, torch.SymFloat)):
        return ["float", float(v)]
    if v is None:
        return ["none", None]
    if isinstance(v, str):
        return ["str", v]
    if isinstance(v, torch.dtype):
        return ["dtype", _name(v)]
    if isinstance(v, torch.device):
        return ["device", str(v)]
    if isinstance(v, torch.layout):
        return ["layout", _name(v)]
    if isinstance(v, torch.memory_format):
        return ["memory_format", _name(v)]
    if isinstance(v, torch.SymBool):
        return ["bool", bool(v)]
    return ["opaque", repr(v)[:200]]


class IntTags(dict):
    """int -> its tagged value ``["int", v]``, made on first use and shared by every reference
    (tagged values are never modified). Only for exact ints: ``ints[True]`` would find 1."""

    def __missing__(self, v):
        if type(v) is not int:
            raise TypeError(f"not an int: {type(v).__name__}")
        tagged = self[v] = ["int", v]
        return tagged


# ---------------------------------------------------------------------------------------------
# Module stack

class ModuleStack:
    """An ordered stack of the nn.Modules executing, kept while entered by a stand-in for
    ``nn.Module._call_impl`` (module_call) that enters and leaves each module around its call.

    Why not global forward hooks: any global hook sends every module call down nn.Module's slow path
    (a closure, hook-table walks, a try per call: a few ms of swin_t's forward); the stand-in keeps
    the fast path. It sees what those hooks saw, every call through ``module(...)``, modules built
    during forward included, and leaves on exceptions too.
    Scopes (distinct stacks) are numbered in the order first entered. Entering looks its scope up
    by (enclosing scope, module) and leaving returns to the scope saved on entry, so a module call
    costs a dict lookup instead of hashing the whole stack.
    """

    def __init__(self, model: torch.nn.Module, named_modules: list | None = None):
        """named_modules: model.named_modules(remove_duplicate=False) when the caller walked it already."""
        self.index: dict[int, int] = {}          # id(module) -> index in self.modules (modules live all run)
        self.modules: list[ModuleInfo] = []
        self._alive = []                          # keeps the modules referenced so ids stay valid
        if named_modules is None:
            named_modules = model.named_modules(remove_duplicate=False)
        for name, m in named_modules:
            if id(m) not in self.index:
                self.index[id(m)] = len(self.modules)
                self.modules.append(ModuleInfo(name, type(m).__name__))
                self._alive.append(m)
        self.stack: list[int] = []
        self.scopes: list[list[int]] = [[]]
        self.current_scope = 0
        self._frames: list[int] = []              # the scope each entry of self.stack was pushed from
        self._child: dict[tuple[int, int], int] = {}  # (scope, module index) -> scope with it pushed
        self._saved_call = None                   # nn.Module._call_impl while entered

    def enter(self, module) -> None:
        """A module's call begins: push it."""
        i = self.index.get(id(module))
        if i is None:  # a module built during forward, not part of the model: name it by class
            i = self.index[id(module)] = len(self.modules)
            self.modules.append(ModuleInfo(f"<{type(module).__name__}>", type(module).__name__))
            self._alive.append(module)
        outer = self.current_scope
        sid = self._child.get((outer, i))
        if sid is None:
            sid = self._child[(outer, i)] = len(self.scopes)
            self.scopes.append(self.scopes[outer] + [i])
        self.stack.append(i)
        self._frames.append(outer)
        self.current_scope = sid

    def leave(self, module) -> None:
        """A module's call ended (returned or raised): pop back to its own frame."""
        i = self.index.get(id(module))
        if i in self.stack:
            while self.stack:
                self.current_scope = self._frames.pop()
                if self.stack.pop() == i:
                    break

    def __enter__(self):
        self._saved_call = torch.nn.Module.__dict__["_call_impl"]
        fast = accelerator()
        torch.nn.Module._call_impl = (fast.ModuleCall if fast else module_call)(self._saved_call, self)
        return self

    def __exit__(self, *exc):
        torch.nn.Module._call_impl = self._saved_call
        self._saved_call = None


def module_call(original, stack: ModuleStack):
    """original (nn.Module._call_impl) between stack.enter(module) and stack.leave(module), leaving on
    exceptions too (capture/_accel.c's ModuleCall is the same in C)."""
    enter, leave = stack.enter, stack.leave

    def _call_impl(module, *args, **kwargs):
        enter(module)
        try:
            return original(module, *args, **kwargs)
        finally:
            leave(module)
    return _call_impl


# ---------------------------------------------------------------------------------------------
# Tensor table

_DTYPE_NAMES: dict = {}                           # torch.dtype -> its trace name, filled as met


def dtype_name(dtype) -> str:
    """The trace's name of a torch dtype ("float32"), looked up once per dtype."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = _name(dtype)
    return name


def _ints(values) -> list[int]:
    return list(map(int, values))


class TensorTable:
    """Assigns each distinct tensor (object + metadata) an index, and each storage an id.

    Storages are keyed by id() of their Python storage object, which torch preserves for as long
    as the StorageImpl lives, checked against a Python weak reference like tensors. (Pinning
    StorageImpl addresses with C++ weak references instead kept every activation's memory alive
    until the end of the forward: 15,000 page faults and a quarter more time on swin_t.)
    A tensor seen before is the same entry unless an op wrote to it since (``touched``): only then
    is its metadata read again, since only an op that writes a tensor can change its metadata
    (``t_``, ``resize_``, ``as_strided_``). Entries are kept as captured and made TensorMeta
    records once, when ``metas`` is first read after the recording.
    """

    def __init__(self, kinds: dict):
        self.kinds = kinds                        # id(tensor) -> (kind, name, tensor): params, buffers, inputs
        self._rows: list[tuple] = []              # (metadata key, storage id, kind, name) per entry
        self._metas: list[TensorMeta] = []        # self._rows made records (a prefix, extended on read)
        # id(tensor) -> (weakref, metadata key, its tagged value ["T", index]); the weakref tells a
        # reused id from the same tensor. Every reference to an entry is that one tagged list. The
        # recorder reads seen and touched directly for its arguments' common case (Recorder._named_args).
        self.seen: dict[int, tuple] = {}
        # per entry, a token shared by the entries with equal signature metadata (shape, dtype, stride)
        self.classes: list[tuple] = []
        self._class_tokens: dict[tuple, tuple] = {}
        self.touched: set[int] = set()            # ids of tensors an op wrote since last referenced
        self._storages: dict[int, tuple] = {}     # id(storage) -> (weakref to it, storage id)
        self._next_sid = 0
        self._symbolic = False                    # an entry has symbolic sizes (SymInts): made ints in metas

    @property
    def metas(self) -> list[TensorMeta]:
        """One TensorMeta per entry, in the order entries were made."""
        fast = accelerator()
        if fast is not None and not self._symbolic:
            self._metas += fast.tensor_metas(self._rows, len(self._metas), _DTYPE_NAMES, dtype_name, TensorMeta)
            return self._metas
        as_ints = _ints if self._symbolic else list  # list(): plain sizes are ints already, 4x cheaper
        for key, sid, kind, name in self._rows[len(self._metas):]:
            shape, dtype, stride, offset = key
            self._metas.append(TensorMeta(as_ints(shape), dtype_name(dtype), as_ints(stride),
                                          int(offset), sid, kind, name))
        return self._metas

    def storage_id(self, t: torch.Tensor) -> int:
        """The id of t's storage: the same for every view of it while the table is open."""
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. sparse or storage-less tensors
            return self._new_storage_id()
        key = id(storage)
        hit = self._storages.get(key)
        if hit is not None and hit[0]() is storage:
            return hit[1]
        sid = self._new_storage_id()
        self._storages[key] = (weakref.ref(storage), sid)
        return sid

    def _new_storage_id(self) -> int:
        self._next_sid += 1
        return self._next_sid - 1

    def close(self) -> None:
        """Drop the storage table (the entries made stay)."""
        self._storages.clear()  # in place: the accelerator holds this dict

    def touch(self, t) -> None:
        """Note that an op wrote t (its metadata may have changed): the next ref reads it again."""
        if isinstance(t, torch.Tensor):
            self.touched.add(id(t))
        elif isinstance(t, (list, tuple)):
            for x in t:
                self.touch(x)

    def ref(self, t: torch.Tensor, produced: bool) -> int:
        """The index of t's entry, made on first sight (kind from the table's kinds, else
        activation when an op produced it, constant otherwise)."""
        return self.tagged(t, produced)[1]

    def tagged(self, t: torch.Tensor, produced: bool) -> list:
        """t as a tagged value, ``["T", index]`` of its entry (see ref); the same list object for
        every reference to one entry."""
        tid = id(t)
        hit = self.seen.get(tid)
        if hit is not None and hit[0]() is t:
            if tid not in self.touched:
                return hit[2]
            self.touched.discard(tid)
            key = (t.shape, t.dtype, t.stride(), t.storage_offset())
            if hit[1] == key:
                return hit[2]
        else:
            if self.touched:
                self.touched.discard(tid)
            key = (t.shape, t.dtype, t.stride(), t.storage_offset())
        return self._new_entry(t, tid, key, produced)

    def _new_entry(self, t: torch.Tensor, tid: int, key: tuple, produced: bool) -> list:
        known = self.kinds.get(tid)
        kind, name = (known[0], known[1]) if known is not None and known[2] is t else \
            ("activation" if produced else "constant", "")
        tagged = ["T", len(self._rows)]
        self._rows.append((key, self.storage_id(t), kind, name))
        class_key = key[:3]
        if t._has_symbolic_sizes_strides:  # SymInts are not hashable: class them by their values
            self._symbolic = True
            class_key = (tuple(_ints(key[0])), key[1], tuple(_ints(key[2])))
        token = self._class_tokens.get(class_key)
        if token is None:
            token = self._class_tokens[class_key] = ("T", len(self._class_tokens))
        self.classes.append(token)
        self.seen[tid] = (weakref.ref(t), key, tagged)
        return tagged


# ---------------------------------------------------------------------------------------------
# The mode

class RawCall(NamedTuple):
    """One recorded call before signatures are interned (OpCall without index and signature)."""
    op: int
    args: list
    outputs: list
    scope: int


_new_tuple = tuple.__new__                       # RawCall(...) without NamedTuple's Python-level __new__


@dataclass
class Recording:
    """What a recording collects: the distinct overloads and the raw calls, in order."""
    ops: list[OpInfo] = field(default_factory=list)
    calls: list[RawCall] = field(default_factory=list)


# Metadata queries that reach dispatch only for tensor subclasses with a custom dispatch policy
# (FakeTensor asks prim.device on every op); real tensors answer them in C++ without an aten call,
# so recording them would make fake and real captures differ.
_SUBCLASS_METADATA_QUERIES = frozenset({
    torch.ops.prim.device.default, torch.ops.prim.layout.default,
    torch.ops.aten.sym_size.default, torch.ops.aten.sym_size.int,
    torch.ops.aten.sym_stride.default, torch.ops.aten.sym_stride.int,
    torch.ops.aten.sym_numel.default, torch.ops.aten.sym_storage_offset.default,
    torch.ops.aten.dim.default, torch.ops.aten.is_contiguous.default,
    torch.ops.aten.is_contiguous.memory_format,
})


@dataclass(frozen=True)
class _OverloadSpec:
    """What the recorder needs of one overload, worked out from its schema once."""
    op: int                                   # index into Recording.ops
    names: tuple[str, ...]                    # schema argument names, in order
    defaults: tuple[list, ...]                # each argument's default, encoded (["none", None] if none)
    n_returns: int
    writes: tuple[int | str, ...]             # arguments the op writes: position, or name when keyword-only
    int_lists: tuple[bool, ...]               # per argument: its type is int[] (or int[]?)
    run: object                               # what runs the overload: its C++ op, skipping OpOverload.__call__


def _runner(func):
    """The callable that runs an overload: OpOverload.__call__ forwards to its C++ ``_op`` unless a
    Python object dispatcher is installed on it (then the overload itself)."""
    op = getattr(func, "_op", None)
    return op if op is not None and getattr(func, "_pyobj_dispatcher", True) is None else func


def _is_int_list(arg) -> bool:
    """The schema argument's type is a list of ints (SymInt[] included), or such a list or None."""
    t = arg.type
    if isinstance(t, torch._C.OptionalType):
        t = t.getElementType()
    return isinstance(t, torch._C.ListType) and isinstance(t.getElementType(), torch._C.IntType)


# id(OpOverload) -> (the overload, its schema's facts as a spec numbered -1, its schema's text): the
# same in every recording of the process (tagged defaults are shared, never modified); holding the
# overload keeps its id valid
_OVERLOADS: dict[int, tuple] = {}


class Recorder(TorchDispatchMode):
    """Records every aten call; ``fake_mode`` set means tensors are fake and shadows are kept.

    The per-call bookkeeping (arguments, outputs, tensor entries) runs in C when capture/_accel.c is
    built and current (capture.accel.load), else in this class's Python methods: same containers,
    same algorithm, byte-identical traces."""

    def __init__(self, modules: ModuleStack, tensors: TensorTable, fake_mode=None):
        super().__init__()
        self.modules = modules
        self.tensors = tensors
        self.rec = Recording()
        # id(OpOverload) -> its _OverloadSpec, or None for a call passed through unrecorded. Keyed by
        # id: OpOverload's __hash__ is Python, a call per dispatch; _funcs keeps the ids valid.
        self._funcs = list(_SUBCLASS_METADATA_QUERIES) if fake_mode is not None else []
        self._specs: dict = dict.fromkeys(map(id, self._funcs))
        self.fake_mode = fake_mode
        self.shadows = WeakIdKeyDictionary()      # fake tensor -> small real tensor with its values
        self.ints = IntTags()
        self._constants: dict = {}                # dtype, memory format, layout, device -> its tagged value
        fast = accelerator()
        self._accel = fast.Recording(tensors, torch.Tensor, self.ints, self.encode, self._constants, _CACHED_CONSTANTS,
                                     _NONE) if fast else None
        self._accelerated = fast is not None
        self._dispatch = None                     # capture/_dispatch.cpp, once it adopted this recorder
        # the bookkeeping's three entry points: the accelerator's, or this class's Python methods
        self._tagged = self._accel.tagged if fast else tensors.tagged
        self._args = self._accel.named_args if fast else self._named_args
        self._results = self._accel.results if fast else self._encode_results
        if fast:
            # torch calls an instance's own __torch_dispatch__ when it has one: here the accelerator's,
            # with no Python frame (torch wraps the class's method per call to keep Dynamo out of its
            # frames; the accelerator runs that guarded method itself whenever a frame evaluator is
            # installed, as Dynamo's is while compiled code runs)
            self._accel.bind(self, RawCall, type(self).__torch_dispatch__.__get__(self, type(self)))
            self.__torch_dispatch__ = types.MethodType(self._accel.dispatch, self)

    def __enter__(self):
        """Entered as any dispatch mode; then, when the C++ dispatch is built and this recording is
        accelerated and real, adopted by it (capture/_dispatch.cpp): torch then calls it from C++
        with the call's IValues instead of calling __torch_dispatch__ from Python."""
        super().__enter__()
        dispatch = load_dispatch() if self._accel is not None and self.fake_mode is None else None
        self._dispatch = dispatch if dispatch is not None and dispatch.adopt(self, self._accel) else None
        return self

    def __exit__(self, *exc):
        if self._dispatch is not None:  # torch's interpreter table back before torch pops the mode
            self._dispatch.release(self)
        return super().__exit__(*exc)

    @property
    def accelerated(self) -> bool:
        """The bookkeeping runs (or ran) in C (capture/_accel.c)."""
        return self._accelerated

    @property
    def adopted(self) -> bool:
        """The last entry was dispatched from C++ (capture/_dispatch.cpp)."""
        return self._dispatch is not None

    def close(self) -> None:
        """The recording is over: drop the accelerator and the instance's own __torch_dispatch__, whose
        references back to this recorder would keep it, its tables and the model's tensors (the
        tensor table holds every parameter) alive until a full cyclic GC pass."""
        self.__dict__.pop("__torch_dispatch__", None)
        if self._accel is not None:
            self._accel.release()
        self._accel = self._tagged = self._args = self._results = None

    # -- values ---------------------------------------------------------------------------------
    def encode(self, v, produced: bool = False) -> list:
        """v as a tagged value; tensors become references into the tensor table."""
        tp = type(v)
        if tp is int:  # the common cases first: this runs for every argument of every call
            return self.ints[v]
        if tp is torch.Tensor or isinstance(v, torch.Tensor):
            return self._tagged(v, produced)
        if tp is list or tp is tuple:
            return ["list", [self.encode(x, produced) for x in v]]
        if tp is float:
            return ["float", v]
        if tp is bool:
            return ["bool", v]
        if v is None:
            return _NONE
        if isinstance(v, _CACHED_CONSTANTS):
            tagged = self._constants.get(v)
            if tagged is None:
                tagged = self._constants[v] = encode_constant(v)
            return tagged
        return encode_constant(v)

    def _spec(self, func) -> _OverloadSpec:
        """An overload's spec in this recording, made on its first call: its schema's facts (worked
        out once per process, _OVERLOADS) numbered by the recording's table of overloads."""
        known = _OVERLOADS.get(id(func))
        if known is None:
            known = _OVERLOADS[id(func)] = (func, *self._schema_facts(func))
        _, facts, schema_text = known
        spec = replace(facts, op=len(self.rec.ops), run=_runner(func))  # run: a dispatcher may come later
        self.rec.ops.append(OpInfo(overload_name(func), list(spec.names), spec.n_returns, schema_text))
        self._specs[id(func)] = spec
        self._funcs.append(func)
        return spec

    def _schema_facts(self, func) -> tuple[_OverloadSpec, str]:
        """What an overload's schema says, as a spec numbered -1, and the schema's text
        (``func._schema`` is a new object per access: read once)."""
        schema = func._schema
        args = schema.arguments
        spec = _OverloadSpec(
            op=-1, names=tuple(a.name for a in args),
            defaults=tuple(self.encode(a.default_value if a.has_default_value() else None) for a in args),
            n_returns=len(schema.returns),
            writes=tuple(a.name if a.kwarg_only else i for i, a in enumerate(args)
                         if a.alias_info is not None and a.alias_info.is_write),
            int_lists=tuple(map(_is_int_list, args)), run=func)
        return spec, str(schema)

    def _named_args(self, spec: _OverloadSpec, args, kwargs) -> list:
        """One encoded value per schema argument: positional, keyword, or the schema default
        (dispatch leaves out trailing arguments equal to their default)."""
        table, encode, ints = self.tensors, self.encode, self.ints
        seen, touched = table.seen, table.touched
        out = []
        # encode's common cases inline: this runs for every argument of every call
        for a, int_list in zip(args, spec.int_lists):
            tp = type(a)
            if tp is torch.Tensor:
                hit = seen.get(id(a))  # TensorTable.tagged's first test, inline
                out.append(hit[2] if hit is not None and hit[0]() is a and id(a) not in touched
                           else table.tagged(a, False))
            elif tp is int:
                out.append(ints[a])
            elif int_list and tp is list:
                try:
                    out.append(["list", [ints[x] for x in a]])
                except TypeError:  # an element that is not a plain int (a SymInt)
                    out.append(encode(a))
            else:
                out.append(encode(a))
        n = len(out)
        if n < len(spec.names):
            if kwargs:
                out += [encode(kwargs[name]) if name in kwargs else default
                        for name, default in zip(spec.names[n:], spec.defaults[n:])]
            else:
                out += spec.defaults[n:]
        return out

    def _encode_results(self, spec: _OverloadSpec, out, args, kwargs) -> list:
        """The call's outputs encoded, after noting the tensors it wrote (their metadata may have changed)."""
        for w in spec.writes:
            if type(w) is int:
                if w < len(args):
                    self.tensors.touch(args[w])
            elif w in kwargs:
                self.tensors.touch(kwargs[w])
        if spec.n_returns == 1:
            return [self.tensors.tagged(out, True) if type(out) is torch.Tensor else self.encode(out, True)]
        return [self.encode(o, True) for o in (out if isinstance(out, (list, tuple)) else [out])]

    # -- shadows (fake mode only) ---------------------------------------------------------------
    def _real_args(self, args, kwargs):
        """args/kwargs with every fake tensor replaced by its shadow; None if one has none."""
        missing = []

        def sub(x):
            if isinstance(x, torch.Tensor):
                if x in self.shadows:
                    return self.shadows[x]
                if not isinstance(x, torch._subclasses.FakeTensor) and x.numel() <= SHADOW_MAX_NUMEL:
                    return x
                missing.append(x)
                return x
            if isinstance(x, (list, tuple)):
                return type(x)(sub(y) for y in x)
            return x

        ra, rk = sub(args), {k: sub(v) for k, v in kwargs.items()}
        return None if missing else (ra, rk)

    def _with_shadows(self, func, args, kwargs):
        real = self._real_args(args, kwargs)
        try:
            out = func(*args, **kwargs)
        except (torch._subclasses.fake_tensor.DataDependentOutputException,
                torch._subclasses.fake_tensor.DynamicOutputShapeException):
            if real is None:
                raise
            with _disable_current_modes():
                real_out = func(*real[0], **real[1])
            return self._fake_like(real_out)
        if real is not None:
            outs = out if isinstance(out, (list, tuple)) else [out]
            if all(not isinstance(o, torch.Tensor) or o.numel() <= SHADOW_MAX_NUMEL for o in outs):
                with _disable_current_modes():
                    real_out = func(*real[0], **real[1])
                real_outs = real_out if isinstance(real_out, (list, tuple)) else [real_out]
                for o, r in zip(outs, real_outs):
                    if isinstance(o, torch.Tensor) and isinstance(r, torch.Tensor):
                        self.shadows[o] = r
        return out

    def _fake_like(self, real_out):
        """Turn a real result into fake tensors (keeping the real ones as shadows)."""
        if isinstance(real_out, torch.Tensor):
            with _disable_current_modes():
                fake = self.fake_mode.from_tensor(real_out)
            self.shadows[fake] = real_out
            return fake
        if isinstance(real_out, (list, tuple)):
            return type(real_out)(self._fake_like(r) for r in real_out)
        return real_out

    # -- dispatch -------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        spec = self._specs.get(id(func), _NEW)
        if spec is _NEW:
            spec = self._spec(func)
        elif spec is None:
            return func(*args, **kwargs)
        named = self._args(spec, args, kwargs)
        out = spec.run(*args, **kwargs) if self.fake_mode is None else self._with_shadows(func, args, kwargs)
        outputs = self._results(spec, out, args, kwargs)
        self.rec.calls.append(_new_tuple(RawCall, (spec.op, named, outputs, self.modules.current_scope)))
        return out
