"""Tracing many models in one run (`trace-model --all`): which traces are already current, tracing
one model into its file (in this process or in worker processes, `--jobs`), and the progress line
(model k/N, elapsed, ETA). No torch at import; package versions come from metadata.

Each worker traces whole models and writes each trace atomically as it finishes, so an interrupted
run loses only the models in flight; `trace-model --all` again keeps what is current and finishes.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from capture.registry import ModelEntry
from capture.schema import Trace, TraceError, read_trace, write_trace

# torch threads per worker process when tracing in parallel (building models too): the workers share
# the cores; the forward itself always runs with capture.capture.CAPTURE_THREADS
WORKER_THREADS = 1

# the libraries whose version decides a source's trace (besides optrace and torch)
_SOURCE_LIBRARY = {"torchvision": "torchvision", "timm": "timm", "ultralytics": "ultralytics",
                   "transformers": "transformers"}


def stale_reason(entry: ModelEntry, path: str, *, grad_mode: str, fake: bool) -> str:
    """Why the trace at path is not what tracing entry now would write ("" when it is current):
    missing, unreadable, another entry, grad or tensor mode, or other library versions."""
    from capture.capture import dist_version
    if not os.path.exists(path):
        return "no trace yet"
    try:
        header = read_trace(path).header
    except TraceError as e:
        return f"unreadable ({e})"
    model = dict(header.get("model") or {})
    want = entry.to_dict()
    if not entry.inputs:           # inputs made at build time are recorded from the forward
        model.pop("inputs", None)
        want.pop("inputs", None)
    if model != want:
        return "the registry entry changed"
    mode = "fake" if fake or entry.capture == "fake" else "real"
    if (header.get("via"), header.get("grad_mode"), header.get("tensor_mode")) != ("eager", grad_mode, mode):
        return "traced via another route, grad mode or tensor mode"
    versions = header.get("versions") or {}
    for dist in ("optrace", "torch", _SOURCE_LIBRARY.get(entry.source)):
        if dist and versions.get(dist) != dist_version(dist):
            return f"traced with {dist} {versions.get(dist)}, installed {dist_version(dist)}"
    return ""


class Progress:
    """`[k/N] name` tags with the run's elapsed time and an ETA from the models traced so far
    (their mean time, times the models left, over the workers tracing them side by side)."""

    def __init__(self, total: int, workers: int = 1):
        self.total = total
        self.workers = max(1, workers)
        self.t0 = time.perf_counter()
        self.traced_s: list[float] = []    # seconds per model actually traced (kept/skipped ones are ~0)
        self.left = total

    def tag(self, k: int, name: str) -> str:
        """`[k/N] name` plus, with more than one model, the elapsed time and the ETA."""
        if self.total == 1:
            return f"[1/1] {name}"
        elapsed = time.perf_counter() - self.t0
        share = max(1, min(self.workers, self.left))
        eta = _clock(sum(self.traced_s) / len(self.traced_s) * self.left / share) if self.traced_s else "?"
        return f"[{k}/{self.total}] {name} (elapsed {_clock(elapsed)}, ETA {eta})"

    def done(self, seconds: float | None) -> None:
        """One model finished: traced in `seconds`, or None when it was kept, skipped or failed early."""
        self.left -= 1
        if seconds is not None:
            self.traced_s.append(seconds)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------------------------------------
# Tracing one model into its file

@dataclass(kw_only=True, frozen=True)
class TraceJob:
    """One model to trace and where its trace goes; k is its place in the run ([k/N])."""
    k: int
    entry: ModelEntry
    path: str
    via: str
    grad_mode: str
    fake: bool = False
    inputs: list[list[int]] | None = None


@dataclass(kw_only=True, frozen=True)
class TraceOutcome:
    """What tracing a job did: the written trace's summary, or why it failed (one of the three is set)."""
    job: TraceJob
    seconds: float           # wall
    cpu_s: float = 0.0       # CPU time of the process tracing it (all its threads), build included
    summary: str = ""        # "N op calls, ... -> path" when written
    failure: str = ""        # "FAILED in forward: ..." (the model failed; the others go on)
    build_error: str = ""    # the entry cannot be built as written (BuildError's one line)


def capture_entry(entry: ModelEntry, via: str, grad_mode: str, inputs: list[list[int]] | None = None,
                  fake: bool = False) -> Trace:
    """Trace one entry via eager (fake forces fake tensors) or export."""
    from capture.capture import capture_model
    from capture.export import export_model

    if via == "export":
        return export_model(entry, grad_mode=grad_mode, inputs=inputs)
    return capture_model(entry, fake=True if fake else None, grad_mode=grad_mode, inputs=inputs)


def failure_line(e: Exception) -> str:
    """What a failed capture prints: torch.export's one line, or the forward's exception."""
    from capture.export import ExportError

    if isinstance(e, ExportError):
        return f"FAILED in torch.export: {e}"
    msg = " ".join(str(e).split())[:300]
    return f"FAILED in forward: {type(e).__name__}: {msg}"


def write_summary(trace: Trace, path: str, seconds: float) -> str:
    """Write a trace atomically and return its one summary line."""
    nbytes = write_trace(trace, path)
    ops = len({c.op for c in trace.calls})
    size = f"{nbytes / 1024:.1f} KiB" if nbytes < 1 << 20 else f"{nbytes / (1 << 20):.2f} MiB"
    return (f"{len(trace.calls)} op calls, {ops} distinct ops, {len(trace.signatures)} unique signatures, {size}, "
            f"{seconds:.1f} s ({trace.header['tensor_mode']} tensors, via {trace.header['via']}) -> {path}")


def trace_job(job: TraceJob) -> TraceOutcome:
    """Trace one job and write its trace; a failure is returned, never raised (the others go on)."""
    from capture.sources import BuildError

    t0, c0 = time.perf_counter(), time.process_time()
    done = {}
    try:
        trace = capture_entry(job.entry, job.via, job.grad_mode, job.inputs, job.fake)
        done["summary"] = write_summary(trace, job.path, time.perf_counter() - t0)
    except BuildError as e:  # the entry is wrong as written: said like a registry error
        done["build_error"] = str(e)
    except Exception as e:  # a model failing in forward or in torch.export must not stop the others
        done["failure"] = failure_line(e)
    return TraceOutcome(job=job, seconds=time.perf_counter() - t0, cpu_s=time.process_time() - c0, **done)


def run_jobs(jobs: list[TraceJob], workers: int, started=None) -> Iterator[TraceOutcome]:
    """Each job's outcome as it finishes: in this process (workers <= 1, in order), else in that many
    worker processes with WORKER_THREADS torch threads each. started(job) is called as a job begins
    (in this process: as it is handed to a worker). A worker that dies (out of memory, a crash) takes
    no other model with it: the models that were in flight are traced again one at a time, and only
    one whose worker dies alone fails."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            if started:
                started(job)
            yield trace_job(job)
        return
    suspects: list[TraceJob] = []
    yield from _in_workers(jobs, workers, started, suspects)
    for job in suspects:
        yield from _in_workers([job], 1, None, None)


def _in_workers(jobs: list[TraceJob], workers: int, started, suspects: list | None) -> Iterator[TraceOutcome]:
    """run_jobs in one pool; when it breaks, the jobs in flight go to suspects (None: they fail)."""
    # spawn, not fork: a forked child of a process that already ran torch's OpenMP pool can hang
    ctx = multiprocessing.get_context("spawn")
    pending = list(reversed(jobs))
    running: dict = {}
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop()
                if started:
                    started(job)
                running[pool.submit(trace_job, job)] = (job, time.perf_counter())
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            broken = [f for f in done if isinstance(f.exception(), concurrent.futures.process.BrokenProcessPool)]
            for fut in done:
                if fut not in broken:
                    yield fut.result()
                    running.pop(fut)
            if broken:
                for job, t0 in running.values():
                    if suspects is None:
                        yield TraceOutcome(job=job, seconds=time.perf_counter() - t0,
                                           failure="FAILED: its worker process died (out of memory or a "
                                                   "crash in the model's code)")
                    else:
                        suspects.append(job)
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
    except BaseException:  # interrupted: do not wait for the models in flight
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _worker_init() -> None:
    import torch  # a worker process: its models are traced with torch
    torch.set_num_threads(WORKER_THREADS)
