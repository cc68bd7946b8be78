"""The torch reference backend: every committed trace re-executes on the CPU exactly as traced."""
from __future__ import annotations

import os

import pytest
import torch

from capture.schema import Signature, read_trace, signature_id
from replay.backends.base import case_of
from replay.backends.torch_ref import TorchBackend, TorchSettings, _Builder, resolve_op
from sample import trace_files

TRACES = trace_files()   # the fixed sample (tests/sample.py)


@pytest.fixture(scope="module")
def replayed() -> dict:
    """Every unique signature of every committed trace, replayed once: {trace name: [results]}."""
    by_id: dict = {}
    per_trace: dict = {}
    for path in TRACES:
        trace = read_trace(path)
        arg_names = {o.name: o.arg_names for o in trace.ops}
        for sig in trace.signatures:
            if sig.id not in by_id:
                by_id[sig.id] = TorchBackend().run(case_of(sig, arg_names[sig.op]))
        per_trace[os.path.basename(path)] = [by_id[s.id] for s in trace.signatures]
    return per_trace


@pytest.mark.parametrize("trace_name", [os.path.basename(p) for p in TRACES])
def test_every_traced_signature_reexecutes_with_traced_shapes_and_dtypes(replayed, trace_name):
    results = replayed[trace_name]
    failures = [f"{r.op} {r.signature_id}: {r.status} {r.reason}" for r in results if r.status != "pass"]
    assert results and not failures, f"{len(failures)}/{len(results)} disagree:\n" + "\n".join(failures[:20])


def _sig(op: str, args: list, outputs: list) -> Signature:
    return Signature(signature_id(op, args), op, args, outputs, 1, [0])


def _names(op: str) -> list[str]:
    return [a.name for a in resolve_op(op)._schema.arguments]


def test_stride0_expanded_input_keeps_its_stride_and_tiny_buffer():
    t = _Builder(torch.Generator().manual_seed(0)).tensor([4, 3], "float32", [0, 1])
    assert t.stride() == (0, 1) and t._base.numel() == 3
    assert torch.equal(t[0], t[3])  # every row is the same memory

    sig = _sig("aten.add.Tensor", [["T", [[4, 3], "float32", [0, 1]]], ["T", [[4, 3], "float32", [3, 1]]],
                                   ["int", 1]],
               [["T", [[4, 3], "float32", [3, 1]]]])
    r = TorchBackend().run(case_of(sig, _names(sig.op)))
    assert r.status == "pass", r.reason
    assert r.inputs[0].logical_bytes == 48 and r.outputs[0].shape == [4, 3]


def test_in_place_write_into_an_expanded_input_fails_as_torch_fails():
    # faithfulness cuts both ways: an overlapping self is rebuilt overlapping, so torch refuses it
    sig = _sig("aten.add_.Tensor", [["T", [[4, 3], "float32", [0, 1]]], ["T", [[4, 3], "float32", [3, 1]]],
                                    ["int", 1]],
               [["T", [[4, 3], "float32", [0, 1]]]])
    r = TorchBackend().run(case_of(sig, _names(sig.op)))
    assert r.status == "mismatch" and r.reason.startswith("raised RuntimeError")


def test_wrong_traced_output_shape_is_reported_as_mismatch():
    sig = _sig("aten.relu.default", [["T", [[2, 5], "float32", [5, 1]]]], [["T", [[2, 6], "float32", [6, 1]]]])
    r = TorchBackend().run(case_of(sig, _names(sig.op)))
    assert r.status == "mismatch"
    assert "[2, 5] float32" in r.reason and "[2, 6] float32" in r.reason
    assert (r.backend, r.device, r.mock, r.numerics) == ("torch", "cpu", False, "not_checked")


def test_wrong_output_count_and_dtype_are_reported_as_mismatch():
    x = ["T", [[3, 4], "float32", [4, 1]]]
    two = _sig("aten.max.dim", [x, ["int", 1], ["bool", False]], [["T", [[3], "float32", [1]]]])
    assert TorchBackend().run(case_of(two, _names(two.op))).reason == "2 outputs, traced 1"
    dtype = _sig("aten.max.dim", [x, ["int", 1], ["bool", False]],
                 [["T", [[3], "float32", [1]]], ["T", [[3], "int32", [1]]]])
    assert "traced [3] int32" in TorchBackend().run(case_of(dtype, _names(dtype.op))).reason


def test_split_returns_a_list_that_is_checked_item_by_item():
    sig = _sig("aten.split.Tensor", [["T", [[5, 2], "float32", [2, 1]]], ["int", 2], ["int", 0]],
               [["list", [["T", [[2, 2], "float32", [2, 1]]], ["T", [[2, 2], "float32", [2, 1]]],
                          ["T", [[1, 2], "float32", [2, 1]]]]]])
    assert TorchBackend().run(case_of(sig, _names(sig.op))).status == "pass"


def test_index_tensors_are_generated_in_range_of_the_indexed_dim():
    sig = _sig("aten.index_select.default",
               [["T", [[3, 7], "float32", [7, 1]]], ["int", 0], ["T", [[50], "int64", [1]]]],
               [["T", [[50, 7], "float32", [7, 1]]]])
    assert TorchBackend().run(case_of(sig, _names(sig.op))).status == "pass"


def test_unknown_op_and_opaque_argument_are_unsupported():
    r = TorchBackend().run(case_of(_sig("aten.no_such_op.default", [], []), []))
    assert r.status == "unsupported" and "no op aten.no_such_op.default" in r.reason
    sig = _sig("aten.relu.default", [["opaque", "<object>"]], [["T", [[1], "float32", [1]]]])
    r = TorchBackend().run(case_of(sig, _names(sig.op)))
    assert r.status == "unsupported" and "opaque" in r.reason


def test_signature_too_large_for_memory_runs_on_fake_tensors():
    sig = _sig("aten.convolution.default",
               [["T", [[1, 3, 64, 64], "float32", [12288, 4096, 64, 1]]],
                ["T", [[8, 3, 3, 3], "float32", [27, 9, 3, 1]]], ["none", None],
                ["list", [["int", 2], ["int", 2]]], ["list", [["int", 1], ["int", 1]]],
                ["list", [["int", 1], ["int", 1]]], ["bool", False], ["list", [["int", 0], ["int", 0]]],
                ["int", 1]],
               [["T", [[1, 8, 32, 32], "float32", [8192, 1024, 32, 1]]]])
    r = TorchBackend(TorchSettings(fake_above_bytes=1024)).run(case_of(sig, _names(sig.op)))
    assert r.status == "pass" and r.extra["tensors"] == "fake" and "fake tensors" in r.reason
    assert TorchBackend().run(case_of(sig, _names(sig.op))).extra == {}


def test_boolean_mask_selects_as_many_rows_as_traced():
    sig = _sig("aten.index.Tensor", [["T", [[6, 2], "float32", [2, 1]]], ["list", [["T", [[6], "bool", [1]]]]]],
               [["T", [[4, 2], "float32", [2, 1]]]])
    assert TorchBackend().run(case_of(sig, _names(sig.op))).status == "pass"


def test_torchvision_ops_of_a_detector_reexecute_with_the_traced_box_counts():
    # nms keeps a data-dependent number of boxes and roi_align's box batch indices must name an image
    # of the batch (a random one crashed the kernel): both need their own valid inputs
    trace = read_trace(os.path.join(os.path.dirname(TRACES[0]), "fasterrcnn_mobilenet_v3_large_320_fpn.msgpack"))
    arg_names = {o.name: o.arg_names for o in trace.ops}
    sigs = [s for s in trace.signatures if s.op.startswith("torchvision.")]
    assert {s.op for s in sigs} == {"torchvision.nms.default", "torchvision.roi_align.default"}
    for sig in sigs:
        r = TorchBackend().run(case_of(sig, arg_names[sig.op]))
        assert r.status == "pass", f"{sig.op}: {r.status} {r.reason}"


@pytest.mark.parametrize("model, op", [("ssdlite320_mobilenet_v3_large", "aten._unique2.default"),
                                       ("vit_b_32", "aten._native_multi_head_attention.default")])
def test_data_dependent_and_fake_captured_outputs_reexecute_as_traced(model, op):
    # unique's output size depends on the values (the input gets exactly the traced count of distinct
    # ones); a fake-tensor capture records MHA's absent weights as an empty tensor, the CPU kernel as None
    trace = read_trace(os.path.join(os.path.dirname(TRACES[0]), f"{model}.msgpack"))
    arg_names = {o.name: o.arg_names for o in trace.ops}
    sig = next(s for s in trace.signatures if s.op == op)
    r = TorchBackend().run(case_of(sig, arg_names[sig.op]))
    assert r.status == "pass", f"{sig.op}: {r.status} {r.reason}"
