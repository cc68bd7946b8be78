"""Bad values on the `replay` command line: each is one line naming the option and the bad part, exit 2."""
import os

import pytest
from click.testing import CliRunner

from replay.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "resnet50.msgpack")


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args, words", [
    (["footprint", "--shape", "1,2,x"], ["--shape", "'x'"]),
    (["footprint", "--shape", "1,,2"], ["--shape", "dimension 2 is empty"]),
    (["footprint", "--shape", "4,4", "--layout", "diagonal"], ["--layout", "unknown layout 'diagonal'"]),
    (["footprint", "--shape", "4,4", "--dtype", "fp99"], ["--dtype", "unknown dtype 'fp99'"]),
    (["footprint", "--shape", "4,4", "--memory", "sram"], ["--memory", "unknown memory 'sram'"]),
    (["run", TRACE, "--device", "n999"], ["--device", "unknown device 'n999'"]),
    (["run", TRACE, "--backend", "gpu"], ["--backend", "unknown backend 'gpu'"]),
    (["run", TRACE, "--dtype", "int8"], ["--dtype", "unknown dtype 'int8'"]),
    (["run", TRACE, "--shard", "4/3"], ["--shard", "1 <= K <= N"]),
    (["run", TRACE, "--shard", "one/two"], ["--shard", "K/N"]),
    (["run", TRACE, "--jobs", "0"], ["--jobs"]),
    ([TRACE, "--memory", "hbm"], ["--memory", "unknown memory 'hbm'"]),
    (["headroom", "resnet50", "--step", "0"], ["--step"]),
    (["headroom", "resnet50", "--max-batch", "x"], ["--max-batch", "'x'"]),
    (["headroom", "resnet50", "--device", "n999"], ["--device", "unknown device"]),
])
def test_a_bad_value_is_one_line_naming_the_option_and_exit_2(args, words):
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: "), res.output
    assert all(w in lines[0] for w in words), lines[0]


def test_names_are_taken_in_any_case_and_canonicalized():
    res = invoke("footprint", "--shape", "2,2", "--memory", "L1", "--layout", "ROW_MAJOR", "--device", "N150",
                 "--dtype", "BF16", "--json")
    assert res.exit_code == 0, res.output
    assert '"memory": "L1"' in res.output and '"layout": "ROW_MAJOR"' in res.output and '"device": "n150"' in res.output
