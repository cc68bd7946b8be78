"""`replay --cluster ray` on a local Ray instance (this machine, ttnn's mock device): the same results as
the built-in pool, a killed actor loses nothing, a signature that kills its actor twice is a crash, a
hanging op times out, an interrupted journal resumes, and a bad address is one line and exit 2.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_ray_ttnn.py
"""
import dataclasses
import json
import importlib.util
import os

import pytest

if importlib.util.find_spec("ttnn") is None or importlib.util.find_spec("ray") is None:
    pytest.skip("needs the ttnn environment with optrace[ray] (.venv-ttnn)", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

from replay.cli import main  # noqa: E402
from replay.results import read_results  # noqa: E402
from replay.run.ray_cluster import connect, disconnect  # noqa: E402
from replay.run.ray_driver import RayDriver  # noqa: E402
from replay.run.runner import RunSettings, collect_cases, load_traces, replay  # noqa: E402
from replay.run.worker import TEST_OPS_ENV  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "vit_b_16.msgpack")        # 20 signatures, one unsupported


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    r = CliRunner().invoke(main, [TRACE, "--cluster", "ray://127.0.0.1:1", "--out", str(tmp_path), "--no-report"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "replay: cannot reach the Ray cluster at ray://127.0.0.1:1 (Connection refused); start it "
        "(`ray start --head`) or check --cluster / RAY_ADDRESS"]
    assert not any(p.endswith(".jsonl") for p in os.listdir(tmp_path))      # no journal was started


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance (2 CPUs) for the module, its actors allowed the test ops; shut down after."""
    os.environ[TEST_OPS_ENV] = "1"             # read by the actors, which inherit this environment
    c = connect("ray", num_cpus=2)
    yield c
    disconnect(c)
    os.environ.pop(TEST_OPS_ENV, None)


@pytest.fixture(scope="module")
def pool_results(tmp_path_factory):
    """The built-in pool's verdicts on the trace: what Ray must reproduce."""
    path = str(tmp_path_factory.mktemp("pool") / "pool.jsonl")
    _, results = replay(load_traces([TRACE]), RunSettings(backend="ttnn", jobs=2), path, progress=False)
    return {r.signature_id: _verdict(r) for r in results}


def _verdict(result) -> dict:
    """A result without what differs run to run (time) or says where it ran (the Ray node)."""
    d = result.to_json()
    d.pop("time_s", None)
    d.get("extra", {}).pop("ray_node", None)
    return d


def _settings(**kw) -> RunSettings:
    return RunSettings(backend="ttnn", jobs=2, cluster="ray", **kw)


def test_ray_replays_a_real_trace_with_the_same_results_as_the_pool_and_resumes(cluster, pool_results, tmp_path):
    path = str(tmp_path / "ray.jsonl")
    header, results = replay(load_traces([TRACE]), _settings(), path, progress=False)
    assert {r.signature_id: _verdict(r) for r in results} == pool_results
    assert header["mock"] is True and "mock device" in header["note"]
    assert header["cluster"]["engine"] == "ray" and header["cluster"]["actors"] == 2
    assert all(r.mock for r in results) and all(r.extra["ray_node"] for r in results)

    lines = open(path).read().splitlines(keepends=True)   # as if the driver had been killed after 8 results
    with open(path, "w") as f:
        f.writelines(lines[:9])
    header2, resumed = replay(load_traces([TRACE]), _settings(), path, resume=True, progress=False)
    _, journaled = read_results(path)
    assert len(journaled) == len(pool_results)                        # each signature once
    assert {r.signature_id: _verdict(r) for r in journaled} == pool_results
    assert header2["started_utc"] == header["started_utc"]


def test_an_actor_killed_mid_run_loses_nothing(cluster, pool_results):
    import ray
    cases = collect_cases(load_traces([TRACE]))
    driver = RayDriver(_settings())
    driver.start()
    got: dict = {}

    def on_result(case, result):
        assert case.sig.id not in got, "a signature reported twice"
        got[case.sig.id] = result
        if len(got) == 6:
            ray.kill(driver.slots[0].handle)       # an actor dies in the middle of its batch
    try:
        driver.run(cases, on_result)
    finally:
        driver.close()
    assert {k: _verdict(r) for k, r in got.items()} == pool_results


def test_a_signature_that_kills_its_actor_twice_is_a_crash_and_a_hang_a_timeout(cluster, pool_results):
    cases = collect_cases(load_traces([TRACE]))[:10]
    crash = dataclasses.replace(cases[3], sig=dataclasses.replace(cases[3].sig, id="c" * 16, op="optrace_test.crash"))
    hang = dataclasses.replace(cases[7], sig=dataclasses.replace(cases[7].sig, id="d" * 16, op="optrace_test.hang"))
    driver = RayDriver(_settings(timeout_s=5.0))
    driver.start()
    got: dict = {}
    try:
        driver.run([*cases, crash, hang], lambda case, result: got.setdefault(case.sig.id, []).append(result))
    finally:
        driver.close()
    assert all(len(v) == 1 for v in got.values()) and len(got) == len(cases) + 2
    assert got[crash.sig.id][0].status == "crash" and "killed its ttnn actor 2 times" in got[crash.sig.id][0].reason
    assert got[hang.sig.id][0].status == "timeout" and got[hang.sig.id][0].mock
    assert {c.sig.id: _verdict(got[c.sig.id][0]) for c in cases} == {c.sig.id: pool_results[c.sig.id] for c in cases}


def test_mode_model_on_the_cluster_runs_each_model_as_a_task_with_the_pools_outcome(cluster, tmp_path):
    from replay.context.run import run_context
    traces = load_traces([TRACE])
    on_pool = run_context(traces, RunSettings(backend="ttnn", jobs=2), str(tmp_path / "pool"), progress=False)
    on_ray = run_context(traces, _settings(), str(tmp_path / "ray"), progress=False)

    def calls(path):        # the per-call file without its times
        rows = [json.loads(line) for line in open(path)]
        for row in rows:
            row.pop("started_utc", None)
            row.get("context", {}).pop("time_s", None)
            row.pop("time_s", None)
        return rows
    assert calls(on_ray[0][1]) == calls(on_pool[0][1]) and len(calls(on_ray[0][1])) > 100
