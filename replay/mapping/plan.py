"""What a mapping returns (a Replay of inputs and ttnn calls) and the Port that builds it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replay.mapping.case import Case

INT64_MAX = 2**63 - 1
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")


@dataclass
class PortSettings:
    """How replay places tensors: dtype for float tensors, layout, DRAM or L1."""
    dtype: str = "bfloat16"
    layout: str = "TILE"          # TILE | ROW_MAJOR
    memory: str = "dram"          # dram | l1

    @property
    def buffer(self) -> str:
        """"DRAM" or "L1", as ttnn names the buffer type."""
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
    """A tensor a Replay creates on the device (or the host) before its calls, as the port holds it."""
    name: str
    shape: list[int]
    dtype: str                    # ttnn dtype name
    layout: str                   # TILE | ROW_MAJOR
    memory: str                   # DRAM | L1 | host
    permute: list[int] | None = None   # the traced data permuted by these dims, then reshaped to shape


@dataclass
class Call:
    """One ttnn call of a Replay: function path, arguments (Refs, TTs, plain values), the name it binds."""
    fn: str                       # attribute path under ttnn, e.g. "reshape", "transformer.x"
    args: list
    kwargs: dict
    out: str                      # name the result is bound to
    pick: int | None = None       # keep only this element of a tuple/list result


@dataclass(kw_only=True)
class Replay:
    """What replaying one signature means: status, inputs to create, calls to make."""
    op: str
    status: str                   # mapped | skip | unsupported
    reason: str = ""
    inputs: list[InputTensor] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    expected: list[list[int]] = field(default_factory=list)   # output shapes in the port's layout
    # torch's outputs permuted by these dims, then reshaped to `expected`, are the port's outputs
    # (numerics compare in the port's layout); None: a plain reshape
    output_permute: list[int] | None = None
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
    """Raised by a mapping function: the op is skipped or unsupported, with the reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def skip(reason: str):
    """A port never issues this op (a view it folds away, bookkeeping): stop with a skip."""
    raise NotReplayed("skip", reason)


def unsupported(reason: str):
    """ttnn cannot express this case: stop with a reason a user can act on."""
    raise NotReplayed("unsupported", reason)


class Port:
    """Collects the inputs and calls of one Replay."""

    def __init__(self, case: Case, settings: PortSettings):
        self.case, self.settings = case, settings
        self.replay = Replay(op=case.op, status="mapped")
        self._n = 0

    def dtype_of(self, traced_dtype: str) -> str:
        if traced_dtype in FLOAT_DTYPES:
            return self.settings.dtype
        if traced_dtype in INT_DTYPES:
            return "int32"
        if traced_dtype == "bool":
            return "bfloat16"
        unsupported(f"tensor dtype {traced_dtype} has no ttnn equivalent: a port casts it on the host "
                    "(to bfloat16/float32 or int32) before uploading")

    def input(self, name: str, shape: list[int] | None = None, dtype: str | None = None,
              layout: str | None = None, memory: str | None = None, permute: list[int] | None = None) -> Ref:
        """Create the traced tensor argument `name` (optionally re-shaped the way a port holds it).

        A shape other than the traced one is a row-major reshape of the traced data, after
        ``permute`` when given; numerics upload the data the same way.
        """
        t = self.case.tensor(name)
        if t is None and shape is None:
            unsupported(f"argument {name!r} is not a traced tensor: a port passes the value as a "
                        "scalar or builds the tensor once with ttnn.full")
        shape = list(shape if shape is not None else t.shape) or [1]
        self.replay.inputs.append(InputTensor(
            name, shape, dtype or self.dtype_of(t.dtype if t else "float32"),
            layout or self.settings.layout, memory or self.settings.buffer, permute))
        return Ref(name)

    def call(self, fn: str, *args, pick: int | None = None, **kwargs) -> Ref:
        self._n += 1
        out = f"t{self._n}"
        self.replay.calls.append(Call(fn, list(args), kwargs, out, pick))
        return Ref(out)

    def item(self, ref: Ref, index: int) -> Ref:
        """Element ``index`` of a call's tuple result (ttnn ops returning several tensors)."""
        return Ref(f"{ref}[{index}]")

    def expect(self, *shapes: list[int], permute: list[int] | None = None) -> None:
        """The port's output shapes; ``permute``: how torch's outputs are permuted to reach them."""
        # rank-0 tensors are held as [1]: ttnn has no 0-d tensors
        self.replay.expected = [list(s) or [1] for s in shapes]
        self.replay.output_permute = permute

    def note(self, text: str) -> None:
        self.replay.notes.append(text)

    def finish(self) -> Replay:
        if self.replay.calls:
            self.replay.calls[-1].out = "out"
        return self.replay


# ---------------------------------------------------------------------------------------------
# Helpers for mapping functions

def norm_dim(d: int, rank: int) -> int:
    """A dim index made non-negative."""
    return d + rank if d < 0 else d


def pair(v, n: int = 2) -> list[int]:
    """An int or a 1-element list spread to n values (kernel sizes, strides, paddings)."""
    if isinstance(v, int):
        return [v] * n
    v = list(v)
    return v * n if len(v) == 1 else v


def first_out(case: Case) -> list[int]:
    """The traced shape of the first output tensor; unsupported when the call recorded none."""
    shapes = case.out_shapes()
    if not shapes:
        unsupported("the trace records no tensor output for this call, so its ttnn shapes are unknown "
                    "(re-capture the model)")
    return shapes[0]


# NCHW (or unbatched CHW) -> channels last, the data order of a port's conv/pool activations.
CHANNELS_LAST = {3: [1, 2, 0], 4: [0, 2, 3, 1]}


def channels_last_flat(p: Port, name: str) -> tuple[Ref, int, int, int, int]:
    """A port's conv/pool activation: NCHW traced, held as [1, 1, N*H*W, C]."""
    t = p.case.tensor(name)
    if t is None or t.rank not in (3, 4):
        unsupported(f"{p.case.op} on a rank-{t.rank if t else 0} tensor: ttnn's 2D conv/pool take NCHW only; "
                    "a port reshapes to [N, C, H, W] (1-D: H = 1) around the call")
    n, c, h, w = ([1] + t.shape) if t.rank == 3 else t.shape
    return p.input(name, [1, 1, n * h * w, c], permute=CHANNELS_LAST[t.rank]), n, c, h, w


def nchw_out_flat(shape: list[int]) -> list[int]:
    """A traced NCHW (or CHW) output as the port's flat channels-last [1, 1, N*H*W, C]."""
    n, c, h, w = ([1] + shape) if len(shape) == 3 else shape
    return [1, 1, n * h * w, c]
