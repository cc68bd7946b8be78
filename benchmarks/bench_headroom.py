"""How long `replay headroom MODEL` takes with device confirmation, and against the strategy it replaced.

    .venv/bin/python benchmarks/bench_headroom.py [yolov8s swin_t ...] [--compare] [--jobs N]

Per model: the whole search (estimate bounds, then the ttnn device: a real board if present, else the
mock n150, which every line says) with today's strategy: device runs only up to the first failing
call, the sizes at both axes' estimate bounds run side by side in ``--jobs`` worker processes, ops
alone answered by the estimate and confirmed at its answer and one step above. ``--compare`` also
runs the strategy before it (one device run at a time, each to the end of the model, ops alone
searched on the device directly) in the same run, and prints the ratio and whether both found the
same sizes. Each search re-traces into its own fresh folder, so neither reuses the other's files.
Each model's line gives wall and CPU seconds (user+sys, the device workers included), the device runs
(whole model in context, per axis; of one op alone), the load average at the start and the end, and
the 5-minute target with PASS/FAIL: the wall time means something only on a quiet machine (load
average < 1.5 at the start; the line says when it was not). Timings are noisy on shared 2-core
machines: run it a few times and quote the range.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replay.run.runner import RunSettings  # noqa: E402
from replay.studies.headroom import headroom  # noqa: E402

TARGET_S = 300   # issue 11 section 5: a search with device confirmation in <= 5 min on a quiet 2-core machine


def _answer(result) -> str:
    def axis(a):
        if a is None or a.batch is None:
            return "none"
        return f"batch {a.batch}, {a.height} x {a.width} ({a.confirmed or a.backend}{'' if a.exact else ', not exact'})"
    return f"resolution {axis(result.resolution)}; batch {axis(result.batch)}"


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (tracing here, device runs in workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def one_search(model: str, device: str, memory: str, jobs: int, baseline: bool, quiet: bool):
    """(result, wall seconds, CPU seconds, device runs of one op alone) of one headroom search with
    device confirmation, in a fresh folder. CPU seconds do not depend on what else the machine runs;
    wall seconds do."""
    alone = []

    def log(line: str) -> None:
        if " alone at " in line and " on estimate: " not in line:
            alone.append(line)
        if not quiet:
            print(line, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="optrace-bench-headroom-") as folder:
        settings = RunSettings(backend="ttnn", device=device, memory=memory, jobs=jobs,
                               log_dir=os.path.join(folder, "logs"))
        os.makedirs(settings.log_dir)
        t0, c0 = time.monotonic(), _cpu_s()
        result = headroom(model, device, memory, confirm=True, settings=settings, folder=os.path.join(folder, "p"),
                          log=log, baseline=baseline)
        return result, time.monotonic() - t0, _cpu_s() - c0, len(alone)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["yolov8s", "swin_t"])
    ap.add_argument("--device", default="n150")
    ap.add_argument("--memory", default="dram")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compare", action="store_true", help="also time the strategy before (slow: ~20 min for yolov8s)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-probe lines")
    args = ap.parse_args()
    for model in args.models:
        load = os.getloadavg()[0]
        new, t_new, cpu_new, alone_new = one_search(model, args.device, args.memory, args.jobs, False, args.quiet)
        verdict = "PASS" if t_new <= TARGET_S else "FAIL"
        print(f"headroom {model} ({args.device} {args.memory.upper()}, on {new.backend}): {t_new:.0f} s wall, "
              f"{cpu_new:.0f} CPU s (user+sys, device workers included); {_runs(new)}, {alone_new} device runs of "
              f"one op alone; --jobs {args.jobs}; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at "
              f"the end; target {TARGET_S} s wall: {verdict}{'' if load < 1.5 else ' (not a quiet machine: the wall time says little)'}"
              f"; {_answer(new)}", flush=True)
        if args.compare:
            old, t_old, cpu_old, alone_old = one_search(model, args.device, args.memory, 1, True, args.quiet)
            same = _answer(old) == _answer(new)
            print(f"headroom {model} before (one device run at a time, each to the end): {t_old:.0f} s, "
                  f"{cpu_old:.0f} CPU s; {_runs(old)}, {alone_old} of one op alone; {t_old / t_new:.2f}x the time, "
                  f"{cpu_old / cpu_new:.2f}x the CPU; "
                  f"{'same answer' if same else 'DIFFERENT answer: ' + _answer(old)}", flush=True)


def _runs(result) -> str:
    """How many whole-model runs the device made, per axis and in all."""
    axes = {name: a.device_probes for name, a in (("resolution", result.resolution), ("batch", result.batch)) if a}
    device = sum(p.backend != "estimate" for p in result.probes)
    return (f"{device} in-context device runs ("
            + ", ".join(f"{name} {n}" for name, n in axes.items()) + ")")

if __name__ == "__main__":
    main()
