"""`replay --ttnn-version X`: another ttnn release's environment, made once under .cache/ttnn-envs/X and
reused; its results in their own file, the header naming the release. Making a real one downloads a
large wheel, so CI checks the error paths and the reuse (docs/cluster.md has the manual check).

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_ttnn_version_ttnn.py
"""
import importlib.metadata
import importlib.util
import json
import os
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

from replay.cli import main  # noqa: E402
from replay.results import read_results  # noqa: E402
from replay.run.ttnn_envs import READY  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "vit_b_16.msgpack")
TTNN = importlib.metadata.version("ttnn")


def _replay(tmp_path, *args):
    return CliRunner().invoke(main, [TRACE, "--jobs", "1", "--no-report", "--no-remedies",
                                     "--out", str(tmp_path / "results"), *args])


def _ready_env(envs, version, python=sys.executable):
    os.makedirs(envs / version)
    (envs / version / READY).write_text(json.dumps({"python": python, "ttnn": version}))


@pytest.fixture
def envs(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTRACE_TTNN_ENVS", str(tmp_path / "envs"))
    return tmp_path / "envs"


def test_an_existing_environment_is_reused_and_the_results_header_names_the_release(envs, tmp_path):
    _ready_env(envs, TTNN)
    r = _replay(tmp_path, "--ttnn-version", TTNN)
    assert r.exit_code == 0, r.output
    assert "making the ttnn" not in r.output                     # reused, nothing installed
    path = tmp_path / "results" / f"ttnn_n150_bfloat16_dram_ttnn{TTNN}.jsonl"
    header, results = read_results(str(path))
    assert header["ttnn"] == header["ttnn_version"] == TTNN and header["ttnn_python"] == sys.executable
    assert len(results) == header["unique_signatures"] and all(x.mock for x in results)


def test_an_environment_holding_another_release_is_one_line_and_exit_2(envs, tmp_path):
    _ready_env(envs, "0.80.0")
    r = _replay(tmp_path, "--ttnn-version", "0.80.0")
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"replay: --ttnn-version 0.80.0: {sys.executable} has ttnn {TTNN}; "
                                             "delete its environment folder to have it made again"]


@pytest.mark.parametrize("args, says", [
    (["--ttnn-version", "latest"], "--ttnn-version 'latest': give a ttnn release such as 0.80.0"),
    (["--ttnn-version", "0.80.0", "--ttnn-python", sys.executable], "give --ttnn-version or --ttnn-python, not both"),
    (["--ttnn-version", "0.80.0", "--cluster", "ray"], "--ttnn-version runs the ttnn backend in the built-in pool"),
])
def test_bad_ttnn_version_arguments_are_one_line_and_exit_2(envs, tmp_path, args, says):
    r = _replay(tmp_path, *args)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and says in r.output
    assert not envs.exists() or not any(envs.iterdir())


def test_no_python_312_to_build_with_is_one_line_and_exit_2(envs, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTRACE_TTNN_ENV_PYTHON", str(tmp_path / "no-python"))
    r = _replay(tmp_path, "--ttnn-version", "0.80.0")
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (f"replay: OPTRACE_TTNN_ENV_PYTHON '{tmp_path / 'no-python'}' "
                                                 "is not an executable Python")


def test_a_release_pip_cannot_install_is_one_line_exit_2_and_leaves_no_environment(envs, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTRACE_TTNN_ENV_PYTHON", sys.executable)      # a Python 3.12: a real venv, a real pip
    r = _replay(tmp_path, "--ttnn-version", "0.0.1")
    assert r.exit_code == 2
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("replay: pip could not install ttnn==0.0.1 (") and "check the release exists" in last
    assert not (envs / "0.0.1").exists()
