"""The replay runner: unique signatures across traces, replayed once each, journaled as they finish.

Killing the runner (even with SIGKILL) loses no finished result: every result is a flushed line of
the journal, and ``resume=True`` replays only what the journal does not hold yet.
"""
from __future__ import annotations

import gc
import glob
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from capture.capture import dist_version
from capture.gc_pause import gc_paused
from capture.schema import Signature, Trace, TraceError, read_trace
from replay.results import Journal, ReplayResult, ResultsError, read_results, write_header
from replay.run.drivers import DRIVERS

DEVICES = ("n150", "n300", "p150", "p100")
DTYPES = ("bfloat16", "float32", "bfloat8_b")
MEMORIES = ("dram", "l1")


class ReplayError(ValueError):
    """Bad input to a replay run; one line that says what to do."""


@dataclass(kw_only=True)
class RunSettings:
    """One replay run's settings: backend, board, placement, workers, timeout, shard, numerics threshold."""
    backend: str = "ttnn"
    device: str = "n150"
    dtype: str = "bfloat16"
    memory: str = "dram"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float = 120.0
    ttnn_python: str | None = None
    shard: tuple[int, int] | None = None      # (K, N): the K-th of N shards, K from 1
    log_dir: str = ""
    pcc: float = 0.99                         # numerics on a real board: below this PCC is a mismatch
    cluster: str | None = None                # ttnn on a Ray cluster: "ray" (local), "ray://HOST:PORT", ...
    ttnn_version: str | None = None           # another ttnn release (replay/run/ttnn_envs.py), in its own files

    def validate(self) -> None:
        """ReplayError naming the first bad setting."""
        if self.backend not in DRIVERS:
            raise ReplayError(f"unknown backend {self.backend!r}; choose one of {', '.join(DRIVERS)}")
        if self.device not in DEVICES:
            raise ReplayError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise ReplayError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.memory not in MEMORIES:
            raise ReplayError(f"unknown memory {self.memory!r}; choose dram or l1")
        if self.timeout_s <= 0 or self.jobs < 1:
            raise ReplayError("--timeout must be > 0 and --jobs >= 1")
        if not -1.0 <= self.pcc <= 1.0:
            raise ReplayError(f"--pcc {self.pcc:g} must be between -1 and 1")
        if self.ttnn_version and (self.backend != "ttnn" or self.cluster):
            raise ReplayError("--ttnn-version runs the ttnn backend in the built-in pool; drop --cluster/--backend "
                              "(a Ray cluster's actors use the ttnn installed on its nodes)")
        if self.cluster and self.backend != "ttnn":
            raise ReplayError(f"--cluster runs the ttnn backend, not {self.backend}; drop --cluster or use --backend ttnn")


@dataclass
class UniqueSignature:
    """One unique signature to replay, with the models it occurs in."""
    sig: Signature
    arg_names: list[str]
    models: list[str]


# ---------------------------------------------------------------------------------------------
# Inputs

def trace_paths(paths: list[str]) -> list[str]:
    """Trace files named directly or found (non-recursively) in folders; sorted, deduplicated."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.msgpack")))
            if not found:
                raise ReplayError(f"{p}: no *.msgpack traces in this folder (make some with trace-model)")
            out += found
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise ReplayError(f"{p}: no such file or folder")
    if not out:
        raise ReplayError("no traces given (e.g. replay traces/)")
    return sorted(dict.fromkeys(os.path.normpath(p) for p in out))


def load_traces(paths: list[str]) -> list[Trace]:
    """Read the traces (files or folders); ReplayError on a bad file or a model traced twice.

    The traces live for the whole run and hold no cycles, so they are frozen out of the cyclic GC
    (``gc.freeze``): else every full pass while replaying walks their millions of objects again (the
    zoo's estimate: 10 CPU s of replay became 6). Reference counting still frees them; cyclic garbage
    made before is collected first, so freezing keeps none of it alive."""
    traces = []
    gc.collect()
    with gc_paused():
        for p in trace_paths(paths):
            try:
                traces.append(read_trace(p))
            except TraceError as e:
                raise ReplayError(str(e)) from None
    gc.freeze()
    names = Counter(t.model_name for t in traces)
    dup = [n for n, k in names.items() if k > 1]
    if dup:
        raise ReplayError(f"model {dup[0]!r} appears in more than one trace; replay one trace per model")
    return traces


def file_sha256(path: str) -> str:
    """The file's SHA-256, hex (a trace's identity in results headers)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def collect_cases(traces: list[Trace]) -> list[UniqueSignature]:
    """Unique signatures across all traces, in first-seen order."""
    cases: dict[str, UniqueSignature] = {}
    for t in traces:
        model = t.model_name
        for s in t.signatures:
            c = cases.get(s.id)
            if c is None:
                arg_names = t.ops[t.calls[s.calls[0]].op].arg_names
                cases[s.id] = UniqueSignature(s, arg_names, [model])
            elif model not in c.models:
                c.models.append(model)
    return list(cases.values())


def in_shard(sig_id: str, shard: tuple[int, int] | None) -> bool:
    """A deterministic 1/N split by signature id, the same on every machine."""
    if shard is None:
        return True
    k, n = shard
    return int(sig_id, 16) % n == k - 1


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N), None for no shard; ReplayError when it is not 1 <= K <= N."""
    if not text:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ReplayError(f"--shard {text!r} must look like K/N, e.g. 1/4") from None
    if not (n >= 1 and 1 <= k <= n):
        raise ReplayError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


# ---------------------------------------------------------------------------------------------
# The run header: what makes two result files comparable

def run_identity(traces: list[Trace], settings: RunSettings) -> dict:
    """Everything that must match for results to be resumed or merged (shard aside)."""
    return {
        "backend": settings.backend, "device": settings.device, "dtype": settings.dtype,
        "memory": settings.memory,
        **({"ttnn_version": settings.ttnn_version} if settings.ttnn_version else {}),
        "traces": [{"path": t.path, "model": t.model_name, "sha256": file_sha256(t.path),
                    "calls": len(t.calls), "signatures": len(t.signatures)} for t in traces],
    }


def identity_key(identity: dict) -> str:
    """A short hash of what makes two runs comparable (backend, device, dtype, memory, traces)."""
    core = {k: identity[k] for k in ("backend", "device", "dtype", "memory")}
    core["traces"] = sorted(t["sha256"] for t in identity["traces"])
    if identity.get("ttnn_version"):            # runs of another ttnn release never resume into each other
        core["ttnn_version"] = identity["ttnn_version"]
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def default_results_path(out_dir: str, settings: RunSettings) -> str:
    """<out>/<backend>_<device>_<dtype>_<memory>[_ttnnX][_shardKofN].jsonl"""
    name = f"{settings.backend}_{settings.device}_{settings.dtype}_{settings.memory}"
    if settings.ttnn_version:
        name += f"_ttnn{settings.ttnn_version}"
    if settings.shard:
        name += f"_shard{settings.shard[0]}of{settings.shard[1]}"
    return os.path.join(out_dir, name + ".jsonl")


# ---------------------------------------------------------------------------------------------
# Progress on a terminal

class Progress:
    """One updating line on a TTY (done/total, counts by status, ETA, current op); sparse lines otherwise."""

    def __init__(self, total: int, stream=sys.stderr, label: str = ""):
        self.total, self.stream, self.label = total, stream, label
        self.done = 0
        self.counts: Counter = Counter()
        self.t0 = time.monotonic()
        self.tty = stream.isatty()
        self._last = 0.0

    def update(self, case: UniqueSignature, result: ReplayResult) -> None:
        self.done += 1
        self.counts[result.status] += 1
        now = time.monotonic()
        if not self.tty and now - self._last < 5 and self.done != self.total:
            return
        self._last = now
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        line = (f"{self.label}[{self.done}/{self.total}] {counts} | ETA {eta:.0f}s | "
                f"{result.op} ({', '.join(case.models[:2])}{'...' if len(case.models) > 2 else ''})")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:200])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# The run

def replay(traces: list[Trace], settings: RunSettings, results_path: str, resume: bool = False,
           progress: bool = True) -> tuple[dict, list[ReplayResult]]:
    """Replay every unique signature of the traces (of this shard) once; returns (header, results)."""
    settings.validate()
    identity = run_identity(traces, settings)
    cases = [c for c in collect_cases(traces) if in_shard(c.sig.id, settings.shard)]
    settings.log_dir = settings.log_dir or os.path.join(os.path.dirname(os.path.abspath(results_path)), "logs")
    for folder in (os.path.dirname(os.path.abspath(results_path)), settings.log_dir):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise ReplayError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
    header, done = _resumed(results_path, identity_key(identity), settings) if resume else (None, {})
    todo = [c for c in cases if c.sig.id not in done]
    if header is not None and not todo:
        Journal(results_path).close()   # resuming still needs the journal writable and ours alone
        if progress:
            sys.stderr.write(f"replay {settings.backend} {settings.device}: nothing left to do, all {len(cases)} "
                             f"signatures are already journaled\n")
        return header, [done[c.sig.id] for c in cases]
    driver = DRIVERS[settings.backend](settings)
    try:
        info = driver.start()
        if header is None:
            header = _new_header(identity, settings, info, len(cases))
            write_header(results_path, header)
        journal = Journal(results_path)
        bar = Progress(len(cases), label=f"replay {settings.backend} {settings.device} ") if progress else None
        if bar:
            bar.done = len(done)
            bar.counts.update(r.status for r in done.values())

        def on_result(case: UniqueSignature, result: ReplayResult) -> None:
            journal.append(result)
            done[result.signature_id] = result
            if bar:
                bar.update(case, result)

        try:
            driver.run(todo, on_result)
        finally:
            journal.close()
    finally:
        driver.close()
    return header, [done[c.sig.id] for c in cases if c.sig.id in done]


def _resumed(results_path: str, key: str, settings: RunSettings) -> tuple[dict | None, dict[str, ReplayResult]]:
    """(header, results by signature id) of the journal to resume; (None, {}) when there is none yet."""
    if not os.path.exists(results_path):
        return None, {}
    try:
        header, previous = read_results(results_path)
    except ResultsError as e:
        raise ReplayError(str(e)) from None
    if header.get("identity_key") != key or header.get("shard") != _shard_text(settings.shard):
        raise ReplayError(f"{results_path} was made from other traces or settings; "
                          f"drop --resume to start over, or use another --out")
    return header, {r.signature_id: r for r in previous}


def _new_header(identity: dict, settings: RunSettings, info: dict, signatures: int) -> dict:
    """A new journal's header: the run's identity and what the driver says about the device."""
    return {
        **identity, "identity_key": identity_key(identity), "shard": _shard_text(settings.shard),
        "optrace": dist_version("optrace"), "ttnn": info.get("ttnn"), "torch": info.get("torch"),
        "mock": info.get("mock", False), "note": info.get("note", ""),
        "device": info.get("device", settings.device), "unique_signatures": signatures,
        **({"cluster": info["cluster"]} if info.get("cluster") else {}),
        **({"ttnn_python": info["ttnn_python"]} if settings.ttnn_version else {}),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _shard_text(shard) -> str | None:
    return f"{shard[0]}/{shard[1]}" if shard else None


# ---------------------------------------------------------------------------------------------
# Merging shards

def merge(paths: list[str], out_path: str) -> tuple[dict, list[ReplayResult]]:
    """Combine shard result files of the same traces and settings into one results file."""
    if not paths:
        raise ReplayError("name the shard result files to merge")
    loaded = []
    for p in paths:
        try:
            loaded.append(read_results(p))
        except ResultsError as e:
            raise ReplayError(str(e)) from None
    first = loaded[0][0]
    results: dict[str, ReplayResult] = {}
    for p, (h, rs) in zip(paths, loaded):
        if h.get("identity_key") != first.get("identity_key"):
            raise ReplayError(f"{p} was made from other traces or settings than {paths[0]}; "
                              f"only shards of one run can be merged")
        for r in rs:
            results[r.signature_id] = r
    header = {k: v for k, v in first.items() if k not in ("kind", "format", "version")}
    header["shard"] = None
    header["merged_from"] = [os.path.basename(p) for p in paths]
    tmp = out_path + ".merging"
    write_header(tmp, header)
    j = Journal(tmp)
    for r in results.values():
        j.append(r)
    j.close()
    os.replace(tmp, out_path)
    return header, list(results.values())
