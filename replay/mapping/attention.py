"""Attention, replayed the way a port writes it: ttnn's SDPA where its constraints allow, else the math.

``aten._native_multi_head_attention`` is torch's fused CPU fast path for ``nn.MultiheadAttention``
(eval, no grad, self-attention). A port writes it from its parts: the qkv projection, the split into
heads, attention, the heads merged, the output projection. The attention itself runs on
``ttnn.transformer.scaled_dot_product_attention`` when ttnn's checks allow (tt-metal
``sdpa_device_operation.cpp``: TILE inputs of bfloat16/bfloat8_b, no padding on the head dim, a mask in
DRAM), else as matmul, scale, softmax, matmul with the traced shapes. The result's notes say which.
"""
from __future__ import annotations

import math

from replay.mapping.case import Case
from replay.mapping.plan import MEMORY, Port, Ref, first_out, unsupported
from replay.mapping.registry import register

SDPA_DTYPES = ("bfloat16", "bfloat8_b")
TILE = 32


def sdpa_blocker(p: Port, head_dim: int, mask: bool) -> str:
    """Why ttnn's SDPA cannot take this attention as the port holds it ("" when it can)."""
    if p.settings.layout != "TILE":
        return "ttnn SDPA takes TILE inputs only"
    if p.settings.dtype not in SDPA_DTYPES:
        return f"ttnn SDPA takes bfloat16/bfloat8_b, not {p.settings.dtype}"
    if head_dim % TILE:
        return f"head dim {head_dim} is not a multiple of {TILE} (ttnn SDPA refuses padding on it)"
    if mask and p.settings.buffer != "DRAM":
        return "ttnn SDPA wants its mask in DRAM"
    return ""


def attend(p: Port, q: Ref, k: Ref, v: Ref, head_dim: int, *, scale: float | None, mask: Ref | None = None,
           causal: bool = False, key_transposed: bool = False) -> Ref:
    """Attention over heads q [B,H,S,D], k, v -> [B,H,S,D], on SDPA or decomposed (the note says which).
    ``key_transposed``: k arrives [B,H,D,S] (split_query_key_value_and_split_heads' default)."""
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    why = sdpa_blocker(p, head_dim, mask is not None)
    if not why and not key_transposed:
        p.note("attention on ttnn.transformer.scaled_dot_product_attention")
        kwargs = dict(is_causal=causal, scale=scale, memory_config=MEMORY)
        if mask is not None:
            kwargs["attn_mask"] = mask
        return p.call("transformer.scaled_dot_product_attention", q, k, v, **kwargs)
    if causal:
        unsupported(f"causal attention where ttnn SDPA cannot run it ({why}): a port builds the causal mask "
                    "once at load time and adds it before the softmax (not mapped in optrace yet)")
    p.note("attention decomposed: matmul, scale, softmax, matmul" + (f" ({why})" if why else ""))
    kt = k if key_transposed else p.call("transpose", k, 2, 3, memory_config=MEMORY)
    # scores: q [B,H,S,D] @ k^T [B,H,D,S] -> [B,H,S,S]
    scores = p.call("multiply", p.call("matmul", q, kt, memory_config=MEMORY), scale, memory_config=MEMORY)
    if mask is not None:
        scores = p.call("add", scores, mask, memory_config=MEMORY)
    probs = p.call("softmax", scores, dim=-1, memory_config=MEMORY)
    return p.call("matmul", probs, v, memory_config=MEMORY)   # [B,H,S,S] @ [B,H,S,D]


def _split_heads(p: Port, qkv: Ref, i: int, b: int, s: int, heads: int, head_dim: int) -> Ref:
    """q (i=0), k (1) or v (2) of a fused [B, S, 3E] projection as heads [B, H, S, D]."""
    e = heads * head_dim
    part = p.call("slice", qkv, [0, 0, i * e], [b, s, (i + 1) * e], [1, 1, 1], memory_config=MEMORY)
    return p.call("permute", p.call("reshape", part, [b, s, heads, head_dim], memory_config=MEMORY), [0, 2, 1, 3],
                  memory_config=MEMORY)


@register("aten._native_multi_head_attention.default",
          ttnn="ttnn.linear (qkv) + split_query_key_value_and_split_heads + SDPA or matmul/softmax/matmul "
               "+ concatenate_heads + ttnn.linear (out)")
def native_multi_head_attention(p: Port, c: Case):
    """nn.MultiheadAttention's fast path as a port writes it, with the traced shapes."""
    q = c.tensor("query")
    if q is None or q.rank != 3:
        unsupported("multi-head attention on unbatched input: a port adds the batch dim with ttnn.reshape first")
    if c.tensor("key").shape != q.shape or c.tensor("value").shape != q.shape:
        unsupported("cross-attention through the fast path: a port projects key/value with their own "
                    "ttnn.linear and calls ttnn.transformer.scaled_dot_product_attention (not mapped yet)")
    if c.get("need_weights", False):
        unsupported("attention weights returned (need_weights=True): ttnn SDPA does not return them; a port "
                    "computes softmax(q @ k^T) itself when it needs them")
    if c.tensor("mask") is not None:
        unsupported("a mask through the fast path: a port turns it into an additive bfloat16 [B|1, 1, S, S] "
                    "tensor once and passes it as SDPA's attn_mask (not mapped in optrace yet)")
    e, heads = int(c.get("embed_dim")), int(c.get("num_head"))
    head_dim = e // heads
    # the fast path is self-attention: one fused qkv projection, weights pre-transposed at load time
    qkv = p.call("linear", p.input("query"), p.input("qkv_weight", [e, 3 * e], permute=[1, 0]),
                 bias=p.input("qkv_bias", [1, 3 * e]), memory_config=MEMORY)
    if head_dim % TILE:
        # ttnn's split/concatenate_heads take tile-multiple head dims only: a port splits with slices
        b, s = q.shape[0], q.shape[1]
        p.note(f"heads split and merged with slice/reshape/permute (head dim {head_dim} is not a multiple of {TILE}, "
               "which ttnn's split_query_key_value_and_split_heads requires)")
        q_, k_, v_ = (_split_heads(p, qkv, i, b, s, heads, head_dim) for i in range(3))
        ctx = attend(p, q_, k_, v_, head_dim, scale=None)
        merged = p.call("reshape", p.call("permute", ctx, [0, 2, 1, 3], memory_config=MEMORY), [b, s, e],
                        memory_config=MEMORY)
    else:
        transpose_key = bool(sdpa_blocker(p, head_dim, False))   # the decomposition wants k^T, SDPA k
        heads_ = p.call("transformer.split_query_key_value_and_split_heads", qkv, num_heads=heads,
                        transpose_key=transpose_key, memory_config=MEMORY)
        ctx = attend(p, p.item(heads_, 0), p.item(heads_, 1), p.item(heads_, 2), head_dim, scale=None,
                     key_transposed=transpose_key)
        merged = p.call("transformer.concatenate_heads", ctx, memory_config=MEMORY)   # [B,H,S,D] -> [B,S,E]
    p.call("linear", merged, p.input("proj_weight", [e, e], permute=[1, 0]), bias=p.input("proj_bias", [1, e]),
           memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten._scaled_dot_product_flash_attention_for_cpu.default",
          "aten.scaled_dot_product_attention.default", "aten._scaled_dot_product_efficient_attention.default",
          "aten._scaled_dot_product_flash_attention.default",
          ttnn="ttnn.transformer.scaled_dot_product_attention(q, k, v) or matmul/softmax/matmul")
def sdpa(p: Port, c: Case):
    """scaled dot-product attention on ttnn's SDPA where it allows, else decomposed."""
    q = c.tensor("query")
    if q is None or q.rank != 4:
        unsupported(f"attention on rank-{q.rank if q else 0} q: a port reshapes to [B, heads, S, D] first")
    mask = "attn_mask" if c.tensor("attn_mask") is not None else "attn_bias" if c.tensor("attn_bias") is not None \
        else None
    if c.tensor("key").shape[-1] != q.shape[-1] or c.tensor("value").shape[-1] != q.shape[-1]:
        unsupported("q, k and v with different head dims: ttnn SDPA wants one; a port pads v or decomposes")
    attend(p, p.input("query"), p.input("key"), p.input("value"), q.shape[-1], scale=c.get("scale"),
           mask=p.input(mask) if mask else None, causal=bool(c.get("is_causal", False)))
    p.expect(first_out(c))
