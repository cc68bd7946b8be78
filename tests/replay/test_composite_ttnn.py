"""Composite ops replayed the way a port writes them, on ttnn's mock device (no board needed).

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_composite_ttnn.py
Fused attention becomes ttnn SDPA or its decomposition (the result says which), a one-index gather
becomes ttnn.embedding/ttnn.gather, an as_strided that is a reshape/permute/slice becomes that op; and
on the committed eager traces the five models these blocked replay with 0 blocked calls.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture.schema import read_trace  # noqa: E402
from test_ttnn_mock import REPO, T, Worker, ints, sig  # noqa: E402

TARGET_MODELS = ("swin_t", "swin_s", "swin_b_384", "vit_b_16", "convnext_tiny")


def traced(model: str, op: str) -> list:
    """The first signature of op in a committed trace, in the worker's wire form."""
    trace = read_trace(os.path.join(REPO, "traces", f"{model}.msgpack"))
    s = next(s for s in trace.signatures if s.op == op)
    return s.to_full_wire(trace.ops[trace.calls[s.calls[0]].op].arg_names)


@pytest.fixture(scope="module")
def bf16():
    w = Worker("--device", "n150", "--memory", "dram")
    yield w
    w.close()


def test_vit_fused_attention_runs_on_ttnn_sdpa_in_bfloat16(bf16):
    r = bf16.run(traced("vit_b_16", "aten._native_multi_head_attention.default"))
    assert r["status"] == "pass", r["reason"]
    assert r["extra"]["notes"] == ["attention on ttnn.transformer.scaled_dot_product_attention"]
    assert "split_query_key_value_and_split_heads(t1, num_heads=12, transpose_key=False" in r["ttnn_call"]
    assert "scale=0.125" in r["ttnn_call"] and r["outputs"][0]["shape"] == [1, 197, 768]
    assert [i["shape"] for i in r["inputs"]] == [[1, 197, 768], [768, 2304], [1, 2304], [768, 768], [1, 768]]


def test_vit_fused_attention_is_decomposed_where_sdpa_refuses_float32():
    w = Worker("--device", "n150", "--memory", "dram", "--dtype", "float32")
    try:
        r = w.run(traced("vit_b_16", "aten._native_multi_head_attention.default"))
    finally:
        w.close()
    assert r["status"] == "pass", r["reason"]
    assert r["extra"]["notes"][0].startswith("attention decomposed: matmul, scale, softmax, matmul")
    assert "float32" in r["extra"]["notes"][0] and "scaled_dot_product_attention" not in r["ttnn_call"]
    assert "ttnn.softmax(t4, dim=-1" in r["ttnn_call"] and r["outputs"][0]["shape"] == [1, 197, 768]


def test_scaled_dot_product_attention_maps_to_ttnn_sdpa(bf16):
    q = T([1, 8, 64, 64])
    r = bf16.run(sig("aten.scaled_dot_product_attention.default",
                     [("query", q), ("key", q), ("value", q), ("attn_mask", ["none", None]),
                      ("dropout_p", ["float", 0.0]), ("is_causal", ["bool", False]), ("scale", ["none", None]),
                      ("enable_gqa", ["bool", False])], [q], "sdpa"))
    assert r["status"] == "pass", r["reason"]
    assert "ttnn.transformer.scaled_dot_product_attention(query, key, value" in r["ttnn_call"]


def test_swin_bias_gather_is_one_embedding_and_a_gather_on_another_dim_runs(bf16):
    r = bf16.run(traced("swin_t", "aten.index.Tensor"))
    assert r["status"] == "pass", r["reason"]
    assert r["ttnn_call"].startswith("t1 = ttnn.embedding(indices_0, self") and r["outputs"][0]["shape"] == [2401, 3]
    r = bf16.run(sig("aten.index.Tensor", [("self", T([4, 64, 32])),
                                           ("indices", ["list", [["none", None], T([8], "int64")]])],
                     [T([4, 8, 32])], "gather1"))
    assert r["status"] == "pass", r["reason"]
    assert "ttnn.gather(self, 1, indices_0" in r["ttnn_call"] and r["outputs"][0]["shape"] == [4, 8, 32]


def test_boolean_mask_indexing_stays_unsupported_with_what_a_port_does(bf16):
    r = bf16.run(sig("aten.index.Tensor", [("self", T([4, 64])), ("indices", ["list", [T([4], "bool")]])],
                     [T([2, 64])], "mask"))
    assert r["status"] == "unsupported" and "boolean mask" in r["reason"] and "ttnn.where" in r["reason"]


@pytest.mark.parametrize("base,size,stride,call", [
    ([1, 768, 1, 1], [1, 768, 1, 1], [768, 1, 768, 768], "ttnn.reshape(self, [1, 768, 1, 1]"),   # convnext
    ([4, 64], [64, 4], [1, 64], "ttnn.permute(t1, [1, 0]"),
    ([8, 64], [4, 64], [128, 1], "ttnn.slice(self, [0, 0], [7, 64], [2, 1]"),
], ids=["reshape", "permute", "slice"])
def test_as_strided_of_a_reshape_permute_or_slice_is_that_op(bf16, base, size, stride, call):
    r = bf16.run(sig("aten.as_strided_.default", [("self", T(base)), ("size", ints(size)), ("stride", ints(stride)),
                                                  ("storage_offset", ["none", None])], [T(size)], f"as{size}"))
    assert r["status"] == "pass", r["reason"]
    assert call in r["ttnn_call"] and r["outputs"][0]["shape"] == size


def test_overlapping_as_strided_stays_unsupported_with_what_a_port_does(bf16):
    r = bf16.run(sig("aten.as_strided.default", [("self", T([5])), ("size", ints([3, 3])), ("stride", ints([1, 1])),
                                                 ("storage_offset", ["none", None])], [T([3, 3])], "windows"))
    assert r["status"] == "unsupported" and "overlapping" in r["reason"] and "a port writes" in r["reason"]


def test_the_five_models_these_ops_blocked_have_no_blocked_call_on_the_mock_n150(tmp_path):
    """The measured target of issue 11: replay run on the committed eager traces, mock n150, DRAM."""
    traces = [os.path.join(REPO, "traces", f"{m}.msgpack") for m in TARGET_MODELS]
    env = {**os.environ, "PYTHONPATH": REPO, "OPTRACE_TTNN_PYTHON": sys.executable}
    cmd = [sys.executable, "-c", "from replay.cli import main; main()", "run", *traces, "--device", "n150",
           "--memory", "dram",
           "--no-remedies", "--out", str(tmp_path / "results"), "--report", str(tmp_path / "report")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.load(open(tmp_path / "report" / "report.json"))
    assert report["provenance"]["mock"] is True
    blocked = {m["model"]: m["blocked_calls"] for m in report["models"]}
    assert blocked == {m: 0 for m in TARGET_MODELS}, blocked
    for m in report["models"]:
        assert sum(m["by_status"].values()) == m["calls"] and m["by_status"]["folded"] == m["folded"]["calls"]
    assert not report["fix_by_op"]
