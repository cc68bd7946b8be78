"""Capture cost without timing noise: instructions per forward, counted by valgrind's callgrind.

swin_t (or --model) runs on the meta device, so no arithmetic: what is left is the Python and dispatch
side, the part a recorder adds to. Each variant runs in its own process under callgrind twice, with
--low and --high forwards after one warm-up; the difference of the two counts divided by the
difference of the forwards is the variant's instructions per forward (start-up cancels out). Variants:
a pass-through TorchDispatchMode (the floor of any dispatch-mode recorder) and optrace's recorder
(record_calls: the forward under the recorder and its signature table). Needs valgrind; ~10 min on
2 cores (the four processes run two at a time).

    .venv/bin/python benchmarks/bench_capture_instructions.py [--model swin_t] [--low 2] [--high 12]
"""
from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("pass-through", "optrace")


def worker(model_name: str, variant: str, forwards: int) -> None:
    """One process's work under callgrind: build the model on the meta device, warm up, run forwards."""
    sys.path.insert(0, ROOT)
    import torch

    from capture.capture import make_inputs, record_calls
    from capture.registry import build_model, load_registry

    class PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    torch.set_num_threads(1)
    entry = load_registry()[model_name]
    model = build_model(entry).to("meta")
    xs = [x.to("meta") for x in make_inputs(entry, entry.inputs, None)]

    def pass_through():
        with torch.no_grad(), PassThrough():
            model(*xs)

    run = pass_through if variant == "pass-through" else (lambda: record_calls(model, xs))
    run()
    for _ in range(forwards):
        run()
        gc.collect()


def counted(model_name: str, variant: str, forwards: int, out_dir: str) -> int:
    """Instructions callgrind counts for a whole worker process."""
    out = os.path.join(out_dir, f"{variant}.{forwards}.out")
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        os.path.abspath(__file__), "--worker", variant, str(forwards), "--model", model_name],
                       capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    m = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or not m:
        tail = p.stderr.strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"bench_capture_instructions: the {variant} worker failed: {tail[0]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="swin_t", help="registry model (default: %(default)s)")
    ap.add_argument("--low", type=int, default=2, help="forwards in the short run (default: %(default)s)")
    ap.add_argument("--high", type=int, default=12, help="forwards in the long run (default: %(default)s)")
    ap.add_argument("--worker", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.model, args.worker[0], int(args.worker[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_capture_instructions: valgrind is not installed; install it (apt install valgrind) to count")
    if not 0 <= args.low < args.high:
        sys.exit("bench_capture_instructions: --low must be >= 0 and below --high")
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(2) as pool:
        jobs = {(v, n): pool.submit(counted, args.model, v, n, d) for v in VARIANTS for n in (args.low, args.high)}
        per = {v: (jobs[v, args.high].result() - jobs[v, args.low].result()) / (args.high - args.low)
               for v in VARIANTS}
    floor, rec = per["pass-through"], per["optrace"]
    print(f"{args.model} on the meta device, instructions per forward (callgrind, {args.high} - {args.low} forwards):")
    print(f"  pass-through TorchDispatchMode {floor / 1e6:8.1f}M")
    print(f"  optrace (record_calls)         {rec / 1e6:8.1f}M  (+{(rec - floor) / 1e6:.1f}M, {rec / floor:.3f}x the floor)")


if __name__ == "__main__":
    main()
