"""Replay speed over the whole zoo, measured in one run: every unique signature of the committed
traces through the estimate backend, and on the mock n150 (ttnn's mock device: allocator and op
host code, no arithmetic) with 2 workers, end to end as `replay traces/` runs them (journal
written, worker start-up included). Prints signatures/s, totals and where the time goes.

    .venv/bin/python benchmarks/bench_zoo_replay.py [traces ...] [--ttnn-shard N] [--skip-ttnn]

--ttnn-shard N replays only shard 1/N on ttnn (a deterministic 1/N of the signatures, by id) and
projects the whole run linearly (start-up counted in each part, so an upper bound); without it every signature
is replayed (targets, issue 10 §4: estimate <= 30 s, mock n150 with 2 workers <= 10 min).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from replay.run.runner import RunSettings, collect_cases, load_traces, replay  # noqa: E402

ESTIMATE_TARGET_S = 30.0
TTNN_TARGET_S = 600.0


def timed_replay(traces, settings: RunSettings) -> tuple[float, int, dict]:
    """(seconds, results, journal header) of one replay run into a scratch folder."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        header, results = replay(traces, settings, os.path.join(d, "r.jsonl"), progress=sys.stderr.isatty())
        return time.perf_counter() - t0, len(results), header


def report(label: str, secs: float, done: int, total: int, target_s: float) -> None:
    """One line: measured seconds and rate, and the projection for all total signatures (linear,
    start-up included in every part: an upper bound when only a shard was run)."""
    whole = secs / max(done, 1) * total
    verdict = "meets" if whole <= target_s else "misses"
    print(f"{label:34} {done:6d} sigs {secs:8.2f} s {done / secs:9.1f} sig/s | all {total}: {whole:7.1f} s "
          f"({verdict} the {target_s:.0f} s target)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("traces", nargs="*", default=[os.path.join(REPO, "traces")])
    ap.add_argument("--ttnn-shard", type=int, default=1, metavar="N",
                    help="replay shard 1/N on ttnn and project the whole run (default 1: all of it)")
    ap.add_argument("--skip-ttnn", action="store_true", help="only the estimate backend")
    args = ap.parse_args()
    if args.ttnn_shard < 1:
        sys.exit("bench_zoo_replay: --ttnn-shard must be >= 1")
    t0 = time.perf_counter()
    traces = load_traces(args.traces)
    load_s = time.perf_counter() - t0
    total = len(collect_cases(traces))
    calls = sum(len(t.calls) for t in traces)
    print(f"{len(traces)} traces, {calls:,} calls, {total:,} unique signatures; reading them: {load_s:.2f} s")
    secs, done, _ = timed_replay(traces, RunSettings(backend="estimate", jobs=1))
    report("estimate (in-process)", secs + load_s, done, total, ESTIMATE_TARGET_S)
    if args.skip_ttnn:
        return
    settings = RunSettings(backend="ttnn", jobs=2, shard=None if args.ttnn_shard == 1 else (1, args.ttnn_shard))
    secs, done, header = timed_replay(traces, settings)
    report(f"ttnn mock n150, 2 workers (1/{args.ttnn_shard})", secs, done, total, TTNN_TARGET_S)
    print(f"  [{header.get('note')}]")


if __name__ == "__main__":
    main()
