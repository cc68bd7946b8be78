"""How fast the estimate backend is, and how often it agrees with ttnn's allocator per board.

    .venv/bin/python benchmarks/bench_estimate.py [--repeat N]

Throughput: every unique signature of the committed traces, on every board, DRAM and L1.
Agreement: random single allocations compared with the mock device, which needs the ttnn
environment (.venv-ttnn); it is run there through tests/replay/test_estimate_vs_ttnn.py's worker.
Whole-op agreement: every signature of every committed trace (OPTRACE_TEST_ALL_TRACES=0: the tests'
sample) replayed in isolation on the mock device
(through the replay worker pool) and estimated, per board, DRAM and L1: same fit/OOM verdict, and
for OOMs the same bytes (tests/replay/test_estimate_vs_ttnn.py holds the n150 rates).

    .venv/bin/python benchmarks/bench_estimate.py --device-results DIR [-v]

compares the estimate with mock-device results already stored in DIR (every
``ttnn_<board>_<dtype>_<memory>.jsonl`` there, e.g. from ``replay traces/ --backend ttnn --device p150
--memory l1 --no-report --no-remedies --out DIR``) instead of replaying on the mock device again: the
estimate is re-run in this process over the same traces (seconds), so the whole zoo is checked in a
minute after one device run per board and placement.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))      # tests/sample.py: which committed traces
sys.path.insert(0, os.path.join(ROOT, "tests", "replay"))
# The benchmark is the full check: every committed trace, not the tests' fixed sample.
os.environ.setdefault("OPTRACE_TEST_ALL_TRACES", "1")

from capture.schema import read_trace  # noqa: E402
from replay.backends.devices import DEVICES  # noqa: E402
from replay.backends.base import case_of  # noqa: E402
from replay.backends.estimate import EstimateBackend, EstimateSettings  # noqa: E402
from replay.backends.footprint import allocate, footprint  # noqa: E402
from replay.results import parse_oom  # noqa: E402

TTNN_PYTHON = os.path.join(ROOT, ".venv-ttnn", "bin", "python")


def throughput(repeat: int) -> None:
    work = []
    for path in sorted(glob.glob(os.path.join(ROOT, "traces", "*.msgpack"))):
        trace = read_trace(path)
        names = {o.name: o.arg_names for o in trace.ops}
        work += [(s, names[s.op]) for s in trace.signatures]
    if not work:
        print("no traces in traces/: nothing to time")
        return
    settings = [EstimateSettings(device=d, memory=m) for d in DEVICES for m in ("dram", "l1")]
    backends = [EstimateBackend(st) for st in settings]
    cases = [case_of(sig, arg_names) for sig, arg_names in work]
    n = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        for backend in backends:
            for case in cases:
                backend.run(case)
                n += 1
    dt = time.perf_counter() - t0
    print(f"throughput: {n / dt:,.0f} signatures/s ({n:,} estimates of {len(work)} unique signatures "
          f"x {len(settings)} board/memory settings x {repeat}, {dt:.2f} s)")


def agreement() -> None:
    if not os.path.exists(TTNN_PYTHON):
        print("agreement: skipped (no .venv-ttnn; run scripts/setup.sh)")
        return
    sys.path.insert(0, os.path.join(ROOT, "tests", "replay"))
    import test_estimate_vs_ttnn as vs  # noqa: PLC0415 - the worker protocol lives with the test
    for i, board in enumerate(DEVICES):
        cases = vs.random_cases(seed=100 + i, n=1000)
        t0 = time.perf_counter()
        proc = subprocess.run([TTNN_PYTHON, vs.__file__, board], capture_output=True, text=True,
                              input=__import__("json").dumps({"allocations": cases, "ops": []}), cwd=ROOT)
        line = [x for x in proc.stdout.splitlines() if x.startswith("OPTRACE-RESULT ")]
        if not line:
            print(f"agreement {board}: worker failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        got = __import__("json").loads(line[0].split(" ", 1)[1])["allocations"]
        verdict = exact = 0
        for c, real in zip(cases, got):
            fp = footprint(c["shape"], c["dtype"], c["layout"], c["memory"], board)
            if real["fits"]:
                verdict += fp["fits"]
                exact += fp["fits"] and fp["per_bank_bytes"] == real["per_bank_bytes"]
            else:
                oom = parse_oom(real["message"], "inputs")
                a = allocate(tuple(c["shape"]), fp["dtype"], fp["layout"], fp["memory"], DEVICES[board])
                verdict += not fp["fits"]
                exact += bool(oom) and not fp["fits"] and oom.per_bank_bytes == a.message_per_bank_bytes
        print(f"agreement {board}: fit/OOM verdict {verdict}/{len(cases)} ({100 * verdict / len(cases):.1f}%), "
              f"per-bank bytes exact {exact}/{len(cases)} ({100 * exact / len(cases):.1f}%) "
              f"vs the mock device ({time.perf_counter() - t0:.1f} s)")


def whole_op_agreement(boards: list[str], verbose: bool) -> None:
    if not os.path.exists(TTNN_PYTHON):
        print("whole-op agreement: skipped (no .venv-ttnn; run scripts/setup.sh)")
        return
    import tempfile  # noqa: PLC0415
    sys.path.insert(0, os.path.join(ROOT, "tests", "replay"))
    import test_estimate_vs_ttnn as vs  # noqa: PLC0415
    os.environ.setdefault("OPTRACE_TTNN_PYTHON", TTNN_PYTHON)
    for board in boards:
        for memory in ("dram", "l1"):
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                real = vs.replay_all("ttnn", board, memory, out)
                est = vs.replay_all("estimate", board, memory, out)
            a = vs.whole_op_agreement(real, est)
            text = vs.render_agreement(board, memory, a)
            held = (f"; the test holds n150 at >= {100 * vs.MIN_WHOLE_OP_AGREEMENT[memory]:.2f}%"
                    if board == "n150" else "")
            lines = text.split("\n")
            lines[0] += f" ({time.perf_counter() - t0:.0f} s{held})"
            print("\n".join(lines if verbose else lines[:1]))


def stored_agreement(folder: str, verbose: bool) -> None:
    """Whole-op agreement against stored mock-device journals in ``folder`` (one per board x memory)."""
    import test_estimate_vs_ttnn as vs  # noqa: PLC0415 - the comparison lives with the test
    from replay.results import read_results  # noqa: PLC0415
    from replay.run.runner import collect_cases, load_traces  # noqa: PLC0415
    paths = sorted(glob.glob(os.path.join(folder, "ttnn_*.jsonl")))
    if not paths:
        sys.exit(f"--device-results {folder}: no ttnn_<board>_<dtype>_<memory>.jsonl journals there; "
                 f"make one with replay traces/ --backend ttnn --no-report --out {folder}")
    cases = None
    for path in paths:
        header, results = read_results(path)
        if cases is None:
            traces = [os.path.join(ROOT, t["path"]) for t in header.get("traces", [])]
            cases = {c.sig.id: c for c in collect_cases(load_traces(traces))}
        board, memory, dtype = header.get("device", "?"), header.get("memory", "?"), header.get("dtype", "bfloat16")
        t0 = time.perf_counter()
        backend = EstimateBackend(EstimateSettings(device=board.split()[0], dtype=dtype, memory=memory))
        real = {r.signature_id: r for r in results if r.signature_id in cases}
        est = {sid: backend.run(case_of(cases[sid].sig, cases[sid].arg_names)) for sid in real}
        text = vs.render_agreement(board, memory, vs.whole_op_agreement(real, est))
        lines = text.split("\n")
        missing = header.get("unique_signatures", len(real)) - len(real)
        lines[0] += (f" [mock device results {os.path.basename(path)}: {len(real)} signatures"
                     f"{f', {missing} not replayed yet' if missing else ''}; estimate {time.perf_counter() - t0:.0f} s]")
        print("\n".join(lines if verbose else lines[:1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-agreement", action="store_true", help="skip the mock-device comparisons")
    ap.add_argument("--boards", default="n150,p150", help="boards for the whole-op agreement")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every whole-op disagreement")
    ap.add_argument("--device-results", metavar="DIR",
                    help="compare with stored mock-device journals in DIR instead of replaying (see above)")
    args = ap.parse_args()
    if args.device_results:
        stored_agreement(args.device_results, args.verbose)
        return
    throughput(args.repeat)
    if not args.no_agreement:
        agreement()
        whole_op_agreement([b for b in args.boards.split(",") if b], args.verbose)


if __name__ == "__main__":
    main()
