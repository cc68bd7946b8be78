"""The zoo: registry checks of task/family/skip, `trace-model --list` and `--all` (skip, keep current,
--force), and that models.toml's zoo is complete: every model traced, the test sample covering
every source and task."""
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from capture.registry import TASKS, load_registry
from capture.schema import read_trace
from sample import NOT_SAMPLED, SAMPLE, TRACES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE_MODEL = os.path.join(os.path.dirname(sys.executable), "trace-model")
TINY = '[tiny]\nsource = "torchvision"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\ntask = "classification"\n' \
       'family = "resnet"\n'
SKIPPED = '[later]\nsource = "timm"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\ntask = "classification"\n' \
          'family = "resnet"\nskip = "needs a CUDA kernel"\n'


def run(*argv, cwd=REPO):
    return subprocess.run([TRACE_MODEL, *argv], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("field_line, words", [
    ('task = "clasification"', ["'task'", "did you mean 'classification'", "detection"]),
    ('family = "ResNet 50"', ["'family'", "lower-case"]),
    ('family = ""', ["'family'", "is empty"]),
    ('skip = ""', ["'skip'", "reason"]),
    ('skip = 3', ["'skip'", "reason"]),
])
def test_a_bad_task_family_or_skip_is_one_line_naming_the_field_exit_2(tmp_path, field_line, words):
    reg = tmp_path / "models.toml"
    reg.write_text('[m]\nsource = "timm"\nbuild = "resnet18"\ninputs = [[1, 3, 32, 32]]\n' + field_line + "\n")
    p = run("--list", "--registry", str(reg))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "'m'" in p.stderr and all(w in p.stderr for w in words), p.stderr


def test_list_groups_by_source_and_task_and_shows_why_a_model_is_skipped(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text(TINY + SKIPPED)
    p = run("--list", "--registry", str(reg))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "2 models (1 traceable, 1 skipped) in 2 source/task groups"
    assert "torchvision / classification (1)" in lines and "timm / classification (1)" in lines
    later = next(line for line in lines if "later" in line)
    assert "SKIPPED: needs a CUDA kernel" in later and "resnet" in later


def test_all_skips_marked_models_keeps_current_traces_and_force_retraces(tmp_path):
    reg, out = tmp_path / "models.toml", tmp_path / "t"
    reg.write_text(TINY + SKIPPED)
    first = run("--all", "--registry", str(reg), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "[2/2] later" in first.stderr and "skipped: needs a CUDA kernel" in first.stderr
    assert "ETA" in first.stderr and "elapsed" in first.stderr
    assert sorted(os.listdir(out)) == ["tiny.msgpack"]
    header = read_trace(str(out / "tiny.msgpack")).header
    assert (header["model"]["task"], header["model"]["family"]) == ("classification", "resnet")
    stamp = header["created_utc"]
    again = run("--all", "--registry", str(reg), "--out", str(out))
    assert again.returncode == 0 and "is current, kept (--force re-traces it)" in again.stderr, again.stderr
    assert read_trace(str(out / "tiny.msgpack")).header["created_utc"] == stamp
    reg.write_text(TINY.replace('family = "resnet"', 'family = "resnet"\nnote = "changed"') + SKIPPED)
    changed = run("--all", "--registry", str(reg), "--out", str(out))
    assert changed.returncode == 0 and "tracing via eager" in changed.stderr, changed.stderr
    forced = run("--all", "--force", "--registry", str(reg), "--out", str(out))
    assert forced.returncode == 0 and "tracing via eager" in forced.stderr and "kept" not in forced.stderr
    assert read_trace(str(out / "tiny.msgpack")).header["model"]["note"] == "changed"


KILLER = 'import os, signal, torch\n\ndef build():\n    os.kill(os.getpid(), signal.SIGKILL)\n'


def test_all_in_two_workers_a_model_whose_worker_dies_fails_alone_and_the_others_are_written(tmp_path):
    (tmp_path / "killer.py").write_text(KILLER)
    reg, out = tmp_path / "models.toml", tmp_path / "t"
    reg.write_text(TINY + TINY.replace("[tiny]", "[tiny2]") +
                   '[dies]\nsource = "python"\nbuild = "killer:build"\npath = "."\ninputs = [[1, 3, 8, 8]]\n')
    p = run("--all", "--jobs", "2", "--registry", str(reg), "--out", str(out))
    assert p.returncode == 1, p.stderr
    assert sorted(os.listdir(out)) == ["tiny.msgpack", "tiny2.msgpack"]
    dies = [line for line in p.stderr.splitlines() if line.startswith("[3/3] dies") and "FAILED" in line]
    assert len(dies) == 1 and "worker process died" in dies[0], p.stderr
    assert "1 model(s) failed: dies" in p.stderr


def test_the_eta_shares_the_models_left_among_the_workers():
    from capture.batch import Progress
    progress = Progress(5, workers=2)
    for _ in range(3):
        progress.done(10.0)
    assert progress.tag(4, "m").endswith("ETA 0m10s)")       # 2 left x 10 s / 2 workers
    progress.done(10.0)
    assert progress.tag(5, "m").endswith("ETA 0m10s)")       # the last one: 1 worker busy


def test_force_without_all_is_refused(tmp_path):
    p = run("resnet50", "--force", "--out", str(tmp_path))
    assert p.returncode == 2 and "--force is for --all" in p.stderr and os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# The committed zoo

REG = load_registry()
ZOO = [e for e in REG.values() if not e.skip]


def test_the_zoo_has_at_least_150_models_each_with_a_task_and_a_family():
    assert len(ZOO) >= 150
    missing = [e.name for e in REG.values() if not (e.task and e.family)]
    assert not missing, f"entries without task/family: {missing[:10]}"
    assert {e.source for e in ZOO} >= {"torchvision", "timm", "ultralytics", "transformers"}


def test_every_model_not_skipped_has_a_committed_trace_and_no_trace_is_an_orphan():
    committed = {f[:-len(".msgpack")] for f in os.listdir(TRACES) if f.endswith(".msgpack")}
    assert not [e.name for e in ZOO if e.name not in committed], "run trace-model --all"
    assert not sorted(committed - set(REG)), "traces/ holds traces of models the registry does not have"


def test_the_sample_covers_every_source_and_task_of_the_zoo_and_records_them():
    sample = [REG[n] for n in SAMPLE]
    assert {e.source for e in ZOO} == {e.source for e in sample}
    assert {e.task for e in ZOO} - set(NOT_SAMPLED) == {e.task for e in sample}
    assert {e.task for e in ZOO} <= set(TASKS)
    for e in sample:
        model = read_trace(os.path.join(TRACES, f"{e.name}.msgpack")).header["model"]
        assert (model.get("task"), model.get("family")) == (e.task, e.family), e.name


def test_a_trace_is_stale_once_its_entry_grad_mode_or_tensor_mode_changes(tmp_path):
    pytest.importorskip("torch")
    from capture.batch import stale_reason
    from capture.capture import capture_model
    from capture.schema import write_trace
    entry = REG["resnet50"]
    path = os.path.join(TRACES, "resnet50.msgpack")
    assert stale_reason(entry, path, grad_mode="no_grad", fake=False) == ""
    assert stale_reason(replace(entry, note="other"), path, grad_mode="no_grad", fake=False) == \
        "the registry entry changed"
    assert "grad mode" in stale_reason(entry, path, grad_mode="inference_mode", fake=False)
    assert "tensor mode" in stale_reason(entry, path, grad_mode="no_grad", fake=True)
    assert stale_reason(entry, str(tmp_path / "none.msgpack"), grad_mode="no_grad", fake=False) == "no trace yet"
    tiny = replace(entry, inputs=[[1, 3, 32, 32]])
    write_trace(capture_model(tiny), str(tmp_path / "t.msgpack"))
    assert stale_reason(tiny, str(tmp_path / "t.msgpack"), grad_mode="no_grad", fake=False) == ""
