"""A two-node Ray cluster on this machine: only the node that declares a board resource runs board work.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_ray_nodes_ttnn.py
"""
import importlib.util
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("ttnn") is None or importlib.util.find_spec("ray") is None:
    pytest.skip("needs the ttnn environment with optrace[ray] (.venv-ttnn)", allow_module_level=True)

from replay.run.ray_cluster import board_resource, local_environment, ray_dir  # noqa: E402
from replay.results import read_results  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack")


@pytest.fixture
def two_nodes():
    """A head node with 1 CPU and no board, and a worker node that declares one n150: (address, board node id)."""
    folder = ray_dir()
    os.makedirs(folder, exist_ok=True)
    local_environment(folder)
    import ray
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": folder, "include_dashboard": False})
    board_node = c.add_node(num_cpus=1, resources={board_resource("n150"): 1}, temp_dir=folder)
    try:
        yield c.address, board_node.node_id
    finally:
        ray.shutdown()
        c.shutdown()


def test_replay_joins_an_existing_cluster_by_address_and_board_work_runs_only_on_the_board_node(two_nodes, tmp_path):
    address, board_node = two_nodes          # HOST:PORT of the running cluster, as a user passes it
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run([sys.executable, "-m", "replay.cli", TRACE, "--backend", "ttnn", "--jobs", "2",
                          "--cluster", address, "--out", str(tmp_path), "--no-report", "--no-remedies"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    header, results = read_results(str(tmp_path / "ttnn_n150_bfloat16_dram.jsonl"))
    assert header["cluster"]["nodes"] == 2 and header["cluster"]["board_resource"] == "tt_n150"
    assert header["cluster"]["actors"] == 1                   # one actor per declared board
    assert len(results) == header["unique_signatures"]
    assert {r.extra["ray_node"] for r in results} == {board_node}
    assert all(r.mock for r in results)           # the node declares a board, but this machine has only the mock
