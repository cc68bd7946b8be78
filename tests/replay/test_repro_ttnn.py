"""Generated repros run with ttnn alone and get the expected status on the mock device.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_repro_ttnn.py
"""
import importlib.util
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from context_trace import build_trace  # noqa: E402
from replay.backends.device import prepare_environment  # noqa: E402
from replay.studies.repro import MOCK_ENV_KEYS, write_repros  # noqa: E402
from replay.run.runner import RunSettings, load_traces, replay  # noqa: E402


def test_repros_of_a_dram_oom_and_a_pass_run_standalone_on_the_mock_device(tmp_path):
    trace = build_trace("reprom", str(tmp_path / "t.msgpack"),
                        {"x": [160, 100, 512], "v": [160, 100, 512, 1, 1], "s": [2, 64], "r": [2, 64]},
                        [("aten.view.default", ["x", ["list", [["int", d] for d in [160, 100, 512, 1, 1]]]], "v"),
                         ("aten.relu.default", ["s"], "r")])
    results_path = str(tmp_path / "results.jsonl")
    _, results = replay(load_traces([trace.path]), RunSettings(backend="ttnn", jobs=1, log_dir=str(tmp_path)),
                        results_path, progress=False)
    by_op = {r.op: r for r in results}
    assert by_op["aten.view.default"].status == "oom_dram" and by_op["aten.relu.default"].status == "pass"
    [failing] = write_repros(results_path, None, str(tmp_path / "repros"))
    passing = write_repros(results_path, [by_op["aten.relu.default"].signature_id], str(tmp_path / "one.py"))[0]
    text = open(failing).read()
    assert "EXPECTED = 'oom_dram'" in text and "reprom: 1 calls, first call 0; in layer0 (1)" in text
    assert "optrace" not in text.split('"""')[2]            # the code needs ttnn only
    assert "TT_METAL_MOCK_CLUSTER_DESC_PATH=" in text          # the exact mock command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TT_", "OPTRACE", "PYTHONPATH"))}
    mock = prepare_environment("n150")
    env.update({k: mock[k] for k in MOCK_ENV_KEYS if k in mock})
    for path in (failing, passing):
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.basename(path)],
                             cwd=os.path.dirname(path), env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]
        assert "1 passed" in run.stdout
