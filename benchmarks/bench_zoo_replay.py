"""Replay speed over the whole zoo, measured in one run: every unique signature of the committed
traces through the estimate backend (reading the traces included), and on the mock n150 (ttnn's mock
device: allocator and op host code, no arithmetic) with 2 workers, end to end as `replay traces/`
runs them (journal written, worker start-up included). Prints wall seconds, CPU seconds (user+sys of
this process and of its workers and their children), the load average, each target and its verdict.

    .venv/bin/python benchmarks/bench_zoo_replay.py [traces ...] [--ttnn-shard N] [--skip-ttnn]

--ttnn-shard N replays only shard 1/N on ttnn (a deterministic 1/N of the signatures, by id) and
projects the whole run linearly (start-up counted in each part, so an upper bound); without it every
signature is replayed (targets, issue 10 §4: estimate <= 30 s, mock n150 with 2 workers <= 10 min,
wall on a quiet 2-core machine). On a loaded machine the wall verdict says little: the CPU seconds
and the CPU bound (CPU / 2 cores) are the figures that carry over.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from replay.run.runner import RunSettings, collect_cases, load_traces, replay  # noqa: E402

ESTIMATE_TARGET_S = 30.0
TTNN_TARGET_S = 600.0
CORES = 2          # the target machine's cores (issue 10 §4: "these 2-core machines")


def cpu_split() -> tuple[float, float]:
    """User+sys CPU seconds (this process, every child it has waited for: workers and theirs)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def cpu_s() -> float:
    """User+sys CPU seconds of this process and of its children (see cpu_split)."""
    return sum(cpu_split())


def load_text() -> str:
    """The 1/5/15-minute load average and the cores, e.g. 'load 0.4/0.9/1.3 on 2 cores'."""
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def timed_replay(traces, settings: RunSettings) -> tuple[float, float, int, dict]:
    """(wall s, CPU s, results, journal header) of one replay run into a scratch folder."""
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), cpu_s()
        header, results = replay(traces, settings, os.path.join(d, "r.jsonl"), progress=sys.stderr.isatty())
        return time.perf_counter() - t0, cpu_s() - c0, len(results), header


def report(label: str, wall_s: float, cpu: float, done: int, total: int, target_s: float, parallel: int) -> None:
    """Two lines: measured wall and CPU seconds, rate, and for all total signatures (linear projection
    when only a shard ran, start-up included in every part: an upper bound) the wall against the target
    and the CPU bound (CPU seconds over the cores the run can use: the wall an idle machine cannot beat)."""
    scale = total / max(done, 1)
    whole, whole_cpu = wall_s * scale, cpu * scale
    bound = whole_cpu / min(parallel, CORES)
    print(f"{label:30} {done:6d} sigs  wall {wall_s:8.2f} s  CPU {cpu:8.2f} s  {done / wall_s:8.1f} sig/s  [{load_text()}]")
    print(f"{'':30} all {total}: wall {whole:7.1f} s ({'PASS' if whole <= target_s else 'FAIL'}: target "
          f"{target_s:.0f} s)  CPU {whole_cpu:7.1f} s -> CPU bound on {min(parallel, CORES)} idle core(s) "
          f"{bound:7.1f} s ({'within' if bound <= target_s else 'beyond'} the target)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("traces", nargs="*", default=[os.path.join(REPO, "traces")])
    ap.add_argument("--ttnn-shard", type=int, default=1, metavar="N",
                    help="replay shard 1/N on ttnn and project the whole run (default 1: all of it)")
    ap.add_argument("--skip-ttnn", action="store_true", help="only the estimate backend")
    args = ap.parse_args()
    if args.ttnn_shard < 1:
        print("bench_zoo_replay: --ttnn-shard must be >= 1 (1 replays every signature)", file=sys.stderr)
        sys.exit(2)
    print(f"start [{load_text()}]", flush=True)
    t0, c0 = time.perf_counter(), cpu_s()
    traces = load_traces(args.traces)
    load_wall, load_cpu = time.perf_counter() - t0, cpu_s() - c0
    total = len(collect_cases(traces))
    calls = sum(len(t.calls) for t in traces)
    print(f"{len(traces)} traces, {calls:,} calls, {total:,} unique signatures; reading them: wall {load_wall:.2f} s, "
          f"CPU {load_cpu:.2f} s", flush=True)
    wall, cpu, done, _ = timed_replay(traces, RunSettings(backend="estimate", jobs=1))
    report("estimate (reading included)", wall + load_wall, cpu + load_cpu, done, total, ESTIMATE_TARGET_S, 1)
    if args.skip_ttnn:
        return
    settings = RunSettings(backend="ttnn", jobs=2, shard=None if args.ttnn_shard == 1 else (1, args.ttnn_shard))
    before = cpu_split()
    wall, cpu, done, header = timed_replay(traces, settings)
    after = cpu_split()
    report(f"ttnn mock n150, 2 workers, 1/{args.ttnn_shard}", wall, cpu, done, total, TTNN_TARGET_S, 2)
    print(f"{'':30} CPU split: coordinator {after[0] - before[0]:.1f} s, workers (and their kernel-compile steps) "
          f"{after[1] - before[1]:.1f} s")
    print(f"  [{header.get('note')}]")


if __name__ == "__main__":
    main()
