"""Folded calls: what a port computes at load time from weights/buffers, from the trace's lineage."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from capture import trace_module
from capture.schema import read_trace, tensor_payloads
from replay.lineage import lineage
from replay.report.build import build_report
from replay.results import ReplayResult
from sample import trace_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACES = trace_files()   # the fixed sample (tests/sample.py; OPTRACE_TEST_ALL_TRACES=1: every trace)
SWIN = [p for p in TRACES if os.path.basename(p).startswith("swin")]


@pytest.fixture(scope="module")
def swin_t():
    return read_trace(os.path.join(ROOT, "traces", "swin_t.msgpack"))


@pytest.mark.parametrize("path", SWIN, ids=os.path.basename)
def test_swin_relative_position_gather_is_folded_and_the_bias_add_is_not(path):
    trace = read_trace(path)
    lin = lineage(trace)
    gathers = [c for c in trace.calls if trace.op_name(c) == "aten.index.Tensor"]
    assert gathers and all(c.index in lin.folded for c in gathers)
    for c in gathers:
        table = trace.tensors[tensor_payloads(c.args)[0]]
        assert table.kind == "param" and table.name.endswith("relative_position_bias_table")
    # the gathered bias is uploaded once per block and added to the attention scores on the device
    biases = [u for u in lin.uploads if not u.view_of_weight]
    assert len(biases) == len(gathers)
    for u in biases:
        consumer = trace.calls[u.first_use]
        assert trace.op_name(consumer) == "aten.add.Tensor" and u.first_use not in lin.folded
        assert u.bytes == 4 * u.shape[1] * u.shape[2] * u.shape[3] and u.shape[2] == u.shape[3]


@pytest.mark.parametrize("path", TRACES, ids=os.path.basename)
def test_the_first_convolution_of_every_model_is_not_folded(path):
    trace = read_trace(path)
    inputs = {i for i, m in enumerate(trace.tensors) if m.kind == "input"}
    first = next((c for c in trace.calls if trace.op_name(c) == "aten.convolution.default"), None) or \
        next(c for c in trace.calls if inputs & set(tensor_payloads(c.args)))   # no conv: the first reading the input
    assert first.index not in lineage(trace).folded


def test_a_call_mixing_a_buffer_with_an_activation_is_not_folded(swin_t):
    lin = lineage(swin_t)
    buffers = {m.storage_id for m in swin_t.tensors if m.kind == "buffer"}
    mixed = [c for c in swin_t.calls if trace_reads(swin_t, c) & buffers and c.index not in lin.folded]
    assert mixed, "swin_t adds its attention-mask buffer to activations"
    for c in mixed:  # every such call reads an activation besides the buffer
        assert any(swin_t.tensors[t].storage_id not in buffers for t in tensor_payloads(c.args))


def trace_reads(trace, call) -> set[int]:
    return {trace.tensors[t].storage_id for t in tensor_payloads(call.args)}


class Mixed(nn.Module):
    """Load-time work (a gather by an index buffer, a weight's transpose and view, a shape-only creation)
    beside a buffer updated in place with an activation, which taints what reads it afterwards, and
    random values."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))
        self.register_buffer("running", torch.zeros(4))
        self.register_buffer("idx", torch.tensor([0, 2, 1, 3]))

    def forward(self, x):
        bias = self.w[self.idx]              # folded: a parameter gathered by a buffer
        y = x @ self.w.t() + bias[0]         # t folded; the matmul reads the input
        y = y + self.running                 # a buffer mixed with an activation
        self.running.add_(y.mean(0))         # the buffer now holds input-derived data
        z = self.running * 2                 # so this is not folded
        ones = torch.ones_like(x) * 3        # shape-only creation: folded, even though x is the input
        noise = torch.rand(4) * 2            # random values are new every forward: not folded
        return y + z + ones + noise + self.w.view(16).sum()


def test_in_place_updates_views_and_shape_only_creation_are_followed(tmp_path):
    trace = trace_module(Mixed().eval(), torch.rand(2, 4), name="mixed")
    lin = lineage(trace)
    ops = [(trace.op_name(c), c.index in lin.folded) for c in trace.calls]
    folded_ops = [op for op, f in ops if f]
    assert "aten.index.Tensor" in folded_ops and "aten.t.default" in folded_ops
    assert "aten.ones_like.default" in folded_ops and "aten.sum.default" in folded_ops
    assert ("aten.add_.Tensor", False) in ops and ("aten.mm.default", False) in ops
    muls = [f for op, f in ops if op == "aten.mul.Tensor"]
    assert muls == [False, True, False]       # running * 2 after the in-place update; ones * 3; rand * 2
    first_add = next(c for c in trace.calls if trace.op_name(c) == "aten.add.Tensor")
    assert first_add.index not in lin.folded


def test_folded_calls_are_their_own_status_and_never_in_the_fix_ranking(swin_t):
    results = []
    for s in swin_t.signatures:   # every index.Tensor unsupported, every other op passes
        status = "unsupported" if s.op == "aten.index.Tensor" else "pass"
        results.append(ReplayResult(signature_id=s.id, op=s.op, status=status, backend="ttnn", device="n150",
                                    mock=True))
    report = build_report([swin_t], {"mock": True}, results)
    (m,) = report.models
    folded = len(lineage(swin_t).folded)
    assert m.by_status == {"pass": len(swin_t.calls) - folded, "folded": folded}
    assert m.blocked_calls == 0 and m.first_block is None
    assert not report.fix_by_op and not report.fix_by_signature
    assert m.folded.calls == folded and m.folded.ops["aten.index.Tensor"] == 12
    assert m.folded.new_upload_bytes == sum(u.bytes for u in lineage(swin_t).uploads if not u.view_of_weight)
    assert any(r.status == "folded" and "load time" in r.reason for r in m.reasons)
