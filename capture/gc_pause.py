"""Cyclic GC paused for a block that allocates many small objects none of which form cycles.

Recording a forward and reading a trace both build hundreds of thousands of small lists and
records; every full GC pass would walk all of them again (reading the zoo's 228 traces: 9.5 CPU s
with GC, 2.7 s without). Reference counting still frees everything; only cycle detection waits.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused(keep_young: bool = False):
    """Cyclic GC off for the block (and back on after it, if it was on).

    keep_young: what the block made is long-lived data (a recording): on the way out, every tracked
    object joins the oldest generation unexamined (gc.freeze, then gc.unfreeze, both O(1)) instead of
    the young-generation pass the next allocation would trip, which walks all of it (4 ms of swin_t's
    capture) only to promote it there anyway. Skipped when objects are frozen already: someone
    else's freeze is theirs to keep."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if keep_young and gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
