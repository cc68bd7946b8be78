"""The aten -> ttnn mapping: what a TTNN port would do for one captured signature.

One small function per op family, registered by aten overload name (like torch's
``flop_counter.register_flop_formula``); ``print_table()`` lists them. A mapping function reads the
traced arguments by schema name and returns a ``Replay``: the tensors to create on the device with
the traced shapes, and the ttnn calls with arguments translated from the traced ones (real dims,
real broadcast shapes, real view targets). Ops a port never issues are *skipped* with the reason;
ops without a ttnn equivalent are *unsupported* with a reason a user can act on.

Conventions a port follows, and so does replay:
- float tensors become ``Settings.dtype`` (bfloat16 by default), integer tensors int32 (indices
  uint32), bool masks bfloat16 (ttnn has no bool); layout TILE; inputs in DRAM or L1 (``--memory``).
- conv/pool/upsample inputs are held channels-last (``[1, 1, N*H*W, C]`` or ``[N, H, W, C]``), as
  ttnn requires; a port converts once at the model input, not per op.
- conv/linear weights are prepared once by a port: conv weights stay host tensors (ttnn.conv2d
  prepares them), linear weights are pre-transposed to ``[in, out]``.
- in-place aten variants (``add_``, ``relu_``) are replayed out of place: a port writes a new tensor.

Imports neither torch nor ttnn: calls name ttnn functions as strings; ``replay.ttnn_backend``
resolves them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

INT64_MAX = 2**63 - 1
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")


# ---------------------------------------------------------------------------------------------
# What a mapping returns

@dataclass
class Settings:
    """How replay places tensors: dtype for float tensors, layout, DRAM or L1."""
    dtype: str = "bfloat16"
    layout: str = "TILE"          # TILE | ROW_MAJOR
    memory: str = "dram"          # dram | l1

    @property
    def buffer(self) -> str:
        return "L1" if self.memory.lower() == "l1" else "DRAM"


class Ref(str):
    """A named tensor in a Replay: an input or an earlier call's result."""


class TT(str):
    """A ttnn attribute used as an argument, e.g. TT('bfloat16') -> ttnn.bfloat16."""


class _Special(str):
    pass


DEVICE = _Special("device")              # the open device
MEMORY = _Special("memory_config")       # ttnn.DRAM_MEMORY_CONFIG or ttnn.L1_MEMORY_CONFIG


@dataclass
class InputTensor:
    name: str
    shape: list[int]
    dtype: str                    # ttnn dtype name
    layout: str                   # TILE | ROW_MAJOR
    memory: str                   # DRAM | L1 | host


@dataclass
class Call:
    fn: str                       # attribute path under ttnn, e.g. "reshape", "transformer.x"
    args: list
    kwargs: dict
    out: str                      # name the result is bound to
    pick: int | None = None       # keep only this element of a tuple/list result


@dataclass
class Replay:
    """What replaying one signature means: status, inputs to create, calls to make."""
    op: str
    status: str                   # mapped | skip | unsupported
    reason: str = ""
    inputs: list[InputTensor] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    expected: list[list[int]] = field(default_factory=list)   # output shapes in the port's layout
    notes: list[str] = field(default_factory=list)

    def call_string(self) -> str:
        """The calls as readable Python, e.g. 'out = ttnn.reshape(self, [1, 2])'."""
        return "; ".join(f"{c.out} = ttnn.{c.fn}({_fmt_args(c.args, c.kwargs)})"
                         + (f"[{c.pick}]" if c.pick is not None else "") for c in self.calls)


def _fmt(v: Any) -> str:
    if isinstance(v, (Ref, _Special)):
        return str(v)
    if isinstance(v, TT):
        return f"ttnn.{v}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_fmt(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    return repr(v)


def _fmt_args(args: list, kwargs: dict) -> str:
    return ", ".join([_fmt(a) for a in args] + [f"{k}={_fmt(v)}" for k, v in kwargs.items()])


class NotReplayed(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def skip(reason: str):
    raise NotReplayed("skip", reason)


def unsupported(reason: str):
    raise NotReplayed("unsupported", reason)


# ---------------------------------------------------------------------------------------------
# The captured signature, read by schema argument name

@dataclass
class Traced:
    """A traced tensor argument: metadata only."""
    shape: list[int]
    dtype: str
    stride: list[int]

    @property
    def rank(self) -> int:
        return len(self.shape)


def _unwrap(tagged: list) -> Any:
    tag, payload = tagged
    if tag == "T":
        return Traced(list(payload[0]), payload[1], list(payload[2]))
    if tag == "list":
        return [_unwrap(x) for x in payload]
    return payload


@dataclass
class Case:
    """One signature as the worker receives it: [id, op, args, outputs, count, calls, arg_names]."""
    id: str
    op: str
    args: list
    outputs: list
    arg_names: list[str]

    @staticmethod
    def from_wire(wire: list) -> "Case":
        sig_id, op, args, outputs = wire[0], wire[1], wire[2], wire[3]
        names = list(wire[6]) if len(wire) > 6 and wire[6] else [f"arg{i}" for i in range(len(args))]
        return Case(sig_id, op, list(args), list(outputs), names)

    def __post_init__(self):
        self._named = {n: _unwrap(v) for n, v in zip(self.arg_names, self.args)}

    def get(self, name: str, default: Any = None) -> Any:
        """The argument's plain value (tensors as Traced), or default when absent or None."""
        v = self._named.get(name)
        return default if v is None else v

    def tensor(self, name: str) -> Traced | None:
        v = self._named.get(name)
        return v if isinstance(v, Traced) else None

    def out_shapes(self) -> list[list[int]]:
        """Traced output tensor shapes, lists of tensors flattened."""
        shapes: list[list[int]] = []

        def walk(v):
            if isinstance(v, Traced):
                shapes.append(v.shape)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        for o in self.outputs:
            walk(_unwrap(o))
        return shapes


# ---------------------------------------------------------------------------------------------
# The builder mapping functions use

class Port:
    """Collects the inputs and calls of one Replay."""

    def __init__(self, case: Case, settings: Settings):
        self.case, self.settings = case, settings
        self.replay = Replay(case.op, "mapped")
        self._n = 0

    def dtype_of(self, traced_dtype: str) -> str:
        if traced_dtype in FLOAT_DTYPES:
            return self.settings.dtype
        if traced_dtype in INT_DTYPES:
            return "int32"
        if traced_dtype == "bool":
            return "bfloat16"
        unsupported(f"tensor dtype {traced_dtype} has no ttnn equivalent")

    def input(self, name: str, shape: list[int] | None = None, dtype: str | None = None,
              layout: str | None = None, memory: str | None = None) -> Ref:
        """Create the traced tensor argument `name` (optionally re-shaped the way a port holds it)."""
        t = self.case.tensor(name)
        if t is None and shape is None:
            unsupported(f"argument {name!r} is not a traced tensor")
        shape = list(shape if shape is not None else t.shape) or [1]
        self.replay.inputs.append(InputTensor(
            name, shape, dtype or self.dtype_of(t.dtype if t else "float32"),
            layout or self.settings.layout, memory or self.settings.buffer))
        return Ref(name)

    def call(self, fn: str, *args, pick: int | None = None, **kwargs) -> Ref:
        self._n += 1
        out = f"t{self._n}"
        self.replay.calls.append(Call(fn, list(args), kwargs, out, pick))
        return Ref(out)

    def expect(self, *shapes: list[int]) -> None:
        # rank-0 tensors are held as [1]: ttnn has no 0-d tensors
        self.replay.expected = [list(s) or [1] for s in shapes]

    def note(self, text: str) -> None:
        self.replay.notes.append(text)

    def finish(self) -> Replay:
        if self.replay.calls:
            self.replay.calls[-1].out = "out"
        return self.replay


# ---------------------------------------------------------------------------------------------
# The registry

@dataclass
class Mapping:
    op: str
    fn: Callable[[Port, Case], None] | None
    ttnn: str                     # what it becomes, for the table
    kind: str                     # mapped | skip | unsupported
    reason: str = ""


MAPPINGS: dict[str, Mapping] = {}


def register(*ops: str, ttnn: str):
    """Register a mapping function for these aten overloads."""
    def deco(fn):
        for op in ops:
            MAPPINGS[op] = Mapping(op, fn, ttnn, "mapped")
        return fn
    return deco


def register_skip(reason: str, *ops: str) -> None:
    for op in ops:
        MAPPINGS[op] = Mapping(op, None, "-", "skip", reason)


def register_unsupported(reason: str, *ops: str) -> None:
    for op in ops:
        MAPPINGS[op] = Mapping(op, None, "-", "unsupported", reason)


def plan_replay(case: Case, settings: Settings | None = None) -> Replay:
    """Translate one captured signature into its Replay (mapped, skip or unsupported)."""
    settings = settings or Settings()
    m = MAPPINGS.get(case.op)
    if m is None:
        return Replay(case.op, "unsupported", f"optrace has no ttnn mapping for {case.op}; "
                      "add one to replay/mapping.py (or report it)")
    if m.kind != "mapped":
        return Replay(case.op, m.kind, m.reason)
    port = Port(case, settings)
    try:
        m.fn(port, case)
    except NotReplayed as e:
        return Replay(case.op, e.status, e.reason)
    return port.finish()


def table_rows() -> list[tuple[str, str, str]]:
    return [(m.op, m.ttnn if m.kind == "mapped" else m.reason, m.kind) for m in sorted(
        MAPPINGS.values(), key=lambda m: (m.kind != "mapped", m.op))]


def print_table(file=None) -> None:
    """Print the registry: aten op -> ttnn call (or reason) -> status."""
    rows = table_rows()
    w = max(len(r[0]) for r in rows)
    for op, what, kind in rows:
        print(f"{op:<{w}}  {kind:<11}  {what}", file=file)
    counts = {k: sum(1 for r in rows if r[2] == k) for k in ("mapped", "skip", "unsupported")}
    print(f"{len(rows)} aten overloads: " + ", ".join(f"{v} {k}" for k, v in counts.items()), file=file)


# ---------------------------------------------------------------------------------------------
# Helpers for mapping functions

def norm_dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def pair(v, n: int = 2) -> list[int]:
    if isinstance(v, int):
        return [v] * n
    v = list(v)
    return v * n if len(v) == 1 else v


def first_out(case: Case) -> list[int]:
    shapes = case.out_shapes()
    if not shapes:
        unsupported("the trace records no tensor output for this call")
    return shapes[0]


def channels_last_flat(p: Port, name: str) -> tuple[Ref, int, int, int, int]:
    """A port's conv/pool activation: NCHW traced, held as [1, 1, N*H*W, C]."""
    t = p.case.tensor(name)
    if t is None or t.rank not in (3, 4):
        unsupported(f"{p.case.op} on a rank-{t.rank if t else 0} tensor: ttnn's 2D conv/pool take NCHW only")
    n, c, h, w = ([1] + t.shape) if t.rank == 3 else t.shape
    return p.input(name, [1, 1, n * h * w, c]), n, c, h, w


def nchw_out_flat(shape: list[int]) -> list[int]:
    n, c, h, w = ([1] + shape) if len(shape) == 3 else shape
    return [1, 1, n * h * w, c]


# ---------------------------------------------------------------------------------------------
# Metadata ops in torch: data movement in ttnn (where tile padding OOMs live)

@register("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
          "aten.view_copy.default", "aten._reshape_alias.default", "aten.flatten.using_ints",
          "aten.unflatten.int", "aten.unsqueeze.default", "aten.squeeze.default", "aten.squeeze.dim",
          "aten.squeeze.dims", "aten.unsqueeze_.default", "aten.squeeze_.dim", "aten.view_as.default",
          ttnn="ttnn.reshape(x, traced output shape)")
def reshape(p: Port, c: Case):
    out = first_out(c)
    x = p.input("self")
    p.call("reshape", x, out or [1], memory_config=MEMORY)
    p.expect(out or [1])


@register("aten.permute.default", ttnn="ttnn.permute(x, dims)")
def permute(p: Port, c: Case):
    t = c.tensor("self")
    dims = [norm_dim(d, t.rank) for d in c.get("dims")]
    p.call("permute", p.input("self"), dims, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.transpose.int", "aten.transpose_.default", ttnn="ttnn.transpose(x, d0, d1)")
def transpose(p: Port, c: Case):
    t = c.tensor("self")
    d0, d1 = norm_dim(c.get("dim0"), t.rank), norm_dim(c.get("dim1"), t.rank)
    p.call("transpose", p.input("self"), d0, d1, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.t.default", "aten.numpy_T.default", ttnn="ttnn.transpose(x, 0, 1)")
def t_(p: Port, c: Case):
    t = c.tensor("self")
    if t.rank < 2:
        skip("transpose of a rank<2 tensor is the tensor itself")
    p.call("transpose", p.input("self"), 0, 1, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.expand.default", "aten.expand_as.default", "aten.broadcast_to.default",
          ttnn="ttnn.expand(x, size)")
def expand(p: Port, c: Case):
    t, out = c.tensor("self"), first_out(c)
    # ttnn.expand needs equal ranks: a port reshapes the input to leading 1s first.
    shape = [1] * (len(out) - t.rank) + t.shape
    if shape != t.shape:
        p.note(f"input held as {shape} (leading 1s) for ttnn.expand")
    p.call("expand", p.input("self", shape), out, memory_config=MEMORY)
    p.expect(out)


@register("aten.slice.Tensor", ttnn="ttnn.slice(x, starts, ends, steps)")
def slice_(p: Port, c: Case):
    t = c.tensor("self")
    d = norm_dim(c.get("dim", 0), t.rank)
    size = t.shape[d]
    start, end, step = c.get("start", 0), c.get("end", INT64_MAX), c.get("step", 1)
    start = max(0, min(size, start + size if start < 0 else start))
    end = max(start, min(size, end + size if end < 0 else end))
    starts, ends, steps = [0] * t.rank, list(t.shape), [1] * t.rank
    starts[d], ends[d], steps[d] = start, end, step
    p.call("slice", p.input("self"), starts, ends, steps, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.select.int", ttnn="ttnn.slice + ttnn.reshape")
def select(p: Port, c: Case):
    t = c.tensor("self")
    d = norm_dim(c.get("dim"), t.rank)
    i = c.get("index")
    i = i + t.shape[d] if i < 0 else i
    starts, ends = [0] * t.rank, list(t.shape)
    starts[d], ends[d] = i, i + 1
    s = p.call("slice", p.input("self"), starts, ends, [1] * t.rank, memory_config=MEMORY)
    out = first_out(c)
    p.call("reshape", s, out or [1], memory_config=MEMORY)
    p.expect(out or [1])


@register("aten.split.Tensor", "aten.split_with_sizes.default", "aten.chunk.default",
          "aten.unsafe_split.Tensor", ttnn="ttnn.split(x, split_size|sizes, dim)")
def split(p: Port, c: Case):
    t = c.tensor("self")
    d = norm_dim(c.get("dim", 0), t.rank)
    outs = c.out_shapes()
    sizes = [o[d] for o in outs]
    arg = sizes[0] if len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0] else sizes
    p.call("split", p.input("self"), arg, d, memory_config=MEMORY)
    p.expect(*outs)


@register("aten.unbind.int", ttnn="ttnn.split(x, 1, dim) (then reshape per output)")
def unbind(p: Port, c: Case):
    t = c.tensor("self")
    d = norm_dim(c.get("dim", 0), t.rank)
    p.call("split", p.input("self"), 1, d, memory_config=MEMORY)
    p.note("outputs compared before the per-output reshape that drops dim")
    p.expect(*[t.shape[:d] + [1] + t.shape[d + 1:] for _ in range(t.shape[d])])


@register("aten.cat.default", "aten.concat.default", ttnn="ttnn.concat([xs], dim)")
def cat(p: Port, c: Case):
    tensors = [x for x in c.get("tensors") if isinstance(x, Traced)]
    out = first_out(c)
    d = norm_dim(c.get("dim", 0), len(out))
    refs = []
    for i, x in enumerate(tensors):
        if x.shape == [0]:          # torch allows empty 1-D tensors in cat; a port drops them
            continue
        refs.append(p.input(f"tensors_{i}", x.shape, p.dtype_of(x.dtype)))
    p.call("concat", refs, d, memory_config=MEMORY)
    p.expect(out)


@register("aten.stack.default", ttnn="ttnn.stack([xs], dim)")
def stack(p: Port, c: Case):
    tensors = c.get("tensors")
    out = first_out(c)
    refs = [p.input(f"tensors_{i}", x.shape, p.dtype_of(x.dtype)) for i, x in enumerate(tensors)]
    p.call("stack", refs, norm_dim(c.get("dim", 0), len(out)))
    p.expect(out)


@register("aten.constant_pad_nd.default", "aten.pad.default", ttnn="ttnn.pad(x, [(lo, hi)...], value)")
def pad(p: Port, c: Case):
    mode = c.get("mode", "constant")
    if mode != "constant":
        unsupported(f"pad mode {mode!r}: ttnn.pad pads with a constant only; a port would build it "
                    "from slices and concat")
    t, pads = c.tensor("self"), list(c.get("pad"))
    if any(v < 0 for v in pads):
        unsupported("negative padding (cropping): a port would use ttnn.slice")
    spec = [(0, 0)] * t.rank
    for i in range(len(pads) // 2):       # torch lists pads from the last dim backwards
        spec[t.rank - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    p.call("pad", p.input("self"), spec, float(c.get("value", 0.0)), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.roll.default", ttnn="ttnn.roll(x, shifts, dims)")
def roll(p: Port, c: Case):
    t = c.tensor("self")
    shifts, dims = list(c.get("shifts")), list(c.get("dims", []))
    if not dims:
        unsupported("roll without dims (over the flattened tensor): a port would reshape to 1-D first")
    p.call("roll", p.input("self"), shifts, [norm_dim(d, t.rank) for d in dims])
    p.expect(first_out(c))


@register("aten.repeat.default", ttnn="ttnn.repeat(x, repeats)")
def repeat(p: Port, c: Case):
    t, reps = c.tensor("self"), list(c.get("repeats"))
    shape = [1] * (len(reps) - t.rank) + t.shape
    p.call("repeat", p.input("self", shape), reps, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.clone.default", "aten.contiguous.default", "aten.copy.default",
          ttnn="ttnn.clone(x)")
def clone(p: Port, c: Case):
    if c.op == "aten.contiguous.default":
        skip("ttnn tensors are always contiguous; a port issues nothing")
    p.call("clone", p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.copy_.default", ttnn="ttnn.copy(src, self)")
def copy_(p: Port, c: Case):
    dst, src = c.tensor("self"), c.tensor("src")
    if dst.shape != src.shape:
        # torch broadcasts src into self; a port expands first
        s = p.call("expand", p.input("src", [1] * (dst.rank - src.rank) + src.shape), dst.shape)
    else:
        s = p.input("src")
    p.call("copy", s, p.input("self"))
    p.expect()


@register("aten._to_copy.default", "aten.to.dtype", "aten.to.dtype_layout", "aten.type_as.default",
          ttnn="ttnn.typecast(x, dtype)")
def to_copy(p: Port, c: Case):
    t = c.tensor("self")
    want = c.get("dtype", t.dtype)
    if c.op == "aten.type_as.default":
        want = c.tensor("other").dtype
    src, dst = p.dtype_of(t.dtype), p.dtype_of(want)
    if src == dst:
        skip(f"{t.dtype} -> {want} is the same ttnn dtype ({src}) under this dtype setting; "
             "device/layout moves are host transfers, not ops")
    p.call("typecast", p.input("self"), TT(dst), memory_config=MEMORY)
    p.expect(first_out(c))


# ---------------------------------------------------------------------------------------------
# Creation: a port creates constants on device when it needs them

@register("aten.zeros.default", "aten.ones.default", "aten.full.default", "aten.new_zeros.default",
          "aten.new_ones.default", "aten.new_full.default", "aten.zeros_like.default",
          "aten.ones_like.default", "aten.full_like.default", "aten.scalar_tensor.default",
          ttnn="ttnn.full(shape, value, dtype, layout, device)")
def full(p: Port, c: Case):
    out = first_out(c) or [1]
    value = {"zeros": 0.0, "ones": 1.0, "new_zeros": 0.0, "new_ones": 1.0, "zeros_like": 0.0,
             "ones_like": 1.0}.get(c.op.split(".")[1], c.get("fill_value", c.get("s", 0.0)))
    dt = c.get("dtype") or (c.tensor("self").dtype if c.tensor("self") else "float32")
    p.call("full", out, float(value), dtype=TT(p.dtype_of(dt)), layout=TT(p.settings.layout + "_LAYOUT"),
           device=DEVICE, memory_config=MEMORY)
    p.expect(out)


@register("aten.fill_.Scalar", "aten.fill.Scalar", "aten.fill_.Tensor", "aten.fill.Tensor",
          "aten.zero_.default", ttnn="ttnn.fill(x, value)")
def fill(p: Port, c: Case):
    value = c.get("value", 0.0)
    if isinstance(value, Traced) or c.op == "aten.zero_.default":
        value = 0.0     # a 0-d value tensor: the trace keeps its metadata, not its value
    value = float(value)
    p.call("fill", p.input("self"), value, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.arange.default", "aten.arange.start", "aten.arange.start_step",
          ttnn="ttnn.arange(start, end, step, device)")
def arange(p: Port, c: Case):
    start, end, step = c.get("start", 0), c.get("end"), c.get("step", 1)
    if not all(isinstance(v, int) for v in (start, end, step)):
        unsupported("float arange: ttnn.arange takes integer bounds; a port would arange then scale")
    p.call("arange", start, end, step, dtype=TT("bfloat16"), device=DEVICE, memory_config=MEMORY)


register_skip("allocates uninitialised memory; a port allocates when the consuming op runs",
              "aten.empty.memory_format", "aten.empty.default", "aten.empty_like.default",
              "aten.new_empty.default", "aten.empty_strided.default", "aten.new_empty_strided.default")
register_skip("autograd/aliasing bookkeeping: same data, a port issues nothing",
              "aten.detach.default", "aten.detach_.default", "aten.alias.default", "aten.lift_fresh.default",
              "aten.lift_fresh_copy.default", "aten.lift.default")
register_skip("reads a value back to the host (Python control flow); not a device op",
              "aten._local_scalar_dense.default", "aten.item.default", "aten.is_nonzero.default",
              "aten.equal.default")
register_skip("random values (inputs or initialisation); a port loads real data from the host",
              "aten.randn.default", "aten.rand.default", "aten.normal_.default", "aten.uniform_.default",
              "aten.randint.low", "aten.bernoulli_.float")
register_skip("identity in eval mode (train=False)", "aten.dropout.default", "aten.dropout_.default",
              "aten.native_dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default")
register_skip("device/layout/dtype bookkeeping a port does once at load time",
              "aten.to.device", "aten.to.prim_device", "aten._has_compatible_shallow_copy_type.default",
              "aten.resolve_conj.default", "aten.resolve_neg.default")
register_unsupported("arbitrary strides: ttnn has no strided views; the port must express this "
                     "as reshape/slice/permute", "aten.as_strided.default", "aten.as_strided_.default",
                     "aten.set_.source_Storage_storage_offset")
register_unsupported("fused nn.MultiheadAttention fast path (eval without grad): re-capture with "
                     "torch.backends.mha.set_fastpath_enabled(False) to see it as linear/bmm/softmax, "
                     "which map",
                     "aten._native_multi_head_attention.default")
register_unsupported("advanced indexing with index tensors: ttnn has no general gather-by-index; a "
                     "port would use ttnn.embedding/ttnn.gather or slices", "aten.index.Tensor",
                     "aten.index_put.default", "aten.index_put_.default", "aten.nonzero.default")


# ---------------------------------------------------------------------------------------------
# Convolution and pooling (channels-last activations, host conv weights)

@register("aten.convolution.default", "aten.conv2d.default", "aten._convolution.default",
          "aten.cudnn_convolution.default", "aten.mkldnn_convolution.default",
          ttnn="ttnn.conv2d / ttnn.conv_transpose2d (input [1,1,NHW,C], host weights)")
def convolution(p: Port, c: Case):
    w = c.tensor("weight")
    if w.rank != 4:
        unsupported(f"{w.rank - 2}-D convolution: optrace maps 2-D convolution only (ttnn.conv1d "
                    "needs a different input layout; 3-D has no ttnn op)")
    padding = c.get("padding", [0, 0])
    if isinstance(padding, str):
        unsupported(f"padding={padding!r}: a port computes explicit padding; re-capture under "
                    "no_grad, where aten.convolution carries numbers")
    x, n, cin, h, wd = channels_last_flat(p, "input")
    transposed, groups = bool(c.get("transposed", False)), c.get("groups", 1)
    cout = w.shape[1] * groups if transposed else w.shape[0]
    weight = p.input("weight", dtype=p.settings.dtype, layout="ROW_MAJOR", memory="host")
    kw = dict(input_tensor=x, weight_tensor=weight, in_channels=cin, out_channels=cout, device=DEVICE,
              kernel_size=tuple(w.shape[2:]), stride=tuple(pair(c.get("stride", [1, 1]))),
              padding=tuple(pair(padding)), dilation=tuple(pair(c.get("dilation", [1, 1]))),
              groups=groups, batch_size=n, input_height=h, input_width=wd)
    if c.tensor("bias") is not None:
        kw["bias_tensor"] = p.input("bias", [1, 1, 1, cout], dtype=p.settings.dtype, layout="ROW_MAJOR",
                                    memory="host")
    if transposed:
        kw["output_padding"] = tuple(pair(c.get("output_padding", [0, 0])))
        p.call("conv_transpose2d", **kw)
    else:
        p.call("conv2d", **kw)
    p.expect(nchw_out_flat(first_out(c)))


@register("aten.max_pool2d.default", "aten.max_pool2d_with_indices.default",
          ttnn="ttnn.max_pool2d (input [1,1,NHW,C])")
def max_pool2d(p: Port, c: Case):
    x, n, ch, h, w = channels_last_flat(p, "self")
    k = pair(c.get("kernel_size"))
    kwargs = dict(input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch, kernel_size=k,
                  stride=pair(c.get("stride") or k), padding=pair(c.get("padding", [0, 0])),
                  dilation=pair(c.get("dilation", [1, 1])), ceil_mode=bool(c.get("ceil_mode", False)),
                  memory_config=MEMORY)
    out = nchw_out_flat(first_out(c))
    if c.op.endswith("with_indices.default"):
        p.call("max_pool2d", return_indices=True, **kwargs)
        p.expect(out, out)
    else:
        p.call("max_pool2d", **kwargs)
        p.expect(out)


@register("aten.avg_pool2d.default", ttnn="ttnn.avg_pool2d (input [1,1,NHW,C])")
def avg_pool2d(p: Port, c: Case):
    x, n, ch, h, w = channels_last_flat(p, "self")
    k = pair(c.get("kernel_size"))
    kwargs = dict(input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch, kernel_size=k,
                  stride=pair(c.get("stride") or k), padding=pair(c.get("padding", [0, 0])),
                  ceil_mode=bool(c.get("ceil_mode", False)),
                  count_include_pad=bool(c.get("count_include_pad", True)), memory_config=MEMORY)
    if c.get("divisor_override") is not None:
        kwargs["divisor_override"] = c.get("divisor_override")
    p.call("avg_pool2d", **kwargs)
    p.expect(nchw_out_flat(first_out(c)))


@register("aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default",
          "aten.adaptive_max_pool2d.default", ttnn="ttnn.adaptive_{avg,max}_pool2d (input [1,1,NHW,C])")
def adaptive_pool2d(p: Port, c: Case):
    x, n, ch, h, w = channels_last_flat(p, "self")
    fn = "adaptive_max_pool2d" if "max" in c.op else "adaptive_avg_pool2d"
    p.call(fn, input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch,
           output_size=pair(c.get("output_size")), memory_config=MEMORY)
    p.expect(nchw_out_flat(first_out(c)))      # values only: ttnn returns no indices here


@register("aten.upsample_nearest2d.default", "aten.upsample_nearest2d.vec",
          "aten.upsample_bilinear2d.default", "aten.upsample_bilinear2d.vec",
          ttnn="ttnn.upsample(x [N,H,W,C], scale, mode)")
def upsample(p: Port, c: Case):
    t, out = c.tensor("self" if c.tensor("self") else "input"), first_out(c)
    if t.rank != 4:
        unsupported("upsample of a non-4-D tensor: ttnn.upsample takes [N, H, W, C]")
    n, ch, h, w = t.shape
    sh, sw = out[2] / h, out[3] / w
    scale = [int(sh), int(sw)] if sh.is_integer() and sw.is_integer() else [sh, sw]
    name = "self" if c.tensor("self") else "input"
    mode = "bilinear" if "bilinear" in c.op else "nearest"
    # ttnn.upsample wants tile-aligned TILE input; a port holds it ROW_MAJOR.
    p.call("upsample", p.input(name, [n, h, w, ch], layout="ROW_MAJOR"), scale, mode=mode,
           memory_config=MEMORY)
    p.expect([n, out[2], out[3], ch])


# ---------------------------------------------------------------------------------------------
# Normalization

def _stat(p: Port, c: Case, name: str, ch: int):
    return p.input(name, [1, ch, 1, 1]) if c.tensor(name) is not None else None


@register("aten._native_batch_norm_legit_no_training.default", "aten._native_batch_norm_legit.default",
          "aten.native_batch_norm.default", "aten.batch_norm.default", "aten.cudnn_batch_norm.default",
          "aten._batch_norm_impl_index.default", "aten.miopen_batch_norm.default",
          ttnn="ttnn.batch_norm(x [N,C,H,W], stats [1,C,1,1])")
def batch_norm(p: Port, c: Case):
    t = c.tensor("input")
    if t.rank < 2:
        unsupported("batch_norm of a rank<2 tensor")
    # ttnn.batch_norm takes [N, C, H, W]: BatchNorm1d/3d inputs are held with the rest flattened.
    shape = t.shape[:2] + [math.prod(t.shape[2:]), 1] if t.rank != 4 else t.shape
    if shape != t.shape:
        p.note(f"input held as {shape} for ttnn.batch_norm")
    ch = t.shape[1]
    training = bool(c.get("training", False))
    kwargs = dict(eps=float(c.get("eps", 1e-5)), momentum=float(c.get("momentum", 0.1)),
                  running_mean=_stat(p, c, "running_mean", ch), running_var=_stat(p, c, "running_var", ch),
                  training=training, weight=_stat(p, c, "weight", ch), bias=_stat(p, c, "bias", ch),
                  memory_config=MEMORY)
    p.call("batch_norm", p.input("input", shape), **{k: v for k, v in kwargs.items() if v is not None})
    p.expect(shape)


@register("aten.native_layer_norm.default", "aten.layer_norm.default",
          ttnn="ttnn.layer_norm(x, epsilon, weight, bias)")
def layer_norm(p: Port, c: Case):
    t, norm = c.tensor("input"), list(c.get("normalized_shape"))
    width = math.prod(norm)
    # ttnn normalizes over the last dim: more than one normalized dim is flattened into it.
    shape = t.shape[:t.rank - len(norm)] + [width]
    if len(norm) > 1:
        p.note(f"input held as {shape} (normalized dims flattened)")
    kwargs = dict(epsilon=float(c.get("eps", 1e-5)), memory_config=MEMORY)
    for name in ("weight", "bias"):
        if c.tensor(name) is not None:
            kwargs[name] = p.input(name, [width])
    p.call("layer_norm", p.input("input", shape), **kwargs)
    p.expect(shape)


@register("aten.native_group_norm.default", "aten.group_norm.default",
          ttnn="ttnn.group_norm(x [N,1,HW,C], num_groups, epsilon, weight, bias)")
def group_norm(p: Port, c: Case):
    t = c.tensor("input")
    n, ch = t.shape[0], t.shape[1]
    hw = math.prod(t.shape[2:])
    groups = c.get("group", c.get("num_groups"))
    # inplace=False: ttnn's in-place group_norm needs ROW_MAJOR; a TILE port writes a new tensor.
    kwargs = dict(num_groups=groups, epsilon=float(c.get("eps", 1e-5)), inplace=False, memory_config=MEMORY)
    for name in ("weight", "bias"):
        if c.tensor(name) is not None:
            kwargs[name] = p.input(name, [1, 1, ch // 32, 32] if ch % 32 == 0 else [1, 1, 1, ch],
                                   layout="ROW_MAJOR")
    p.call("group_norm", p.input("input", [n, 1, hw, ch]), **kwargs)
    p.expect([n, 1, hw, ch])


@register("aten._softmax.default", "aten.softmax.int", "aten._safe_softmax.default",
          ttnn="ttnn.softmax(x, dim)")
def softmax(p: Port, c: Case):
    t = c.tensor("self")
    p.call("softmax", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten._log_softmax.default", "aten.log_softmax.int", ttnn="ttnn.softmax + ttnn.log")
def log_softmax(p: Port, c: Case):
    t = c.tensor("self")
    s = p.call("softmax", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank), memory_config=MEMORY)
    p.call("log", s, memory_config=MEMORY)
    p.expect(first_out(c))


# ---------------------------------------------------------------------------------------------
# Matrix multiplication (linear weights pre-transposed by the port)

@register("aten.linear.default", ttnn="ttnn.linear(x, W^T [in,out], bias=[1,out])")
def linear(p: Port, c: Case):
    w = c.tensor("weight")
    kwargs = dict(memory_config=MEMORY)
    if c.tensor("bias") is not None:
        kwargs["bias"] = p.input("bias", [1, w.shape[0]])
    p.call("linear", p.input("input"), p.input("weight", [w.shape[1], w.shape[0]]), **kwargs)
    p.expect(first_out(c))


@register("aten.addmm.default", ttnn="ttnn.linear(mat1, mat2, bias=self)")
def addmm(p: Port, c: Case):
    if c.get("beta", 1) != 1 or c.get("alpha", 1) != 1:
        p.note("beta/alpha != 1: a port scales separately; replayed as plain linear")
    b = c.tensor("self")
    bias = p.input("self", [1, b.shape[-1]] if b.rank == 1 else b.shape)
    p.call("linear", p.input("mat1"), p.input("mat2"), bias=bias, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.mm.default", "aten.bmm.default", "aten.matmul.default", ttnn="ttnn.matmul(a, b)")
def matmul(p: Port, c: Case):
    b_name = "mat2" if c.tensor("mat2") is not None else "other"
    p.call("matmul", p.input("self"), p.input(b_name), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.baddbmm.default", ttnn="ttnn.matmul + ttnn.add")
def baddbmm(p: Port, c: Case):
    m = p.call("matmul", p.input("batch1"), p.input("batch2"), memory_config=MEMORY)
    p.call("add", m, p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten._scaled_dot_product_flash_attention_for_cpu.default",
          "aten.scaled_dot_product_attention.default", "aten._scaled_dot_product_efficient_attention.default",
          "aten._scaled_dot_product_flash_attention.default",
          ttnn="ttnn.transformer.scaled_dot_product_attention(q, k, v)")
def sdpa(p: Port, c: Case):
    kwargs = dict(is_causal=bool(c.get("is_causal", False)))
    if c.tensor("attn_mask") is not None:
        kwargs["attn_mask"] = p.input("attn_mask")
    if c.get("scale") is not None:
        kwargs["scale"] = float(c.get("scale"))
    p.call("transformer.scaled_dot_product_attention", p.input("query"), p.input("key"),
           p.input("value"), **kwargs)
    p.expect(first_out(c))


@register("aten.embedding.default", ttnn="ttnn.embedding(indices uint32, weight)")
def embedding(p: Port, c: Case):
    idx = c.tensor("indices")
    p.call("embedding", p.input("indices", dtype="uint32", layout="ROW_MAJOR"),
           p.input("weight", layout="ROW_MAJOR"), memory_config=MEMORY)
    p.expect(first_out(c))
    del idx


# ---------------------------------------------------------------------------------------------
# Elementwise

UNARY = {  # aten base name -> ttnn function
    "relu": "relu", "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh", "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid", "mish": "mish", "log": "log", "exp": "exp", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "neg": "neg", "abs": "abs", "reciprocal": "reciprocal", "erf": "erf",
    "sin": "sin", "cos": "cos", "floor": "floor", "ceil": "ceil", "sign": "sign", "square": "square",
    "logical_not": "logical_not", "relu6": "relu6", "log2": "log2", "exp2": "exp2", "log1p": "log1p",
    "expm1": "expm1", "gelu": "gelu", "elu": "elu", "leaky_relu": "leaky_relu", "hardtanh": "hardtanh",
    "softplus": "softplus", "clamp": "clamp", "clamp_min": "clamp", "clamp_max": "clamp",
}
_NO_INPLACE = ("relu6", "softplus")
_UNARY_OPS = [f"aten.{b}{ip}.default" for b in UNARY for ip in ("", "_")
              if not (ip and b in _NO_INPLACE)] + ["aten.clamp.Tensor", "aten.clamp_.Tensor"]


@register(*_UNARY_OPS, ttnn="ttnn.<same name>(x, ...)")
def unary(p: Port, c: Case):
    base = c.op.split(".")[1].rstrip("_")
    fn = UNARY[base]
    kwargs: dict = {}
    if base == "gelu" and c.get("approximate", "none") == "tanh":
        kwargs["fast_and_approximate_mode"] = True
    elif base == "leaky_relu":
        kwargs["negative_slope"] = float(c.get("negative_slope", 0.01))
    elif base == "hardtanh":
        kwargs.update(min_val=float(c.get("min_val", -1.0)), max_val=float(c.get("max_val", 1.0)))
    elif base == "elu":
        kwargs["alpha"] = float(c.get("alpha", 1.0))
    elif base == "softplus":
        kwargs.update(beta=float(c.get("beta", 1.0)), threshold=float(c.get("threshold", 20.0)))
    elif base.startswith("clamp"):
        lo = c.get("min") if base != "clamp_max" else None
        hi = c.get("max") if base != "clamp_min" else None
        for key, v, name in (("min", lo, "min"), ("max", hi, "max")):
            if isinstance(v, Traced):
                kwargs[key] = p.input(name)
            elif v is not None:
                kwargs[key] = float(v)
    p.call(fn, p.input("self"), memory_config=MEMORY, **kwargs)
    p.expect(first_out(c))


BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "rsub": "rsub",
          "eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge",
          "maximum": "maximum", "minimum": "minimum", "pow": "pow", "remainder": "remainder",
          "logical_and": "logical_and", "logical_or": "logical_or", "bitwise_and": "bitwise_and",
          "atan2": "atan2", "floor_divide": "floor_div", "fmod": "fmod"}
_BINARY_OPS = [f"aten.{b}{ip}.{ov}" for b in ("add", "sub", "mul", "div", "eq", "ne", "lt", "le", "gt",
                                                "ge", "remainder", "fmod")
               for ip in ("", "_") for ov in ("Tensor", "Scalar")] + [
    "aten.div.Tensor_mode", "aten.div_.Tensor_mode", "aten.div.Scalar_mode", "aten.rsub.Tensor",
    "aten.rsub.Scalar", "aten.pow.Tensor_Scalar", "aten.pow.Tensor_Tensor", "aten.pow_.Scalar",
    "aten.pow_.Tensor", "aten.maximum.default", "aten.minimum.default", "aten.logical_and.default",
    "aten.logical_or.default", "aten.logical_and_.default", "aten.logical_or_.default",
    "aten.bitwise_and.Tensor", "aten.atan2.default", "aten.floor_divide.default", "aten.floor_divide.Scalar"]


@register(*_BINARY_OPS, ttnn="ttnn.<add|subtract|multiply|divide|...>(a, b) with traced broadcast shapes")
def binary(p: Port, c: Case):
    base = c.op.split(".")[1].rstrip("_")
    fn = BINARY[base]
    a = p.input("self") if c.tensor("self") is not None else float(c.get("self"))
    other_name = "exponent" if base == "pow" else "other"
    other = c.get(other_name)
    if isinstance(other, Traced):
        b = p.input(other_name) if other.shape else p.input(other_name, [1])
    elif other is None:
        unsupported(f"{c.op}: no second operand in the trace")
    else:
        b = float(other)
    alpha = c.get("alpha", 1)
    if alpha != 1 and base in ("add", "sub", "rsub"):
        b = p.call("multiply", b, float(alpha), memory_config=MEMORY) if isinstance(b, Ref) else b * alpha
    kwargs = dict(memory_config=MEMORY)
    if base == "div" and c.get("rounding_mode"):
        kwargs["round_mode"] = c.get("rounding_mode")
    p.call(fn, a, b, **kwargs)
    p.expect(first_out(c))


@register("aten.where.self", "aten.where.ScalarOther", "aten.where.ScalarSelf", "aten.where.Scalar",
          ttnn="ttnn.where(cond, a, b)")
def where(p: Port, c: Case):
    vals = [p.input(n) if c.tensor(n) is not None else float(c.get(n)) for n in ("self", "other")]
    p.call("where", p.input("condition"), *vals, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.masked_fill.Scalar", "aten.masked_fill_.Scalar", ttnn="ttnn.where(mask, value, x)")
def masked_fill(p: Port, c: Case):
    p.call("where", p.input("mask"), float(c.get("value")), p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


# ---------------------------------------------------------------------------------------------
# Reductions and selection

REDUCE = {"mean": "mean", "sum": "sum", "amax": "max", "amin": "min", "max": "max", "min": "min",
          "var": "var", "std": "std", "prod": "prod"}


@register("aten.mean.dim", "aten.mean.default", "aten.sum.dim_IntList", "aten.sum.default",
          "aten.amax.default", "aten.amin.default", "aten.max.default", "aten.min.default",
          "aten.max.dim", "aten.min.dim", "aten.var.correction", "aten.std.correction",
          "aten.var.dim", "aten.std.dim", "aten.prod.dim_int",
          ttnn="ttnn.<mean|sum|max|min|var|std>(x, dim, keepdim)")
def reduce(p: Port, c: Case):
    t = c.tensor("self")
    fn = REDUCE[c.op.split(".")[1]]
    dims = c.get("dim")
    kwargs: dict = dict(memory_config=MEMORY)
    if dims is not None:
        dims = [dims] if isinstance(dims, int) else list(dims)
        dims = [norm_dim(d, t.rank) for d in dims] or None
    if dims is not None:
        kwargs["dim"] = dims[0] if len(dims) == 1 else dims
        kwargs["keepdim"] = bool(c.get("keepdim", False))
    if c.op in ("aten.max.dim", "aten.min.dim"):
        p.note("values only: a port takes indices from ttnn.argmax/argmin when it needs them")
    p.call(fn, p.input("self"), **kwargs)
    p.expect(first_out(c) or [1])


@register("aten.argmax.default", "aten.argmin.default", ttnn="ttnn.argmax(x ROW_MAJOR, dim, keepdim)")
def argmax(p: Port, c: Case):
    t = c.tensor("self")
    kwargs = dict(keepdim=bool(c.get("keepdim", False)), memory_config=MEMORY)
    if c.get("dim") is not None:
        kwargs["dim"] = norm_dim(c.get("dim"), t.rank)
    fn = "argmax" if "argmax" in c.op else "argmin"
    p.call(fn, p.input("self", layout="ROW_MAJOR"), **kwargs)
    p.expect(first_out(c) or [1])


@register("aten.topk.default", ttnn="ttnn.topk(x, k, dim, largest, sorted)")
def topk(p: Port, c: Case):
    t = c.tensor("self")
    p.call("topk", p.input("self"), c.get("k"), dim=norm_dim(c.get("dim", -1), t.rank),
           largest=bool(c.get("largest", True)), sorted=bool(c.get("sorted", True)), memory_config=MEMORY)
    p.expect(*c.out_shapes())


@register("aten.sort.default", "aten.sort.stable", ttnn="ttnn.sort(x, dim, descending)")
def sort(p: Port, c: Case):
    t = c.tensor("self")
    p.call("sort", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank),
           descending=bool(c.get("descending", False)), memory_config=MEMORY)
    p.expect(*c.out_shapes())


@register("aten.cumsum.default", ttnn="ttnn.cumsum(x, dim)")
def cumsum(p: Port, c: Case):
    t = c.tensor("self")
    p.call("cumsum", p.input("self"), norm_dim(c.get("dim"), t.rank), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.linalg_vector_norm.default", "aten.norm.ScalarOpt_dim",
          ttnn="ttnn.multiply + ttnn.sum + ttnn.sqrt (ord 2) / ttnn.abs + ttnn.sum (ord 1)")
def vector_norm(p: Port, c: Case):
    t = c.tensor("self")
    ord_ = c.get("ord", c.get("p", 2.0))
    if ord_ not in (1, 2, 1.0, 2.0):
        unsupported(f"vector norm of order {ord_}: a port composes it from pow/sum; optrace maps ord 1 and 2")
    dims = c.get("dim")
    dims = [dims] if isinstance(dims, int) else list(dims or range(t.rank))
    dims = [norm_dim(d, t.rank) for d in dims]
    x = p.input("self")
    sq = p.call("multiply", x, x, memory_config=MEMORY) if ord_ == 2 else p.call("abs", x, memory_config=MEMORY)
    s = p.call("sum", sq, dim=dims[0] if len(dims) == 1 else dims, keepdim=bool(c.get("keepdim", False)),
               memory_config=MEMORY)
    if ord_ == 2:
        p.call("sqrt", s, memory_config=MEMORY)
    p.expect(first_out(c) or [1])
