"""Elementwise ops: unary, binary with traced broadcast shapes, where, masked_fill."""
from __future__ import annotations

from replay.mapping.case import Case, Traced
from replay.mapping.plan import (FLOAT_DTYPES, INT_DTYPES, MEMORY, TT, Port, Ref, first_out, unsupported)
from replay.mapping.registry import register


UNARY = {  # aten base name -> ttnn function
    "relu": "relu", "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh", "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid", "mish": "mish", "log": "log", "exp": "exp", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "neg": "neg", "abs": "abs", "reciprocal": "reciprocal", "erf": "erf",
    "sin": "sin", "cos": "cos", "floor": "floor", "ceil": "ceil", "sign": "sign", "square": "square",
    "logical_not": "logical_not", "relu6": "relu6", "log2": "log2", "exp2": "exp2", "log1p": "log1p",
    "expm1": "expm1", "gelu": "gelu", "elu": "elu", "leaky_relu": "leaky_relu", "hardtanh": "hardtanh",
    "softplus": "softplus", "clamp": "clamp", "clamp_min": "clamp", "clamp_max": "clamp", "round": "round",
}
_NO_INPLACE = ("relu6", "softplus")
_UNARY_OPS = [f"aten.{b}{ip}.default" for b in UNARY for ip in ("", "_")
              if not (ip and b in _NO_INPLACE)] + ["aten.clamp.Tensor", "aten.clamp_.Tensor"]


@register(*_UNARY_OPS, ttnn="ttnn.<same name>(x, ...)")
def unary(p: Port, c: Case):
    """elementwise ops of one tensor, by the same name in ttnn."""
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
    x = p.input("self")
    if c.tensor("self").dtype in INT_DTYPES and (c.out_dtypes() or ["?"])[0] in FLOAT_DTYPES:
        # torch promotes integers to float here; ttnn's float unary ops reject int32, so a port casts first
        x = p.call("typecast", x, TT(p.settings.dtype), memory_config=MEMORY)
    p.call(fn, x, memory_config=MEMORY, **kwargs)
    p.expect(first_out(c))


def _is_bool(v) -> bool:
    return isinstance(v, Traced) and v.dtype == "bool"


def _computes_in_float(c: Case, names: tuple[str, str]) -> bool:
    """torch's type promotion: a float tensor or a float scalar among the operands, or a float result
    (int / int), makes the op compute in floating point."""
    vals = [c.get(n) for n in names]
    return (any(isinstance(v, Traced) and v.dtype in FLOAT_DTYPES for v in vals)
            or any(isinstance(v, float) for v in vals) or (c.out_dtypes() or ["?"])[0] in FLOAT_DTYPES)


def _operand(p: Port, c: Case, name: str, floating: bool):
    """One binary operand as the port holds it: a scalar stays a scalar; an integer tensor in a float op
    is typecast first, as torch promotes it (ttnn refuses int32 with bfloat16, or with a fractional scalar)."""
    v = c.get(name)
    if not isinstance(v, Traced):
        return float(v)
    x = p.input(name) if v.shape else p.input(name, [1])
    if floating and v.dtype in INT_DTYPES:
        p.note(f"{name} ({v.dtype}) typecast to {p.settings.dtype}: torch promotes it to float here")
        x = p.call("typecast", x, TT(p.settings.dtype), memory_config=MEMORY)
    return x


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
    """elementwise ops of two operands with the traced broadcast shapes; scalars stay scalars."""
    base = c.op.split(".")[1].rstrip("_")
    fn = BINARY[base]
    other_name = "exponent" if base == "pow" else "other"
    if c.get(other_name) is None:
        unsupported(f"{c.op}: no second operand in the trace (a capture problem: re-capture the model; a "
                    "port calls the ttnn binary op with both operands)")
    if base == "bitwise_and" and all(_is_bool(c.get(n)) for n in ("self", other_name)):
        fn = "logical_and"   # bool masks are held as bfloat16 (ttnn has no bool): a port ands them logically
    floating = _computes_in_float(c, ("self", other_name))
    a, b = (_operand(p, c, n, floating) for n in ("self", other_name))
    alpha = c.get("alpha", 1)
    if alpha != 1 and base in ("add", "sub", "rsub"):
        b = p.call("multiply", b, float(alpha), memory_config=MEMORY) if isinstance(b, Ref) else b * alpha
    kwargs = dict(memory_config=MEMORY)
    if base == "div" and c.get("rounding_mode"):
        kwargs["rounding_mode"] = c.get("rounding_mode")
    p.call(fn, a, b, **kwargs)
    p.expect(first_out(c))


@register("aten.where.self", "aten.where.ScalarOther", "aten.where.ScalarSelf", "aten.where.Scalar",
          ttnn="ttnn.where(cond, a, b)")
def where(p: Port, c: Case):
    """where(cond, a, b) with scalar branches as constants."""
    vals = [p.input(n) if c.tensor(n) is not None else float(c.get(n)) for n in ("self", "other")]
    p.call("where", p.input("condition"), *vals, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.masked_fill.Scalar", "aten.masked_fill_.Scalar", ttnn="ttnn.where(mask, value, x)")
def masked_fill(p: Port, c: Case):
    """masked_fill as where(mask, value, x)."""
    p.call("where", p.input("mask"), float(c.get("value")), p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.addcmul.default", "aten.addcmul_.default", ttnn="ttnn.addcmul(self, tensor1, tensor2, value)")
def addcmul(p: Port, c: Case):
    """self + value * tensor1 * tensor2 as ttnn's ternary addcmul with the traced broadcast shapes."""
    p.call("addcmul", p.input("self"), p.input("tensor1"), p.input("tensor2"), value=float(c.get("value", 1)),
           memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.bitwise_not.default", "aten.bitwise_not_.default",
          ttnn="ttnn.logical_not (bool masks) / ttnn.bitwise_not (int32)")
def bitwise_not(p: Port, c: Case):
    """~x: on a bool mask (held as bfloat16, ttnn has no bool) a logical not; on integers a bitwise not."""
    if c.tensor("self").dtype == "bool":
        p.call("logical_not", p.input("self"), memory_config=MEMORY)
    else:
        p.call("bitwise_not", p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.pow.Scalar", ttnn="ttnn.rpow(exponent, base)")
def pow_scalar(p: Port, c: Case):
    """base ** tensor (a scalar base, as sinusoidal position embeddings write 10000 ** x) as ttnn.rpow."""
    base = float(c.get("self"))
    if base <= 0:
        unsupported(f"pow with scalar base {base}: ttnn.rpow takes a positive base only; a port computes "
                    "the constant on the host at load time")
    p.call("rpow", p.input("exponent"), base, memory_config=MEMORY)
    p.expect(first_out(c))
