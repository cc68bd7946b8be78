"""Headroom: the largest input (resolution, then batch) a model still replays without a failure.

Each candidate size is re-traced on fake tensors (``capture.capture.capture_model(..., fake=True)``,
seconds per model; this needs the torch environment) and replayed in context on the estimate
(replay.context_estimate): scaling traced shapes analytically would miss every shape a model derives
from its input in its own way (attention windows, anchors, padding), so we re-trace. A size "fits"
when no call fails for memory (oom_*, cb_overflow); unsupported ops are a mapping gap, not a size
limit. Resolution keeps the registry entry's aspect ratio and moves in steps of ``step`` pixels on
the short side: doubled until a failure, then bisected. The found size is then confirmed in context
on the ttnn device (mock or real), at the size and one step above.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

from replay.results import OOM_STATUSES

MEMORY_FAILURES = OOM_STATUSES + ("cb_overflow",)
MAX_SIDE = 32768


@dataclass
class Probe:
    """One candidate input size and its in-context verdict."""
    batch: int
    height: int
    width: int
    fits: bool
    first_failure: str = ""     # "call 183 aten._softmax.default [4, 12, 8160, 8160] oom_dram"
    failing_ops: list = None    # [[call, op, input shapes, status], ...] of the first failures


def _shapes(trace, call) -> str:
    from replay.attribution import format_shapes, input_shapes
    return format_shapes(input_shapes(trace.signatures[call.signature]))


def trace_at(entry, batch: int, height: int, width: int, folder: str):
    """Re-trace the registry entry on fake tensors at [batch, C, height, width]; returns the Trace."""
    from capture.capture import capture_model
    from capture.schema import read_trace, write_trace
    channels = entry.inputs[0][1]
    trace = capture_model(entry, inputs=[[batch, channels, height, width]], fake=True)
    path = os.path.join(folder, f"{entry.name}_{batch}x{height}x{width}.msgpack")
    write_trace(trace, path)
    return read_trace(path)


def verdict(trace, records, batch, height, width) -> Probe:
    bad = [r for r in records if r.status in MEMORY_FAILURES and not r.cascade]
    ops = [[r.index, r.op, _shapes(trace, trace.calls[r.index]), r.status] for r in bad[:5]]
    first = f"call {ops[0][0]} {ops[0][1]} {ops[0][2]} {ops[0][3]}" if ops else ""
    return Probe(batch, height, width, not bad, first, ops)


def probe_estimate(entry, batch, height, width, folder, device="n150", memory="dram") -> Probe:
    from replay.context_estimate import simulate_estimate
    from replay.estimate import Settings
    trace = trace_at(entry, batch, height, width, folder)
    records, _ = simulate_estimate(trace, Settings(device=device, memory=memory))
    return verdict(trace, records, batch, height, width)


def probe_ttnn(entry, batch, height, width, folder, settings) -> Probe:
    from replay.context import _run_ttnn
    trace = trace_at(entry, batch, height, width, folder)
    records, _, _ = _run_ttnn(trace, settings, settings.log_dir or folder)
    return verdict(trace, records, batch, height, width)


def _size(entry, k: int, step: int) -> tuple[int, int]:
    """Short side k*step, the other side keeping the entry's aspect ratio (a multiple of step)."""
    h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
    short = k * step
    if h0 <= w0:
        return short, max(step, round(short * w0 / h0 / step) * step)
    return max(step, round(short * h0 / w0 / step) * step), short


def largest(fits, lo: int, hi_limit: int) -> tuple[int, int | None]:
    """Largest k in [lo, hi_limit] with fits(k) (fits(lo) assumed), doubling then bisecting; returns
    (k, the smallest failing k seen or None)."""
    hi = None
    k = lo
    while hi is None:
        nxt = min(k * 2, hi_limit)
        if nxt == k:
            return k, None
        if fits(nxt):
            k = nxt
        else:
            hi = nxt
    while hi - k > 1:
        mid = (k + hi) // 2
        if fits(mid):
            k = mid
        else:
            hi = mid
    return k, hi


def headroom(model: str, device: str = "n150", memory: str = "dram", step: int = 32, confirm: bool = True,
             settings=None, max_batch: int = 1024, folder: str | None = None) -> dict:
    """The headroom of one registry model: largest resolution (batch 1) and largest batch (at the
    entry's resolution) on the estimate, confirmed on ttnn when asked. A plain dict (JSON)."""
    from capture.registry import load_registry, lookup
    entry = lookup(load_registry(), model)
    folder = folder or tempfile.mkdtemp(prefix=f"optrace-headroom-{model}-")
    probes: dict[tuple, Probe] = {}

    def probe(b, h, w) -> Probe:
        if (b, h, w) not in probes:
            probes[(b, h, w)] = probe_estimate(entry, b, h, w, folder, device, memory)
        return probes[(b, h, w)]

    def fits_k(k):
        return probe(1, *_size(entry, k, step)).fits

    base_k = max(1, min(entry.inputs[0][2], entry.inputs[0][3]) // step)
    lo = base_k if fits_k(base_k) else 1
    out = {"model": model, "device": device, "memory": memory, "step": step, "backend": "estimate"}
    if not fits_k(lo):
        out["resolution"] = None
    else:
        k, k_fail = largest(fits_k, lo, MAX_SIDE // step)
        h, w = _size(entry, k, step)
        above = probe(1, *_size(entry, k_fail, step)) if k_fail else None
        out["resolution"] = {"batch": 1, "height": h, "width": w,
                             "above": asdict(above) if above else None}
    h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
    if probe(1, h0, w0).fits:
        b, b_fail = largest(lambda b: probe(b, h0, w0).fits, 1, max_batch)
        out["batch"] = {"batch": b, "height": h0, "width": w0,
                        "above": asdict(probe(b_fail, h0, w0)) if b_fail else None}
    else:
        out["batch"] = None
    for key in ("resolution", "batch"):   # each failing op's inputs at the largest size that fits
        f = out.get(key)
        if f and f.get("above"):
            from capture.schema import read_trace
            fit = read_trace(os.path.join(folder, f"{entry.name}_{f['batch']}x{f['height']}x{f['width']}.msgpack"))
            for row in f["above"]["failing_ops"]:
                row.append(_shapes(fit, fit.calls[row[0]]) if row[0] < len(fit.calls) else "")
    if confirm and settings is not None:
        for key in ("resolution", "batch"):
            found = out.get(key)
            if not found:
                continue
            at = probe_ttnn(entry, found["batch"], found["height"], found["width"], folder, settings)
            above = found["above"]
            up = probe_ttnn(entry, above["batch"], above["height"], above["width"], folder, settings) if above else None
            found["confirmed"] = "mock" if at.fits and (up is None or not up.fits) else ""
            found["device_check"] = {"at": asdict(at), "above": asdict(up) if up else None}
    return out


def headroom_rows(result: dict) -> list:
    """HeadroomRow per found size of a headroom() result."""
    from replay.report_data import HeadroomRow
    rows = []
    for key in ("resolution", "batch"):
        f = result.get(key)
        if f:
            above = (f.get("above") or {}).get("first_failure") or "nothing up to the search limit"
            rows.append(HeadroomRow(result["model"], f["batch"], f["height"], f["width"], f.get("confirmed", ""),
                                    above, f"largest {key} ({result['backend']}, {result['device']}, "
                                           f"step {result['step'] if key == 'resolution' else 1})"))
    return rows


def render_headroom(result: dict) -> str:
    """The 'maximum supported size' table `replay headroom` prints."""
    lines = [f"{result['model']} on {result['device']} ({result['memory']}): maximum supported size"]
    for r in headroom_rows(result):
        lines.append(f"  {r.note}: batch {r.batch}, {r.height} x {r.width}"
                     f"{' (confirmed on the ' + r.confirmed + ' device)' if r.confirmed else ''}")
        lines.append(f"    just above fails: {r.first_failing_above}")
    for key in ("resolution", "batch"):
        check = (result.get(key) or {}).get("device_check")
        if check and not result[key].get("confirmed"):
            at = check["at"]
            lines.append(f"  {key} NOT confirmed on the device: " + (
                f"at the found size it fails: {at['first_failure']} (the estimate does not model circular "
                "buffers or op scratch)" if not at["fits"] else "the size just above fits there too"))
    for key in ("resolution", "batch"):
        f = result.get(key)
        if f and f.get("above") and f["above"].get("failing_ops"):
            lines.append(f"  ops failing just above the largest {key}: their inputs there, and the largest that fit")
            for call, op, shapes, status, *fit in f["above"]["failing_ops"]:
                lines.append(f"    call {call} {op} {shapes} -> {status}; fits at {fit[0] if fit else '?'}")
        if result.get(key) is None:
            lines.append(f"  {key}: the registry's own input size already fails")
    return "\n".join(lines)


def write_headroom(result: dict, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"headroom_{result['device']}_{result['memory']}_{result['model']}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return path
