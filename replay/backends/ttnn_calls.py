"""What each ttnn call a port makes leaves on the device: its results' shapes, from its arguments.

Imports neither torch nor ttnn. A mapped signature is a list of ttnn calls (replay.mapping); the ttnn
backend keeps every result it gets until the signature is done, so a port of several calls holds
its intermediates beside the output, and a call that writes into a tensor it was given (``ttnn.copy``)
or returns its input (``ttnn.expand`` to the same shape) allocates nothing. The estimate walks the calls
with this table (``@result_rule("matmul")``, one small function per ttnn call family) to place those
results; a call it does not know stops the walk (``None``: the estimate then keeps its older, outputs-only
view of the signature).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from replay.mapping.plan import MEMORY, Call, Ref
from replay.shapes import broadcast_shapes


@dataclass(frozen=True)
class Held:
    """One tensor a port holds on the device: shape, ttnn dtype, layout and memory ("DRAM" | "L1")."""
    shape: tuple
    dtype: str
    layout: str
    memory: str


class UnknownCall(Exception):
    """A call (or an argument) the table cannot follow."""


ResultRule = Callable[[Call, list, str], list[Held]]
RESULT_RULES: dict[str, ResultRule] = {}


def result_rule(*fns: str):
    """Register what these ttnn calls return, e.g. ``@result_rule("relu", "silu")``."""
    def wrap(rule: ResultRule) -> ResultRule:
        for fn in fns:
            if fn in RESULT_RULES:
                raise RuntimeError(f"result_rule({rule.__name__}): duplicate rule for ttnn.{fn}")
            RESULT_RULES[fn] = rule
        return rule
    return wrap


def _memory(call: Call, first: Held, memory: str) -> str:
    # a call given the port's memory config places its result there; otherwise ttnn keeps the input's
    return memory if call.kwargs.get("memory_config") is MEMORY else first.memory


def _tensors(args: list) -> list[Held]:
    return [a for a in args if isinstance(a, Held)]


def _broadcast(a: tuple, b: tuple) -> tuple:
    try:
        return broadcast_shapes(a, b)
    except ValueError as e:
        raise UnknownCall(str(e)) from None


@result_rule("relu", "silu", "gelu", "sigmoid", "tanh", "exp", "log", "neg", "abs", "sqrt", "rsqrt",
             "reciprocal", "softmax", "layer_norm", "clone", "hardswish", "hardsigmoid", "leaky_relu",
             "elu", "erf", "sin", "cos", "floor", "ceil", "sign", "square", "clamp", "relu6", "mish")
def same_shape(call: Call, args: list, memory: str) -> list[Held]:
    """Elementwise and normalizing calls: a result like the first tensor."""
    x = _tensors(args)[0]
    return [Held(x.shape, x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("add", "subtract", "multiply", "divide", "div", "maximum", "minimum", "pow", "eq", "ne", "gt",
             "ge", "lt", "le", "where", "logical_and", "logical_or", "bitwise_and", "bitwise_or")
def broadcast_binary(call: Call, args: list, memory: str) -> list[Held]:
    """Binary elementwise calls: the broadcast shape of their tensors (a scalar operand adds nothing)."""
    ts = _tensors(args)
    shape = ts[0].shape
    for t in ts[1:]:
        shape = _broadcast(shape, t.shape)
    return [Held(shape, ts[0].dtype, ts[0].layout, _memory(call, ts[0], memory))]


@result_rule("typecast")
def typecast(call: Call, args: list, memory: str) -> list[Held]:
    """A dtype change: the same shape in the new dtype."""
    x = _tensors(args)[0]
    dtype = str(args[1]) if len(args) > 1 else str(call.kwargs.get("dtype", x.dtype))
    return [Held(x.shape, dtype, x.layout, _memory(call, x, memory))]


@result_rule("transpose")
def transpose(call: Call, args: list, memory: str) -> list[Held]:
    """Two dims swapped."""
    x, d0, d1 = args[0], args[1], args[2]
    shape = list(x.shape)
    shape[d0], shape[d1] = shape[d1], shape[d0]
    return [Held(tuple(shape), x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("matmul")
def matmul(call: Call, args: list, memory: str) -> list[Held]:
    """a [..., m, k] @ b [..., k, n] -> [..., m, n] (batch dims broadcast)."""
    a, b = args[0], args[1]
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise UnknownCall("matmul of a rank-1 tensor")
    batch = _broadcast(a.shape[:-2], b.shape[:-2])
    return [Held(batch + (a.shape[-2], b.shape[-1]), a.dtype, a.layout, _memory(call, a, memory))]


@result_rule("copy")
def copy(call: Call, args: list, memory: str) -> list[Held]:
    """ttnn.copy(src, dst) writes into dst: no new tensor."""
    return []


@result_rule("expand")
def expand(call: Call, args: list, memory: str) -> list[Held]:
    """The input expanded to the size; to its own shape ttnn returns the input itself (nothing new)."""
    x, size = args[0], tuple(args[1])
    if tuple(x.shape) == size:
        return []
    return [Held(size, x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("reshape")
def reshape(call: Call, args: list, memory: str) -> list[Held]:
    """The new shape (the page-mapping tensor of a non-view reshape is the estimate's reshape rule)."""
    x = args[0]
    return [Held(tuple(args[1]), x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("permute")
def permute(call: Call, args: list, memory: str) -> list[Held]:
    """The dims reordered; the identity permutation returns the input."""
    x, dims = args[0], [d % len(args[0].shape) for d in args[1]]
    if dims == list(range(len(x.shape))):
        return []
    return [Held(tuple(x.shape[d] for d in dims), x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("pad")
def pad(call: Call, args: list, memory: str) -> list[Held]:
    """Each dim grown by its (low, high) padding; with none ttnn returns the input itself (nothing new,
    checked on the mock n150: the same buffer, tiled and row major)."""
    x, spec = args[0], args[1]
    shape = tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, spec))
    if shape == tuple(x.shape):
        return []
    return [Held(shape, x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("slice")
def slice_(call: Call, args: list, memory: str) -> list[Held]:
    """ceil((end - start) / step) per dim."""
    x, starts, ends, steps = args[0], args[1], args[2], args[3]
    shape = tuple(max(0, -(-(e - b) // st)) for b, e, st in zip(starts, ends, steps))
    return [Held(shape, x.dtype, x.layout, _memory(call, x, memory))]


@result_rule("upsample")
def upsample(call: Call, args: list, memory: str) -> list[Held]:
    """[N, H, W, C] scaled to [N, H*sh, W*sw, C] (integer scales)."""
    x, scale = args[0], args[1]
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    if not (isinstance(sh, int) and isinstance(sw, int)):
        raise UnknownCall("a non-integer scale")
    n, h, w, c = x.shape
    return [Held((n, h * sh, w * sw, c), x.dtype, x.layout, _memory(call, x, memory))]


def results(calls: list[Call], inputs: dict[str, Held], memory: str) -> list[list[Held]] | None:
    """Each call's results, in call order, as ttnn would allocate them; None when one call (or an
    argument) is not in the table. ``memory``: the buffer the port's memory config names."""
    env = dict(inputs)
    out = []
    for call in calls:
        rule = RESULT_RULES.get(call.fn)
        if rule is None:
            return None
        try:
            got = rule(call, [_resolve(a, env) for a in call.args], memory)
        except (UnknownCall, IndexError, KeyError, TypeError):
            return None
        if call.pick is not None:
            got = got[call.pick:call.pick + 1]
        env[call.out] = got[0] if got else _first_tensor(call.args, env)
        out.append(got)
    return out


def _first_tensor(args: list, env: dict) -> Held | None:
    for a in args:
        if isinstance(a, Ref):
            return env.get(str(a))
    return None


def _resolve(value, env: dict):
    if isinstance(value, Ref):
        if str(value) not in env:
            raise UnknownCall(f"{value} is not a tensor the calls hold")
        return env[str(value)]
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return value


def rules_table() -> list[tuple[str, str, str]]:
    """(ttnn call, rule name, first docstring line) for every registered result rule, sorted."""
    return sorted((fn, r.__name__, (r.__doc__ or "").strip().split("\n")[0]) for fn, r in RESULT_RULES.items())
