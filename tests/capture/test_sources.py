"""A user's own model, four ways in (docs/models.md): a python entry point, a Hugging Face model built
offline, a saved .pt2 program, an ad hoc source:build name; and the Python API. Each traces a real
(small) model; every bad input gets one line naming what to fix and exit status 2."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch", reason="capture tests run in the torch environment (.venv)")

from capture.capture import capture_model  # noqa: E402
from capture.export import export_model  # noqa: E402
from capture.registry import adhoc_entry, build_model, load_registry  # noqa: E402
from capture.schema import read_trace  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
TRACE_MODEL = os.path.join(BIN, "trace-model")
TINY_DINO = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "image_size": 56}

NET_PY = '''
import torch


class Net(torch.nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3)
        self.head = torch.nn.Linear(width, 4)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def build(width=8):
    return Net(width)


def build_with_inputs():
    return Net(), (torch.rand(1, 3, 32, 32),)


def returns_wrong():
    return 42
'''

REGISTRY = '''
[my_net]
source = "python"
build = "nets.mine:build"
path = "src"
kwargs = {width = 6}
inputs = [[1, 3, 16, 16]]

[my_net_own_inputs]
source = "python"
build = "nets.mine:build_with_inputs"
path = "src"

[no_such_module]
source = "python"
build = "nets.missing:build"
path = "src"
inputs = [[1, 3, 16, 16]]

[no_such_callable]
source = "python"
build = "nets.mine:buld"
path = "src"
inputs = [[1, 3, 16, 16]]

[wrong_return]
source = "python"
build = "nets.mine:returns_wrong"
path = "src"
inputs = [[1, 3, 16, 16]]

[no_inputs]
source = "python"
build = "nets.mine:build"
path = "src"

[not_a_target]
source = "python"
build = "nets/mine.py"
path = "src"
inputs = [[1, 3, 16, 16]]

[dino]
source = "transformers"
build = "Dinov2Model"
config = "Dinov2Config"
kwargs = {hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 2, intermediate_size = 64, image_size = 56}
inputs = [{name = "pixel_values", shape = [1, 3, 56, 56]}]

[bert]
source = "transformers"
build = "BertModel"
kwargs = {hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, intermediate_size = 64, vocab_size = 100}
inputs = [{name = "input_ids", shape = [1, 8], dtype = "int64", low = 0, high = 100},
          {name = "attention_mask", shape = [1, 8], dtype = "int64", low = 1, high = 2}]

[bad_config_class]
source = "transformers"
build = "Dinov2Model"
config = "Dinov2Konfig"
'''


def run(*argv, cwd=REPO, env=None):
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def one_line_exit_2(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A user's project: src/nets/mine.py and my_models.toml beside it (path is relative to the registry)."""
    root = tmp_path_factory.mktemp("user")
    (root / "src" / "nets").mkdir(parents=True)
    (root / "src" / "nets" / "__init__.py").write_text("")
    (root / "src" / "nets" / "mine.py").write_text(NET_PY)
    (root / "my_models.toml").write_text(REGISTRY)
    return root


# ---------------------------------------------------------------------------------------------
# python entry points

def test_a_python_entry_point_in_a_registry_traces_with_its_kwargs(user_dir, tmp_path):
    p = run(TRACE_MODEL, "--registry", str(user_dir / "my_models.toml"), "my_net", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    t = read_trace(str(tmp_path / "my_net.msgpack"))
    conv = next(c for c in t.calls if t.op_name(c) == "aten.convolution.default")
    assert t.module_path(conv) == "conv" and t.module_class(conv) == "Conv2d"
    assert t.tensors[t.named_args(conv)["weight"][1]].shape == [6, 3, 3, 3]        # kwargs width=6
    assert t.header["model"]["build"] == "nets.mine:build" and t.header["model"]["path"] == "src"
    assert t.header["input_shapes"] == [[1, 3, 16, 16]]


def test_a_python_callable_returning_its_own_inputs_needs_no_inputs_field(user_dir):
    entry = load_registry(str(user_dir / "my_models.toml"))["my_net_own_inputs"]
    t = capture_model(entry)
    assert t.header["input_shapes"] == [[1, 3, 32, 32]] and t.header["model"]["inputs"] == [[1, 3, 32, 32]]
    assert export_model(entry).header["via"] == "export"


@pytest.mark.parametrize("name, field, says", [
    ("no_such_module", "build", "cannot import 'nets.missing' with 'src' on sys.path"),
    ("no_such_callable", "build", "module 'nets.mine' has no 'buld'"),
    ("wrong_return", "build", "must return an nn.Module, or (nn.Module, example_inputs); it returned int"),
    ("no_inputs", "inputs", "returned only a module; give inputs"),
    ("not_a_target", "build", 'must be "package.module:callable"'),
    ("bad_config_class", "config", "no config class 'Dinov2Konfig'"),
])
def test_a_python_or_transformers_entry_that_cannot_be_built_exits_2_naming_entry_and_field(
        user_dir, tmp_path, name, field, says):
    p = run(TRACE_MODEL, "--registry", str(user_dir / "my_models.toml"), name, "--out", str(tmp_path / "t"))
    line = one_line_exit_2(p)
    assert f"model {name!r}, field {field!r}" in line and says in line, line
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("body, field, says", [
    ('source = "timm"\nbuild = "resnet18"\npath = "src"\ninputs = [[1, 3, 32, 32]]\n', "path",
     "only for python entries"),
    ('source = "python"\nbuild = "m:f"\nconfig = "X"\ninputs = [[1, 3, 32, 32]]\n', "config",
     "only for transformers entries"),
    ('source = "transformers"\nbuild = "Dinov2Model"\ninputs = [{shape = [1, 3, 56, 56], dtype = "float64"}]\n',
     "inputs", "'dtype' 'float64' is not one of"),
    ('source = "transformers"\nbuild = "Dinov2Model"\ninputs = [{name = "pixel_values"}]\n', "inputs",
     "'shape' must be a list of positive integers"),
    ('source = "transformers"\nbuild = "Dinov2Model"\ninputs = [{shape = [1, 4], sape = 1}]\n', "inputs",
     "unknown key 'sape'"),
    ('source = "timm"\nbuild = "resnet18"\n', "inputs", "missing"),
])
def test_a_malformed_new_field_exits_2_naming_entry_and_field(tmp_path, body, field, says):
    reg = tmp_path / "models.toml"
    reg.write_text("[tiny]\n" + body)
    line = one_line_exit_2(run(TRACE_MODEL, "tiny", "--registry", str(reg), "--out", str(tmp_path / "t")))
    assert "'tiny'" in line and f"field {field!r}" in line and says in line, line


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers, offline

NO_NETWORK = '''
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access attempted during a test that must run offline")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


def test_a_transformers_model_builds_and_traces_with_no_network_and_nothing_in_home(user_dir, tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(guard))
    p = run(TRACE_MODEL, "--registry", str(user_dir / "my_models.toml"), "dino", "--out", str(tmp_path / "t"), env=env)
    assert p.returncode == 0, p.stderr
    assert list(home.iterdir()) == []
    t = read_trace(str(tmp_path / "t" / "dino.msgpack"))
    assert [(m.kind, m.name, m.shape) for m in t.tensors if m.kind == "input"] == \
        [("input", "pixel_values", [1, 3, 56, 56])]
    assert t.header["versions"]["transformers"] and t.header["model"]["config"] == "Dinov2Config"
    assert any(t.op_name(c) == "aten.convolution.default" for c in t.calls)   # the patch embedding
    # the guard works: the same interpreter refuses a connection
    probe = run(sys.executable, "-c", "import socket; socket.create_connection(('example.com', 80))", env=env)
    assert probe.returncode != 0 and "must run offline" in probe.stderr


def test_named_int_inputs_reach_a_text_model_as_keywords_in_range(user_dir):
    entry = load_registry(str(user_dir / "my_models.toml"))["bert"]
    t = capture_model(entry)
    inputs = {m.name: m for m in t.tensors if m.kind == "input"}
    assert set(inputs) == {"input_ids", "attention_mask"} and inputs["input_ids"].dtype == "int64"
    emb = next(c for c in t.calls if t.op_name(c) == "aten.embedding.default")
    assert t.tensors[t.named_args(emb)["indices"][1]].name == "input_ids"
    x = export_model(entry)
    assert {m.name for m in x.tensors if m.kind == "input"} == {"input_ids", "attention_mask"}


def test_a_transformers_model_exports_with_its_keyword_input_named():
    entry = adhoc_entry("transformers:Dinov2Model", kwargs=TINY_DINO)
    t = export_model(entry)
    assert [(m.name, m.shape) for m in t.tensors if m.kind == "input"] == [("pixel_values", [1, 3, 56, 56])]
    assert t.header["model"]["inputs"] == [{"name": "pixel_values", "shape": [1, 3, 56, 56]}]


# ---------------------------------------------------------------------------------------------
# ad hoc names

def test_an_ad_hoc_timm_name_traces_with_no_entry(tmp_path):
    p = run(TRACE_MODEL, "timm:resnet18", "--input", "1x3x64x64", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    t = read_trace(str(tmp_path / "timm_resnet18.msgpack"))
    assert t.header["model"]["source"] == "timm" and t.header["input_shapes"] == [[1, 3, 64, 64]]
    assert t.model_name == "timm_resnet18"


def test_an_ad_hoc_transformers_name_takes_config_overrides_and_a_trace_name(tmp_path):
    config = [a for k, v in TINY_DINO.items() for a in ("--config", f"{k}={v}")]
    p = run(TRACE_MODEL, "transformers:Dinov2Model", *config, "--name", "tiny_dino", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    t = read_trace(str(tmp_path / "tiny_dino.msgpack"))
    assert t.header["model"]["kwargs"] == TINY_DINO and t.header["input_shapes"] == [[1, 3, 56, 56]]


def test_ad_hoc_defaults_come_from_the_source():
    from capture.registry import input_specs_for
    assert input_specs_for(adhoc_entry("timm:convnext_small"))[0].shape == [1, 3, 224, 224]
    assert input_specs_for(adhoc_entry("torchvision:fasterrcnn_resnet50_fpn"))[0].shape == [1, 3, 224, 224]
    assert type(build_model(adhoc_entry("ultralytics:yolo11n-seg.yaml"))).__name__ == "SegmentationModel"


@pytest.mark.parametrize("argv, says", [
    (["foo:bar"], "'foo:bar' is not an ad hoc model: write source:build with source one of"),
    (["timm:resnet18x"], "field 'build': timm has no model 'resnet18x'; e.g. resnet18"),
    (["torchvision:resnet_fifty"], "torchvision.models has no builder 'resnet_fifty'"),
    (["transformers:Dinov3Modle"], "has no model class 'Dinov3Modle'"),
    (["transformers:Dinov2Model", "--config", "hidden_size"], "--config 'hidden_size' is not KEY=VALUE"),
    (["transformers:Dinov2Model", "--config", "hidden_size=-3"], "field 'kwargs'"),
    (["resnet50", "--config", "a=1"], "--config is for ad hoc SOURCE:BUILD models"),
    (["resnet50", "--name", "x"], "--name is for --exported or a single ad hoc"),
])
def test_a_bad_ad_hoc_name_or_setting_exits_2_in_one_line(tmp_path, argv, says):
    line = one_line_exit_2(run(TRACE_MODEL, *argv, "--out", str(tmp_path / "t")))
    assert says in line, line
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------------
# a saved program (.pt2)

@pytest.fixture(scope="module")
def saved_program(user_dir, tmp_path_factory):
    """A .pt2 the test exports itself, as a user would in their own environment."""
    sys.path.insert(0, str(user_dir / "src"))
    try:
        from nets.mine import Net
    finally:
        sys.path.remove(str(user_dir / "src"))
    path = tmp_path_factory.mktemp("pt2") / "my_saved.pt2"
    torch.manual_seed(0)
    torch.export.save(torch.export.export(Net().eval(), (torch.rand(1, 3, 20, 20),)), str(path))
    return path


def test_a_saved_program_traces_through_both_routes(saved_program, tmp_path):
    p = run(TRACE_MODEL, "--exported", str(saved_program), "--name", "mine", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    graph, eager = read_trace(str(tmp_path / "export" / "mine.msgpack")), read_trace(str(tmp_path / "mine.msgpack"))
    assert graph.header["via"] == "export" and eager.header["via"] == "eager"
    for t in (graph, eager):
        conv = next(c for c in t.calls if t.op_name(c) == "aten.convolution.default")
        assert t.module_path(conv) == "conv", t.op_name(conv)
        assert t.tensors[t.named_args(conv)["input"][1]].shape == [1, 3, 20, 20]
        assert t.tensors[t.named_args(conv)["weight"][1]].name == "conv.weight"
        assert t.header["model"]["source"] == "exported"


def test_a_saved_program_takes_one_route_and_input_shapes_its_export_allows(saved_program, tmp_path):
    p = run(TRACE_MODEL, "--exported", str(saved_program), "--via", "eager", "--input", "2x3x20x20",
            "--out", str(tmp_path / "bad"))
    assert p.returncode == 1 and "FAILED" in p.stderr and "dynamic_shapes" in p.stderr, p.stderr  # static export
    p = run(TRACE_MODEL, "--exported", str(saved_program), "--via", "eager", "--out", str(tmp_path / "t"))
    assert p.returncode == 0, p.stderr
    assert os.listdir(tmp_path / "t") == ["my_saved.msgpack"]
    assert read_trace(str(tmp_path / "t" / "my_saved.msgpack")).header["input_shapes"] == [[1, 3, 20, 20]]


@pytest.mark.parametrize("content, says", [(None, "no such file"), (b"not a zip", "not a program saved by "
                                                                                 "torch.export.save")])
def test_a_missing_or_bad_pt2_exits_2_in_one_line(tmp_path, content, says):
    path = tmp_path / "model.pt2"
    if content is not None:
        path.write_bytes(content)
    line = one_line_exit_2(run(TRACE_MODEL, "--exported", str(path), "--out", str(tmp_path / "t")))
    assert str(path) in line and says in line, line


def test_exported_takes_no_model_names(saved_program, tmp_path):
    line = one_line_exit_2(run(TRACE_MODEL, "resnet50", "--exported", str(saved_program)))
    assert "--exported takes one .pt2 file and no model names" in line


# ---------------------------------------------------------------------------------------------
# the Python API, as the README shows it

def readme_example() -> str:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text.split("### Your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_and_writes_a_trace(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 5
    p = run(sys.executable, "-c", f"import sys; sys.path.insert(0, {REPO!r})\n" + code, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (path,) = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".msgpack")]
    t = read_trace(path)
    assert t.model_name == "my_net" and t.header["model"]["source"] == "module"
    assert any(t.op_name(c) == "aten.convolution.default" for c in t.calls)


def test_trace_module_takes_keyword_inputs_and_the_export_route():
    from capture import trace_module

    class Pair(torch.nn.Module):
        def forward(self, x, *, scale):
            return x * scale

    t = trace_module(Pair(), {"x": torch.rand(2, 3), "scale": torch.rand(2, 3)}, name="pair")
    assert sorted(m.name for m in t.tensors if m.kind == "input") == ["scale", "x"]
    g = trace_module(Pair(), ((torch.rand(2, 3),), {"scale": torch.rand(2, 3)}), name="pair", via="export")
    assert sorted(m.name for m in g.tensors if m.kind == "input") == ["0", "scale"]


def test_help_lists_the_new_ways_in_as_modes():
    p = run(TRACE_MODEL, "--help")
    modes = p.stdout.split("\nModes:\n")[1].split("\nOptions:\n")[0]
    assert "trace-model SOURCE:BUILD..." in modes and "trace-model --exported FILE.pt2" in modes
    assert textwrap.dedent(p.stdout).count("\n") < 70
