"""The estimate agrees with ttnn's own allocator on the mock device (run in the ttnn environment).

Two levels: single allocations and a few op rules against ttnn's allocator, and whole ops: every
signature of the committed traces replayed in isolation on the mock device (through the real
worker pool) and estimated, in DRAM and in L1, compared verdict by verdict (pass vs oom_*) and, for
OOMs, byte for byte. Each board runs in its own worker process (tt-metal reads the mock cluster once
per process): this file is also the allocation worker (``python test_estimate_vs_ttnn.py <board>``,
cases on stdin as JSON).
"""
import json
import os
import random
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))   # tests/: the trace sample, also when run as the worker

from capture.schema import Signature  # noqa: E402
from replay.backends.devices import DEVICES, TILE_BYTES  # noqa: E402
from replay.backends.base import case_of  # noqa: E402
from replay.backends.estimate import EstimateBackend, EstimateSettings  # noqa: E402
from replay.backends.footprint import allocate, footprint  # noqa: E402
from mockworker import needs_ttnn, run_worker  # noqa: E402
from replay.results import parse_oom  # noqa: E402
from sample import trace_files  # noqa: E402

BOARDS = ("n150", "n300", "p150", "p100")
CASES_PER_BOARD = 320
DIMS = [1, 1, 2, 3, 7, 16, 31, 32, 33, 50, 64, 100, 160, 512, 1000]


def random_cases(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        shape = [rng.choice(DIMS) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.15:
            shape[-1] *= rng.choice([100, 1000])
        if rng.random() < 0.1 and shape[0] < 10_000:
            shape[0] *= rng.choice([1000, 20000])
        layout = "TILE" if rng.random() < 0.65 else "ROW_MAJOR"
        dtypes = list(TILE_BYTES) if layout == "TILE" else ["bfloat16", "float32", "int32", "uint32",
                                                            "uint16", "uint8"]
        cases.append(dict(shape=shape, dtype=rng.choice(dtypes), layout=layout,
                          memory=rng.choice(["DRAM", "DRAM", "L1"])))
    return cases


def T(shape):
    return ["T", [list(shape), "float32", [1] * len(shape)]]


def ints(xs):
    return ["list", [["int", x] for x in xs]]


# (label, aten op, arg names, args, output shape, ttnn call as (function, extra arguments), settings dtype)
OP_CASES = [
    ("reshape view", "aten.view.default", [8, 192, 768], [1536, 768], ("reshape", [1536, 768]), "bfloat16"),
    ("reshape tiles", "aten.view.default", [1, 256, 20, 20], [1, 256, 400], ("reshape", [1, 256, 400]), "bfloat16"),
    ("reshape to column", "aten.view.default", [64, 64], [4096, 1], ("reshape", [4096, 1]), "float32"),
    ("reshape heads", "aten.view.default", [8, 196, 768], [8, 196, 12, 64], ("reshape", [8, 196, 12, 64]), "bfloat16"),
    ("reshape bfloat8_b", "aten.view.default", [2, 3, 40, 50], [6, 2000], ("reshape", [6, 2000]), "bfloat8_b"),
    ("permute", "aten.permute.default", [1, 1, 1024, 1000], [1, 1000, 1, 1024], ("permute", [0, 3, 1, 2]), "bfloat16"),
    ("permute identity", "aten.permute.default", [2, 3, 40, 50], [2, 3, 40, 50], ("permute", [0, 1, 2, 3]), "bfloat16"),
    ("relu", "aten.relu.default", [1, 64, 80, 80], [1, 64, 80, 80], ("relu", None), "bfloat16"),
]


def estimate_op(case, board):
    label, op, src, dst, (fn, arg), dtype = case
    args = [T(src), ints(arg if fn == "permute" else dst)] if fn != "relu" else [T(src)]
    names = ["self", "dims" if fn == "permute" else "size"][:len(args)]
    return EstimateBackend(EstimateSettings(device=board, dtype=dtype)).run(
        case_of(Signature("0" * 16, op, args, [T(dst)], 1, [0]), names))


# ---------------------------------------------------------------------------------------------
# The worker: runs in the ttnn environment with the mock device of one board

def worker(board: str) -> None:
    from replay.backends.device import close_device, open_device
    device, _ = open_device(board)
    import ttnn
    graph = ttnn._ttnn.graph
    buffer_type = {"DRAM": ttnn.BufferType.DRAM, "L1": ttnn.BufferType.L1}
    layouts = {"TILE": ttnn.TILE_LAYOUT, "ROW_MAJOR": ttnn.ROW_MAJOR_LAYOUT}

    def tensor(shape, dtype, layout, memory):
        spec = ttnn.TensorSpec(ttnn.Shape(shape), getattr(ttnn, dtype), layouts[layout],
                               buffer_type=buffer_type[memory])
        return ttnn.allocate_tensor_on_device(spec, device)

    job = json.load(sys.stdin)
    out = {"spec": {}, "allocations": [], "ops": []}
    for memory, bt in buffer_type.items():
        view = ttnn.device.get_memory_view(device, bt)
        out["spec"][memory] = [view.num_banks, view.total_bytes_per_bank]
    out["spec"]["alignment"] = [ttnn.device.get_dram_alignment(), ttnn.device.get_l1_alignment()]
    for c in job["allocations"]:
        try:
            t = tensor(c["shape"], c["dtype"], c["layout"], c["memory"])
            used = ttnn.device.get_memory_view(device, buffer_type[c["memory"]]).total_bytes_allocated_per_bank
            ttnn.deallocate(t)
            out["allocations"].append({"fits": True, "per_bank_bytes": used})
        except RuntimeError as e:
            out["allocations"].append({"fits": False, "message": str(e)[:2000]})
    for src, dtype, (fn, arg) in job["ops"]:
        x = tensor(src, dtype, "TILE", "DRAM")
        graph.begin_graph_capture(graph.RunMode.NO_DISPATCH)
        try:
            getattr(ttnn, fn)(*([x, arg] if arg is not None else [x]))
        finally:
            captured = graph.end_graph_capture()
        ttnn.deallocate(x)
        out["ops"].append([[n["params"].get("type"), int(n["params"]["size"]), int(n["params"]["page_size"])]
                           for n in captured if n["node_type"] == "buffer_allocate"])
    close_device(device)
    print("OPTRACE-RESULT " + json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The tests (ttnn environment only: it is where ttnn is)

pytestmark = needs_ttnn()


@pytest.fixture(scope="module", params=BOARDS)
def board_run(request):
    board = request.param
    cases = random_cases(seed=BOARDS.index(board) + 1, n=CASES_PER_BOARD)
    ops = [[c[2], c[5], c[4]] for c in OP_CASES]
    return board, cases, run_worker(__file__, board, {"allocations": cases, "ops": ops})


def test_device_specs_match_the_mock_device(board_run):
    board, _, got = board_run
    spec = DEVICES[board]
    assert got["spec"]["DRAM"] == [spec.dram_banks, spec.dram_bank_bytes]
    assert got["spec"]["L1"] == list(spec.banks("L1", EstimateSettings().l1_small_bytes))
    assert got["spec"]["alignment"] == [spec.dram_alignment, spec.l1_alignment]


def test_every_random_allocation_has_ttnns_verdict_and_bytes(board_run):
    board, cases, got = board_run
    wrong = []
    for c, real in zip(cases, got["allocations"]):
        fp = footprint(c["shape"], c["dtype"], c["layout"], c["memory"], board)
        if real["fits"]:
            ok = fp["fits"] and fp["per_bank_bytes"] == real["per_bank_bytes"]
        else:
            oom = parse_oom(real["message"], "inputs")
            a = allocate(tuple(c["shape"]), fp["dtype"], fp["layout"], fp["memory"], DEVICES[board])
            ok = (oom is not None and not fp["fits"] and oom.per_bank_bytes == a.message_per_bank_bytes
                  and oom.requested_bytes == fp["total_bytes"] and oom.num_banks == fp["num_banks"]
                  and oom.bank_bytes == fp["bank_bytes"])
        if not ok:
            wrong.append((c, real if real["fits"] else real["message"][:300], fp))
    assert len(cases) >= 300 and not wrong, f"{len(wrong)} disagreements, first: {wrong[:3]}"


@pytest.mark.parametrize("index", range(len(OP_CASES)), ids=[c[0] for c in OP_CASES])
def test_op_rule_allocates_what_ttnn_allocates(board_run, index):
    board, _, got = board_run
    real = got["ops"][index]
    est = estimate_op(OP_CASES[index], board).extra["buffers"]
    assert [b[0] for b in real] == [b[1] for b in est], (real, est)
    for (memory, size, page), (role, _, total, _) in zip(real, est):
        assert size == total, (role, real, est)   # reshape's page-mapping tensor included, byte for byte


# yolov8s at 5824 x 5824 and 5856 x 5856: the Detect head's last concat, [1, 2, N] + [1, 2, N] on dim 1
# (padded along dim 1, so ttnn stages whole rows of N bfloat16s in L1); 2 N B outgrow a core's L1 at the larger.
CONCAT_ROWS = (695604, 703269)


def _concat_case(n: int):
    sig = Signature("c" * 16, "aten.cat.default", [["list", [T([1, 2, n]), T([1, 2, n])]], ["int", 1]],
                    [T([1, 4, n])], 1, [0])
    return sig, ["tensors", "dim"]


@pytest.mark.parametrize("n", CONCAT_ROWS)
def test_concat_staging_rows_beyond_l1_are_the_cb_overflow_ttnn_reports(n, tmp_path):
    from replay.run.runner import RunSettings
    from replay.studies.remedies import Variant, run_variants
    sig, names = _concat_case(n)
    variant = Variant(name="as traced", dtype="bfloat16", layout="TILE", memory="dram", sig=sig, arg_names=names)
    real, = run_variants([variant], RunSettings(backend="ttnn", device="n150", memory="dram", log_dir=str(tmp_path)))
    est, = run_variants([variant], RunSettings(backend="estimate", device="n150", memory="dram"))
    assert real.mock and real.status == est.status == ("cb_overflow" if n == CONCAT_ROWS[1] else "pass"), (real, est)
    if real.status == "cb_overflow":   # the same entry size and capacity, in ttnn's words
        entry = est.reason.split("entry size (")[1].split(" B)")[0].replace(",", "")
        assert f"entry size ({entry} B) exceeds per-core L1 capacity" in real.reason, real.reason


# ---------------------------------------------------------------------------------------------
# Whole ops: every signature of the committed traces, mock device vs estimate

# The whole-op verdict agreement reached (n150, the trace sample of tests/sample.py); the test holds it.
MIN_WHOLE_OP_AGREEMENT = {"dram": 1.0, "l1": 1.0}   # every signature, both placements (the zoo too: docs/estimate-agreement.md)
# what the estimate does not judge: what a port skips or cannot express, and what ttnn rejects or dies on
# for a reason other than memory (a fit/OOM verdict needs the op to run: ttnn_error, crash, timeout)
EXCLUDED = ("skipped", "unsupported", "ttnn_error", "crash", "timeout")
# ttnn calls that allocate more than their output (sharded copies, halos, scratch, mapping tensors)
MULTI_BUFFER_CALLS = ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                      "adaptive_max_pool2d", "upsample", "concat", "matmul", "linear", "group_norm",
                      "layer_norm", "softmax", "reshape", "transformer.scaled_dot_product_attention")


def replay_all(backend: str, board: str, memory: str, out_dir: str) -> dict:
    """Every unique signature of the committed traces on one backend: {signature id: ReplayResult}."""
    from replay.run.runner import RunSettings, load_traces, replay
    settings = RunSettings(backend=backend, device=board, memory=memory, jobs=os.cpu_count() or 1,
                           timeout_s=120.0, log_dir=os.path.join(out_dir, "logs"))
    path = os.path.join(out_dir, f"{backend}_{board}_{memory}.jsonl")
    _, results = replay(load_traces(trace_files()), settings, path, progress=False)
    return {r.signature_id: r for r in results}


def _verdict(status: str) -> str:
    return "pass" if status == "pass" else "oom" if status.startswith("oom_") else status


def disagreement_cause(real, est) -> str:
    """Why the estimate's verdict differs from the mock device's, in a user's words."""
    fn = (real.ttnn_call.split("ttnn.", 1)[-1].split("(")[0]) or real.op
    if real.status == "cb_overflow":
        return f"{fn}: circular/dataflow buffers overflow L1 or clash with L1 buffers (not modelled)"
    if real.status.startswith("oom_") and est.status == "pass":
        o = real.oom
        return (f"{fn}: ttnn ran out allocating an intermediate the estimate does not model "
                f"({o.requested_bytes:,} B across {o.num_banks} banks, {o.per_bank_bytes:,} B per bank, "
                f"{o.allocated_bytes:,} B already allocated)")
    if real.status == "pass" and est.status.startswith("oom_"):
        return (f"{fn}: the estimate keeps a buffer ttnn places elsewhere (sharded, DRAM or freed "
                f"first): {est.reason.split(';')[0]}")
    return f"{fn}: ttnn {real.status} vs estimate {est.status}: {real.reason[:200]}"


def whole_op_agreement(real: dict, est: dict) -> dict:
    """Compare per signature: verdict (pass vs oom_*), and for OOMs both sides report, the bytes."""
    out = {"signatures": len(real), "excluded": {}, "compared": 0, "agree": 0, "disagreements": [],
           "oom_both": 0, "oom_bytes_equal": 0, "single_buffer_ooms": 0, "single_buffer_bytes_equal": 0,
           "bytes_differ": []}
    for sid, r in real.items():
        e = est[sid]
        if r.status in EXCLUDED or e.status in EXCLUDED:
            key = f"ttnn {r.status}" if r.status in EXCLUDED else f"estimate {e.status}"
            out["excluded"][key] = out["excluded"].get(key, 0) + 1
            continue
        out["compared"] += 1
        if _verdict(r.status) == _verdict(e.status) and r.status in ("pass", e.status):
            out["agree"] += 1
        else:
            out["disagreements"].append((sid, r.op, r.status, e.status, disagreement_cause(r, e)))
            continue
        if r.oom is not None and e.oom is not None:
            out["oom_both"] += 1
            same = (r.oom.requested_bytes, r.oom.per_bank_bytes) == (e.oom.requested_bytes, e.oom.per_bank_bytes)
            out["oom_bytes_equal"] += same
            # one buffer decides it: an input that does not fit, or a single call that allocates only its output
            fn = r.ttnn_call.split("ttnn.", 1)[-1].split("(")[0]
            single = r.oom.phase == "inputs" or (";" not in r.ttnn_call and fn not in MULTI_BUFFER_CALLS)
            if single:
                out["single_buffer_ooms"] += 1
                out["single_buffer_bytes_equal"] += same
            if not same:
                out["bytes_differ"].append((sid, r.op, r.oom.phase, r.oom.requested_bytes, r.oom.per_bank_bytes,
                                            e.oom.requested_bytes, e.oom.per_bank_bytes, single))
    out["rate"] = out["agree"] / out["compared"] if out["compared"] else 1.0
    return out


def render_agreement(board: str, memory: str, a: dict) -> str:
    lines = [f"whole-op agreement {board} {memory.upper()}: {a['agree']}/{a['compared']} signatures "
             f"({100 * a['rate']:.2f}%) same fit/OOM verdict; OOM bytes equal {a['oom_bytes_equal']}/"
             f"{a['oom_both']} (single-buffer {a['single_buffer_bytes_equal']}/{a['single_buffer_ooms']}); "
             f"excluded: " + (", ".join(f"{v} {k}" for k, v in sorted(a["excluded"].items())) or "none")]
    for sid, op, rs, es, cause in a["disagreements"]:
        lines.append(f"  {sid} {op}: ttnn {rs}, estimate {es}: {cause}")
    for sid, op, phase, rq, rb, eq, eb, single in a["bytes_differ"]:
        lines.append(f"  {sid} {op} ({phase}{', single buffer' if single else ''}): ttnn {rq:,} B / {rb:,} B "
                     f"per bank, estimate {eq:,} B / {eb:,} B per bank")
    return "\n".join(lines)


@pytest.fixture(scope="module", params=["dram", "l1"])
def whole_ops(request, tmp_path_factory):
    memory = request.param
    out = str(tmp_path_factory.mktemp(f"whole_{memory}"))
    real = replay_all("ttnn", "n150", memory, out)
    est = replay_all("estimate", "n150", memory, out)
    return memory, whole_op_agreement(real, est)


def test_estimate_gives_ttnns_verdict_for_every_traced_signature(whole_ops):
    memory, a = whole_ops
    print("\n" + render_agreement("n150", memory, a))
    assert a["compared"] > 1000
    assert a["rate"] >= max(0.95, MIN_WHOLE_OP_AGREEMENT[memory]), render_agreement("n150", memory, a)


def test_oom_bytes_agree_exactly_when_one_buffer_decides(whole_ops):
    memory, a = whole_ops
    wrong = [d for d in a["bytes_differ"] if d[-1]]
    assert not wrong, render_agreement("n150", memory, a)
    if memory == "l1":
        assert a["single_buffer_ooms"] > 10   # L1 is where the traced ops run out


if __name__ == "__main__":
    worker(sys.argv[1])
