"""The one interface every backend offers: constructed with its settings, ``run(case) -> ReplayResult``.

``case`` is a ``replay.mapping.Case`` (one captured signature, arguments by schema name); the result
is that signature's verdict on this backend. A backend never raises for what the op does (an OOM,
a rejected argument): that is the result. Hosting a backend (in this process, or in crash-isolated
worker processes) is replay/run/drivers.py's job, not the backend's.

Imports neither torch nor ttnn.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from replay.mapping import Case
from replay.results import ReplayResult


@runtime_checkable
class Backend(Protocol):
    """Replays one signature: ``EstimateBackend``, ``TorchBackend`` and ``TtnnBackend`` are the three."""

    name: str                     # "estimate" | "torch" | "ttnn", as results and --backend name it

    def run(self, case: Case) -> ReplayResult:
        """The verdict for one signature."""
        ...


def case_of(sig, arg_names: list[str]) -> Case:
    """The Case a backend runs for a captured Signature (capture.schema) and its op's argument names."""
    return Case.from_wire(sig.to_full_wire(arg_names))
