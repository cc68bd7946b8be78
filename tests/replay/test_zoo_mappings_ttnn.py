"""The ops the vision zoo added to the mapping, replayed from committed traces on ttnn's mock device.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_zoo_mappings_ttnn.py
Each case is one real traced signature going through the real worker process.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from capture.schema import read_trace  # noqa: E402
from replay.run.runner import collect_cases  # noqa: E402
from replay.run.worker import read_frame, write_frame  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def traced(model: str, op: str, pick=lambda wire: True) -> list:
    """The first signature of `op` in traces/<model>.msgpack (that `pick` accepts), in the worker's wire form."""
    for case in collect_cases([read_trace(os.path.join(REPO, "traces", f"{model}.msgpack"))]):
        wire = case.sig.to_full_wire(case.arg_names)
        if wire[1] == op and pick(wire):
            return wire
    raise AssertionError(f"{model} traces no {op}")


@pytest.fixture(scope="module")
def worker():
    def start(memory):
        proc = subprocess.Popen([sys.executable, "-m", "replay.run.worker", "--device", "n150", "--memory", memory],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": REPO})
        assert read_frame(proc.stdout)["ready"]
        return proc
    procs = {}

    def run(wire, memory="dram"):
        proc = procs.get(memory) or procs.setdefault(memory, start(memory))
        write_frame(proc.stdin.fileno(), {"id": wire[0], "sig": wire})
        return read_frame(proc.stdout)["result"]
    yield run
    for proc in procs.values():
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def _shape(wire, i):
    return wire[2][i][1][0]


@pytest.mark.parametrize("model, op, ttnn_fn", [
    ("timm_convnextv2_atto", "aten.addcmul.default", "ttnn.addcmul"),
    ("rtdetr_l", "aten.gather.default", "ttnn.gather"),
    ("rtdetr_l", "aten.bitwise_not.default", "ttnn.logical_not"),
    ("rtdetr_l", "aten.pow.Scalar", "ttnn.rpow"),
    ("raft_small", "aten.linspace.default", "ttnn.arange"),
    ("hf_sam_vision", "aten.upsample_linear1d.default", "ttnn.upsample"),
    ("s3d", "aten.avg_pool3d.default", "ttnn.avg_pool2d"),
    ("rtdetr_l", "aten.div.Tensor_mode", "rounding_mode="),    # ttnn.div's keyword (it was round_mode: ttnn_error)
    ("hf_deformable_detr", "aten.prod.dim_int", "ttnn.typecast"),   # int64 shape product, in float32
])
def test_a_traced_signature_of_a_newly_mapped_op_passes_on_the_mock_device(worker, model, op, ttnn_fn):
    r = worker(traced(model, op))
    assert r["status"] == "pass", r["reason"]
    assert ttnn_fn in r["ttnn_call"], r["ttnn_call"]
    assert "shape_mismatch" not in r["extra"], r["extra"]
    assert r["numerics"] == "not_checked (mock device)"


def test_raft_grid_sample_pads_its_one_channel_to_a_tile_and_slices_back(worker):
    wire = traced("raft_small", "aten.grid_sampler_2d.default", lambda w: _shape(w, 0)[2:] == [8, 15])
    r = worker(wire)
    assert r["status"] == "pass", r["reason"]
    assert "ttnn.pad" in r["ttnn_call"] and "ttnn.grid_sample" in r["ttnn_call"] and "ttnn.slice" in r["ttnn_call"]
    assert r["extra"]["notes"] == ["channels padded 1 -> 32 for ttnn.grid_sample, sliced back after"]
    assert "shape_mismatch" not in r["extra"]


def test_raft_full_resolution_grid_sample_runs_out_of_l1_for_the_devices_reason(worker):
    r = worker(traced("raft_small", "aten.grid_sampler_2d.default", lambda w: _shape(w, 0)[2:] == [65, 120]), "l1")
    assert r["status"] == "oom_l1", r["reason"]
    assert "Not enough space to allocate" in r["reason"]


def test_one_frame_max_pool3d_is_2d_pooling_and_a_frame_window_says_what_a_port_does(worker):
    r = worker(traced("mvit_v1_b", "aten.max_pool3d_with_indices.default"))
    assert r["status"] == "pass", r["reason"]
    assert "ttnn.max_pool2d" in r["ttnn_call"] and "batch_size=8" in r["ttnn_call"], r["ttnn_call"]
    r = worker(traced("s3d", "aten.max_pool3d_with_indices.default", lambda w: w[2][1][1][0][1] == 3))
    assert r["status"] == "unsupported" and "ttnn.max_pool2d over N*T folded into the batch" in r["reason"]


@pytest.mark.parametrize("op, pick, ttnn_fn, note", [
    ("aten.sqrt.default", lambda w: True, "ttnn.typecast", None),
    ("aten.avg_pool2d.default", lambda w: _shape(w, 0) == [7800, 1, 32, 60], "channels=7800",
     "[7800, 1, H, W] pooled as [1, 7800, H, W] (images as channels)"),
    ("aten.upsample_bilinear2d.default", lambda w: _shape(w, 0) == [1, 2, 65, 120], "ttnn.slice",
     "channels padded 2 -> 32 for bilinear ttnn.upsample, sliced back after"),
])
def test_rafts_int_sqrt_one_channel_pool_and_two_channel_upsample_run_as_a_port_holds_them(worker, op, pick, ttnn_fn,
                                                                                           note):
    r = worker(traced("raft_small", op, pick))
    assert r["status"] == "pass", r["reason"]
    assert ttnn_fn in r["ttnn_call"], r["ttnn_call"]
    assert note is None or note in r["extra"]["notes"], r["extra"]
    assert "shape_mismatch" not in r["extra"], r["extra"]


def test_lraspp_bilinear_upsamples_pad_21_classes_and_refuse_a_non_integer_factor_with_what_a_port_does(worker):
    r = worker(traced("lraspp_mobilenet_v3_large", "aten.upsample_bilinear2d.default", lambda w: _shape(w, 0)[1] == 21))
    assert r["status"] == "pass" and "ttnn.pad" in r["ttnn_call"], r["reason"]
    r = worker(traced("lraspp_mobilenet_v3_large", "aten.upsample_bilinear2d.default", lambda w: _shape(w, 0)[1] == 128))
    assert r["status"] == "unsupported" and "33x33 -> 65x65" in r["reason"] and "integer scales" in r["reason"]
def test_the_estimate_gives_grid_samples_mock_verdict_and_bytes_in_l1(worker):
    from replay.backends.estimate import EstimateBackend, EstimateSettings
    from replay.mapping import Case
    est = EstimateBackend(EstimateSettings(device="n150", memory="l1"))
    # deformable DETR: a row-major [8, 13294, 4, 32] result fits in L1 (tiled it would not)
    wire = traced("hf_deformable_detr", "aten.grid_sampler_2d.default", lambda w: _shape(w, 1) == [8, 13294, 4, 2])
    assert worker(wire, "l1")["status"] == est.run(Case.from_wire(wire)).status == "pass"
    # RAFT at full resolution: the same OOM, the same bytes
    wire = traced("raft_small", "aten.grid_sampler_2d.default", lambda w: _shape(w, 0)[2:] == [65, 120])
    r, e = worker(wire, "l1"), est.run(Case.from_wire(wire))
    assert r["status"] == e.status == "oom_l1", (r["reason"], e.reason)
    assert r["oom"]["requested_bytes"] == e.oom.requested_bytes, (r["oom"], e.oom)


def _arg(wire, i):
    return wire[2][i][1]


def _is_1d_table(w):
    return w[2][0][0] == "T" and len(_shape(w, 0)) == 1


# issue 11 §2: ops that failed on ttnn only because of how optrace mapped them (zoo, mock n150, DRAM)
@pytest.mark.parametrize("model, op, pick, ttnn_fn, note", [
    # a 1-D table (detection heads' scores, anchors): ttnn.gather wants rank >= 2, a port holds it as [1, N]
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "aten.index.Tensor", _is_1d_table, "ttnn.gather(self, 1,",
     "held as [1, "),
    ("keypointrcnn_resnet50_fpn", "aten.index.Tensor", lambda w: _is_1d_table(w) and _shape(w, 0) == [1],
     "ttnn.gather(self, 1,", "held as [1, 1]"),
    # several index tensors on the leading dims (rtdetr's top-k queries, maskrcnn's per-class masks): one linear
    # index, then ttnn.embedding of the flattened table (rows) or ttnn.gather (one value per index)
    ("rtdetr_l", "aten.index.Tensor", lambda w: _shape(w, 0) == [1, 8400, 256], "ttnn.embedding(t5, self",
     "2 indices on the leading dims as one linear index into the table flattened to [8400, 256]"),
    ("keypointrcnn_resnet50_fpn", "aten.index.Tensor", lambda w: len(w[2][1][1]) == 3, "ttnn.gather(self, 1, t",
     "3 indices on the leading dims"),
    # int64 boxes + float offsets, an int64 size + 0.5: torch promotes to float, a port typecasts first
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "aten.add.Tensor",
     lambda w: w[2][1][0] == "T" and _arg(w, 0)[1] == "int32" and _arg(w, 1)[1] == "float32", "ttnn.typecast(self",
     "self (int32) typecast to bfloat16"),
    ("ssd300_vgg16", "aten.add.Tensor", lambda w: w[2][1] == ["float", 0.5] and _arg(w, 0)[1] == "int64",
     "ttnn.typecast(self", "self (int64) typecast to bfloat16"),
    # bool masks are held as bfloat16: a port ands them with logical_and
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "aten.bitwise_and.Tensor", lambda w: True, "ttnn.logical_and", None),
    # front padding on TILE is refused by ttnn.pad: a port pads in ROW_MAJOR
    ("maskrcnn_resnet50_fpn", "aten.constant_pad_nd.default", lambda w: _shape(w, 0) == [100, 1, 28, 28],
     "ttnn.to_layout", "front padding: padded in ROW_MAJOR"),
    # head dim 80: ttnn's split_query_key_value_and_split_heads refuses it, a port splits with slices
    ("vit_h_14", "aten._native_multi_head_attention.default", lambda w: True, "ttnn.slice(t1, [0, 0, 1280]",
     "heads split and merged with slice/reshape/permute (head dim 80"),
])
def test_ops_our_mapping_broke_run_as_a_port_writes_them(worker, model, op, pick, ttnn_fn, note):
    r = worker(traced(model, op, pick))
    assert r["status"] == "pass", r["reason"]
    assert ttnn_fn in r["ttnn_call"], r["ttnn_call"]
    assert note is None or any(note in n for n in r["extra"]["notes"]), r["extra"]
    assert "shape_mismatch" not in r["extra"], r["extra"]


def test_cat_of_only_empty_tensors_is_skipped_and_integer_arithmetic_stays_integer(worker):
    r = worker(traced("fcos_resnet50_fpn", "aten.cat.default", lambda w: all(
        x[1][0] == [0] for x in w[2][0][1])))
    assert r["status"] == "skipped" and "a port issues no op" in r["reason"], r
    # a stack of empty tensors likewise (ttnn.stack of them killed the worker with SIGFPE)
    r = worker(traced("fcos_resnet50_fpn", "aten.stack.default", lambda w: all(x[1][0] == [0] for x in w[2][0][1])))
    assert r["status"] == "skipped" and "a port issues no op" in r["reason"], r
    # int + int scalar: no promotion, no typecast (torch keeps it integer too)
    ints = ["id-int-add", "aten.add.Tensor", [["T", [[38], "int64", [1]]], ["int", 1], ["int", 1]],
            [["T", [[38], "int64", [1]]]], 1, [0], ["self", "other", "alpha"]]
    r = worker(ints)
    assert r["status"] == "pass" and "typecast" not in r["ttnn_call"], r
