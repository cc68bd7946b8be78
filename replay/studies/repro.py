"""Repro on demand: a standalone pytest file that reproduces one replay result with ttnn alone.

Imports neither torch nor ttnn (the generated file imports ttnn). The file holds the inputs (shapes,
dtypes, layouts, memory), the ttnn calls replay made (replay.mapping's plan for the signature), the
expected status, and a comment naming the models, layers and call counts it comes from. It runs as
is on a machine with a Tenstorrent board; on ttnn's mock device it needs the environment optrace's
replay/backends/device.py sets (its docstring gives the exact command for the machine it was made on).
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
from collections import Counter

from capture.schema import tensor_payloads
from replay.mapping import DEVICE, MEMORY, TT, Case, PortSettings, Ref, plan_replay
from replay.results import BLOCKING, ReplayResult, read_results
from replay.run.pool import REPO_ROOT, find_ttnn_python
from replay.run.runner import collect_cases, load_traces
from replay.shapes import format_shapes

MOCK_ENV_KEYS = ("TT_METAL_MOCK_CLUSTER_DESC_PATH", "TT_METAL_RUNTIME_ROOT", "TT_METAL_CACHE")


class ReproError(ValueError):
    """No repro can be written; one line saying why."""


def _py(v) -> str:
    """A mapping argument as Python source in the generated file."""
    if isinstance(v, Ref):
        return _var(str(v))
    if v is DEVICE:
        return "device"
    if v is MEMORY:
        return "memory_config"
    if isinstance(v, TT):
        return f"ttnn.{v}"
    if isinstance(v, list):
        return "[" + ", ".join(_py(x) for x in v) + "]"
    if isinstance(v, tuple):
        return "(" + ", ".join(_py(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def _var(name: str) -> str:
    """Call results keep their names (t1, t2, out); inputs get an in_ prefix (in_self, in_tensors_0)."""
    is_result = name == "out" or (name.startswith("t") and name[1:].isdigit())
    return name if is_result else "in_" + name


def provenance_lines(traces: list, sig_id: str) -> list[str]:
    """'model: N calls in a.b (k), c.d (m)' for every trace holding the signature."""
    out = []
    for t in traces:
        hits = [c for c in t.calls if t.signatures[c.signature].id == sig_id]
        if hits:
            paths = Counter(t.module_path(c) or "(model)" for c in hits)
            where = ", ".join(f"{p} ({n})" for p, n in paths.most_common(6))
            more = f", and {len(paths) - 6} more layers" if len(paths) > 6 else ""
            out.append(f"{t.header['model']['name']}: {len(hits)} calls, first call {hits[0].index}; in {where}{more}")
    return out


def mock_environment(device: str) -> dict[str, str]:
    """The env vars optrace's device.py sets for the mock `device` on this machine ({} if unknown)."""
    try:
        python = find_ttnn_python(None)
        code = ("import json; from replay.backends.device import prepare_environment; "
                f"print(json.dumps(prepare_environment({device!r})))")
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                             env={**os.environ, "PYTHONPATH": REPO_ROOT})
        env = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001 - the docstring then names the variables without values
        return {}
    return {k: env[k] for k in MOCK_ENV_KEYS if env.get(k)}


_TEMPLATE = '''"""Reproduces optrace signature {sig_id}: {op} {shapes} -> {expected} on {device} ({where}).

Made by `replay repro {sig_id}` from {results}; needs only ttnn ({ttnn}), not optrace.
It comes from:
{provenance}

On a Tenstorrent board:
    python -m pytest -q {filename}
On ttnn's mock device (no board; allocator and op host code are real, there is no arithmetic), with
the files optrace's replay/backends/device.py writes (run any optrace ttnn replay once to create them):
    {mock_command}
"""
import re

import pytest
import ttnn

EXPECTED = {expected!r}
# replay placed float tensors as {dtype}, memory {memory}
# ttnn calls: {call_string}


def status_of(message: str) -> str:
    """ttnn's error text -> optrace's status (as replay/results.py classifies it)."""
    m = " ".join(message.split())
    oom = re.search(r"Out of Memory: Not enough space (?:after considering dependencies )?to allocate \\d+ B "
                    r"(DRAM|L1_SMALL|L1|TRACE) buffer", m)
    if oom:
        return {{"DRAM": "oom_dram", "L1": "oom_l1", "L1_SMALL": "oom_l1_small"}}.get(oom.group(1), "oom_dram")
    if re.search(r"(circular buffers|dataflow buffers).*(beyond max L1 size|clash with L1 buffers)", m, re.I):
        return "cb_overflow"
    return "ttnn_error"


@pytest.fixture
def device():
    dev = ttnn.open_device(device_id=0, l1_small_size=32768)
    yield dev
    ttnn.close_device(dev)


def test_{test_name}(device):
    memory_config = {memory_config}
    status, message = "pass", ""
    try:
{body}
    except RuntimeError as e:
        status, message = status_of(str(e)), " ".join(str(e).split())[:600]
    assert status == EXPECTED, message
'''


def render_repro(result: ReplayResult, case: Case, settings: PortSettings, provenance: list[str], device: str,
                 mock_env: dict[str, str], results_name: str, ttnn_version: str, filename: str,
                 expected: str | None = None) -> str:
    """The generated test file's text."""
    plan = plan_replay(case, settings)
    if plan.status != "mapped":
        raise ReproError(f"signature {case.id} ({case.op}) is {plan.status}: {plan.reason}; there is no ttnn call "
                         "to reproduce")
    body = []
    for spec in plan.inputs:
        dtype, layout = f"ttnn.{spec.dtype}", "ttnn.TILE_LAYOUT" if spec.layout == "TILE" else "ttnn.ROW_MAJOR_LAYOUT"
        if spec.memory == "host":
            body.append(f"{_var(spec.name)} = ttnn.zeros({list(spec.shape)}, dtype={dtype}, layout={layout})")
        else:
            buf = "ttnn.BufferType.L1" if spec.memory == "L1" else "ttnn.BufferType.DRAM"
            body.append(f"{_var(spec.name)} = ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape("
                        f"{list(spec.shape)}), {dtype}, {layout}, buffer_type={buf}), device)")
    for call in plan.calls:
        args = [_py(a) for a in call.args] + [f"{k}={_py(v)}" for k, v in call.kwargs.items()]
        pick = f"[{call.pick}]" if call.pick is not None else ""
        body.append(f"{_var(call.out)} = ttnn.{call.fn}({', '.join(args)}){pick}")
    shapes = format_shapes([t[0] for t in tensor_payloads(case.args)])
    mock_command = (" ".join(f"{k}={v}" for k, v in mock_env.items()) + f" python -m pytest -q {filename}"
                    if mock_env else "TT_METAL_MOCK_CLUSTER_DESC_PATH=<cluster.yaml> TT_METAL_RUNTIME_ROOT=<root with "
                    f"the SFPI stand-in> TT_METAL_CACHE=<tmp> python -m pytest -q {filename}")
    return _TEMPLATE.format(
        sig_id=case.id, op=case.op, shapes=shapes, expected=expected or result.status, device=device,
        where="mock device" if result.mock else result.backend, results=results_name, ttnn=ttnn_version or "ttnn",
        provenance="\n".join("    " + p for p in provenance) or "    (no trace given)", filename=filename,
        mock_command=mock_command, dtype=settings.dtype, memory=settings.memory,
        call_string=plan.call_string()[:300].replace("\n", " "), test_name=f"{case.op.split('.')[1]}_{case.id}",
        memory_config="ttnn.L1_MEMORY_CONFIG" if settings.buffer == "L1" else "ttnn.DRAM_MEMORY_CONFIG",
        body="\n".join("        " + line for line in body))


def write_repros(results_path: str, sig_ids: list[str] | None, out: str, traces: list | None = None) -> list[str]:
    """Write repros for the given signatures (None: every failing one) of a results file; returns
    the paths. `out` is a file (one signature) or a folder."""
    header, results = read_results(results_path)
    by_id = {r.signature_id: r for r in results}
    traces = traces if traces is not None else load_traces([t["path"] for t in header.get("traces", [])])
    cases = {c.sig.id: c for c in collect_cases(traces)}
    if sig_ids is None:
        sig_ids = [r.signature_id for r in results if _expected(r) in BLOCKING and r.ttnn_call]
    settings = PortSettings(dtype=header.get("dtype", "bfloat16"), memory=header.get("memory", "dram"))
    device = str(header.get("device", "n150"))
    env = mock_environment(device) if header.get("mock") else {}
    paths = []
    for sid in sig_ids:
        r, c = by_id.get(sid), cases.get(sid)
        if r is None or c is None:
            raise ReproError(f"signature {sid} is not in {results_path} and its traces")
        path = out if out.endswith(".py") and len(sig_ids) == 1 else os.path.join(out, f"test_repro_{sid}.py")
        case = Case.from_wire(c.sig.to_full_wire(c.arg_names))
        text = render_repro(r, case, settings, provenance_lines(traces, sid), device, env,
                            os.path.basename(results_path), str(header.get("ttnn") or ""), os.path.basename(path),
                            expected=_expected(r))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


def _expected(r: ReplayResult) -> str:
    """What a repro of this result asserts: alone, a --mode model result's isolated verdict."""
    iso = r.extra.get("isolated") if isinstance(r.extra, dict) else None
    return iso["status"] if isinstance(iso, dict) and iso.get("status") else r.status


def find_results(sig_id: str, folder: str = "results") -> str:
    """The first results journal in folder that holds sig_id."""
    for p in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        if p.endswith(".calls.jsonl"):
            continue
        with open(p) as f:
            if f'"signature_id": "{sig_id}"' in f.read():
                return p
    raise ReproError(f"no results file in {folder}/ holds signature {sig_id}; pass --results FILE")
