"""ttnn's pools (max_pool2d, avg_pool2d, the adaptive pools) on an interleaved L1 input, as ttnn 0.81.1 runs them.

Imports neither torch nor ttnn. With no shard layout given, a pool (tt-metal pool_utils.cpp,
determine_pool_config_for_auto_shard) estimates the per-core L1 of height, width and block sharding (its
program's circular buffers plus the sharded output, calculate_L1_usage) and takes the smallest: height on a
tie, block when smaller still. It copies the input into that sharding (kept to the end: the input is in L1),
builds the halo (the padded-input rows each core's windows read), allocates the row-major sharded output
(max_pool2d with indices: and the indices, uint16 up to 65,535 input pixels, else uint32), runs the pool
program, and copies each result to the interleaved memory the call asks for, freeing its sharded source.
An adaptive pool runs as the pool of the uniform kernel, stride and padding ttnn derives from the sizes.

The same sharding rules as conv2d's (estimate_conv.py: divisor_with_padding, window_span_rows), except
that a pool shards output rows, not tiles, and splits channels only by exact divisors. Checked buffer by
buffer against the mock n150's and p150's events of the 140 traced pools (tests/replay/test_estimate_pool_ttnn.py).
Not modelled: bfloat8_b or row-major inputs, pools on a DRAM input (ttnn frees the copy after the halo, and
slices an input whose shards do not fit).
"""
from __future__ import annotations

from dataclasses import dataclass

from replay.backends.devices import TILE_HW, DeviceSpec
from replay.backends.estimate_conv import divisor_with_padding, window_span_rows
from replay.backends.estimate_plan import Buffer, CircularBuffer, Plan, plan_of_events
from replay.mapping.plan import pair
from replay.shapes import round_up

TILE_ELEMS = TILE_HW * TILE_HW
FACE_WIDTH = 16               # a row-major pool output is written 16 channels (one face) per page
BUFFER_ALIGN = 32             # sliding_window::align_buffer


@dataclass(frozen=True, kw_only=True)
class PoolShape:
    """One 2-d pool as ttnn sees it: channels-last bfloat16 input, padding (top, bottom, left, right)."""
    kind: str                 # "max" | "avg"
    batch: int
    channels: int
    height: int
    width: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: bool = False
    return_indices: bool = False

    def _out(self, n: int, pad: int, k: int, s: int, d: int) -> int:
        span = n + pad - d * (k - 1) - 1
        out = (span + (s - 1 if self.ceil_mode else 0)) // s + 1
        # torch and ttnn drop a last window that would start in the bottom/right padding
        return out - 1 if self.ceil_mode and (out - 1) * s >= n + pad - pad // 2 else out

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width."""
        pt, pb, pl, pr = self.padding
        return (self._out(self.height, pt + pb, self.kernel[0], self.stride[0], self.dilation[0]),
                self._out(self.width, pl + pr, self.kernel[1], self.stride[1], self.dilation[1]))

    @property
    def ceil_pad(self) -> tuple[int, int]:
        """Extra bottom and right padding the last window of a ceil-mode pool reads."""
        pt, pb, pl, pr = self.padding
        (oh, ow), (kh, kw) = self.out_hw, self.kernel
        need_h = (oh - 1) * self.stride[0] + self.dilation[0] * (kh - 1) + 1
        need_w = (ow - 1) * self.stride[1] + self.dilation[1] * (kw - 1) + 1
        return max(0, need_h - (self.height + pt + pb)), max(0, need_w - (self.width + pl + pr))

    @property
    def padded_hw(self) -> tuple[int, int]:
        """The padded input the windows move over (ceil-mode padding included)."""
        pt, pb, pl, pr = self.padding
        ch, cw = self.ceil_pad
        return self.height + pt + pb + ch, self.width + pl + pr + cw

    @property
    def index_bytes(self) -> int:
        """Bytes of one max_pool2d index: uint16 while an image's pixels fit in it (get_index_data_type)."""
        return 2 if self.height * self.width <= 0xFFFF else 4


def adaptive_params(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[tuple, tuple, tuple]:
    """(kernel, stride, (top, bottom, left, right) padding) of the uniform pool ttnn runs for an adaptive
    pool (calculate_adaptive_pool_params): torch's per-output windows, borders padded up to the middle ones."""
    kernels, strides, pads = [], [], []
    for n, o in zip(in_hw, out_hw):
        ks = [((i + 1) * n + o - 1) // o - i * n // o for i in range(o)]
        kernels.append(ks)
        strides.append(n // o)
        pads.append((0, 0))
    base_k = tuple(-(-n // o) for n, o in zip(in_hw, out_hw))
    if all(len(set(ks)) == 1 for ks in kernels):
        return base_k, tuple(strides), (0, 0, 0, 0)
    kernel, stride, pad = [], [], []
    for ks, s, b in zip(kernels, strides, base_k):
        mid = ks[1] if len(ks) >= 3 else b
        kernel.append(mid)
        before = mid - ks[0] if len(ks) >= 3 and ks[0] < mid else 0
        after = mid - ks[-1] if len(ks) >= 3 and ks[-1] < mid else 0
        stride.append(mid - 1 if before or after else s)
        pad += [before, after]
    out = [(n + pad[2 * i] + pad[2 * i + 1] - kernel[i]) // stride[i] + 1 for i, n in enumerate(in_hw)]
    if tuple(out) != tuple(out_hw):
        return base_k, tuple(strides), (0, 0, 0, 0)
    return tuple(kernel), tuple(stride), tuple(pad)


def _two(kw: dict, name: str, default: int) -> tuple[int, int]:
    """A call's (height, width) argument: an int or a 1-element list spread to both (replay.mapping's pair)."""
    v = kw.get(name)
    return tuple(pair(default if v is None or v == [] else v))


def pool_shape_of_call(fn: str, kw: dict) -> PoolShape | None:
    """The pool a port's ttnn call runs (ttnn.max_pool2d, avg_pool2d, adaptive_*_pool2d), or None."""
    if fn not in ("max_pool2d", "avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d"):
        return None
    n, h, w, c = (int(kw[k]) for k in ("batch_size", "input_h", "input_w", "channels"))
    kind = "max" if "max" in fn else "avg"
    if fn.startswith("adaptive"):
        kernel, stride, pad = adaptive_params((h, w), _two(kw, "output_size", 1))
        return PoolShape(kind=kind, batch=n, channels=c, height=h, width=w, kernel=kernel, stride=stride,
                         padding=pad, count_include_pad=False)
    kernel = _two(kw, "kernel_size", 1)
    ph, pw = _two(kw, "padding", 0)
    return PoolShape(kind=kind, batch=n, channels=c, height=h, width=w, kernel=kernel,
                     stride=_two(kw, "stride", 0) if kw.get("stride") else kernel, padding=(ph, ph, pw, pw),
                     dilation=_two(kw, "dilation", 1), ceil_mode=bool(kw.get("ceil_mode", False)),
                     count_include_pad=bool(kw.get("count_include_pad", True)),
                     divisor_override=kw.get("divisor_override") is not None,
                     return_indices=bool(kw.get("return_indices", False)))


@dataclass(frozen=True, kw_only=True)
class PoolSharding:
    """One sharding of a pool and the per-core bytes ttnn allocates for it."""
    layout: str               # "height" | "width" | "block"
    nhw_cores: int
    channel_cores: int
    copy_cores: int           # the cores the input copy has rows on
    copy_rows: int            # rows of the (tiled) input copy per core
    channels: int             # input channels per core (the copy and the halo)
    halo_rows: int
    output_rows: int
    output_channels: int      # output channels per core (half-tile multiples)
    circular_bytes: int       # the pool program's static (not buffer-backed) circular buffers per core

    @property
    def cores(self) -> int:
        """Cores of the sharding (halo and outputs)."""
        return self.nhw_cores * self.channel_cores


def largest_divisor(num: int, start: int) -> int:
    """The largest divisor of num that is <= start (find_closest_largest_divisor)."""
    return next(d for d in range(min(start, num), 0, -1) if num % d == 0)


def _cores(layout: str, pool: PoolShape, grid: tuple[int, int]) -> tuple[int, int]:
    """(cores along output rows, along channels): rows split with padding under a core's share, channel
    tiles by an exact divisor (determine_parallel_config with row shards; block: rows along the grid's y)."""
    oh, ow = pool.out_hw
    rows, c_tiles = pool.batch * oh * ow, -(-pool.channels // TILE_HW)
    if layout == "height":
        return divisor_with_padding(rows, grid[0] * grid[1]), 1
    if layout == "width":
        return 1, largest_divisor(c_tiles, grid[0] * grid[1])
    return divisor_with_padding(rows, grid[1]), largest_divisor(c_tiles, grid[0])


def program_circular_buffers(pool: PoolShape, channel_cores: int) -> list[tuple[str, int, int]]:
    """The pool program's static circular buffers per core, (what, entry bytes, entries) (calculate_L1_usage
    without the output's): reduction scalars, the clear value, two double-buffered input blocks (split
    reader), max_pool2d's index tiles and one data tile."""
    per_core = pool.channels / channel_cores
    in_tiles = -(-per_core // TILE_HW)
    partial = 0 < pool.channels // channel_cores % TILE_HW <= FACE_WIDTH
    window = pool.kernel[0] * pool.kernel[1]
    large = window > (FACE_WIDTH if partial else TILE_HW)
    avg, rows = pool.kind == "avg", window if window <= FACE_WIDTH else TILE_HW
    most_tiles = 1 if pool.return_indices else 4 if avg and large else 8
    pt, pb, pl, pr = pool.padding
    one_scalar = (not avg or pool.divisor_override or ((not pool.ceil_mode or pool.ceil_pad == (0, 0))
                                                      and (pool.count_include_pad or pt + pb + pl + pr == 0)))
    if pool.return_indices or in_tiles > most_tiles:
        block = most_tiles * TILE_HW * (TILE_HW if pool.return_indices else rows)
    else:
        block = int(in_tiles) * TILE_HW * rows
    tile = TILE_ELEMS * 2                                      # one bfloat16 tile
    cbs = [("scalars", tile, 2 * (1 if one_scalar else 2)), ("clear value", tile, 1),
           ("input blocks", 2 * round_up(block, TILE_ELEMS), 2 * 2)]
    if pool.return_indices:
        cbs += [("index tiles", TILE_ELEMS * pool.index_bytes, 6 + 2 * large), ("index data tile", tile, 1)]
    return cbs


def _circular_bytes(pool: PoolShape, channel_cores: int) -> int:
    return sum(page * n for _, page, n in program_circular_buffers(pool, channel_cores))


def _l1_usage(pool: PoolShape, layout: str, grid: tuple[int, int]) -> int:
    """What the auto-shard compares: circular buffers + the output's (and indices') shard per core."""
    nhw_cores, c_cores = _cores(layout, pool, grid)
    oh, ow = pool.out_hw
    rows = pool.batch * oh * ow
    shard_h = rows if layout == "width" else round_up(rows, nhw_cores * TILE_HW) // nhw_cores
    shard_w = round_up(pool.channels, c_cores * TILE_HW) // c_cores
    pages = shard_h * -(-(pool.channels / c_cores) // FACE_WIDTH)
    out = round_up(pages * min(FACE_WIDTH, shard_w) * 2, BUFFER_ALIGN)
    idx = round_up(pages * min(FACE_WIDTH, shard_w) * pool.index_bytes, BUFFER_ALIGN) if pool.return_indices else 0
    return _circular_bytes(pool, c_cores) + out + idx


def sharding(layout: str, pool: PoolShape, grid: tuple[int, int]) -> PoolSharding:
    """One sharding of a pool on a compute grid, with its per-core buffers."""
    nhw_cores, c_cores = _cores(layout, pool, grid)
    oh, ow = pool.out_hw
    in_rows = round_up(pool.batch * pool.height * pool.width, TILE_HW)    # the tiled input's padded rows
    copy_rows = in_rows if layout == "width" else round_up(in_rows, nhw_cores * TILE_HW) // nhw_cores
    out_rows = round_up(pool.batch * oh * ow, nhw_cores) // nhw_cores
    halo = window_span_rows(pool.batch, pool.padded_hw, (oh, ow), pool.kernel, pool.stride, pool.dilation,
                            out_rows, nhw_cores)
    return PoolSharding(layout=layout, nhw_cores=nhw_cores, channel_cores=c_cores,
                        copy_cores=-(-in_rows // copy_rows) * c_cores, copy_rows=copy_rows,
                        channels=round_up(pool.channels, c_cores * TILE_HW) // c_cores, halo_rows=halo,
                        output_rows=out_rows, output_channels=round_up(pool.channels, c_cores * FACE_WIDTH) // c_cores,
                        circular_bytes=_circular_bytes(pool, c_cores))


def auto_shard(pool: PoolShape, device: DeviceSpec) -> PoolSharding:
    """The sharding ttnn's pool picks: the smallest L1 usage, height on a tie, then width, then block."""
    height, width, block = (_l1_usage(pool, lay, device.grid) for lay in ("height", "width", "block"))
    if height > width:
        layout = "block" if width > block else "width"
    else:
        layout = "block" if height > block else "height"
    return sharding(layout, pool, device.grid)


def pool_plan(pool: PoolShape, outputs: list[Buffer], device: DeviceSpec) -> tuple[Plan, list[Buffer]]:
    """The pool's buffers in ttnn's order (input copy, halo, sharded output and indices, each copied to an
    interleaved L1 result that replaces it) and the results as ttnn returns them (row major, in L1)."""
    s = auto_shard(pool, device)
    rows = pool.batch * pool.out_hw[0] * pool.out_hw[1]
    copy = Buffer((s.copy_cores, s.copy_rows, s.channels), "bfloat16", "TILE", "L1",
                  f"{pool.kind} pool: input copy, {s.layout} sharded", cores=s.copy_cores)
    halo = Buffer((s.cores * s.halo_rows, s.channels), "bfloat16", "ROW_MAJOR", "L1",
                  f"{pool.kind} pool: halo", cores=s.cores)
    dtypes = ["bfloat16"] + (["uint16" if pool.index_bytes == 2 else "uint32"] if pool.return_indices else [])
    events, results = [("alloc", copy), ("alloc", halo)], []
    sharded = [Buffer((s.cores * s.output_rows, s.output_channels), dt, "ROW_MAJOR", "L1",
                      f"{pool.kind} pool: {what}, {s.layout} sharded", cores=s.cores)
               for dt, what in zip(dtypes, ("output", "indices"))]
    events += [("alloc", b) for b in sharded]
    for b, out in zip(sharded, outputs):
        result = Buffer((1, 1, rows, pool.channels), b.dtype, "ROW_MAJOR", "L1", out.role)
        results.append(result)
        events += [("alloc", result), ("free", b)]
    # the pool program runs once its shards are allocated, before the interleaved copies
    program = f"ttnn.{pool.kind}_pool2d"
    cbs = [CircularBuffer(program, page, n, after=sharded[-1])
           for _, page, n in program_circular_buffers(pool, s.channel_cores)]
    plan = plan_of_events(events, circular_buffers=cbs, ttnn_call=program,
                          reason=f"{pool.kind} pool {s.layout} sharded on {s.cores} cores in L1")
    return plan, results
