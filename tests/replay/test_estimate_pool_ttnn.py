"""The estimate's pool model (replay/backends/estimate_pool.py) against ttnn's pools on the mock device.

Traced pools of the zoo, each run once on the mock n150 and p150 in L1 with ttnn's graph capture on:
the sharding ttnn picks, the cores and per-core bytes of the input copy, the halo, the sharded output and
indices, the pool program's static circular buffers, and, where ttnn runs out, the estimate's verdict and
bytes. Each board runs in its own worker process (tt-metal reads the mock cluster once per process): this
file is also that worker (``python test_estimate_pool_ttnn.py <board>``, signatures on stdin as JSON).
"""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))   # tests/: the worker runner, also when run as the worker

from capture.schema import read_trace  # noqa: E402
from replay.backends.base import case_of  # noqa: E402
from replay.backends.devices import get_device  # noqa: E402
from replay.backends.estimate import EstimateBackend, EstimateSettings  # noqa: E402
from replay.backends.estimate_pool import auto_shard, pool_shape_of_call  # noqa: E402
from replay.mapping import PortSettings, plan_replay  # noqa: E402
from mockworker import needs_ttnn, release_device_tensors, run_worker  # noqa: E402
from replay.results import parse_oom  # noqa: E402

# (model, signature): height, block and width shardings, uint16 and uint32 indices, ceil mode, an average
# that excludes its padding, 13x13 and 14x7 kernels, adaptive pools, and the pools that run out in L1
POOLS = [
    ("alexnet", "6c44710d5d65aa57"),                  # 3x3/2 max on 55x55x64: height, the copy on 48 of 61 cores
    ("alexnet", "a76258845c2b69e8"),                  # 3x3/2 max on 27x27x192: block
    ("alexnet", "83646059c975cfe3"),                  # adaptive average 6x6 -> 6x6
    ("squeezenet1_0", "77ab95c13526e409"),            # ceil mode
    ("timm_poolformer_s12", "63458e1328db4c14"),      # 3x3/1 average, count_include_pad=False
    ("yolov3_spp", "11635a742a3864ed"),               # 13x13 max (SPP)
    ("s3d", "d2cba648835e7a78"),                      # avg_pool3d as a 14x7 average
    ("fasterrcnn_resnet50_fpn", "11b88a4b82d4222f"),  # 3x3/2 max on 400x400x64: uint32 indices, runs out
    ("yolov3_tiny", "39fd22bd2e56a160"),              # 2x2/2 max on 640x640x16: runs out at the indices
    ("raft_large", "14160b98a7417663"),               # 7800 images as channels: width sharded, runs out
    ("raft_large", "47fcac59eaedfe69"),
    ("yolov8s_world_1280x800", "92545d74c9134028"),   # adaptive max 100x160 -> 3x3 on 8 cores, runs out
]
SETTINGS = PortSettings("bfloat16", "TILE", "l1")
LAYOUTS = {"HEIGHT_SHARDED": "height", "WIDTH_SHARDED": "width", "BLOCK_SHARDED": "block"}


def traced_cases() -> dict:
    """{signature id: the replay Case} of POOLS, each trace read once."""
    cases = {}
    for model in dict.fromkeys(m for m, _ in POOLS):
        trace = read_trace(os.path.join(ROOT, "traces", f"{model}.msgpack"))
        want = {s for m, s in POOLS if m == model}
        for s in trace.signatures:
            if s.id in want:
                cases[s.id] = case_of(s, trace.ops[trace.calls[s.calls[0]].op].arg_names)
    return cases


# ---------------------------------------------------------------------------------------------
# The worker: runs in the ttnn environment with the mock device of one board

def _events(captured) -> dict:
    """The pool's L1 buffers by ttnn device operation, and its program's static circular buffers."""
    fn, out = None, {"buffers": {}, "circular_bytes": 0}
    for node in captured:
        kind, p = node["node_type"], node.get("params", {})
        if kind == "function_start" and not p.get("name", "").startswith(("tt::", "Tensor::")):
            fn = p.get("name")
        elif kind == "buffer_allocate" and p.get("type") == "L1":
            out["buffers"].setdefault(fn, []).append([LAYOUTS.get(p["layout"], p["layout"]), int(p["num_cores"]),
                                                      int(p["max_size_per_bank"])])
        elif kind == "circular_buffer_allocate" and fn == "Pool2D" and p.get("globally_allocated") == "0":
            out["circular_bytes"] += int(p["size"])
    return out


def worker(board: str) -> None:
    from replay.backends.device import close_device, open_device
    device, _ = open_device(board)       # before ttnn is imported: it sets up the mock device
    import ttnn
    from replay.backends.ttnn_ops import create_input, make_calls
    graph = ttnn._ttnn.graph
    cases, out = traced_cases(), {}
    for sid in json.load(sys.stdin):
        plan = plan_replay(cases[sid], SETTINGS)
        made, env, error = [], {}, None
        try:
            for spec in plan.inputs:
                env[spec.name] = create_input(device, spec)
                made.append(env[spec.name])
        except RuntimeError as e:
            out[sid] = {"input_error": str(e)[:2000]}
            for t in made:
                ttnn.deallocate(t)
            continue
        graph.begin_graph_capture(graph.RunMode.NORMAL)
        try:
            make_calls(device, plan, env, SETTINGS, made)
        except Exception as e:  # noqa: BLE001 - the OOM (or any failure) is what the test compares
            error = str(getattr(e, "error", e))[:2000]
        captured = graph.end_graph_capture()
        out[sid] = dict(_events(captured), error=error)
        release_device_tensors(ttnn, made)
    close_device(device)
    print("OPTRACE-RESULT " + json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The tests (ttnn environment only: it is where ttnn is)

pytestmark = needs_ttnn()


@pytest.fixture(scope="module", params=["n150", "p150"])
def measured(request):
    return request.param, run_worker(__file__, request.param, [s for _, s in POOLS]), traced_cases()


def modelled(case, board: str) -> dict:
    """The model's buffers as the worker reports them: [layout, cores, bytes per core]."""
    call = plan_replay(case, SETTINGS).calls[-1]
    pool = pool_shape_of_call(call.fn, call.kwargs)
    s = auto_shard(pool, get_device(board))
    copy_tiles = -(-s.copy_rows // 32) * -(-s.channels // 32)
    bufs = {"InterleavedToShardedDeviceOperation": [s.layout, s.copy_cores, copy_tiles * 2048],
            "HaloDeviceOperation": [s.layout, s.cores, s.halo_rows * s.channels * 2],
            "Pool2D": [[s.layout, s.cores, s.output_rows * s.output_channels * n]
                       for n in [2] + [pool.index_bytes] * pool.return_indices]}
    return {"buffers": bufs, "circular_bytes": s.circular_bytes}


def test_pool_sharding_and_every_buffer_per_core_is_what_ttnn_allocates(measured):
    board, real, cases = measured
    compared = 0
    for sid, got in real.items():
        if "input_error" in got:
            continue
        want, bufs = modelled(cases[sid], board), got["buffers"]
        for fn in ("InterleavedToShardedDeviceOperation", "HaloDeviceOperation"):
            if fn in bufs:   # the first buffer of the copy and of the halo (the rest: small config tensors)
                assert bufs[fn][0] == want["buffers"][fn], (board, sid, fn, bufs[fn][0])
                compared += 1
        pooled = want["buffers"]["Pool2D"]
        for mine, theirs in zip(pooled, bufs.get("Pool2D", [])[:len(pooled)]):
            assert theirs == mine, (board, sid, "Pool2D", theirs)
            compared += 1
        if got["circular_bytes"]:
            assert got["circular_bytes"] == want["circular_bytes"], (board, sid, got["circular_bytes"])
    assert compared >= 30, compared


def test_estimate_runs_out_where_ttnns_pool_does_with_its_bytes(measured):
    board, real, cases = measured
    ooms = 0
    for sid, got in real.items():
        error = got.get("input_error") or got["error"]
        est = EstimateBackend(EstimateSettings(device=board, memory="l1")).run(cases[sid])
        if error is None:
            assert est.status == "pass", (board, sid, est.reason)
            continue
        oom = parse_oom(error, "op")
        assert oom is not None and est.status == "oom_l1", (board, sid, error[:300], est.reason)
        assert (est.oom.requested_bytes, est.oom.per_bank_bytes) == (oom.requested_bytes, oom.per_bank_bytes), \
            (board, sid, error[:300], est.reason)
        ooms += 1
    assert ooms >= 3, (board, ooms)   # n150: 5 of the 12 run out in L1, p150: 3


if __name__ == "__main__":
    worker(sys.argv[1])
