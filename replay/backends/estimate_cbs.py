"""Per-program circular buffers of ttnn calls: the bytes each program places at the bottom of every core's L1.

Imports neither torch nor ttnn. A ttnn program's static circular (dataflow) buffers sit at the bottom of L1
on the cores it runs on; tt-metal refuses to launch it when they reach the lowest L1 buffer allocated from
the top ("Statically allocated ... buffers ... clash with L1 buffers", cb_overflow). The estimate checks each
program's bytes against the L1 buffers alive when it runs (replay/backends/estimate.py). Sizes as ttnn
0.81.1's program factories make them, one small function per ttnn call family
(``@cb_rule("softmax")``), checked against the mock device's own "region ends at" for many shapes
(tests/replay/test_estimate_cbs_ttnn.py); a call without a rule counts 0 (not modelled).

- unary (relu, silu, ...): input and output, two tiles each.
- binary_ng (add, multiply, ...): a, b and the result, two tiles each, and a fourth two-tile buffer when b
  or a broadcasts inside a tile (a row, a column or a scalar tensor); a Python scalar operand takes one tile.
- softmax on the last dim (the attention kernel): the input and the exps a whole row wide, rounded up to
  the block (the fewest blocks of at most 4 tiles, padding-free on a tie), a double block of output,
  seven single tiles and, when the row is padded, a double block of pad mask; a row too wide for 90% of
  L1 takes the large kernel's fixed 260 tiles.
- transpose of the last two dims (tiled): two tiles in, two out; of the channel and height dims: two tiles
  and a face.
- mean and sum over given dims (tiled): five tiles.
- slice starting on tile boundaries (tiled, step 1): two tiles and 12 B.
- batch_norm with running statistics: 18 tiles.
- concat of a width the tiles pad, tiled (when it fits beside the L1 buffers): three times the input and
  output tiles of a 32-row band.
- matmul without a program config, on a 2-d grid of at least 2x2 cores: blocks sized from the free L1.
- pad of a row-major tensor (the multi-core default factory): 2 KiB of padded rows per barrier, up to 16
  barriers in half of L1 above the firmware, and one padded row of pad values.
- layer_norm with weight and bias (the streaming kernel): 62 bfloat16 tiles, 12 in the input's dtype, 4 per
  weight; they must fit in 95% of the L1 below the buffers (else ttnn refuses: cb_overflow).
- reshape that is not a view, tiled: one page of its page-mapping tensor (computed here, also what the
  estimate's reshape rule places in DRAM), one input tile and one output tile.
- untilize_with_unpadding of an interleaved tiled tensor by ttnn's multi-core block factory (the untilize
  of concat's row-major path): input and output blocks sized from the free L1 at the call
  (untilize_block_ranges), a program made earlier with the same hash run as made.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

from replay.backends.devices import BLOCK_FLOAT_DTYPES, ELEMENT_BYTES, L1_SMALL_BYTES, TILE_BYTES, TILE_HW, DeviceSpec
from replay.backends.footprint import allocate
from replay.backends.ttnn_calls import Held
from replay.backends.ttnn_calls import results as call_results
from replay.mapping.plan import Call, Ref
from replay.shapes import round_up

CbRule = Callable[..., int]    # (call, args, results, device, free_l1) -> bytes
CB_RULES: dict[str, CbRule] = {}


def cb_rule(*fns: str):
    """Register the circular-buffer bytes of these ttnn calls, e.g. ``@cb_rule("relu")``."""
    def wrap(rule: CbRule) -> CbRule:
        for fn in fns:
            CB_RULES[fn] = rule
        return rule
    return wrap


def tile_bytes(dtype: str) -> int:
    """Bytes of one tile of a ttnn dtype (bfloat16 for one the table does not know)."""
    return TILE_BYTES.get(dtype, TILE_BYTES["bfloat16"])


def _tensors(args: list) -> list[Held]:
    return [a for a in args if isinstance(a, Held)]


@cb_rule("relu", "silu", "gelu", "sigmoid", "tanh", "exp", "log", "neg", "abs", "sqrt", "rsqrt", "reciprocal",
         "hardswish", "hardsigmoid", "leaky_relu", "elu", "erf", "sin", "cos", "floor", "ceil", "sign", "square",
         "clamp", "relu6", "mish")
def unary(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """A tiled unary program: two tiles of input, two of output."""
    x = _tensors(args)
    if not x or not results or x[0].layout != "TILE":
        return 0
    return 2 * tile_bytes(x[0].dtype) + 2 * tile_bytes(results[0].dtype)


def _inner(shape: tuple) -> tuple:
    """The last two dims (a rank-1 tensor as one row)."""
    return tuple(shape[-2:]) if len(shape) >= 2 else (1,) + tuple(shape)


@cb_rule("add", "subtract", "multiply", "divide", "maximum", "minimum", "pow", "eq", "ne", "gt", "ge", "lt", "le",
         "logical_and", "logical_or")
def binary(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """binary_ng: a, b and the result, two tiles each in a's dtype; a fourth two-tile buffer when one
    operand broadcasts inside the tiles (its last two dims differ from the result's); one tile for a
    Python scalar b."""
    ts = _tensors(args)
    if not ts or not results or ts[0].layout != "TILE" or len(args) < 2:
        return 0
    tile = tile_bytes(ts[0].dtype)
    if not isinstance(args[1], Held):
        return 5 * tile
    out = _inner(results[0].shape)
    broadcast = any(_inner(t.shape) != out for t in ts[:2])
    return (8 if broadcast else 6) * tile


def softmax_block(wt: int) -> int:
    """The softmax kernel's block (tiles per step): the fewest blocks of at most 4 tiles; on a tie, the
    largest block that divides the row (measured on the mock device for rows of 1 to 480 tiles)."""
    if wt <= 4:
        return max(wt, 1)
    exact = next(b for b in (4, 3, 2, 1) if wt % b == 0)
    return exact if -(-wt // exact) == -(-wt // 4) else 4


SOFTMAX_LARGE_TILES = 260     # the large kernel's fixed buffers (80-tile input, exps and x, 20 more)


@cb_rule("softmax")
def softmax(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """Softmax over the last dim of a bfloat16 tiled tensor; other dims and dtypes are not modelled."""
    ts = _tensors(args)
    if not ts or ts[0].layout != "TILE" or ts[0].dtype != "bfloat16":
        return 0
    x = ts[0]
    dim = call.kwargs.get("dim", args[1] if len(args) > 1 else -1)
    if not isinstance(dim, int) or dim % len(x.shape) != len(x.shape) - 1:
        return 0
    width = x.shape[-1]
    wt = -(-width // TILE_HW)
    block = softmax_block(wt)
    tiles = 2 * round_up(wt, block) + 2 * block + 7 + (2 * block if width % TILE_HW else 0)
    if tiles * tile_bytes(x.dtype) > 0.9 * device.l1_core_bytes:
        tiles = SOFTMAX_LARGE_TILES
    return tiles * tile_bytes(x.dtype)


@cb_rule("transpose")
def transpose(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """A tiled transpose of the last two dims: two tiles in, two out; of the channel and height dims (HC):
    two tiles and one 16x16 face; other transposes and block floats not modelled."""
    ts = _tensors(args)
    if not ts or ts[0].layout != "TILE" or len(args) < 3 or not all(isinstance(d, int) for d in args[1:3]):
        return 0
    rank = len(ts[0].shape)
    dims = sorted(d % rank for d in args[1:3])
    if dims == [rank - 2, rank - 1]:
        return 4 * tile_bytes(ts[0].dtype)
    if rank >= 3 and dims == [rank - 3, rank - 2] and ts[0].dtype in ("bfloat16", "float32"):
        return 2 * tile_bytes(ts[0].dtype) + tile_bytes(ts[0].dtype) // 4
    return 0


SLICE_EXTRA_BYTES = 12        # beside its two tiles (measured: 4,108 B in bfloat16, 8,204 B in float32)


@cb_rule("slice")
def slice_(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.slice of a bfloat16 or float32 tiled tensor, step 1, starting on tile boundaries in the last two
    dims (the tile-copying factory): two tiles and 12 B; slices starting inside a tile (another factory)
    and strided ones are not modelled."""
    ts = _tensors(args)
    if not ts or not results or ts[0].layout != "TILE" or ts[0].dtype not in ("bfloat16", "float32") or len(args) < 4:
        return 0
    starts, steps = args[1], args[3]
    if not isinstance(starts, list) or not isinstance(steps, list) or any(st != 1 for st in steps):
        return 0
    if any(not isinstance(b, int) or b % TILE_HW for b in starts[-2:]):
        return 0
    return 2 * tile_bytes(ts[0].dtype) + SLICE_EXTRA_BYTES


REDUCE_TILES = 5


@cb_rule("mean", "sum")
def reduce(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.mean / ttnn.sum of a bfloat16 or float32 tiled tensor over given dims (any, with or without
    keepdim): five tiles of its dtype; over every dim (no ``dim``) not modelled."""
    ts = _tensors(args)
    if not ts or ts[0].layout != "TILE" or ts[0].dtype not in ("bfloat16", "float32") or "dim" not in call.kwargs:
        return 0
    return REDUCE_TILES * tile_bytes(ts[0].dtype)


BATCH_NORM_TILES = 18


@cb_rule("batch_norm")
def batch_norm(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.batch_norm with running statistics (one program): 18 tiles; training runs several (not modelled)."""
    ts = _tensors(args)
    if not ts or call.kwargs.get("training") or ts[0].layout != "TILE":
        return 0
    return BATCH_NORM_TILES * tile_bytes(ts[0].dtype)


PAD_READ_BYTES = 2048         # pad's reader and writer move this much per barrier
PAD_MAX_BARRIERS = 16


@cb_rule("pad")
def pad(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.pad of an interleaved row-major tensor: padded rows staged per barrier (as many rows as 2 KiB
    takes, at least one), up to 16 barriers within half of L1 above the firmware, and one padded row of
    the pad value; a padded row needing realignment (front padding, or not DRAM-aligned) takes another."""
    ts = _tensors(args)
    if not ts or not results or ts[0].layout != "ROW_MAJOR" or ts[0].dtype not in ELEMENT_BYTES:
        return 0
    row = results[0].shape[-1] * ELEMENT_BYTES[ts[0].dtype]
    row_l1 = round_up(row, device.l1_alignment)
    row_dram = round_up(row, device.dram_alignment)
    rows = max(-(-PAD_READ_BYTES // row_l1), 1)
    budget = device.l1_core_bytes // 2 - (device.l1_core_bytes - device.l1_bank_bytes)
    barriers = min(max(budget // (rows * row_l1), 1), PAD_MAX_BARRIERS)
    front = bool(args[1][-1][0]) if isinstance(args[1], list) and args[1] else False
    realign = row_dram if front or row_l1 % device.dram_alignment else 0
    return barriers * rows * row_l1 + row_dram + realign


LAYER_NORM_TILES = (62, 12, 4)   # streaming kernel: bfloat16 tiles; tiles in the input's dtype; per weight
LAYER_NORM_SPAN = 0.95           # the share of the L1 below the buffers its circular buffers may take


@cb_rule("layer_norm")
def layer_norm(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.layer_norm of an interleaved tiled tensor with weight and bias (its streaming kernel, for every
    width and row count measured on the mock n150 and p150): 62 bfloat16 tiles, 12 in the input's dtype
    and 4 per weight in theirs (bfloat16: 167,936 B); ttnn refuses the program ("LayerNorm streaming
    circular buffers require ...", cb_overflow) unless they fit in 95% of the L1 below the lowest buffer
    once the output is placed, so the bytes it needs there are theirs / 0.95. Other dtypes (block floats)
    and a call without weight or bias are not modelled."""
    ts = _tensors(args)
    weights = [call.kwargs.get(k) for k in ("weight", "bias")]
    if not ts or ts[0].layout != "TILE" or not all(isinstance(w, Held) for w in weights):
        return 0
    if any(t.dtype not in ("bfloat16", "float32") for t in ts[:1] + weights):
        return 0
    plain, own, per_weight = LAYER_NORM_TILES
    need = plain * tile_bytes("bfloat16") + own * tile_bytes(ts[0].dtype) + \
        sum(per_weight * tile_bytes(w.dtype) for w in weights)
    return math.ceil(need / LAYER_NORM_SPAN)


def tiled_unaligned_concat_bytes(ins: list[Held], out: Held, dim: int) -> int | None:
    """Per-core circular buffers of ttnn's tiled concat of a width its tiles pad (concat_tiled_unaligned
    _program_factory: each 32-row band untilized, assembled and retilized: the inputs' band tiles and the
    output's, three times each), or None when that factory does not apply (not a last-dim concat of two
    or more tiled bfloat16/float32 tensors, one of them padded). ttnn takes it only when these and an L1
    output still fit in the free L1; otherwise it concatenates through row major."""
    rank = len(out.shape)
    if len(ins) < 2 or len(ins) > 32 or rank < 2 or dim != rank - 1 or ins[0].dtype not in ("bfloat16", "float32"):
        return None
    if any(t.layout != "TILE" for t in ins) or not any(t.shape[-1] % TILE_HW for t in ins):
        return None
    in_tiles = sum(-(-t.shape[-1] // TILE_HW) for t in ins)
    out_tiles = -(-sum(t.shape[-1] for t in ins) // TILE_HW)
    return 3 * (in_tiles + out_tiles) * tile_bytes(ins[0].dtype)


UNTILIZE_ROW_BLOCK_TILES = 32     # the block factory is a candidate for rows wider than this when a row fits


def _closest_square(per_core: int, w: int, h: int, cores: int) -> int:
    """The block side (tiles) ttnn's split gives a w x h tile grid on ``cores`` (closest_square_larger_than_b):
    the smallest side from sqrt(per_core) up whose blocks number fewer than the cores."""
    side = math.isqrt(per_core)
    if side * side == per_core and -(-w // side) * -(-h // side) < cores:
        return side
    return next((c for c in range(side + 1, w * h + 1) if -(-w // c) * -(-h // c) < cores), 1)


def _sub_blocks(w: int, h: int, cores: int, limit: int) -> tuple[int, int] | None:
    """(block, sub-block) side when the block exceeds ``limit`` tiles (compute_ncores_wh_sb): the limit
    itself when its blocks number fewer than the cores, else the block n x sub-block (sub-block below the
    limit, row cliff below the limit) with the most blocks on at most ``cores``, fewest n on a tie; None
    where ttnn finds none (it refuses the call)."""
    if limit < 1:
        return None
    if -(-w // limit) * -(-h // limit) < cores:
        return limit, limit
    best = None
    for sub in range(limit - 1, 0, -1):
        for n in range(2, -(-w // sub) + 1):
            block = n * sub
            blocks = -(-w // block) * -(-h // block)
            if blocks <= cores and w % block < limit and (best is None or blocks > best[0] or
                                                           (blocks == best[0] and n < best[1])):
                best = (blocks, n, block, sub)
    return (best[2], best[3]) if best else None


def untilize_block_ranges(shape: tuple, tile_in: int, tile_out: int, cores: int, free_l1: int) -> list[tuple[str, int]]:
    """Per-core circular-buffer bytes of each core range of ttnn's multi-core block untilize
    (UntilizeWithUnpaddingMultiCoreBlockInterleavedProgramFactory, split_blocks_for_tilize_wh) of a tiled
    tensor of ``shape``, in core order (ttnn names the first that clashes): the last two dims cut into
    square blocks of tiles over the cores, each block's input and output buffer as many tiles as a
    (sub-)block row; the block limited to what ``free_l1`` (get_max_l1_space: the L1 below the lowest
    buffer once the output is allocated) holds of an input plus an output tile. [] where ttnn refuses
    the split."""
    w, h = -(-shape[-1] // TILE_HW), -(-(shape[-2] if len(shape) > 1 else 1) // TILE_HW)
    block = _closest_square(-(-(w * h) // cores), w, h, cores)
    sub, limit = block, free_l1 // (tile_in + tile_out)
    if block > limit:
        split = _sub_blocks(w, h, cores, limit)
        if split is None:
            return []
        block, sub = split
    full_w, full_h, cliff_w = w // block, h // block, w % block
    row = full_w + bool(cliff_w)           # cores per block row; each range keyed by its first core
    ranges = [(0, "full cores", sub, full_w and full_h), (full_w, "row cliff cores", cliff_w, cliff_w and full_h),
              (full_h * row, "column cliff cores", sub, full_w and h % block),
              (full_h * row + full_w, "corner cliff core", cliff_w, cliff_w and h % block)]
    return [(name, tiles * (tile_in + tile_out)) for _, name, tiles, present in sorted(ranges) if present]


def untilize_enough_space(shape: tuple, tile_in: int, tile_out: int, l1_below: int) -> bool:
    """ttnn.untilize_with_unpadding's enough_space_height: a tile row's input and output buffers fit the
    ``l1_below`` per core left below the lowest L1 buffer with its output in place (part of its program's
    hash: mock n150, a second untilize of [1, 4096, 1088] with no room for a row makes a new program)."""
    return l1_below > (tile_in + tile_out) * -(-shape[-1] // TILE_HW)


def untilize_takes_block(shape: tuple, tile_in: int, tile_out: int, cores: int, l1_below: int) -> bool:
    """ttnn.untilize_with_unpadding (interleaved, multi-core) takes the block factory: when a tile row does
    not fit (untilize_enough_space), or when a row is wider than 32 tiles (and than the tensor is high, or
    it is more than 32 high) and the block split uses more cores than the split by tile rows; else its row
    factory (a tile row in and out on each core: fits where it was made)."""
    if not untilize_enough_space(shape, tile_in, tile_out, l1_below):
        return True
    w, h = -(-shape[-1] // TILE_HW), -(-(shape[-2] if len(shape) > 1 else 1) // TILE_HW)
    if w <= UNTILIZE_ROW_BLOCK_TILES or not (h > UNTILIZE_ROW_BLOCK_TILES or w > h):
        return False
    rows = math.prod(shape[:-2]) * h if len(shape) > 1 else 1
    per_core = -(-rows // cores)
    block = _closest_square(-(-(w * h) // cores), w, h, cores)
    return -(-rows // per_core) < -(-w // block) * -(-h // block)


def untilize_range(shape: tuple, tiles: tuple[int, int], memory: str, cores: int, programs: dict, k: int,
                   l1_below: int) -> tuple[str, int]:
    """(program, per-core bytes) of the ``k``-th core range of ttnn.untilize_with_unpadding's block program
    (untilize_block_ranges) of a tensor of ``shape`` with (input, output) tile bytes ``tiles``, called with
    ``l1_below`` per core below the lowest L1 buffer once its output is in place; ``programs``: the ranges
    of the programs made so far by their hash (ttnn's program cache: one made earlier is run as made).
    0 bytes where ttnn takes its row factory or the program has fewer ranges."""
    tile_in, tile_out = tiles
    key = (tuple(shape), tiles, memory, untilize_enough_space(shape, tile_in, tile_out, l1_below))
    if key not in programs:
        programs[key] = untilize_block_ranges(shape, tile_in, tile_out, cores, l1_below) \
            if untilize_takes_block(shape, tile_in, tile_out, cores, l1_below) else []
    ranges = programs[key]
    if k >= len(ranges):
        return f"ttnn.untilize_with_unpadding (block factory, range {k})", 0
    return f"ttnn.untilize_with_unpadding (block factory, {ranges[k][0]})", ranges[k][1]


def program_bytes(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int | None = None) -> int:
    """Per-core circular-buffer bytes of one ttnn call's program (0: not modelled); ``free_l1``: the L1 per
    core below the lowest L1 buffer when the call is made (None: an empty L1), which matmul sizes by."""
    rule = CB_RULES.get(call.fn)
    return rule(call, args, results, device, device.l1_bank_bytes if free_l1 is None else free_l1) if rule else 0


MATMUL_FACTORS = (16, 8, 4, 2)


def _matmul_estimate(m: int, n: int, k: int, tile_a: int, tile_b: int, tile_out: int) -> int:
    # ttnn's get_estimated_size_of_cbs: in0 and in1 blocks double-buffered, the output and its intermediate
    return m * k * 2 * tile_a + n * k * 2 * tile_b + m * n * tile_out + m * n * TILE_BYTES["bfloat16"]


@cb_rule("matmul")
def matmul(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.matmul of two interleaved tiled tensors without a program config (create_simple_matmul
    _program_config): per_core_M = per_core_N = the largest of 16/8/4/2 tiles whose estimated buffers fit
    the free L1 (else 1); with the output blocks on a 2-d grid of at least 2x2 cores, the 2-d multicast
    program: in0 and in1 blocks of in0_block_w (2, or 1 when K's tiles are odd) double-buffered and the
    output block. Narrow (1-d multicast) and single-core shapes are not modelled (0)."""
    ts = _tensors(args)
    if len(ts) < 2 or any(t.layout != "TILE" or len(t.shape) < 2 for t in ts[:2]) or not results:
        return 0
    a, b = ts[0], ts[1]
    mt, kt, nt = (-(-d // TILE_HW) for d in (a.shape[-2], a.shape[-1], b.shape[-1]))
    ta, tb, to = tile_bytes(a.dtype), tile_bytes(b.dtype), tile_bytes(results[0].dtype)
    f = next((f for f in MATMUL_FACTORS if _matmul_estimate(f, f, 2, ta, tb, to) < free_l1), 1)
    by, bx = -(-mt // f), -(-nt // f)
    k = 1 if (by > 1 or bx > 1) and kt % 2 else 2
    ratio = max(mt, nt) // min(mt, nt)
    if ratio > 8 or by * bx > device.l1_banks or min(by, bx) < 2 or by > device.grid[1] or bx > device.grid[0]:
        return 0
    return f * k * 2 * ta + f * k * 2 * tb + f * f * to


def reshape_is_view(src: tuple, dst: tuple, layout: str) -> bool:
    """Whether ttnn.reshape is a view (no program, no allocation): the last dim stays and the tile rows
    need no reshuffling."""
    s, d = _as2(src), _as2(dst)
    if s[-1] != d[-1]:
        return False
    return layout == "ROW_MAJOR" or s[-2] == d[-2] or (s[-2] % TILE_HW == 0 and d[-2] % TILE_HW == 0)


def _as2(shape: tuple) -> tuple:
    return tuple(shape) if len(shape) >= 2 else (1,) + tuple(shape) if shape else (1, 1)


def as3(shape: tuple) -> tuple[int, int, int]:
    """The shape as rank 3: the leading dims multiplied into one, a rank-1 shape as one row."""
    s = _as2(shape)
    lead = 1
    for d in s[:-2]:
        lead *= d
    return lead, s[-2], s[-1]


# reshape's page-mapping tensor (ttnn reshape_view/device/reshape_tiled_program_factory.cpp): one
# uint32 row per output tile of 4 words per segment (input page, input offset, output offset, count),
# as wide as the widest output tile needs: (input tiles it reads) x (most segments from one of them),
# plus that count mod 16. Computed exactly per output tile; beyond MAPPING_PAGES_CHECKED output tiles
# a spread sample of them (matched all 226 non-view reshapes of the committed traces on the mock device).
MAPPING_PAGES_CHECKED = 128


def _mapping_tile_width(src: tuple, dst: tuple, page: int) -> int:
    """Segment slots output tile `page` needs in the mapping tensor (shapes as rank-3)."""
    _, h1, w1 = src
    _, h2, w2 = dst
    wt1 = -(-w1 // TILE_HW)
    ct1 = wt1 * -(-h1 // TILE_HW)
    wt2 = -(-w2 // TILE_HW)
    c, r = divmod(page, wt2 * -(-h2 // TILE_HW))
    h0, w0 = r // wt2 * TILE_HW, r % wt2 * TILE_HW
    hs, ws = min(h2 - h0, TILE_HW), min(w2 - w0, TILE_HW)
    plane = h1 * w1
    segments: dict[int, int] = {}
    prev_page, prev_in, prev_out = -1, -2, -2
    for dh in range(hs):
        row = c * h2 * w2 + (h0 + dh) * w2 + w0
        out_base = (dh >> 4) * 512 + (dh & 15) * 16
        dw = 0
        while dw < ws:
            # a run of elements contiguous in both tiles: up to a face row's end on either side or
            # the end of an input row
            ci, rem = divmod(row + dw, plane)
            hi, wi = divmod(rem, w1)
            n = min(16 - (dw & 15), ws - dw, 16 - (wi & 15), w1 - wi)
            page_in = ci * ct1 + (hi >> 5) * wt1 + (wi >> 5)
            off_in = (((hi & 31) >> 4) * 2 + ((wi & 31) >> 4)) * 256 + (hi & 15) * 16 + (wi & 15)
            off_out = out_base + (dw >> 4) * 256 + (dw & 15)
            if not (page_in == prev_page and off_in == prev_in + 1 and off_out == prev_out + 1):
                segments[page_in] = segments.get(page_in, 0) + 1
            prev_page, prev_in, prev_out = page_in, off_in + n - 1, off_out + n - 1
            dw += n
    return len(segments) * max(segments.values())


@functools.lru_cache(maxsize=4096)
def mapping_page_bytes(src: tuple, dst: tuple) -> int:
    """Bytes of one page (row) of reshape's page-mapping tensor, before alignment."""
    src, dst = as3(src), as3(dst)
    pages = dst[0] * -(-dst[1] // TILE_HW) * -(-dst[2] // TILE_HW)
    if pages == 0:             # an empty tensor: ttnn reshapes it without a mapping (checked on the mock n150)
        return 0
    if pages <= MAPPING_PAGES_CHECKED:
        check = range(pages)
    else:
        half = MAPPING_PAGES_CHECKED // 2
        check = sorted(set(range(half)) | {pages * i // half for i in range(half)} | {pages - 1})
    # a tile whose input position is a whole number of input planes further on reads the same
    # pattern from tiles that many planes further on: same width, counted once
    _, h1, w1 = src
    c2, h2, w2 = dst
    wt2 = -(-w2 // TILE_HW)
    per_plane = wt2 * -(-h2 // TILE_HW)
    widths: dict[tuple, int] = {}
    for p in check:
        c, r = divmod(p, per_plane)
        h0, w0 = r // wt2 * TILE_HW, r % wt2 * TILE_HW
        key = ((c * h2 * w2 + h0 * w2 + w0) % (h1 * w1), min(h2 - h0, TILE_HW), min(w2 - w0, TILE_HW))
        if key not in widths:
            widths[key] = _mapping_tile_width(src, dst, p)
    widest = max(widths.values())
    widest += widest % 16      # tt-metal's "alignment" of the count
    return 16 * widest

@cb_rule("reshape")
def reshape(call: Call, args: list, results: list, device: DeviceSpec, free_l1: int = 0) -> int:
    """ttnn.reshape of a tiled tensor that is not a view (reshape_tiled_program_factory): one page of
    its page-mapping tensor, one input tile and one output tile, on every core of the grid; a view runs
    no program; row-major and block-float reshapes are not modelled."""
    ts = _tensors(args)
    if not ts or not results or ts[0].layout != "TILE" or ts[0].dtype in BLOCK_FLOAT_DTYPES:
        return 0
    return reshape_tiled_bytes(ts[0], results[0])


def reshape_tiled_bytes(src: Held, out: Held) -> int:
    """Per-core circular-buffer bytes of a tiled ttnn.reshape from ``src`` to ``out`` (0: a view)."""
    if reshape_is_view(src.shape, out.shape, src.layout):
        return 0
    return mapping_page_bytes(tuple(src.shape), tuple(out.shape)) + tile_bytes(src.dtype) + tile_bytes(out.dtype)


def _resolve(value, env: dict):
    if isinstance(value, Ref):
        return env.get(str(value), value)
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return value


def _resolved(call: Call, env: dict) -> Call:
    """The call with its tensor arguments and keyword arguments (a layer_norm's weight) looked up in ``env``."""
    return dataclasses.replace(call, args=[_resolve(a, env) for a in call.args],
                               kwargs={k: _resolve(v, env) for k, v in call.kwargs.items()})


def call_bytes(call: Call, env: dict[str, Held], results: list[Held], device: DeviceSpec) -> int:
    """Per-core circular-buffer bytes of ``call`` with its tensor arguments looked up in ``env``."""
    resolved = _resolved(call, env)
    return program_bytes(resolved, resolved.args, results, device)


def port_programs(calls: list[Call], inputs: dict[str, Held], memory: str, device: DeviceSpec,
                  outputs: list[Held]) -> list[int]:
    """Each call's per-core circular-buffer bytes, in call order (0 where not modelled); a single call
    whose results replay.backends.ttnn_calls cannot follow returns ``outputs``; [] for several."""
    walked = call_results(calls, inputs, memory)
    if walked is None and len(calls) == 1:
        walked = [outputs]
    if walked is None:
        return []
    env, out = dict(inputs), []
    held = [t for t in inputs.values() if t.memory == "L1"]
    for call, results in zip(calls, walked):
        resolved = _resolved(call, env)
        args = resolved.args
        used = sum(allocate(t.shape, t.dtype, t.layout, "L1", device, L1_SMALL_BYTES).per_bank_bytes for t in held)
        free = device.banks("L1", L1_SMALL_BYTES)[1] - used if held else None
        out.append(program_bytes(resolved, args, results, device, free))
        first = next((a for a in args if isinstance(a, Held)), None)
        env[call.out] = results[0] if results else first
        held += [t for t in results if t.memory == "L1"]
    return out
