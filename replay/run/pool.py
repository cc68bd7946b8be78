"""Crash-isolated ttnn worker processes: one signature at a time each, with a per-op timeout.

The coordinator (any Python with optrace) speaks to workers (the ttnn interpreter, running
``python -m replay.run.worker``) over pipes in length-prefixed msgpack frames. A worker that dies
yields a ``crash`` result for its signature and is replaced; one that overruns ``timeout_s`` is
killed and yields ``timeout``. The run goes on either way.
"""
from __future__ import annotations

import importlib.util
import os
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import msgpack

from replay.results import ReplayResult

READY_TIMEOUT_S = 180.0
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # replay/run/ -> repo
DEFAULT_TTNN_VENV_PYTHON = os.path.join(REPO_ROOT, ".venv-ttnn", "bin", "python")


class PoolError(RuntimeError):
    """The workers cannot be started at all; one line saying what to do."""


def pack_frame(obj) -> bytes:
    """One frame as bytes: 4-byte big-endian length + msgpack body (as replay.run.worker reads them)."""
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def find_ttnn_python(explicit: str | None = None) -> str:
    """The interpreter for workers: --ttnn-python (or --ttnn-version's), else this one if it has ttnn,
    else OPTRACE_TTNN_PYTHON, else the environment scripts/setup.sh made."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise PoolError(f"--ttnn-python {explicit!r} is not an executable Python interpreter")
        return explicit
    if importlib.util.find_spec("ttnn") is not None:
        return sys.executable
    cand = os.environ.get("OPTRACE_TTNN_PYTHON")
    if cand:
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            raise PoolError(f"OPTRACE_TTNN_PYTHON {cand!r} is not an executable Python interpreter")
        return cand
    if os.path.isfile(DEFAULT_TTNN_VENV_PYTHON):
        return DEFAULT_TTNN_VENV_PYTHON
    raise PoolError("no Python with ttnn found: run scripts/setup.sh, or pass --ttnn-python PATH "
                    "(a Python 3.10/3.12 with ttnn==0.81.1 and optrace installed)")


@dataclass
class Job:
    """One request for a worker, and the key its result is reported under."""
    key: str
    request: dict


def worker_env(env: dict | None = None) -> dict:
    """The environment a worker starts with: ``env`` (default: this process's) with the repo on PYTHONPATH."""
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = REPO_ROOT + os.pathsep + out.get("PYTHONPATH", "")
    return out


class Worker:
    """One worker process (``python -m <module> <args>`` in the repo, its own session and log file),
    spoken to in frames: ``send`` a request, ``receive`` what came back."""

    def __init__(self, python: str, module: str, args: list[str], log_dir: str, n: int = 0, env: dict | None = None):
        self.log = tempfile.NamedTemporaryFile(prefix=f"worker{n}-", suffix=".log", dir=log_dir, delete=False)
        self.proc = subprocess.Popen([python, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=worker_env(env), cwd=REPO_ROOT, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.job: Job | None = None
        self.deadline = 0.0
        self.info: dict | None = None

    def frames(self) -> list[dict]:
        """Complete frames received so far (non-blocking read of what is available); EOFError at exit."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            raise EOFError
        if chunk:
            self.buf += chunk
        out = []
        while len(self.buf) >= 4:
            n = struct.unpack(">I", self.buf[:4])[0]
            if len(self.buf) < 4 + n:
                break
            out.append(msgpack.unpackb(self.buf[4:4 + n], raw=False))
            self.buf = self.buf[4 + n:]
        return out

    def receive(self, timeout_s: float) -> list[dict]:
        """The frames that arrive within timeout_s ([] when none did); EOFError when the worker has exited."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            sel.select(max(0.0, timeout_s))
        finally:
            sel.close()
        return self.frames()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict:
        """The worker's ready frame; PoolError (the worker killed) when it fails, exits or stays silent."""
        deadline = time.monotonic() + timeout_s
        while self.info is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise PoolError(f"a ttnn worker did not start within {timeout_s:.0f} s: {self.log_tail()}")
            try:
                frames = self.receive(min(left, 1.0))
            except EOFError:
                self.proc.wait()
                raise PoolError(f"a ttnn worker exited at start (status {self.proc.returncode}): "
                                f"{self.log_tail()}") from None
            for f in frames:
                if f.get("kind") == "ready":
                    self.info = f
                elif f.get("kind") == "fatal":
                    self.kill()
                    raise PoolError(f"ttnn worker cannot start: {f.get('error')}")
        return self.info

    def send(self, job: Job, timeout_s: float) -> None:
        """Send a job's request; its answer is due within timeout_s."""
        self.job = job
        self.deadline = time.monotonic() + timeout_s
        self.proc.stdin.write(pack_frame(job.request))
        self.proc.stdin.flush()

    def log_tail(self, lines: int = 6) -> str:
        """The last lines the worker wrote to its log, on one line (what a crash result says)."""
        try:
            with open(self.log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log.name) - 4000))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the worker's whole process group, now."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def close(self) -> None:
        """End of stdin asks the worker to close its device and exit; killed if it takes over 10 s."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


class WorkerPool:
    """``jobs`` workers of ``python -m replay.run.worker``; ``run(jobs, on_result)`` calls
    on_result(key, result_dict) per job, a crash or a timeout included."""

    def __init__(self, python: str, worker_args: list[str], jobs: int, timeout_s: float, log_dir: str,
                 env: dict | None = None):
        self.python, self.worker_args, self.env = python, list(worker_args), env
        self.jobs = max(1, jobs)
        self.timeout_s = timeout_s
        self.log_dir = log_dir
        self.workers: list[Worker] = []
        self._spawned = 0
        self.info: dict = {}

    def _spawn(self) -> Worker:
        self._spawned += 1
        w = Worker(self.python, "replay.run.worker", self.worker_args, self.log_dir, self._spawned, self.env)
        self.info = w.wait_ready()
        return w

    def start(self) -> dict:
        """Start the workers; returns the first worker's ready info (device, mock, versions)."""
        self.workers = [self._spawn() for _ in range(self.jobs)]
        return self.info

    def _replace(self, w: Worker) -> Worker:
        w.kill()
        w.log.close()
        nw = self._spawn()
        self.workers[self.workers.index(w)] = nw
        return nw

    def run(self, jobs: list[Job], on_result) -> None:
        """Run every job on the workers, as many at a time as there are workers."""
        queue = list(reversed(jobs))
        sel = selectors.DefaultSelector()
        try:
            while queue or any(w.job for w in self.workers):
                self._hand_out(queue, on_result)
                busy = [w for w in self.workers if w.job]
                if busy:
                    self._collect(sel, busy, on_result)
        finally:
            sel.close()

    def _hand_out(self, queue: list[Job], on_result) -> None:
        """Give each idle worker the next job; a worker that died between two ops is replaced."""
        for w in self.workers:
            if w.job is None and queue:
                try:
                    w.send(queue.pop(), self.timeout_s)
                except OSError:  # the worker died between two ops
                    job, tail = w.job, w.log_tail()
                    self._replace(w)
                    on_result(job.key, _failure(job, "crash", f"worker died before the op: {tail}"))

    def _collect(self, sel, busy: list[Worker], on_result) -> None:
        """Wait (up to the nearest deadline, at most 1 s) for answers; crashes and timeouts are results."""
        for w in busy:
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        events = sel.select(min(wait, 1.0))
        for w in busy:
            sel.unregister(w.proc.stdout)
        ready = {key.data for key, _ in events}
        for w in busy:
            job = w.job
            if w in ready:
                try:
                    frames = w.frames()
                except EOFError:
                    w.proc.wait()
                    tail = w.log_tail()
                    self._replace(w)
                    on_result(job.key, _failure(job, "crash", f"worker died (exit status "
                                                              f"{w.proc.returncode}): {tail}"))
                    continue
                for f in frames:
                    if f.get("kind") == "result" and f.get("id") == job.key:
                        w.job = None
                        on_result(job.key, f["result"])
            if w.job is not None and time.monotonic() > w.deadline:
                self._replace(w)
                on_result(job.key, _failure(job, "timeout", f"no answer within {self.timeout_s:g} s"))

    def close(self) -> None:
        """Close every worker (each closes its device)."""
        for w in self.workers:
            w.close()
        self.workers = []


def _failure(job: Job, status: str, reason: str) -> dict:
    sig = job.request["sig"]
    return ReplayResult(signature_id=sig[0], op=sig[1], status=status, backend="ttnn",
                        device=job.request.get("device", ""), mock=bool(job.request.get("mock")),
                        reason=reason[:600]).to_json()
