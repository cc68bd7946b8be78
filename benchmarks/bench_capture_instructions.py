"""Capture cost without timing noise: instructions per forward, counted by valgrind's callgrind.

bench_capture.py's variants, counted instead of timed: the same binary, inputs and environment give
the same count whatever else the machine does (its timings drift by 10% between sittings). Each
variant runs in its own process under callgrind twice, with --low and --high forwards after one
warm-up; the difference of the two counts divided by the difference of the forwards is the variant's
instructions per forward (start-up cancels out). Variants: the plain forward, a pass-through
TorchDispatchMode (the floor of any dispatch-mode recorder), optrace's recorder (record_calls: the
forward under the recorder and its signature table) and torch.profiler(record_shapes=True).
--device cpu counts the real forward, arithmetic included (issue 10's comparison, one thread);
--device meta only the Python and dispatch side, the part a recorder adds to. Needs valgrind;
swin_t: ~10 min on the meta device, ~25 min on the CPU (two processes at a time).

    .venv/bin/python benchmarks/bench_capture_instructions.py [--model swin_t] [--device cpu] [--low 1] [--high 3]
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
VARIANTS = ("plain", "pass-through", "optrace", "profiler")


def worker(model_name: str, variant: str, forwards: int, device: str) -> None:
    """One process's work under callgrind: build the model on the device, warm up, run forwards."""
    sys.path.insert(0, ROOT)
    import torch

    from capture.capture import make_inputs, record_calls
    from capture.registry import build_model, load_registry

    class PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    torch.set_num_threads(1)
    entry = load_registry()[model_name]
    model = build_model(entry).to(device)
    xs = [x.to(device) for x in make_inputs(entry, entry.inputs, None)]

    def plain():
        with torch.no_grad():
            model(*xs)

    def pass_through():
        with PassThrough():
            plain()

    def profiler():
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True):
            plain()

    run = {"plain": plain, "pass-through": pass_through, "profiler": profiler,
           "optrace": lambda: record_calls(model, xs)}[variant]
    run()
    for _ in range(forwards):
        run()
        gc.collect()


def counted(model_name: str, variant: str, forwards: int, device: str, out_dir: str) -> int:
    """Instructions callgrind counts for a whole worker process."""
    out = os.path.join(out_dir, f"{variant}.{forwards}.out")
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        os.path.abspath(__file__), "--worker", variant, str(forwards), "--model", model_name,
                        "--device", device],
                       capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    m = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or not m:
        tail = p.stderr.strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"bench_capture_instructions: the {variant} worker failed: {tail[0]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="swin_t", help="registry model (default: %(default)s)")
    ap.add_argument("--device", choices=("cpu", "meta"), default="cpu",
                    help="cpu: the real forward; meta: no arithmetic (default: %(default)s)")
    ap.add_argument("--low", type=int, default=1, help="forwards in the short run (default: %(default)s)")
    ap.add_argument("--high", type=int, default=3, help="forwards in the long run (default: %(default)s)")
    ap.add_argument("--worker", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.model, args.worker[0], int(args.worker[1]), args.device)
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_capture_instructions: valgrind is not installed; install it (apt install valgrind) to count")
    if not 0 <= args.low < args.high:
        sys.exit("bench_capture_instructions: --low must be >= 0 and below --high")
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(2) as pool:
        jobs = {(v, n): pool.submit(counted, args.model, v, n, args.device, d)
                for v in VARIANTS for n in (args.low, args.high)}
        per = {v: (jobs[v, args.high].result() - jobs[v, args.low].result()) / (args.high - args.low)
               for v in VARIANTS}
    plain = per["plain"]
    print(f"{args.model} on the {args.device} device, one thread, instructions per forward "
          f"(callgrind, {args.high} - {args.low} forwards), and as a ratio to the plain forward:")
    for v, what in (("plain", "plain forward"), ("pass-through", "pass-through TorchDispatchMode"),
                    ("optrace", "optrace (record_calls)"), ("profiler", "torch.profiler(record_shapes=True)")):
        print(f"  {what:36} {per[v] / 1e6:9.1f}M  {per[v] / plain:.3f}x  (+{(per[v] - plain) / 1e6:.1f}M)")
    verdict = "PASS" if per["optrace"] <= per["profiler"] else "FAIL"
    print(f"{args.model}: optrace {per['optrace'] / plain:.3f}x vs the profiler's {per['profiler'] / plain:.3f}x "
          f"in instructions: {verdict}")


if __name__ == "__main__":
    main()
