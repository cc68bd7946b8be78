"""Remedies in context on ttnn's mock device: the change found is checked by replaying the whole model
again with it applied, on the device. Runs with the ttnn environment (.venv-ttnn)."""
import importlib.util
import os

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from capture.schema import read_trace  # noqa: E402
from replay.context.run import run_context  # noqa: E402
from replay.results import read_results  # noqa: E402
from replay.run.runner import RunSettings  # noqa: E402
from replay.studies.context_remedies import find_context_remedies  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_resnet50_in_l1_passes_on_the_mock_device_once_its_weights_are_held_in_dram(tmp_path):
    trace = read_trace(os.path.join(REPO, "traces", "resnet50.msgpack"))
    settings = RunSettings(backend="ttnn", device="n150", memory="l1", jobs=2)
    [(results_path, _)] = run_context([trace], settings, str(tmp_path), progress=False,
                                      remedies=find_context_remedies)
    header, results = read_results(results_path)
    assert header["mock"] and header["context"]["failing_calls"] > 0           # fails in context as is
    remedy = header["context_remedy"]
    assert remedy["verified_on"] == "mock" and remedy["passes"] and remedy["verified_failing_calls"] == 0
    assert remedy["changes"]["weights_dram"] and not remedy["changes"]["dram_tensors"]
    first = remedy["calls"][0]
    assert first["call"] == header["context"]["first_failure"] == 0
    assert first["remedy"] == "hold the weights in DRAM" and 1_000_000 < first["bytes_freed"] < 94_000_000
    assert all(c["passes"] for c in remedy["calls"])
    stored = [c for r in results for c in r.extra.get("context_remedy", [])]
    assert sorted(c["call"] for c in stored) == sorted(c["call"] for c in remedy["calls"])


def test_a_view_padded_past_dram_by_its_trailing_ones_passes_on_the_mock_device_once_folded(tmp_path):
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from context_trace import trailing_ones
    trace = read_trace(trailing_ones(str(tmp_path / "t.msgpack")).path)
    settings = RunSettings(backend="ttnn", device="n150", memory="dram", jobs=1)
    [(results_path, _)] = run_context([trace], settings, str(tmp_path / "results"), progress=False,
                                      remedies=find_context_remedies)
    header, _ = read_results(results_path)
    assert header["context"]["first_failure"] == 1                       # the view, oom_dram on the device
    remedy = header["context_remedy"]
    assert remedy["changes"]["fold_calls"] == [1] and remedy["verified_on"] == "mock" and remedy["passes"]
    assert [(c["call"], c["remedy"], c["passes"]) for c in remedy["calls"]] == [
        (1, "fold its trailing 1s: [160, 100, 512]", True), (2, "the change for call 1", True)]
