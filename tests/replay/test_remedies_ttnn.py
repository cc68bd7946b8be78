"""Remedies on ttnn's mock device: the cheapest configuration that makes a failing signature run.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_remedies_ttnn.py
"""
import importlib.util

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from capture.schema import Signature, contiguous_stride  # noqa: E402
from replay.studies.remedies import find_remedies  # noqa: E402
from replay.results import ReplayResult  # noqa: E402
from replay.run.runner import RunSettings, UniqueSignature  # noqa: E402


def T(shape):
    return ["T", [list(shape), "float32", contiguous_stride(shape)]]


def test_reshape_to_trailing_ones_that_runs_out_of_dram_is_fixed_by_folding_the_ones(tmp_path):
    sig = Signature("view5d", "aten.view.default", [T([160, 100, 512]), ["list", [["int", d] for d in
                                                                                 [160, 100, 512, 1, 1]]]],
                    [T([160, 100, 512, 1, 1])], 1, [0])
    failing = {"view5d": ReplayResult(signature_id="view5d", op=sig.op, status="oom_dram", backend="ttnn", device="n150",
                                        mock=True)}
    settings = RunSettings(backend="ttnn", device="n150", jobs=1, log_dir=str(tmp_path))
    [(sid, remedy)] = find_remedies([UniqueSignature(sig, ["self", "size"], ["m"])], failing, settings).items()
    tried = dict(remedy["tried"])
    assert tried["fold trailing 1s: [160, 100, 512]"] == "pass"
    assert remedy["remedy"] == "fold trailing 1s: [160, 100, 512]"
    # input and output both [160, 100, 512] in bf16 TILE: 160 x 128 x 512 x 2 B each
    assert remedy["bytes_needed"] == 2 * 160 * 128 * 512 * 2
    assert tried["dtype=bfloat8_b"] == "oom_dram"          # still a tile per element
