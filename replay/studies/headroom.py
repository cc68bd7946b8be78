"""Headroom: the largest input (resolution, then batch) a model still replays without a failure.

Each candidate size is re-traced on fake tensors (``capture.capture.capture_model(..., fake=True)``,
seconds per model; this needs the torch environment) and replayed in context: scaling traced shapes
analytically would miss every shape a model derives from its input in its own way (attention
windows, anchors, padding), so we re-trace. A size "fits" when no call fails for memory (oom_*,
cb_overflow; on a device also crash and timeout); unsupported ops are a mapping gap, not a size
limit. Resolution keeps the registry entry's aspect ratio and moves in steps of ``step`` pixels on
the short side; batch moves by 1 at the entry's resolution.

Per axis: the estimate (replay.context.estimate) bisects first (doubling until a failure, then
bisection), which is cheap. With ``confirm`` the ttnn device (mock or real) then checks the
estimate's bound and one step above; where they disagree the search goes on *on the device*
(``device_search``): upward from the bound, or, when the bound fails, first a few sizes just below
it (the device usually fails close under the estimate), then bisection between the traced size and
the lowest failure, within ``max_device_probes``. So the answer is always a size the device ran,
with what fails one step above; the estimate's bound and why the two differ are kept beside it.
For each op failing one step above, the op alone (its signature at that size, re-traced) is
bisected over the same sizes on the same backend: the largest of its inputs that fits alone.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from replay.results import OOM_STATUSES

MEMORY_FAILURES = OOM_STATUSES + ("cb_overflow",)
DEVICE_FAILURES = MEMORY_FAILURES + ("crash", "timeout")   # a size that kills or hangs the worker does not fit
MAX_SIDE = 32768
FAILING_OPS_KEPT = 5
# Below a failing estimate bound the device first tries bound - 1 and - 2 steps (then - 4, - 8, ...
# with a larger gallop). Each such probe is pure extra when the device's limit is far below: with two,
# no limit costs more than two runs over a plain bisection from the traced size; with three, some do.
GALLOP_PROBES = 2
MISSED_BY_THE_ESTIMATE = {
    "cb_overflow": "the estimate places no circular buffers",
    "oom_l1": "the estimate places no circular buffers or op scratch in L1",
    "oom_l1_small": "the estimate does not model the L1_SMALL region",
    "oom_dram": "the estimate's rule for this op places fewer DRAM buffers than ttnn (or first-fit vs best-fit)",
    "crash": "the device worker died (nothing the estimate models)",
    "timeout": "the device worker hung (nothing the estimate models)",
}


@dataclass
class Probe:
    """One candidate input size and its in-context verdict on one backend."""
    batch: int
    height: int
    width: int
    fits: bool
    backend: str = "estimate"   # estimate | mock | real
    first_failure: str = ""     # "call 183 aten._softmax.default in model.9 [4, 12, 8160, 8160] oom_dram, 1.2 GiB"
    failing_ops: list = field(default_factory=list)   # dicts: call, op, module_path, input_shapes, status, requested_bytes
    time_s: float = 0.0

    def size(self) -> str:
        return f"batch {self.batch}, {self.height} x {self.width}"


def _shapes(trace, call) -> str:
    from replay.report.attribution import format_shapes, input_shapes
    return format_shapes(input_shapes(trace.signatures[call.signature]))


def trace_at(entry, batch: int, height: int, width: int, folder: str):
    """The registry entry re-traced on fake tensors at [batch, C, height, width] (kept in folder)."""
    from capture.schema import read_trace, write_trace
    path = os.path.join(folder, f"{entry.name}_{batch}x{height}x{width}.msgpack")
    if not os.path.isfile(path):
        from capture.capture import capture_model
        shape = [[batch, entry.inputs[0][1], height, width]]
        try:
            trace = capture_model(_built_for(entry, height, width), inputs=shape, fake=True)
        except TypeError:   # a timm model without an img_size argument takes any size as it is
            trace = capture_model(entry, inputs=shape, fake=True)
        write_trace(trace, path + ".tmp")
        os.replace(path + ".tmp", path)
    return read_trace(path)


def _built_for(entry, height: int, width: int):
    """The entry built for this input size: timm models with a fixed input size (swin, vit) are
    created with ``img_size`` (their position tables and attention windows follow it)."""
    if entry.source != "timm" or [height, width] == list(entry.inputs[0][2:]):
        return entry
    from dataclasses import replace
    return replace(entry, kwargs={**entry.kwargs, "img_size": (height, width)})


def verdict(trace, records, batch, height, width, backend="estimate", failures=MEMORY_FAILURES) -> Probe:
    """The Probe of one in-context run: fits when no call (other than a cascade) fails in ``failures``."""
    bad = [r for r in records if r.status in failures and not r.cascade]
    ops = [{"call": r.index, "op": r.op, "module_path": r.module_path,
            "input_shapes": _shapes(trace, trace.calls[r.index]), "status": r.status,
            "requested_bytes": (r.oom or {}).get("requested_bytes")} for r in bad[:FAILING_OPS_KEPT]]
    first = ""
    if ops:
        o = ops[0]
        first = (f"call {o['call']} {o['op']} in {o['module_path'] or '(model)'} {o['input_shapes']} {o['status']}"
                 + (f", {o['requested_bytes']:,} B requested" if o["requested_bytes"] else ""))
    return Probe(batch, height, width, not bad, backend, first, ops)


def probe_estimate(entry, batch, height, width, folder, device="n150", memory="dram", dtype="bfloat16") -> Probe:
    """Re-trace at this size and replay the whole model in context on the estimate, once."""
    from replay.context.estimate import simulate_estimate
    from replay.backends.estimate import EstimateSettings
    t0 = time.monotonic()
    trace = trace_at(entry, batch, height, width, folder)
    records, _ = simulate_estimate(trace, EstimateSettings(device=device, dtype=dtype, memory=memory))
    p = verdict(trace, records, batch, height, width)
    p.time_s = time.monotonic() - t0
    return p


def probe_device(entry, batch, height, width, folder, settings) -> Probe:
    """Re-trace at this size and replay the whole model in context on the ttnn device (mock or
    real; settings is RunSettings), once."""
    from replay.context.plan import _run_ttnn
    t0 = time.monotonic()
    trace = trace_at(entry, batch, height, width, folder)
    records, _, info = _run_ttnn(trace, settings, settings.log_dir or folder)
    p = verdict(trace, records, batch, height, width, "mock" if info.get("mock") else "real", DEVICE_FAILURES)
    p.time_s = time.monotonic() - t0
    return p


def _size(entry, k: int, step: int) -> tuple[int, int]:
    """Short side k*step, the other side keeping the entry's aspect ratio (a multiple of step)."""
    h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
    short = k * step
    if h0 <= w0:
        return short, max(step, round(short * w0 / h0 / step) * step)
    return max(step, round(short * h0 / w0 / step) * step), short


def search(fits, lo: int, hi: int | None, hi_limit: int, budget: int | None = None) -> tuple[int, int | None, bool]:
    """Largest k in [lo, hi_limit] with fits(k), given fits(lo) and (when hi is not None) not fits(hi):
    doubling while no failure is known, then bisection. At most ``budget`` calls of fits. Returns
    (k, the smallest failing k seen or None, exact: k + 1 is known to fail or k is hi_limit)."""
    used = 0
    k = lo
    while hi is None:
        nxt = min(k * 2, hi_limit)
        if nxt == k:
            return k, None, True
        if budget is not None and used >= budget:
            return k, None, False
        used += 1
        if fits(nxt):
            k = nxt
        else:
            hi = nxt
    while hi - k > 1:
        if budget is not None and used >= budget:
            return k, hi, False
        used += 1
        mid = (k + hi) // 2
        if fits(mid):
            k = mid
        else:
            hi = mid
    return k, hi, True


def device_search(fits, lo: int, bound: int | None, hi_limit: int, budget: int,
                  gallop: int = GALLOP_PROBES) -> tuple[int | None, int | None, bool]:
    """Largest k in [lo, hi_limit] with fits(k) (one device run per call), starting from the
    estimate's bound (None: the estimate fails at lo already). Returns (k, the smallest failing k
    seen or None, exact); k is always one fits passed, None when lo itself fails. At most about
    ``budget`` calls: the bound and one above it, and lo when nothing else passed, run regardless."""
    used = 0

    def probe(k):
        nonlocal used
        used += 1
        return fits(k)
    if bound is None:
        if not probe(lo):
            return None, lo, True
        return search(probe, lo, None, hi_limit, budget - used)
    if probe(bound):
        if bound >= hi_limit:
            return bound, None, True
        if not probe(bound + 1):
            return bound, bound + 1, True
        return search(probe, bound + 1, None, hi_limit, budget - used)   # the estimate is too cautious
    hi, d = bound, 1
    for _ in range(gallop):   # the device fails at the bound: bound - 1, - 2, - 4, ... steps
        k = max(lo, bound - d)
        if k >= hi or used >= budget:
            break
        if probe(k):
            return search(probe, k, hi, hi_limit, max(0, budget - used))
        hi, d = k, d * 2
    if hi == lo:
        return None, lo, True
    # Bisection between lo and the lowest failure; lo - 1 stands for "nothing passed yet", so lo is
    # run only when every size above it fails (the traced size, not yet run on the device).
    k, hi, exact = search(probe, lo - 1, hi, hi_limit, max(0, budget - used))
    if k >= lo:
        return k, hi, exact
    if hi == lo:
        return None, lo, True
    if not probe(lo):   # the budget ran out before anything passed
        return None, lo, True
    return lo, hi, hi == lo + 1


def largest(fits, lo: int, hi_limit: int) -> tuple[int, int | None]:
    """Largest k in [lo, hi_limit] with fits(k) (fits(lo) assumed); returns (k, smallest failing k or None)."""
    k, hi, _ = search(fits, lo, None, hi_limit)
    return k, hi


def _call_key(trace, index: int) -> tuple[str, str, int]:
    """(module path, op, n-th such call): the same call in a trace of the model at another size."""
    call = trace.calls[index]
    path, op = trace.module_path(call), trace.op_name(call)
    n = sum(1 for c in trace.calls[:index] if trace.op_name(c) == op and trace.module_path(c) == path)
    return path, op, n


def _find_call(trace, key):
    path, op, n = key
    for c in trace.calls:
        if trace.op_name(c) == op and trace.module_path(c) == path:
            if n == 0:
                return c
            n -= 1
    return None


class Prober:
    """Re-traces and replays candidate sizes of one model on the estimate or the ttnn device, once
    each, printing what it ran (size, backend, verdict, seconds)."""

    def __init__(self, entry, folder: str, device: str, memory: str, settings=None, log=None):
        self.entry, self.folder, self.device, self.memory, self.settings = entry, folder, device, memory, settings
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.cache: dict[tuple, Probe] = {}
        self.device_kind = "device"     # mock | real, once the device has answered
        self.device_probes = 0

    def _say(self, what: str, p: Probe) -> None:
        self.log(f"headroom {self.entry.name}: {what} {p.size()} on {p.backend}: "
                 f"{'fits' if p.fits else 'fails: ' + p.first_failure} ({p.time_s:.1f} s)")

    def estimate(self, b: int, h: int, w: int) -> Probe:
        key = ("estimate", b, h, w)
        if key not in self.cache:
            dtype = self.settings.dtype if self.settings else "bfloat16"
            self.cache[key] = probe_estimate(self.entry, b, h, w, self.folder, self.device, self.memory, dtype)
            self._say("model", self.cache[key])
        return self.cache[key]

    def on_device(self, b: int, h: int, w: int) -> Probe:
        key = ("device", b, h, w)
        if key not in self.cache:
            self.cache[key] = p = probe_device(self.entry, b, h, w, self.folder, self.settings)
            self.device_kind = p.backend
            self.device_probes += 1
            self._say("model", p)
        return self.cache[key]

    def op_alone(self, key: tuple, b: int, h: int, w: int, backend: str) -> tuple[bool, str, str]:
        """One call of the model at this size (found by module path, op and occurrence), replayed alone:
        (fits, its input shapes, status)."""
        from replay.studies.remedies import Variant, run_variants
        from replay.run.runner import RunSettings
        t0 = time.monotonic()
        trace = trace_at(self.entry, b, h, w, self.folder)
        call = _find_call(trace, key)
        if call is None:
            return False, "", "not in the trace at this size"
        sig = trace.signatures[call.signature]
        s = self.settings if backend != "estimate" else RunSettings(backend="estimate", device=self.device,
                                                                 memory=self.memory)
        dtype = s.dtype if s else "bfloat16"
        r = run_variants([Variant("as traced", dtype, "TILE", self.memory, sig, trace.ops[call.op].arg_names)], s)[0]
        fits = r.status not in DEVICE_FAILURES
        self.log(f"headroom {self.entry.name}: {key[1]} in {key[0] or '(model)'} alone at batch {b}, {h} x {w} "
                 f"on {backend}: {'fits' if fits else r.status} ({time.monotonic() - t0:.1f} s)")
        return fits, _shapes(trace, call), r.status


def _why(est: dict, found: dict, dev_above: dict | None, est_above: dict | None, est_at_dev_above: Probe | None) -> str:
    """Why the device's largest size differs from the estimate's bound, in one sentence."""
    est_key, dev_key = (est["batch"], est["height"], est["width"]), (found["batch"], found["height"], found["width"])
    if est_key == dev_key:
        return ""
    if dev_key < est_key and dev_above and dev_above.get("failing_ops"):
        o = dev_above["failing_ops"][0]
        passes = est_at_dev_above is not None and est_at_dev_above.fits
        return (f"at batch {dev_above['batch']}, {dev_above['height']} x {dev_above['width']} the device fails first at "
                f"call {o['call']} {o['op']} in {o['module_path'] or '(model)'} ({o['status']}"
                + (f", {o['requested_bytes']:,} B requested" if o.get("requested_bytes") else "") + ")"
                + (", which the estimate passes: " if passes else ": ")
                + MISSED_BY_THE_ESTIMATE.get(o["status"], "a failure the estimate does not model"))
    if dev_key > est_key and est_above and est_above.get("failing_ops"):
        o = est_above["failing_ops"][0]
        return (f"the estimate fails at batch {est_above['batch']}, {est_above['height']} x {est_above['width']} at "
                f"call {o['call']} {o['op']} ({o['status']}), which the device passes: the estimate over-counts there")
    return "the device's probe budget ran out before the two met"


def _ops_alone(prober: Prober, size_of, k_fit: int, k_fail: int, hi_limit: int, above: dict, backend: str,
               max_probes: int) -> None:
    """For each op failing one step above (distinct module path and op), the largest size at which the
    op alone still fits, written into its failing_ops row as ``fits_alone``."""
    seen = set()
    above_trace = trace_at(prober.entry, *size_of(k_fail), prober.folder)
    for row in above.get("failing_ops") or []:
        key = _call_key(above_trace, row["call"])
        if (key[0], key[1]) in seen:
            continue
        seen.add((key[0], key[1]))
        shapes: dict[int, str] = {}

        def fits(k, key=key, shapes=shapes):
            ok, s, _ = prober.op_alone(key, *size_of(k), backend)
            if ok:
                shapes[k] = s
            return ok
        if not fits(k_fail):
            k, exact = (k_fit, True) if fits(k_fit) else (None, True)
        else:
            k, _, exact = search(fits, k_fail, None, hi_limit, max_probes)
        if k is None:
            row["fits_alone"] = {"note": "fails alone at the largest size that fits in context too"}
            continue
        b, h, w = size_of(k)
        row["fits_alone"] = {"batch": b, "height": h, "width": w, "input_shapes": shapes.get(k, ""),
                             "exact": exact, "fails_alone_above": k == k_fit, "at_search_limit": k == hi_limit}


def _axis(prober: Prober, size_of, lo: int, hi_limit: int, confirm: bool, max_device_probes: int,
          op_probes: int) -> dict | None:
    """One axis (resolution or batch): the estimate's bound, then (confirm) the device's largest size."""
    if not prober.estimate(*size_of(lo)).fits:
        est = None
        k_est, k_est_fail = None, None
    else:
        k_est, k_est_fail = largest(lambda k: prober.estimate(*size_of(k)).fits, lo, hi_limit)
        est = _found(prober.estimate, size_of, k_est, k_est_fail)
    if not confirm or prober.settings is None:
        if est is None:
            return None
        est.update(backend="estimate", confirmed="", exact=True, estimate=dict(est), why="")
        if k_est_fail:
            _ops_alone(prober, size_of, k_est, k_est_fail, hi_limit, est["above"], "estimate", op_probes)
        return est

    start = prober.device_probes
    k, k_fail, exact = device_search(lambda k: prober.on_device(*size_of(k)).fits, lo, k_est, hi_limit,
                                     max_device_probes)
    if k is None:
        return {"batch": None, "backend": prober.device_kind, "confirmed": "", "estimate": est,
                "above": asdict(prober.on_device(*size_of(lo))), "exact": True,
                "why": "the registry's own input size already fails on the device"}
    found = _found(prober.on_device, size_of, k, k_fail)
    est_at = prober.estimate(*size_of(k_fail)) if k_fail is not None and est is not None else None
    found.update(backend=prober.device_kind, confirmed=prober.device_kind, exact=exact, estimate=est,
                 device_probes=prober.device_probes - start,
                 why=_why(est, found, found["above"], est["above"], est_at) if est else "")
    if k_fail is not None:
        _ops_alone(prober, size_of, k, k_fail, hi_limit, found["above"], prober.device_kind, op_probes)
    return found


def _found(probe, size_of, k, k_fail) -> dict:
    b, h, w = size_of(k)
    return {"batch": b, "height": h, "width": w, "above": asdict(probe(*size_of(k_fail))) if k_fail else None}


def headroom(model, device: str = "n150", memory: str = "dram", step: int = 32, confirm: bool = True,
             settings=None, max_batch: int = 1024, folder: str | None = None, max_device_probes: int = 12,
             op_probes: int = 5, log=None) -> dict:
    """The headroom of one registry model (a name or a ModelEntry): largest resolution (batch 1) and
    largest batch (at the entry's resolution), on the estimate and, with confirm and ttnn settings
    (RunSettings), on the device. A plain dict (JSON)."""
    if isinstance(model, str):
        from capture.registry import load_registry, lookup
        entry = lookup(load_registry(), model)
    else:
        entry = model
    folder = folder or tempfile.mkdtemp(prefix=f"optrace-headroom-{entry.name}-")
    os.makedirs(folder, exist_ok=True)
    prober = Prober(entry, folder, device, memory, settings, log)
    t0 = time.monotonic()
    h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
    base_k = max(1, min(h0, w0) // step)
    out = {"model": entry.name, "device": device, "memory": memory, "step": step,
           "confirm": bool(confirm and settings is not None),
           "resolution": _axis(prober, lambda k: (1, *_size(entry, k, step)), base_k, MAX_SIDE // step, confirm,
                               max_device_probes, op_probes),
           "batch": _axis(prober, lambda b: (b, h0, w0), 1, max_batch, confirm, max_device_probes, op_probes)}
    out["backend"] = prober.device_kind if out["confirm"] else "estimate"
    out["time_s"] = round(time.monotonic() - t0, 1)
    out["probes"] = [[k[0] if k[0] == "estimate" else p.backend, p.batch, p.height, p.width, p.fits,
                      round(p.time_s, 1)] for k, p in prober.cache.items()]
    return out


# ---------------------------------------------------------------------------------------------
# Stored results and the reports

def headroom_path(out_dir: str, model: str, device: str, memory: str) -> str:
    """Where `replay headroom` stores its result, next to the replay results the reports read."""
    return os.path.join(out_dir, f"headroom_{device}_{memory}_{model}.json")


def write_headroom(result: dict, out_dir: str) -> str:
    """Write a headroom() result as JSON (atomically); returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = headroom_path(out_dir, result["model"], result["device"], result["memory"])
    fd, tmp = tempfile.mkstemp(prefix=".tmp-headroom-", dir=out_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_headroom_rows(folder: str, device: str | None = None, memory: str | None = None,
                       models=None) -> list:
    """HeadroomRows of the headroom_*.json files in folder (for the device, memory and models given)."""
    import glob
    rows = []
    for path in sorted(glob.glob(os.path.join(folder or ".", "headroom_*.json"))):
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(result, dict) or "model" not in result:
            continue
        if (device and result.get("device") != device) or (memory and result.get("memory") != memory) or \
                (models is not None and result["model"] not in models):
            continue
        rows += headroom_rows(result)
    return rows


def _size_text(f: dict | None) -> str:
    return f"batch {f['batch']}, {f['height']} x {f['width']}" if f and f.get("batch") else "-"


def headroom_rows(result: dict) -> list:
    """HeadroomRow per axis of a headroom() result."""
    from replay.report.data import HeadroomRow
    rows = []
    for key in ("resolution", "batch"):
        f = result.get(key)
        if not f or not f.get("batch"):
            continue
        above = (f.get("above") or {}).get("first_failure") or "nothing up to the search limit"
        if not f.get("exact", True):
            above += " (the probe budget ran out before one step above)"
        step = result["step"] if key == "resolution" else 1
        rows.append(HeadroomRow(result["model"], f["batch"], f["height"], f["width"], f.get("confirmed", ""),
                                above, f"largest {key} ({result['device']}, {result['memory']}, step {step})",
                                key, _size_text(f.get("estimate")), f.get("why", "")))
    return rows


def render_headroom(result: dict) -> str:
    """The 'maximum supported size' table `replay headroom` prints."""
    lines = [f"{result['model']} on {result['device']} ({result['memory']}): maximum supported size"
             + (f", {result['time_s']} s" if "time_s" in result else "")]
    for key in ("resolution", "batch"):
        f = result.get(key)
        if not f or not f.get("batch"):
            lines.append(f"  largest {key}: none; the registry's own input size already fails"
                         + (f": {f['above']['first_failure']}" if f and f.get("above") else ""))
            continue
        step = result["step"] if key == "resolution" else 1
        on = f"confirmed on the {f['confirmed']} device" if f.get("confirmed") else "on the estimate"
        lines.append(f"  largest {key} (step {step}): {_size_text(f)} ({on}"
                     + (f", {f['device_probes']} device runs" if "device_probes" in f else "") + ")")
        ab = f.get("above")
        lines.append(f"    one step above fails: {_size_text(ab)}: {ab['first_failure']}" if ab else
                     "    nothing fails up to the search limit")
        if not f.get("exact", True):
            lines.append("    (the device probe budget ran out: the failure above is not one step above)")
        if f.get("confirmed"):
            lines.append(f"    the estimate's bound: {_size_text(f.get('estimate'))}"
                         + (f"; they differ: {f['why']}" if f.get("why") else "; the device agrees"))
        for o in (ab or {}).get("failing_ops") or []:
            alone = o.get("fits_alone")
            if alone is None:
                continue
            lines.append(f"    call {o['call']} {o['op']} in {o['module_path'] or '(model)'} {o['input_shapes']} -> "
                         f"{o['status']}; alone it fits up to "
                         + (f"{_size_text(alone)}: {alone['input_shapes']}"
                            + ("" if alone.get("exact") else " (probe budget ran out)")
                            + (" (the search limit)" if alone.get("at_search_limit") else "")
                            if alone.get("batch") else alone.get("note", "?")))
    return "\n".join(lines)
