"""Backends share one small interface: start() -> device info, run(cases, on_result), close().

Adding a backend means one class here and one line in BACKENDS.
"""
from __future__ import annotations

import os
import time
import traceback

from capture.capture import dist_version
from replay.backends.numerics import NUMERICS_ON_MOCK_ENV
from replay.run.pool import Job, WorkerPool, find_ttnn_python
from replay.results import ESTIMATE_NOTE, MOCK_NOTE, ReplayResult


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
                result = ReplayResult(signature_id=case.sig.id, op=case.sig.op, status="crash", backend=self.name,
                                      device=self.settings.device, mock=False,
                                      reason=f"optrace internal error: {type(e).__name__}: {e} "
                                             f"({os.path.basename(where.filename)}:{where.lineno})"[:600],
                                      time_s=time.perf_counter() - t0)
            on_result(case, result)

    def close(self) -> None:
        pass


class EstimateBackend(InProcessBackend):
    name = "estimate"

    def function(self):
        from replay.backends.estimate import run_signature
        return run_signature

    def options(self):
        from replay.backends.estimate import EstimateSettings
        s = self.settings
        return EstimateSettings(device=s.device, dtype=s.dtype, memory=s.memory)

    def start(self) -> dict:
        super().start()
        return {"mock": False, "note": ESTIMATE_NOTE, "ttnn": None}


class TorchBackend(InProcessBackend):
    name = "torch"

    def function(self):
        from replay.backends.torch_ref import run_signature
        return run_signature

    def start(self) -> dict:
        super().start()
        return {"mock": False, "note": "torch reference on the CPU (shapes and dtypes checked)",
                "ttnn": None, "torch": dist_version("torch"), "device": "cpu"}


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
        by_key = {c.sig.id: c for c in cases}
        if not self.numerics():
            def done(key, result_dict):
                on_result(by_key[key], ReplayResult.from_json(result_dict))
            self.pool.run([self._job(c) for c in cases], done)
            return
        # Numerics: inputs and references are made batch by batch, so only a batch's data is held.
        from replay.mapping import PortSettings
        from replay.backends.numerics import judge, prepare
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
        if self.pool:
            self.pool.close()


BACKENDS = {"ttnn": TtnnBackend, "estimate": EstimateBackend, "torch": TorchBackend}
