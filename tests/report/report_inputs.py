"""Inputs for report tests: the committed traces and results covering every status."""
from __future__ import annotations

import os

from sample import trace_files
from capture.schema import read_trace, tensor_payloads
from replay.shapes import input_shapes
from replay.results import STATUSES, OomInfo, ReplayResult, TensorFootprint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE_PATHS = trace_files()   # the fixed sample (tests/sample.py; OPTRACE_TEST_ALL_TRACES=1: all)
ITEM = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "uint8": 1, "bool": 1}


def footprint(shape: list[int], torch_dtype: str) -> TensorFootprint:
    n = 1
    for d in shape:
        n *= d
    padded = list(shape) or [1]
    if len(padded) >= 2:
        padded[-1] = -(-padded[-1] // 32) * 32
        padded[-2] = -(-padded[-2] // 32) * 32
    m = 1
    for d in padded:
        m *= d
    return TensorFootprint(list(shape), "bfloat16", "TILE", "DRAM", n * 2, padded, m * 2)


def synthetic_results(traces, leave_out_every: int = 0) -> tuple[dict, list[ReplayResult]]:
    """One result per unique signature, statuses cycling through every status (for rendering
    tests until the real runner writes results); every leave_out_every-th signature gets none."""
    sigs = {}
    for t in traces:
        for s in t.signatures:
            sigs.setdefault(s.id, s)
    statuses = [s for s in STATUSES if s != "folded"]  # folded is per call, from the lineage
    results = []
    for i, (sid, sig) in enumerate(sorted(sigs.items())):
        if leave_out_every and i % leave_out_every == 0:
            continue
        status = "pass" if i % 3 else statuses[(i // 3) % len(statuses)]
        tens = [footprint(t[0], t[1]) for t in tensor_payloads(sig.args)]
        outs = [footprint(t[0], t[1]) for t in tensor_payloads(sig.outputs)]
        oom = None
        if status.startswith("oom"):
            bt = {"oom_dram": "DRAM", "oom_l1": "L1", "oom_l1_small": "L1_SMALL"}[status]
            req = sum(f.padded_bytes for f in tens + outs) or 2048
            banks = 12 if bt == "DRAM" else 64
            oom = OomInfo(requested_bytes=req, buffer_type=bt, num_banks=banks, per_bank_bytes=-(-req // banks),
                          bank_bytes=1 << 20, allocated_bytes=900_000, free_bytes=100_000, largest_free_bytes=50_000,
                          cause="exhaustion", phase="op")
        reason = {"skipped": "a port would not issue this op: metadata only",
                  "unsupported": "no ttnn op for this overload"}.get(status, "")
        if status in ("ttnn_error", "crash", "timeout", "cb_overflow", "mismatch") or oom:
            reason = f"TT_THROW: {status} while running {sig.op}"
        results.append(ReplayResult(signature_id=sid, op=sig.op, status=status, backend="ttnn", device="n150", mock=True,
                                    reason=reason, oom=oom, inputs=tens, outputs=outs))
    header = {"device": "n150", "mock": True, "backend": "ttnn", "dtype": "bfloat16", "memory": "DRAM",
              "optrace": "0.1.0", "ttnn": "0.81.1",
              "traces": [{"path": t.path, "model": t.model_name, "sha256": "ab" * 32} for t in traces]}
    return header, results
