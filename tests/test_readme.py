"""Every command of the README's "Using it" block runs as written, in order, so the README cannot
drift from the CLI. They run in a scratch copy of what they read (models.toml and the traces they
name), so nothing committed is overwritten; each has a time budget. The block stays quick with the
whole zoo in traces/: no command sweeps the folder (the README's zoo block does that). The only rewrite: headroom's device
confirmation, which takes ~20 minutes on yolov8s, runs as `--no-confirm` (the estimate's search).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_S = 300                                   # per command
REWRITES = {"replay headroom yolov8s": "replay headroom yolov8s --no-confirm"}


def readme_commands() -> list[str]:
    """The shell lines of the first ```sh block under "## Using it", comments stripped."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text.split("## Using it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


COMMANDS = readme_commands()


NAMED_TRACE = re.compile(r"traces/[\w.-]+\.msgpack")
SWEEPS = re.compile(r"(^|\s)(traces/?|--all)(\s|$)")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A scratch folder holding what the commands read: the registry and the traces they name."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copy(os.path.join(REPO, "models.toml"), root / "models.toml")
    (root / "traces").mkdir()
    for rel in sorted({m for c in COMMANDS for m in NAMED_TRACE.findall(c)}):
        shutil.copy(os.path.join(REPO, rel), root / rel)
    os.symlink(os.path.join(REPO, ".venv"), root / ".venv")
    return root


def test_the_block_starts_by_putting_the_tools_on_path():
    assert COMMANDS[0] == "export PATH=$PWD/.venv/bin:$PATH"
    assert len(COMMANDS) >= 15


def test_no_quick_command_sweeps_the_whole_zoo():
    sweeping = [c for c in COMMANDS if SWEEPS.search(c)]
    assert not sweeping, f"these sweep every trace or model of the zoo; name a few traces instead: {sweeping}"


@pytest.mark.parametrize("command", COMMANDS[1:])
def test_readme_command_runs_as_written(command, workspace):
    line = REWRITES.get(command, command)
    env = dict(os.environ, PATH=f"{workspace}/.venv/bin:{os.environ['PATH']}")
    p = subprocess.run(["bash", "-c", f"set -euo pipefail; {line}"], cwd=workspace, env=env,
                       capture_output=True, text=True, timeout=BUDGET_S, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{line!r} exited {p.returncode}:\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}"
    assert p.stdout.strip() or p.stderr.strip(), f"{line!r} printed nothing"
