"""A zoo-sized report input: 150+ models with task and family, and estimate-backend results.

The real zoo (``traces/``, once it holds 150 or more traces) is used as it is. Until then the
committed traces stand in for it, each under several distinct names (``resnet50-3``) with the task
and family of its registry entry, so the layout is tested at the size the zoo will have. The
results are the estimate backend's (no device; L1, so that many ops fail and the matrix is busy).
"""
from __future__ import annotations

import copy
import glob
import math
import os

from capture.schema import Trace, read_trace
from replay.backends.base import case_of
from replay.backends.estimate import EstimateBackend, EstimateSettings
from replay.results import ReplayResult
from replay.run.runner import collect_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO_SIZE = 150
# task and family of the committed models (for traces whose header does not say yet)
GROUPS = {"yolov8s": ("detection", "yolov8"), "yolov8s_world": ("detection", "yolo-world"),
          "yolov8s_world_1280x800": ("detection", "yolo-world"), "yolov8s_worldv2": ("detection", "yolo-world"),
          "yolo12x_2176x3840": ("detection", "yolo12"), "swin_t": ("classification", "swin"),
          "swin_s": ("classification", "swin"), "swin_b_384": ("classification", "swin"),
          "resnet50": ("classification", "resnet"), "vit_b_16": ("classification", "vit"),
          "mobilenet_v3_large": ("classification", "mobilenet"), "efficientnet_b0": ("classification", "efficientnet"),
          "convnext_tiny": ("classification", "convnext")}


def zoo_traces(size: int = ZOO_SIZE) -> tuple[list[Trace], bool]:
    """(traces of at least ``size`` models, whether they are the real zoo)."""
    paths = sorted(glob.glob(os.path.join(ROOT, "traces", "*.msgpack")))
    real = [read_trace(p) for p in paths]
    if len(real) >= size:
        return real, True
    small = [t for t in real if t.model_name != "yolo12x_2176x3840"]   # the big one once is enough
    out = list(real)
    for k in range(1, math.ceil((size - len(real)) / len(small)) + 1):
        for t in small:
            twin = copy.copy(t)          # calls, tensors and signatures shared: the report only reads them
            twin.header = {**t.header, "model": {**t.header["model"], "name": f"{t.model_name}-{k}"}}
            twin.path = f"{t.path}#{k}"
            out.append(twin)
    for t in out:
        task, family = GROUPS.get(t.model_name.split("-")[0], ("unknown", "unknown"))
        t.header["model"].setdefault("task", task)
        t.header["model"].setdefault("family", family)
    return out[:max(size, len(real))], False


def estimate_results(traces: list[Trace], memory: str = "l1") -> tuple[dict, list[ReplayResult]]:
    """(header, one estimate result per unique signature) on the n150."""
    backend = EstimateBackend(EstimateSettings(device="n150", memory=memory))
    results = [backend.run(case_of(c.sig, c.arg_names)) for c in collect_cases(traces)]
    header = {"backend": "estimate", "device": "n150", "mock": False, "dtype": "bfloat16", "memory": memory,
              "traces": [{"path": t.path, "model": t.model_name, "sha256": ""} for t in traces]}
    return header, results
