"""Compute ops: convolution and pooling (channels-last), normalization, softmax, matmul, embedding
(attention is attention.py)."""
from __future__ import annotations

import math

from replay.mapping.case import Case
from replay.mapping.plan import (CHANNELS_LAST, DEVICE, MEMORY, Port, channels_last_flat,
                                 first_out, nchw_out_flat, norm_dim, pair, unsupported)
from replay.mapping.registry import register


# ---------------------------------------------------------------------------------------------
# Convolution and pooling (channels-last activations, host conv weights)

@register("aten.convolution.default", "aten.conv2d.default", "aten._convolution.default",
          "aten.cudnn_convolution.default", "aten.mkldnn_convolution.default",
          ttnn="ttnn.conv2d / ttnn.conv_transpose2d (input [1,1,NHW,C], host weights)")
def convolution(p: Port, c: Case):
    """conv2d on a channels-last [1,1,N*H*W,C] input, the weight a host tensor ttnn prepares."""
    w = c.tensor("weight")
    if w.rank != 4:
        unsupported(f"{w.rank - 2}-D convolution: optrace maps 2-D convolution only (ttnn.conv1d "
                    "needs a different input layout; 3-D has no ttnn op): a port holds a 1-D conv as a 2-D "
                    "conv with a 1-wide kernel, and splits a 3-D conv into 2-D convs summed over depth")
    padding = c.get("padding", [0, 0])
    if isinstance(padding, str):
        unsupported(f"padding={padding!r}: a port computes explicit padding; re-capture under "
                    "no_grad, where aten.convolution carries numbers")
    x, n, cin, h, wd = channels_last_flat(p, "input")
    transposed, groups = bool(c.get("transposed", False)), c.get("groups", 1)
    cout = w.shape[1] * groups if transposed else w.shape[0]
    weight = p.input("weight", dtype=p.settings.dtype, layout="ROW_MAJOR", memory="host")
    kw = dict(input_tensor=x, weight_tensor=weight, in_channels=cin, out_channels=cout, device=DEVICE,
              kernel_size=tuple(w.shape[2:]), stride=tuple(pair(c.get("stride", [1, 1]))),
              padding=tuple(pair(padding)), dilation=tuple(pair(c.get("dilation", [1, 1]))),
              groups=groups, batch_size=n, input_height=h, input_width=wd)
    if c.tensor("bias") is not None:
        kw["bias_tensor"] = p.input("bias", [1, 1, 1, cout], dtype=p.settings.dtype, layout="ROW_MAJOR",
                                    memory="host")
    if transposed:
        kw["output_padding"] = tuple(pair(c.get("output_padding", [0, 0])))
        p.call("conv_transpose2d", **kw)
    else:
        p.call("conv2d", **kw)
    p.expect(nchw_out_flat(first_out(c)), permute=CHANNELS_LAST[c.tensor("input").rank])


@register("aten.max_pool2d.default", "aten.max_pool2d_with_indices.default",
          ttnn="ttnn.max_pool2d (input [1,1,NHW,C])")
def max_pool2d(p: Port, c: Case):
    """max_pool2d on a channels-last input; the indices output is not produced."""
    x, n, ch, h, w = channels_last_flat(p, "self")
    k = pair(c.get("kernel_size"))
    kwargs = dict(input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch, kernel_size=k,
                  stride=pair(c.get("stride") or k), padding=pair(c.get("padding", [0, 0])),
                  dilation=pair(c.get("dilation", [1, 1])), ceil_mode=bool(c.get("ceil_mode", False)),
                  memory_config=MEMORY)
    out, dims = nchw_out_flat(first_out(c)), CHANNELS_LAST[c.tensor("self").rank]
    if c.op.endswith("with_indices.default"):
        p.call("max_pool2d", return_indices=True, **kwargs)
        p.expect(out, out, permute=dims)
    else:
        p.call("max_pool2d", **kwargs)
        p.expect(out, permute=dims)


@register("aten.avg_pool2d.default", ttnn="ttnn.avg_pool2d (input [1,1,NHW,C])")
def avg_pool2d(p: Port, c: Case):
    """avg_pool2d on a channels-last input; one channel of many images (RAFT's correlation pyramid) is
    pooled with the images as channels, the same data ([N, 1, H, W] is [1, N, H, W])."""
    t = c.tensor("self")
    if t.rank == 4 and t.shape[1] == 1 and t.shape[0] > 1:
        n, ch, h, w = 1, t.shape[0], t.shape[2], t.shape[3]
        p.note(f"[{t.shape[0]}, 1, H, W] pooled as [1, {t.shape[0]}, H, W] (images as channels)")
        x, dims = p.input("self", [1, 1, h * w, ch], permute=[1, 2, 3, 0]), [1, 2, 3, 0]
        o = first_out(c)
        out = [1, 1, o[2] * o[3], o[0]]
    else:
        x, n, ch, h, w = channels_last_flat(p, "self")
        out, dims = nchw_out_flat(first_out(c)), CHANNELS_LAST[t.rank]
    k = pair(c.get("kernel_size"))
    kwargs = dict(input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch, kernel_size=k,
                  stride=pair(c.get("stride") or k), padding=pair(c.get("padding", [0, 0])),
                  ceil_mode=bool(c.get("ceil_mode", False)),
                  count_include_pad=bool(c.get("count_include_pad", True)), memory_config=MEMORY)
    if c.get("divisor_override") is not None:
        kwargs["divisor_override"] = c.get("divisor_override")
    p.call("avg_pool2d", **kwargs)
    p.expect(out, permute=dims)


@register("aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default",
          "aten.adaptive_max_pool2d.default", ttnn="ttnn.adaptive_{avg,max}_pool2d (input [1,1,NHW,C])")
def adaptive_pool2d(p: Port, c: Case):
    """adaptive average or max pooling on a channels-last input (values only)."""
    x, n, ch, h, w = channels_last_flat(p, "self")
    fn = "adaptive_max_pool2d" if "max" in c.op else "adaptive_avg_pool2d"
    p.call(fn, input_tensor=x, batch_size=n, input_h=h, input_w=w, channels=ch,
           output_size=pair(c.get("output_size")), memory_config=MEMORY)
    # values only: ttnn returns no indices here
    p.expect(nchw_out_flat(first_out(c)), permute=CHANNELS_LAST[c.tensor("self").rank])


@register("aten.upsample_nearest2d.default", "aten.upsample_nearest2d.vec",
          "aten.upsample_bilinear2d.default", "aten.upsample_bilinear2d.vec",
          ttnn="ttnn.upsample(x [N,H,W,C], scale, mode)")
def upsample(p: Port, c: Case):
    """nearest/bilinear upsample on an [N, H, W, C] ROW_MAJOR input."""
    t, out = c.tensor("self" if c.tensor("self") else "input"), first_out(c)
    if t.rank != 4:
        unsupported("upsample of a non-4-D tensor: ttnn.upsample takes [N, H, W, C]; a port reshapes to "
                    "4-D (1-D: [N, 1, W, C]) around it")
    n, ch, h, w = t.shape
    sh, sw = out[2] / h, out[3] / w
    scale = [int(sh), int(sw)] if sh.is_integer() and sw.is_integer() else [sh, sw]
    name = "self" if c.tensor("self") else "input"
    mode = "bilinear" if "bilinear" in c.op else "nearest"
    if mode == "bilinear" and not (sh.is_integer() and sw.is_integer()):
        unsupported(f"bilinear upsample by a non-integer factor ({h}x{w} -> {out[2]}x{out[3]}): ttnn.upsample's "
                    "bilinear mode takes integer scales only; a port computes the interpolation as two ttnn.matmul "
                    "with fixed [H_in, H_out] and [W_in, W_out] weights, or resizes nearest")
    # ttnn.upsample wants tile-aligned TILE input; a port holds it ROW_MAJOR.
    x = p.input(name, [n, h, w, ch], layout="ROW_MAJOR", permute=CHANNELS_LAST[4])
    if mode == "bilinear" and c.get("align_corners", False):
        p.note("align_corners=True: ttnn.upsample samples half-pixel centres, so values differ; "
               "the buffers are the same")
    padded = mode == "bilinear" and ch % 32
    if padded:   # ttnn's bilinear upsample wants C a multiple of 32 (RAFT upsamples a 2-channel flow)
        p.note(f"channels padded {ch} -> {-(-ch // 32) * 32} for bilinear ttnn.upsample, sliced back after")
        x = p.call("pad", x, [[0, 0], [0, 0], [0, 0], [0, -(-ch // 32) * 32 - ch]], 0.0, memory_config=MEMORY)
    u = p.call("upsample", x, scale, mode=mode, memory_config=MEMORY)
    if padded:
        p.call("slice", u, [0, 0, 0, 0], [n, out[2], out[3], ch], [1, 1, 1, 1], memory_config=MEMORY)
    p.expect([n, out[2], out[3], ch], permute=CHANNELS_LAST[4])


# ---------------------------------------------------------------------------------------------
# Normalization

def _stat(p: Port, c: Case, name: str, ch: int):
    return p.input(name, [1, ch, 1, 1]) if c.tensor(name) is not None else None


@register("aten._native_batch_norm_legit_no_training.default", "aten._native_batch_norm_legit.default",
          "aten.native_batch_norm.default", "aten.batch_norm.default", "aten.cudnn_batch_norm.default",
          "aten._batch_norm_impl_index.default", "aten.miopen_batch_norm.default",
          ttnn="ttnn.batch_norm(x [N,C,H,W], stats [1,C,1,1])")
def batch_norm(p: Port, c: Case):
    """eval batch norm: ttnn.batch_norm with running statistics held as [1, C, 1, 1]."""
    t = c.tensor("input")
    if t.rank < 2:
        unsupported("batch_norm of a rank<2 tensor: a port folds the running statistics into a "
                    "ttnn.multiply and ttnn.add at load time")
    # ttnn.batch_norm takes [N, C, H, W]: BatchNorm1d/3d inputs are held with the rest flattened.
    shape = t.shape[:2] + [math.prod(t.shape[2:]), 1] if t.rank != 4 else t.shape
    if shape != t.shape:
        p.note(f"input held as {shape} for ttnn.batch_norm")
    ch = t.shape[1]
    training = bool(c.get("training", False))
    kwargs = dict(eps=float(c.get("eps", 1e-5)), momentum=float(c.get("momentum", 0.1)),
                  running_mean=_stat(p, c, "running_mean", ch), running_var=_stat(p, c, "running_var", ch),
                  training=training, weight=_stat(p, c, "weight", ch), bias=_stat(p, c, "bias", ch),
                  memory_config=MEMORY)
    p.call("batch_norm", p.input("input", shape), **{k: v for k, v in kwargs.items() if v is not None})
    p.expect(shape)


@register("aten.native_layer_norm.default", "aten.layer_norm.default",
          ttnn="ttnn.layer_norm(x, epsilon, weight, bias)")
def layer_norm(p: Port, c: Case):
    """layer norm over the last dim, weight and bias as [1, C]."""
    t, norm = c.tensor("input"), list(c.get("normalized_shape"))
    width = math.prod(norm)
    # ttnn normalizes over the last dim: more than one normalized dim is flattened into it.
    shape = t.shape[:t.rank - len(norm)] + [width]
    if len(norm) > 1:
        p.note(f"input held as {shape} (normalized dims flattened)")
    kwargs = dict(epsilon=float(c.get("eps", 1e-5)), memory_config=MEMORY)
    for name in ("weight", "bias"):
        if c.tensor(name) is not None:
            kwargs[name] = p.input(name, [width])
    p.call("layer_norm", p.input("input", shape), **kwargs)
    p.expect(shape)


@register("aten.native_group_norm.default", "aten.group_norm.default",
          ttnn="ttnn.group_norm(x [N,1,HW,C], num_groups, epsilon, weight, bias)")
def group_norm(p: Port, c: Case):
    """group norm on a channels-last input."""
    t = c.tensor("input")
    n, ch = t.shape[0], t.shape[1]
    hw = math.prod(t.shape[2:])
    groups = c.get("group", c.get("num_groups"))
    # inplace=False: ttnn's in-place group_norm needs ROW_MAJOR; a TILE port writes a new tensor.
    kwargs = dict(num_groups=groups, epsilon=float(c.get("eps", 1e-5)), inplace=False, memory_config=MEMORY)
    for name in ("weight", "bias"):
        if c.tensor(name) is not None:
            kwargs[name] = p.input(name, [1, 1, ch // 32, 32] if ch % 32 == 0 else [1, 1, 1, ch],
                                   layout="ROW_MAJOR")
    channels_last = [0, *range(2, t.rank), 1]
    p.call("group_norm", p.input("input", [n, 1, hw, ch], permute=channels_last), **kwargs)
    p.expect([n, 1, hw, ch], permute=channels_last)


@register("aten._softmax.default", "aten.softmax.int", "aten._safe_softmax.default",
          ttnn="ttnn.softmax(x, dim)")
def softmax(p: Port, c: Case):
    """softmax over one dim."""
    t = c.tensor("self")
    p.call("softmax", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten._log_softmax.default", "aten.log_softmax.int", ttnn="ttnn.softmax + ttnn.log")
def log_softmax(p: Port, c: Case):
    """log-softmax as softmax then log."""
    t = c.tensor("self")
    s = p.call("softmax", p.input("self"), dim=norm_dim(c.get("dim", -1), t.rank), memory_config=MEMORY)
    p.call("log", s, memory_config=MEMORY)
    p.expect(first_out(c))


# ---------------------------------------------------------------------------------------------
# Matrix multiplication (linear weights pre-transposed by the port)

@register("aten.linear.default", ttnn="ttnn.linear(x, W^T [in,out], bias=[1,out])")
def linear(p: Port, c: Case):
    """linear with the weight pre-transposed to [in, out], as a port prepares it once."""
    w = c.tensor("weight")
    kwargs = dict(memory_config=MEMORY)
    if c.tensor("bias") is not None:
        kwargs["bias"] = p.input("bias", [1, w.shape[0]])
    p.call("linear", p.input("input"), p.input("weight", [w.shape[1], w.shape[0]], permute=[1, 0]), **kwargs)
    p.expect(first_out(c))


@register("aten.addmm.default", ttnn="ttnn.linear(mat1, mat2, bias=self)")
def addmm(p: Port, c: Case):
    """addmm as ttnn.linear with self as the bias (beta/alpha 1)."""
    if c.get("beta", 1) != 1 or c.get("alpha", 1) != 1:
        p.note("beta/alpha != 1: a port scales separately; replayed as plain linear")
    b = c.tensor("self")
    bias = p.input("self", [1, b.shape[-1]] if b.rank == 1 else b.shape)
    p.call("linear", p.input("mat1"), p.input("mat2"), bias=bias, memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.mm.default", "aten.bmm.default", "aten.matmul.default", ttnn="ttnn.matmul(a, b)")
def matmul(p: Port, c: Case):
    """mm, bmm and matmul as ttnn.matmul."""
    b_name = "mat2" if c.tensor("mat2") is not None else "other"
    p.call("matmul", p.input("self"), p.input(b_name), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.baddbmm.default", ttnn="ttnn.matmul + ttnn.add")
def baddbmm(p: Port, c: Case):
    """baddbmm as matmul then add (beta/alpha 1)."""
    m = p.call("matmul", p.input("batch1"), p.input("batch2"), memory_config=MEMORY)
    p.call("add", m, p.input("self"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.embedding.default", ttnn="ttnn.embedding(indices uint32, weight)")
def embedding(p: Port, c: Case):
    """embedding lookup with uint32 indices."""
    idx = c.tensor("indices")
    p.call("embedding", p.input("indices", dtype="uint32", layout="ROW_MAJOR"),
           p.input("weight", layout="ROW_MAJOR"), memory_config=MEMORY)
    p.expect(first_out(c))
    del idx


# ---------------------------------------------------------------------------------------------
# 3-D pooling as 2-D pooling over folded dims (ttnn has no 3-D pools)

def _triple(v, default: int) -> list[int]:
    """A 3-D pool's kernel/stride/padding argument as three ints (torch accepts one for all three)."""
    if v is None or v == []:
        return [default] * 3
    v = [v] if isinstance(v, int) else list(v)
    return v * 3 if len(v) == 1 else v


@register("aten.max_pool3d_with_indices.default", "aten.max_pool3d.default",
          ttnn="ttnn.max_pool2d over (H, W), N*T folded into the batch (input [1,1,NTHW,C])")
def max_pool3d(p: Port, c: Case):
    """3-D max pooling whose window spans one frame (kernel/stride 1, no padding in T): 2-D pooling of
    every frame, frames folded into the batch, as a port writes it."""
    t = c.tensor("self")
    k = _triple(c.get("kernel_size"), 1)
    s, pad = _triple(c.get("stride") or k, 1), _triple(c.get("padding"), 0)
    dil = _triple(c.get("dilation"), 1)
    if t.rank != 5 or k[0] != 1 or s[0] != 1 or pad[0] != 0 or dil[0] != 1:
        unsupported(f"3-D max pooling with a window over frames (kernel {k}, stride {s}): ttnn has no 3-D pool; "
                    "a port pools (H, W) with ttnn.max_pool2d over N*T folded into the batch, then the frame "
                    "window with ttnn.maximum of shifted ttnn.slice views (not mapped in optrace yet)")
    n, ch, d, h, w = t.shape
    x = p.input("self", [1, 1, n * d * h * w, ch], permute=[0, 2, 3, 4, 1])
    kwargs = dict(input_tensor=x, batch_size=n * d, input_h=h, input_w=w, channels=ch, kernel_size=k[1:],
                  stride=s[1:], padding=pad[1:], dilation=dil[1:], ceil_mode=bool(c.get("ceil_mode", False)),
                  memory_config=MEMORY)
    o = first_out(c)
    out = [1, 1, o[0] * o[2] * o[3] * o[4], o[1]]
    if c.op.endswith("with_indices.default"):
        p.call("max_pool2d", return_indices=True, **kwargs)
        p.expect(out, out, permute=[0, 2, 3, 4, 1])
    else:
        p.call("max_pool2d", **kwargs)
        p.expect(out, permute=[0, 2, 3, 4, 1])


@register("aten.avg_pool3d.default", ttnn="ttnn.avg_pool2d over (T*H, W) for a global 3-D average (input [1,1,NTHW,C])")
def avg_pool3d(p: Port, c: Case):
    """a 3-D average over the whole (T, H, W) volume (S3D's head) as one 2-D average over (T*H, W)."""
    t = c.tensor("self")
    n, ch, d, h, w = t.shape if t.rank == 5 else (0, 0, 0, 0, 0)
    k, pad = _triple(c.get("kernel_size"), 1), _triple(c.get("padding"), 0)
    if t.rank != 5 or k != [d, h, w] or any(pad):
        unsupported(f"3-D average pooling with a window smaller than the volume (kernel {k} of {t.shape[2:]}): "
                    "ttnn has no 3-D pool; a port averages (H, W) with ttnn.avg_pool2d over N*T folded into the "
                    "batch, then the frame window with ttnn.add of shifted ttnn.slice views and a ttnn.multiply")
    x = p.input("self", [1, 1, n * d * h * w, ch], permute=[0, 2, 3, 4, 1])
    p.call("avg_pool2d", input_tensor=x, batch_size=n, input_h=d * h, input_w=w, channels=ch,
           kernel_size=[d * h, w], stride=[1, 1], padding=[0, 0], ceil_mode=False,
           count_include_pad=True, memory_config=MEMORY)
    p.expect([1, 1, n, ch], permute=[0, 2, 3, 4, 1])
