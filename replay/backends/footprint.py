"""What one tensor costs on a Tenstorrent device: padding, pages, banks, fit — and `replay footprint`.

Imports neither torch nor ttnn. The rule is tt-metal's interleaved bank allocator (bank_manager.cpp,
buffer.cpp), checked against ttnn 0.81.1's own allocator in tests/replay/test_estimate_vs_ttnn.py:

    page_bytes = align_up(raw page bytes, memory alignment)          TILE: one tile; ROW_MAJOR: one row
    per_bank   = align_up(ceil(pages / banks) * page_bytes, DRAM alignment)
    fits      <=> per_bank <= the largest free block of a bank

TILE pads only the last two dims up to multiples of 32 (rank 0 and 1 become [1, N]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from replay.backends.devices import (BLOCK_FLOAT_DTYPES, ELEMENT_BYTES, L1_SMALL_BYTES, TILE_BYTES, TILE_HW,
                            DeviceSpec, get_device)
from replay.shapes import round_up

LAYOUTS = ("TILE", "ROW_MAJOR")

# What users type on the command line -> ttnn dtype name.
DTYPE_ALIASES = {"bf16": "bfloat16", "fp32": "float32", "f32": "float32", "bfp8": "bfloat8_b",
                 "bfp8_b": "bfloat8_b", "bf8": "bfloat8_b", "bfp4": "bfloat4_b", "bfp4_b": "bfloat4_b",
                 "bf4": "bfloat4_b", "i32": "int32", "u32": "uint32", "u16": "uint16", "u8": "uint8"}
LAYOUT_ALIASES = {"tile": "TILE", "row_major": "ROW_MAJOR", "rm": "ROW_MAJOR", "row-major": "ROW_MAJOR"}


PAGE_COUNT_MASK = (1 << 32) - 1


class FootprintError(ValueError):
    """A shape, dtype, layout, memory or device the model cannot take; the message is one line."""


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """One interleaved buffer as the allocator would place it."""
    shape: tuple[int, ...]
    dtype: str
    layout: str              # "TILE" | "ROW_MAJOR"
    memory: str              # "DRAM" | "L1"
    padded_shape: tuple[int, ...]
    page_bytes: int          # one page, aligned to the memory's alignment
    pages: int               # as tt-metal counts them (modulo 2^32)
    num_banks: int
    per_bank_bytes: int      # what each bank reserves (what a memory view reports)
    bank_bytes: int          # allocatable bytes per bank
    total_bytes: int         # what ttnn requests: pages * page_bytes
    logical_bytes: int       # the data itself, no padding

    @property
    def fits(self) -> bool:
        """Fits an empty device."""
        return self.per_bank_bytes <= self.bank_bytes

    @property
    def message_per_bank_bytes(self) -> int:
        """The per-bank need ttnn prints in its OOM message (without the final bank rounding)."""
        return -(-self.pages // self.num_banks) * self.page_bytes if self.pages else 0


def allocate(shape, dtype: str, layout: str, memory: str, device: DeviceSpec,
             l1_small_bytes: int = L1_SMALL_BYTES) -> Allocation:
    """The allocation of one tensor; arguments already normalized (see footprint for checking)."""
    rank = len(shape)
    volume = 1
    for d in shape:
        volume *= d
    if rank >= 2:
        h, w = shape[-2], shape[-1]
        lead = volume // (h * w) if h * w else math.prod(shape[:-2])
    else:
        h, w, lead = 1, (shape[0] if rank else 1), 1
    if layout == "TILE":
        ph, pw = round_up(h, TILE_HW), round_up(w, TILE_HW)
        padded = tuple(shape[:-2]) + (ph, pw) if rank >= 2 else (ph, pw)
        pages = lead * (ph // TILE_HW) * (pw // TILE_HW)
        raw_page = TILE_BYTES[dtype]
        logical = -(-volume * raw_page // (TILE_HW * TILE_HW))
    else:
        padded = tuple(shape)
        esize = ELEMENT_BYTES[dtype]
        pages = lead * h if w else 0
        raw_page = w * esize
        logical = volume * esize
    # tt-metal counts pages in 32 bits: beyond 2^32 pages the request it makes (and judges) wraps.
    pages &= PAGE_COUNT_MASK
    num_banks, bank_bytes = device.banks(memory, l1_small_bytes)
    page = round_up(raw_page, device.alignment(memory))
    per_bank = round_up(-(-pages // num_banks) * page, device.dram_alignment)
    return Allocation(shape=tuple(shape), dtype=dtype, layout=layout, memory=memory, padded_shape=padded,
                      page_bytes=page, pages=pages, num_banks=num_banks, per_bank_bytes=per_bank,
                      bank_bytes=bank_bytes, total_bytes=pages * page, logical_bytes=logical)



# ---------------------------------------------------------------------------------------------
# `replay footprint`

def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,640,640"`` (or ``"1x3x640x640"``, brackets allowed) -> a shape; FootprintError naming the
    bad part when a dimension is empty, not an integer, or negative."""
    body = text.strip().strip("[]()")
    if not body:
        raise FootprintError(f"shape {text!r} is empty; give integers like 1,3,640,640")
    parts = body.split(",") if "," in body else body.split("x")
    dims = []
    for n, part in enumerate(parts, 1):
        part = part.strip()
        if not part:
            raise FootprintError(f"shape {text!r}: dimension {n} is empty")
        try:
            d = int(part)
        except ValueError:
            raise FootprintError(f"shape {text!r}: dimension {n} ({part!r}) is not an integer") from None
        if d < 0:
            raise FootprintError(f"shape {text!r} has a negative dimension {d}")
        dims.append(d)
    return tuple(dims)


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, str):
        return parse_shape(shape)
    if not isinstance(shape, (list, tuple)) or not shape:
        raise FootprintError(f"shape must be a non-empty list of integers, got {shape!r}")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int):
            raise FootprintError(f"shape {list(shape)!r} has a non-integer dimension {d!r}")
        if d < 0:
            raise FootprintError(f"shape {list(shape)!r} has a negative dimension {d}")
    return tuple(shape)


def normalize(dtype: str, layout: str, memory: str) -> tuple[str, str, str]:
    """Canonical (dtype, layout, memory) names, or FootprintError."""
    dt = DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if dt not in TILE_BYTES:
        raise FootprintError(f"unknown dtype {dtype!r} (known: {', '.join(TILE_BYTES)})")
    lay = LAYOUT_ALIASES.get(str(layout).lower(), str(layout).upper())
    if lay not in LAYOUTS:
        raise FootprintError(f"unknown layout {layout!r} (tile or row_major)")
    mem = str(memory).upper()
    if mem not in ("DRAM", "L1"):
        raise FootprintError(f"unknown memory {memory!r} (dram or l1)")
    if dt in BLOCK_FLOAT_DTYPES and lay != "TILE":
        raise FootprintError(f"{dt} exists only in tile layout")
    return dt, lay, mem


def footprint(shape, dtype: str = "bfloat16", layout: str = "tile", memory: str = "dram",
              device: str = "n150", l1_small_bytes: int = L1_SMALL_BYTES) -> dict:
    """What one interleaved tensor of this shape costs on an empty device, as a plain dict.

    L1 banks are counted without the L1_SMALL region replay opens devices with (l1_small_bytes).
    """
    dims = _check_shape(shape)
    dt, lay, mem = normalize(dtype, layout, memory)
    try:
        spec = get_device(device)
    except ValueError as e:
        raise FootprintError(str(e)) from None
    a = allocate(dims, dt, lay, mem, spec, l1_small_bytes)
    return {
        "shape": list(dims), "dtype": dt, "layout": lay, "memory": mem, "device": spec.name,
        "logical_bytes": a.logical_bytes, "padded_shape": list(a.padded_shape),
        "page_bytes": a.page_bytes, "pages": a.pages, "num_banks": a.num_banks,
        "per_bank_bytes": a.per_bank_bytes, "bank_bytes": a.bank_bytes, "total_bytes": a.total_bytes,
        "fits": a.fits, "blowup": (a.total_bytes / a.logical_bytes) if a.logical_bytes else 1.0,
    }


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def render_footprint(fp: dict) -> str:
    """The footprint dict as the few lines `replay footprint` prints."""
    verdict = "fits" if fp["fits"] else "DOES NOT FIT"
    return "\n".join([
        f"{fp['shape']} {fp['dtype']} {fp['layout']} in {fp['memory']} on {fp['device']}: {verdict}",
        f"  padded shape    {fp['padded_shape']}",
        f"  logical bytes   {fp['logical_bytes']:,} ({_human(fp['logical_bytes'])})",
        f"  buffer bytes    {fp['total_bytes']:,} ({_human(fp['total_bytes'])}) = "
        f"{fp['pages']:,} pages x {fp['page_bytes']:,} B; {fp['blowup']:,.2f}x the data",
        f"  per bank        {fp['per_bank_bytes']:,} B across {fp['num_banks']} banks; "
        f"bank size {fp['bank_bytes']:,} B",
    ])
