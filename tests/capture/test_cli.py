"""trace-model and the trace reader as a user meets them: clear one-line errors, exit status 2."""
import os
import random
import subprocess
import sys

import msgpack
import pytest

from capture.schema import TraceError, parse_trace, read_trace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SAMPLE = os.path.join(REPO, "traces", "resnet50.msgpack")


def run(*argv, env=None, cwd=REPO):
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _assert_one_line_exit_2(p):
    assert p.returncode == 2, p.stderr
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr


def hostile_files(tmp_path):
    blob = open(SAMPLE, "rb").read()
    doc = msgpack.unpackb(blob, raw=False)
    rnd = random.Random(7)
    cases = {
        "truncated": blob[: len(blob) // 2],
        "random": bytes(rnd.randrange(256) for _ in range(4096)),
        "empty": b"",
        "wrong_version": msgpack.packb({**doc, "version": 99}),
        "not_a_map": msgpack.packb([1, 2, 3]),
        "bad_tensor_ref": msgpack.packb({**doc, "calls": [[doc["calls"][0][0], [["T", 10 ** 9]] *
                                                          len(doc["calls"][0][1]), [], 0]] + doc["calls"][1:]}),
        "wrong_types": msgpack.packb({**doc, "tensors": [["x", 0, None, 0, 0, 0, ""]] + doc["tensors"][1:]}),
        "count_lies": msgpack.packb({**doc, "header": {**doc["header"], "call_count": 1}}),
        "ext_type": msgpack.packb({**doc, "header": msgpack.ExtType(5, b"pickle")}),
        "deep": msgpack.packb({**doc, "calls": [[0, [["list", [["list", [["list", []]]]]]]*3, [], 0]]}),
    }
    paths = {}
    for k, v in cases.items():
        p = tmp_path / f"{k}.msgpack"
        p.write_bytes(v)
        paths[k] = str(p)
    return paths


def test_hostile_trace_files_are_rejected_with_one_line(tmp_path):
    for name, path in hostile_files(tmp_path).items():
        with pytest.raises(TraceError) as e:
            read_trace(path)
        msg = str(e.value)
        assert "\n" not in msg and path in msg, (name, msg)
    assert "version 99" in str(pytest.raises(TraceError, read_trace, hostile_files(tmp_path)["wrong_version"]).value)


def test_replay_on_a_hostile_file_exits_2_without_traceback(tmp_path):
    path = hostile_files(tmp_path)["random"]
    _assert_one_line_exit_2(run(os.path.join(BIN, "replay"), path, "--backend", "estimate",
                                "--out", str(tmp_path / "r")))


def test_unknown_model_name_exits_2_naming_the_closest(tmp_path):
    p = run(os.path.join(BIN, "trace-model"), "yolov8", "--out", str(tmp_path))
    _assert_one_line_exit_2(p)
    assert "yolov8s" in p.stderr


def test_malformed_registry_exits_2_naming_entry_and_field(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text('[tiny]\nsource = "timm"\nbuild = "resnet18"\ninputs = [[1, -3]]\n')
    p = run(os.path.join(BIN, "trace-model"), "tiny", "--registry", str(reg), "--out", str(tmp_path))
    _assert_one_line_exit_2(p)
    assert "'tiny'" in p.stderr and "'inputs'" in p.stderr


def test_a_model_failing_in_forward_does_not_stop_the_others(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text('[broken]\nsource = "torchvision"\nbuild = "resnet18"\ninputs = [[1, 5, 32, 32]]\n'
                   '[fine]\nsource = "torchvision"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\n')
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    p = run(os.path.join(BIN, "trace-model"), "--all", "--registry", str(reg), "--out", str(tmp_path / "t"), env=env)
    assert p.returncode == 1
    assert "broken" in p.stderr and "FAILED" in p.stderr
    assert os.path.exists(tmp_path / "t" / "fine.msgpack")
    assert not os.path.exists(tmp_path / "t" / "broken.msgpack")
    assert not [f for f in os.listdir(tmp_path / "t") if f.startswith(".tmp")]


def test_tracing_ultralytics_writes_nothing_into_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "YOLO_CONFIG_DIR"}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    p = run(os.path.join(BIN, "trace-model"), "yolov8s", "--out", str(tmp_path / "t"), env=env)
    assert p.returncode == 0, p.stderr
    assert list(home.iterdir()) == []


def test_list_shows_every_registry_model():
    p = run(os.path.join(BIN, "trace-model"), "--list")
    assert p.returncode == 0
    for name in ("yolov8s_world", "yolo12x_2176x3840", "swin_b_384", "convnext_tiny"):
        assert name in p.stdout


@pytest.mark.parametrize("shape, bad_part", [("1x3xab", "dimension 3 is 'ab', not a positive integer"),
                                             ("1xx3", "dimension 2 is empty"),
                                             ("1x3x", "dimension 3 is empty")])
def test_a_bad_input_shape_exits_2_naming_the_bad_part(tmp_path, shape, bad_part):
    p = run(os.path.join(BIN, "trace-model"), "resnet50", "--input", shape, "--out", str(tmp_path))
    _assert_one_line_exit_2(p)
    assert f"--input {shape!r}" in p.stderr and bad_part in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_help_shows_list_and_compare_as_modes_of_their_own():
    p = run(os.path.join(BIN, "trace-model"), "--help")
    assert p.returncode == 0, p.stderr
    modes = p.stdout.split("\nModes:\n")[1].split("\nOptions:\n")[0]
    options = p.stdout.split("\nOptions:\n")[1]
    for verb in ("trace-model NAME...", "trace-model --all", "trace-model --list", "trace-model --compare NAME"):
        assert verb in modes, p.stdout
    assert "--list" not in options and "--compare" not in options and "--input SHAPE" in options
