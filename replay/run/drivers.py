"""Drivers host a backend for the runner: ``start() -> info``, ``run(cases, on_result)``, ``close()``.

A backend (replay/backends/base.py) replays one case; a driver decides where it runs: the estimate
and the torch reference in this process (``InProcessDriver``), ttnn in a pool of crash-isolated
worker processes (``TtnnDriver``, replay/run/pool.py), or with ``--cluster`` in device actors across a
Ray cluster (``RayDriver``, replay/run/ray_driver.py). Adding a backend means one module in
replay/backends/ and one line in DRIVERS.
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Callable

from capture.capture import dist_version
from replay.backends.base import Backend, case_of
from replay.backends.estimate import EstimateBackend, EstimateSettings
from replay.backends.numerics import NUMERICS_ON_MOCK_ENV, judge, prepare
from replay.mapping import PortSettings
from replay.results import ESTIMATE_NOTE, MOCK_NOTE, ReplayResult
from replay.run.pool import Job, PoolError, WorkerPool, find_ttnn_python
from replay.run.ray_driver import RayDriver


class InProcessDriver:
    """Runs a backend in this process, one case at a time; an optrace bug in it becomes a crash result."""

    def __init__(self, settings, make_backend: Callable[[], Backend], info: dict):
        self.settings, self.make_backend, self.info = settings, make_backend, info
        self.backend: Backend | None = None

    def start(self) -> dict:
        """Make the backend; returns what the results header says about it."""
        self.backend = self.make_backend()
        return dict(self.info)

    def run(self, cases, on_result) -> None:
        """on_result(case, result) for each UniqueSignature, in order."""
        for case in cases:
            t0 = time.perf_counter()
            try:
                result = self.backend.run(case_of(case.sig, case.arg_names))
            except Exception as e:  # a bug of optrace's: keep going, but make it visible
                where = traceback.extract_tb(e.__traceback__)[-1]
                result = ReplayResult(signature_id=case.sig.id, op=case.sig.op, status="crash",
                                      backend=self.backend.name, device=self.settings.device, mock=False,
                                      reason=f"optrace internal error: {type(e).__name__}: {e} "
                                             f"({os.path.basename(where.filename)}:{where.lineno})"[:600],
                                      time_s=time.perf_counter() - t0)
            on_result(case, result)

    def close(self) -> None:
        """Nothing to release in this process."""


def estimate_driver(settings) -> InProcessDriver:
    """The estimate (replay/backends/estimate.py) in this process."""
    def make() -> Backend:
        return EstimateBackend(EstimateSettings(device=settings.device, dtype=settings.dtype, memory=settings.memory))
    return InProcessDriver(settings, make, {"mock": False, "note": ESTIMATE_NOTE, "ttnn": None})


def torch_driver(settings) -> InProcessDriver:
    """The torch reference (replay/backends/torch_ref.py) in this process."""
    def make() -> Backend:
        from replay.backends.torch_ref import TorchBackend  # torch only when this backend runs
        return TorchBackend()
    return InProcessDriver(settings, make, {"mock": False, "note": "torch reference on the CPU (shapes and dtypes "
                                                                    "checked)", "ttnn": None,
                                            "torch": dist_version("torch"), "device": "cpu"})


class TtnnDriver:
    """Signatures on ttnn (a real board, or ttnn's mock device) in crash-isolated worker processes."""
    name = "ttnn"

    def __init__(self, settings):
        self.settings = settings
        self.pool: WorkerPool | None = None
        self.mock: bool | None = None           # known once the workers have started

    def start(self) -> dict:
        """Start the workers; returns what the results header says about the device."""
        s = self.settings
        python = find_ttnn_python(s.ttnn_python)
        self.pool = WorkerPool(python, ["--device", s.device, "--dtype", s.dtype, "--memory", s.memory],
                               s.jobs, s.timeout_s, s.log_dir)
        info = self.pool.start()
        version = info.get("ttnn_version") or info.get("ttnn")
        if s.ttnn_version and version != s.ttnn_version:
            raise PoolError(f"--ttnn-version {s.ttnn_version}: {python} has ttnn {version}; delete its environment "
                            f"folder to have it made again")
        self.mock = bool(info.get("mock", True))
        note = info.get("note") or (MOCK_NOTE if self.mock else "")
        if self.numerics():
            note += (f"; outputs compared with torch (PCC >= {s.pcc:g})" if not self.mock else
                     f"; {NUMERICS_ON_MOCK_ENV}=1: data sent to test the numerics path, outputs are garbage")
        return {"mock": self.mock, "note": note,
                "ttnn": info.get("ttnn_version") or info.get("ttnn"), "device": info.get("board", s.device),
                "ttnn_python": python}

    def numerics(self) -> bool:
        """Compare outputs with torch: on a real board, or on the mock device when testing the path."""
        return not self.mock or os.environ.get(NUMERICS_ON_MOCK_ENV) == "1"

    def _job(self, case, inputs: dict | None = None) -> Job:
        request = {"id": case.sig.id, "sig": case.sig.to_full_wire(case.arg_names),
                   "device": self.settings.device, "mock": self.mock}
        if inputs is not None:      # also {} for ops without inputs (full, arange): read the output back
            request["inputs"] = inputs
        return Job(case.sig.id, request)

    def run(self, cases, on_result) -> None:
        """on_result(case, result) for each UniqueSignature, as the workers finish them."""
        if not cases:               # e.g. a resumed run with nothing left: the workers never started
            return
        by_key = {c.sig.id: c for c in cases}
        if not self.numerics():
            def done(key, result_dict):
                on_result(by_key[key], ReplayResult.from_json(result_dict))
            self.pool.run([self._job(c) for c in cases], done)
            return
        self._run_with_numerics(cases, by_key, on_result)

    def _run_with_numerics(self, cases, by_key: dict, on_result) -> None:
        """Inputs and references are made batch by batch, so only a batch's data is held."""
        s = self.settings
        mapping_settings = PortSettings(dtype=s.dtype, memory=s.memory)
        step = 4 * max(1, s.jobs)
        for start in range(0, len(cases), step):
            batch = cases[start:start + step]
            prepared = {c.sig.id: prepare(c.sig, c.arg_names, mapping_settings) for c in batch}

            def judged(key, result_dict):
                actual = result_dict.get("extra", {}).pop("numerics_outputs", None)
                result = ReplayResult.from_json(result_dict)
                judge(result, prepared[key], actual, s.pcc)
                on_result(by_key[key], result)
            self.pool.run([self._job(c, None if prepared[c.sig.id].reason else prepared[c.sig.id].inputs)
                           for c in batch], judged)

    def close(self) -> None:
        """Close the workers (each closes its device)."""
        if self.pool:
            self.pool.close()


def ttnn_driver(settings) -> TtnnDriver | RayDriver:
    """ttnn in the built-in worker pool, or across a Ray cluster when settings.cluster names one."""
    return RayDriver(settings) if getattr(settings, "cluster", None) else TtnnDriver(settings)


# --backend name -> the driver that hosts it
DRIVERS: dict[str, Callable] = {"ttnn": ttnn_driver, "estimate": estimate_driver, "torch": torch_driver}
