"""How often the in-context estimate agrees with the mock device in context, call by call.

    .venv/bin/python benchmarks/bench_context_estimate.py [--traces resnet50,yolov8s,... | sample]
        [--device n150] [--memory dram,l1] [--weights-dram] [--cache DIR] [--device-only] [-v]

For each trace and placement, the model's whole call sequence is replayed in context (`replay run
--mode model`) on the mock device (replay/context/worker.py, one worker process at a time, several
minutes a model) and on the estimate (replay/context/estimate.py, about a second). Printed per trace:
calls whose verdicts agree (pass / folded / skipped / unsupported / oom_* / cb_overflow, exactly),
the first failing call (cascades aside) on each side, and where both fail first at the same call,
whether they ask for the same bytes. Device results are cached as per-call files in ``--cache``
(default /work/ctx-devres, outside the repo; keyed by the trace file's sha256 and the placement),
so a rerun after an estimate change costs seconds: delete the folder to measure the device again
(``--traces sample`` on n150, DRAM, L1 and L1 with weights in DRAM: ~13 min of device runs on a loaded
2-core machine, then ~1 min for the estimate side).
``--device-only`` fills the cache and stops. Results come from ttnn's mock device (no board):
real allocator and op host code, no arithmetic.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from capture.schema import read_trace  # noqa: E402
from replay.backends.estimate import EstimateSettings  # noqa: E402
from replay.context.changes import ContextChanges  # noqa: E402
from replay.context.estimate import simulate_estimate  # noqa: E402
from replay.context.plan import read_calls, write_calls  # noqa: E402
from replay.results import is_cb_overflow  # noqa: E402
from replay.run.runner import RunSettings  # noqa: E402

# classification (conv, transformer), detection, segmentation, attention, a DETR-like HF model
DEFAULT_TRACES = ("resnet50", "yolov8s", "swin_t", "vit_b_16", "yolov8n_seg", "hf_detr")
CACHE = "/work/ctx-devres"


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def device_run(trace, device: str, memory: str, cache: str, timeout_s: float, changes: ContextChanges
               ) -> tuple[list, object]:
    """The mock device's in-context records and summary of one trace (cached per trace content)."""
    from replay.context.run import run_ttnn_context
    tag = "_weights_dram" if changes.weights_dram else ""
    path = os.path.join(cache, f"{trace.model_name}_{device}_{memory}{tag}_{_sha(trace.path)}.calls.jsonl")
    if os.path.exists(path):
        _, records, summary = read_calls(path)
        if summary is not None:
            return reclassified(records), summary
    settings = RunSettings(backend="ttnn", device=device, memory=memory, timeout_s=timeout_s,
                           log_dir=os.path.join(cache, "logs"))
    os.makedirs(settings.log_dir, exist_ok=True)
    t0 = time.monotonic()
    records, summary, info = run_ttnn_context(trace, settings, settings.log_dir, changes)
    summary.time_s = time.monotonic() - t0
    write_calls(path, {"model": trace.model_name, "mock": info.get("mock"), "note": info.get("note", "")},
                records, summary)
    return records, summary


def reclassified(records: list) -> list:
    """Cached device records with each ttnn_error the current rules read as a circular-buffer overflow
    (replay.results.is_cb_overflow, e.g. layer_norm's streaming buffers) made cb_overflow, as a new run
    records it: the cache keeps ttnn's error text, so no device run is needed again."""
    for r in records:
        if r.status == "ttnn_error" and is_cb_overflow(r.reason):
            r.status = "cb_overflow"
    return records


def _first(records) -> object | None:
    return next((r for r in records if r.status in ("oom_dram", "oom_l1", "oom_l1_small", "cb_overflow", "crash",
                                                    "ttnn_error") and not r.cascade), None)


def _requested(r) -> int | None:
    return (r.oom or {}).get("requested_bytes") if r is not None else None


def compare(dev: list, est: list) -> dict:
    """Per-call agreement of two in-context runs of one trace."""
    by_index = {r.index: r for r in est}
    agree, differ = 0, []
    for d in dev:
        e = by_index.get(d.index)
        if e is not None and e.status == d.status:
            agree += 1
        else:
            differ.append((d.index, d.op, d.module_path, d.status, e.status if e else "absent"))
    fd, fe = _first(dev), _first(est)
    same_first = (fd is None and fe is None) or (fd is not None and fe is not None and fd.index == fe.index
                                                 and fd.status == fe.status)
    return {"calls": len(dev), "agree": agree, "differ": differ, "first_device": fd, "first_estimate": fe,
            "same_first": same_first,
            "same_bytes": same_first and _requested(fd) == _requested(fe)}


def _describe(r) -> str:
    if r is None:
        return "none"
    b = _requested(r)
    return f"{r.index} {r.op} {r.status}" + (f" {b:,} B" if b is not None else "")


def _ratio(est: int, dev: int) -> str:
    return f"{est / dev:.3f}x" if dev else ("same" if not est else "mock 0")


def one_run(trace, args, memory: str, changes: ContextChanges, dev: list, dsum, c0: float) -> dict:
    """Estimate one trace in context, compare it with the device's records, print the line (and with -v
    every disagreeing call); the comparison."""
    t1 = time.monotonic()
    est, esum = simulate_estimate(trace, EstimateSettings(args.device, memory=memory), changes)
    t2 = time.monotonic()
    c = compare(dev, est)
    print(f"{trace.model_name:<14} {args.device} {memory:<4}{' weights in DRAM' if args.weights_dram else ''}: "
          f"{c['agree']}/{c['calls']} calls agree ({100 * c['agree'] / max(c['calls'], 1):.2f}%); first failure: "
          f"mock {_describe(c['first_device'])} | estimate {_describe(c['first_estimate'])}; "
          f"same first failure: {'yes' if c['same_first'] else 'NO'}"
          f"{', same bytes' if c['same_bytes'] and c['first_device'] else ''}; peak estimate/mock DRAM "
          f"{_ratio(esum.peak_dram_bytes, dsum.peak_dram_bytes)}, L1 {_ratio(esum.peak_l1_bytes, dsum.peak_l1_bytes)}; "
          f"estimate {t2 - t1:.1f} s, CPU {_cpu_s() - c0:.1f} s", flush=True)
    if args.v:
        for d in c["differ"]:
            print(f"    call {d[0]} {d[1]} {d[2]}: mock {d[3]}, estimate {d[4]}")
    return c


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bench_context_estimate.py", description=__doc__.split("\n")[0])
    ap.add_argument("--traces", default=",".join(DEFAULT_TRACES),
                    help="comma-separated names in traces/, or 'sample': the tests' sample (tests/sample.py) and hf_detr")
    ap.add_argument("--device", default="n150", choices=("n150", "p150"))
    ap.add_argument("--memory", default="dram,l1")
    ap.add_argument("--cache", default=CACHE, help="folder for the mock device's per-call files")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds a device call may take")
    ap.add_argument("--weights-dram", action="store_true",
                    help="both sides hold every weight in DRAM (the in-context remedy of the L1 runs: without it the "
                         "weights fill an n150's L1 and most L1 calls only repeat that)")
    ap.add_argument("--device-only", action="store_true", help="fill the device cache only")
    ap.add_argument("-v", action="store_true", help="list every disagreeing call")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Compare the in-context estimate with the mock device per trace and placement; print agreement."""
    args = _parser().parse_args(argv)
    memories = [m for m in args.memory.split(",") if m]
    bad = [m for m in memories if m not in ("dram", "l1")]
    names = args.traces.split(",")
    if args.traces == "sample":
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from sample import SAMPLE
        names = sorted(SAMPLE) + ["hf_detr"]
    paths = [os.path.join(ROOT, "traces", f"{n}.msgpack") for n in names if n]
    missing = [os.path.basename(p)[:-len(".msgpack")] for p in paths if not os.path.exists(p)]
    if bad or missing or not paths:
        print(f"bench_context_estimate: bad --memory {', '.join(bad)}: give dram, l1 or dram,l1" if bad else
              f"bench_context_estimate: no trace {', '.join(missing) or repr(args.traces)} in traces/; give names of "
              "traces/*.msgpack (comma-separated) or 'sample'",
              file=sys.stderr)
        return 2
    os.makedirs(args.cache, exist_ok=True)
    print("in-context estimate vs ttnn's MOCK device in context (no board): per-call verdicts")
    totals = {m: [0, 0, 0, 0, 0] for m in memories}   # calls agreeing, calls, same first failure, same bytes, runs
    for path in paths:
        trace = read_trace(path)
        for memory in memories:
            t0, c0 = time.monotonic(), _cpu_s()
            changes = ContextChanges(weights_dram=args.weights_dram)
            dev, dsum = device_run(trace, args.device, memory, args.cache, args.timeout, changes)
            t1 = time.monotonic()
            if args.device_only:
                print(f"{trace.model_name} {args.device} {memory}: mock device {len(dev)} calls, "
                      f"{dsum.time_s:.0f} s (this run {t1 - t0:.0f} s)", flush=True)
                continue
            c = one_run(trace, args, memory, changes, dev, dsum, c0)
            for k, v in enumerate((c["agree"], c["calls"], c["same_first"], c["same_bytes"], 1)):
                totals[memory][k] += v
    for memory, total in totals.items():
        if total[4]:
            print(f"all, {memory}{' weights in DRAM' if args.weights_dram else ''}: {total[0]}/{total[1]} calls agree "
                  f"({100 * total[0] / max(total[1], 1):.2f}%), same first failure in {total[2]}/{total[4]} runs, "
                  f"with the same requested bytes in {total[3]}/{total[4]}")
    print(f"load average {os.getloadavg()[0]:.1f}; mock device, no board")
    return 0


def _cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


if __name__ == "__main__":
    sys.exit(main())
