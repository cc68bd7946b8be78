"""Metadata ops in torch, data movement in ttnn: reshape, permute, slice, concat, pad, ...

This is where tile-padding OOMs live: a view costs nothing in torch and a padded copy in ttnn.
"""
from __future__ import annotations

import math

from capture.schema import contiguous_stride
from replay.mapping.case import Case, Traced
from replay.mapping.plan import (FLOAT_DTYPES, INT64_MAX, MEMORY, TT, Port, first_out, norm_dim, skip,
                                 unsupported)
from replay.mapping.registry import register
from replay.shapes import broadcast_shapes


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
    if not refs:
        skip(f"cat of {len(tensors)} empty tensors: the result is empty too, so a port issues no op "
             "(ttnn.concat refuses an empty list)")
    p.call("concat", refs, d, memory_config=MEMORY)
    p.expect(out)


@register("aten.stack.default", ttnn="ttnn.stack([xs], dim)")
def stack(p: Port, c: Case):
    """stack along a new dim."""
    tensors = c.get("tensors")
    out = first_out(c)
    if 0 in out:
        skip(f"stack of {len(tensors)} empty tensors: the result is empty too, so a port issues no op "
             "(ttnn.stack of empty tensors kills the process: SIGFPE on the mock n150)")
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
    x = p.input("self")
    front = p.settings.layout == "TILE" and any(lo for lo, _ in spec)
    if front:   # ttnn.pad pads a TILE tensor at the back only; in ROW_MAJOR it pads both sides
        p.note("front padding: padded in ROW_MAJOR (ttnn.pad on TILE pads at the back only), tiled again after")
        x = p.call("to_layout", x, TT("ROW_MAJOR_LAYOUT"), memory_config=MEMORY)
    x = p.call("pad", x, spec, float(c.get("value", 0.0)), memory_config=MEMORY)
    if front:
        p.call("to_layout", x, TT("TILE_LAYOUT"), memory_config=MEMORY)
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


# ---------------------------------------------------------------------------------------------
# Gathers and strided views: what a port writes instead

@register("aten.index.Tensor",
          ttnn="ttnn.embedding (one integer index on dim 0 of a 2-D table) / ttnn.gather (one on another dim; "
               "a 1-D table held as [1, N])")
def index(p: Port, c: Case):
    """x[idx] with one integer index tensor on one dim; a boolean mask or several indices stay unsupported."""
    t = c.tensor("self")
    present = [(d, x) for d, x in enumerate(c.get("indices") or []) if x is not None]
    if any(x.dtype == "bool" for _, x in present):
        unsupported("boolean mask indexing: the output's length depends on the mask's values; a port computes "
                    "the indices on the host, or keeps the shape with ttnn.where(mask, x, 0)")
    if len(present) > 1 and [d for d, _ in present] == list(range(len(present))) \
            and all(isinstance(x, Traced) for _, x in present):
        _leading_dims_index(p, c, t, present)
        return
    if len(present) != 1 or not isinstance(present[0][1], Traced):
        unsupported(f"indexing with {len(present)} index tensors, not all on the leading dims: a port permutes "
                    "the indexed dims to the front, flattens them and gathers with ttnn.embedding on one linear "
                    "index (not mapped in optrace yet)")
    d, ix = present[0]
    out, k = first_out(c), math.prod(ix.shape)
    if d == 0 and t.rank == 2:   # a table lookup: rows of [N, C] by k indices -> [1, k, C]
        rows = p.call("embedding", p.input("indices_0", [1, k], "uint32", "ROW_MAJOR"),
                      p.input("self", layout="ROW_MAJOR"), memory_config=MEMORY)
        p.call("reshape", rows, out, memory_config=MEMORY)
        p.expect(out)
        return
    if t.rank == 1:   # ttnn.gather takes rank >= 2: a port holds the 1-D table as ttnn does, [1, N]
        p.note(f"1-D table held as [1, {t.shape[0]}], its {k} indices as [1, {k}] uint32, for ttnn.gather on dim 1")
        g = p.call("gather", p.input("self", [1, t.shape[0]]), 1, p.input("indices_0", [1, k], "uint32", "TILE"),
                   memory_config=MEMORY)
        p.call("reshape", g, out or [1], memory_config=MEMORY)
        p.expect(out or [1])
        return
    # ttnn.gather wants an index of the input's rank: the port expands the k indices once, at load time
    held = t.shape[:d] + [k] + t.shape[d + 1:]
    p.note(f"index held as {held} uint32 (the {k} indices expanded over the other dims) for ttnn.gather")
    g = p.call("gather", p.input("self"), d, p.input("indices_0", held, "uint32", "TILE"), memory_config=MEMORY)
    if held != out:
        g = p.call("reshape", g, out, memory_config=MEMORY)
    p.expect(out)


def _leading_dims_index(p: Port, c: Case, t: Traced, present: list) -> None:
    """x[i0, i1, ...] on the first m dims: one int32 linear index ((i0 * n1 + i1) * n2 + ...) computed on the
    device with torch's broadcast, then one gather of the table flattened to [N, rest]."""
    m, out = len(present), first_out(c)
    k = math.prod(broadcast_shapes(*[x.shape for _, x in present]))
    n, rest = math.prod(t.shape[:m]), math.prod(t.shape[m:])
    floating = t.dtype in FLOAT_DTYPES
    if rest > 1 and not floating:
        unsupported(f"integer table indexed on {m} dims with rows of {rest}: ttnn.embedding takes bfloat16 tables "
                    "only; a port gathers the rows with ttnn.gather on an index expanded over them")
    lin = None
    for d, x in present:
        ix = p.input(f"indices_{d}", x.shape or [1], "int32")
        lin = ix if lin is None else p.call("add", p.call("multiply", lin, t.shape[d], memory_config=MEMORY), ix,
                                            memory_config=MEMORY)
    p.note(f"{m} indices on the leading dims as one linear index into the table flattened to [{n}, {rest}]")
    lin = p.call("typecast", p.call("reshape", lin, [1, k], memory_config=MEMORY), TT("uint32"),
                 memory_config=MEMORY)
    if rest == 1:
        g = p.call("gather", p.input("self", [1, n]), 1, lin, memory_config=MEMORY)
    else:
        lin = p.call("to_layout", lin, TT("ROW_MAJOR_LAYOUT"), memory_config=MEMORY)
        g = p.call("embedding", lin, p.input("self", [n, rest], layout="ROW_MAJOR"), memory_config=MEMORY)
    p.call("reshape", g, out or [1], memory_config=MEMORY)
    p.expect(out or [1])


def _nontrivial(shape: list[int], stride: list[int]) -> list[tuple[int, int]]:
    """(size, stride) of the dims that hold more than one element: the only ones whose strides matter."""
    return [(n, s) for n, s in zip(shape, stride) if n != 1]


def strided_view(base: Traced, size: list[int], stride: list[int]) -> tuple[str, list]:
    """What an as_strided view of base is: ("reshape", []), ("permute", dims of the squeezed base),
    ("slice", steps) or ("", []) when it is none of them (overlapping or arbitrary strides)."""
    b, v = _nontrivial(base.shape, base.stride), _nontrivial(size, stride)
    b_contig = [s for _, s in b] == contiguous_stride([n for n, _ in b])
    if math.prod(size) == math.prod(base.shape):
        if b_contig and [s for _, s in v] == contiguous_stride([n for n, _ in v]):
            return "reshape", []
        if sorted(v) == sorted(b) and len(set(b)) == len(b):
            return "permute", [b.index(pair) for pair in v]
    if len(size) == base.rank:
        steps = []
        for n, s, bn, bs in zip(size, stride, base.shape, base.stride):
            step = 1 if n == 1 else (s // bs if bs and s % bs == 0 else 0)
            if step < 1 or (n - 1) * step >= bn:
                return "", []
            steps.append(step)
        return "slice", steps
    return "", []


@register("aten.as_strided.default", "aten.as_strided_.default",
          ttnn="ttnn.reshape / ttnn.permute / ttnn.slice (strides those of one of them on the base)")
def as_strided(p: Port, c: Case):
    """as_strided whose strides are a reshape, permute or slice of the base, as that ttnn op."""
    t, size, stride = c.tensor("self"), list(c.get("size")), list(c.get("stride"))
    if c.get("storage_offset") not in (None, 0):
        unsupported("as_strided at a storage offset: the trace keeps no offset of the base to relate it to; "
                    "a port writes the ttnn.slice it means")
    kind, arg = strided_view(t, size, stride)
    if not kind:
        unsupported(f"as_strided to {size} with strides {stride} (base {t.shape}, strides {t.stride}) is not "
                    "a reshape, permute or slice of its base (overlapping or arbitrary strides): a port writes "
                    "the view it means with ttnn.reshape/permute/slice, or computes it on the host")
    x = p.input("self")
    if kind == "permute":
        squeezed = [n for n in t.shape if n != 1]
        x = p.call("permute", p.call("reshape", x, squeezed, memory_config=MEMORY), arg, memory_config=MEMORY)
    elif kind == "slice":
        ends = [(n - 1) * s + 1 for n, s in zip(size, arg)]
        x = p.call("slice", x, [0] * t.rank, ends, arg, memory_config=MEMORY)
    p.note(f"as_strided is a {kind} of its base")
    p.call("reshape", x, size or [1], memory_config=MEMORY)
    p.expect(size or [1])
