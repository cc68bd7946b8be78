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
(``replay.studies.search.device_search``): upward from the bound, or, when the bound fails, first a
few sizes just below it (the device usually fails close under the estimate), then bisection between
the traced size and the lowest failure, within ``max_device_probes``. So the answer is always a size
the device ran, with what fails one step above; the estimate's bound and why the two differ are kept
beside it. For each op failing one step above, the op alone (its signature at that size, re-traced)
is bisected over the same sizes on the same backend: the largest of its inputs that fits alone.

This module runs the probes and the per-axis logic; the searches are ``search.py``, the result
records and their JSON file ``headroom_result.py``.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable

from capture.capture import trace_built
from capture.registry import ModelEntry, build_with_inputs, load_registry, lookup
from capture.schema import Trace, read_trace, write_trace
from replay.backends.devices import L1_SMALL_BYTES, get_device
from replay.backends.estimate import EstimateSettings
from replay.context.estimate import simulate_estimate
from replay.context.run import run_ttnn_context
from replay.results import MEMORY_FAILURES
from replay.run.runner import RunSettings
from replay.shapes import format_shapes, input_shapes
from replay.studies.headroom_result import AxisResult, Bound, FailingOp, FitsAlone, HeadroomResult, Probe
from replay.studies.remedies import Variant, run_variants
from replay.studies.search import GALLOP_PROBES, Localize, device_search, largest, largest_guided, search

CRASHES = ("crash", "timeout")
DEVICE_FAILURES = MEMORY_FAILURES + CRASHES   # a size that kills or hangs the worker does not fit
LOCALIZE_PROBES = 10   # runs of one op alone to find where a call failing in context stops fitting alone
MAX_SIDE = 32768
FAILING_OPS_KEPT = 5
MISSED_BY_THE_ESTIMATE = {
    "cb_overflow": "the estimate places no circular buffers",
    "oom_l1": "the estimate places no circular buffers or op scratch in L1",
    "oom_l1_small": "the estimate does not model the L1_SMALL region",
    "oom_dram": "the estimate's rule for this op places fewer DRAM buffers than ttnn (or first-fit vs best-fit)",
    "crash": "the device worker died (nothing the estimate models)",
    "timeout": "the device worker hung (nothing the estimate models)",
}

SizeOf = Callable[[int], tuple[int, int, int]]   # axis step k -> (batch, height, width)
CallKey = tuple[str, str, int]                   # (module path, op, n-th such call)


# ---------------------------------------------------------------------------------------------
# One size: re-trace, replay in context, judge

def _shapes(trace: Trace, call) -> str:
    return format_shapes(input_shapes(trace.signatures[call.signature]))


class ModelBuilds:
    """Models built from registry entries, the last ``keep`` of them: re-tracing one model at many sizes
    builds it once per distinct build (every batch, and every resolution unless timm fixes the input
    size), not once per size. Building (random weights) costs seconds; tracing on fake tensors, a tenth."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.built: dict[str, tuple] = {}

    def get(self, entry: ModelEntry) -> tuple:
        """(model, example) built from entry (built now if not kept)."""
        key = repr(entry)
        if key not in self.built:
            while len(self.built) >= self.keep:
                self.built.pop(next(iter(self.built)))
            self.built[key] = build_with_inputs(entry)
        return self.built[key]


def trace_at(entry: ModelEntry, batch: int, height: int, width: int, folder: str,
             builds: ModelBuilds | None = None) -> Trace:
    """The registry entry re-traced on fake tensors at [batch, C, height, width] (kept in folder);
    with ``builds``, the model is built once for every size that shares its build."""
    path = os.path.join(folder, f"{entry.name}_{batch}x{height}x{width}.msgpack")
    if not os.path.isfile(path):
        builds = builds or ModelBuilds(keep=1)
        shape = [[batch, entry.inputs[0][1], height, width]]
        try:
            trace = trace_built(*builds.get(_built_for(entry, height, width)), _built_for(entry, height, width),
                                fake=True, inputs=shape)
        except TypeError:   # a timm model without an img_size argument takes any size as it is
            trace = trace_built(*builds.get(entry), entry, fake=True, inputs=shape)
        write_trace(trace, path)   # atomic: a half-written trace is never found by the check above
    return read_trace(path)


def _built_for(entry: ModelEntry, height: int, width: int) -> ModelEntry:
    """The entry built for this input size: timm models with a fixed input size (swin, vit) are
    created with ``img_size`` (their position tables and attention windows follow it)."""
    if entry.source != "timm" or [height, width] == list(entry.inputs[0][2:]):
        return entry
    return replace(entry, kwargs={**entry.kwargs, "img_size": (height, width)})


def _first_failure_text(o: FailingOp) -> str:
    return (f"call {o.call} {o.op} in {o.module_path or '(model)'} {o.input_shapes} {o.status}"
            + (f", {o.requested_bytes:,} B requested" if o.requested_bytes else ""))


def verdict(trace: Trace, records, batch: int, height: int, width: int, backend: str = "estimate",
            failures=MEMORY_FAILURES, time_s: float = 0.0) -> Probe:
    """The Probe of one in-context run: fits when no call (other than a cascade) fails in ``failures``."""
    bad = [r for r in records if r.status in failures and not r.cascade]
    ops = [FailingOp(call=r.index, op=r.op, module_path=r.module_path,
                     input_shapes=_shapes(trace, trace.calls[r.index]), status=r.status,
                     requested_bytes=(r.oom or {}).get("requested_bytes")) for r in bad[:FAILING_OPS_KEPT]]
    return Probe(batch=batch, height=height, width=width, fits=not bad, backend=backend,
                 first_failure=_first_failure_text(ops[0]) if ops else "", failing_ops=ops, time_s=time_s)


def probe_estimate(entry: ModelEntry, batch: int, height: int, width: int, folder: str, device: str = "n150",
                   memory: str = "dram", dtype: str = "bfloat16", builds: ModelBuilds | None = None,
                   needs: dict | None = None) -> Probe:
    """Re-trace at this size and replay the whole model in context on the estimate, once (with
    ``needs``, how full of memory it was goes there: ``memory_need``)."""
    t0 = time.monotonic()
    trace = trace_at(entry, batch, height, width, folder, builds)
    records, _ = simulate_estimate(trace, EstimateSettings(device=device, dtype=dtype, memory=memory))
    if needs is not None:
        needs[(batch, height, width)] = memory_need(records, device)
    return verdict(trace, records, batch, height, width, time_s=time.monotonic() - t0)


def memory_need(records, device: str) -> float | None:
    """How full of memory an in-context run was, as a fraction of a bank (what steers the estimate's
    size search): at its first memory failure, what the failing buffer asked for on top of what was
    held (> 1 when the bank is exhausted); else the peak over its calls. None when the failure has no
    numbers (a circular-buffer overflow)."""
    bad = next((r for r in records if r.status in MEMORY_FAILURES and not r.cascade), None)
    if bad is not None:
        oom = bad.oom or {}
        if not oom.get("bank_bytes"):
            return None
        return (oom.get("allocated_bytes", 0) + oom.get("per_bank_bytes", 0)) / oom["bank_bytes"]
    spec = get_device(device)
    (dram_banks, dram_bank), (l1_banks, l1_bank) = spec.banks("DRAM"), spec.banks("L1", L1_SMALL_BYTES)
    return max([0.0] + [max(r.dram_bytes / (dram_banks * dram_bank), r.l1_bytes / (l1_banks * l1_bank))
                        for r in records])


def probe_device(entry: ModelEntry, batch: int, height: int, width: int, folder: str,
                 settings: RunSettings, stop_at_first_failure: bool = True, builds: ModelBuilds | None = None) -> Probe:
    """Re-trace at this size and replay the whole model in context on the ttnn device (mock or
    real), once; by default only up to the first failing call (all a verdict needs)."""
    t0 = time.monotonic()
    trace = trace_at(entry, batch, height, width, folder, builds)
    records, _, info = run_ttnn_context(trace, settings, settings.log_dir or folder,
                                        stop_at_first_failure=stop_at_first_failure)
    return verdict(trace, records, batch, height, width, "mock" if info.get("mock") else "real", DEVICE_FAILURES,
                   time_s=time.monotonic() - t0)


def _size(entry: ModelEntry, k: int, step: int) -> tuple[int, int]:
    """Short side k*step, the other side keeping the entry's aspect ratio (a multiple of step)."""
    h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
    short = k * step
    if h0 <= w0:
        return short, max(step, round(short * w0 / h0 / step) * step)
    return max(step, round(short * h0 / w0 / step) * step), short


def _call_key(trace: Trace, index: int) -> CallKey:
    """(module path, op, n-th such call): the same call in a trace of the model at another size."""
    call = trace.calls[index]
    path, op = trace.module_path(call), trace.op_name(call)
    n = sum(1 for c in trace.calls[:index] if trace.op_name(c) == op and trace.module_path(c) == path)
    return path, op, n


def _find_call(trace: Trace, key: CallKey):
    path, op, n = key
    for c in trace.calls:
        if trace.op_name(c) == op and trace.module_path(c) == path:
            if n == 0:
                return c
            n -= 1
    return None


@dataclass(kw_only=True)
class OpAlone:
    """One call of the model at one size, replayed alone."""
    fits: bool
    input_shapes: str
    status: str


class Prober:
    """Re-traces and replays candidate sizes of one model on the estimate or the ttnn device, once
    each, printing what it ran (size, backend, verdict, seconds). Device runs that do not depend on
    each other (``prefetch``, ``in_parallel``) run side by side in up to ``jobs`` worker processes."""

    def __init__(self, entry: ModelEntry, folder: str, device: str, memory: str, settings: RunSettings | None = None,
                 log: Callable[[str], None] | None = None, jobs: int = 1, baseline: bool = False):
        self.entry, self.folder, self.device, self.memory, self.settings = entry, folder, device, memory, settings
        # baseline: the strategy before issue 11, kept to measure against (benchmarks/bench_headroom.py): one
        # device run at a time, each to the end of the model, ops alone searched on the device directly
        self.baseline = baseline
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.jobs = max(1, jobs)
        self.cache: dict[tuple, Probe] = {}
        self.alone: dict[tuple, OpAlone] = {}
        self.needs: dict[tuple, float | None] = {}   # size -> memory_need of its estimate run
        self.builds = None if baseline else ModelBuilds()   # the baseline built the model for every size
        self.device_kind = "device"     # mock | real, once the device has answered
        self.device_probes = 0
        # both axes search at once (``headroom``): tracing (torch, this process) one at a time, and at
        # most ``jobs`` device runs (worker processes) in all
        self.torch_lock = threading.RLock()
        self.device_slots = threading.BoundedSemaphore(self.jobs)

    def _say(self, what: str, p: Probe) -> None:
        self.log(f"headroom {self.entry.name}: {what} {p.size()} on {p.backend}: "
                 f"{'fits' if p.fits else 'fails: ' + p.first_failure} ({p.time_s:.1f} s)")

    def trace(self, b: int, h: int, w: int) -> Trace:
        """The model re-traced at this size (once; the model built once per distinct build)."""
        with self.torch_lock:
            return trace_at(self.entry, b, h, w, self.folder, self.builds)

    def estimate(self, b: int, h: int, w: int) -> Probe:
        """The whole model in context on the estimate at this size (run once)."""
        key = ("estimate", b, h, w)
        if key not in self.cache:
            dtype = self.settings.dtype if self.settings else "bfloat16"
            with self.torch_lock:
                self.cache[key] = probe_estimate(self.entry, b, h, w, self.folder, self.device, self.memory, dtype,
                                                 self.builds, self.needs)
            self._say("model", self.cache[key])
        return self.cache[key]

    def in_parallel(self, work: list[Callable[[], object]]) -> list:
        """Run independent device runs (each waits on its own worker process) up to ``jobs`` at a time."""
        if self.jobs == 1 or len(work) < 2:
            return [fn() for fn in work]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(work))) as pool:
            return list(pool.map(lambda fn: fn(), work))

    def prefetch(self, sizes: list[tuple[int, int, int]]) -> None:
        """Run the device at these sizes side by side (those not run yet); ``on_device`` then finds them."""
        if self.baseline:
            return
        todo = [s for s in dict.fromkeys(sizes) if ("device", *s) not in self.cache]
        for s in todo:   # re-tracing needs torch and this process: one at a time, before the device runs
            self.trace(*s)
        probes = self.in_parallel([lambda s=s: self._probe_device(s) for s in todo])
        for s, p in zip(todo, probes):
            self._keep_device(s, p)

    def _probe_device(self, size: tuple[int, int, int]) -> Probe:
        self.trace(*size)
        with self.device_slots:
            return probe_device(self.entry, *size, self.folder, self.settings,
                                stop_at_first_failure=not self.baseline, builds=self.builds)

    def _keep_device(self, size: tuple[int, int, int], p: Probe) -> None:
        self.cache[("device", *size)] = p
        self.device_kind = p.backend
        self.device_probes += 1
        self._say("model", p)

    def on_device(self, b: int, h: int, w: int) -> Probe:
        """The whole model in context on the ttnn device at this size (run once, up to its first failure)."""
        if ("device", b, h, w) not in self.cache:
            self._keep_device((b, h, w), self._probe_device((b, h, w)))
        return self.cache[("device", b, h, w)]

    def probes(self) -> list[Probe]:
        """Every run so far, in the order they were made."""
        return list(self.cache.values())

    def op_alone(self, key: CallKey, b: int, h: int, w: int, backend: str) -> OpAlone:
        """One call of the model at this size (found by module path, op and occurrence), replayed alone
        (run once per size and backend)."""
        memo = (key, b, h, w, backend)
        if memo in self.alone:
            return self.alone[memo]
        t0 = time.monotonic()
        trace = self.trace(b, h, w)
        call = _find_call(trace, key)
        if call is None:
            return OpAlone(fits=False, input_shapes="", status="not in the trace at this size")
        sig = trace.signatures[call.signature]
        s = self.settings if backend != "estimate" else RunSettings(backend="estimate", device=self.device,
                                                                    memory=self.memory)
        variant = Variant(name="as traced", dtype=s.dtype if s else "bfloat16", layout="TILE", memory=self.memory,
                          sig=sig, arg_names=trace.ops[call.op].arg_names)
        if backend == "estimate":
            r = run_variants([variant], s)[0]
        else:
            with self.device_slots:
                r = run_variants([variant], s)[0]
        fits = r.status not in DEVICE_FAILURES
        self.log(f"headroom {self.entry.name}: {key[1]} in {key[0] or '(model)'} alone at batch {b}, {h} x {w} "
                 f"on {backend}: {'fits' if fits else r.status} ({time.monotonic() - t0:.1f} s)")
        self.alone[memo] = OpAlone(fits=fits, input_shapes=_shapes(trace, call), status=r.status)
        return self.alone[memo]

    def ops_alone_side_by_side(self, key: CallKey, sizes: list[tuple[int, int, int]], backend: str) -> None:
        """``op_alone`` at these sizes, the device runs side by side (traces made here first)."""
        for s in sizes:
            self.trace(*s)
        self.in_parallel([lambda s=s: self.op_alone(key, *s, backend) for s in sizes])


# ---------------------------------------------------------------------------------------------
# One axis: the estimate's bound, the device's answer, why they differ, each failing op alone

@dataclass(kw_only=True)
class Axis:
    """How one axis is searched: its sizes, its range and the probe budgets."""
    size_of: SizeOf
    lo: int                  # the registry's own size, in steps
    hi_limit: int
    confirm: bool
    max_device_probes: int
    op_probes: int
    power: int = 1           # memory grows about linearly in k ** power (batch 1; resolution 2: the area)


def _why(est: Bound, found: Bound, est_at_dev_above: Probe | None) -> str:
    """Why the device's largest size differs from the estimate's bound, in one sentence."""
    est_key, dev_key = (est.batch, est.height, est.width), (found.batch, found.height, found.width)
    dev_above, est_above = found.above, est.above
    if est_key == dev_key:
        return ""
    if dev_key < est_key and dev_above and dev_above.failing_ops:
        o = dev_above.failing_ops[0]
        passes = est_at_dev_above is not None and est_at_dev_above.fits
        return (f"at {dev_above.size()} the device fails first at "
                f"call {o.call} {o.op} in {o.module_path or '(model)'} ({o.status}"
                + (f", {o.requested_bytes:,} B requested" if o.requested_bytes else "") + ")"
                + (", which the estimate passes: " if passes else ": ")
                + MISSED_BY_THE_ESTIMATE.get(o.status, "a failure the estimate does not model"))
    if dev_key > est_key and est_above and est_above.failing_ops:
        o = est_above.failing_ops[0]
        return (f"the estimate fails at {est_above.size()} at "
                f"call {o.call} {o.op} ({o.status}), which the device passes: the estimate over-counts there")
    return "the device's probe budget ran out before the two met"


def _largest_alone(fits: Callable[[int], bool], axis: Axis, k_fit: int, k_fail: int,
                   prefetch: Callable[[list[int]], None] | None = None) -> tuple[int | None, bool]:
    """The largest k at which ``fits`` (one op alone): one step above first, then the size that fits
    in context, or upward from one step above within ``axis.op_probes``. (k or None, exact)."""
    if prefetch is not None:
        prefetch([k_fail, k_fit])
    if not fits(k_fail):
        return (k_fit, True) if fits(k_fit) else (None, True)
    k, _, exact = search(fits, k_fail, None, axis.hi_limit, axis.op_probes, prefetch)
    return k, exact


def _fits_alone(prober: Prober, axis: Axis, key: CallKey, k_fit: int, k_fail: int, backend: str) -> FitsAlone:
    """The largest size at which the call ``key`` alone still fits on backend. On a device the runs
    that do not wait on each other (one step above and the size that fits in context; both cut
    points of each bisection round) run side by side. Each size is a re-trace, on the estimate as
    on the device, so the device searches directly."""
    shapes: dict[int, str] = {}

    def fits(k: int) -> bool:
        alone = prober.op_alone(key, *axis.size_of(k), backend)
        if alone.fits:
            shapes[k] = alone.input_shapes
        return alone.fits
    side_by_side = None
    if backend != "estimate" and not prober.baseline:
        def side_by_side(ks: list[int]) -> None:
            prober.ops_alone_side_by_side(key, [axis.size_of(k) for k in ks], backend)
    k, exact = _largest_alone(fits, axis, k_fit, k_fail, side_by_side)
    if k is None:
        return FitsAlone(note="fails alone at the largest size that fits in context too")
    b, h, w = axis.size_of(k)
    return FitsAlone(batch=b, height=h, width=w, input_shapes=shapes.get(k, ""), exact=exact,
                     fails_alone_above=k == k_fit, at_search_limit=k == axis.hi_limit)


def _ops_alone(prober: Prober, axis: Axis, k_fit: int, k_fail: int, above: Probe, backend: str) -> Probe:
    """The probe one step above with, for each failing op (distinct module path and op), the largest
    size at which the op alone still fits (``fits_alone``)."""
    seen = set()
    above_trace = prober.trace(*axis.size_of(k_fail))
    ops = []
    for o in above.failing_ops:
        key = _call_key(above_trace, o.call)
        if (key[0], key[1]) in seen:
            ops.append(o)
            continue
        seen.add((key[0], key[1]))
        ops.append(replace(o, fits_alone=_fits_alone(prober, axis, key, k_fit, k_fail, backend)))
    return replace(above, failing_ops=ops)


def _bound(probe: Callable[..., Probe], axis: Axis, k: int, k_fail: int | None) -> Bound:
    b, h, w = axis.size_of(k)
    return Bound(batch=b, height=h, width=w, above=probe(*axis.size_of(k_fail)) if k_fail else None)


def _estimate_only(prober: Prober, axis: Axis, est: Bound | None, k: int | None, k_fail: int | None
                   ) -> AxisResult | None:
    """The axis answered by the estimate alone (no device to confirm it)."""
    if est is None:
        return None
    above = est.above
    if k_fail:
        above = _ops_alone(prober, axis, k, k_fail, above, "estimate")
    est = replace(est, above=above)
    return AxisResult(batch=est.batch, height=est.height, width=est.width, above=above, backend="estimate",
                      confirmed="", exact=True, estimate=est, why="")


def _on_device(prober: Prober, axis: Axis, est: Bound | None, k_est: int | None) -> AxisResult:
    """The device's largest size on the axis, searched from the estimate's bound."""
    asked: set[int] = set()

    def fits(k: int) -> bool:
        asked.add(k)
        return prober.on_device(*axis.size_of(k)).fits
    at_bound = prober.cache.get(("device", *axis.size_of(k_est))) if k_est is not None else None
    crashed = at_bound is not None and at_bound.failing_ops[:1] and at_bound.failing_ops[0].status in CRASHES
    k, k_fail, exact = device_search(fits, axis.lo, k_est, axis.hi_limit, axis.max_device_probes,
                                     gallop=0 if crashed and not prober.baseline else GALLOP_PROBES,
                                     prefetch=lambda ks: prober.prefetch([axis.size_of(k) for k in ks]),
                                     localize=None if prober.baseline else _localizer(prober, axis))
    if k is None:
        return AxisResult(batch=None, backend=prober.device_kind, confirmed="", estimate=est,
                          above=prober.on_device(*axis.size_of(axis.lo)), exact=True,
                          why="the registry's own input size already fails on the device")
    found = _bound(prober.on_device, axis, k, k_fail)
    est_at = prober.estimate(*axis.size_of(k_fail)) if k_fail is not None and est is not None else None
    device_probes = len(asked | ({k_fail} if k_fail is not None else set()))
    why = _why(est, found, est_at) if est else ""
    above = found.above
    if k_fail is not None:
        above = _ops_alone(prober, axis, k, k_fail, above, prober.device_kind)
    return AxisResult(batch=found.batch, height=found.height, width=found.width, above=above,
                      backend=prober.device_kind, confirmed=prober.device_kind, exact=exact, estimate=est,
                      device_probes=device_probes, why=why)


def _localizer(prober: Prober, axis: Axis) -> Localize:
    """``device_search``'s localize for this axis: a size failing in context on the device -> the
    largest size below it at which its first failing call fits alone on the device (runs of that one
    op, seconds each, side by side), once per failing size."""
    memo: dict[int, int | None] = {}

    def localize(k_fail: int) -> int | None:
        if k_fail not in memo:
            memo[k_fail] = _localize(prober, axis, k_fail)
        return memo[k_fail]
    return localize


def _localize(prober: Prober, axis: Axis, k_fail: int) -> int | None:
    """None when there is nothing to run alone (the size fits, or its run crashed or hung) or the
    call fits alone at k_fail too (it is the context that fails there)."""
    p = prober.on_device(*axis.size_of(k_fail))
    if p.fits or not p.failing_ops or p.failing_ops[0].status not in MEMORY_FAILURES:
        return None
    key = _call_key(prober.trace(*axis.size_of(k_fail)), p.failing_ops[0].call)
    backend = prober.device_kind

    def fits(k: int) -> bool:
        return prober.op_alone(key, *axis.size_of(k), backend).fits
    if fits(k_fail):
        return None
    k, _, _ = search(fits, axis.lo, k_fail, axis.hi_limit, LOCALIZE_PROBES,
                     lambda ks: prober.ops_alone_side_by_side(key, [axis.size_of(k) for k in ks], backend))
    return k


def estimate_bound(prober: Prober, axis: Axis) -> tuple[Bound | None, int | None, int | None]:
    """The estimate's largest size on one axis: (bound, its step, the smallest failing step or None);
    all None when the estimate fails at the registry's own size."""
    if not prober.estimate(*axis.size_of(axis.lo)).fits:
        return None, None, None
    def fits(k: int) -> bool:
        return prober.estimate(*axis.size_of(k)).fits
    if prober.baseline:
        k_est, k_est_fail = largest(fits, axis.lo, axis.hi_limit)
    else:
        k_est, k_est_fail = largest_guided(fits, axis.lo, axis.hi_limit,
                                           lambda k: prober.needs.get(axis.size_of(k)), axis.power)
    return _bound(prober.estimate, axis, k_est, k_est_fail), k_est, k_est_fail


def first_device_steps(axis: Axis, k_est: int | None) -> list[int]:
    """The steps the device runs first on an axis (``device_search``'s opening): the estimate's
    bound and one above, or the registry's own size when the estimate fails there already."""
    if k_est is None:
        return [axis.lo]
    return [k_est] + ([k_est + 1] if k_est < axis.hi_limit else [])


def search_axis(prober: Prober, axis: Axis) -> AxisResult | None:
    """One axis (resolution or batch): the estimate's bound, then (confirm) the device's largest size.
    None when the estimate fails at the registry's own size and there is no device to ask."""
    est, k_est, k_est_fail = estimate_bound(prober, axis)
    if not axis.confirm or prober.settings is None:
        return _estimate_only(prober, axis, est, k_est, k_est_fail)
    prober.prefetch([axis.size_of(k) for k in first_device_steps(axis, k_est)])
    return _on_device(prober, axis, est, k_est)


# ---------------------------------------------------------------------------------------------
# One model

def headroom(model: str | ModelEntry, device: str = "n150", memory: str = "dram", step: int = 32,
             confirm: bool = True, settings: RunSettings | None = None, max_batch: int = 1024,
             folder: str | None = None, max_device_probes: int = 12, op_probes: int = 5,
             log: Callable[[str], None] | None = None, jobs: int | None = None,
             baseline: bool = False) -> HeadroomResult:
    """The headroom of one registry model (a name or a ModelEntry): largest resolution (batch 1) and
    largest batch (at the entry's resolution), on the estimate and, with confirm and ttnn settings
    (RunSettings), on the device. The two axes search at once, each from its estimate's bound to the
    device's answer, in at most ``jobs`` worker processes in all (default: settings.jobs): one axis's
    device runs go on while the other is still re-traced and estimated.
    ``baseline`` runs the slower strategy this replaced (for benchmarks/bench_headroom.py)."""
    entry = lookup(load_registry(), model) if isinstance(model, str) else model
    own_folder = folder is None   # re-traces of a search nobody asked to keep go with it
    folder = folder or tempfile.mkdtemp(prefix=f"optrace-headroom-{entry.name}-")
    os.makedirs(folder, exist_ok=True)
    try:
        jobs = 1 if baseline else jobs or (settings.jobs if settings is not None else 1)
        prober = Prober(entry, folder, device, memory, settings, log, jobs=jobs, baseline=baseline)
        t0 = time.monotonic()
        h0, w0 = entry.inputs[0][2], entry.inputs[0][3]
        confirmed = bool(confirm and settings is not None)
        resolution = Axis(size_of=lambda k: (1, *_size(entry, k, step)), lo=max(1, min(h0, w0) // step),
                          hi_limit=MAX_SIDE // step, confirm=confirm, max_device_probes=max_device_probes,
                          op_probes=op_probes, power=2)
        batch = Axis(size_of=lambda b: (b, h0, w0), lo=1, hi_limit=max_batch, confirm=confirm,
                     max_device_probes=max_device_probes, op_probes=op_probes)
        if confirmed and not baseline:   # each axis from its estimate to the device's answer, both at once
            with ThreadPoolExecutor(max_workers=2) as axes:
                res, bat = axes.map(lambda axis: search_axis(prober, axis), (resolution, batch))
            return HeadroomResult(model=entry.name, device=device, memory=memory, step=step, confirm=confirmed,
                                  resolution=res, batch=bat, backend=prober.device_kind,
                                  time_s=round(time.monotonic() - t0, 1), probes=prober.probes())
        bounds = [estimate_bound(prober, axis) for axis in (resolution, batch)]
        if confirmed:
            prober.prefetch([axis.size_of(k) for axis, (_, k_est, _) in zip((resolution, batch), bounds)
                             for k in first_device_steps(axis, k_est)])
            res, bat = (_on_device(prober, axis, est, k_est)
                        for axis, (est, k_est, _) in zip((resolution, batch), bounds))
        else:
            res, bat = (_estimate_only(prober, axis, *bound) for axis, bound in zip((resolution, batch), bounds))
        return HeadroomResult(model=entry.name, device=device, memory=memory, step=step, confirm=confirmed,
                              resolution=res, batch=bat, backend=prober.device_kind if confirmed else "estimate",
                              time_s=round(time.monotonic() - t0, 1), probes=prober.probes())
    finally:
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)
