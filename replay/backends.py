"""Backends share one small interface: start() -> device info, run(cases, on_result), close().

Adding a backend means one class here and one line in BACKENDS.
"""
from __future__ import annotations

import importlib.metadata
import os
import time
import traceback

from replay.pool import Job, WorkerPool, find_ttnn_python
from replay.results import ESTIMATE_NOTE, MOCK_NOTE, ReplayResult


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class InProcessBackend:
    """Runs a pure function ``run_signature(sig, arg_names, settings) -> ReplayResult`` in this process."""
    name = ""

    def __init__(self, settings):
        self.settings = settings

    def function(self):
        raise NotImplementedError

    def options(self):
        """What the backend's run_signature takes as its settings."""
        return self.settings.as_dict()

    def start(self) -> dict:
        self.fn = self.function()
        return {}

    def run(self, cases, on_result) -> None:
        opts = self.options()
        for case in cases:
            t0 = time.perf_counter()
            try:
                result = self.fn(case.sig, case.arg_names, opts)
            except Exception as e:  # a bug of optrace's: keep going, but make it visible
                where = traceback.extract_tb(e.__traceback__)[-1]
                result = ReplayResult(case.sig.id, case.sig.op, "crash", self.name, self.settings.device, False,
                                      reason=f"optrace internal error: {type(e).__name__}: {e} "
                                             f"({os.path.basename(where.filename)}:{where.lineno})"[:600],
                                      time_s=time.perf_counter() - t0)
            on_result(case, result)

    def close(self) -> None:
        pass


class EstimateBackend(InProcessBackend):
    name = "estimate"

    def function(self):
        from replay.estimate import run_signature
        return run_signature

    def options(self):
        from replay.estimate import Settings
        s = self.settings
        return Settings(device=s.device, dtype=s.dtype, memory=s.memory)

    def start(self) -> dict:
        super().start()
        return {"mock": False, "note": ESTIMATE_NOTE, "ttnn": None}


class TorchBackend(InProcessBackend):
    name = "torch"

    def function(self):
        from replay.torch_backend import run_signature
        return run_signature

    def start(self) -> dict:
        super().start()
        return {"mock": False, "note": "torch reference on the CPU (shapes and dtypes checked)",
                "ttnn": None, "torch": _version("torch"), "device": "cpu"}


class TtnnBackend:
    """Signatures on ttnn (a real board, or ttnn's mock device) in crash-isolated worker processes."""
    name = "ttnn"

    def __init__(self, settings):
        self.settings = settings
        self.pool = None

    def start(self) -> dict:
        s = self.settings
        python = find_ttnn_python(s.ttnn_python)
        self.pool = WorkerPool(python, ["--device", s.device, "--dtype", s.dtype, "--memory", s.memory],
                               s.jobs, s.timeout_s, s.log_dir)
        info = self.pool.start()
        self.mock = bool(info.get("mock", True))
        return {"mock": self.mock, "note": info.get("note") or (MOCK_NOTE if self.mock else ""),
                "ttnn": info.get("ttnn_version") or info.get("ttnn"), "device": info.get("board", s.device),
                "ttnn_python": python}

    def run(self, cases, on_result) -> None:
        by_key = {c.sig.id: c for c in cases}
        jobs = [Job(c.sig.id, {"id": c.sig.id, "sig": c.sig.to_full_wire(c.arg_names),
                               "device": self.settings.device, "mock": self.mock}) for c in cases]

        def done(key, result_dict):
            on_result(by_key[key], ReplayResult.from_json(result_dict))

        self.pool.run(jobs, done)

    def close(self) -> None:
        if self.pool:
            self.pool.close()


BACKENDS = {"ttnn": TtnnBackend, "estimate": EstimateBackend, "torch": TorchBackend}
