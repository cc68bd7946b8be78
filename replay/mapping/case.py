"""The captured signature as the worker receives it, read by schema argument name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Traced:
    """A traced tensor argument: metadata only."""
    shape: list[int]
    dtype: str
    stride: list[int]

    @property
    def rank(self) -> int:
        return len(self.shape)


def _unwrap(tagged: list) -> Any:
    tag, payload = tagged
    if tag == "T":
        return Traced(list(payload[0]), payload[1], list(payload[2]))
    if tag == "list":
        return [_unwrap(x) for x in payload]
    return payload


@dataclass
class Case:
    """One signature as the worker receives it: [id, op, args, outputs, count, calls, arg_names]."""
    id: str
    op: str
    args: list
    outputs: list
    arg_names: list[str]

    @staticmethod
    def from_wire(wire: list) -> "Case":
        sig_id, op, args, outputs = wire[0], wire[1], wire[2], wire[3]
        names = list(wire[6]) if len(wire) > 6 and wire[6] else [f"arg{i}" for i in range(len(args))]
        return Case(sig_id, op, list(args), list(outputs), names)

    def __post_init__(self):
        self._named = {n: _unwrap(v) for n, v in zip(self.arg_names, self.args)}

    def get(self, name: str, default: Any = None) -> Any:
        """The argument's plain value (tensors as Traced), or default when absent or None."""
        v = self._named.get(name)
        return default if v is None else v

    def tensor(self, name: str) -> Traced | None:
        v = self._named.get(name)
        return v if isinstance(v, Traced) else None

    def out_dtypes(self) -> list[str]:
        """Traced output tensor dtypes (torch names), lists of tensors flattened."""
        return [o.dtype for o in (_unwrap(v) for v in self.outputs) if isinstance(o, Traced)]

    def out_shapes(self) -> list[list[int]]:
        """Traced output tensor shapes, lists of tensors flattened."""
        shapes: list[list[int]] = []

        def walk(v):
            if isinstance(v, Traced):
                shapes.append(v.shape)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        for o in self.outputs:
            walk(_unwrap(o))
        return shapes
