"""capture: trace every aten op a PyTorch model executes into a msgpack trace (docs/trace-format.md).

For your own model in Python::

    from capture import trace_module, write_trace
    trace = trace_module(model, inputs, name="my_net")
    write_trace(trace, "traces/my_net.msgpack")

``trace-model`` (capture/cli.py) does the same for registry models, ad hoc ``source:build`` names
and saved .pt2 programs (docs/models.md). Importing this package needs no torch.
"""
from __future__ import annotations

__all__ = ["trace_module", "write_trace", "read_trace"]


def __getattr__(name: str):
    # lazy: replay imports capture.schema in an environment without torch; keep that import cheap
    if name == "trace_module":
        from capture.api import trace_module
        return trace_module
    if name in ("write_trace", "read_trace"):
        from capture import schema
        return getattr(schema, name)
    raise AttributeError(f"module 'capture' has no attribute {name!r}")
