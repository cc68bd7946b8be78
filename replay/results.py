"""Replay results: one ReplayResult per replayed signature, and the journal that stores them.

Imports neither torch nor ttnn. A results file is JSON lines: the first line is the run header
(``{"kind": "header", ...}``), every other line one result (``{"kind": "result", ...}``), appended
and flushed as each result completes, so a killed run loses nothing it finished. One process writes
a journal at a time (replay/lock.py), and a last line a kill or a full disk cut short is cut off the
next time the file is opened, so its signature is replayed again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Iterable

from capture.atomic import write_atomic
from replay import lock

# Every status a result can have, with what it means to a user.
STATUSES = {
    "pass": "ran; output shape/dtype as traced",
    "skipped": "not replayed on purpose: a port would not issue this op (reason given)",
    "folded": "computed at load time from weights/buffers: every tensor the call reads derives from parameters, "
              "buffers, constants or shape-only creation ops, never from a model input (replay.lineage); "
              "a port computes it once on the host and uploads the result",
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
BLOCKING = tuple(s for s in STATUSES if s not in ("pass", "skipped", "folded"))
OOM_STATUSES = ("oom_dram", "oom_l1", "oom_l1_small")
MEMORY_FAILURES = OOM_STATUSES + ("cb_overflow",)   # what a memory change (placement, dtype, freeing) can fix

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


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class ReplayResult:
    """One signature replayed on one backend: its verdict, the call made, the tensors as placed."""
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
        """A status that keeps a port from running (not pass, not skipped)."""
        return self.status in BLOCKING

    def to_json(self) -> dict:
        """As a JSON-ready dict sharing nothing with the result: what ``asdict`` makes, ``kind`` added,
        built by hand (asdict's deep copy of every list was most of a journal line's cost)."""
        d = {name: getattr(self, name) for name in _RESULT_SCALARS}
        d["oom"] = None if self.oom is None else dict(vars(self.oom))
        d["inputs"] = [_footprint_json(t) for t in self.inputs]
        d["outputs"] = [_footprint_json(t) for t in self.outputs]
        d["extra"] = _plain_copy(self.extra)
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


# ReplayResult's fields that to_json copies as they are (the rest hold containers or records)
_RESULT_SCALARS = tuple(f.name for f in fields(ReplayResult) if f.name not in ("oom", "inputs", "outputs", "extra"))


def _footprint_json(t: TensorFootprint) -> dict:
    return {"shape": list(t.shape), "dtype": t.dtype, "layout": t.layout, "memory": t.memory,
            "logical_bytes": t.logical_bytes, "padded_shape": list(t.padded_shape), "padded_bytes": t.padded_bytes}


def _plain_copy(value):
    """A copy of plain data as ``asdict`` copies it: dicts, lists and tuples new, dataclasses as
    dicts, anything else shared (strings, numbers, bytes)."""
    if type(value) is dict:
        return {k: _plain_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain_copy(v) for v in value]
    if type(value) is tuple:
        return tuple(_plain_copy(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def bytes_of(footprints: Iterable[TensorFootprint], padded: bool = True) -> int:
    """Total bytes of these tensors: padded (as placed) or logical."""
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
    return OomInfo(requested_bytes=int(req), buffer_type=bt, num_banks=int(banks), per_bank_bytes=int(per_bank),
                   bank_bytes=int(bank), allocated_bytes=alloc, free_bytes=free, largest_free_bytes=largest,
                   cause=cause, phase=phase)


# One page of an op's dataflow buffer larger than a core's L1 (ttnn 0.81.1 sources:
# concat/device/concat_program_factory.cpp, pad/device/pad_rm_reader_writer*_program_factory.cpp), or
# layer_norm's streaming circular buffers more than 95% of the L1 below the buffers
# (normalization/layernorm/device/layernorm_op_multi_core.cpp: "streaming_footprint.fits(usable_l1)").
_DFB_CAPACITY_RE = re.compile(r"required DFB entry size \(\d+ B\) exceeds per-core L1 capacity"
                              r"|padded row of \d+ B does not fit in the per-core L1 budget"
                              r"|circular buffers require \d+ bytes, but only \d+ bytes of the allocator's L1 span")


def is_cb_overflow(message: str) -> bool:
    """Circular/dataflow buffers that do not fit a core's L1 (or clash with L1 buffers)."""
    m = str(message)
    return bool(_CB_RE.search(m) or _DFB_CAPACITY_RE.search(" ".join(m.split())))


def oom_status(buffer_type: str) -> str:
    """The status of running out of this buffer type: oom_dram, oom_l1 or oom_l1_small."""
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


# Files this process read or wrote a header to, as (device, inode): a journal opened on a file that
# another run has replaced since would mix two runs in one file.
_seen: dict[str, tuple[int, int]] = {}

# A test hook: seconds to pause in the middle of each record's write, so a kill can land inside it.
SPLIT_WRITE_ENV = "OPTRACE_TEST_SPLIT_WRITE_S"

_SIGNATURE_RE = re.compile(rb'"signature_id": "([^"]+)"')
_OP_RE = re.compile(rb'"op": "([^"]+)"')


def _cannot_write(path: str, e: OSError) -> ResultsError:
    return ResultsError(f"{path}: cannot write results ({e.strerror or e})")


def _remember(path: str, st: os.stat_result) -> None:
    _seen[os.path.abspath(path)] = (st.st_dev, st.st_ino)


def write_header(path: str, header: dict) -> None:
    """Start a new journal atomically with its header line. Holds the file's writer lock for the
    Journal that follows (ResultsError when another process writes it, or the folder is full)."""
    _acquire(path)
    try:
        write_atomic(path, json.dumps({"kind": "header", "format": RESULTS_FORMAT, "version": RESULTS_VERSION,
                                       **header}, sort_keys=True) + "\n")
        _remember(path, os.stat(path))
    except OSError as e:
        lock.release(path)
        raise _cannot_write(path, e) from None
    _pending.add(os.path.abspath(path))


# Journals whose lock write_header took and the next Journal on them takes over.
_pending: set[str] = set()


def _acquire(path: str) -> None:
    try:
        lock.acquire(path, "results file")
    except lock.FileBusy as e:
        raise ResultsError(str(e)) from None
    except OSError as e:
        raise _cannot_write(path, e) from None


def _complete_bytes(fd: int, size: int) -> int:
    """The length of the file's complete lines: up to and including its last newline."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        i = os.pread(fd, pos - start, start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def cut_torn_tail(path: str, fd: int) -> int:
    """Cut an incomplete last line (a write a kill or a full disk interrupted) off the journal open as
    fd, saying so on stderr; returns the journal's size. Call it holding the file's lock."""
    size = os.fstat(fd).st_size
    keep = _complete_bytes(fd, size)
    if keep == size:
        return size
    fragment = os.pread(fd, min(size - keep, 4096), keep)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    sig, op = _SIGNATURE_RE.search(fragment), _OP_RE.search(fragment)
    what = f"signature {sig.group(1).decode(errors='replace')}" if sig else "signature unreadable"
    if sig and op:
        what += f", {op.group(1).decode(errors='replace')}"
    sys.stderr.write(f"replay: {path}: cut an incomplete last line ({size - keep} bytes, {what}) left by an "
                     f"interrupted run; it is replayed again on --resume\n")
    return keep


def _record_line(result: ReplayResult) -> bytes:
    """One result as one line, signature id and op first, so even a torn fragment names them."""
    d = result.to_json()
    first = {"kind": d.pop("kind"), "signature_id": d.pop("signature_id"), "op": d.pop("op")}
    return (json.dumps(first)[:-1] + ", " + json.dumps(d, sort_keys=True)[1:] + "\n").encode()


FSYNC_EVERY_S = 1.0                   # a journal's lines reach the disk at least this often


class Journal:
    """Append-only results file with one writer: its lock is held from open to close; an incomplete
    last line is cut on open; each append is one write of a whole line, or nothing. A line written
    survives the process being killed (the kernel holds it); fsync comes with the first append
    FSYNC_EVERY_S or more after the last one, and on close, so a power cut loses only the lines
    since, which --resume replays again (an fsync per line cost more than estimating the line)."""

    def __init__(self, path: str):
        self.path = path
        self._broken = False
        key = os.path.abspath(path)
        if key in _pending:
            _pending.discard(key)  # write_header's hold becomes this journal's
        else:
            _acquire(path)
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            lock.release(path)
            raise _cannot_write(path, e) from None
        try:
            st = os.fstat(self._fd)
            if _seen.get(key, (st.st_dev, st.st_ino)) != (st.st_dev, st.st_ino):
                raise ResultsError(f"{path}: another run replaced this results file since this one read it; "
                                   f"run again (with --resume to keep its results)")
            self._size = cut_torn_tail(path, self._fd)
        except OSError as e:
            self.close()
            raise _cannot_write(path, e) from None
        except BaseException:
            self.close()
            raise
        split = os.environ.get(SPLIT_WRITE_ENV)
        self._split_s = float(split) if split else None
        self._synced_at = time.monotonic()

    def append(self, result: ReplayResult) -> None:
        """Write one result line (fsynced when FSYNC_EVERY_S have passed since the last fsync); on a
        full disk, take back the part written and raise."""
        if self._broken:
            raise ResultsError(f"{self.path}: an earlier write failed; run again with --resume")
        line = _record_line(result)
        try:
            if self._split_s is not None:  # the test hook: half, a pause, the rest
                self._write(line[:len(line) // 2])
                time.sleep(self._split_s)
                self._write(line[len(line) // 2:])
            else:
                self._write(line)
            if time.monotonic() - self._synced_at >= FSYNC_EVERY_S:
                os.fsync(self._fd)
                self._synced_at = time.monotonic()
        except OSError as e:
            try:
                os.ftruncate(self._fd, self._size)  # nothing half-written stays behind
            except OSError:
                self._broken = True  # the next open cuts it
            raise ResultsError(f"{self.path}: cannot write results ({e.strerror or e}); nothing is "
                               f"half-written: free space, then run again with --resume") from None
        self._size += len(line)

    def _write(self, data: bytes) -> None:
        while data:
            n = os.write(self._fd, data)
            data = data[n:]

    def close(self) -> None:
        """Close the file and let go of its lock."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError:  # nothing more to save: every line was written whole or taken back
            pass
        os.close(self._fd)
        self._fd = None
        lock.release(self.path)


def read_results(path: str) -> tuple[dict, list[ReplayResult]]:
    """Read a journal: (header, results). An incomplete last line is cut first when no other run is
    writing the file (one that is may be mid-write: its tail is left alone and not read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
            st = os.fstat(f.fileno())
    except OSError as e:
        raise ResultsError(f"{path}: cannot read results: {e.strerror or e}") from None
    if data and not data.endswith(b"\n") and lock.try_acquire(path):
        try:
            with open(path, "rb+") as f:
                cut_torn_tail(path, f.fileno())
        except OSError:
            pass  # cannot be cut here (read-only): still readable without its tail
        finally:
            lock.release(path)
    _remember(path, st)
    lines = data[:data.rfind(b"\n") + 1].split(b"\n")
    header = None
    results: dict[str, ReplayResult] = {}
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
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
