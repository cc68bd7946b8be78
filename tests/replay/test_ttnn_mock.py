"""Replay on ttnn's mock device (no board needed): statuses a user sees, and a clean mock set-up.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_ttnn_mock.py
Every case goes through the real worker process, as the coordinator uses it.
"""
import glob
import importlib.util
import os
import struct
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None:  # the torch environment runs other tests
    pytest.skip("needs the ttnn environment (.venv-ttnn)", allow_module_level=True)

from replay.backends import mock_device as device_mod  # noqa: E402
from replay.run.worker import read_frame, write_frame  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def T(shape, dtype="float32"):
    stride, acc = [], 1
    for d in reversed(shape):
        stride.insert(0, acc)
        acc *= d
    return ["T", [list(shape), dtype, stride]]


def ints(xs):
    return ["list", [["int", x] for x in xs]]


def sig(op, named, outputs, sig_id="s"):
    """A signature in the worker's wire form: [id, op, args, outputs, count, calls, arg_names]."""
    return [sig_id, op, [v for _, v in named], outputs, 1, [0], [n for n, _ in named]]


class Worker:
    def __init__(self, *args, env=None, cwd=REPO):
        self.proc = subprocess.Popen([sys.executable, "-m", "replay.run.worker", *args], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": REPO, **(env or {})})
        self.ready = read_frame(self.proc.stdout)
        assert self.ready and self.ready["ready"], self.ready

    def run(self, signature) -> dict:
        write_frame(self.proc.stdin.fileno(), {"id": signature[0], "sig": signature})
        reply = read_frame(self.proc.stdout)
        assert reply["id"] == signature[0]
        return reply["result"]

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def dram():
    w = Worker("--device", "n150", "--memory", "dram")
    yield w
    w.close()


ADD_BROADCAST = sig("aten.add.Tensor", [("self", T([1, 1, 64, 64])), ("other", T([64])), ("alpha", ["int", 1])],
                    [T([1, 1, 64, 64])], "add")


def test_worker_reports_mock_n150_when_no_board(dram):
    assert dram.ready["mock"] is True and dram.ready["board"] == "n150"
    assert dram.ready["note"] == "mock device: ttnn's own allocator and op code, no arithmetic"


def test_view_to_5d_pads_each_element_to_a_tile_and_runs_out_of_dram(dram):
    s = sig("aten.view.default", [("self", T([160, 100, 512])), ("size", ints([160, 100, 512, 1, 1]))],
            [T([160, 100, 512, 1, 1])], "view5d")
    r = dram.run(s)
    assert r["status"] == "oom_dram", r["reason"]
    assert r["oom"]["requested_bytes"] == 16_777_216_000
    assert r["oom"]["cause"] == "exhaustion" and r["oom"]["phase"] == "op"
    assert r["ttnn_call"].startswith("out = ttnn.reshape(self, [160, 100, 512, 1, 1]")
    assert r["inputs"][0]["padded_shape"] == [160, 128, 512]


def test_small_broadcast_add_passes_with_footprints(dram):
    r = dram.run(ADD_BROADCAST)
    assert r["status"] == "pass", r["reason"]
    assert r["numerics"] == "not_checked (mock device)"
    assert [i["shape"] for i in r["inputs"]] == [[1, 1, 64, 64], [64]]
    assert r["inputs"][1]["padded_shape"] == [32, 64]   # rank 1 is one padded tile row
    assert r["outputs"][0]["shape"] == [1, 1, 64, 64] and r["outputs"][0]["padded_bytes"] == 4 * 2048
    assert "shape_mismatch" not in r["extra"]


def test_unsupported_op_says_what_to_do(dram):
    r = dram.run(sig("aten.as_strided.default", [("self", T([5])), ("size", ints([3, 3])),
                                                  ("stride", ints([1, 1])), ("storage_offset", ["none", None])],
                     [T([3, 3])], "strided"))
    assert r["status"] == "unsupported" and "reshape/permute/slice" in r["reason"]
    r = dram.run(sig("aten.made_up_op.default", [("self", T([4]))], [T([4])], "unknown"))
    assert r["status"] == "unsupported" and "replay/mapping/" in r["reason"]


def test_detach_is_skipped_with_a_reason(dram):
    r = dram.run(sig("aten.detach.default", [("self", T([4]))], [T([4])], "detach"))
    assert r["status"] == "skipped" and r["reason"]


def test_relu_of_64mib_in_l1_runs_out_of_l1():
    w = Worker("--device", "n150", "--memory", "l1")
    try:
        r = w.run(sig("aten.relu.default", [("self", T([1, 1, 4096, 8192]))], [T([1, 1, 4096, 8192])], "relu"))
    finally:
        w.close()
    assert r["status"] == "oom_l1", r["reason"]
    assert r["oom"]["buffer_type"] == "L1" and r["oom"]["requested_bytes"] == 64 << 20
    assert r["oom"]["phase"] == "op"


def test_row_major_view_of_wide_rows_overflows_circular_buffers():
    w = Worker("--device", "n150", "--layout", "ROW_MAJOR")
    try:
        r = w.run(sig("aten.view.default", [("self", T([1, 32, 1 << 20])), ("size", ints([1, 32 << 20]))],
                      [T([1, 32 << 20])], "wide"))
    finally:
        w.close()
    assert r["status"] == "cb_overflow", r["reason"]
    assert "beyond max L1 size" in r["reason"]


def test_concat_whose_rows_exceed_a_cores_l1_is_a_cb_overflow(dram):
    # ttnn.concat stages one row per dataflow-buffer entry: 800,000 bf16 = 1.6 MB > 1,393,312 B of L1
    s = sig("aten.cat.default", [("tensors", ["list", [T([1, 1, 1, 800000]), T([1, 1, 1, 800000])]]),
                                 ("dim", ["int", 2])], [T([1, 1, 2, 800000])], "widecat")
    r = dram.run(s)
    assert r["status"] == "cb_overflow", r["reason"]
    assert "required DFB entry size (1600000 B) exceeds per-core L1 capacity (1393312 B)" in r["reason"]


def test_row_major_pad_of_a_row_wider_than_half_l1_is_a_cb_overflow():
    w = Worker("--device", "n150", "--layout", "ROW_MAJOR")
    try:
        r = w.run(sig("aten.constant_pad_nd.default", [("self", T([1, 1, 1, 400000])), ("pad", ints([0, 1])),
                                                       ("value", ["float", 0.0])], [T([1, 1, 1, 400001])], "widepad"))
    finally:
        w.close()
    assert r["status"] == "cb_overflow", r["reason"]
    assert "padded row of 800016 B does not fit in the per-core L1 budget" in r["reason"]


def test_mock_writes_only_into_its_cache_and_runs_ops_with_the_python_written_elf(tmp_path):
    cache, home, cwd = tmp_path / "cache", tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    ttnn_dir = device_mod.ttnn_package_dir()
    had_sfpi = (ttnn_dir / "runtime" / "sfpi").exists()
    w = Worker("--device", "n150", env={"OPTRACE_CACHE": str(cache), "HOME": str(home),
                                        "XDG_CACHE_HOME": str(home / ".cache")}, cwd=str(cwd))
    try:
        r = w.run(ADD_BROADCAST)
    finally:
        w.close()
    assert r["status"] == "pass", r["reason"]
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
    assert (ttnn_dir / "runtime" / "sfpi").exists() == had_sfpi
    # The kernels tt-metal linked and loaded for the add are our struct-written ELF.
    elves = glob.glob(str(cache / "tt-metal-cache" / "**" / "kernels" / "**" / "*.elf"), recursive=True)
    elves = [e for e in elves if not e.endswith(".xip.elf")]
    assert elves
    ours = device_mod.kernel_elf_bytes()
    assert all(open(e, "rb").read() == ours for e in elves)


def test_kernel_elf_is_a_32bit_riscv_executable_with_text_first():
    b = device_mod.kernel_elf_bytes()
    assert b[:4] == b"\x7fELF" and b[4] == 1 and b[5] == 1
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIII", b, 16)
    assert (e_type, e_machine) == (2, 243)
    p_type, p_offset, p_vaddr, p_paddr, p_filesz = struct.unpack_from("<5I", b, e_phoff)
    assert p_type == 1 and e_entry == p_vaddr and p_offset % 4 == 0
    data_paddr = struct.unpack_from("<5I", b, e_phoff + 32)[3]
    assert data_paddr == p_paddr + p_filesz           # data packed right after text


@pytest.mark.parametrize("board", device_mod.MOCK_BOARDS)
def test_every_mock_board_has_a_cluster_descriptor(board):
    text = device_mod.cluster_descriptor_yaml(board)
    assert f"board_type: {board}" in text and "harvest_mask" in text


def test_worker_test_crash_op_kills_the_process():
    w = Worker("--device", "n150", env={"OPTRACE_TEST_OPS": "1"})
    write_frame(w.proc.stdin.fileno(), {"id": 1, "sig": sig("optrace_test.crash", [], [], "crash")})
    assert read_frame(w.proc.stdout) is None
    assert w.proc.wait(timeout=30) != 0
