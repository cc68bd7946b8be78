"""The estimate's per-op rules: what each aten op family allocates on the device besides its inputs.

Imports neither torch nor ttnn. One small function per op family, keyed by aten overload like
torch/utils/flop_counter.py's formulas (``@register_rule("aten.view.default")``), each returning a Plan
(replay/backends/estimate_plan.py). The default rule, ``outputs_only``, allocates the outputs, and for a port
of several ttnn calls each call's result (replay/backends/ttnn_calls.py). What each rule allocates was
measured on the mock device (tests/replay/test_estimate_vs_ttnn.py, benchmarks/bench_estimate.py).
"""
from __future__ import annotations

import functools
import math

from replay.backends.devices import BLOCK_FLOAT_DTYPES, ELEMENT_BYTES, TILE_HW, DeviceSpec
from replay.backends.estimate_cbs import (as3, call_bytes, mapping_page_bytes, port_programs, reshape_is_view,
                                         reshape_tiled_bytes, tile_bytes, tiled_unaligned_concat_bytes,
                                         untilize_range)
from replay.backends.estimate_conv import ConvShape, auto_shard
from replay.backends.estimate_plan import Buffer, CircularBuffer, OpCase, Plan, place, plan_of_events, register_rule
from replay.backends.estimate_pool import pool_plan, pool_shape_of_call
from replay.backends.ttnn_calls import Held
from replay.backends.ttnn_calls import results as call_results
from replay.shapes import round_up


def outputs_only(case: OpCase) -> Plan:
    """Default: the op allocates its outputs, as traced; a port of several calls also holds each earlier
    call's result (replay.backends.ttnn_calls), and a last call that writes into a tensor it was given
    or returns its input (ttnn.copy, ttnn.expand to the same shape) allocates none."""
    held = port_results(case)
    if held is None:
        return Plan(list(case.outputs), circular_buffers=call_programs(case, [list(case.outputs)]))
    *earlier, (internals, last) = held
    buffers = [b for extra, results in earlier for b in extra + results]
    if last and len(last) == len(case.outputs):
        # the outputs in the layout and memory the last call returns them (a slice of a row-major upsample)
        case.outputs[:] = [Buffer(o.shape, o.dtype, r.layout, r.memory, o.role) for o, r in zip(case.outputs, last)]
    outputs = list(case.outputs) if last else []
    return Plan(buffers + internals + outputs,
                circular_buffers=call_programs(case, [results for _, results in earlier] + [outputs]))


def _port_inputs(case: OpCase) -> dict[str, Held]:
    return {t.name: Held(tuple(t.shape), t.dtype, "TILE" if t.dtype in BLOCK_FLOAT_DTYPES else t.layout, t.memory)
            for t in case.port.inputs}


def call_programs(case: OpCase, allocated: list[list[Buffer]]) -> list[CircularBuffer]:
    """The circular buffers of each of the port's calls (replay/backends/estimate_cbs.py), each program
    run once the last buffer its call allocates (``allocated``, one list per call) is in place."""
    if case.port is None or not case.port.calls:
        return []
    outputs = [Held(b.shape, b.dtype, b.layout, b.memory) for b in case.outputs]
    per_call = port_programs(case.port.calls, _port_inputs(case), case.settings.memory.upper(), case.device, outputs)
    return [CircularBuffer(f"ttnn.{call.fn}", cb_bytes, 1, after=bufs[-1])
            for call, cb_bytes, bufs in zip(case.port.calls, per_call, allocated) if cb_bytes and bufs]


def port_results(case: OpCase) -> list[tuple[list[Buffer], list[Buffer]]] | None:
    """Each ttnn call's (intermediate buffers, results) as Buffers, the port's calls walked in order; None
    without a port or when a call is not in replay.backends.ttnn_calls' table. Reshapes that are views
    allocate nothing; a bilinear upsample shards, haloes and upsamples in L1 first (bilinear_internals)."""
    if case.port is None or not case.port.calls:
        return None
    inputs = _port_inputs(case)
    walked = call_results(case.port.calls, inputs, case.settings.memory.upper())
    if walked is None:
        return None
    out, env = [], dict(inputs)
    for call, results in zip(case.port.calls, walked):
        src = env.get(str(call.args[0])) if call.args else None
        if call.fn == "reshape" and src is not None and results and \
                reshape_is_view(src.shape, results[0].shape, src.layout):
            results = []
        internals = []
        if call.fn == "upsample" and call.kwargs.get("mode") == "bilinear" and src is not None:
            internals = bilinear_internals(src, call.args[1], case.device)
        out.append((internals, [Buffer(h.shape, h.dtype, h.layout, h.memory, f"ttnn.{call.fn} result")
                                for h in results]))
        env[call.out] = results[0] if results else src
    return out


def _halo_rows(n: int, h: int, w: int, sh: int, sw: int, shards: int, rows_in: int) -> int:
    """Rows (channel sticks) of the widest halo shard of a bilinear upsample: the padded input a core's
    output rows read, from the first output's top-left neighbour to the last's bottom-right; fitted to the
    mock n150 (exact on 11 of 14 probed shapes, within 2 padded rows on the others)."""
    wo, wp, total = w * sw, w + 2, n * h * sh * w * sw
    per = rows_in * sh * sw

    def top_left(o: int) -> int:
        b, r = divmod(o, h * sh * wo)
        y, x = divmod(r, wo)
        return b * (h + 2) * wp + (math.floor((y + 0.5) / sh - 0.5) + 1) * wp + math.floor((x + 0.5) / sw - 0.5) + 1

    widest = 0
    for k in range(shards):
        first, last = k * per, min(total, (k + 1) * per) - 1
        if first > last:
            break
        widest = max(widest, top_left(last) + wp + 1 - top_left(first) + 1)
    return widest


def bilinear_internals(x: Held, scale, device: DeviceSpec) -> list[Buffer]:
    """ttnn.upsample(mode="bilinear") of an interleaved [N, H, W, C] tensor: it is height sharded in L1
    (min(cores, N*H*W) shards), haloed (rows of padded input each core reads) and upsampled into an L1 shard
    per core before the result is written where the call asks (measured on the mock n150 and p150)."""
    if len(x.shape) != 4 or not isinstance(scale, (list, tuple)) or not all(isinstance(v, int) for v in scale):
        return []
    n, h, w, c = x.shape
    sh, sw = scale
    nhw = n * h * w
    shards = min(device.l1_banks, nhw)
    rows_in = -(-nhw // shards)
    in_cores = -(-nhw // rows_in)
    rows_out = -(-nhw * sh * sw // shards)
    halo = _halo_rows(n, h, w, sh, sw, shards, rows_in)
    rm = dict(dtype=x.dtype, layout="ROW_MAJOR", memory="L1")
    return [Buffer((in_cores * rows_in, c), role="bilinear: input height sharded", cores=in_cores, **rm),
            Buffer((shards * halo, c), role="bilinear: halo", cores=shards, **rm),
            Buffer((shards * rows_out, c), role="bilinear: upsampled shard", cores=shards, **rm)]


@register_rule("aten.detach.default", "aten.alias.default", "aten.lift_fresh.default",
               "aten._assert_async.msg", "aten._assert_async.default", "aten.sym_size.int",
               "aten._local_scalar_dense.default", "aten.sym_numel.default", "aten.sym_stride.int",
               "aten.prim_layout.default", "aten.dim.default", "aten.is_same_size.default")
def metadata_only(case: OpCase) -> Plan:
    """Pure metadata or host bookkeeping: a port issues no device op."""
    return Plan(status="skipped", reason=f"{case.op} is metadata only; a port issues no ttnn op")


@register_rule("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
               "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.unsqueeze.default",
               "aten.flatten.using_ints", "aten.unflatten.int", "aten.view_as.default")
def reshape(case: OpCase) -> Plan:
    """ttnn.reshape: free when a view; else padded output + a DRAM page-mapping tensor the program
    cache keeps (one row per output tile, 16 B per segment), its program's circular buffers run once the
    output is placed (estimate_cbs.reshape); bfloat8_b and bfloat4_b go through bfloat16 (input and output
    copies; their programs not modelled)."""
    if not case.inputs or not case.outputs:
        return outputs_only(case)
    src, out = case.inputs[0], case.outputs[0]
    call = f"ttnn.reshape(x, {list(out.shape)})"
    if reshape_is_view(src.shape, out.shape, src.layout):
        return Plan([], ttnn_call=call, reason="view: no allocation")
    if src.layout != "TILE":
        return Plan([out], ttnn_call=call)
    c2, h2, w2 = as3(out.shape)
    out_tiles = c2 * (-(-h2 // TILE_HW)) * (-(-w2 // TILE_HW))
    mapping = Buffer((out_tiles, mapping_page_bytes(src.shape, out.shape) // 4), "uint32", "ROW_MAJOR", "DRAM",
                     "reshape page-mapping tensor")
    if src.dtype in BLOCK_FLOAT_DTYPES:
        as_bf16 = Buffer(src.shape, "bfloat16", "TILE", src.memory, "input typecast to bfloat16")
        out_bf16 = Buffer(out.shape, "bfloat16", "TILE", out.memory, "output in bfloat16")
        return Plan([as_bf16, out_bf16, mapping, out], ttnn_call=call)
    program = CircularBuffer("ttnn.reshape", reshape_tiled_bytes(src, out), 1, after=out)
    return Plan([out, mapping], circular_buffers=[program], ttnn_call=call)


@register_rule("aten.permute.default")
def permute(case: OpCase) -> Plan:
    """ttnn.permute: identity is free; otherwise the padded output only (stays in TILE)."""
    dims = case.args.get("dims", ["list", []])[1]
    order = [v[1] for v in dims] if isinstance(dims, list) else []
    rank = len(case.inputs[0].shape) if case.inputs else 0
    if order and [d % rank for d in order] == list(range(rank)):
        return Plan([], ttnn_call=f"ttnn.permute(x, {order})", reason="identity permutation")
    return Plan(list(case.outputs), ttnn_call=f"ttnn.permute(x, {order})")


def _pair(v, default: int) -> tuple[int, int]:
    v = v[1] if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) else v
    if isinstance(v, list):
        vals = [x[1] if isinstance(x, list) else x for x in v]
        return (vals[0], vals[-1]) if vals else (default, default)
    return (v, v) if isinstance(v, int) else (default, default)


def is_matmul_conv(case: OpCase) -> bool:
    """ttnn runs a 1x1, stride-1, unpadded, undilated, ungrouped conv2d as a matmul (conv2d_utils
    is_mm_conv); measured on all 253 traced convolutions of the mock n150."""
    weight = case.args.get("weight")
    if not (isinstance(weight, list) and weight[0] == "T") or len(weight[1][0]) != 4:
        return False
    transposed = case.args.get("transposed", ["bool", False])
    if (transposed[1] if isinstance(transposed, list) else transposed) is True:
        return False
    groups = case.args.get("groups", ["int", 1])
    groups = groups[1] if isinstance(groups, list) else groups
    return (tuple(weight[1][0][2:]) == (1, 1) and _pair(case.args.get("stride"), 1) == (1, 1)
            and _pair(case.args.get("padding"), 0) == (0, 0) and _pair(case.args.get("dilation"), 1) == (1, 1)
            and groups == 1)


@register_rule("aten.convolution.default", "aten.conv2d.default", "aten._convolution.default",
               "aten.cudnn_convolution.default", "aten.mkldnn_convolution.default")
def conv2d(case: OpCase) -> Plan:
    """ttnn.conv2d: a 1x1 matmul conv reads the interleaved input as is and writes an interleaved
    DRAM output (auto-sharded matmul convs skip sharding); other convs: the output as traced."""
    if case.port is None or not case.outputs:
        return outputs_only(case)
    if not is_matmul_conv(case):
        return sharded_conv(case) or outputs_only(case)
    out = case.outputs[0]
    return Plan([Buffer(out.shape, out.dtype, "TILE", "DRAM", "output")],
                reason="matmul conv: output in DRAM interleaved")


def conv_shape(case: OpCase) -> ConvShape | None:
    """The conv as ttnn's auto-shard sees it (grouped ones as ttnn runs them: on every input channel,
    the weights padded with zeros; a transposed one as the stride-1 conv over its input with zeros
    inserted), or None: not 2-d, a 1-d depthwise conv, a grouped, dilated or output-padded transpose."""
    x, weight, bias = (case.args.get(k) for k in ("input", "weight", "bias"))
    if not all(isinstance(t, list) and t[0] == "T" and len(t[1][0]) == 4 for t in (x, weight)):
        return None
    transposed = case.args.get("transposed", ["bool", False])
    groups = case.args.get("groups", ["int", 1])
    groups = groups[1] if isinstance(groups, list) else groups
    (n, cin, h, w), (kh, kw) = x[1][0], tuple(weight[1][0][2:])
    stride, padding = _pair(case.args.get("stride"), 1), _pair(case.args.get("padding"), 0)
    dilation, has_bias = _pair(case.args.get("dilation"), 1), isinstance(bias, list) and bias[0] == "T"
    if (transposed[1] if isinstance(transposed, list) else transposed) is True:
        if groups != 1 or dilation != (1, 1) or _pair(case.args.get("output_padding"), 0) != (0, 0) \
                or padding[0] >= kh or padding[1] >= kw:
            return None
        return ConvShape(batch=n, in_channels=cin, out_channels=weight[1][0][1], kernel=(kh, kw), stride=(1, 1),
                         height=(h - 1) * stride[0] + 1, width=(w - 1) * stride[1] + 1, dilation=(1, 1),
                         padding=(kh - 1 - padding[0], kw - 1 - padding[1]), bias=has_bias, source_hw=(h, w))
    cout = weight[1][0][0]
    if groups == cin == cout and kw == w == 1:
        return None     # a 1-d depthwise conv: ttnn height-shards it with other blocks
    return ConvShape(batch=n, in_channels=cin, out_channels=cout, height=h, width=w, kernel=(kh, kw),
                     stride=stride, padding=padding, dilation=dilation, bias=has_bias)


def sharded_conv(case: OpCase) -> Plan | None:
    """A conv2d on an interleaved bfloat16 L1 input, auto-sharded (replay/backends/estimate_conv.py):
    the input copied into ttnn's sharding, the halo, the copy freed, the sharded output (replacing the
    traced one), the conv program's circular buffers beside them. None: not modelled (conv_shape)."""
    x = case.inputs[0] if case.inputs else None
    conv = conv_shape(case) if x is not None and x.memory == "L1" and x.dtype == "bfloat16" else None
    s = auto_shard(conv, case.device) if conv is not None else None
    if s is None:
        return None
    shard = Buffer((s.copy_cores, s.input_rows, s.input_channels), x.dtype, "TILE", "L1",
                   f"input copy, {s.layout} sharded", cores=s.copy_cores)
    halo = Buffer((s.input_cores, s.halo_rows, s.input_channels), x.dtype, "ROW_MAJOR", "L1", "halo output",
                  cores=s.input_cores)
    out = Buffer((s.output_cores, s.output_rows, s.output_channels), case.outputs[0].dtype, "TILE", "L1",
                 f"output, {s.layout} sharded", cores=s.output_cores)
    case.outputs[:1] = [out]
    # conv2d frees the copy once the halo holds it; conv_transpose2d keeps it to the end (mock n150)
    frees = [] if conv.source_hw[0] else [(out, (shard,))]
    return Plan([shard, halo, out], frees=frees, l1_circular_bytes=s.circular_bytes,
                ttnn_call="ttnn.conv2d", reason=f"conv2d {s.layout} sharded on {s.input_cores} cores in L1")


@register_rule("aten.max_pool2d.default", "aten.max_pool2d_with_indices.default", "aten.avg_pool2d.default",
               "aten.adaptive_max_pool2d.default", "aten.adaptive_avg_pool2d.default",
               "aten._adaptive_avg_pool2d.default", "aten.max_pool3d.default",
               "aten.max_pool3d_with_indices.default", "aten.avg_pool3d.default")
def pool2d(case: OpCase) -> Plan:
    """ttnn's pools on an interleaved bfloat16 L1 input, auto-sharded (replay/backends/estimate_pool.py):
    the input copy and the halo kept to the end, the sharded output (and indices) each copied to its
    interleaved L1 result; otherwise (DRAM, other dtypes) the outputs as traced."""
    x = case.inputs[0] if case.inputs else None
    call = case.port.calls[-1] if case.port is not None and case.port.calls else None
    pool = pool_shape_of_call(call.fn, call.kwargs) if call is not None else None
    if pool is None or x.memory != "L1" or x.dtype != "bfloat16" or x.layout != "TILE" or \
            len(case.outputs) != 1 + pool.return_indices:
        return outputs_only(case)
    plan, results = pool_plan(pool, case.outputs, case.device)
    case.outputs[:] = results      # row major in L1, as ttnn returns them
    return plan


def _dim_of(case: OpCase, rank: int) -> int:
    d = case.args.get("dim", ["int", 0])
    d = d[1] if isinstance(d, list) else d
    return d % rank if rank else 0


def concat_staging_page_bytes(ins: list[Buffer], out: Buffer, dim: int, device: DeviceSpec) -> int | None:
    """The row-major page ttnn.concat stages per DFB entry when tiled inputs are padded along the
    concat dim (or rank 1): they are untilized, concatenated row by row and tilized again
    (concat.cpp's untilize_rm_retilize_concat); a last-dim concat whose rows are not buffer-aligned
    is transposed first, so a row is then the second-to-last dim. None: a tiled concat (a tile per entry)."""
    rank = len(out.shape)
    if not any(b.layout == "TILE" and (rank == 1 or (dim >= rank - 2 and b.shape[dim] % TILE_HW)) for b in ins):
        return None
    esize = ELEMENT_BYTES.get(out.dtype, 2) if out.dtype not in BLOCK_FLOAT_DTYPES else 2
    width = out.shape[-2] if concat_rows_transposed(ins, out, dim, device) else out.shape[-1]
    return round_up(width * esize, max(device.alignment(b.memory) for b in ins + [out]))


def concat_rows_transposed(ins: list[Buffer], out: Buffer, dim: int, device: DeviceSpec) -> bool:
    """A row-major last-dim concat whose input rows are not buffer-aligned: ttnn transposes the last two
    dims first (and back after), so it concatenates rows of the second-to-last dim."""
    esize = ELEMENT_BYTES.get(out.dtype, 2) if out.dtype not in BLOCK_FLOAT_DTYPES else 2
    rank = len(out.shape)
    return rank > 1 and dim == rank - 1 and any(b.shape[-1] * esize % device.alignment(b.memory) for b in ins)


def tiled_concat(ins: list[Buffer], out: Buffer, dim: int, alive: list[Buffer], case: OpCase) -> list[CircularBuffer]:
    """The circular buffers of ttnn's tiled concat of an unaligned width when ttnn takes it: they and an
    L1 output fit the L1 left beside ``alive`` (the L1 buffers held then); [] when it does not."""
    held = [Held(b.shape, b.dtype, b.layout, b.memory) for b in ins]
    cb_bytes = tiled_unaligned_concat_bytes(held, Held(out.shape, out.dtype, out.layout, out.memory), dim)
    if cb_bytes is None:
        return []
    small = case.settings.l1_small_bytes
    used = sum(place(b, case.device, small).per_bank_bytes for b in alive + ([out] if out.memory == "L1" else []))
    if used + cb_bytes > case.device.banks("L1", small)[1]:
        return []
    return [CircularBuffer("concat (tiled, unaligned width)", cb_bytes, 1, after=out)]


def staging_entries(page: int, device: DeviceSpec) -> int:
    """Entries of the row-major concat's staging buffer: two when they fit half of L1 above the firmware."""
    firmware = device.l1_core_bytes - device.l1_bank_bytes     # L1 below the allocator's base
    return 2 if 2 * page <= device.l1_core_bytes // 2 - firmware else 1


@register_rule("aten.slice.Tensor")
def slice_(case: OpCase) -> Plan:
    """ttnn.slice of a tiled tensor from an offset (or with a step) inside the last two dims' tiles: the
    input untilized (row major), sliced row major, tilized into the output (the row-major copies freed
    after); from the tiles' origin with step 1: the output only; an empty slice allocates nothing."""
    if case.port is None or not case.outputs or not case.inputs or len(case.port.calls) != 1:
        return outputs_only(case)
    x, out = case.inputs[0], case.outputs[0]
    _, starts, _, steps = case.port.calls[0].args[:4]
    if 0 in x.shape or 0 in out.shape:
        return Plan([], ttnn_call="ttnn.slice", reason="empty slice: nothing allocated")
    rank = len(x.shape)
    inner = range(max(0, rank - 2), rank)
    if x.layout != "TILE" or not any(starts[d] % TILE_HW or steps[d] != 1 for d in inner):
        return Plan(list(case.outputs), ttnn_call="ttnn.slice")
    dtype = "bfloat16" if x.dtype in BLOCK_FLOAT_DTYPES else x.dtype
    rm_in = Buffer(x.shape, dtype, "ROW_MAJOR", x.memory, "input untilized")
    rm_out = Buffer(out.shape, dtype, "ROW_MAJOR", out.memory, "row-major slice")
    return Plan([rm_in, rm_out] + list(case.outputs), ttnn_call="ttnn.slice",
                reason="slice inside tiles: untilize, slice rows, tilize")





def _batch_statistic(x: Buffer, name: str) -> tuple[list, Buffer]:
    """ttnn.batch_norm's training statistic of x [N, C, H, W]: a reduce over W, then over H (the first
    freed), then permute, reduce, permute of the [N, C, 1, 1] result (the intermediates freed); the last kept."""
    n, c, h, _ = x.shape
    over_w = Buffer((n, c, h, 1), x.dtype, "TILE", x.memory, f"{name}: reduce over W")
    stat = [Buffer((n, c, 1, 1), x.dtype, "TILE", x.memory, f"{name}: {step}")
            for step in ("reduce over H", "permute", "reduce", "permute")]
    events = [("alloc", over_w), ("alloc", stat[0]), ("free", over_w), ("alloc", stat[1]), ("alloc", stat[2]),
              ("free", stat[1]), ("alloc", stat[3]), ("free", stat[0]), ("free", stat[2])]
    return events, stat[3]


@register_rule("aten._native_batch_norm_legit_no_training.default", "aten._native_batch_norm_legit.default",
               "aten.native_batch_norm.default", "aten.batch_norm.default", "aten.cudnn_batch_norm.default",
               "aten._batch_norm_impl_index.default", "aten.miopen_batch_norm.default")
def batch_norm(case: OpCase) -> Plan:
    """ttnn.batch_norm: with running statistics, the output; in training mode ttnn first computes the batch
    mean and variance on the device: the mean (reduces, permutes), x - mean and its square (full size),
    the variance the same way, the two full-size temporaries freed, then the output (measured on the mock n150)."""
    port = case.port
    if port is None or not case.outputs or not port.calls or not port.calls[-1].kwargs.get("training"):
        return outputs_only(case)
    names = [t.name for t in port.inputs if t.memory != "host"]
    x = case.inputs[names.index("input")] if "input" in names else None
    if x is None or len(x.shape) != 4:
        return outputs_only(case)
    mean_events, mean = _batch_statistic(x, "batch mean")
    centered = Buffer(x.shape, x.dtype, "TILE", x.memory, "x - batch mean")
    squared = Buffer(x.shape, x.dtype, "TILE", x.memory, "(x - batch mean)^2")
    var_events, var = _batch_statistic(x, "batch variance")
    events = mean_events + [("alloc", centered), ("alloc", squared)] + var_events + \
        [("free", centered), ("free", squared)] + [("alloc", b) for b in case.outputs]
    return plan_of_events(events, ttnn_call="ttnn.batch_norm(training=True)",
                          reason="training batch norm: batch statistics computed on the device")


@register_rule("aten.stack.default")
def stack(case: OpCase) -> Plan:
    """ttnn.stack: each input reshaped to hold the new dim (the reshape rule: a padded copy where the input
    lives, its DRAM page-mapping tensor freed once made), then a concat into a result in DRAM: the port
    passes no memory config and ttnn.stack's default is DRAM (measured on the mock n150). A concat along a
    dim the tiles pad goes through row major (_row_major_stack)."""
    if case.port is None or not case.outputs or not case.inputs:
        return outputs_only(case)
    out = case.outputs[0]
    dim = _dim_of(case, len(out.shape))
    events, held = [], []
    for b in case.inputs:
        grown = Buffer(b.shape[:dim] + (1,) + b.shape[dim:], b.dtype, b.layout, b.memory, "input with the new dim")
        r = reshape(OpCase("aten.unsqueeze.default", {}, [b], [grown], case.settings, case.device, None))
        events += [("alloc", x) for x in r.buffers] + [("free", x) for x in r.buffers if x.memory == "DRAM"
                                                        and x is not grown]
        held.append(grown if any(x is grown for x in r.buffers) else Buffer(grown.shape, b.dtype, b.layout, b.memory, b.role))
    case.outputs[:] = [Buffer(x.shape, x.dtype, x.layout, "DRAM", x.role) for x in case.outputs]
    page = concat_staging_page_bytes(held, case.outputs[0], dim, case.device)
    alive = [b for b in case.inputs if b.memory == "L1"] + [b for kind, b in events if kind == "alloc" and b.memory == "L1"]
    tiled = tiled_concat(held, case.outputs[0], dim, alive, case)
    if tiled:
        return plan_of_events(events + [("alloc", b) for b in case.outputs], ttnn_call="ttnn.stack", circular_buffers=tiled,
                              reason="stack: inputs reshaped, concatenated (tiled, unaligned width) into DRAM")
    if page is not None:
        more, cbs = _row_major_stack(held, case.outputs[0], dim, page, case.device)
        return plan_of_events(events + more, ttnn_call="ttnn.stack", circular_buffers=cbs,
                              reason="stack: inputs reshaped, concatenated through row major into DRAM")
    events += [("alloc", b) for b in case.outputs]
    return plan_of_events(events, ttnn_call="ttnn.stack", reason="stack: inputs reshaped, concatenated into DRAM")


def _row_major_stack(held: list[Buffer], out: Buffer, dim: int, page: int, device: DeviceSpec) -> tuple[list, list]:
    """The events of ttnn.stack's concat of tiled inputs padded along ``dim``: each untilized where it lives;
    rows too narrow to align (a last-dim concat) each permuted to rows along the dim and the untilized
    copies freed; the row-major concat into DRAM (its row staging), permuted back, tilized into the output
    (mock n150: an int32 stack of rank-1 tensors). Returns (events, circular buffers)."""
    dtype = "bfloat16" if out.dtype in BLOCK_FLOAT_DTYPES else out.dtype
    rows = [Buffer(b.shape, dtype, "ROW_MAJOR", b.memory, "input untilized") for b in held]
    events = [("alloc", b) for b in rows]
    transposed = concat_rows_transposed(held, out, dim, device)
    swap = (lambda shape: shape[:-2] + (shape[-1], shape[-2])) if transposed else (lambda shape: shape)
    if transposed:
        turned = [Buffer(swap(b.shape), dtype, "ROW_MAJOR", b.memory, "untilized input permuted") for b in rows]
        events += [("alloc", b) for b in turned] + [("free", b) for b in rows]
    rm_out = Buffer(swap(out.shape), dtype, "ROW_MAJOR", "DRAM", "row-major result")
    events.append(("alloc", rm_out))
    if transposed:
        events.append(("alloc", Buffer(out.shape, dtype, "ROW_MAJOR", "DRAM", "row-major result permuted back")))
    events.append(("alloc", out))
    return events, [CircularBuffer("concat row staging", page, staging_entries(page, device), after=rm_out)]


@register_rule("aten.grid_sampler_2d.default")
def grid_sample(case: OpCase) -> Plan:
    """ttnn.grid_sample: a row-major result like its row-major input; with C padded to a tile (RAFT's
    C=1 volumes), the padded input and the padded result before the slice back."""
    # the output is row major, as ttnn returns it: replaced in place, the list _allocate places
    case.outputs[:] = [Buffer(b.shape, b.dtype, "ROW_MAJOR", b.memory, b.role) for b in case.outputs]
    x, ch = case.inputs[0], case.inputs[0].shape[-1]
    if not case.outputs or ch % TILE_HW == 0:
        return Plan(list(case.outputs), ttnn_call="ttnn.grid_sample")
    out = case.outputs[0]
    padded_in = Buffer(x.shape[:-1] + (round_up(ch, TILE_HW),), x.dtype, "ROW_MAJOR", x.memory, "input channels padded")
    padded_out = Buffer(out.shape[:-1] + (round_up(ch, TILE_HW),), out.dtype, "ROW_MAJOR", out.memory,
                        "padded grid_sample result")
    calls = case.port.calls if case.port is not None else []
    cbs = []
    if calls and calls[0].fn == "pad":
        held = Held(padded_in.shape, padded_in.dtype, padded_in.layout, padded_in.memory)
        cbs = [CircularBuffer("ttnn.pad", call_bytes(calls[0], _port_inputs(case), [held], case.device), 1,
                              after=padded_in)]
    return Plan([padded_in, padded_out, out], ttnn_call="ttnn.pad; ttnn.grid_sample; ttnn.slice",
                circular_buffers=cbs)


@register_rule("aten.cat.default", "aten.concat.default")
def concat(case: OpCase) -> Plan:
    """ttnn.concat: the output; inputs padded along the concat dim go through row major, and the
    row-major concat stages whole rows in L1 (one page per DFB entry, two when they fit half of L1)."""
    if not case.outputs:
        return outputs_only(case)
    out = case.outputs[0]
    ins = [b for b in case.inputs if b.shape != (0,)]
    dim = _dim_of(case, len(out.shape))
    page = concat_staging_page_bytes(ins, out, dim, case.device) if ins else None
    tiled = tiled_concat(ins, out, dim, [b for b in case.inputs if b.memory == "L1"], case) if ins else []
    if page is None or tiled:
        return Plan(list(case.outputs), circular_buffers=tiled)
    # each input untilized (row major, unpadded, where it lives), the row-major result and the tilized
    # output, all held: ttnn frees the row-major copies only after tilizing (mock n150: retinanet's 5-way
    # concat of [1, N, 91] runs out at the tilized output with every copy still allocated)
    rows = [Buffer(b.shape, "bfloat16" if b.dtype in BLOCK_FLOAT_DTYPES else b.dtype, "ROW_MAJOR", b.memory,
                   "input untilized") for b in ins]
    rm_out = Buffer(out.shape, rows[0].dtype, "ROW_MAJOR", out.memory, "row-major result")
    entries = staging_entries(page, case.device)
    return Plan(rows + [rm_out] + list(case.outputs), ttnn_call="ttnn.concat",
                reason="concat through row major (untilize, concat rows, tilize)",
                circular_buffers=untilize_programs(ins, rows, case) +
                [CircularBuffer("concat row staging", page, entries, after=rm_out)])


def untilize_programs(ins: list[Buffer], rows: list[Buffer], case: OpCase) -> list[CircularBuffer]:
    """The circular buffers of concat's untilize of each tiled input (ttnn.untilize_with_unpadding) where
    ttnn takes its block factory, each range of cores apart (at most four): sized from the L1 free below
    the lowest buffer once the input's untilized copy is placed (in context too), unless ttnn's program
    cache already holds a program of the same hash (shape, dtype, memory, whether a tile row fits), run as
    it was made (mock n150: the second of two [1, 2, 171360] untilizes runs the first's 85-tile buffers with
    less L1 free)."""
    cores = case.device.grid[0] * case.device.grid[1]
    programs: dict = {}          # shared by this concat's untilizes, as ttnn's program cache is

    def sizing(b: Buffer, row: Buffer, k: int):
        tiles = (tile_bytes(b.dtype), tile_bytes(row.dtype))
        return functools.partial(untilize_range, b.shape, tiles, b.memory, cores, programs, k)
    return [CircularBuffer("ttnn.untilize_with_unpadding", 0, 1, after=row, sized_at=row, sized_by=sizing(b, row, k))
            for b, row in zip(ins, rows) if b.layout == "TILE" for k in range(4)]
