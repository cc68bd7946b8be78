"""Running a model in context: the isolated verdicts first, then each model's call sequence, journaled.

``run_context(traces, settings, out_dir)`` is `replay run --mode model`: per model a per-signature
results journal (what `replay report` reads) and a per-call file (replay/context/plan.py has their
layout). The sequence runs on the estimate (replay/context/estimate.py, in this process) or on
ttnn: ``run_ttnn_context(trace, settings, log_dir)`` hosts replay/context/worker.py in one
crash-isolated worker process. Imports neither torch nor ttnn.
"""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from typing import Callable

from capture.schema import Trace
from replay.backends.estimate import EstimateSettings
from replay.context.changes import ContextChanges, ModelRemedy
from replay.context.estimate import simulate_estimate
from replay.context.plan import (CallRecord, ContextSummary, plan_context, signature_results, summarize,
                                 write_calls)
from replay.lock import writer_lock
from replay.results import Journal, ReplayResult, read_results, write_header
from replay.run.pool import READY_TIMEOUT_S, PoolError, Worker, find_ttnn_python
from replay.run.ray_cluster import map_tasks
from replay.run.runner import ReplayError, RunSettings, default_results_path, file_sha256, replay, run_identity


def context_paths(out_dir: str, settings: RunSettings, model: str) -> tuple[str, str]:
    """(per-signature results journal, per-call file) of one model's in-context run."""
    base = os.path.join(out_dir, f"context_{settings.backend}_{settings.device}_{settings.dtype}_"
                                 f"{settings.memory}_{model}")
    return base + ".jsonl", base + ".calls.jsonl"


def run_ttnn_context(trace: Trace, settings: RunSettings, log_dir: str, changes: ContextChanges | None = None,
                     stop_after: int | None = None, stop_at_first_failure: bool = False
                     ) -> tuple[list[CallRecord], ContextSummary, dict]:
    """The whole sequence (or the calls up to ``stop_after``, or up to the first call that runs out of
    memory with ``stop_at_first_failure``) in one crash-isolated ttnn worker, with the port's changes
    applied: (records, summary, the worker's ready info). A worker that dies or hangs leaves a
    ``crash`` record on the call it was on."""
    python = find_ttnn_python(settings.ttnn_python)
    argv = [trace.path, "--device", settings.device, "--dtype", settings.dtype, "--memory", settings.memory]
    if changes:
        argv += ["--changes", json.dumps(changes.to_json())]
    if stop_after is not None:
        argv += ["--stop-after", str(stop_after)]
    if stop_at_first_failure:
        argv.append("--stop-at-first-failure")
    w = Worker(python, "replay.context.worker", argv, log_dir)
    records: list[CallRecord] = []
    info: dict = {}
    summary = _follow(w, settings.timeout_s, records, info)
    if summary is None:  # the worker died or hung: the call it was on is the culprit
        calls = plan_context(trace).steps
        if len(records) < len(calls) and (stop_after is None or len(records) <= stop_after):
            s = calls[len(records)]
            records.append(CallRecord(index=s.index, signature_id=s.signature_id, op=s.op, module_path=s.module_path,
                                      status="crash",
                                      reason=f"the context worker died or hung here: {w.log_tail()}"[:600]))
        summary = summarize(trace.model_name, "ttnn", settings.device, records, len(calls))
    return records, summary, info


def _follow(w: Worker, timeout_s: float, records: list[CallRecord], info: dict) -> ContextSummary | None:
    """Read the context worker's frames into records and info until its summary (None: it died or went
    silent for timeout_s, the first frame allowed READY_TIMEOUT_S); the worker is closed or killed."""
    summary = None
    deadline = time.monotonic() + max(timeout_s, READY_TIMEOUT_S)
    try:
        while summary is None:
            if time.monotonic() > deadline:
                w.kill()
                break
            try:
                frames = w.receive(1.0)
            except EOFError:
                break
            for f in frames:
                kind = f.get("kind")
                if kind == "fatal":
                    raise PoolError(f"ttnn context worker cannot start: {f.get('error')}")
                if kind == "ready":
                    info.update(f)
                elif kind == "call":
                    records.append(CallRecord(**{k: v for k, v in f["record"].items() if k != "kind"}))
                elif kind == "summary":
                    summary = ContextSummary(**f["summary"])
                deadline = time.monotonic() + timeout_s
    finally:
        if summary is not None:
            w.close()
        else:
            w.kill()
    return summary


def _isolated(traces: list[Trace], settings: RunSettings, out_dir: str, progress: bool):
    """The isolated verdicts of the same signatures, for the side-by-side view (resumed when present):
    (results path, header, results by signature id)."""
    path = default_results_path(out_dir, settings)
    try:
        header, results = replay(traces, settings, path, resume=True, progress=progress)
    except ReplayError:
        header, results = replay(traces, settings, path, resume=False, progress=progress)
    return path, header, {r.signature_id: r for r in results}


def in_context(trace: Trace, settings: RunSettings, log_dir: str, changes: ContextChanges | None = None,
               stop_after: int | None = None):
    """(records, summary, info) of one model's sequence on settings.backend, with the port's changes
    applied (replay/context/changes.py); with ``stop_after``, only the calls up to that index."""
    if settings.backend == "estimate":
        records, summary = simulate_estimate(trace, EstimateSettings(settings.device, settings.dtype,
                                                                     memory=settings.memory), changes, stop_after)
        return records, summary, {"mock": False, "note": summary.note}
    return run_ttnn_context(trace, settings, log_dir, changes, stop_after)


# A study of one model's in-context run, called when calls fail (replay/studies/context_remedies.py):
# (trace, settings, log dir, the run's records, its worker's ready info) -> the changes that make it
# pass, checked.
RemedySearch = Callable[[Trace, RunSettings, str, list[CallRecord], dict], ModelRemedy]


def _write_model(trace: Trace, settings: RunSettings, out_dir: str, iso_path: str, iso_header: dict,
                 isolated: dict[str, ReplayResult], run, remedy: ModelRemedy | None) -> tuple[str, str]:
    """Write one model's per-call file and per-signature journal; returns their paths."""
    records, summary, info = run
    model = trace.model_name
    mock = bool(info.get("mock", iso_header.get("mock")))
    results_path, calls_path = context_paths(out_dir, settings, model)
    header = {**run_identity([trace], settings), "mode": "model", "model": model,
              "mock": mock, "note": info.get("note") or iso_header.get("note", ""),
              "ttnn": info.get("ttnn_version") or iso_header.get("ttnn"),
              "isolated_results": os.path.basename(iso_path), "calls_file": os.path.basename(calls_path),
              "context": summary.to_json(), "trace_sha256": file_sha256(trace.path),
              "context_remedy": remedy.to_json() if remedy else None,
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_calls(calls_path, header, records, summary)
    write_header(results_path, header)
    j = Journal(results_path)
    per_sig: dict[str, list] = {}
    for c in remedy.calls if remedy else []:
        per_sig.setdefault(c.signature_id, []).append(asdict(c))
    for r in signature_results(plan_context(trace), records, isolated, settings.backend, settings.device, mock):
        if r.signature_id in per_sig:
            r.extra["context_remedy"] = per_sig[r.signature_id]
        j.append(r)
    j.close()
    return results_path, calls_path


def run_context(traces: list[Trace], settings: RunSettings, out_dir: str, progress: bool = True,
                remedies: RemedySearch | None = None) -> list[tuple[str, str]]:
    """Replay each trace in context (settings.backend: ttnn or estimate); write per model a results
    journal (per-signature, the report's input) and a per-call file. With ``remedies``, a model with
    failing calls gets the changes that make it pass (stored in both). Returns their paths."""
    if settings.backend not in ("ttnn", "estimate"):
        raise ReplayError("--mode model runs on the ttnn or estimate backend")
    os.makedirs(out_dir, exist_ok=True)
    log_dir = settings.log_dir or os.path.join(os.path.abspath(out_dir), "logs")
    os.makedirs(log_dir, exist_ok=True)
    iso = _isolated(traces, settings, out_dir, progress)
    with ExitStack() as held:
        ran = _on_cluster(traces, settings, out_dir, log_dir, held) if settings.cluster else {}
        return [_context_model(trace, settings, out_dir, log_dir, iso, remedies, progress, ran.get(trace.model_name))
                for trace in traces]


def _on_cluster(traces: list[Trace], settings: RunSettings, out_dir: str, log_dir: str, held: ExitStack) -> dict:
    """--cluster: every model's sequence as one Ray task, all at once (each model's per-call file held
    until the run ends); model -> (records, summary, info)."""
    for trace in traces:
        held.enter_context(writer_lock(context_paths(out_dir, settings, trace.model_name)[1], "per-call file"))
    runs = map_tasks(in_context, [(trace, settings, log_dir) for trace in traces], settings.cluster)
    return {trace.model_name: run for trace, run in zip(traces, runs)}


def _context_model(trace: Trace, settings: RunSettings, out_dir: str, log_dir: str, iso: tuple,
                   remedies: RemedySearch | None, progress: bool, run: tuple | None) -> tuple[str, str]:
    """One model in context, written (``run``: its sequence when a cluster task already ran it);
    returns its (results, per-call) paths."""
    iso_path, iso_header, isolated = iso
    t0 = time.monotonic()
    _, calls_path = context_paths(out_dir, settings, trace.model_name)
    with ExitStack() as lock:
        if run is None:
            lock.enter_context(writer_lock(calls_path, "per-call file"))   # one in-context run per model
            run = in_context(trace, settings, log_dir)
        remedy = remedies(trace, settings, log_dir, run[0], run[2]) if remedies and run[1].failing_calls else None
        results_path, calls_path = _write_model(trace, settings, out_dir, iso_path, iso_header, isolated, run, remedy)
    if progress:
        records, summary = run[0], run[1]
        sys.stderr.write(f"context {settings.backend} {settings.device} {trace.model_name}: {len(records)} calls in "
                         f"{time.monotonic() - t0:.1f} s; peak DRAM {summary.peak_dram_bytes:,} B, "
                         f"L1 {summary.peak_l1_bytes:,} B; first failure "
                         f"{summary.first_failure if summary.first_failure is not None else 'none'}\n")
    read_results(results_path)  # what the report reads must read back
    return results_path, calls_path
