"""The report's view of `replay headroom`: the maximum-supported-size rows, and the table the command prints.

Reads the stored results (``headroom_<device>_<memory>_<model>.json``, replay.studies.headroom_result).
"""
from __future__ import annotations

import glob
import os

from replay.report.data import HeadroomRow
from replay.studies.headroom_result import AxisResult, Bound, FailingOp, HeadroomResult, Probe, read_headroom


def _size_text(f: AxisResult | Bound | Probe | None) -> str:
    return f"batch {f.batch}, {f.height} x {f.width}" if f and f.batch else "-"


def headroom_rows(result: HeadroomResult) -> list[HeadroomRow]:
    """HeadroomRow per axis of a headroom result (an axis with no size that fits has none)."""
    rows = []
    for key, f in result.axes():
        if not f or not f.found():
            continue
        above = (f.above.first_failure if f.above else "") or "nothing up to the search limit"
        if not f.exact:
            above += " (the probe budget ran out before one step above)"
        step = result.step if key == "resolution" else 1
        rows.append(HeadroomRow(model=result.model, batch=f.batch, height=f.height, width=f.width,
                                confirmed=f.confirmed, first_failing_above=above,
                                note=f"largest {key} ({result.device}, {result.memory}, step {step})", axis=key,
                                estimate_bound=_size_text(f.estimate), why=f.why))
    return rows


def load_headroom_rows(folder: str, device: str | None = None, memory: str | None = None,
                       models=None) -> list[HeadroomRow]:
    """HeadroomRows of the headroom_*.json files in folder (for the device, memory and models given)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder or ".", "headroom_*.json"))):
        result = read_headroom(path)
        if result is None:
            continue
        if (device and result.device != device) or (memory and result.memory != memory) or \
                (models is not None and result.model not in models):
            continue
        rows += headroom_rows(result)
    return rows


def _alone_line(o: FailingOp) -> str:
    alone = o.fits_alone
    where = (f"{_size_text(alone)}: {alone.input_shapes}" + ("" if alone.exact else " (probe budget ran out)")
             + (" (the search limit)" if alone.at_search_limit else "")) if alone.batch else (alone.note or "?")
    return (f"    call {o.call} {o.op} in {o.module_path or '(model)'} {o.input_shapes} -> {o.status}; "
            f"alone it fits up to {where}")


def _axis_lines(result: HeadroomResult, key: str, f: AxisResult | None) -> list[str]:
    if not f or not f.found():
        return [f"  largest {key}: none; the registry's own input size already fails"
                + (f": {f.above.first_failure}" if f and f.above else "")]
    step = result.step if key == "resolution" else 1
    on = f"confirmed on the {f.confirmed} device" if f.confirmed else "on the estimate"
    lines = [f"  largest {key} (step {step}): {_size_text(f)} ({on}"
             + (f", {f.device_probes} device runs" if f.device_probes is not None else "") + ")"]
    ab = f.above
    lines.append(f"    one step above fails: {_size_text(ab)}: {ab.first_failure}" if ab else
                 "    nothing fails up to the search limit")
    if not f.exact:
        lines.append("    (the device probe budget ran out: the failure above is not one step above)")
    if f.confirmed:
        lines.append(f"    the estimate's bound: {_size_text(f.estimate)}"
                     + (f"; they differ: {f.why}" if f.why else "; the device agrees"))
    lines += [_alone_line(o) for o in (ab.failing_ops if ab else []) if o.fits_alone is not None]
    return lines


def render_headroom(result: HeadroomResult) -> str:
    """The 'maximum supported size' table `replay headroom` prints."""
    lines = [f"{result.model} on {result.device} ({result.memory}): maximum supported size, {result.time_s} s"]
    for key, f in result.axes():
        lines += _axis_lines(result, key, f)
    return "\n".join(lines)
