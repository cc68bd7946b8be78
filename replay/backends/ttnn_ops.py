"""Replay one captured signature on ttnn: create its inputs, make the port's calls, record the result.

``TtnnBackend(device, settings).run(case)`` is the whole interface. Each signature runs on a clean
device: everything it created is deallocated afterwards and the program cache (which keeps
reshape's page-mapping tensors alive) is cleared. An error while creating inputs is phase "inputs",
during the calls phase "op". Needs ttnn (never torch).

With ``inputs`` (wire arrays by plan input name, see ``replay.backends.numerics``) the inputs are uploaded
with those values instead of allocated uninitialised, and the outputs are read back into
``result.extra["numerics_outputs"]`` (wire arrays) for the coordinator to compare.
"""
from __future__ import annotations

import math
import time

import ttnn

from replay.backends.devices import BLOCK_FLOAT_DTYPES, TILE_BYTES
from replay.backends.devices import ELEMENT_BYTES as ROW_MAJOR_ELEMENT_BYTES
from replay.mapping import DEVICE, MEMORY, TT, Case, InputTensor, Ref, Replay, PortSettings, plan_replay
from replay.backends.numerics import from_wire, to_wire
from replay.results import (MOCK_NOTE, ReplayResult, TensorFootprint, error_signature, is_cb_overflow,
                            one_line, oom_status, parse_oom)

# Logical bytes per element; block floats count their tile bytes spread over the tile's elements.
ELEMENT_BYTES = {**ROW_MAJOR_ELEMENT_BYTES, **{d: TILE_BYTES[d] / 1024 for d in BLOCK_FLOAT_DTYPES}}


def _layout(name: str):
    return ttnn.TILE_LAYOUT if name == "TILE" else ttnn.ROW_MAJOR_LAYOUT


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def _alignment(memory: str) -> int:
    try:
        return ttnn.device.get_l1_alignment() if memory == "L1" else ttnn.device.get_dram_alignment()
    except Exception:  # noqa: BLE001 - alignment only refines the byte count
        return 32


def footprint(t) -> TensorFootprint:
    """Shape, padding and bytes of a ttnn tensor as placed."""
    dtype = str(t.dtype).split(".")[-1].lower()
    layout = "TILE" if t.layout == ttnn.TILE_LAYOUT else "ROW_MAJOR"
    memory = "host"
    if t.storage_type() == ttnn.StorageType.DEVICE:
        memory = "L1" if t.memory_config().buffer_type == ttnn.BufferType.L1 else "DRAM"
    shape, padded = list(t.shape), list(t.padded_shape)
    logical = math.ceil(math.prod(shape) * ELEMENT_BYTES.get(dtype, 2))
    if layout == "TILE":
        lead = math.prod(padded[:-2]) if len(padded) > 2 else 1
        tiles = lead * (padded[-2] if len(padded) > 1 else 32) // 32 * padded[-1] // 32
        padded_bytes = tiles * TILE_BYTES.get(dtype, 2048)
    else:
        rows = math.prod(padded[:-1]) if len(padded) > 1 else 1
        page = math.ceil(padded[-1] * ELEMENT_BYTES.get(dtype, 2)) if padded else 0
        padded_bytes = rows * (_align(page, _alignment(memory)) if memory != "host" else page)
    return TensorFootprint(shape, dtype, layout, memory, logical, padded, padded_bytes)


def planned_footprint(spec: InputTensor) -> TensorFootprint:
    """Footprint of an input that could not be created (padding computed, not measured)."""
    shape = list(spec.shape)
    padded = list(shape)
    if spec.layout == "TILE":
        if len(padded) == 1:
            padded = [1] + padded
        padded[-1], padded[-2] = _align(padded[-1], 32), _align(padded[-2], 32)
        padded_bytes = math.prod(padded) // 1024 * TILE_BYTES.get(spec.dtype, 2048)
    else:
        padded_bytes = math.ceil(math.prod(padded) * ELEMENT_BYTES.get(spec.dtype, 2))
    logical = math.ceil(math.prod(shape) * ELEMENT_BYTES.get(spec.dtype, 2))
    return TensorFootprint(shape, spec.dtype, spec.layout, spec.memory, logical, padded, padded_bytes)


def create_input(device, spec: InputTensor):
    """Allocate one input: on device with ttnn's own allocator, or a host tensor (conv weights)."""
    dtype, layout = getattr(ttnn, spec.dtype), _layout(spec.layout)
    if spec.memory == "host":
        return ttnn.zeros(spec.shape, dtype=dtype, layout=layout)
    buffer = ttnn.BufferType.L1 if spec.memory == "L1" else ttnn.BufferType.DRAM
    return ttnn.allocate_tensor_on_device(ttnn.TensorSpec(ttnn.Shape(spec.shape), dtype, layout,
                                                          buffer_type=buffer), device)


def upload_input(device, spec: InputTensor, array):
    """One input with the given values (already in the port's layout), placed as create_input places it."""
    if list(array.shape) != list(spec.shape):
        raise ValueError(f"data for {spec.name!r} is {list(array.shape)}, the plan holds {spec.shape}")
    dtype, layout = getattr(ttnn, spec.dtype), _layout(spec.layout)
    if spec.memory == "host":
        return ttnn.Tensor(array, dtype, None, layout)
    memory_config = ttnn.L1_MEMORY_CONFIG if spec.memory == "L1" else ttnn.DRAM_MEMORY_CONFIG
    return ttnn.Tensor(array, dtype, device, layout, memory_config)


def read_back(t):
    """A tensor's values as a numpy array of its logical shape (float32, or int32/uint32)."""
    host = t.cpu() if t.storage_type() == ttnn.StorageType.DEVICE else t
    if host.dtype not in (ttnn.float32, ttnn.int32, ttnn.uint32):   # numpy has no bfloat16
        host = ttnn.to_dtype(host, ttnn.float32)
    return host.to_numpy()


def _resolve(v, env: dict, device, memory_config):
    if isinstance(v, Ref):
        return env[str(v)]
    if v is DEVICE:
        return device
    if v is MEMORY:
        return memory_config
    if isinstance(v, TT):
        return getattr(ttnn, str(v))
    if isinstance(v, list):
        return [_resolve(x, env, device, memory_config) for x in v]
    if isinstance(v, tuple):
        return tuple(_resolve(x, env, device, memory_config) for x in v)
    return v


def tensors_in(value) -> list:
    """The ttnn tensors in a call's result (a tensor, or nested lists/tuples of them), in order."""
    if isinstance(value, ttnn.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for x in value for t in tensors_in(x)]
    return []


def memory_config(settings: PortSettings):
    """The ttnn memory config a port's calls get for MEMORY: DRAM or L1 interleaved."""
    return ttnn.L1_MEMORY_CONFIG if settings.buffer == "L1" else ttnn.DRAM_MEMORY_CONFIG


class CallFailed(Exception):
    """A ttnn call raised; ``error`` is what it raised (the op's verdict, not an optrace bug)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def make_calls(device, plan: Replay, env: dict, settings: PortSettings, made: list | None = None):
    """Make the plan's ttnn calls in order, each result bound in ``env`` under its name; returns the
    last call's value. A call that raises is CallFailed; every tensor a call returns goes on ``made``."""
    config = memory_config(settings)
    value = None
    for call in plan.calls:
        fn = ttnn
        for part in call.fn.split("."):
            fn = getattr(fn, part)
        args = _resolve(call.args, env, device, config)
        kwargs = {k: _resolve(v, env, device, config) for k, v in call.kwargs.items()}
        try:
            value = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - whatever ttnn raises is the call's verdict
            raise CallFailed(e) from e
        if made is not None:
            made.extend(tensors_in(value))
        if call.pick is not None:
            value = value[call.pick]
        env[call.out] = value
        if isinstance(value, (list, tuple)):   # Port.item(ref, i) names the elements "out[i]"
            for i, v in enumerate(value):
                env[f"{call.out}[{i}]"] = v
    return value


def _release(tensors: list, device) -> None:
    for t in tensors:
        try:
            if t.storage_type() == ttnn.StorageType.DEVICE and t.is_allocated():
                ttnn.deallocate(t)
        except Exception:  # noqa: BLE001 - best effort; the device is cleaned per signature
            pass
    if hasattr(device, "clear_program_cache"):
        device.clear_program_cache()


def record_failure(result: ReplayResult, exc: BaseException, phase: str) -> None:
    """Put a ttnn error into the result: oom_* (with the allocator's numbers), cb_overflow or ttnn_error,
    its first line and a stable error signature; ``phase`` is "inputs" or "op"."""
    message = str(exc)
    oom = parse_oom(message, phase)
    if oom is not None:
        result.status, result.oom = oom_status(oom.buffer_type), oom
    elif is_cb_overflow(message):
        result.status = "cb_overflow"
    else:
        result.status = "ttnn_error"
    result.reason = one_line(message)
    result.error_signature = error_signature(message)
    result.extra["phase"] = phase
    if isinstance(exc, TypeError):  # the Python binding rejected our arguments
        result.extra["error_type"] = "TypeError"


class TtnnBackend:
    """Signatures on an open ttnn device (a real board or the mock device), each on a clean device:
    everything a signature created is deallocated afterwards and the program cache cleared."""
    name = "ttnn"

    def __init__(self, device, settings: PortSettings | None = None, *, board: str = "", mock: bool = True):
        self.device, self.settings, self.board, self.mock = device, settings or PortSettings(), board, mock

    def run(self, case: Case, inputs: dict | None = None) -> ReplayResult:
        """Replay one signature; never raises for ttnn errors. ``inputs``: values to upload (numerics),
        by plan input name; the outputs are then read back into ``extra["numerics_outputs"]``."""
        t0 = time.perf_counter()
        result = ReplayResult(signature_id=case.id, op=case.op, status="pass", backend="ttnn", device=self.board,
                              mock=self.mock, numerics="not_checked (mock device)" if self.mock else "not_checked")
        try:
            plan = plan_replay(case, self.settings)
        except Exception as e:  # noqa: BLE001 - a malformed signature must not kill the worker
            result.status, result.reason = "unsupported", f"cannot read the traced arguments: {e}"
            return result
        if plan.status != "mapped":
            result.status = "skipped" if plan.status == "skip" else "unsupported"
            result.reason = plan.reason
            result.time_s = time.perf_counter() - t0
            return result
        result.ttnn_call = plan.call_string()
        if plan.notes:
            result.extra["notes"] = plan.notes
        _execute(self.device, plan, self.settings, result, inputs)
        result.time_s = time.perf_counter() - t0
        return result


def _create(device, spec: InputTensor, inputs: dict | None, no_data: dict):
    if inputs is not None:
        if spec.name not in inputs:
            no_data[spec.name] = "no data sent"
        else:
            try:
                return upload_input(device, spec, from_wire(inputs[spec.name]))
            except Exception as e:  # noqa: BLE001 - allocating alone says whether it is the placement
                no_data[spec.name] = one_line(str(e), 200)
    return create_input(device, spec)


def _read_outputs(outputs: list, no_data: dict, result: ReplayResult) -> None:
    """Outputs back to the host for the coordinator's comparison, when every input had its values."""
    if no_data:
        result.extra["numerics_path"] = "inputs not uploaded: " + "; ".join(f"{k}: {v}" for k, v in no_data.items())
        return
    try:
        result.extra["numerics_outputs"] = [to_wire(read_back(t)) for t in outputs]
    except Exception as e:  # noqa: BLE001 - numerics are not checked, the op itself ran
        result.extra["numerics_path"] = f"read back failed: {one_line(str(e), 200)}"
        return
    result.extra["numerics_path"] = f"uploaded {len(result.inputs)} inputs, read back {len(outputs)} outputs"


def _execute(device, plan: Replay, settings: PortSettings, result: ReplayResult, inputs: dict | None = None) -> None:
    env: dict = {}
    created: list = []
    no_data: dict = {}
    try:
        for spec in plan.inputs:
            try:
                env[spec.name] = _create(device, spec, inputs, no_data)
            except Exception as e:  # noqa: BLE001
                result.inputs = [footprint(env[s.name]) for s in plan.inputs if s.name in env]
                result.inputs.append(planned_footprint(spec))
                record_failure(result, e, "inputs")
                return
            created.append(env[spec.name])
        result.inputs = [footprint(env[s.name]) for s in plan.inputs]
        try:
            value = make_calls(device, plan, env, settings, created)
        except CallFailed as e:
            record_failure(result, e.error, "op")
            return
        outputs = tensors_in(value)
        result.outputs = [footprint(t) for t in outputs]
        _check_shapes(plan, outputs, result)
        if inputs is not None:
            _read_outputs(outputs, no_data, result)
    finally:
        _release(created, device)


def _check_shapes(plan: Replay, outputs: list, result: ReplayResult) -> None:
    """Note (not fail) when ttnn's output shapes differ from the traced ones."""
    if not plan.expected:
        return
    got = [list(t.shape) for t in outputs]
    want = plan.expected
    if got[:len(want)] != want:
        result.extra["shape_mismatch"] = {"expected": want, "got": got}


__all__ = ["TtnnBackend", "footprint", "create_input", "make_calls", "record_failure", "MOCK_NOTE"]
