"""Replay results: one ReplayResult per replayed signature, and the journal that stores them.

Imports neither torch nor ttnn. A results file is JSON lines: the first line is the run header
(``{"kind": "header", ...}``), every other line one result (``{"kind": "result", ...}``), appended
and flushed as each result completes, so a killed run loses nothing it finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable

from capture.atomic import write_atomic

# Every status a result can have, with what it means to a user.
STATUSES = {
    "pass": "ran; output shape/dtype as traced",
    "skipped": "not replayed on purpose: a port would not issue this op (reason given)",
    "oom_dram": "out of DRAM",
    "oom_l1": "out of L1",
    "oom_l1_small": "out of the L1_SMALL region",
    "cb_overflow": "circular/dataflow buffers beyond L1, or clashing with L1 buffers",
    "unsupported": "no ttnn equivalent optrace knows (reason given)",
    "ttnn_error": "ttnn raised another error (error_signature groups equal errors)",
    "mismatch": "ran on a real board but the output differs from torch (PCC below threshold)",
    "crash": "the worker process died",
    "timeout": "the op ran longer than --timeout",
}
BLOCKING = tuple(s for s in STATUSES if s not in ("pass", "skipped"))
OOM_STATUSES = ("oom_dram", "oom_l1", "oom_l1_small")

MOCK_NOTE = "mock device: ttnn's own allocator and op code, no arithmetic"
ESTIMATE_NOTE = "estimate: optrace's analytic memory model, no device"
RESULTS_FORMAT = "optrace-results"
RESULTS_VERSION = 1


@dataclass
class TensorFootprint:
    """A tensor as replay placed it on the device."""
    shape: list[int]
    dtype: str               # ttnn dtype name, e.g. "bfloat16"
    layout: str              # "TILE" | "ROW_MAJOR"
    memory: str              # "DRAM" | "L1" | "host"
    logical_bytes: int
    padded_shape: list[int]
    padded_bytes: int


@dataclass
class OomInfo:
    """The allocator's own account of an out-of-memory error."""
    requested_bytes: int
    buffer_type: str         # DRAM | L1 | L1_SMALL | TRACE
    num_banks: int
    per_bank_bytes: int
    bank_bytes: int
    allocated_bytes: int | None
    free_bytes: int | None
    largest_free_bytes: int | None
    cause: str               # "exhaustion" | "fragmentation" | "unknown"
    phase: str               # "inputs" (uploading inputs) | "op" (the op's own buffers)


@dataclass
class ReplayResult:
    signature_id: str
    op: str                                  # aten overload, e.g. "aten.view.default"
    status: str                              # one of STATUSES
    backend: str                             # "ttnn" | "estimate" | "torch"
    device: str                              # "n150", ..., or "cpu" for the torch backend
    mock: bool                               # True when the ttnn backend ran on the mock device
    ttnn_call: str = ""                      # the call made, readable, e.g. "ttnn.reshape(x, [..])"
    reason: str = ""                         # why unsupported/skipped, or the error's first line
    error_signature: str = ""                # stable hash of the normalized error message
    oom: OomInfo | None = None
    inputs: list[TensorFootprint] = field(default_factory=list)
    outputs: list[TensorFootprint] = field(default_factory=list)
    numerics: str = "not_checked"            # "not_checked" | "pcc=0.9991 max_abs=0.01" ...
    time_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.status in BLOCKING

    def to_json(self) -> dict:
        d = asdict(self)
        d["kind"] = "result"
        return d

    @staticmethod
    def from_json(d: dict) -> "ReplayResult":
        d = dict(d)
        d.pop("kind", None)
        oom = d.pop("oom", None)
        ins = [TensorFootprint(**t) for t in d.pop("inputs", [])]
        outs = [TensorFootprint(**t) for t in d.pop("outputs", [])]
        return ReplayResult(oom=OomInfo(**oom) if oom else None, inputs=ins, outputs=outs, **d)


def bytes_of(footprints: Iterable[TensorFootprint], padded: bool = True) -> int:
    return sum(t.padded_bytes if padded else t.logical_bytes for t in footprints)


# ---------------------------------------------------------------------------------------------
# Error texts (ttnn 0.81.1, see docs/ and ../shared/research/ttnn-mock-device.md §5)

_OOM_RE = re.compile(
    r"Out of Memory: Not enough space (?:after considering dependencies )?to allocate (\d+) B "
    r"(DRAM|L1_SMALL|L1|TRACE) buffer across (\d+) banks, where each bank needs to store (\d+) B, "
    r"but bank size is (\d+) B(?: \(allocated: (\d+) B, free: (\d+) B, largest free block: (\d+) B\))?")
_CB_RE = re.compile(r"(circular buffers|dataflow buffers).*(beyond max L1 size|clash with L1 buffers)",
                    re.IGNORECASE | re.DOTALL)


_TT_PREFIX_RE = re.compile(r"^(?:\w+: )?(TT_THROW|TT_FATAL) @ \S+:\d+: (\S+)?(.*?)(tt::exception )?info: ")


def one_line(message: str, limit: int = 400) -> str:
    """The message up to ttnn's backtrace, whitespace collapsed, tt-metal's source location dropped."""
    m = " ".join(str(message).split())
    cut = m.find("backtrace:")
    m = (m[:cut] if cut >= 0 else m).strip()
    return _TT_PREFIX_RE.sub("", m)[:limit]


def parse_oom(message: str, phase: str) -> OomInfo | None:
    """Parse ttnn's allocator message into OomInfo, or None when it is not an OOM."""
    m = _OOM_RE.search(" ".join(str(message).split()))
    if not m:
        return None
    req, bt, banks, per_bank, bank = (m.group(1), m.group(2), m.group(3), m.group(4), m.group(5))
    alloc, free, largest = (int(g) if g is not None else None for g in m.group(6, 7, 8))
    cause = "unknown"
    if free is not None and largest is not None:
        cause = "fragmentation" if free >= int(per_bank) > largest else "exhaustion"
    return OomInfo(int(req), bt, int(banks), int(per_bank), int(bank), alloc, free, largest, cause, phase)


# One page of an op's dataflow buffer larger than a core's L1 (ttnn 0.81.1 sources:
# concat/device/concat_program_factory.cpp, pad/device/pad_rm_reader_writer*_program_factory.cpp).
_DFB_CAPACITY_RE = re.compile(r"required DFB entry size \(\d+ B\) exceeds per-core L1 capacity"
                              r"|padded row of \d+ B does not fit in the per-core L1 budget")


def is_cb_overflow(message: str) -> bool:
    """Circular/dataflow buffers that do not fit a core's L1 (or clash with L1 buffers)."""
    m = str(message)
    return bool(_CB_RE.search(m) or _DFB_CAPACITY_RE.search(" ".join(m.split())))


def oom_status(buffer_type: str) -> str:
    return {"DRAM": "oom_dram", "L1": "oom_l1", "L1_SMALL": "oom_l1_small"}.get(buffer_type, "oom_dram")


def error_signature(message: str) -> str:
    """A stable id for an error: numbers, hex addresses and paths normalized, then hashed."""
    m = one_line(message, 2000)
    m = re.sub(r"0x[0-9a-fA-F]+", "ADDR", m)
    m = re.sub(r"(/[\w.\-]+)+(:\d+)?", "PATH", m)
    m = re.sub(r"\d+", "N", m)
    return hashlib.sha256(m.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# The journal

class ResultsError(ValueError):
    """A results file that cannot be used; one line."""


def write_header(path: str, header: dict) -> None:
    """Start a new journal atomically with its header line."""
    write_atomic(path, json.dumps({"kind": "header", "format": RESULTS_FORMAT, "version": RESULTS_VERSION,
                                   **header}, sort_keys=True) + "\n")


class Journal:
    """Append-only results file; each append is one flushed line (a torn last line is ignored)."""

    def __init__(self, path: str):
        self.path = path
        self._f = open(path, "a")

    def append(self, result: ReplayResult) -> None:
        self._f.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_results(path: str) -> tuple[dict, list[ReplayResult]]:
    """Read a journal: (header, results). A torn final line (killed mid-write) is dropped."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise ResultsError(f"{path}: cannot read results: {e.strerror or e}") from None
    header = None
    results: dict[str, ReplayResult] = {}
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            if n >= len(lines) - 2:  # the torn tail of a killed run
                continue
            raise ResultsError(f"{path}:{n + 1}: not a results line (not JSON)") from None
        if n == 0:
            if not (isinstance(d, dict) and d.get("format") == RESULTS_FORMAT):
                raise ResultsError(f"{path}: not an optrace results file (no header line)")
            if d.get("version") != RESULTS_VERSION:
                raise ResultsError(f"{path}: results version {d.get('version')!r} not supported")
            header = d
            continue
        try:
            r = ReplayResult.from_json(d)
        except TypeError as e:
            raise ResultsError(f"{path}:{n + 1}: malformed result ({e})") from None
        results[r.signature_id] = r  # a resumed run may repeat one; the last word counts
    if header is None:
        raise ResultsError(f"{path}: empty results file")
    return header, list(results.values())
