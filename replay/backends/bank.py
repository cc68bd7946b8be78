"""One bank's free list, as the mock device's allocator keeps it, and the L1 it leaves for circular buffers.

Imports neither torch nor ttnn. Interleaved buffers take the same offset in every bank of their type and a
sharded one the same offset in the banks it uses, so one simulated bank stands for all of them. The single-op
estimate (replay/backends/estimate.py) places an op's L1 buffers in one; the in-context estimate
(replay/context/estimate.py) a model's DRAM and L1 buffers, one bank per type. Both ask ``l1_below_buffers``
where a program's static circular buffers may go.
"""
from __future__ import annotations

from replay.backends.devices import DeviceSpec


class BankAllocator:
    """One bank's free list: first fit, from the bottom (DRAM) or the top (L1), as the mock device's
    allocator places buffers (ttnn 0.81.1, measured: a buffer goes into the first hole that holds it
    in that order, not the smallest)."""

    def __init__(self, size: int, top_down: bool = False):
        self.size, self.top_down = size, top_down
        self.free: list[list[int]] = [[0, size]]      # [start, length], sorted by start

    def alloc(self, n: int) -> int | None:
        """The offset of ``n`` bytes in the first hole that holds them, or None when none does."""
        blocks = reversed(self.free) if self.top_down else self.free
        for b in blocks:
            if b[1] >= n:
                addr = b[0] + b[1] - n if self.top_down else b[0]
                if self.top_down:
                    b[1] -= n
                else:
                    b[0] += n
                    b[1] -= n
                self.free = [x for x in self.free if x[1] > 0]
                return addr
        return None

    def release(self, addr: int, n: int) -> None:
        """Give back ``n`` bytes at ``addr``, merged with the holes beside them."""
        self.free.append([addr, n])
        self.free.sort()
        merged = [self.free[0]]
        for s, ln in self.free[1:]:
            last = merged[-1]
            if last[0] + last[1] == s:
                last[1] += ln
            else:
                merged.append([s, ln])
        self.free = merged

    @property
    def free_bytes(self) -> int:
        return sum(b[1] for b in self.free)

    @property
    def largest(self) -> int:
        return max((b[1] for b in self.free), default=0)


def l1_below_buffers(l1: BankAllocator, device: DeviceSpec) -> int:
    """Per-core L1 bytes below the lowest buffer of the (top-down) L1 bank: static circular buffers grow
    from the bottom and must end below them; with no L1 buffer alive, the whole L1 above the firmware,
    L1_SMALL's region included (mock n150: a 1,391,208 B concat staging entry runs with an empty L1)."""
    if l1.free_bytes == l1.size:
        return device.l1_bank_bytes
    return l1.free[0][1] if l1.free and l1.free[0][0] == 0 else 0
