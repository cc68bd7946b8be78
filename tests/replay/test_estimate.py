"""The analytic memory model, pure Python (no torch, no ttnn): footprints, rules, the estimate backend."""
import os

import pytest

from capture.schema import Signature
from replay.backends.devices import DEVICES, get_device
from replay.backends.base import case_of
from replay.backends.estimate import RULES, EstimateBackend, EstimateSettings, rules_table
from replay.backends.footprint import FootprintError, footprint, render_footprint
from replay.results import ESTIMATE_NOTE, STATUSES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def T(shape, dtype="float32"):
    stride, s = [], 1
    for d in reversed(shape):
        stride.insert(0, s)
        s *= max(d, 1)
    return ["T", [list(shape), dtype, stride]]


def run_signature(s, arg_names, settings=EstimateSettings()):
    return EstimateBackend(settings).run(case_of(s, arg_names))


def sig(op, args, outputs):
    return Signature("0" * 16, op, args, outputs, 1, [0])


def test_user_sees_the_160x100x512x1x1_example_not_fit_n150_but_fit_p150():
    fp = footprint([160, 100, 512, 1, 1])
    assert fp["total_bytes"] == 16_777_216_000
    assert fp["per_bank_bytes"] == 1_398_102_016 and fp["bank_bytes"] == 1_072_693_184
    assert fp["fits"] is False and fp["blowup"] == 1024.0
    assert fp["padded_shape"] == [160, 100, 512, 32, 32]
    assert footprint([160, 100, 512, 1, 1], device="p150")["fits"] is True
    assert "DOES NOT FIT" in render_footprint(fp)


@pytest.mark.parametrize("shape,kw,per_bank,pages,page", [
    ([7, 9], dict(dtype="uint8", layout="row_major", memory="l1"), 32, 7, 16),      # rounding to 32
    ([1, 1, 1, 33], dict(dtype="float32", memory="l1"), 4096, 2, 4096),
    ([3000, 1000, 1000], dict(layout="row_major"), 504_000_000, 3_000_000, 2016),
    ([2200, 1000, 1000], {}, 384_479_232, 2_252_800, 2048),
    ([5], {}, 2048, 1, 2048),                                                         # rank 1 -> [1, N]
    ([0, 64], {}, 0, 0, 2048),
    ([7, 9], dict(dtype="bfloat4_b", device="p100"), 576, 1, 576),
])
def test_footprint_matches_what_ttnn_allocated_on_the_mock_device(shape, kw, per_bank, pages, page):
    fp = footprint(shape, **kw)
    assert (fp["per_bank_bytes"], fp["pages"], fp["page_bytes"]) == (per_bank, pages, page)


@pytest.mark.parametrize("bad", [[], [2, -1], [2.5, 3], "a,b", [True, 2], None])
def test_bad_shape_is_a_one_line_value_error(bad):
    with pytest.raises(FootprintError) as e:
        footprint(bad)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_bad_dtype_device_and_layout_are_one_line_errors():
    for kw in (dict(dtype="float64"), dict(device="n999"), dict(layout="weird"), dict(memory="hbm"),
               dict(dtype="bfloat8_b", layout="row_major")):
        with pytest.raises(FootprintError):
            footprint([2, 2], **kw)


def test_shape_text_from_the_cli_is_accepted():
    assert footprint("1,3,640,640")["padded_shape"] == [1, 3, 640, 640]


def test_every_board_has_a_spec_and_blackhole_aligns_dram_to_64():
    assert set(DEVICES) == {"n150", "n300", "p150", "p100"}
    assert get_device("P150").dram_alignment == 64 and get_device("p100").dram_banks == 7
    assert get_device("n150").l1_banks == 64 and get_device("p150").l1_banks == 110


def test_rules_table_lists_the_reshape_and_skip_rules():
    table = {op: name for op, name, _ in rules_table()}
    assert table["aten.view.default"] == "reshape" and table["aten.detach.default"] == "metadata_only"
    assert all(callable(fn) for fn in RULES.values())


def test_estimate_result_is_labelled_and_fills_footprints():
    r = run_signature(sig("aten.add.Tensor", [T([1, 64, 80, 80]), T([1, 64, 80, 80]), ["int", 1]],
                          [T([1, 64, 80, 80])]), ["self", "other", "alpha"], EstimateSettings())
    assert r.status == "pass" and r.backend == "estimate" and ESTIMATE_NOTE in r.reason
    assert r.status in STATUSES and len(r.inputs) == 2 and len(r.outputs) == 1
    assert r.outputs[0].padded_shape == [1, 64, 96, 96] and r.outputs[0].dtype == "bfloat16"


def test_detach_is_skipped_not_blocking():
    r = run_signature(sig("aten.detach.default", [T([4, 4])], [T([4, 4])]), ["self"])
    assert r.status == "skipped" and not r.blocking


def test_huge_input_is_oom_dram_in_the_inputs_phase_with_ttnn_numbers():
    r = run_signature(sig("aten.relu.default", [T([160, 100, 512, 1, 1])], [T([160, 100, 512, 1, 1])]),
                      ["self"], EstimateSettings(device="n150"))
    assert r.status == "oom_dram" and r.oom.phase == "inputs"
    assert (r.oom.requested_bytes, r.oom.per_bank_bytes, r.oom.num_banks) == (16_777_216_000, 1_398_102_016, 12)
    assert (r.oom.allocated_bytes, r.oom.free_bytes, r.oom.largest_free_bytes) == (0, 1_072_693_184, 1_072_693_184)
    assert run_signature(sig("aten.relu.default", [T([160, 100, 512, 1, 1])], [T([160, 100, 512, 1, 1])]),
                         ["self"], EstimateSettings(device="p150")).status == "pass"


def test_output_that_no_longer_fits_next_to_its_input_is_oom_in_the_op_phase():
    shape = [1, 64, 640, 640]  # 800 KiB per L1 bank in bf16: one copy fits, two do not
    r = run_signature(sig("aten.relu.default", [T(shape)], [T(shape)]), ["self"], EstimateSettings(memory="l1"))
    assert r.status == "oom_l1" and r.oom.phase == "op" and r.oom.allocated_bytes > 0


def test_reshape_view_is_free_and_non_view_adds_a_mapping_tensor():
    view = run_signature(sig("aten.view.default", [T([8, 192, 768]), ["list", [["int", 1536], ["int", 768]]]],
                             [T([1536, 768])]), ["self", "size"])
    assert view.status == "pass" and view.extra["extra_buffers"] == []
    moved = run_signature(sig("aten.view.default", [T([1, 256, 20, 20]), ["list", []]], [T([1, 256, 400])]),
                          ["self", "size"])
    assert moved.extra["extra_buffers"] == ["reshape page-mapping tensor"]


def test_an_empty_tensor_reshapes_like_ttnn_does_it_passes_with_nothing_allocated():
    # detection heads with no boxes left (fcos, retinanet); the mock n150 passes it at 0 bytes
    r = run_signature(sig("aten.view.default", [T([0, 2, 2]), ["list", [["int", 0], ["int", 4]]]], [T([0, 4])]),
                      ["self", "size"])
    assert r.status == "pass", r.reason


def test_bfloat8_reshape_round_trips_through_bfloat16():
    r = run_signature(sig("aten.view.default", [T([2, 3, 40, 50]), ["list", []]], [T([6, 2000])]),
                      ["self", "size"], EstimateSettings(dtype="bfloat8_b"))
    assert r.extra["extra_buffers"] == ["input typecast to bfloat16", "output in bfloat16",
                                        "reshape page-mapping tensor"]


def test_identity_permute_allocates_nothing():
    dims = ["list", [["int", 0], ["int", 1], ["int", 2]]]
    r = run_signature(sig("aten.permute.default", [T([2, 3, 4]), dims], [T([2, 3, 4])]), ["self", "dims"])
    assert r.status == "pass" and r.reason.startswith("identity")


def _conv(kernel, stride, padding, groups=1, cin=192, cout=192, hw=(272, 480)):
    names = ["input", "weight", "bias", "stride", "padding", "dilation", "transposed", "output_padding", "groups"]
    ints = lambda xs: ["list", [["int", x] for x in xs]]  # noqa: E731
    h, w = hw
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    args = [T([1, cin, h, w]), T([cout, cin // groups, kernel, kernel]), T([cout]), ints([stride] * 2),
            ints([padding] * 2), ints([1, 1]), ["bool", False], ints([0, 0]), ["int", groups]]
    return sig("aten.convolution.default", args, [T([1, cout, oh, ow])]), names


def test_1x1_conv_in_l1_writes_its_output_to_dram_as_ttnns_matmul_conv_does():
    s, names = _conv(1, 1, 0)
    r = run_signature(s, names, EstimateSettings(memory="l1"))
    assert r.status == "pass" and r.extra["rule"] == "conv2d"
    assert r.inputs[0].memory == "L1" and r.inputs[0].shape == [1, 1, 272 * 480, 192]
    # ttnn's own DRAM output buffer on the mock n150: 4,177,920 B per bank
    assert r.extra["buffers"] == [["output", "DRAM", 50_135_040, 4_177_920]]
    s3, names = _conv(3, 1, 1, hw=(56, 56))      # a 3x3 conv is not a matmul conv: its output stays where placed
    assert run_signature(s3, names, EstimateSettings(memory="l1")).extra["buffers"][0][1] == "L1"


def test_complex_tensors_are_unsupported_with_a_reason():
    r = run_signature(sig("aten.abs.default", [T([2], "complex64")], [T([2])]), ["self"])
    assert r.status == "unsupported" and "complex64" in r.reason


def test_committed_traces_estimate_without_errors():
    from capture.schema import read_trace
    from sample import trace_files
    paths = trace_files()[:3]
    if not paths:
        pytest.skip("no committed traces yet")
    for path in paths:
        tr = read_trace(path)
        names = {o.name: o.arg_names for o in tr.ops}
        for s in tr.signatures:
            assert run_signature(s, names[s.op]).status in STATUSES


# ---------------------------------------------------------------------------------------------
# A port of several calls holds each call's result (replay/backends/ttnn_calls.py), a call writing into
# a tensor it was given allocates nothing: real signatures of the zoo's traces, with the bytes the mock
# n150 reported for them in L1 (benchmarks/bench_estimate.py --device-results compares them all).

def traced(model: str, sig_id: str):
    """One signature of a committed trace and its op's argument names."""
    from capture.schema import read_trace
    trace = read_trace(os.path.join(ROOT, "traces", f"{model}.msgpack"))
    s = next(x for x in trace.signatures if x.id == sig_id)
    return s, trace.ops[trace.calls[s.calls[0]].op].arg_names


L1 = EstimateSettings(memory="l1")


def test_attention_decomposition_holds_every_intermediate_and_runs_out_where_ttnn_does():
    r = run_signature(*traced("hf_sam_vision", "7727542e4029fad5"), L1)
    # ttnn: transpose 135,168 B/bank, matmul 471,040, multiply 471,040 -> the add's result does not fit
    assert r.status == "oom_l1" and r.oom.requested_bytes == 30_105_600, r.reason
    assert r.oom.allocated_bytes == 1_011_712


def test_copy_into_an_existing_tensor_allocates_nothing():
    r = run_signature(*traced("mvit_v2_s", "afdf283eaad9d684"), L1)
    assert r.status == "pass" and r.extra["buffers"] == [], r.reason    # ttnn passes with both inputs in L1


def test_batch_norm_allocates_the_values_ttnn_returns_not_torchs_three_outputs():
    r = run_signature(*traced("mc3_18", "a705f5624b999d3b"), L1)
    assert r.status == "oom_l1" and r.oom.requested_bytes == 51_380_224, r.reason   # as on the mock n150
    assert r.oom.allocated_bytes == 835_584


def test_training_batch_norm_computes_its_statistics_on_the_device_and_runs_out_where_ttnn_does():
    # RAFT's instance-style batch norm (training=True): the mean, x - mean, its square, then ttnn's unary
    # square does not fit beside the input in L1 (mock n150: 35,389,440 B with 1,110,016 B per bank held)
    r = run_signature(*traced("raft_large", "5abe03a4be9bd61f"), L1)
    assert r.status == "oom_l1" and r.oom.requested_bytes == 35_389_440, r.reason
    assert r.oom.allocated_bytes == 1_110_016
    assert run_signature(*traced("raft_large", "5abe03a4be9bd61f"), EstimateSettings(device="p150", memory="l1")).status \
        == "pass"


def test_stack_reshapes_each_input_where_it_lives_and_concatenates_into_dram():
    # four [21285, 1] box coordinates stacked on a new last dim: each reshaped copy is tile-padded to
    # [21285, 32, 32] in L1; the second does not fit (mock n150: 43,591,680 B, 772,096 B per bank held)
    r = run_signature(*traced("fasterrcnn_mobilenet_v3_large_fpn", "b6f0b82cad76ab23"), L1)
    assert r.status == "oom_l1" and r.oom.requested_bytes == 43_591_680, r.reason
    assert r.oom.allocated_bytes == 772_096
    dram = run_signature(*traced("fasterrcnn_mobilenet_v3_large_fpn", "b6f0b82cad76ab23"))
    assert dram.status == "pass" and dram.outputs[0].memory == "DRAM"


def test_bilinear_upsample_shards_into_l1_even_when_the_tensors_live_in_dram():
    # DeepLabV3's ASPP pooling branch: [1, 256, 1, 1] upsampled to 65 x 65; ttnn height-shards it on
    # min(cores, N*H*W) = 1 core, so the upsampled shard (4,225 rows of 512 B) outgrows that core's L1
    # even with every tensor in DRAM (mock n150: 2,163,200 B across 1 bank)
    r = run_signature(*traced("deeplabv3_resnet50", "c4428b0fb5fbb53e"))
    assert r.status == "oom_l1" and r.oom.requested_bytes == 2_163_200 and r.oom.num_banks == 1, r.reason
    assert r.oom.per_bank_bytes == 2_163_200


# ---------------------------------------------------------------------------------------------
# conv2d on an interleaved L1 input: ttnn's auto-shard choice, the sharded input copy, the halo, the
# sharded output and the conv program's circular buffers (replay/backends/estimate_conv.py), against
# what the mock n150 allocated for real signatures of the zoo

def test_conv_auto_shard_picks_ttnns_sharding_with_its_buffer_sizes():
    from replay.backends.devices import get_device
    from replay.backends.estimate_conv import ConvShape, auto_shard
    # hf_dpt 0653de9f6521d315: 256 -> 128 channels, 3x3 on 192x192; the mock n150 block-shards the input
    # on 8x8 cores (294,912 B each), the halo 322,816 B, the output on 8x4 cores; its static circular
    # buffers "grow to 1,883,552 B" from the allocator's base at 105,824 B
    conv = ConvShape(batch=1, in_channels=256, out_channels=128, height=192, width=192, kernel=(3, 3),
                     stride=(1, 1), padding=(1, 1), dilation=(1, 1), bias=True)
    s = auto_shard(conv, get_device("n150"))
    assert (s.layout, s.input_cores, s.output_cores) == ("block", 64, 32)
    assert (s.input_shard_bytes, s.halo_bytes, s.output_bytes) == (294_912, 322_816, 294_912)
    assert s.circular_bytes == 1_883_552 - 105_824


def test_conv_in_l1_runs_out_at_the_halo_where_ttnn_does():
    # fasterrcnn_mobilenet_v3's 3x3 stem on 800x800: height-sharded copy (641,024 B per core) beside the
    # interleaved input, then the halo does not fit (mock n150: 50,335,744 B, 786,496 B per bank)
    r = run_signature(*traced("fasterrcnn_mobilenet_v3_large_fpn", "144b3abff73cb9f5"), L1)
    assert r.status == "oom_l1" and r.oom.requested_bytes == 50_335_744, r.reason
    assert (r.oom.per_bank_bytes, r.oom.allocated_bytes) == (786_496, 1_282_048)


def test_patch_embedding_conv_runs_out_copying_its_input_onto_two_cores():
    # CLIP's 32x32/32 patch embedding: 7x7 outputs, block sharded on 2 cores (mock n150: 3,211,264 B)
    r = run_signature(*traced("hf_clip_vision", "13c4b6c7966c2a6b"), L1)
    assert r.status == "oom_l1" and r.oom.requested_bytes == 3_211_264 and r.oom.num_banks == 2, r.reason
    assert r.oom.allocated_bytes == 51_200


def test_conv_circular_buffers_overflow_l1_where_ttnns_do_and_fit_where_they_fit():
    # raft_large 64 -> 64 3x3 on 260x480: the conv program's circular buffers outgrow L1 on the mock n150
    r = run_signature(*traced("raft_large", "05368ee1a63bdc19"), L1)
    assert r.status == "cb_overflow" and "clash with L1 buffers" in r.reason, r.reason
    # retinanet's 819-channel head: output block sharded on 8x7 cores, 327,680 B each; ttnn passes
    r = run_signature(*traced("retinanet_resnet50_fpn", "763f113c553af984"), L1)
    assert r.status == "pass", r.reason
    assert r.extra["buffers"][-1][1:] == ["L1", 56 * 327_680, 327_680]


def test_depthwise_and_wide_channel_convs_shard_as_ttnn_does_and_run_out_where_it_does():
    # yolo12x's 768-channel depthwise 3x3 on 136x240: block sharded, the copy (786,432 B per core) does
    # not fit beside the interleaved input (mock n150: 50,331,648 B with 784,384 B per bank held)
    r = run_signature(*traced("yolo12x_2176x3840", "a06423661691a0cf"), L1)
    assert r.status == "oom_l1" and (r.oom.requested_bytes, r.oom.per_bank_bytes) == (50_331_648, 786_432)
    assert r.oom.allocated_bytes == 784_384
    # deeplabv3's 2048-channel dilated 3x3: width sharded on 64 cores, the halo runs out
    # (mock n150: 76,877,824 B, 1,201,216 B per bank, 544,768 B held)
    r = run_signature(*traced("deeplabv3_resnet101", "aa8d8f0396d602fa"), L1)
    assert r.status == "oom_l1" and (r.oom.requested_bytes, r.oom.per_bank_bytes) == (76_877_824, 1_201_216)
    assert r.oom.allocated_bytes == 544_768


def test_conv_transpose_runs_as_a_stride_one_conv_keeping_its_input_copy():
    # maskrcnn's mask head upsampling, 100 x 256 x 14 x 14 by 2x2/2: block sharded, the output does not
    # fit beside the copy and the halo (mock n150: 40,239,104 B, 628,736 B per bank, 992,640 B held)
    r = run_signature(*traced("maskrcnn_resnet50_fpn", "6f457ba2b9279be5"), L1)
    assert r.status == "oom_l1" and (r.oom.requested_bytes, r.oom.per_bank_bytes) == (40_239_104, 628_736)
    assert r.oom.allocated_bytes == 992_640
    # yolov8n-seg's 64-channel 2x2/2 upsampling on 160x160: the kept copy leaves no room for the
    # program's circular buffers (mock n150: cb_overflow)
    assert run_signature(*traced("yolov8n_seg_p6", "1fa3a16b107f6643"), L1).status == "cb_overflow"


# ---------------------------------------------------------------------------------------------
# pools on an interleaved L1 input (replay/backends/estimate_pool.py; buffer by buffer against the mock
# device in tests/replay/test_estimate_pool_ttnn.py)

def ints(xs):
    return ["list", [["int", x] for x in xs]]


def _max_pool(c, h, w, kernel=3, stride=2, padding=1):
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    args = [T([1, c, h, w]), ints([kernel] * 2), ints([stride] * 2), ints([padding] * 2), ints([1, 1]), ["bool", False]]
    names = ["self", "kernel_size", "stride", "padding", "dilation", "ceil_mode"]
    return sig("aten.max_pool2d_with_indices.default", args, [T([1, c, oh, ow]), T([1, c, oh, ow], "int64")]), names


def test_pool_in_l1_keeps_its_copy_and_halo_and_returns_row_major_results_with_its_indices():
    r = run_signature(*_max_pool(64, 112, 112), L1)
    assert r.status == "pass" and r.extra["rule"] == "pool2d", r.reason
    roles = [b[0] for b in r.extra["buffers"]]
    assert roles[:2] == ["max pool: input copy, height sharded", "max pool: halo"], roles
    assert roles[2:4] == ["max pool: output, height sharded", "max pool: indices, height sharded"], roles
    assert [(o.layout, o.memory, o.dtype) for o in r.outputs] == [("ROW_MAJOR", "L1", "bfloat16"),
                                                                 ("ROW_MAJOR", "L1", "uint16")]
    # in DRAM the pool's L1 intermediates are not modelled: the outputs as traced
    d = run_signature(*_max_pool(64, 112, 112))
    assert d.status == "pass" and [b[0] for b in d.extra["buffers"]] == ["output", "output"]


def test_max_pool_indices_are_uint16_up_to_65535_pixels_then_uint32():
    small = run_signature(*_max_pool(16, 255, 257), L1)
    large = run_signature(*_max_pool(16, 256, 256), L1)
    assert [o.dtype for o in small.outputs] == ["bfloat16", "uint16"]
    assert [o.dtype for o in large.outputs] == ["bfloat16", "uint32"]


def test_pool_that_fits_as_its_outputs_runs_out_once_its_copy_and_halo_are_held():
    # 3x3/2 on 400x400x64 (fasterrcnn's stem pool): input, copy, halo, sharded output and uint32 indices
    # leave no room for the interleaved result: 200*200 rows of 64 bfloat16, 625 rows of 128 B per bank
    r = run_signature(*_max_pool(64, 400, 400), L1)
    assert r.status == "oom_l1" and r.oom.phase == "op", r.reason
    assert (r.oom.requested_bytes, r.oom.num_banks, r.oom.per_bank_bytes) == (200 * 200 * 128, 64, 625 * 128)
    assert r.reason.startswith("output [1, 1, 40000, 64] bfloat16"), r.reason


@pytest.mark.parametrize("size,out", [(20, 3), (25, 3), (40, 3), (50, 3), (80, 3), (100, 3), (160, 3), (6, 6),
                                      (7, 7), (14, 7)])
def test_adaptive_pool_runs_as_one_uniform_pool_over_torchs_windows(size, out):
    from replay.backends.estimate_pool import adaptive_params
    (k, _), (s, _), (before, _, _, _) = adaptive_params((size, size), (out, out))
    for i in range(out):
        # torch's window i: [floor(i*n/o), ceil((i+1)*n/o)); ttnn's: the uniform window, clipped to the input
        start, end = i * s - before, i * s - before + k
        assert (max(start, 0), min(end, size)) == (i * size // out, -(-(i + 1) * size // out)), (size, out, i)


def test_a_row_major_block_float_is_ttnns_refusal_not_a_crash():
    # bilinear upsample runs in row major; at bfloat8_b ttnn refuses it (mock n150: "Only TILE layout is
    # supported for BFLOAT8_B dtype!"); the estimate raised KeyError and took `replay --backend estimate`'s
    # remedies down with it (scripts/check-zoo.sh over the zoo)
    from capture.schema import read_trace
    trace = read_trace(os.path.join(os.path.dirname(__file__), "..", "..", "traces", "deeplabv3_mobilenet_v3_large.msgpack"))
    names = {o.name: o.arg_names for o in trace.ops}
    sig = next(s for s in trace.signatures if s.op == "aten.upsample_bilinear2d.default")
    for memory in ("dram", "l1"):
        r = EstimateBackend(EstimateSettings(dtype="bfloat8_b", memory=memory)).run(case_of(sig, names[sig.op]))
        assert r.status == "ttnn_error" and "Only TILE layout is supported" in r.reason, r.reason
    assert EstimateBackend(EstimateSettings()).run(case_of(sig, names[sig.op])).status == "pass"
