"""Metadata ops in torch, data movement in ttnn: reshape, permute, slice, concat, pad, ...

This is where tile-padding OOMs live: a view costs nothing in torch and a padded copy in ttnn.
"""
from __future__ import annotations

from replay.mapping.case import Case, Traced
from replay.mapping.plan import (INT64_MAX, MEMORY, Port, first_out, norm_dim, skip, unsupported)
from replay.mapping.registry import register


@register("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
          "aten.view_copy.default", "aten._reshape_alias.default", "aten.flatten.using_ints",
          "aten.unflatten.int", "aten.unsqueeze.default", "aten.squeeze.default", "aten.squeeze.dim",
          "aten.squeeze.dims", "aten.unsqueeze_.default", "aten.squeeze_.dim", "aten.view_as.default",
          ttnn="ttnn.reshape(x, traced output shape)")
def reshape(p: Port, c: Case):
    """view/reshape/squeeze/unsqueeze/flatten as ttnn.reshape to the traced shape."""
    out = first_out(c)
    x = p.input("self")
    p.call("reshape", x, out or [1], memory_config=MEMORY)
    p.expect(out or [1])


@register("aten.permute.default", ttnn="ttnn.permute(x, dims)")
def permute(p: Port, c: Case):
    """permute by the traced dims."""
    t = c.tensor("self")
    dims = [norm_dim(d, t.rank) for d in c.get("dims")]
    p.call("permute", p.input("self"), dims, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.transpose.int", "aten.transpose_.default", ttnn="ttnn.transpose(x, d0, d1)")
def transpose(p: Port, c: Case):
    """transpose two dims."""
    t = c.tensor("self")
    d0, d1 = norm_dim(c.get("dim0"), t.rank), norm_dim(c.get("dim1"), t.rank)
    p.call("transpose", p.input("self"), d0, d1, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.t.default", "aten.numpy_T.default", ttnn="ttnn.transpose(x, 0, 1)")
def t_(p: Port, c: Case):
    """2-D transpose."""
    t = c.tensor("self")
    if t.rank < 2:
        skip("transpose of a rank<2 tensor is the tensor itself")
    p.call("transpose", p.input("self"), 0, 1, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.expand.default", "aten.expand_as.default", "aten.broadcast_to.default",
          ttnn="ttnn.expand(x, size)")
def expand(p: Port, c: Case):
    """expand as ttnn.expand to the traced shape, the input reshaped to equal rank first."""
    t, out = c.tensor("self"), first_out(c)
    # ttnn.expand needs equal ranks: a port reshapes the input to leading 1s first.
    shape = [1] * (len(out) - t.rank) + t.shape
    if shape != t.shape:
        p.note(f"input held as {shape} (leading 1s) for ttnn.expand")
    p.call("expand", p.input("self", shape), out, memory_config=MEMORY)
    p.expect(out)


@register("aten.slice.Tensor", ttnn="ttnn.slice(x, starts, ends, steps)")
def slice_(p: Port, c: Case):
    """slice one dim with start, end, step."""
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
    """select one index of a dim: slice, then reshape the dim away."""
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
    """split/chunk into the traced pieces."""
    t = c.tensor("self")
    d = norm_dim(c.get("dim", 0), t.rank)
    outs = c.out_shapes()
    sizes = [o[d] for o in outs]
    arg = sizes[0] if len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0] else sizes
    p.call("split", p.input("self"), arg, d, memory_config=MEMORY)
    p.expect(*outs)


@register("aten.unbind.int", ttnn="ttnn.split(x, 1, dim) (then reshape per output)")
def unbind(p: Port, c: Case):
    """unbind as split into size-1 pieces, each reshaped."""
    t = c.tensor("self")
    d = norm_dim(c.get("dim", 0), t.rank)
    p.call("split", p.input("self"), 1, d, memory_config=MEMORY)
    p.note("outputs compared before the per-output reshape that drops dim")
    p.expect(*[t.shape[:d] + [1] + t.shape[d + 1:] for _ in range(t.shape[d])])


@register("aten.cat.default", "aten.concat.default", ttnn="ttnn.concat([xs], dim)")
def cat(p: Port, c: Case):
    """concatenate along a dim."""
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
    """stack along a new dim."""
    tensors = c.get("tensors")
    out = first_out(c)
    refs = [p.input(f"tensors_{i}", x.shape, p.dtype_of(x.dtype)) for i, x in enumerate(tensors)]
    p.call("stack", refs, norm_dim(c.get("dim", 0), len(out)))
    p.expect(out)


@register("aten.constant_pad_nd.default", "aten.pad.default", ttnn="ttnn.pad(x, [(lo, hi)...], value)")
def pad(p: Port, c: Case):
    """constant pad (lo, hi) per dim."""
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
    """roll by shifts along dims."""
    t = c.tensor("self")
    shifts, dims = list(c.get("shifts")), list(c.get("dims", []))
    if not dims:
        unsupported("roll without dims (over the flattened tensor): a port would reshape to 1-D first")
    p.call("roll", p.input("self"), shifts, [norm_dim(d, t.rank) for d in dims])
    p.expect(first_out(c))


@register("aten.repeat.default", ttnn="ttnn.repeat(x, repeats)")
def repeat(p: Port, c: Case):
    """repeat by the traced repeats."""
    t, reps = c.tensor("self"), list(c.get("repeats"))
    shape = [1] * (len(reps) - t.rank) + t.shape
    p.call("repeat", p.input("self", shape), reps, memory_config=MEMORY)
    p.expect(first_out(c))
