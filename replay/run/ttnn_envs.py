"""Other ttnn releases on demand: ``--ttnn-version X`` replays with a Python environment that has ttnn==X.

The environment is made once under ``<repo>/.cache/ttnn-envs/X`` (or ``$OPTRACE_TTNN_ENVS/X``) with a
Python 3.12 (``$OPTRACE_TTNN_ENV_PYTHON``, else ``python3.12`` on PATH, else pyenv's), holding ttnn==X,
msgpack and click (the workers find optrace itself on PYTHONPATH). A ``ready.json`` written last
(atomically) marks it finished and names its interpreter; a folder without one was interrupted and is
rebuilt. One process builds a given version at a time (replay/lock.py).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

from capture.atomic import write_atomic
from replay.lock import FileBusy, writer_lock
from replay.run.pool import REPO_ROOT, PoolError

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:rc|\.dev|\.post)\d+)?$")
READY = "ready.json"


class TtnnEnvError(PoolError):
    """The environment for a ttnn release cannot be found or made; one line saying what to do."""


def envs_dir() -> str:
    """Where the per-release environments live."""
    return os.environ.get("OPTRACE_TTNN_ENVS") or os.path.join(REPO_ROOT, ".cache", "ttnn-envs")


def check_version(version: str) -> str:
    """The release string, checked (``0.80.0``, ``0.81.0rc1``); TtnnEnvError otherwise."""
    if not VERSION_RE.match(version or ""):
        raise TtnnEnvError(f"--ttnn-version {version!r}: give a ttnn release such as 0.80.0")
    return version


def find_python312() -> str:
    """A Python 3.12 to build environments with; TtnnEnvError naming where it looked."""
    explicit = os.environ.get("OPTRACE_TTNN_ENV_PYTHON")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise TtnnEnvError(f"OPTRACE_TTNN_ENV_PYTHON {explicit!r} is not an executable Python")
        return explicit
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [shutil.which("python3.12"), *sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.12*", "bin",
                                                                            "python3")), reverse=True)]
    for cand in filter(None, candidates):
        probe = subprocess.run([cand, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 12))"],
                               capture_output=True)
        if probe.returncode == 0:
            return cand
    raise TtnnEnvError("--ttnn-version needs a Python 3.12 to build the environment: put python3.12 on PATH, "
                       "install it with pyenv, or set OPTRACE_TTNN_ENV_PYTHON")


def ready_python(version: str) -> str | None:
    """The interpreter of the finished environment for this release, or None when there is none yet."""
    marker = os.path.join(envs_dir(), version, READY)
    try:
        with open(marker) as f:
            python = json.load(f)["python"]
    except (OSError, ValueError, KeyError):
        return None
    return python if os.path.isfile(python) and os.access(python, os.X_OK) else None


def ensure_ttnn_env(version: str, stream=sys.stderr) -> str:
    """The Python with ttnn==version: reused when it was made before, else made now (pip's output
    shown on ``stream``). TtnnEnvError on a bad version, no Python 3.12, or a failed install."""
    check_version(version)
    python = ready_python(version)
    if python:
        return python
    folder = os.path.join(envs_dir(), version)
    os.makedirs(envs_dir(), exist_ok=True)
    try:
        with writer_lock(folder + ".building", f"ttnn {version} environment"):
            return ready_python(version) or _build(version, folder, stream)
    except FileBusy as e:
        raise TtnnEnvError(str(e)) from None


def _build(version: str, folder: str, stream) -> str:
    """Make the environment from scratch (a left-over, unfinished folder is removed first)."""
    base = find_python312()
    if os.path.exists(folder):
        shutil.rmtree(folder)
    stream.write(f"replay: making the ttnn {version} environment in {folder} (once) with {base}\n")
    stream.flush()
    made = subprocess.run([base, "-m", "venv", folder], capture_output=True, text=True)
    if made.returncode != 0:
        raise TtnnEnvError(f"cannot make a venv in {folder}: {_last_line(made.stderr)}")
    python = os.path.join(folder, "bin", "python")
    pip = subprocess.Popen([python, "-m", "pip", "install", "--disable-pip-version-check", f"ttnn=={version}",
                            "msgpack>=1.0", "click>=8.0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    for line in pip.stdout:
        if line.strip() and "is ignored: it is neither a file nor a directory" not in line:
            last = line.strip()
            stream.write(f"  pip: {last[:160]}\n")
            stream.flush()
    if pip.wait() != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise TtnnEnvError(f"pip could not install ttnn=={version} ({last[:200]}); check the release exists")
    write_atomic(os.path.join(folder, READY), json.dumps({"python": python, "ttnn": version}) + "\n")
    return python


def _last_line(text: str) -> str:
    lines = [x for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1][:200] if lines else "no output"
