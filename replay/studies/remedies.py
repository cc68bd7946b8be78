"""Remedies: for a failing signature, the cheapest configuration on the same device that runs.

Imports neither torch nor ttnn. The ladder (``ladder``) tries, one change at a time from the run's
settings: DRAM instead of L1; ROW_MAJOR instead of TILE (or the reverse); bfloat8_b; and, for a
reshape or permute with size-1 trailing dims, the same op with those dims folded away (a port keeps
them implicit) — alone and with DRAM. Each alternative is replayed on the run's backend (the ttnn
workers, or the estimate); among those that pass, the cheapest is the one whose tensors need the
fewest bytes (inputs + outputs, padded, as replay placed them). The result is stored in the
signature's ``extra["remedy"]``: ``{"remedy", "bytes_needed", "tried": [[name, status], ...]}``; the
reports read it back (replay/report/remedies.py).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace

from capture.schema import Signature
from replay.backends.base import case_of
from replay.backends.estimate import EstimateBackend, EstimateSettings
from replay.results import BLOCKING, Journal, ReplayResult, bytes_of
from replay.run.pool import Job, WorkerPool, find_ttnn_python
from replay.run.runner import RunSettings, UniqueSignature, collect_cases
from replay.shapes import fold_trailing_ones

NONE = "none"


@dataclass
class Variant:
    """One configuration to try for a signature: placement (dtype, layout, memory) and the signature run."""
    name: str                # what a user would change, e.g. "memory=DRAM"
    dtype: str
    layout: str
    memory: str              # dram | l1
    sig: Signature
    arg_names: list[str]


def ladder(sig: Signature, arg_names: list[str], dtype: str, layout: str, memory: str) -> list[Variant]:
    """The alternatives to try for one signature, cheapest change first."""
    def variant(name, sig=sig, dtype=dtype, layout=layout, memory=memory):
        return Variant(name=name, dtype=dtype, layout=layout, memory=memory, sig=sig, arg_names=arg_names)
    out = []
    if memory == "l1":
        out.append(variant("memory=DRAM", memory="dram"))
    flip = "ROW_MAJOR" if layout == "TILE" else "TILE"
    if not (flip == "ROW_MAJOR" and dtype.endswith("_b")):
        out.append(variant(f"layout={flip}", layout=flip))
    if dtype != "bfloat8_b":
        out.append(variant("dtype=bfloat8_b", dtype="bfloat8_b", layout="TILE"))
    folded = fold_trailing_ones(sig, arg_names)
    if folded is not None:
        shape = folded.outputs[0][1][0]
        out.append(variant(f"fold trailing 1s: {shape}", sig=folded))
        if memory == "l1":
            out.append(variant(f"fold trailing 1s: {shape}, memory=DRAM", sig=folded, memory="dram"))
    return out


def choose(tried: list[tuple[Variant, ReplayResult]]) -> dict:
    """The cheapest passing variant (fewest padded bytes), as stored in extra["remedy"]."""
    passing = [(bytes_of(r.inputs) + bytes_of(r.outputs), i, v) for i, (v, r) in enumerate(tried)
               if r.status == "pass"]
    best = min(passing, key=lambda x: (x[0], x[1])) if passing else None
    return {"remedy": best[2].name if best else NONE, "bytes_needed": best[0] if best else None,
            "tried": [[v.name, r.status] for v, r in tried]}


def find_remedies(cases: list[UniqueSignature], results: dict[str, ReplayResult], settings: RunSettings
                  ) -> dict[str, dict]:
    """Signature id -> remedy for every failing result among the cases, on the run's backend and device."""
    failing = [c for c in cases if c.sig.id in results and results[c.sig.id].status in BLOCKING
               and results[c.sig.id].status not in ("unsupported", "crash", "timeout")]
    variants = [(c.sig.id, v) for c in failing
                for v in ladder(c.sig, c.arg_names, settings.dtype, "TILE", settings.memory)]
    if not variants:
        return {}
    ran = run_variants([v for _, v in variants], settings)
    tried: dict[str, list] = {}
    for (sid, v), r in zip(variants, ran):
        tried.setdefault(sid, []).append((v, r))
    return {sid: choose(t) for sid, t in tried.items()}


def run_variants(variants: list[Variant], settings: RunSettings) -> list[ReplayResult]:
    """Replay each variant on settings.backend (ttnn workers grouped by placement, or the estimate)."""
    if settings.backend == "estimate":
        return [EstimateBackend(EstimateSettings(device=settings.device, dtype=v.dtype, layout=v.layout,
                                                 memory=v.memory)).run(case_of(v.sig, v.arg_names))
                for v in variants]
    python = find_ttnn_python(settings.ttnn_python)
    results: dict[int, ReplayResult] = {}
    groups: dict[tuple, list[int]] = {}
    for i, v in enumerate(variants):
        groups.setdefault((v.dtype, v.layout, v.memory), []).append(i)
    log_dir = settings.log_dir or tempfile.mkdtemp(prefix="optrace-remedies-")
    os.makedirs(log_dir, exist_ok=True)
    for (dtype, layout, memory), idx in groups.items():
        pool = WorkerPool(python, ["--device", settings.device, "--dtype", dtype, "--memory", memory,
                                   "--layout", layout], 1, settings.timeout_s, log_dir)
        try:
            info = pool.start()
            jobs = [Job(str(i), {"id": str(i), "sig": variants[i].sig.to_full_wire(variants[i].arg_names),
                                 "device": settings.device, "mock": bool(info.get("mock"))}) for i in idx]
            pool.run(jobs, lambda key, d: results.__setitem__(int(key), ReplayResult.from_json(d)))
        finally:
            pool.close()
    return [results[i] for i in range(len(variants))]


def add_remedies(traces: list, settings: RunSettings, results_path: str, results: list[ReplayResult]
                 ) -> list[ReplayResult]:
    """Find remedies for the failing results of a run and journal them (a later line for the same
    signature is the last word); returns the results, those with a remedy carrying ``extra["remedy"]``."""
    by_id = {r.signature_id: r for r in results}
    found = find_remedies(collect_cases(traces), by_id, settings)
    if found:
        j = Journal(results_path)
        for sid, rem in found.items():
            by_id[sid] = replace(by_id[sid], extra={**by_id[sid].extra, "remedy": rem})
            j.append(by_id[sid])
        j.close()
    return [by_id[r.signature_id] for r in results]
