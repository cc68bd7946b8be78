"""What a signature looks like to a user: its tensor arguments' shapes, as the reports and studies print them.

Ground for every stage above capture: imports only the trace schema, neither torch nor ttnn.
"""
from __future__ import annotations

from capture.schema import Signature, tensor_payloads


def input_shapes(sig: Signature) -> list[list[int]]:
    """Shapes of the signature's tensor arguments, in argument order."""
    return [t[0] for t in tensor_payloads(sig.args)]


def format_shapes(shapes: list[list[int]]) -> str:
    """'[1, 3, 640, 640]; [32, 3, 3, 3]' -- the Input_Shape text of the failure CSV."""
    return "; ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes)
