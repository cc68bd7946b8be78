"""Tenstorrent device specifications as data: what the memory model needs to know about a board.

Imports neither torch nor ttnn. The numbers are what ttnn 0.81.1 reports on its mock devices
(``ttnn.device.get_memory_view``, ``get_dram_alignment``, ``get_l1_alignment``,
``compute_with_storage_grid_size``) for one chip of each board; tests/replay/test_estimate_vs_ttnn.py
checks them against the mock device. Adding a board is one entry in DEVICES.
"""
from __future__ import annotations

from dataclasses import dataclass

TILE_HW = 32  # tiles are 32 x 32 elements

# Bytes of one 32x32 tile per ttnn dtype (tt_metal constants; block floats carry shared exponents).
TILE_BYTES = {
    "bfloat16": 2048, "float32": 4096, "int32": 4096, "uint32": 4096,
    "uint16": 2048, "uint8": 1024, "bfloat8_b": 1088, "bfloat4_b": 576,
}
# Bytes per element in ROW_MAJOR pages. Block floats have none: they exist only in TILE layout.
ELEMENT_BYTES = {"bfloat16": 2, "float32": 4, "int32": 4, "uint32": 4, "uint16": 2, "uint8": 1}
BLOCK_FLOAT_DTYPES = ("bfloat8_b", "bfloat4_b")
DTYPES = tuple(TILE_BYTES)

MEMORIES = ("DRAM", "L1")
# replay opens devices with this L1_SMALL region (replay.backends.device.open_device's default), which every
# L1 bank gives up; estimates use the same so they agree with the ttnn backend.
L1_SMALL_BYTES = 32768


class UnknownDevice(ValueError):
    """A board name optrace has no specification for; one line."""


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    """One chip of a board, as its allocator sees it."""
    name: str                # board name as users say it: "n150"
    arch: str                # "wormhole_b0" | "blackhole"
    chips: int               # chips on the board; replay uses chip 0, so the numbers are per chip
    dram_banks: int
    dram_bank_bytes: int     # allocatable bytes per DRAM bank
    grid: tuple[int, int]    # compute grid (x, y); interleaved L1 has one bank per core
    l1_bank_bytes: int       # allocatable bytes per L1 bank (per core) with no L1_SMALL region
    l1_core_bytes: int       # raw L1 per core, for reference
    dram_alignment: int      # bytes; also the granularity of every bank allocation
    l1_alignment: int        # bytes; L1 pages are aligned to this

    @property
    def l1_banks(self) -> int:
        """Interleaved L1 banks: one per core of the compute grid."""
        return self.grid[0] * self.grid[1]

    def banks(self, memory: str, l1_small_bytes: int = 0) -> tuple[int, int]:
        """(number of banks, allocatable bytes per bank) for "DRAM" or "L1".

        An L1_SMALL region (``open_device(l1_small_size=...)``) is carved out of every L1 bank.
        """
        if memory == "DRAM":
            return self.dram_banks, self.dram_bank_bytes
        return self.l1_banks, self.l1_bank_bytes - l1_small_bytes

    def alignment(self, memory: str) -> int:
        """Page alignment in bytes of "DRAM" or "L1"."""
        return self.dram_alignment if memory == "DRAM" else self.l1_alignment


_WH = dict(arch="wormhole_b0", dram_bank_bytes=1_072_693_184, grid=(8, 8), l1_bank_bytes=1_393_312,
           l1_core_bytes=1_499_136, dram_alignment=32, l1_alignment=16)
# Blackhole grid: 11 x 10 with the harvesting of the mock descriptors (2 columns harvested).
_BH = dict(arch="blackhole", dram_bank_bytes=4_277_141_376, grid=(11, 10), l1_bank_bytes=1_461_120,
           l1_core_bytes=1_572_864, dram_alignment=64, l1_alignment=16)

DEVICES: dict[str, DeviceSpec] = {
    "n150": DeviceSpec(name="n150", chips=1, dram_banks=12, **_WH),
    "n300": DeviceSpec(name="n300", chips=2, dram_banks=12, **_WH),
    "p150": DeviceSpec(name="p150", chips=1, dram_banks=8, **_BH),
    "p100": DeviceSpec(name="p100", chips=1, dram_banks=7, **_BH),
}


def get_device(name: str) -> DeviceSpec:
    """The specification of a board by name (case-insensitive), or UnknownDevice."""
    spec = DEVICES.get(str(name).lower())
    if spec is None:
        raise UnknownDevice(f"unknown device {name!r} (known: {', '.join(DEVICES)})")
    return spec
