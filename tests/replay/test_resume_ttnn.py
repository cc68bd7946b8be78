"""`replay TRACE --resume` on a journal that is already complete: nothing is replayed, it says so, and
the report is written (it used to die with AttributeError: 'TtnnBackend' object has no attribute 'mock').

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_resume_ttnn.py
"""
import importlib.util
import os

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

from replay.cli import main  # noqa: E402
from replay.results import read_results  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack")


def test_resuming_a_complete_ttnn_run_replays_nothing_says_so_and_writes_the_report(tmp_path):
    out, rep = str(tmp_path / "results"), str(tmp_path / "reports")
    args = [TRACE, "--backend", "ttnn", "--jobs", "1", "--no-remedies", "--out", out]
    first = CliRunner().invoke(main, [*args, "--no-report"])
    assert first.exit_code == 0, first.output
    journal = os.path.join(out, "ttnn_n150_bfloat16_dram.jsonl")
    before = open(journal).read()

    again = CliRunner().invoke(main, [*args, "--resume", "--report", rep])
    assert again.exit_code == 0, again.output
    assert "nothing left to do" in again.output
    assert open(journal).read() == before                   # not one signature replayed again
    header, results = read_results(journal)
    assert len(results) == header["unique_signatures"]
    assert os.path.exists(os.path.join(rep, "report.html"))
