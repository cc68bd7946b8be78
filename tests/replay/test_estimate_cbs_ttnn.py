"""The estimate's per-program circular buffers (replay/backends/estimate_cbs.py) against the mock device.

Two checks per board (mock n150 and p150), each board in its own worker process (tt-metal reads the mock
cluster once per process; this file is also that worker: ``python test_estimate_cbs_ttnn.py <board>``):

- the bytes of each modelled program: the call's inputs placed in L1, then every bank filled to leave just
  its output and a little room, so that ttnn refuses any program whose circular buffers need more and says
  where their region ends ("static ... buffer region ends at X": X minus L1's base is their size);
- traced signatures where ttnn's programs clash with the L1 buffers (and one near it that fits): the
  estimate's verdict, program, its circular-buffer bytes and the L1 free below the lowest buffer, as
  ttnn's error states them.
"""
import json
import math
import os
import re
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
from replay.backends.estimate_cbs import program_bytes, untilize_range  # noqa: E402
from replay.backends.footprint import allocate  # noqa: E402
from replay.backends.ttnn_calls import Held  # noqa: E402
from replay.mapping import PortSettings, plan_replay  # noqa: E402
from replay.mapping.plan import Call  # noqa: E402
from mockworker import needs_ttnn, release_device_tensors, run_worker  # noqa: E402
from replay.results import is_cb_overflow  # noqa: E402

L1_SMALL = 32768
# (ttnn call, its tensors [shape, dtype, layout], the call's arguments ("$i": tensor i), kwargs, result
# shape): softmax rows of 1 to 360 tiles (blocks of 4, 3 and 2, a padded row, the large kernel), binary_ng
# with and without a broadcast inside the tiles and with a scalar, float32 tiles, a unary, a transpose of
# the last two dims, batch_norm with running statistics, row-major pads (aligned, front-padded), matmuls on
# a 2-d grid (the traced bmm below: 8 tiles per core; these: 1, the L1 being full), tiled reshapes that are
# not views (swin's, bfloat16 and float32, and one whose last dim changes), transposes of the channel and
# height dims, mean and sum over dims, slices from tile boundaries, layer_norm (its streaming
# buffers, refused beyond 95% of the L1 left once its output is placed) in bfloat16 and float32
CALLS = [("softmax", [([1, 1, 64, w], "bfloat16", "TILE")], ["$0"], {"dim": 3}, [1, 1, 64, w])
         for w in (32, 64, 96, 100, 192, 288, 320, 1569, 4096, 11520)] + [
    ("add", [([2, 3, 64, 64], "bfloat16", "TILE"), ([1, 1, 64, 64], "bfloat16", "TILE")], ["$0", "$1"], {},
     [2, 3, 64, 64]),
    ("multiply", [([2, 3, 64, 64], "bfloat16", "TILE"), ([2, 3, 64, 1], "bfloat16", "TILE")], ["$0", "$1"], {},
     [2, 3, 64, 64]),
    ("add", [([2, 3, 1, 64], "bfloat16", "TILE"), ([2, 3, 64, 64], "bfloat16", "TILE")], ["$0", "$1"], {},
     [2, 3, 64, 64]),
    ("multiply", [([2, 3, 64, 64], "bfloat16", "TILE")], ["$0", 0.125], {}, [2, 3, 64, 64]),
    ("add", [([2, 3, 64, 64], "float32", "TILE"), ([2, 3, 64, 64], "float32", "TILE")], ["$0", "$1"], {},
     [2, 3, 64, 64]),
    ("relu", [([2, 3, 64, 64], "bfloat16", "TILE")], ["$0"], {}, [2, 3, 64, 64]),
    ("transpose", [([25, 12, 196, 64], "bfloat16", "TILE")], ["$0", 2, 3], {}, [25, 12, 64, 196]),
    ("batch_norm", [([8, 512, 7, 7], "bfloat16", "TILE")] + [([1, 512, 1, 1], "bfloat16", "TILE")] * 4, ["$0"],
     {"running_mean": "$1", "running_var": "$2", "weight": "$3", "bias": "$4", "training": False, "eps": 1e-5},
     [8, 512, 7, 7]),
    ("pad", [([7800, 8, 15, 1], "bfloat16", "ROW_MAJOR")], ["$0", [[0, 0], [0, 0], [0, 0], [0, 31]], 0.0], {},
     [7800, 8, 15, 32]),
    ("pad", [([4, 6, 40], "bfloat16", "ROW_MAJOR")], ["$0", [[0, 0], [0, 0], [8, 0]], 0.0], {}, [4, 6, 48]),
    ("matmul", [([8, 256, 64], "bfloat16", "TILE"), ([8, 64, 256], "bfloat16", "TILE")], ["$0", "$1"], {},
     [8, 256, 256]),
    ("matmul", [([4, 200, 96], "bfloat16", "TILE"), ([4, 96, 160], "bfloat16", "TILE")], ["$0", "$1"], {},
     [4, 200, 160]),
    ("reshape", [([784, 192], "bfloat16", "TILE")], ["$0", [1, 28, 28, 192]], {}, [1, 28, 28, 192]),
    ("reshape", [([1, 49, 24, 32], "float32", "TILE")], ["$0", [1, 49, 768]], {}, [1, 49, 768]),
    ("reshape", [([3, 50, 96], "bfloat16", "TILE")], ["$0", [3, 96, 50]], {}, [3, 96, 50]),
    ("transpose", [([1, 24, 49, 32], "bfloat16", "TILE")], ["$0", 1, 2], {}, [1, 49, 24, 32], 0),
    ("transpose", [([2, 3, 50, 96], "float32", "TILE")], ["$0", 1, 2], {}, [2, 50, 3, 96], 0),
    ("mean", [([1, 7, 7, 768], "bfloat16", "TILE")], ["$0"], {"dim": [1, 2]}, [1, 768], 0),
    ("sum", [([4, 64, 64], "float32", "TILE")], ["$0"], {"dim": 1, "keepdim": True}, [4, 1, 64], 0),
    ("slice", [([1, 257, 768], "bfloat16", "TILE")], ["$0", [0, 0, 0], [1, 1, 768], [1, 1, 1]], {}, [1, 1, 768], 0),
    ("slice", [([4, 64, 64], "float32", "TILE")], ["$0", [0, 0, 32], [4, 64, 64], [1, 1, 1]], {}, [4, 64, 32], 0),
] + [("layer_norm", [([1, 49, 768], x, "TILE"), ([768], w, "TILE"), ([768], w, "TILE")], ["$0"],
      {"epsilon": 1e-5, "weight": "$1", "bias": "$2"}, [1, 49, 768])
     for x, w in (("bfloat16", "bfloat16"), ("float32", "bfloat16"), ("float32", "float32"))]
# (model, signature, board): ttnn's circular buffers clash with the L1 buffers, and a stack next to it that fits
TRACED = [("fasterrcnn_resnet50_fpn", "09be697dd766a862", "n150"),   # int32 stack of rank-1 tensors: concat's staging
          ("mvit_v1_b", "92d5523f1c70798e", "n150"),                 # softmax of 1,569-wide rows
          ("raft_large", "a5f819ab0cefeb93", "n150"),                # grid_sample's pad of its one channel
          ("hf_sam_vision", "7727542e4029fad5", "p150"),             # attention's add of the mask
          ("s3d", "49a60a0e167e6852", "p150"),                       # batch_norm
          ("yolo12x_2176x3840", "264c5bd65eaa5445", "p150"),         # concat's row staging
          ("yolo12x_2176x3840", "264c5bd65eaa5445", "n150"),         # concat's second untilize: cached blocks
          ("swin3d_t", "43c92054b362a6a9", "n150"),                  # bmm: 8 tiles per core on 2x2 cores
          ("hf_deformable_detr", "8d0b091b14eff760", "n150")]        # bf16 stack: the tiled concat fits
# (tiled bfloat16 shape, L1 per core left below the lowest buffer once the first untilize's output is
# allocated): untilize_with_unpadding's block factory (no room for a tile row) sizes its blocks from it, and
# an identical second untilize with less L1 free runs that cached program (blocks of 85 tiles, and
# sub-blocks of 42, 16 and 19 tiles when the free L1 cannot hold a whole block): its clash shows them
UNTILIZES = [((1, 2, 171360), 344_064), ((1, 32, 64000), 129_000), ((1, 64, 20000), 60_000),
             ((1, 2048, 2048), 135_000)]     # several block rows (n150: the full blocks' cores clash; p150: fits)
SETTINGS = PortSettings("bfloat16", "TILE", "l1")
CLASH = re.compile(r"L1 buffer allocated at (\d+) and static \w+ buffer region ends at (\d+)")
LAYER_NORM = re.compile(r"circular buffers require (\d+) bytes, but only (\d+) bytes of the allocator's L1 span")


def traced_cases() -> dict:
    """{signature id: the replay Case} of TRACED."""
    cases = {}
    for model, sid, _ in TRACED:
        trace = read_trace(os.path.join(ROOT, "traces", f"{model}.msgpack"))
        s = next(s for s in trace.signatures if s.id == sid)
        cases[sid] = case_of(s, trace.ops[trace.calls[s.calls[0]].op].arg_names)
    return cases


# ---------------------------------------------------------------------------------------------
# The worker: runs in the ttnn environment with the mock device of one board

def _measure(device, ttnn, spec: dict, call: tuple) -> list:
    """Run one CALLS entry with L1 filled to its output plus 4 KiB (or the entry's sixth item): [ttnn's error
    text (or ""), the L1 per core left below the lowest buffer when the call is made]."""
    fn, tensors, args, kwargs, result = call[:5]
    slack = call[5] if len(call) > 5 else 4096
    layouts = {"TILE": ttnn.TILE_LAYOUT, "ROW_MAJOR": ttnn.ROW_MAJOR_LAYOUT}
    made = [ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape(shape), getattr(ttnn, dtype), layouts[layout],
                                                           buffer_type=ttnn.BufferType.L1), device)
            for shape, dtype, layout in tensors]
    used = ttnn.device.get_memory_view(device, ttnn.BufferType.L1).total_bytes_allocated_per_bank
    out = allocate(tuple(result), tensors[0][1], tensors[0][2], "L1", spec, L1_SMALL).per_bank_bytes
    tiles = (spec.banks("L1", L1_SMALL)[1] - used - out - slack) // 2048
    fill = ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape([tiles * spec.l1_banks * 32, 32]), ttnn.bfloat16,
                                                          ttnn.TILE_LAYOUT, buffer_type=ttnn.BufferType.L1), device)

    def value(v):
        return made[int(v[1:])] if isinstance(v, str) and v.startswith("$") else v
    error = ""
    try:
        got = getattr(ttnn, fn)(*[value(a) for a in args], **{k: value(v) for k, v in kwargs.items()},
                                memory_config=ttnn.L1_MEMORY_CONFIG)
        ttnn.deallocate(got)
    except Exception as e:  # noqa: BLE001 - the clash is what is measured
        error = " ".join(str(e).split())[:1000]
    for t in made + [fill]:
        ttnn.deallocate(t)
    return [error, spec.banks("L1", L1_SMALL)[1] - used - tiles * 2048]


def _untilize_twice(device, ttnn, spec, shape: tuple, free: int) -> list:
    """Two untilize_with_unpadding calls of one L1 tensor, the first with ``free`` L1 per core (+ < 2 KiB)
    left below its output: [the second's error text (or ""), the L1 left at the first, at the second]."""
    x = ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape(list(shape)), ttnn.bfloat16, ttnn.TILE_LAYOUT,
                                                       buffer_type=ttnn.BufferType.L1), device)
    used = ttnn.device.get_memory_view(device, ttnn.BufferType.L1).total_bytes_allocated_per_bank
    out = allocate(shape, "bfloat16", "ROW_MAJOR", "L1", spec, L1_SMALL).per_bank_bytes
    tiles = (spec.banks("L1", L1_SMALL)[1] - used - out - free) // 2048
    fill = ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape([tiles * spec.l1_banks * 32, 32]), ttnn.bfloat16,
                                                          ttnn.TILE_LAYOUT, buffer_type=ttnn.BufferType.L1), device)
    ends = ttnn.Shape([d - 1 for d in shape])
    first = ttnn.untilize_with_unpadding(x, ends, memory_config=ttnn.L1_MEMORY_CONFIG)
    error = ""
    try:
        ttnn.deallocate(ttnn.untilize_with_unpadding(x, ends, memory_config=ttnn.L1_MEMORY_CONFIG))
    except Exception as e:  # noqa: BLE001 - the clash is what is measured
        error = " ".join(str(e).split())[:1000]
    for t in (first, fill, x):
        ttnn.deallocate(t)
    device.clear_program_cache()
    free = spec.banks("L1", L1_SMALL)[1] - used - tiles * 2048 - out
    return [error, free, free - out]


def worker(board: str) -> None:
    from replay.backends.device import close_device, open_device
    device, _ = open_device(board)       # before ttnn is imported: it sets up the mock device
    import ttnn
    from replay.backends.ttnn_ops import create_input, make_calls
    spec = get_device(board)
    out = {"calls": [_measure(device, ttnn, spec, c) for c in CALLS], "traced": {},
           "untilizes": [_untilize_twice(device, ttnn, spec, shape, free) for shape, free in UNTILIZES]}
    cases = traced_cases()
    for _, sid, b in TRACED:
        if b != board:
            continue
        plan = plan_replay(cases[sid], SETTINGS)
        made, env, error = [], {}, ""
        for s in plan.inputs:
            env[s.name] = create_input(device, s)
            made.append(env[s.name])
        try:
            make_calls(device, plan, env, SETTINGS, made)
        except Exception as e:  # noqa: BLE001
            error = " ".join(str(getattr(e, "error", e)).split())[:1000]
        out["traced"][sid] = error
        release_device_tensors(ttnn, made)
    close_device(device)
    print("OPTRACE-RESULT " + json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The tests (ttnn environment only: it is where ttnn is)

pytestmark = needs_ttnn()


@pytest.fixture(scope="module", params=["n150", "p150"])
def measured(request):
    return request.param, run_worker(__file__, request.param)


def modelled_bytes(call: tuple, board: str, free: int) -> int:
    """The model's circular-buffer bytes of one CALLS entry made with ``free`` L1 per core left."""
    fn, tensors, args, kwargs, result = call[:5]
    held = [Held(tuple(shape), dtype, layout, "L1") for shape, dtype, layout in tensors]

    def value(v):
        return held[int(v[1:])] if isinstance(v, str) and v.startswith("$") else v
    c = Call(fn, [value(a) for a in args], {k: value(v) for k, v in kwargs.items()}, "out")
    return program_bytes(c, c.args, [Held(tuple(result), tensors[0][1], tensors[0][2], "L1")], get_device(board), free)


def check_layer_norm(call: tuple, board: str, error: str, free: int) -> None:
    """layer_norm's refusal: the bytes its streaming buffers need, and 95% of the L1 left below the lowest
    buffer once its output is placed as the room ttnn gives them; the status is cb_overflow."""
    m = LAYER_NORM.search(error)
    assert m and is_cb_overflow(error), (board, call[1], error[:300])
    need, room = int(m.group(1)), int(m.group(2))
    out = allocate(tuple(call[4]), call[1][0][1], "TILE", "L1", get_device(board), L1_SMALL).per_bank_bytes
    assert room == int(0.95 * (free - out)), (board, call[1], error[:300], free, out)
    assert modelled_bytes(call, board, free) == math.ceil(need / 0.95), (board, call[1], error[:300])


def test_each_programs_circular_buffers_are_the_bytes_ttnn_places(measured):
    board, got = measured
    dev = get_device(board)
    base = dev.l1_core_bytes - dev.l1_bank_bytes
    for call, (error, free) in zip(CALLS, got["calls"]):
        if call[0] == "layer_norm":
            check_layer_norm(call, board, error, free)
            continue
        m = CLASH.search(error)
        assert m, (board, call[:2], error[:300])
        assert int(m.group(2)) - base == modelled_bytes(call, board, free), (board, call[:2], error[:300])


def test_a_cached_untilize_runs_the_blocks_sized_at_its_first_call(measured):
    board, got = measured
    dev = get_device(board)
    base = dev.l1_core_bytes - dev.l1_bank_bytes
    for (shape, _), (error, free, free_then) in zip(UNTILIZES, got["untilizes"]):
        programs: dict = {}
        for below in (free, free_then):       # the first call, then the second with its output's room less
            ranges = [untilize_range(shape, (2048, 2048), "L1", dev.l1_banks, programs, k, below) for k in range(4)]
        clash = next((n for _, n in ranges if n > free_then), None)
        m = CLASH.search(error)
        if clash is None:
            assert not error, (board, shape, free, free_then, ranges, error[:300])
        else:
            assert m and int(m.group(2)) - base == clash, (board, shape, free, free_then, ranges, error[:300])


def test_estimate_clashes_where_ttnns_programs_do_with_their_bytes(measured):
    board, got = measured
    dev = get_device(board)
    base = dev.l1_core_bytes - dev.l1_bank_bytes
    cases = traced_cases()
    for sid, error in got["traced"].items():
        est = EstimateBackend(EstimateSettings(device=board, memory="l1")).run(cases[sid])
        m = CLASH.search(error)
        if m is None:
            assert not error and est.status == "pass", (board, sid, error[:300], est.reason)
            continue
        mine = re.search(r"\(([\d,]+) B per core\) clash with L1 buffers \(([\d,]+) B per core below", est.reason)
        assert est.status == "cb_overflow" and mine, (board, sid, error[:300], est.reason)
        cb_bytes, below = (int(v.replace(",", "")) for v in mine.groups())
        assert (cb_bytes, below) == (int(m.group(2)) - base, int(m.group(1)) - base), (board, sid, error, est.reason)
    assert len(got["traced"]) >= 3


if __name__ == "__main__":
    worker(sys.argv[1])
