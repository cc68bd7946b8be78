"""Numerics: PCC/max-abs comparison, inputs and references in the port's layout, and the path end to end.

Runs in the torch environment. The end-to-end tests replay on ttnn's mock device, whose outputs are
not computed: with OPTRACE_NUMERICS_ON_MOCK=1 the data goes up and comes back, and the garbage must
come out as a mismatch; without it nothing is sent and numerics stay not_checked.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from capture.schema import Signature, contiguous_stride, read_trace, signature_id
from replay.mapping import Case
from replay.backends.numerics import NUMERICS_ON_MOCK_ENV, compare, from_wire, prepare
from replay.results import read_results
from replay.run.runner import RunSettings, load_traces, replay
from tracekit import unary_trace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")
RNG = np.random.default_rng(0)
X = RNG.standard_normal(4096)


# ---------------------------------------------------------------------------------------------
# compare()

@pytest.mark.parametrize("actual, ok, pcc", [
    (X, True, 1.0),                                       # identical
    (3 * X + 1, True, 1.0),                               # scaled and shifted: PCC ignores both
    (X + 0.05 * RNG.standard_normal(4096), True, None),  # bfloat16-like noise
    (X + 1.0 * RNG.standard_normal(4096), False, None),  # noise as large as the signal
    (-X, False, -1.0),                                    # anti-correlated
    (np.zeros(4096), False, 0.0),                         # the mock device's zeros
])
def test_pcc_of_identical_scaled_noisy_and_garbage_outputs(actual, ok, pcc):
    got_ok, got_pcc, max_abs = compare(X, actual, 0.99)
    assert got_ok is ok
    if pcc is not None:
        assert got_pcc == pytest.approx(pcc, abs=1e-9)
    assert max_abs == pytest.approx(float(np.max(np.abs(X - actual))))


def test_constant_outputs_agree_only_when_equal():
    assert compare(np.full(10, 8.0), np.full(10, 8.0)) == (True, 1.0, 0.0)
    assert compare(np.full(10, 8.0), np.full(10, 8.03))[:2] == (True, 1.0)      # within 1e-2 relative
    assert compare(np.full(10, 8.0), np.zeros(10))[:2] == (False, 0.0)
    assert compare(np.full(10, 8.0), X[:10])[:2] == (False, 0.0)


def test_nan_in_the_reference_is_left_out_and_nan_in_the_output_fails():
    ref, act = X.copy(), X.copy()
    ref[:100] = np.nan                       # torch's log of a negative input
    act[:100] = 123.0                        # whatever the device writes there
    assert compare(ref, act) == (True, 1.0, 0.0)
    act[200] = np.nan
    ok, pcc, max_abs = compare(ref, act)
    assert not ok and math.isnan(pcc) and max_abs == math.inf
    assert compare(np.full(5, np.nan), np.zeros(5)) == (True, 1.0, 0.0)   # nothing to compare
    with pytest.raises(ValueError):
        compare(X, X[:10])


# ---------------------------------------------------------------------------------------------
# prepare(): inputs and reference in the port's layout, checked by computing what ttnn computes

def _t(shape, dtype="float32"):
    return ["T", [shape, dtype, contiguous_stride(shape)]]


def _sig(op, args, outputs):
    return Signature(signature_id(op, args), op, args, outputs, 1, [0])


def _inputs(prepared) -> dict:
    return {k: torch.from_numpy(from_wire(w)) for k, w in prepared.inputs.items()}


def test_linear_weight_is_sent_transposed_as_the_port_holds_it():
    sig = _sig("aten.linear.default", [_t([4, 64]), _t([32, 64]), _t([32])], [_t([4, 32])])
    p = prepare(sig, ["input", "weight", "bias"])
    assert not p.reason
    x = _inputs(p)
    assert [list(v.shape) for v in x.values()] == [[1, 32], [4, 64], [64, 32]]   # bias, input, weight
    ok, pcc, _ = compare(p.reference[0], (x["input"] @ x["weight"] + x["bias"]).numpy(), 0.9999)
    assert ok, pcc


def _first(trace: str, op: str):
    t = read_trace(os.path.join(REPO, "traces", trace))
    names = {o.name: o.arg_names for o in t.ops}
    sigs = [s for s in t.signatures if s.op == op]
    return min(sigs, key=lambda s: math.prod(s.args[0][1][0])), names[op]


def test_resnet50_conv_input_and_output_are_channels_last_flat_as_ttnn_conv2d_takes_them():
    sig, names = _first("resnet50.msgpack", "aten.convolution.default")
    c = Case.from_wire(sig.to_full_wire(names))
    n, cin, h, w = c.tensor("input").shape
    p = prepare(sig, names)
    assert not p.reason
    x = _inputs(p)
    assert list(x["input"].shape) == [1, 1, n * h * w, cin]
    nchw = x["input"].reshape(n, h, w, cin).permute(0, 3, 1, 2)
    y = F.conv2d(nchw, x["weight"], x["bias"].flatten() if "bias" in x else None, c.get("stride"),
                 c.get("padding"), c.get("dilation"), c.get("groups"))
    port = y.permute(0, 2, 3, 1).reshape(1, 1, -1, y.shape[1])
    assert list(p.reference[0].shape) == list(port.shape)
    assert compare(p.reference[0], port.numpy(), 0.9999)[0]


def test_resnet50_max_pool_compares_values_in_the_port_layout_not_indices():
    sig, names = _first("resnet50.msgpack", "aten.max_pool2d_with_indices.default")
    p = prepare(sig, names)
    assert not p.reason and len(p.reference) == 1
    x = _inputs(p)["self"]
    n, c, h, w = sig.args[0][1][0]
    y = F.max_pool2d(x.reshape(n, h, w, c).permute(0, 3, 1, 2), 3, 2, 1)
    assert compare(p.reference[0], y.permute(0, 2, 3, 1).reshape(1, 1, -1, c).numpy(), 0.9999)[0]


def test_index_results_and_oversized_signatures_are_not_checked_with_the_reason():
    argmax = _sig("aten.argmax.default", [_t([4, 64]), ["int", 1], ["bool", False]], [_t([4], "int64")])
    assert "indices" in prepare(argmax, ["self", "dim", "keepdim"]).reason
    relu = _sig("aten.relu.default", [_t([4, 64])], [_t([4, 64])])
    assert "MiB" in prepare(relu, ["self"], max_bytes=1).reason
    assert not prepare(relu, ["self"]).reason


# ---------------------------------------------------------------------------------------------
# End to end on the mock device

@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("t") / "small.msgpack")
    unary_trace("small", [("aten.relu.default", [1, 64, 32]), ("aten.sigmoid.default", [4, 100])], path)
    return path


def _run(trace_path, out, flag: bool, pcc: float = 0.99):
    old = os.environ.pop(NUMERICS_ON_MOCK_ENV, None)
    if flag:
        os.environ[NUMERICS_ON_MOCK_ENV] = "1"
    try:
        return replay(load_traces([trace_path]), RunSettings(backend="ttnn", jobs=1, pcc=pcc), str(out), progress=False)
    finally:
        os.environ.pop(NUMERICS_ON_MOCK_ENV, None)
        if old is not None:
            os.environ[NUMERICS_ON_MOCK_ENV] = old


def test_a_normal_mock_run_sends_no_data_and_leaves_numerics_not_checked(small_trace, tmp_path):
    header, results = _run(small_trace, tmp_path / "r.jsonl", flag=False)
    assert header["mock"] and len(results) == 2
    for r in results:
        assert (r.status, r.numerics) == ("pass", "not_checked (mock device)")
        assert "numerics_path" not in r.extra and "numerics_outputs" not in r.extra


def test_with_the_test_flag_data_reaches_the_worker_and_garbage_outputs_are_a_mismatch(small_trace, tmp_path):
    _, results = _run(small_trace, tmp_path / "r.jsonl", flag=True)
    for r in results:
        assert r.extra["numerics_path"] == "uploaded 1 inputs, read back 1 outputs"
        assert r.status == "mismatch" and r.numerics.startswith("pcc=0.00000 max_abs=")
        assert "< 0.99 vs torch" in r.reason and "mock device" in r.reason
    _, journal = read_results(str(tmp_path / "r.jsonl"))
    assert all("numerics_outputs" not in r.extra for r in journal)      # the arrays stay in memory


def test_the_pcc_option_sets_the_threshold(small_trace, tmp_path):
    env = {**os.environ, NUMERICS_ON_MOCK_ENV: "1"}
    p = subprocess.run([REPLAY, "run", small_trace, "--jobs", "1", "--pcc", "0", "--no-report", "--no-remedies",
                        "--out", str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    _, results = read_results(str(tmp_path / "r" / "ttnn_n150_bfloat16_dram.jsonl"))
    assert [(r.status, r.numerics[:12]) for r in results] == [("pass", "pcc=0.00000 ")] * 2
