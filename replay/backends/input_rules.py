"""Valid input values for the torch reference: one small rule per op family, keyed by aten overload.

A signature holds metadata only; replay/backends/torch_ref.py fills every tensor with random values.
Some ops reject random values (indices out of range, a negative variance, a mask that must select
exactly the traced count): a rule here rewrites those inputs in place, before the call, so the op
runs and returns the traced shapes. A rule gets the arguments by schema name and the case (its
traced outputs). Needs torch.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

InputRule = Callable[[dict[str, Any], Any], None]
# aten overload name -> the rule that makes its inputs valid; read through input_rule_for
INPUT_RULES: dict[str, InputRule] = {}


def input_rule(*ops: str) -> Callable[[InputRule], InputRule]:
    """Register a rule for these aten overloads; refuses an op that already has one."""
    def register(fn: InputRule) -> InputRule:
        for op in ops:
            _add(op, fn)
        return fn
    return register


def _add(op: str, fn: InputRule) -> None:
    if op in INPUT_RULES:
        raise RuntimeError(f"input_rule({fn.__name__}): duplicate rule for {op}")
    INPUT_RULES[op] = fn


def input_rule_for(op: str) -> InputRule | None:
    """The rule that makes this op's inputs valid, or None (random values will do)."""
    return INPUT_RULES.get(op)


def _buffer(t: torch.Tensor) -> torch.Tensor:
    """The flat buffer behind a built tensor: writing it writes every element of the tensor."""
    return t._base if t._base is not None else t


def _indices_below(t: torch.Tensor | None, n: int) -> None:
    if isinstance(t, torch.Tensor) and t.numel() and not t.dtype.is_floating_point:
        _buffer(t).random_(0, max(n, 1))


def _first_true(mask: torch.Tensor, k: int) -> None:
    """Exactly k true elements, so a data-dependent output gets its traced size.

    Exact for every non-overlapping layout: each buffer element is then one mask element.
    """
    buf = _buffer(mask)
    buf.zero_()
    buf[:k] = 1


def _traced_shape(sig, i: int = 0) -> list[int] | None:
    out = sig.outputs[i] if i < len(sig.outputs) else None
    return out[1][0] if out and out[0] == "T" else None


@input_rule("aten.index.Tensor", "aten._unsafe_index.Tensor", "aten.index_put.default",
            "aten.index_put_.default", "aten._index_put_impl_.default")
def _advanced_indices(args: dict, sig) -> None:
    self, dim = args["self"], 0
    for idx in args["indices"]:
        if idx is None:
            dim += 1
        elif idx.dtype in (torch.bool, torch.uint8):
            out = _traced_shape(sig)
            if out is not None and dim < len(out):
                _first_true(idx, out[dim])
            dim += idx.dim()
        else:
            _indices_below(idx, self.shape[dim] if self.dim() else 1)
            dim += 1


def _index_in_dim(index_arg: str) -> InputRule:
    def rule(args: dict, sig) -> None:
        self, dim = args["self"], args["dim"]
        _indices_below(args[index_arg], self.shape[dim] if self.dim() else 1)
    return rule


for _op in ("aten.index_select.default", "aten.gather.default", "aten.scatter.src",
            "aten.scatter.value", "aten.scatter.reduce", "aten.scatter.value_reduce",
            "aten.scatter_.src", "aten.scatter_.value", "aten.scatter_add.default",
            "aten.scatter_add_.default", "aten.scatter_reduce.two", "aten.scatter_reduce_.two",
            "aten.index_add.default", "aten.index_add_.default", "aten.index_copy.default",
            "aten.index_copy_.default", "aten.index_fill.int_Scalar", "aten.index_fill_.int_Scalar",
            "aten.index_fill.int_Tensor", "aten.index_fill_.int_Tensor"):
    _add(_op, _index_in_dim("index"))


@input_rule("aten.embedding.default", "aten.embedding_dense_backward.default")
def _embedding(args: dict, sig) -> None:
    _indices_below(args.get("indices"), args["weight"].shape[0] if "weight" in args else 1)


@input_rule("aten.take.default")
def _take(args: dict, sig) -> None:
    _indices_below(args["index"], args["self"].numel())


@input_rule("aten.native_batch_norm.default", "aten._native_batch_norm_legit.default",
            "aten._native_batch_norm_legit_no_training.default",
            "aten._native_batch_norm_legit_functional.default", "aten.batch_norm.default",
            "aten._batch_norm_impl_index.default", "aten.instance_norm.default")
def _batch_norm(args: dict, sig) -> None:
    var = args.get("running_var")
    if isinstance(var, torch.Tensor):
        _buffer(var).abs_()


@input_rule("aten.nonzero.default", "aten.masked_select.default", "aten.argwhere.default")
def _data_dependent_count(args: dict, sig) -> None:
    # nonzero: [k, ndim]; masked_select: [k] -- make exactly k elements selected
    out = _traced_shape(sig)
    t = args.get("mask", args["self"])
    if out and t.numel():
        _first_true(t, out[0])


@input_rule("aten._unique2.default")
def _distinct_values(args: dict, sig) -> None:
    # exactly the traced number of distinct values (torch.unique's output size depends on the data)
    t, out = args["self"], _traced_shape(sig)
    if out and t.numel():
        buf = _buffer(t)
        buf.copy_((torch.arange(buf.numel()) % max(out[0], 1)).to(buf.dtype))


@input_rule("aten._local_scalar_dense.default", "aten.item.default")
def _scalar(args: dict, sig) -> None:
    # the traced scalar is the tensor's value; reproduce it so even the value agrees
    tag, value = sig.outputs[0]
    if tag in ("int", "float", "bool"):
        args["self"].fill_(value)


@input_rule("aten.repeat_interleave.Tensor", "aten.bincount.default")
def _non_negative_counts(args: dict, sig) -> None:
    t = args.get("repeats", args.get("self"))
    if isinstance(t, torch.Tensor) and t.numel():
        _buffer(t).abs_()


@input_rule("aten.bernoulli.default", "aten.bernoulli_.float", "aten.bernoulli_.Tensor",
            "aten.multinomial.default")
def _probabilities(args: dict, sig) -> None:
    for name in ("self", "p"):
        t = args.get(name)
        if isinstance(t, torch.Tensor) and t.dtype.is_floating_point and t.numel():
            _buffer(t).uniform_(0, 1)


@input_rule("torchvision.roi_align.default", "torchvision.roi_pool.default", "torchvision.ps_roi_align.default",
            "torchvision.ps_roi_pool.default")
def _regions(args: dict, sig) -> None:
    # rois [K, 5]: the image each box belongs to (a random one would index outside the batch and crash
    # the kernel), then x1, y1, x2, y2 inside the image at the op's scale
    rois, image = args["rois"], args["input"]
    if not rois.numel():
        return
    scale = args.get("spatial_scale", 1.0) or 1.0
    h, w = image.shape[-2] / scale, image.shape[-1] / scale
    k = rois.shape[0]
    corners = torch.rand(k, 2, 2) * torch.tensor([w, h])
    rois[:, 0] = torch.randint(0, max(image.shape[0], 1), (k,)).to(rois.dtype)
    rois[:, 1:3] = corners.min(dim=1).values.to(rois.dtype)
    rois[:, 3:5] = corners.max(dim=1).values.to(rois.dtype)


@input_rule("torchvision.nms.default")
def _kept_boxes(args: dict, sig) -> None:
    # exactly the traced count kept: that many disjoint boxes, every other box a copy of the first
    # with a lower score (IoU 1 with it, above any threshold below 1)
    boxes, scores = args["dets"], args["scores"]
    out = _traced_shape(sig)
    n = boxes.shape[0]
    if not n or out is None:
        return
    kept = min(out[0], n)
    x = torch.arange(n, dtype=boxes.dtype) * 4
    x[kept:] = 0
    boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3] = x, 0, x + 1, 1
    scores.copy_(torch.arange(n, 0, -1, dtype=scores.dtype))
