"""A two-node Ray cluster on this machine: only the node that declares a board resource runs board work.

Runs with the ttnn environment: .venv-ttnn/bin/python -m pytest tests/replay/test_ray_nodes_ttnn.py
"""
import importlib.util
import os

import pytest

if importlib.util.find_spec("ttnn") is None or importlib.util.find_spec("ray") is None:
    pytest.skip("needs the ttnn environment with optrace[ray] (.venv-ttnn)", allow_module_level=True)

from replay.run.ray_cluster import board_resource, local_environment, ray_dir  # noqa: E402
from replay.run.runner import RunSettings, load_traces, replay  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE = os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack")


@pytest.fixture
def two_nodes():
    """A head node with 1 CPU and no board, and a worker node that declares one n150; shut down after."""
    folder = ray_dir()
    os.makedirs(folder, exist_ok=True)
    local_environment(folder)
    import ray
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": folder, "include_dashboard": False})
    board_node = c.add_node(num_cpus=1, resources={board_resource("n150"): 1}, temp_dir=folder)
    ray.init(address=c.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield board_node.node_id
    finally:
        ray.shutdown()
        c.shutdown()


def test_board_bound_work_runs_only_on_the_node_that_declares_the_board(two_nodes, tmp_path):
    settings = RunSettings(backend="ttnn", jobs=2, cluster="ray")
    header, results = replay(load_traces([TRACE]), settings, str(tmp_path / "r.jsonl"), progress=False)
    assert header["cluster"]["nodes"] == 2 and header["cluster"]["board_resource"] == "tt_n150"
    assert header["cluster"]["actors"] == 1                   # one actor per declared board
    assert len(results) == header["unique_signatures"]
    assert {r.extra["ray_node"] for r in results} == {two_nodes}
    assert all(r.mock for r in results)           # the node declares a board, but this machine has only the mock
