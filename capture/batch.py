"""Tracing many models in one run (`trace-model --all`): which traces are already current, and the
progress line (model k/N, elapsed, ETA). No torch at import; package versions come from metadata.
"""
from __future__ import annotations

import os
import time

from capture.registry import ModelEntry
from capture.schema import TraceError, read_trace

# the libraries whose version decides a source's trace (besides optrace and torch)
_SOURCE_LIBRARY = {"torchvision": "torchvision", "timm": "timm", "ultralytics": "ultralytics",
                   "transformers": "transformers"}


def stale_reason(entry: ModelEntry, path: str, *, grad_mode: str, fake: bool) -> str:
    """Why the trace at path is not what tracing entry now would write ("" when it is current):
    missing, unreadable, another entry, grad or tensor mode, or other library versions."""
    from capture.capture import dist_version
    if not os.path.exists(path):
        return "no trace yet"
    try:
        header = read_trace(path).header
    except TraceError as e:
        return f"unreadable ({e})"
    model = dict(header.get("model") or {})
    want = entry.to_dict()
    if not entry.inputs:           # inputs made at build time are recorded from the forward
        model.pop("inputs", None)
        want.pop("inputs", None)
    if model != want:
        return "the registry entry changed"
    mode = "fake" if fake or entry.capture == "fake" else "real"
    if (header.get("via"), header.get("grad_mode"), header.get("tensor_mode")) != ("eager", grad_mode, mode):
        return "traced via another route, grad mode or tensor mode"
    versions = header.get("versions") or {}
    for dist in ("optrace", "torch", _SOURCE_LIBRARY.get(entry.source)):
        if dist and versions.get(dist) != dist_version(dist):
            return f"traced with {dist} {versions.get(dist)}, installed {dist_version(dist)}"
    return ""


class Progress:
    """`[k/N] name` tags with the run's elapsed time and an ETA from the models traced so far."""

    def __init__(self, total: int):
        self.total = total
        self.t0 = time.perf_counter()
        self.traced_s: list[float] = []    # seconds per model actually traced (kept/skipped ones are ~0)
        self.left = total

    def tag(self, k: int, name: str) -> str:
        """`[k/N] name` plus, with more than one model, the elapsed time and the ETA."""
        if self.total == 1:
            return f"[1/1] {name}"
        elapsed = time.perf_counter() - self.t0
        eta = _clock(sum(self.traced_s) / len(self.traced_s) * self.left) if self.traced_s else "?"
        return f"[{k}/{self.total}] {name} (elapsed {_clock(elapsed)}, ETA {eta})"

    def done(self, seconds: float | None) -> None:
        """One model finished: traced in `seconds`, or None when it was kept, skipped or failed early."""
        self.left -= 1
        if seconds is not None:
            self.traced_s.append(seconds)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s"
