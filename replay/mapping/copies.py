"""Copies, casts and constants: clone, copy_, typecast, full, fill, arange."""
from __future__ import annotations

from replay.mapping.case import Case, Traced
from replay.mapping.plan import (DEVICE, MEMORY, TT, Port, first_out, skip, unsupported)
from replay.mapping.registry import register


@register("aten.clone.default", "aten.contiguous.default", "aten.copy.default",
          ttnn="ttnn.clone(x)")
def clone(p: Port, c: Case):
    """clone/contiguous: a copy of the tensor."""
    if c.op == "aten.contiguous.default":
        skip("ttnn tensors are always contiguous; a port issues nothing")
    p.call("clone", p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.copy_.default", ttnn="ttnn.copy(src, self)")
def copy_(p: Port, c: Case):
    """copy_ into an existing tensor (ttnn.copy)."""
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
    """a dtype change as ttnn.typecast; skipped when both dtypes become the same ttnn dtype."""
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
    """constant tensors (zeros, ones, full) made on the device."""
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
    """fill a tensor's shape with a value."""
    value = c.get("value", 0.0)
    if isinstance(value, Traced) or c.op == "aten.zero_.default":
        value = 0.0     # a 0-d value tensor: the trace keeps its metadata, not its value
    value = float(value)
    p.call("fill", p.input("self"), value, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.arange.default", "aten.arange.start", "aten.arange.start_step",
          ttnn="ttnn.arange(start, end, step, device)")
def arange(p: Port, c: Case):
    """arange on the device."""
    start, end, step = c.get("start", 0), c.get("end"), c.get("step", 1)
    if not all(isinstance(v, int) for v in (start, end, step)):
        unsupported("float arange: ttnn.arange takes integer bounds; a port would arange then scale")
    p.call("arange", start, end, step, dtype=TT("bfloat16"), device=DEVICE, memory_config=MEMORY)
