"""Capture cost and trace size, measured in one run, printed as ratios.

For yolov8s_world (640) and swin_t: the plain forward, the forward under a pass-through
TorchDispatchMode (the floor for any dispatch-mode recorder), the forward under optrace's recorder
(including building the signature table), and the forward under torch.profiler(record_shapes=True);
median of interleaved runs, as ratios to the plain forward. Then the trace size against
torch.profiler.ExecutionTraceObserver's JSON for the same forward.

    .venv/bin/python benchmarks/bench_capture.py [--runs 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402
import torch  # noqa: E402

from capture.capture import build_signatures, grad_context, make_inputs, record_forward  # noqa: E402
from capture.registry import build_model, load_registry  # noqa: E402
from capture.schema import Trace  # noqa: E402

MODELS = ("yolov8s_world", "swin_t")


def plain(model, xs):
    with grad_context("no_grad"):
        model(*xs)


class _PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
    """The floor of any dispatch-mode recorder: Python sees every aten call and does nothing."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def bare_mode(model, xs):
    with _PassThrough():
        plain(model, xs)


def traced(model, xs):
    modules, table, rec = record_forward(model, xs)
    build_signatures(rec.rec, table.metas)


def profiled(model, xs):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True):
        plain(model, xs)


def trace_bytes(model, xs) -> int:
    modules, table, rec = record_forward(model, xs)
    calls, sigs = build_signatures(rec.rec, table.metas)
    trace = Trace(header={"call_count": len(calls)}, modules=modules.modules, scopes=modules.scopes, ops=rec.rec.ops,
                  tensors=table.metas, calls=calls, signatures=sigs)
    return len(msgpack.packb(trace.to_wire(), use_bin_type=True))


def et_json_bytes(model, xs) -> int:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "et.json")
        et = torch.profiler.ExecutionTraceObserver()
        et.register_callback(path)
        et.start()
        plain(model, xs)
        et.stop()
        et.unregister_callback()
        return os.path.getsize(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="interleaved runs per variant (>= 5)")
    args = ap.parse_args()
    reg = load_registry()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, median of {args.runs} interleaved runs")
    print(f"{'model':16} {'plain s':>8} {'bare mode/plain':>16} {'optrace/plain':>14} {'profiler/plain':>15} "
          f"{'trace B':>10} {'ET JSON B':>11} {'trace/ET':>9}")
    for name in MODELS:
        entry = reg[name]
        model = build_model(entry)
        xs = make_inputs(entry, entry.inputs, None)
        variants = {"plain": plain, "bare": bare_mode, "traced": traced, "profiled": profiled}
        for fn in variants.values():  # warm-up
            fn(model, xs)
        times = {k: [] for k in variants}
        for _ in range(args.runs):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn(model, xs)
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        tb, eb = trace_bytes(model, xs), et_json_bytes(model, xs)
        print(f"{name:16} {med['plain']:8.3f} {med['bare'] / med['plain']:15.2f}x {med['traced'] / med['plain']:13.2f}x "
              f"{med['profiled'] / med['plain']:14.2f}x {tb:10d} {eb:11d} {tb / eb:9.3f}")


if __name__ == "__main__":
    main()
