"""A replay worker process: opens the device once, then replays signatures sent on stdin.

    .venv-ttnn/bin/python -m replay.run.worker --device n150 --dtype bfloat16 --memory dram

Frames both ways are a 4-byte big-endian length followed by a msgpack body.
- First frame out: {"kind": "ready", "ready": true, "device": DeviceInfo, "board", "mock", "note",
  "ttnn_version", "settings"}; or, when the device cannot be opened, {"kind": "fatal",
  "ready": false, "error": "..."} and exit status 2.
- Request in: {"id": any, "sig": Signature.to_full_wire(arg_names)}, i.e.
  [id, op, args, outputs, count, calls, arg_names], and optionally "inputs": {plan input name:
  wire array} (numerics: upload these values; the reply's result then carries the outputs read
  back in extra["numerics_outputs"], see replay.backends.numerics); other keys are ignored.
  Reply out: {"kind": "result", "id": same, "result": ReplayResult.to_json()}
- {"cmd": "shutdown"} or end of stdin closes the device and exits 0.

ttnn and tt-metal write logs to stdout; before ttnn is imported the frame channel is moved to a
private duplicate of fd 1 and fd 1 is pointed at stderr, so nothing can corrupt a frame.
Test-only ops, honoured only when OPTRACE_TEST_OPS=1: "optrace_test.crash" kills the process with
SIGSEGV, "optrace_test.hang" sleeps forever (for the coordinator's crash/timeout tests).
"""
from __future__ import annotations

import argparse
import os
import signal
import struct
import sys
import time

import msgpack

MAX_FRAME_BYTES = 256 << 20
TEST_OPS_ENV = "OPTRACE_TEST_OPS"


def write_frame(fd: int, obj) -> None:
    """Write one frame (4-byte big-endian length + msgpack body) to a file descriptor, all of it."""
    body = msgpack.packb(obj, use_bin_type=True)
    data = struct.pack(">I", len(body)) + body
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(stream, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(stream):
    """The next frame from a binary stream, or None at end of stream."""
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} B is larger than {MAX_FRAME_BYTES} B")
    body = _read_exact(stream, size)
    if body is None:
        return None
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


def protect_stdout() -> int:
    """Keep the real stdout for frames only; everything printed to fd 1 goes to stderr."""
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return frames_fd


def _test_op(op: str) -> None:
    if os.environ.get(TEST_OPS_ENV) != "1":
        return
    if op == "optrace_test.crash":
        os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(139)
    if op == "optrace_test.hang":
        while True:
            time.sleep(3600)


def worker_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every ttnn worker takes: the board to mock, placement (dtype, memory, layout), L1_SMALL."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--device", default="n150", help="board to mock when no real board is present")
    ap.add_argument("--dtype", default="bfloat16", help="ttnn dtype for float tensors")
    ap.add_argument("--memory", default="dram", choices=["dram", "l1"])
    ap.add_argument("--layout", default="TILE", choices=["TILE", "ROW_MAJOR"])
    ap.add_argument("--l1-small-size", type=int, default=32768)
    return ap


def send_fatal(frames_fd: int, error: BaseException) -> None:
    """Tell the coordinator this worker cannot start, in one line."""
    from replay.results import one_line  # noqa: PLC0415 - after stdout is protected
    write_frame(frames_fd, {"kind": "fatal", "ready": False, "error": one_line(str(error))})


def open_worker_device(frames_fd: int, args: argparse.Namespace):
    """(device, DeviceInfo) for the parsed worker options; None (after the fatal frame) when it cannot open."""
    from replay.backends.device import open_device  # noqa: PLC0415 - after stdout is protected
    try:
        return open_device(args.device, l1_small_size=args.l1_small_size)
    except Exception as e:  # noqa: BLE001 - report, whatever it is
        send_fatal(frames_fd, e)
        return None


def answer(backend, req: dict) -> dict:
    """One request's result as a dict; an optrace bug becomes an internal ttnn_error, never a dead worker."""
    from replay.mapping import Case  # noqa: PLC0415
    from replay.results import ReplayResult, one_line  # noqa: PLC0415
    sig = req.get("sig")
    _test_op(sig[1] if isinstance(sig, list) and len(sig) > 1 else "")
    try:
        result = backend.run(Case.from_wire(sig), inputs=req.get("inputs"))
    except Exception as e:  # noqa: BLE001 - an optrace bug must not lose the other signatures
        result = ReplayResult(signature_id=str(sig[0]) if sig else "", op=str(sig[1]) if sig else "",
                              status="ttnn_error", backend="ttnn", device=backend.board, mock=backend.mock,
                              reason=f"optrace internal error: {type(e).__name__}: {one_line(str(e))}",
                              extra={"internal": True})
    return result.to_json()


def main(argv: list[str] | None = None) -> int:
    """Open the device, then answer signature requests on stdin until shutdown or end of stdin."""
    args = worker_parser("python -m replay.run.worker", __doc__.split("\n")[0]).parse_args(argv)
    frames_fd = protect_stdout()
    stdin = sys.stdin.buffer
    opened = open_worker_device(frames_fd, args)
    if opened is None:
        return 2
    device, info = opened
    from replay.backends.device import close_device  # noqa: PLC0415 - after stdout is protected
    from replay.backends.ttnn_ops import TtnnBackend  # noqa: PLC0415 - imports ttnn
    from replay.mapping import PortSettings  # noqa: PLC0415

    settings = PortSettings(dtype=args.dtype, layout=args.layout, memory=args.memory)
    backend = TtnnBackend(device, settings, board=info.board, mock=info.mock)
    write_frame(frames_fd, {"kind": "ready", "ready": True, "device": info.to_json(), "board": info.board, "mock": info.mock,
                            "note": info.note, "ttnn_version": info.ttnn_version,
                            "settings": {"dtype": settings.dtype, "layout": settings.layout,
                                         "memory": settings.memory}})
    try:
        while True:
            req = read_frame(stdin)
            if req is None or req.get("cmd") == "shutdown":
                break
            write_frame(frames_fd, {"kind": "result", "id": req.get("id"), "result": answer(backend, req)})
    finally:
        close_device(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
