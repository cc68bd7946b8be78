"""What `replay headroom` finds, as typed records, and its stored form ``headroom_<device>_<memory>_<model>.json``.

The layout is stated once: each record's ``to_json`` sits beside its ``from_json``. The JSON keys
are those docs/in-context.md lists (per axis ``batch, height, width, confirmed, exact, above,
estimate, why, device_probes``; ``probes``, ``time_s`` at the top); a key that is absent from a stored
file reads as its default, so older and hand-written files stay readable.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from capture.atomic import write_atomic


@dataclass(kw_only=True)
class FitsAlone:
    """The largest size at which one op failing in context still fits when replayed alone."""
    batch: int | None = None
    height: int | None = None
    width: int | None = None
    input_shapes: str = ""           # the op's input shapes at that size
    exact: bool = True               # one step above is known to fail alone (or it is the search limit)
    fails_alone_above: bool = False  # it fails alone one step above the size that fits in context
    at_search_limit: bool = False
    note: str = ""                   # set instead of a size: it fails alone where the model fits

    def to_json(self) -> dict:
        """The stored form: a size, or only the note."""
        if self.note:
            return {"note": self.note}
        return {"batch": self.batch, "height": self.height, "width": self.width, "input_shapes": self.input_shapes,
                "exact": self.exact, "fails_alone_above": self.fails_alone_above,
                "at_search_limit": self.at_search_limit}

    @classmethod
    def from_json(cls, d: dict) -> FitsAlone:
        """Read the stored form back."""
        return cls(batch=d.get("batch"), height=d.get("height"), width=d.get("width"),
                   input_shapes=d.get("input_shapes", ""), exact=d.get("exact", True),
                   fails_alone_above=d.get("fails_alone_above", False),
                   at_search_limit=d.get("at_search_limit", False), note=d.get("note", ""))


@dataclass(kw_only=True)
class FailingOp:
    """One call failing in an in-context run (cascades aside)."""
    call: int
    op: str
    module_path: str
    input_shapes: str
    status: str
    requested_bytes: int | None = None
    fits_alone: FitsAlone | None = None   # filled in for the probe one step above the answer

    def to_json(self) -> dict:
        """The stored form (``fits_alone`` only when it was looked for)."""
        d = {"call": self.call, "op": self.op, "module_path": self.module_path, "input_shapes": self.input_shapes,
             "status": self.status, "requested_bytes": self.requested_bytes}
        if self.fits_alone is not None:
            d["fits_alone"] = self.fits_alone.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> FailingOp:
        """Read the stored form back."""
        alone = d.get("fits_alone")
        return cls(call=d.get("call", -1), op=d.get("op", ""), module_path=d.get("module_path", ""),
                   input_shapes=d.get("input_shapes", ""), status=d.get("status", ""),
                   requested_bytes=d.get("requested_bytes"),
                   fits_alone=FitsAlone.from_json(alone) if isinstance(alone, dict) else None)


@dataclass(kw_only=True)
class Probe:
    """One candidate input size and its in-context verdict on one backend."""
    batch: int
    height: int
    width: int
    fits: bool
    backend: str = "estimate"   # estimate | mock | real
    first_failure: str = ""     # "call 183 aten._softmax.default in model.9 [4, 12, 8160, 8160] oom_dram, 1.2 GiB"
    failing_ops: list[FailingOp] = field(default_factory=list)
    time_s: float = 0.0

    def size(self) -> str:
        """'batch 1, 640 x 640'."""
        return f"batch {self.batch}, {self.height} x {self.width}"

    def to_json(self) -> dict:
        """The stored form."""
        return {"batch": self.batch, "height": self.height, "width": self.width, "fits": self.fits,
                "backend": self.backend, "first_failure": self.first_failure,
                "failing_ops": [o.to_json() for o in self.failing_ops], "time_s": self.time_s}

    @classmethod
    def from_json(cls, d: dict) -> Probe:
        """Read the stored form back."""
        return cls(batch=d.get("batch", 0), height=d.get("height", 0), width=d.get("width", 0),
                   fits=d.get("fits", False), backend=d.get("backend", "estimate"),
                   first_failure=d.get("first_failure", ""),
                   failing_ops=[FailingOp.from_json(o) for o in d.get("failing_ops") or []],
                   time_s=d.get("time_s", 0.0))


def _probe_or_none(d) -> Probe | None:
    return Probe.from_json(d) if isinstance(d, dict) else None


@dataclass(kw_only=True)
class Bound:
    """The estimate's largest size on one axis, and its probe one step above (None: nothing fails)."""
    batch: int
    height: int
    width: int
    above: Probe | None = None

    def size(self) -> str:
        """'batch 1, 640 x 640'."""
        return f"batch {self.batch}, {self.height} x {self.width}"

    def to_json(self) -> dict:
        """The stored form."""
        return {"batch": self.batch, "height": self.height, "width": self.width,
                "above": self.above.to_json() if self.above else None}

    @classmethod
    def from_json(cls, d: dict) -> Bound:
        """Read the stored form back."""
        return cls(batch=d.get("batch"), height=d.get("height"), width=d.get("width"),
                   above=_probe_or_none(d.get("above")))


@dataclass(kw_only=True)
class AxisResult:
    """One axis (resolution or batch) of a headroom search: the largest size that replays, or none."""
    batch: int | None                 # None: the registry's own input size already fails
    height: int | None = None
    width: int | None = None
    above: Probe | None = None        # the probe one step above (or, with no size, at the registry's size)
    backend: str = ""                 # estimate | mock | real | device
    confirmed: str = ""               # mock | real | "" (the estimate only)
    exact: bool = True                # False: the probe budget ran out before one step above
    estimate: Bound | None = None     # the estimate's bound beside the device's answer
    why: str = ""                     # why the device's answer differs from the estimate's bound
    device_probes: int | None = None  # device runs spent on this axis (None: no device search)

    def found(self) -> bool:
        """A size replays on this axis."""
        return bool(self.batch)

    def size(self) -> str:
        """'batch 1, 640 x 640', or '-' when there is none."""
        return f"batch {self.batch}, {self.height} x {self.width}" if self.found() else "-"

    def to_json(self) -> dict:
        """The stored form (no height and width without a size, no device_probes without a device search)."""
        d = {"batch": self.batch, "above": self.above.to_json() if self.above else None, "backend": self.backend,
             "confirmed": self.confirmed, "exact": self.exact,
             "estimate": self.estimate.to_json() if self.estimate else None, "why": self.why}
        if self.batch is not None:
            d.update(height=self.height, width=self.width)
        if self.device_probes is not None:
            d["device_probes"] = self.device_probes
        return d

    @classmethod
    def from_json(cls, d: dict) -> AxisResult:
        """Read the stored form back."""
        est = d.get("estimate")
        return cls(batch=d.get("batch"), height=d.get("height"), width=d.get("width"),
                   above=_probe_or_none(d.get("above")), backend=d.get("backend", ""),
                   confirmed=d.get("confirmed", ""), exact=d.get("exact", True),
                   estimate=Bound.from_json(est) if isinstance(est, dict) else None, why=d.get("why", ""),
                   device_probes=d.get("device_probes"))


@dataclass(kw_only=True)
class HeadroomResult:
    """The headroom of one model on one device and memory: both axes and every run it took."""
    model: str
    device: str
    memory: str
    step: int                         # resolution step, pixels on the short side
    confirm: bool                     # the device confirmed (and searched) the estimate's bounds
    resolution: AxisResult | None = None
    batch: AxisResult | None = None
    backend: str = "estimate"         # what the answers rest on: estimate | mock | real
    time_s: float = 0.0
    probes: list[Probe] = field(default_factory=list)   # every run, in the order they were made

    def axes(self) -> list[tuple[str, AxisResult | None]]:
        """(name, result) of each axis, resolution first."""
        return [("resolution", self.resolution), ("batch", self.batch)]

    def to_json(self) -> dict:
        """The stored form; a probe is ``[backend, batch, height, width, fits, seconds]``."""
        return {"model": self.model, "device": self.device, "memory": self.memory, "step": self.step,
                "confirm": self.confirm, "resolution": self.resolution.to_json() if self.resolution else None,
                "batch": self.batch.to_json() if self.batch else None, "backend": self.backend,
                "time_s": self.time_s,
                "probes": [[p.backend, p.batch, p.height, p.width, p.fits, round(p.time_s, 1)] for p in self.probes]}

    @classmethod
    def from_json(cls, d: dict) -> HeadroomResult:
        """Read the stored form back."""
        def axis(key):
            return AxisResult.from_json(d[key]) if isinstance(d.get(key), dict) else None
        probes = [Probe(backend=p[0], batch=p[1], height=p[2], width=p[3], fits=p[4], time_s=p[5])
                  for p in d.get("probes") or [] if isinstance(p, list) and len(p) == 6]
        return cls(model=d["model"], device=d.get("device", ""), memory=d.get("memory", ""), step=d.get("step", 0),
                   confirm=d.get("confirm", False), resolution=axis("resolution"), batch=axis("batch"),
                   backend=d.get("backend", "estimate"), time_s=d.get("time_s", 0.0), probes=probes)


def headroom_path(out_dir: str, model: str, device: str, memory: str) -> str:
    """Where `replay headroom` stores its result, next to the replay results the reports read."""
    return os.path.join(out_dir, f"headroom_{device}_{memory}_{model}.json")


def write_headroom(result: HeadroomResult, out_dir: str) -> str:
    """Write a headroom result as JSON (atomically); returns its path."""
    path = headroom_path(out_dir, result.model, result.device, result.memory)
    write_atomic(path, json.dumps(result.to_json(), indent=1, sort_keys=True))
    return path


def read_headroom(path: str) -> HeadroomResult | None:
    """A stored headroom result, or None when the file is unreadable or not one."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or "model" not in d:
        return None
    return HeadroomResult.from_json(d)
