"""Headroom on the mock device: the size `replay headroom` finds replays in context on the mock device,
one step above does not, and `replay report` shows the maximum-supported-size table.

Runs in the torch environment (re-tracing needs torch); the in-context replays run in the ttnn
worker (.venv-ttnn), on the mock device when there is no board. resnet18 at 64 px with every tensor
in L1 runs out of L1 within a few steps, so the whole file takes about a minute.
"""
import json
import os

import pytest

from capture.registry import ModelEntry
from replay.studies.headroom import _size, headroom, probe_device, trace_at
from replay.studies.headroom_result import HeadroomResult, write_headroom
from replay.run.runner import RunSettings

STEP = 32
ENTRY = ModelEntry(name="resnet18_64", source="torchvision", build="resnet18", inputs=[[1, 3, 64, 64]])


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    folder = tmp_path_factory.mktemp("headroom")
    settings = RunSettings(backend="ttnn", device="n150", memory="l1", jobs=2, log_dir=str(folder))   # runs side by side
    result = headroom(ENTRY, "n150", "l1", STEP, True, settings, max_batch=32, folder=str(folder / "probes"),
                      max_device_probes=10, op_probes=1).to_json()
    return result, settings, folder


def test_found_resolution_and_batch_replay_on_the_mock_device_and_one_step_above_fails(found):
    result, settings, folder = found
    direct = str(folder / "direct")   # fresh re-traces, fresh in-context runs
    os.makedirs(direct)
    res, bat = result["resolution"], result["batch"]
    assert res["confirmed"] == "mock" and res["exact"] and bat["confirmed"] == "mock" and bat["exact"]
    k = res["height"] // STEP
    assert probe_device(ENTRY, 1, *_size(ENTRY, k, STEP), direct, settings).fits
    above = probe_device(ENTRY, 1, *_size(ENTRY, k + 1, STEP), direct, settings)
    assert not above.fits and above.first_failure == res["above"]["first_failure"]
    assert probe_device(ENTRY, bat["batch"], 64, 64, direct, settings).fits
    assert not probe_device(ENTRY, bat["batch"] + 1, 64, 64, direct, settings).fits
    # the estimate's bound is kept beside the device's answer, with why they differ
    for f in (res, bat):
        est = f["estimate"]
        same = (est["batch"], est["height"]) == (f["batch"], f["height"])
        assert same == (f["why"] == "")
    # each op failing one step above: the largest of its inputs that fits alone on the device
    assert all("fits_alone" in o for o in res["above"]["failing_ops"][:1])


def test_replay_report_shows_the_maximum_supported_size_table(found, tmp_path):
    from click.testing import CliRunner

    from replay.cli import main
    result, _, folder = found
    results_dir, reports = tmp_path / "results", tmp_path / "reports"
    write_headroom(HeadroomResult.from_json(result), str(results_dir))
    trace = trace_at(ENTRY, 1, 64, 64, str(folder / "probes"))
    run = CliRunner().invoke(main, ["run", trace.path, "--backend", "estimate", "--memory", "l1", "--out",
                                    str(results_dir), "--report", str(reports / "run"), "--no-remedies"])
    assert run.exit_code == 0, run.output
    assert "maximum supported size" in run.output
    [results_file] = [p for p in os.listdir(results_dir) if p.startswith("estimate_") and p.endswith(".jsonl")]
    out = CliRunner().invoke(main, ["report", str(results_dir / results_file), "--report", str(reports / "again")])
    assert out.exit_code == 0, out.output
    res = result["resolution"]
    assert f"resnet18_64 largest resolution: batch 1, {res['height']} x {res['width']} (confirmed on the mock" \
        in out.output
    md = (reports / "again" / "summary.md").read_text()
    assert "## Maximum supported size" in md and f"| resnet18_64 | resolution | 1 | {res['height']} |" in md
    assert 'id="headroom"' in (reports / "again" / "report.html").read_text()
    rows = json.loads((reports / "again" / "report.json").read_text())["headroom"]
    assert {r["axis"] for r in rows} == {"resolution", "batch"} and rows[0]["confirmed"] == "mock"
