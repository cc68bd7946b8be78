"""The estimate's per-program circular buffers (replay/backends/estimate_cbs.py), without a device.

The bytes themselves are checked against the mock device in test_estimate_cbs_ttnn.py; here: the rules'
shape logic, the check against the L1 left below the lowest live buffer (holes included), and traced
signatures whose verdict depends on it.
"""
import functools
import math
import os

from capture.schema import read_trace
from replay.backends.base import case_of
from replay.backends.devices import get_device
from replay.backends.bank import BankAllocator, l1_below_buffers
from replay.backends.estimate import EstimateBackend, EstimateSettings, program_clash
from replay.backends.estimate_cbs import (port_programs, program_bytes, softmax_block, tiled_unaligned_concat_bytes,
                                         untilize_block_ranges, untilize_range, untilize_takes_block)
from replay.backends.estimate_plan import Buffer, CircularBuffer, Plan
from replay.backends.ttnn_calls import Held
from replay.backends.ttnn_calls import results as call_results
from replay.mapping.plan import Call, Ref
from replay.results import ReplayResult, is_cb_overflow

from tests.conftest import TRACES

N150 = get_device("n150")


def held(shape, dtype="bfloat16", layout="TILE"):
    return Held(tuple(shape), dtype, layout, "L1")


def test_softmax_blocks_are_the_fewest_of_at_most_four_tiles_padding_free_on_a_tie():
    assert [softmax_block(w) for w in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 18, 50)] == \
        [1, 2, 3, 4, 4, 3, 4, 4, 3, 4, 4, 4, 4]


def test_softmax_rows_grow_its_buffers_until_the_large_kernel_takes_over():
    def cb(width):
        x = held([1, 1, 64, width])
        return program_bytes(Call("softmax", [x], {"dim": 3}, "out"), [x], [x], N150)
    assert cb(32) == 11 * 2048 and cb(100) == 31 * 2048           # a padded row adds its pad mask
    assert cb(1569) == 127 * 2048
    assert cb(320 * 32) == 655 * 2048 and cb(360 * 32) == 260 * 2048
    x = held([1, 1, 64, 64])
    assert program_bytes(Call("softmax", [x], {"dim": 2}, "out"), [x], [x], N150) == 0   # not modelled


def test_binary_buffers_grow_when_an_operand_broadcasts_inside_the_tiles():
    a, row, whole = held([2, 3, 64, 64]), held([2, 3, 1, 64]), held([1, 1, 64, 64])

    def cb(*args):
        return program_bytes(Call("add", list(args), {}, "out"), list(args), [a], N150)
    assert (cb(a, whole), cb(a, row), cb(row, a), cb(a, 0.5)) == (6 * 2048, 8 * 2048, 8 * 2048, 5 * 2048)


def test_tiled_unaligned_concat_only_for_padded_last_dim_float_concats():
    parts = [held([1, 10, 64, 1]), held([1, 10, 64, 1])]
    assert tiled_unaligned_concat_bytes(parts, held([1, 10, 64, 2]), 3) == 3 * (2 + 1) * 2048
    assert tiled_unaligned_concat_bytes(parts, held([1, 20, 64, 1]), 1) is None
    ints = [held([64, 1], "int32"), held([64, 1], "int32")]
    assert tiled_unaligned_concat_bytes(ints, held([64, 2], "int32"), 1) is None


def test_a_freed_buffer_above_live_ones_leaves_a_hole_the_circular_buffers_cannot_use():
    l1 = BankAllocator(N150.banks("L1", 100_000)[1], top_down=True)   # 1,293,312 B per bank
    assert l1_below_buffers(l1, N150) == N150.l1_bank_bytes           # nothing alive: L1_SMALL's region too
    first = l1.alloc(10_000)
    l1.alloc(1_243_312)
    l1.release(first, 10_000)
    assert l1_below_buffers(l1, N150) == 40_000
    l1.alloc(5_000)                                                    # fits the hole at the top
    assert l1_below_buffers(l1, N150) == 40_000
    out = Buffer((1,), "bfloat16", "TILE", "L1", "output")
    plan = Plan([out], circular_buffers=[CircularBuffer("ttnn.add", 40_001, 1, after=out)])
    assert "clash with L1 buffers" in program_clash(plan, out, 40_000, N150)
    assert program_clash(plan, out, 40_001, N150) == ""


def test_an_op_buffer_that_fits_the_free_bytes_but_no_hole_is_an_l1_fragmentation_oom():
    # n150 L1 banks of 1,360,544 B: a (675,840 B per bank, at the top), b (327,680) below it; the op frees a,
    # then c (819,200) fits the 1,032,864 B free but neither hole (675,840 at the top, 357,024 at the bottom)
    a, b, c = (Buffer((2048, 32 * tiles), "bfloat16", "TILE", "L1", role)
               for tiles, role in ((330, "a"), (160, "b"), (400, "output")))
    plan = Plan([a, b, c], frees=[(c, (a,))])
    result = ReplayResult(signature_id="s", op="op", status="pass", backend="estimate", device="n150", mock=False)
    assert EstimateBackend(EstimateSettings(device="n150", memory="l1"))._allocate([], [c], plan, result) is None
    assert (result.status, result.oom.cause, result.oom.largest_free_bytes) == ("oom_l1", "fragmentation", 675_840)
    assert result.oom.free_bytes == 1_032_864


def traced(model: str, sid: str):
    trace = read_trace(os.path.join(TRACES, f"{model}.msgpack"))
    s = next(s for s in trace.signatures if s.id == sid)
    return case_of(s, trace.ops[trace.calls[s.calls[0]].op].arg_names)


def test_stack_of_int32_vectors_clashes_at_concats_staging_below_the_permuted_rows():
    # mock n150: "L1 buffer allocated at 130944 and static dataflow buffer region ends at 425824" (base 105,824)
    est = EstimateBackend(EstimateSettings(device="n150", memory="l1")).run(
        traced("fasterrcnn_resnet50_fpn", "09be697dd766a862"))
    assert est.status == "cb_overflow", est.reason
    assert "(320,000 B per core) clash with L1 buffers (25,120 B per core below them)" in est.reason
    dram = EstimateBackend(EstimateSettings(device="n150", memory="dram")).run(
        traced("fasterrcnn_resnet50_fpn", "09be697dd766a862"))
    assert dram.status == "pass", dram.reason


def test_matmul_blocks_shrink_with_the_free_l1_and_narrow_shapes_are_not_modelled():
    a, b, out = held([192, 392, 32]), held([192, 32, 392]), held([192, 392, 392])

    def cb(x, y, free):
        return program_bytes(Call("matmul", [x, y], {}, "out"), [x, y], [out], N150, free)
    # mock n150, the traced bmm: 8 tiles per core (16 would need 1,310,720 B) on 2x2 cores, K's one tile
    assert cb(a, b, 1_200_800) == (8 * 2 + 8 * 2 + 64) * 2048
    assert cb(a, b, 20_000) == 0                              # 1 tile per core: 13x13 blocks, more than the cores
    assert cb(held([1, 4096, 64]), held([1, 64, 64]), 1_200_800) == 0     # narrow: 1-d multicast, not modelled


def test_a_tiled_reshape_that_is_not_a_view_holds_a_mapping_page_and_two_tiles_a_view_none():
    def cb(src, dst, dtype="bfloat16"):
        x = held(src, dtype)
        return program_bytes(Call("reshape", [x, list(dst)], {}, "out"), [x, list(dst)], [held(dst, dtype)], N150)
    # mock n150, swin_s in context: "static dataflow buffer region ends at 111456" (base 105,824)
    assert cb([784, 192], [1, 28, 28, 192]) == 5632 == 1536 + 2 * 2048
    assert cb([1, 49, 24, 32], [1, 49, 768], "float32") == 1024 + 2 * 4096
    assert cb([1, 64, 64, 192], [1, 4096, 192]) == 0                       # a view: no program
    assert cb([1, 49, 24, 32], [1, 49, 768], "bfloat8_b") == 0              # through bfloat16: not modelled


def test_untilize_blocks_shrink_to_sub_blocks_when_the_free_l1_cannot_hold_them():
    # mock n150 (64 cores): [1, 2, 171360] is 5,355 tiles in one tile row: 63 blocks of 85 tiles while 85
    # input + output tiles fit, else 64 blocks of 2 x 42 (the last 63 tiles wide, on one corner core)
    assert untilize_block_ranges((1, 2, 171360), 2048, 2048, 64, 673_760) == [("column cliff cores", 348_160)]
    assert untilize_block_ranges((1, 2, 171360), 2048, 2048, 64, 346_080) == \
        [("column cliff cores", 172_032), ("corner cliff core", 258_048)]
    assert untilize_block_ranges((1, 2, 171360), 2048, 2048, 110, 344_256)[0] == ("column cliff cores", 204_800)
    # several block rows: the full blocks' cores come first
    assert untilize_block_ranges((1, 2048, 2048), 2048, 2048, 64, 141_984)[0] == ("full cores", 40_960)
    assert untilize_takes_block((1, 2, 171360), 2048, 2048, 64, 1_000_000)      # a tile row does not fit
    assert untilize_takes_block((1, 2048, 2048), 2048, 2048, 64, 135_840)       # mock n150: 40,960 B, block
    # a tile row fits: 64 tile rows on 64 cores against 7x7 blocks on 49: the row factory
    assert not untilize_takes_block((1, 2048, 2048), 2048, 2048, 64, 301_728)
    assert not untilize_takes_block((1, 2048, 1024), 2048, 2048, 64, 141_984)   # rows of 32 tiles: the row factory


def test_concats_second_untilize_reuses_the_first_ones_buffers_and_clashes():
    # mock n150: "L1 buffer allocated at 436864 and static dataflow buffer region ends at 453984" (base
    # 105,824): the first untilize sized its 85-tile blocks with 673,760 B free; the second, identical,
    # runs that cached program with 331,040 B free (sized afresh it would fit)
    case = traced("yolo12x_2176x3840", "264c5bd65eaa5445")
    est = EstimateBackend(EstimateSettings(device="n150", memory="l1")).run(case)
    assert est.status == "cb_overflow", est.reason
    assert "untilize_with_unpadding" in est.reason
    assert "(348,160 B per core) clash with L1 buffers (331,040 B per core below them)" in est.reason
    assert EstimateBackend(EstimateSettings(device="n150", memory="dram")).run(case).status == "pass"


def test_layer_norms_streaming_buffers_need_their_bytes_within_95_percent_of_the_l1_left():
    def cb(x_dtype, w_dtype, weights=True):
        x, w = held([1, 49, 768], x_dtype), held([768], w_dtype)
        kwargs = {"epsilon": 1e-5, "weight": w, "bias": w} if weights else {"epsilon": 1e-5}
        return program_bytes(Call("layer_norm", [x], kwargs, "out"), [x], [x], N150)
    # mock n150 and p150: "LayerNorm streaming circular buffers require 167936 bytes" (208896 in float32)
    assert cb("bfloat16", "bfloat16") == math.ceil(167936 / 0.95)
    assert cb("float32", "float32") == math.ceil(208896 / 0.95)
    assert cb("bfloat8_b", "bfloat16") == 0 and cb("bfloat16", "bfloat16", weights=False) == 0   # not modelled
    assert is_cb_overflow("LayerNorm streaming circular buffers require 167936 bytes, but only 158232 bytes of "
                          "the allocator's L1 span are available")


def test_channel_height_transposes_and_reductions_over_dims_have_fixed_buffers():
    x = held([1, 24, 49, 32])

    def cb(fn, args, kwargs=None):
        return program_bytes(Call(fn, args, kwargs or {}, "out"), args, [x], N150)
    assert cb("transpose", [x, 1, 2]) == 2 * 2048 + 512 and cb("transpose", [x, 0, 2]) == 0   # not modelled
    assert cb("mean", [x], {"dim": [1, 2]}) == 5 * 2048 and cb("sum", [x]) == 0             # every dim: not modelled


def test_a_program_sized_from_the_free_l1_is_sized_once_when_its_buffer_is_placed():
    row, programs = Buffer((1, 2, 171360), "bfloat16", "ROW_MAJOR", "L1", "input untilized"), {}
    cbs = [CircularBuffer("ttnn.untilize_with_unpadding", 0, 1, after=row, sized_at=row,
                          sized_by=functools.partial(untilize_range, row.shape, (2048, 2048), "L1", 64, programs, k))
           for k in range(2)]
    plan = Plan([row], circular_buffers=cbs)
    assert plan.programs_after(row) == []                      # not sized before its buffer is placed
    plan.size_programs(row, 673_760)
    sized = [("ttnn.untilize_with_unpadding (block factory, column cliff cores)", 348_160)]
    assert plan.programs_after(row) == sized                   # one range: the second slot holds nothing
    plan.size_programs(row, 100_000)                           # ttnn's program cache keeps the first sizes
    assert plan.programs_after(row) == sized
    # the same untilize called again with less L1 free: its program (same hash) from the cache, as made
    assert untilize_range(row.shape, (2048, 2048), "L1", 64, programs, 0, 331_040) == sized[0]
    # mock n150, [1, 4096, 1088]: made with a tile row's room (the row factory: nothing modelled), then
    # without: another hash, made afresh (1 tile of room: ttnn finds no block split and refuses)
    assert untilize_range((1, 4096, 1088), (2048, 2048), "L1", 64, programs, 0, 144_032)[1] == 0
    assert untilize_range((1, 4096, 1088), (2048, 2048), "L1", 64, programs, 0, 4_768)[1] == 0
    assert len(programs) == 3


def test_a_pad_of_nothing_returns_its_input_and_runs_no_program():
    # mock n150: ttnn.pad with (0, 0) on every dim hands back the same buffer, tiled and row major
    x = held([1, 28, 28, 192])
    pad = Call("pad", [Ref("x"), [[0, 0]] * 4, 0.0], {}, "y")
    assert call_results([pad], {"x": x}, "L1") == [[]]
    assert port_programs([pad], {"x": x}, "L1", N150, []) == [0]


def test_a_slice_from_tile_boundaries_holds_two_tiles_one_from_inside_a_tile_is_not_modelled():
    x = held([1, 257, 768])

    def cb(starts, ends, steps=(1, 1, 1)):
        args = [x, list(starts), list(ends), list(steps)]
        return program_bytes(Call("slice", args, {}, "out"), args, [held([1, 1, 768])], N150)
    assert cb([0, 0, 0], [1, 1, 768]) == 2 * 2048 + 12          # mock n150: hf_dinov2's select, 4,108 B
    assert cb([0, 1, 0], [1, 2, 768]) == 0 and cb([0, 0, 0], [1, 2, 768], (1, 2, 1)) == 0
