"""Replay throughput, measured in one run: unique signatures per second on the mock device with 1
and 2 workers, and for the torch and estimate backends, over the same committed traces; in the ttnn
environment (which has Ray, and no torch) also the built-in pool against a local Ray instance with
as many actors (the ratio, and the overhead per signature Ray adds).

    .venv/bin/python benchmarks/bench_replay.py [traces ...]        (default: every trace but yolo12x)
    .venv-ttnn/bin/python benchmarks/bench_replay.py [traces ...]   (pool vs Ray; torch row skipped)
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from replay.run.runner import RunSettings, collect_cases, load_traces, replay  # noqa: E402


def timed(traces, settings: RunSettings) -> tuple[float, int, dict]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        header, results = replay(traces, settings, os.path.join(d, "r.jsonl"), progress=False)
        return time.perf_counter() - t0, len(results), header


def main() -> None:
    paths = sys.argv[1:] or [p for p in sorted(glob.glob(os.path.join(REPO, "traces", "*.msgpack")))
                             if "yolo12x" not in p]
    traces = load_traces(paths)
    n = len(collect_cases(traces))
    print(f"{len(traces)} traces, {n} unique signatures (wall time includes worker start-up)")
    print(f"{'backend':28} {'s':>7} {'sig/s':>8} {'s/sig':>8}")
    rows = [("ttnn mock n150, 1 worker", RunSettings(backend="ttnn", jobs=1)),
            ("ttnn mock n150, 2 workers", RunSettings(backend="ttnn", jobs=2)),
            ("torch (CPU reference)", RunSettings(backend="torch", jobs=1)),
            ("estimate", RunSettings(backend="estimate", jobs=1))]
    if importlib.util.find_spec("torch") is None:
        rows = [r for r in rows if r[1].backend != "torch"]
    base = None
    for label, settings in rows:
        secs, done, header = timed(traces, settings)
        base = base or secs
        print(f"{label:28} {secs:7.2f} {done / secs:8.1f} {secs / done:8.4f}   ({base / secs:.2f}x of 1 worker)"
              f"   [{header.get('note')}]")
    if importlib.util.find_spec("ray") is not None:
        pool_vs_ray(traces, n)


def pool_vs_ray(traces, n: int, jobs: int = 2) -> None:
    """The built-in pool and a local Ray instance (started beforehand, timed apart) with the same number
    of workers/actors, on the same signatures."""
    from replay.run.ray_cluster import connect, disconnect  # noqa: PLC0415 - Ray is in the ttnn environment only
    t0 = time.perf_counter()
    cluster = connect("ray", num_cpus=jobs)
    start_s = time.perf_counter() - t0
    try:
        pool_s, _, _ = timed(traces, RunSettings(backend="ttnn", jobs=jobs))
        ray_s, done, header = timed(traces, RunSettings(backend="ttnn", jobs=jobs, cluster="ray"))
    finally:
        disconnect(cluster)
    print(f"\npool vs Ray, {jobs} workers / {header['cluster']['actors']} actors, {done} signatures "
          f"[{header.get('note')}]")
    print(f"  built-in pool {pool_s:7.2f} s   local Ray {ray_s:7.2f} s   Ray/pool {ray_s / pool_s:.2f}x   "
          f"overhead {(ray_s - pool_s) / done * 1000:+.2f} ms/signature (actor start-up included; "
          f"starting the Ray instance itself took {start_s:.1f} s more)")


if __name__ == "__main__":
    main()
