"""Shapes, for every stage above capture: a signature's tensor arguments' shapes as the reports and studies
print them; the same reshape/permute with its size-1 trailing dims folded away, as a port writes it; and the
two shape helpers the mappings and the estimate share (torch's broadcast of shapes, rounding up to a tile or page).

Ground for every stage above capture: imports only the trace schema, neither torch nor ttnn.
"""
from __future__ import annotations

from capture.schema import Signature, contiguous_stride, tensor_payloads

# Ops whose size-1 trailing dims a port keeps implicit (fold_trailing_ones).
FOLDABLE_OPS = ("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
                "aten.unsqueeze.default", "aten.view_copy.default", "aten.permute.default")


def input_shapes(sig: Signature) -> list[list[int]]:
    """Shapes of the signature's tensor arguments, in argument order."""
    return [t[0] for t in tensor_payloads(sig.args)]


def format_shapes(shapes: list[list[int]]) -> str:
    """'[1, 3, 640, 640]; [32, 3, 3, 3]' -- the Input_Shape text of the failure CSV."""
    return "; ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes)


def round_up(x: int, m: int) -> int:
    """x rounded up to a multiple of m (tile and page padding)."""
    return -(-x // m) * m


def broadcast_shapes(*shapes) -> tuple:
    """torch's broadcast of shapes (right-aligned; a 1 stretches, a 0 stays 0); ValueError when two
    dims differ and neither is 1."""
    rank = max(len(s) for s in shapes)
    out = []
    for col in zip(*[(1,) * (rank - len(s)) + tuple(s) for s in shapes]):
        sizes = {x for x in col if x != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {', '.join(str(list(s)) for s in shapes)} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def strip_trailing_ones(shape: list[int]) -> list[int]:
    """The shape without its size-1 trailing dims (at least one dim kept)."""
    out = list(shape)
    while len(out) > 1 and out[-1] == 1:
        out.pop()
    return out


def _tensor(shape: list[int], like: list) -> list:
    return ["T", [shape, like[1], contiguous_stride(shape)]]


def fold_trailing_ones(sig: Signature, arg_names: list[str]) -> Signature | None:
    """The reshape/permute with its size-1 trailing dims folded away, or None when it has none."""
    if sig.op not in FOLDABLE_OPS:
        return None
    named = dict(zip(arg_names, range(len(arg_names))))
    if "self" not in named or not sig.outputs or sig.outputs[0][0] != "T":
        return None
    x = sig.args[named["self"]][1]
    out = sig.outputs[0][1]
    args = list(sig.args)
    if sig.op == "aten.permute.default":
        shape, dims = x[0], [d % max(len(x[0]), 1) for d in (v[1] for v in sig.args[named["dims"]][1])]
        keep = [i for i, n in enumerate(shape) if n != 1]
        if len(keep) == len(shape):
            return None
        new_dims = [keep.index(d) for d in dims if d in keep]
        new_in = [shape[i] for i in keep] or [1]
        args[named["self"]] = _tensor(new_in, x)
        args[named["dims"]] = ["list", [["int", d] for d in new_dims or [0]]]
        new_out = [shape[d] for d in dims if d in keep] or [1]
    else:
        new_in, new_out = strip_trailing_ones(x[0]), strip_trailing_ones(out[0])
        if new_in == x[0] and new_out == out[0]:
            return None
        args[named["self"]] = _tensor(new_in, x)
        for name in ("size", "shape"):
            if name in named:
                args[named[name]] = ["list", [["int", d] for d in new_out]]
        if sig.op == "aten.unsqueeze.default":
            if new_out != new_in:
                return None
            return Signature(id=sig.id + "-fold", op="aten.view.default",
                             args=[args[named["self"]], ["list", [["int", d] for d in new_out]]],
                             outputs=[_tensor(new_out, out)], count=sig.count, calls=sig.calls)
    return Signature(id=sig.id + "-fold", op=sig.op, args=args, outputs=[_tensor(new_out, out)] + sig.outputs[1:],
                     count=sig.count, calls=sig.calls)
