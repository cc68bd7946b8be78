"""Gathers, resampling and generated ranges the vision zoo traces: gather, grid_sample, 1-D linear
upsample, linspace."""
from __future__ import annotations

from replay.mapping.case import Case
from replay.mapping.plan import DEVICE, MEMORY, TT, Port, first_out, norm_dim, unsupported
from replay.mapping.registry import register
from replay.shapes import round_up

# aten.grid_sampler_2d's integer modes (torch/nn/functional.py: GRID_SAMPLE_INTERPOLATION_MODES/PADDING_MODES)
_GRID_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
_GRID_PADDING = {0: "zeros", 1: "border", 2: "reflection"}
TILE = 32


@register("aten.gather.default", ttnn="ttnn.gather(x, dim, index uint32)")
def gather(p: Port, c: Case):
    """gather along one dim with uint32 indices of the traced shape (ttnn does not broadcast them)."""
    t = c.tensor("self")
    dim = norm_dim(c.get("dim"), t.rank)
    p.call("gather", p.input("self"), dim, index=p.input("index", dtype="uint32"), memory_config=MEMORY)
    p.expect(first_out(c))


@register("aten.grid_sampler_2d.default", ttnn="ttnn.grid_sample(x [N,H,W,C], grid [N,Hg,Wg,2])")
def grid_sampler_2d(p: Port, c: Case):
    """grid_sample on a channels-last input (RAFT's correlation lookup), the grid as traced."""
    mode, padding = _GRID_MODES.get(c.get("interpolation_mode", 0)), _GRID_PADDING.get(c.get("padding_mode", 0))
    if mode not in ("bilinear", "nearest"):
        unsupported(f"grid_sample mode {mode!r}: ttnn.grid_sample interpolates bilinear or nearest; a port "
                    "samples bilinear (close to bicubic) or runs the bicubic lookup on the host")
    if padding != "zeros":
        unsupported(f"grid_sample padding_mode {padding!r}: ttnn.grid_sample pads with zeros only; a port "
                    "clamps the grid to [-1, 1] first (ttnn.clamp) for 'border'")
    n, ch, h, w = c.tensor("input").shape
    x = p.input("input", [n, h, w, ch], layout="ROW_MAJOR", permute=[0, 2, 3, 1])
    if ch % TILE:   # ttnn.grid_sample wants C a multiple of the tile width (RAFT samples C=1 volumes)
        p.note(f"channels padded {ch} -> {round_up(ch, TILE)} for ttnn.grid_sample, sliced back after")
        x = p.call("pad", x, [[0, 0], [0, 0], [0, 0], [0, round_up(ch, TILE) - ch]], 0.0, memory_config=MEMORY)
    out = first_out(c)
    s = p.call("grid_sample", x, p.input("grid", layout="ROW_MAJOR"), mode=mode, padding_mode="zeros",
               align_corners=bool(c.get("align_corners", False)), memory_config=MEMORY)
    if ch % TILE:
        p.call("slice", s, [0, 0, 0, 0], [out[0], out[2], out[3], ch], [1, 1, 1, 1], memory_config=MEMORY)
    p.expect([out[0], out[2], out[3], out[1]], permute=[0, 2, 3, 1])


@register("aten.upsample_linear1d.default", "aten.upsample_linear1d.vec",
          ttnn="ttnn.upsample(x [N,1,W,C], scale, mode='bilinear')")
def upsample_linear1d(p: Port, c: Case):
    """1-D linear interpolation as ttnn's bilinear upsample of a 1-high [N, 1, W, C] image."""
    t, out = c.tensor("self" if c.tensor("self") else "input"), first_out(c)
    name = "self" if c.tensor("self") else "input"
    n, ch, w = t.shape
    scale = out[2] / w
    if c.get("align_corners", False):
        unsupported("linear upsample with align_corners=True: ttnn.upsample aligns half-pixel centres only; a "
                    "port computes the interpolation as a matmul with a fixed [W_in, W_out] weight")
    p.call("upsample", p.input(name, [n, 1, w, ch], layout="ROW_MAJOR", permute=[0, 2, 1]),
           [1, int(scale) if scale.is_integer() else scale], mode="bilinear", memory_config=MEMORY)
    p.expect([n, 1, out[2], ch], permute=[0, 2, 1])


@register("aten.linspace.default", ttnn="ttnn.arange(0, steps) * step + start")
def linspace(p: Port, c: Case):
    """linspace as a port writes it on the device: an integer arange scaled and shifted."""
    start, end, steps = c.get("start"), c.get("end"), c.get("steps")
    if not all(isinstance(v, (int, float)) for v in (start, end, steps)):
        unsupported("linspace with tensor bounds: a port reads the bounds on the host and builds the range there")
    step = (float(end) - float(start)) / (steps - 1) if steps > 1 else 0.0
    r = p.call("arange", 0, int(steps), 1, dtype=TT("bfloat16"), device=DEVICE, memory_config=MEMORY)
    r = p.call("multiply", r, step, memory_config=MEMORY)
    p.call("add", r, float(start), memory_config=MEMORY)
    p.expect(first_out(c))
