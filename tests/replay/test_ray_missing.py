"""`replay --cluster ray` in a Python without Ray (the capture environment): one line saying where Ray is, exit 2."""
import importlib.util
import os

import pytest
from click.testing import CliRunner

from replay.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="this Python has Ray")
def test_cluster_without_ray_is_one_line_naming_the_ttnn_environment_and_exit_2(tmp_path):
    r = CliRunner().invoke(main, [os.path.join(REPO, "traces", "resnet50.msgpack"), "--cluster", "ray",
                                  "--out", str(tmp_path), "--no-report"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: --cluster needs Ray, which this Python")
    assert ".venv-ttnn/bin/replay" in lines[0] and "optrace[ray]" in lines[0]
    assert not any(p.endswith(".jsonl") for p in os.listdir(tmp_path))
