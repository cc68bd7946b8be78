"""Capture one registry model through torch.export: the op set a torch.compile/export backend sees.

The model is exported with ``torch.export.export(model, inputs, strict=False)``, decomposed to
core ATen (``ep.run_decompositions()``), and the graph's ``call_function`` nodes are written, in
graph order, as a trace in the same format as an eager capture (capture/schema.py):

- each node's overload is an op (``aten.convolution.default``), its args/kwargs are mapped onto
  the schema's argument names with schema defaults filled in, as the eager recorder does;
- tensors come from each node's ``meta["val"]`` (shape, dtype, stride, storage offset). A return
  whose schema alias annotation (``Tensor(a)``) names an argument shares that argument's storage
  id (views); every other output gets a new storage. Lifted parameters, buffers and constants
  (``ep.graph_signature``) are kind param/buffer/constant with their names; user inputs are kind
  input named by position;
- ``operator.getitem`` nodes only unpack multi-output ops; they are not calls, and their value is
  the producer's output element;
- the module stack of a call comes from ``meta["nn_module_stack"]``, mapped onto the same module
  table as eager (``named_modules``), so a call has the same ``module_path`` in both traces.

Header fields added by export (additive: a reader of format version 1 ignores them):
``via = "export"``, ``decompositions`` (the decomposition table, ``"core_aten"``),
``torch_version`` (the export graph depends on it; also in the volatile ``versions``) and
``tensor_last_use``: per tensor index, the index of the last call reading it, ``call_count`` if
the graph returns it, -1 if nothing reads it (lifetimes an eager trace cannot know).
"""
from __future__ import annotations

import contextlib
import io
import operator
import time
import warnings

import torch
import torch.fx
from torch.export.graph_signature import InputKind

from capture.capture import build_signatures, entry_for_inputs, forward_inputs, grad_context, trace_header
from capture.recorder import ModuleStack, RawCall, Recording, encode_constant, overload_name
from capture.registry import ModelEntry, build_with_inputs, eager_only_reason  # eager_only_reason lived here
from capture.schema import ModuleInfo, OpInfo, TensorMeta, Trace

DECOMPOSITIONS = "core_aten"


class ExportError(RuntimeError):
    """A model torch.export cannot export (or that the registry marks eager-only); one line."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception message, at most limit characters."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:limit] if lines else ''}".rstrip(": ")


def export_program(model, inputs: list, grad_mode: str = "no_grad", kwargs: dict | None = None, ep=None):
    """torch.export (non-strict) then core-ATen decompositions: (program, warnings' first lines).
    Given ep (an ExportedProgram already exported, e.g. loaded from a .pt2), only decomposes it.

    Raises ExportError with torch's first line. Warnings are returned, not printed, and what torch
    prints on failure (the partial graph, thousands of lines) is dropped, so a CLI line per model
    stays one line. (Warnings stay out of the trace: their text is not deterministic.)
    """
    try:
        with grad_context(grad_mode), warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("always")
            if ep is None:
                ep = torch.export.export(model, tuple(inputs), kwargs or None, strict=False)
            ep = ep.run_decompositions()
    except Exception as e:  # torch raises many types; the user needs its first line
        raise ExportError(first_line(e)) from None
    said = [str(w.message).strip().splitlines()[0][:300] for w in caught if str(w.message).strip()]
    return ep, list(dict.fromkeys(said))


class GraphTracer:
    """Turns an ExportedProgram's graph into the trace tables (ops, tensors, calls, scopes)."""

    def __init__(self, model, ep, kwarg_names=()):
        self.model, self.ep = model, ep
        self.kwarg_names = set(kwarg_names)       # keyword inputs keep their name; positional ones their position
        stack = ModuleStack(model)                 # the module table eager uses (not entered)
        self.modules: list[ModuleInfo] = stack.modules
        self.module_index = stack.index            # id(module) -> index
        self.path_index: dict[str, int] = {}
        self.scopes: list[list[int]] = [[]]
        self.scope_ids: dict[tuple, int] = {(): 0}
        self.rec = Recording()
        self.op_index: dict = {}
        self.tensors: list[TensorMeta] = []
        self.last_use: list[int] = []
        self.value: dict = {}                      # fx node -> tagged value of its output
        self.pending: dict = {}                    # placeholder node -> (kind, name), made on first use
        self.n_storages = 0

    # -- modules --------------------------------------------------------------------------------
    def _module(self, path: str, qualname: str) -> int:
        i = self.path_index.get(path)
        if i is None:
            try:
                i = self.module_index.get(id(self.model.get_submodule(path)))
            except AttributeError:
                i = None
            if i is None:  # not reachable by name from the model: keep torch's path and class
                i = len(self.modules)
                self.modules.append(ModuleInfo(path, qualname.rsplit(".", 1)[-1]))
            self.path_index[path] = i
        return i

    def _scope(self, node) -> int:
        nn_stack = node.meta.get("nn_module_stack") or {}
        key = tuple(self._module(path.split("@")[0], str(cls)) for path, cls in nn_stack.values())
        if not key:  # a node outside every module still ran inside the root's forward
            key = (self._module("", type(self.model).__name__),)
        sid = self.scope_ids.get(key)
        if sid is None:
            sid = self.scope_ids[key] = len(self.scopes)
            self.scopes.append(list(key))
        return sid

    # -- tensors --------------------------------------------------------------------------------
    def _new_tensor(self, val, kind: str, name: str, storage_id: int | None = None) -> list:
        if storage_id is None:
            storage_id, self.n_storages = self.n_storages, self.n_storages + 1
        self.tensors.append(TensorMeta(shape=[int(s) for s in val.shape], dtype=encode_constant(val.dtype)[1],
                                       stride=[int(s) for s in val.stride()], storage_offset=int(val.storage_offset()),
                                       storage_id=storage_id, kind=kind, name=name))
        self.last_use.append(-1)
        return ["T", len(self.tensors) - 1]

    def _arg_value(self, v) -> list:
        if isinstance(v, torch.fx.Node):
            if v in self.pending:  # a parameter/buffer/input first read here
                kind, name = self.pending.pop(v)
                self.value[v] = self._new_tensor(v.meta["val"], kind, name)
            return self.value[v]
        if isinstance(v, (list, tuple)):
            return ["list", [self._arg_value(x) for x in v]]
        return encode_constant(v)

    def _output_value(self, val, storage_id: int | None) -> list:
        if isinstance(val, torch.Tensor):
            return self._new_tensor(val, "activation", "", storage_id)
        if isinstance(val, (list, tuple)):
            return ["list", [self._output_value(x, storage_id) for x in val]]
        if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            return encode_constant(val.node.hint if val.node.hint is not None else repr(val))
        return encode_constant(val)

    # -- calls ----------------------------------------------------------------------------------
    def _op(self, func) -> int:
        i = self.op_index.get(func)
        if i is None:
            schema = func._schema
            i = self.op_index[func] = len(self.rec.ops)
            self.rec.ops.append(OpInfo(overload_name(func), [a.name for a in schema.arguments], len(schema.returns),
                                       str(schema)))
        return i

    def _named_args(self, node) -> list:
        out = []
        for i, a in enumerate(node.target._schema.arguments):
            if not a.kwarg_only and i < len(node.args):
                v = node.args[i]
            elif a.name in node.kwargs:
                v = node.kwargs[a.name]
            elif a.has_default_value():
                v = a.default_value
            else:
                v = None
            out.append(self._arg_value(v))
        return out

    def _alias_storage(self, schema, args: list, ret) -> int | None:
        """The storage id a return shares with the argument its alias annotation names, if any."""
        if ret.alias_info is None:
            return None
        for a, v in zip(schema.arguments, args):
            if a.alias_info is not None and a.alias_info.before_set & ret.alias_info.before_set:
                while v[0] == "list" and v[1]:
                    v = v[1][0]
                if v[0] == "T":
                    return self.tensors[v[1]].storage_id
        return None

    def _call(self, node, call_index: int):
        schema = node.target._schema
        args = self._named_args(node)
        val = node.meta.get("val")
        vals = [val] if len(schema.returns) == 1 else list(val if isinstance(val, (list, tuple)) else [val])
        outputs = [self._output_value(v, self._alias_storage(schema, args, r))
                   for v, r in zip(vals, schema.returns)]
        self.value[node] = outputs[0] if len(outputs) == 1 else ["list", outputs]
        self._mark_used(args, call_index)
        self.rec.calls.append(RawCall(self._op(node.target), args, outputs, self._scope(node)))

    def _mark_used(self, value: list, at: int):
        for v in value:
            if v[0] == "T":
                self.last_use[v[1]] = at
            elif v[0] == "list":
                self._mark_used(v[1], at)

    def run(self):
        """Walk the graph once; fills rec (ops, raw calls), tensors, scopes and last_use."""
        kinds = {InputKind.PARAMETER: "param", InputKind.BUFFER: "buffer",
                 InputKind.CONSTANT_TENSOR: "constant", InputKind.USER_INPUT: "input"}
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs if hasattr(s.arg, "name")}
        n_user = 0
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                spec = specs.get(node.name)
                if spec is not None and spec.kind == InputKind.USER_INPUT:
                    if node.name in self.kwarg_names:
                        self.pending[node] = ("input", node.name)
                    else:
                        self.pending[node] = ("input", str(n_user))
                        n_user += 1
                elif spec is not None:
                    self.pending[node] = (kinds.get(spec.kind, "constant"), spec.target or node.name)
                else:
                    self.pending[node] = ("constant", node.name)
            elif node.op == "call_function" and node.target is operator.getitem:
                src, i = node.args
                self.value[node] = self._arg_value(src)[1][i]
            elif node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
                self._call(node, len(self.rec.calls))
            elif node.op == "call_function":
                raise ExportError(f"graph node {node.name} calls {node.target}, which is not an aten overload")
            elif node.op == "output":
                self._mark_used([self._arg_value(v) for v in node.args[0]], len(self.rec.calls))


def program_trace(model, ep, *, entry: ModelEntry, shapes: list[list[int]], grad_mode: str,
                  kwarg_names=(), t0: float) -> Trace:
    """A decomposed ExportedProgram's graph as a Trace whose header names entry."""
    tracer = GraphTracer(model, ep, kwarg_names)
    tracer.run()
    calls, sigs = build_signatures(tracer.rec, tracer.tensors)
    header = trace_header(entry, shapes, grad_mode, "fake", "export", len(calls), time.perf_counter() - t0,
                          decompositions=DECOMPOSITIONS, torch_version=torch.__version__,
                          tensor_last_use=tracer.last_use)
    return Trace(header=header, modules=tracer.modules, scopes=tracer.scopes, ops=tracer.rec.ops,
                 tensors=tracer.tensors, calls=calls, signatures=sigs)


def export_traced(model, args: list, kwargs: dict, *, entry: ModelEntry, shapes: list[list[int]],
                  grad_mode: str = "no_grad") -> Trace:
    """Export a built model on given inputs and return its core-ATen graph as a Trace (ExportError in one line)."""
    t0 = time.perf_counter()
    ep, _warnings = export_program(model, args, grad_mode, kwargs)
    return program_trace(model, ep, entry=entry, shapes=shapes, grad_mode=grad_mode, kwarg_names=list(kwargs), t0=t0)


def export_model(entry: ModelEntry, *, grad_mode: str = "no_grad",
                 inputs: list[list[int]] | None = None) -> Trace:
    """Export the entry and return its core-ATen graph as a Trace; raises ExportError in one line."""
    reason = eager_only_reason(entry)
    if reason:
        raise ExportError(f"eager-only: {reason}")
    model, example = build_with_inputs(entry)
    # export never computes with the inputs (it traces on fake copies): empty tensors suffice,
    # and keep ultra-high-resolution entries cheap
    args, kwargs, specs = forward_inputs(entry, example, inputs, empty=True)
    return export_traced(model, args, kwargs, entry=entry_for_inputs(entry, specs), shapes=[s.shape for s in specs],
                         grad_mode=grad_mode)
