"""Joining or starting a Ray cluster for replay, without writing into $HOME.

``--cluster ray`` starts a local Ray instance on this machine (or joins ``RAY_ADDRESS`` when it is
set); ``--cluster ray://HOST:PORT`` joins a cluster through Ray Client; ``--cluster HOST:PORT`` or
``auto`` joins as a driver on one of the cluster's nodes. A local instance keeps its session files
and logs under ``<repo>/.cache/ray`` (or ``$OPTRACE_RAY_DIR/ray``), its authentication token there too,
usage stats off and no dashboard. Ray is imported only inside these functions: it lives in the ttnn
environment (``optrace[ray]``), never in the capture one.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field

from capture.atomic import write_atomic
from replay.run.pool import REPO_ROOT, PoolError, find_ttnn_python

BOARD_RESOURCE_PREFIX = "tt_"        # a node with an n150 declares {"tt_n150": <boards>} when it joins
LOCAL = "ray"
CONNECT_TIMEOUT_S = 5.0


class ClusterError(PoolError):
    """Ray is missing or the cluster cannot be reached; one line saying what to do."""


@dataclass(kw_only=True)
class Cluster:
    """A connected Ray cluster: where it is, whether this process started it, what it offers."""
    address: str                      # "local", "existing" (ray.init done by the caller) or what was joined
    connected_here: bool              # this process called ray.init (and so shuts it down / disconnects)
    resources: dict = field(default_factory=dict)
    nodes: int = 1


def board_resource(device: str) -> str:
    """The custom Ray resource a node with boards of this kind declares, e.g. ``tt_n150``."""
    return BOARD_RESOURCE_PREFIX + device


def ray_dir() -> str:
    """The project-owned folder of a local Ray instance's session files, logs and token:
    ``<repo>/.cache/ray``, or ``$OPTRACE_RAY_DIR/ray``."""
    return os.path.join(os.environ.get("OPTRACE_RAY_DIR") or os.path.join(REPO_ROOT, ".cache"), "ray")


def ray_available() -> bool:
    """True when this Python can import Ray."""
    return importlib.util.find_spec("ray") is not None


def reexec_with_ray() -> None:
    """From the `replay` command of a Python without Ray, run the same command in the ttnn environment when
    that one has Ray (it returns only when there is nothing to switch to; connect() then says so)."""
    if ray_available() or os.path.basename(sys.argv[0]) != "replay":
        return
    try:
        python = find_ttnn_python()
    except PoolError:
        return
    probe = subprocess.run([python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('ray') is None)"],
                           capture_output=True)
    if probe.returncode == 0 and os.path.realpath(python) != os.path.realpath(sys.executable):
        sys.stderr.write(f"replay: Ray runs in the ttnn environment: continuing with {python}\n")
        sys.stderr.flush()
        os.execv(python, [python, "-m", "replay.cli", *sys.argv[1:]])


def parse_cluster(text: str) -> str:
    """The checked --cluster value: ``ray``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``."""
    if text in (LOCAL, "auto"):
        return text
    hostport = text[len("ray://"):] if text.startswith("ray://") else text
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--cluster {text!r}: use ray (a local instance), ray://HOST:PORT or HOST:PORT")
    return text


def _reachable(address: str) -> None:
    """ClusterError unless HOST:PORT accepts a TCP connection (Ray itself waits 30 s or more to say so)."""
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start it "
                           f"(`ray start --head`) or check --cluster / RAY_ADDRESS") from None


def local_environment(folder: str) -> None:
    """Before Ray is imported: usage stats off, its token in our folder (not ~/.ray), this tree's optrace first."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_TMPDIR"] = os.path.dirname(folder)     # Ray's default folder is then ours: <that>/ray
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        token = os.path.join(folder, "auth_token")
        if not os.path.exists(token):
            write_atomic(token, secrets.token_hex(32).encode())
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ["RAY_AUTH_TOKEN_PATH"] = token
    path = os.environ.get("PYTHONPATH", "")
    if REPO_ROOT not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")


def connect(cluster: str, num_cpus: int | None = None, resources: dict | None = None) -> Cluster:
    """Join or start the cluster ``cluster`` (see parse_cluster); ClusterError in one line when not possible."""
    if not ray_available():
        raise ClusterError(f"--cluster needs Ray, which this Python ({sys.executable}) lacks: run replay from the "
                           f"ttnn environment (.venv-ttnn/bin/replay) or pip install 'optrace[ray]'")
    address = os.environ.get("RAY_ADDRESS") if cluster == LOCAL else cluster
    if address and address != "auto":
        _reachable(address)
    folder = ray_dir()
    already = "ray" in sys.modules
    if not address and not already:     # Ray reads its token settings when imported
        os.makedirs(folder, exist_ok=True)
        local_environment(folder)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray  # noqa: PLC0415 - Ray is optional and lives in the ttnn environment only

    if ray.is_initialized():            # e.g. a test's cluster, or a caller's own ray.init()
        return _describe(ray, "existing", connected_here=False)
    try:
        sys.stderr.write(f"replay: joining the Ray cluster at {address}\n" if address else
                         f"replay: starting a local Ray instance ({num_cpus or os.cpu_count()} CPUs; files in {folder})\n")
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
            return _describe(ray, address, connected_here=True)
        if already:
            os.makedirs(folder, exist_ok=True)
            local_environment(folder)
        ray.init(address="local", num_cpus=num_cpus, resources=resources, _temp_dir=folder, include_dashboard=False,
                 log_to_driver=False, logging_level="WARNING")
    except ClusterError:
        raise
    except (ConnectionError, RuntimeError, ValueError, OSError) as e:
        raise ClusterError(f"cannot start or join Ray ({address or 'local'}): {str(e).splitlines()[0][:300]}") from None
    return _describe(ray, "local", connected_here=True)


def map_tasks(fn, calls: list[tuple], cluster: str, num_cpus: int = 1) -> list:
    """``[fn(*args) for args in calls]``, each call one Ray task on the cluster, all at once; ClusterError
    when a task's worker or node died (its error otherwise, as raised)."""
    c = connect(cluster, num_cpus=min(len(calls), os.cpu_count() or 1) or 1)
    import ray  # noqa: PLC0415 - connect() has checked it is there
    try:
        task = ray.remote(num_cpus=num_cpus, max_retries=1)(fn)
        refs = [task.remote(*args) for args in calls]
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"a Ray task died: {str(e).splitlines()[0][:300]}") from None
    finally:
        disconnect(c)


def _describe(ray, address: str, connected_here: bool) -> Cluster:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return Cluster(address=address, connected_here=connected_here, resources=dict(ray.cluster_resources()),
                   nodes=len(alive))


def disconnect(cluster: Cluster | None) -> None:
    """Leave the cluster this process joined; a local instance it started is shut down with its processes."""
    if cluster is None or not ray_available():
        return
    import ray  # noqa: PLC0415 - see connect
    if cluster.connected_here and ray.is_initialized():
        ray.shutdown()
