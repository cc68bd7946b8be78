"""ttnn replay across a Ray cluster: long-lived device actors, batches by op, results journaled as they stream.

Each actor (``TtnnActor``) opens one ttnn device — a board, claimed through the node's custom
resource ``tt_<device>`` (replay/run/ray_cluster.py), or, when no node declares one, the mock device,
one actor per CPU slot — and replays batches of signatures of one op (so compiled programs are
reused), yielding each result as it finishes. ``RayDriver`` hands batches out and gives each result to
the runner at once, which journals it exactly as with the built-in pool. An actor (or node) that dies
takes the unfinished part of its batch back to the queue: the signature it was on gets a strike, and
one that killed its actor twice is recorded as ``crash``; a batch is retried at most
MAX_BATCH_RETRIES times. An op that overruns the timeout gets its actor killed and is ``timeout``.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from replay.results import MOCK_NOTE, ReplayResult
from replay.run.pool import READY_TIMEOUT_S
from replay.run.ray_cluster import Cluster, ClusterError, board_resource, connect, disconnect
from replay.run.worker import answer

DEATHS_TO_CRASH = 2          # a signature that kills its actor this many times is a crash
MAX_BATCH_RETRIES = 3        # a batch whose actors died this often: the rest of it is recorded as crash
MAX_BATCH_SIGNATURES = 32


class TtnnActor:
    """One ttnn device in a Ray worker process; ``run_batch`` yields each request's result as it finishes."""

    def __init__(self, device: str, dtype: str, memory: str):
        import ray  # noqa: PLC0415
        from replay.backends.device import open_device  # noqa: PLC0415 - ttnn only in the actor's process

        self.device, info = open_device(device)         # sets ttnn's environment, then imports it
        from replay.backends.ttnn_ops import TtnnBackend  # noqa: PLC0415 - imports ttnn
        from replay.mapping import PortSettings  # noqa: PLC0415
        self.backend = TtnnBackend(self.device, PortSettings(dtype=dtype, memory=memory), board=info.board,
                                   mock=info.mock)
        self.node = ray.get_runtime_context().get_node_id()
        self.info = {**info.to_json(), "node": self.node, "pid": os.getpid()}

    def ready(self) -> dict:
        """The device this actor opened (board, mock, note, ttnn version) and where it runs."""
        return self.info

    def run_batch(self, requests: list[dict]):
        """Each request's ReplayResult (as JSON), in order, as it finishes (a Ray streaming generator)."""
        for req in requests:
            result = answer(self.backend, req)
            result.setdefault("extra", {})["ray_node"] = self.node
            yield result

    def close(self) -> None:
        """Close the device before the actor is killed."""
        from replay.backends.device import close_device  # noqa: PLC0415
        close_device(self.device)


@dataclass
class Batch:
    """Signatures of one op for one actor, and how often actors already died on it."""
    cases: list
    attempts: int = 0


@dataclass
class Slot:
    """One actor the driver keeps: its handle and what it said when ready."""
    handle: object
    info: dict


@dataclass
class Flight:
    """A batch running on an actor: results so far and when the next one is due."""
    slot: Slot
    batch: Batch
    deadline: float
    done: int = 0
    gen: object = field(default=None, repr=False)


def op_batches(cases: list, actors: int) -> list[Batch]:
    """Batches of signatures of one op each (ops in first-seen order), small enough to keep every actor busy."""
    by_op: dict[str, list] = {}
    for c in cases:
        by_op.setdefault(c.sig.op, []).append(c)
    size = max(1, min(MAX_BATCH_SIGNATURES, len(cases) // max(1, 4 * actors)))
    return [Batch(group[i:i + size]) for group in by_op.values() for i in range(0, len(group), size)]


def _request(case, device: str, mock: bool) -> dict:
    return {"id": case.sig.id, "sig": case.sig.to_full_wire(case.arg_names), "device": device, "mock": mock}


class RayDriver:
    """Signatures on ttnn device actors across a Ray cluster (``--cluster``); journals like TtnnDriver."""
    name = "ttnn"

    def __init__(self, settings):
        self.settings = settings
        self.cluster: Cluster | None = None
        self.slots: list[Slot] = []
        self.mock: bool | None = None
        self.strikes: Counter = Counter()
        self._actor_class = None
        self._options: dict = {}

    def start(self) -> dict:
        """Connect, start one actor per board (or mock actors, one per CPU slot); what the header says."""
        s = self.settings
        self.cluster = connect(s.cluster, num_cpus=min(s.jobs, os.cpu_count() or 1))
        import ray  # noqa: PLC0415 - connect() has checked it is there
        resource = board_resource(s.device)
        boards = int(self.cluster.resources.get(resource, 0))
        if boards:
            count, self._options = boards, {"num_cpus": 0, "resources": {resource: 1}}
        else:
            count, self._options = max(1, min(s.jobs, int(self.cluster.resources.get("CPU", 1)))), {"num_cpus": 1}
        self._actor_class = ray.remote(max_restarts=0, max_task_retries=0)(TtnnActor)
        self.slots = self._start_actors(count)
        kinds = {bool(slot.info.get("mock")) for slot in self.slots}
        if len(kinds) > 1:
            raise ClusterError(f"the {resource} actors disagree: some found a real board, some the mock device; "
                               f"declare {resource} only on nodes with boards")
        self.mock = kinds.pop()
        first = self.slots[0].info
        note = (first.get("note") or (MOCK_NOTE if self.mock else "")) + f"; on Ray, {len(self.slots)} actor(s)"
        if not self.mock:       # numerics need torch on the coordinator; the Ray one runs in the ttnn environment
            note += "; outputs not compared with torch (numerics run on the built-in pool)"
        return {"mock": self.mock, "note": note, "ttnn": first.get("ttnn_version"), "device": first.get("board", s.device),
                "ttnn_python": sys.executable,
                "cluster": {"engine": "ray", "address": self.cluster.address, "nodes": self.cluster.nodes,
                            "actors": len(self.slots), "board_resource": resource if boards else None}}

    def _start_actors(self, count: int) -> list[Slot]:
        """``count`` ready actors; ClusterError when they cannot start (the device fails, no room)."""
        import ray  # noqa: PLC0415
        s = self.settings
        handles = [self._actor_class.options(**self._options).remote(s.device, s.dtype, s.memory) for _ in range(count)]
        try:
            infos = ray.get([h.ready.remote() for h in handles], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"{count} ttnn actor(s) did not start within {READY_TIMEOUT_S:.0f} s "
                               f"(resources asked per actor: {self._options})") from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"a ttnn actor cannot start: {_one_line(e)}") from None
        return [Slot(h, info) for h, info in zip(handles, infos)]

    def run(self, cases, on_result) -> None:
        """on_result(case, result) for each UniqueSignature, as the actors stream them back."""
        if not cases:
            return
        queue = deque(op_batches(cases, len(self.slots)))
        idle, flights = list(self.slots), {}
        while queue or flights:
            while idle and queue:
                self._launch(idle.pop(), queue.popleft(), flights)
            if not flights:
                raise ClusterError("every ttnn actor is gone; the results so far are journaled: --resume finishes")
            self._collect(flights, idle, queue, on_result)

    def _launch(self, slot: Slot, batch: Batch, flights: dict) -> None:
        s = self.settings
        requests = [_request(c, s.device, bool(self.mock)) for c in batch.cases]
        flight = Flight(slot, batch, time.monotonic() + s.timeout_s)
        flight.gen = slot.handle.run_batch.options(num_returns="streaming").remote(requests)
        flights[flight.gen] = flight

    def _collect(self, flights: dict, idle: list, queue: deque, on_result) -> None:
        """Take the results that have arrived (waiting at most 1 s); deaths and timeouts are handled here."""
        import ray  # noqa: PLC0415
        nearest = min(f.deadline for f in flights.values())
        ready, _ = ray.wait(list(flights), num_returns=1, timeout=max(0.0, min(1.0, nearest - time.monotonic())))
        for gen in ready:
            flight = flights[gen]
            try:
                result = ray.get(next(gen))
            except StopIteration:
                del flights[gen]
                idle.append(flight.slot)
                continue
            except ray.exceptions.RayError as e:       # the actor, its worker or its node died
                del flights[gen]
                self._died(flight, _one_line(e), queue, on_result, idle)
                continue
            case = flight.batch.cases[flight.done]
            flight.done += 1
            flight.deadline = time.monotonic() + self.settings.timeout_s
            if flight.done == len(flight.batch.cases):   # done: no need to wait for the stream's end
                del flights[gen]
                idle.append(flight.slot)
            on_result(case, ReplayResult.from_json(result))
        for gen, flight in list(flights.items()):
            if time.monotonic() > flight.deadline and not gen.next_ready():
                del flights[gen]
                self._timed_out(flight, queue, on_result, idle)

    def _died(self, flight: Flight, error: str, queue: deque, on_result, idle: list) -> None:
        """Re-queue what the dead actor had not finished; its current signature gets a strike."""
        cases = flight.batch.cases[flight.done:]
        suspect = cases[0]
        self.strikes[suspect.sig.id] += 1
        if self.strikes[suspect.sig.id] >= DEATHS_TO_CRASH:
            on_result(suspect, self._failure(suspect, "crash", f"killed its ttnn actor {DEATHS_TO_CRASH} times "
                                                               f"(last: {error})"))
            cases = cases[1:]
        attempts = flight.batch.attempts + 1
        if cases and attempts > MAX_BATCH_RETRIES:
            for c in cases:
                on_result(c, self._failure(c, "crash", f"its batch lost {attempts} ttnn actors (last: {error})"))
        elif cases:
            queue.appendleft(Batch(cases, attempts))
        self._replace(flight.slot, idle)

    def _timed_out(self, flight: Flight, queue: deque, on_result, idle: list) -> None:
        """The op in flight overran the timeout: kill the actor, record timeout, re-queue the rest."""
        cases = flight.batch.cases[flight.done:]
        on_result(cases[0], self._failure(cases[0], "timeout", f"no answer within {self.settings.timeout_s:g} s"))
        if cases[1:]:
            queue.appendleft(Batch(cases[1:], flight.batch.attempts))
        self._replace(flight.slot, idle)

    def _replace(self, slot: Slot, idle: list) -> None:
        """Kill an actor and start another like it; when none can start, the slot is dropped."""
        import ray  # noqa: PLC0415
        ray.kill(slot.handle, no_restart=True)
        self.slots.remove(slot)
        try:
            new = self._start_actors(1)[0]
        except ClusterError as e:
            sys.stderr.write(f"replay: a ttnn actor could not be replaced ({e}); going on with {len(self.slots)}\n")
            return
        self.slots.append(new)
        idle.append(new)

    def _failure(self, case, status: str, reason: str) -> ReplayResult:
        return ReplayResult(signature_id=case.sig.id, op=case.sig.op, status=status, backend="ttnn",
                            device=self.settings.device, mock=bool(self.mock), reason=reason[:600])

    def close(self) -> None:
        """Close every actor's device and leave the cluster (a local instance started here is shut down)."""
        if self.cluster is not None and self.slots:
            import ray  # noqa: PLC0415
            try:
                ray.get([slot.handle.close.remote() for slot in self.slots], timeout=30)
            except ray.exceptions.RayError:
                pass
            for slot in self.slots:
                ray.kill(slot.handle, no_restart=True)
        self.slots = []
        disconnect(self.cluster)
        self.cluster = None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
