"""ttnn.conv2d's auto-sharded path in L1, as ttnn 0.81.1 runs it on an interleaved L1 input.

Imports neither torch nor ttnn. With no shard layout given, ttnn's conv2d (conv2d_utils.cpp,
determine_conv_config_for_auto_shard) estimates the per-core L1 of height, block and width sharding
(the program's circular buffers + the sharded output + the halo output) and takes the smallest: height
unless block is smaller and spans at least a grid row of cores, width if smaller still. It then copies
the input into that sharding, builds the halo (the input rows each core's windows read, padding
included), frees the sharded copy (conv_transpose2d keeps it), allocates the sharded output and runs the conv program, whose static
circular buffers must fit in each core's L1 below the buffers alive then.

Checked buffer by buffer against the mock n150's buffer and circular-buffer events of 118 traced
convolutions (height, block and width sharded, grouped, depthwise and transposed included): the
sharding, its core counts and every per-core size agree on all of them. Not modelled: 1-d depthwise
convs (ttnn height-shards those), grouped, dilated or output-padded transposed convs.
"""
from __future__ import annotations

from dataclasses import dataclass

from replay.backends.devices import TILE_HW, DeviceSpec
from replay.shapes import round_up

TILE_BF16 = 2048              # bytes of one bfloat16 tile
L1_SCRATCHPAD = 64            # conv2d's l1 scratchpad circular buffer


@dataclass(frozen=True, kw_only=True)
class ConvShape:
    """One conv2d as ttnn sees it (channels-last input, bfloat16)."""
    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    bias: bool
    # the height and width of the tensor copied into the sharding, when not (height, width): a
    # conv_transpose2d runs as a stride-1 conv over its input with zeros between the rows and columns
    source_hw: tuple[int, int] = (0, 0)

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width."""
        return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
                     zip((self.height, self.width), self.padding, self.dilation, self.kernel, self.stride))


@dataclass(frozen=True, kw_only=True)
class ConvSharding:
    """One candidate sharding and the per-core bytes ttnn would allocate for it."""
    layout: str               # "height" | "block" | "width"
    input_cores: int          # cores of the input sharding (and of the halo output)
    copy_cores: int           # the cores the input copy has rows on (the last ones may get none)
    output_cores: int
    input_rows: int           # rows of the sharded input copy per core (channels-last)
    input_channels: int       # channels per core of the input copy and the halo (padded)
    halo_rows: int            # rows of the halo output per core
    output_rows: int
    output_channels: int      # channels per core of the output (padded)
    circular_bytes: int       # the conv program's static (not buffer-backed) circular buffers per core

    @property
    def input_shard_bytes(self) -> int:
        """Per-core bytes of the sharded input copy."""
        return self.input_rows * self.input_channels * 2

    @property
    def halo_bytes(self) -> int:
        """Per-core bytes of the halo output (row major)."""
        return self.halo_rows * self.input_channels * 2

    @property
    def output_bytes(self) -> int:
        """Per-core bytes of the sharded output."""
        return self.output_rows * self.output_channels * 2

    @property
    def l1_total(self) -> int:
        """What ttnn's auto-shard compares: circular buffers + output + halo output per core."""
        return self.circular_bytes + self.output_bytes + self.halo_bytes


def divisor_with_padding(num: int, start: int) -> int:
    """The most cores (<= start) splitting num tiles so that the padding stays under one core's share
    (find_closest_largest_divisor_with_num_padding)."""
    d = start
    while d > 1 and round_up(num, d) - num >= round_up(num, d) // d:
        d -= 1
    return max(d, 1)


def halo_rows(conv: ConvShape, rows_per_core: int, cores: int) -> int:
    """The most padded-input rows any core's output windows span (calculate_precise_halo_output_elems)."""
    padded = (conv.height + 2 * conv.padding[0], conv.width + 2 * conv.padding[1])
    return window_span_rows(conv.batch, padded, conv.out_hw, conv.kernel, conv.stride, conv.dilation,
                            rows_per_core, cores)


def window_span_rows(batch: int, padded_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
                     stride: tuple[int, int], dilation: tuple[int, int], rows_per_core: int, cores: int) -> int:
    """The most rows of the padded input (channels-last sticks, every image's padding included) that the
    windows of any core's ``rows_per_core`` output rows span, from its first window's top-left to its
    last window's bottom-right: the halo a sliding-window op (conv2d, the pools) builds per core."""
    (oh, ow), (kh, kw), (sh, sw) = out_hw, kernel, stride
    ph, pw = padded_hw
    total = batch * oh * ow

    def index(o: int, last: bool) -> int:
        n, r = divmod(o, oh * ow)
        y, x = divmod(r, ow)
        y, x = y * sh + last * (kh - 1) * dilation[0], x * sw + last * (kw - 1) * dilation[1]
        return (n * ph + y) * pw + x

    spans = [index(min((i + 1) * rows_per_core, total) - 1, True) - index(i * rows_per_core, False) + 1
             for i in range(cores) if i * rows_per_core < total]
    return max(spans, default=0)


def _cores(layout: str, conv: ConvShape, grid: tuple[int, int]) -> tuple[int, int, int]:
    """(cores along N*H*W, along input channels, along output channels) of a sharding
    (determine_parallel_config; block: rows along the grid's y, channels along its x; each count the
    most that pads under one core's share: retinanet's 819 output channels, 26 tiles, on 7 columns)."""
    out_tiles = -(-conv.batch * conv.out_hw[0] * conv.out_hw[1] // TILE_HW)
    cin_tiles, cout_tiles = -(-conv.in_channels // TILE_HW), -(-conv.out_channels // TILE_HW)
    if layout == "height":
        return divisor_with_padding(out_tiles, grid[0] * grid[1]), 1, 1
    if layout == "block":
        return (divisor_with_padding(out_tiles, grid[1]), divisor_with_padding(cin_tiles, grid[0]),
                divisor_with_padding(cout_tiles, grid[0]))
    cores = grid[0] * grid[1]
    return 1, divisor_with_padding(cin_tiles, cores), divisor_with_padding(cout_tiles, cores)


def sharding(layout: str, conv: ConvShape, grid: tuple[int, int]) -> ConvSharding:
    """One candidate sharding of a conv on a compute grid, with its per-core buffers and circular buffers."""
    nhw, cin, cout = _cores(layout, conv, grid)
    out_rows = round_up(conv.batch * conv.out_hw[0] * conv.out_hw[1], nhw * TILE_HW) // nhw
    in_ch = round_up(conv.in_channels, cin * TILE_HW) // cin
    out_ch = round_up(conv.out_channels, cout * TILE_HW) // cout
    # one activation block row: a kernel row of input channels (width: the whole kernel window)
    window = conv.kernel[1] * (conv.kernel[0] if layout == "width" else 1)
    act_h, act_w, out_w = out_rows // TILE_HW, window * in_ch // TILE_HW, out_ch // TILE_HW
    weights = act_w * out_w
    if layout == "height":   # split reader: two activation halves, plus the tilized block
        act = (-(-act_h // 2) + act_h // 2 + act_h) * act_w
    elif layout == "block":  # the activation block and its tilized copy
        act = 2 * act_h * act_w
    else:                    # width: the same, and a second, double-buffered weights block
        act = 2 * act_h * act_w + 2 * weights
    circular = (act + weights + (out_w if conv.bias else 0)) * TILE_BF16 + L1_SCRATCHPAD
    h, w = conv.source_hw if conv.source_hw[0] else (conv.height, conv.width)
    in_rows = round_up(conv.batch * h * w, nhw * TILE_HW) // nhw
    holding = -(-(-(-conv.batch * h * w // TILE_HW)) // (in_rows // TILE_HW))
    return ConvSharding(layout=layout, input_cores=nhw * cin, copy_cores=holding * cin, output_cores=nhw * cout,
                        input_rows=in_rows,
                        input_channels=in_ch, halo_rows=halo_rows(conv, out_rows, nhw), output_rows=out_rows,
                        output_channels=out_ch, circular_bytes=circular)


def auto_shard(conv: ConvShape, device: DeviceSpec, matmul_conv: bool = False) -> ConvSharding:
    """The sharding ttnn's conv2d picks: the smallest L1 total, block only across at least a grid row."""
    height = sharding("height", conv, device.grid)
    block = sharding("block", conv, device.grid)
    width = sharding("width", conv, device.grid)
    win = height
    if block.l1_total < win.l1_total and max(block.input_cores, block.output_cores) >= device.grid[0]:
        win = block
    if width.l1_total < win.l1_total and not matmul_conv:
        win = width
    return win
