"""Reductions and selection: mean/sum/max/..., argmax, topk, sort, cumsum, vector norms."""
from __future__ import annotations

from replay.mapping.case import Case
from replay.mapping.plan import (INT_DTYPES, MEMORY, TT, Port, first_out, norm_dim, unsupported)
from replay.mapping.registry import register


REDUCE = {"mean": "mean", "sum": "sum", "amax": "max", "amin": "min", "max": "max", "min": "min",
          "var": "var", "std": "std", "prod": "prod"}


@register("aten.mean.dim", "aten.mean.default", "aten.sum.dim_IntList", "aten.sum.default",
          "aten.amax.default", "aten.amin.default", "aten.max.default", "aten.min.default",
          "aten.max.dim", "aten.min.dim", "aten.var.correction", "aten.std.correction",
          "aten.var.dim", "aten.std.dim", "aten.prod.dim_int",
          ttnn="ttnn.<mean|sum|max|min|var|std>(x, dim, keepdim)")
def reduce(p: Port, c: Case):
    """mean/sum/max/min/... over dims, keepdim as traced."""
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
    x = p.input("self")
    if fn == "prod" and t.dtype in INT_DTYPES:
        # ttnn.prod takes floats only: a port multiplies integers (shape products) in float32, exact to 2**24
        p.note("integer prod computed in float32 and cast back to int32")
        x = p.call("typecast", x, TT("float32"), memory_config=MEMORY)
        x = p.call(fn, x, **kwargs)
        p.call("typecast", x, TT("int32"), memory_config=MEMORY)
    else:
        p.call(fn, x, **kwargs)
    p.expect(first_out(c) or [1])


@register("aten.argmax.default", "aten.argmin.default", ttnn="ttnn.argmax(x ROW_MAJOR, dim, keepdim)")
def argmax(p: Port, c: Case):
    """argmax/argmin on a ROW_MAJOR input."""
    t = c.tensor("self")
    kwargs = dict(keepdim=bool(c.get("keepdim", False)), memory_config=MEMORY)
    if c.get("dim") is not None:
        kwargs["dim"] = norm_dim(c.get("dim"), t.rank)
    fn = "argmax" if "argmax" in c.op else "argmin"
    p.call(fn, p.input("self", layout="ROW_MAJOR"), **kwargs)
    p.expect(first_out(c) or [1])


@register("aten.topk.default", ttnn="ttnn.topk(x, k, dim, largest, sorted)")
def topk(p: Port, c: Case):
    """topk values and indices."""
    t = c.tensor("self")
    p.call("topk", p.input("self"), c.get("k"), dim=norm_dim(c.get("dim", -1), t.rank),
           largest=bool(c.get("largest", True)), sorted=bool(c.get("sorted", True)), memory_config=MEMORY)
    p.expect(*c.out_shapes())


@register("aten.sort.default", "aten.sort.stable", ttnn="ttnn.sort(x, dim, descending)")
def sort(p: Port, c: Case):
    """sort values and indices."""
    t = c.tensor("self")
    p.call("sort", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank),
           descending=bool(c.get("descending", False)), memory_config=MEMORY)
    p.expect(*c.out_shapes())


@register("aten.cumsum.default", ttnn="ttnn.cumsum(x, dim)")
def cumsum(p: Port, c: Case):
    """cumulative sum over one dim."""
    t = c.tensor("self")
    p.call("cumsum", p.input("self"), norm_dim(c.get("dim"), t.rank), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.linalg_vector_norm.default", "aten.norm.ScalarOpt_dim",
          ttnn="ttnn.multiply + ttnn.sum + ttnn.sqrt (ord 2) / ttnn.abs + ttnn.sum (ord 1)")
def vector_norm(p: Port, c: Case):
    """a p-norm over dims."""
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
