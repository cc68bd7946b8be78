"""Tracing the zoo: what `trace-model --all` costs, measured in one run, split into building the
model (random weights), capturing its forward and writing the trace, per source.

Every registry model that is not skipped (or those named, or of --source), into a temporary folder
(traces/ is not touched). Without --jobs: in this one process, each model's time split into build,
capture and write, per source. With --jobs N: exactly as `trace-model --all --force --jobs N` runs
them (capture/batch.py run_jobs, N worker processes), wall and CPU per model and in total, worker
start-up included. Prints the slowest models, the load average (the machines are shared: wall time
above CPU time is waiting for a core) and the total against the 20-minute target.

    .venv/bin/python benchmarks/bench_trace_zoo.py [NAME ...] [--source timm] [--top 10] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from capture.batch import TraceJob, run_jobs  # noqa: E402
from capture.capture import entry_for_inputs, forward_inputs, trace_forward  # noqa: E402
from capture.registry import build_with_inputs, load_registry  # noqa: E402
from capture.schema import write_trace  # noqa: E402

TARGET_S = 20 * 60
PHASES = ("build", "capture", "write")


def trace_one(entry, folder: str) -> dict[str, tuple[float, float]]:
    """{phase: (wall s, cpu s)} for one model, traced as trace-model does it."""
    out, clock = {}, (time.perf_counter(), time.process_time())

    def lap(phase):
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        out[phase] = (now[0] - clock[0], now[1] - clock[1])
        clock = now

    model, example = build_with_inputs(entry)
    lap("build")
    fake_mode = None
    if entry.capture == "fake":
        from torch._subclasses.fake_tensor import FakeTensorMode
        fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    args, kwargs, specs = forward_inputs(entry, example, None, fake_mode=fake_mode)
    trace = trace_forward(model, args, kwargs, entry=entry_for_inputs(entry, specs),
                          shapes=[s.shape for s in specs], grad_mode="no_grad", fake_mode=fake_mode)
    lap("capture")
    write_trace(trace, os.path.join(folder, f"{entry.name}.msgpack"))
    lap("write")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--source", default=None)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=0, help="worker processes, as trace-model --all --jobs (0: the "
                                                        "per-phase split in this process)")
    a = ap.parse_args()
    reg = load_registry()
    entries = [reg[n] for n in a.names] if a.names else \
        [e for e in reg.values() if not e.skip and (a.source is None or e.source == a.source)]
    if a.jobs:
        return in_workers(entries, a.jobs, a.top)
    load0 = os.getloadavg()[0]
    per_source: dict = defaultdict(lambda: {p: [0.0, 0.0] for p in PHASES} | {"n": 0})
    slow, failed, t0 = [], [], time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for k, e in enumerate(entries, 1):
            try:
                times = trace_one(e, d)
            except Exception as exc:  # a model failing is reported, the others still count
                failed.append(f"{e.name}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            s = per_source[e.source]
            s["n"] += 1
            for p, (w, c) in times.items():
                s[p][0] += w
                s[p][1] += c
            slow.append((sum(w for w, _ in times.values()), e.name, e.capture))
            print(f"[{k}/{len(entries)}] {e.name}: " + ", ".join(f"{p} {w:.1f} s ({c:.1f} CPU s)"
                                                                for p, (w, c) in times.items()), file=sys.stderr)
    report(per_source, slow, failed, time.perf_counter() - t0, load0, a.top)


def _cpu_s() -> float:
    """CPU seconds (user + sys) of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def in_workers(entries: list, jobs: int, top: int) -> None:
    """The run trace-model --all --force --jobs does, timed: wall and CPU per model and in total."""
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), _cpu_s()
    per_source: dict = defaultdict(lambda: [0, 0.0, 0.0])
    slow, failed = [], []
    with tempfile.TemporaryDirectory() as d:
        todo = [TraceJob(k=k, entry=e, path=os.path.join(d, f"{e.name}.msgpack"), via="eager", grad_mode="no_grad")
                for k, e in enumerate(entries, 1)]
        for n, o in enumerate(run_jobs(todo, jobs), 1):
            name = o.job.entry.name
            if o.failure or o.build_error:
                failed.append(f"{name}: {o.failure or o.build_error}")
            s = per_source[o.job.entry.source]
            s[0], s[1], s[2] = s[0] + 1, s[1] + o.seconds, s[2] + o.cpu_s
            slow.append((o.cpu_s, o.seconds, name, o.job.entry.capture))
            print(f"[{n}/{len(todo)}] {name}: {o.seconds:.1f} s wall, {o.cpu_s:.1f} CPU s "
                  f"(elapsed {(time.perf_counter() - t0) / 60:.1f} min)", file=sys.stderr, flush=True)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    print(f"{len(todo)} models in {jobs} worker processes: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min "
          f"(user+sys, workers and their start-up included); load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores")
    print(f"{'source':14} {'models':>6} {'wall s (sum)':>13} {'CPU s (sum)':>12}")
    for src, (n, w, c) in sorted(per_source.items()):
        print(f"{src:14} {n:6} {w:13.1f} {c:12.1f}")
    print("most CPU: " + ", ".join(f"{n} {c:.1f} CPU s ({m})" for c, _, n, m in sorted(slow, reverse=True)[:top]))
    floor = cpu / min(jobs, os.cpu_count() or 1)
    print(f"wall {wall / 60:.1f} min against the {TARGET_S // 60}-minute target: "
          f"{'PASS' if wall <= TARGET_S else 'FAIL'}; the CPU time over {min(jobs, os.cpu_count() or 1)} busy "
          f"cores is {floor / 60:.1f} min, the wall time on a quiet machine cannot be less")
    for f in failed:
        print(f"FAILED {f}")


def report(per_source: dict, slow: list, failed: list, wall: float, load0: float, top: int) -> None:
    """Print the per-source table, the slowest models and the total against the target."""
    print(f"{sum(s['n'] for s in per_source.values())} models traced in {wall / 60:.1f} min wall "
          f"(load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores)")
    print(f"{'source':14} {'models':>6} " + " ".join(f"{p + ' wall/cpu s':>20}" for p in PHASES))
    totals = {p: [0.0, 0.0] for p in PHASES}
    for src, s in sorted(per_source.items()):
        print(f"{src:14} {s['n']:6} " + " ".join(f"{s[p][0]:10.1f}/{s[p][1]:<9.1f}" for p in PHASES))
        for p in PHASES:
            totals[p][0] += s[p][0]
            totals[p][1] += s[p][1]
    main_phase = max(PHASES, key=lambda p: totals[p][0])
    print(f"dominant phase: {main_phase} ({100 * totals[main_phase][0] / max(wall, 1e-9):.0f}% of the wall time); "
          f"CPU time {sum(c for _, c in totals.values()) / 60:.1f} min of {wall / 60:.1f} min wall")
    print("slowest: " + ", ".join(f"{n} {w:.1f} s ({m})" for w, n, m in sorted(slow, reverse=True)[:top]))
    verdict = "within" if wall <= TARGET_S else "over"
    print(f"whole run {wall / 60:.1f} min: {verdict} the {TARGET_S // 60}-minute target")
    for f in failed:
        print(f"FAILED {f}")


if __name__ == "__main__":
    main()
