"""The in-context ttnn worker: replays one model's whole call sequence on one device, in order.

    .venv-ttnn/bin/python -m replay.context.worker traces/yolov8s.msgpack --device n150 --memory dram

It reads the trace itself (capture.schema needs only msgpack), opens the device once and keeps it:
parameters, buffers and constants are allocated first and stay; every activation is the ttnn
tensor its producing call returned and is dropped after its last use (replay.context.plan.plan_context),
so ttnn frees it when nothing else (a view) holds it; the program cache is never cleared, so cached
reshape page-mapping tensors stay as they would in a port. A failing call is recorded and the run
goes on: its outputs are simply absent, and a later consumer gets a freshly allocated stand-in.

Frames out (4-byte big-endian length + msgpack, as replay.run.worker): {"kind": "ready", ...} or
{"kind": "fatal", "error"}; one {"kind": "call", "record": CallRecord} per call in order; then
{"kind": "summary", "summary": ContextSummary, "resident_bytes": {...}}. Never imports torch.

With ``--stop-at-first-failure`` the sequence ends at the first call that runs out of memory or
overflows circular buffers (not a cascade): all a size search needs to know (the summary then says
``completed: false`` and the note says where it stopped).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict

from capture.schema import read_trace
from replay.backends.device import close_device
from replay.backends.devices import get_device
from replay.backends.footprint import allocate
from replay.context.changes import (ContextChanges, call_replays, call_settings, folded_outputs, held_spec,
                                    resident_under, with_frees)
from replay.context.plan import (CallRecord, aliases, folded_record, holds_as, plan_context, port_replays,
                                 resident_specs, summarize)
from replay.mapping import PortSettings
from replay.results import MEMORY_FAILURES, ReplayResult
from replay.run.worker import open_worker_device, protect_stdout, send_fatal, worker_parser, write_frame


STOP_STATUSES = MEMORY_FAILURES   # what ends a --stop-at-first-failure sequence


def _per_bank(spec, fp) -> int:
    try:
        return allocate(tuple(fp.shape), fp.dtype, fp.layout, fp.memory, spec).per_bank_bytes
    except (KeyError, ValueError):
        return 0


class ContextRun:
    """The device, the live tensors and the per-call bookkeeping of one in-context replay."""

    def __init__(self, device, plan, trace, settings, board: str, mock: bool, changes: ContextChanges | None = None):
        # ttnn only here, in the worker, after open_device has set its environment
        import ttnn

        from replay.backends import ttnn_ops
        self.ttnn, self.ops = ttnn, ttnn_ops
        self.changes = changes or ContextChanges()
        plan = with_frees(plan, self.changes)
        self.device, self.plan, self.settings = device, plan, settings
        self.board, self.mock = board, mock
        self.spec = get_device(board if board in ("n150", "n300", "p150", "p100")
                               else "p150" if "blackhole" in board else "n150")
        self.live: dict[int, object] = {}       # trace tensor index -> ttnn tensor (device)
        self.host: dict[int, object] = {}       # host tensors (conv weights) by trace tensor index
        self.pinned: dict[int, object] = {}     # device stand-ins for weights a port holds on host
        self.produced_by: dict[int, int] = {}
        self.failed: set[int] = set()           # outputs of calls that failed in context
        self.replays = port_replays(trace, settings)
        self.call_replays = call_replays(trace, plan, settings, self.changes)   # calls the changes replay differently
        self.folded = folded_outputs(plan, self.changes)

    # -- memory ------------------------------------------------------------------------------
    def _view(self, buffer: str):
        bt = self.ttnn.BufferType.L1 if buffer == "L1" else self.ttnn.BufferType.DRAM
        return self.ttnn.device.get_memory_view(self.device, bt)

    def in_use(self) -> tuple[int, int]:
        d, l1 = self._view("DRAM"), self._view("L1")
        return d.total_bytes_allocated_per_bank * d.num_banks, l1.total_bytes_allocated_per_bank * l1.num_banks

    def _device_tensors(self) -> dict:
        """Distinct live device tensors (views of one buffer counted once) -> a trace tensor index."""
        out = {}
        for tid, t in list(self.live.items()) + list(self.pinned.items()):
            try:
                key = (t.buffer_address(), str(t.memory_config().buffer_type))
            except Exception:  # noqa: BLE001 - a host or deallocated tensor holds no device memory
                continue
            out.setdefault(key, (tid, self.ops.footprint(t)))
        return out

    def allocator_state(self) -> dict:
        """The allocator's state now: per memory, what is allocated/free/the largest block, and
        what our live tensors hold (the rest is the program cache and ops' scratch)."""
        state = {"program_cache_entries": int(self.device.num_program_cache_entries()),
                 "live_tensors": len(self.live), "live_per_bank": {"DRAM": 0, "L1": 0}}
        for buf in ("DRAM", "L1"):
            v = self._view(buf)
            state[buf] = {"banks": v.num_banks, "allocated_per_bank": v.total_bytes_allocated_per_bank,
                          "free_per_bank": v.total_bytes_free_per_bank,
                          "largest_free_per_bank": v.largest_contiguous_bytes_free_per_bank}
        top = []
        for tid, fp in self._device_tensors().values():
            pb = _per_bank(self.spec, fp)
            state["live_per_bank"][fp.memory] = state["live_per_bank"].get(fp.memory, 0) + pb
            meta = self.plan.tensors[tid]
            step = self.plan.steps[self.produced_by[tid]] if tid in self.produced_by else None
            top.append({"tensor": tid, "kind": meta.kind, "name": meta.name, "shape": fp.shape, "dtype": fp.dtype,
                        "layout": fp.layout, "memory": fp.memory, "per_bank_bytes": pb,
                        "produced_by_call": step.index if step else None,
                        "module_path": step.module_path if step else ""})
        state["top_live"] = sorted(top, key=lambda x: -x["per_bank_bytes"])[:8]
        return state

    # -- tensors -----------------------------------------------------------------------------
    def _matches(self, t, spec, folded: bool = False) -> bool:
        fp = self.ops.footprint(t)
        return holds_as(fp.shape, fp.dtype, fp.layout, fp.memory, spec, folded)

    def _alive(self, t) -> bool:
        try:
            return t.storage_type() != self.ttnn.StorageType.DEVICE or t.is_allocated()
        except Exception:  # noqa: BLE001
            return False

    def place_resident(self) -> dict:
        """Allocate parameters, buffers, constants and inputs before the first call."""
        placed = {"DRAM": 0, "L1": 0, "failed": 0}
        specs = resident_under(self.plan, resident_specs(self.plan, self.replays, self.settings.dtype), self.changes)
        for tid, resident in specs.items():
            spec = resident.spec
            target = self.pinned if resident.pinned else self.live
            try:
                target[tid] = self.ops.create_input(self.device, spec)
                placed[spec.memory] += self.ops.planned_footprint(spec).padded_bytes
            except Exception:  # noqa: BLE001 - a weight that does not fit: consumers get stand-ins
                placed["failed"] += 1
        return placed

    # -- one call ----------------------------------------------------------------------------
    def run_step(self, step):
        """One call in context: its inputs from the live tensors (or stand-ins), the port's ttnn calls,
        the outputs kept live; a failure is recorded with the allocator's state."""
        t0 = time.perf_counter()
        if step.folded:
            return self._finish(step, folded_record(step), t0)
        r = self.call_replays.get(step.index) or self.replays[step.signature_id]
        rec = CallRecord(index=step.index, signature_id=step.signature_id, op=step.op, module_path=step.module_path,
                         status="pass")
        if r.status != "mapped":
            rec.status, rec.reason = ("skipped" if r.status == "skip" else "unsupported"), r.reason
            if r.status == "skip":  # a view or alias a port never issues: outputs are their input
                self._alias(step)
            return self._finish(step, rec, t0)
        env: dict = {}
        phase = "inputs"
        try:
            for spec in r.inputs:
                env[spec.name] = self._input(step, spec, rec)
            phase = "op"
            value = self.ops.make_calls(self.device, r, env, call_settings(step, self.settings, self.changes))
        except Exception as e:  # noqa: BLE001 - any ttnn error is this call's verdict
            self._fail(step, rec, e.error if isinstance(e, self.ops.CallFailed) else e, phase)
            env.clear()
            return self._finish(step, rec, t0)
        outs = self.ops.tensors_in(value)
        for i, tid in enumerate(step.outputs):
            if i < len(outs):
                self.live[tid] = outs[i]
                self.produced_by[tid] = step.index
            else:
                self.live.pop(tid, None)
        env.clear()
        del outs, value
        return self._finish(step, rec, t0)

    def _alias(self, step) -> None:
        for out, tid in aliases(self.plan, step, self.live):
            self.live[out] = self.live[tid]

    def _input(self, step, spec, rec: CallRecord):
        """The ttnn tensor a call gets for one input: the live one when held as the port wants it,
        else re-held (replaced, not copied) or a fresh stand-in; host tensors are made once."""
        tid = step.args.get(spec.name)
        spec = held_spec(self.plan, tid, spec, self.changes)
        if spec.memory == "host":
            if tid is None:
                return self.ops.create_input(self.device, spec)
            if tid not in self.host:
                self.host[tid] = self.ops.create_input(self.device, spec)
            return self.host[tid]
        cur = self.live.get(tid) if tid is not None else None
        if cur is not None and self._alive(cur) and self._matches(cur, spec, tid in self.folded):
            return cur
        if cur is not None:
            rec.reheld += 1          # a port would hold it this way: replace, do not copy
            del self.live[tid]
            cur = None
        else:
            rec.standins += 1
            rec.cascade = rec.cascade or tid in self.failed
        t = self.ops.create_input(self.device, spec)
        if tid is not None:
            self.live[tid] = t
        return t

    def _fail(self, step, rec: CallRecord, error: BaseException, phase: str) -> None:
        failure = ReplayResult(signature_id=step.signature_id, op=step.op, status="pass", backend="ttnn",
                               device=self.board, mock=self.mock)
        self.ops.record_failure(failure, error, phase)
        rec.status, rec.reason = failure.status, failure.reason
        rec.oom = asdict(failure.oom) if failure.oom is not None else None
        rec.allocator = self.allocator_state()
        rec.cascade = rec.cascade and phase == "inputs"
        self.failed.update(step.outputs)

    def _finish(self, step, rec, t0):
        rec.dram_bytes, rec.l1_bytes = self.in_use()
        for tid in step.free_after:
            self.live.pop(tid, None)
            self.host.pop(tid, None)
            self.pinned.pop(tid, None)
        rec.live_tensors = len(self.live)
        rec.time_s = time.perf_counter() - t0
        return rec


def main(argv: list[str] | None = None) -> int:
    """Replay one trace in context on the device; frames out as the module docstring says."""
    ap = worker_parser("python -m replay.context.worker", __doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--changes", default="", help="JSON of replay.context.changes.ContextChanges to apply")
    ap.add_argument("--stop-after", type=int, default=None, help="replay only the calls up to this index")
    ap.add_argument("--stop-at-first-failure", action="store_true",
                    help="end the sequence at the first call that runs out of memory (a size search needs no more)")
    args = ap.parse_args(argv)

    frames_fd = protect_stdout()
    try:
        trace = read_trace(args.trace)
        plan = plan_context(trace)
    except Exception as e:  # noqa: BLE001 - report, whatever it is
        send_fatal(frames_fd, e)
        return 2
    opened = open_worker_device(frames_fd, args)
    if opened is None:
        return 2
    device, info = opened
    settings = PortSettings(dtype=args.dtype, layout=args.layout, memory=args.memory)
    try:
        changes = ContextChanges.from_json(args.changes or None)
        run = ContextRun(device, plan, trace, settings, info.board, info.mock, changes)
        write_frame(frames_fd, {"kind": "ready", "ready": True, "board": info.board, "mock": info.mock,
                                "note": info.note, "ttnn_version": info.ttnn_version, "calls": len(plan.steps)})
        resident = run.place_resident()
        records, stopped_at_failure = [], False
        for step in run.plan.steps:
            if args.stop_after is not None and step.index > args.stop_after:
                break
            rec = run.run_step(step)
            records.append(rec)
            write_frame(frames_fd, {"kind": "call", "record": rec.to_json()})
            if args.stop_at_first_failure and rec.status in STOP_STATUSES and not rec.cascade:
                stopped_at_failure = True
                break
        summary = summarize(plan.model, "ttnn", info.board, records, len(plan.steps))
        summary.resident_bytes = resident
        summary.note = info.note
        if stopped_at_failure and not summary.completed:
            summary.note += f"; stopped at call {records[-1].index} (the first failure), as asked"
        write_frame(frames_fd, {"kind": "summary", "summary": asdict(summary)})
    finally:
        run = None
        close_device(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
