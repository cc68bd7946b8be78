"""Open ttnn's device: a real board when there is one, otherwise tt-metal's mock device.

The mock device runs ttnn's own allocator and op host code (shapes, padding, buffer and circular
buffer sizing, the real error messages) with every driver call mocked and no arithmetic. The files
it needs that the ttnn wheel does not ship (a cluster descriptor, an SFPI compiler stand-in, a
kernel ELF, a private runtime root) are written by replay/backends/mock_device.py into optrace's
cache; this module points tt-metal at them (``TT_METAL_RUNTIME_ROOT`` and friends).

Environment variables must be in place before ``import ttnn``: ``prepare_environment`` returns
them, for this process (``open_device`` applies them) or for worker processes a coordinator spawns.
This module imports ttnn only inside ``open_device``; it never imports torch.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from capture.capture import dist_version
from replay.backends.mock_device import MOCK_BOARDS, DeviceSetupError, cache_dir, write_mock_files
from replay.results import MOCK_NOTE

DEFAULT_BOARD = "n150"
# Where the kernel driver exposes boards (tt-kmd): /dev/tenstorrent/<n>.
DEVICE_NODE_GLOBS = ("/dev/tenstorrent/*", "/dev/tenstorrent[0-9]*")

__all__ = ["DEFAULT_BOARD", "DeviceInfo", "DeviceSetupError", "MOCK_BOARDS", "apply_environment", "close_device",
           "has_real_board", "open_device", "prepare_environment"]


@dataclass
class DeviceInfo:
    """What replay ran on, for result headers and the worker's ready frame."""
    board: str            # "n150" ... for the mock device, the arch name for a real board
    mock: bool
    note: str             # MOCK_NOTE on the mock device, else the real board's name
    ttnn_version: str
    arch: str = ""
    compiler: str = ""    # which riscv-tt-elf-g++ tt-metal uses
    cache_dir: str = ""

    def to_json(self) -> dict:
        """As the worker's ready frame carries it."""
        return asdict(self)


def has_real_board() -> bool:
    """True when the Tenstorrent kernel driver shows a device node."""
    if os.environ.get("OPTRACE_FORCE_MOCK") == "1":
        return False
    return any(glob.glob(g) for g in DEVICE_NODE_GLOBS)


def prepare_environment(board: str = DEFAULT_BOARD, cache: Path | str | None = None) -> dict[str, str]:
    """Write what the device needs and return the environment variables to set before `import ttnn`.

    On a machine with a board only the private caches are set (the board is used untouched);
    otherwise the mock device for `board` is prepared.
    """
    if board not in MOCK_BOARDS:
        raise DeviceSetupError(f"unknown board {board!r}; choose one of {', '.join(MOCK_BOARDS)}")
    cache = Path(cache) if cache else cache_dir()
    env = {
        "TT_METAL_CACHE": str(cache / "tt-metal-cache"),
        # tt-metal writes generated/{watcher,fabric}/ under this folder, else under the cwd.
        "TT_METAL_LOGS_PATH": str(cache / "tt-metal-logs"),
        "TTNN_CONFIG_OVERRIDES": json.dumps({
            "cache_path": str(cache / "ttnn"), "model_cache_path": str(cache / "ttnn" / "models"),
            "tmp_dir": str(cache / "ttnn" / "tmp"), "root_report_path": str(cache / "ttnn" / "reports")}),
        "OPTRACE_BOARD": board,
        "OPTRACE_CACHE": str(cache),
    }
    if has_real_board():
        env["OPTRACE_MOCK"] = "0"
        return env
    files = write_mock_files(board, cache)
    env["OPTRACE_MOCK"] = "1"
    env["OPTRACE_SFPI_COMPILER"] = files["compiler"]
    env["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = files["descriptor"]
    if files["runtime_root"]:
        env["TT_METAL_RUNTIME_ROOT"] = files["runtime_root"]
    return env


def apply_environment(env: dict[str, str]) -> None:
    """Put `env` into os.environ; refuses when ttnn is already imported with different values."""
    if "ttnn" in sys.modules:
        stale = [k for k, v in env.items() if k.startswith(("TT_", "TTNN_")) and os.environ.get(k) != v]
        if stale:
            raise DeviceSetupError(f"ttnn was imported before optrace set {', '.join(stale)}; call "
                                   "replay.backends.device.open_device (or prepare_environment) before importing ttnn")
    os.environ.update(env)


def open_device(board: str = DEFAULT_BOARD, l1_small_size: int = 32768, trace_region_size: int = 0,
                cache: Path | str | None = None):
    """Open device 0: a real board if present, else the mock `board`. Returns (device, DeviceInfo)."""
    env = prepare_environment(board, cache)
    apply_environment(env)
    import ttnn  # noqa: PLC0415 - must follow the environment set-up above

    device = ttnn.open_device(device_id=0, l1_small_size=l1_small_size, trace_region_size=trace_region_size)
    mock = env["OPTRACE_MOCK"] == "1"
    arch = str(device.arch()).split(".")[-1].lower()
    version = getattr(ttnn, "__version__", "") or (dist_version("ttnn") or "")
    info = DeviceInfo(board=board if mock else arch, mock=mock,
                      note=MOCK_NOTE if mock else f"real board ({arch})", ttnn_version=version,
                      arch=arch, compiler=env.get("OPTRACE_SFPI_COMPILER", ""), cache_dir=env["OPTRACE_CACHE"])
    return device, info


def close_device(device) -> None:
    """Close a device open_device opened."""
    import ttnn  # noqa: PLC0415
    ttnn.close_device(device)
