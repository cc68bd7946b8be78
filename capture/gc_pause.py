"""Cyclic GC paused for a block that allocates many small objects none of which form cycles.

Recording a forward and reading a trace both build hundreds of thousands of small lists and
records; every full GC pass would walk all of them again (reading the zoo's 228 traces: 9.5 CPU s
with GC, 2.7 s without). Reference counting still frees everything; only cycle detection waits.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused():
    """Cyclic GC off for the block (and back on after it, if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
