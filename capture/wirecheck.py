"""Checks on the raw values of a trace file: nothing in a file is trusted until it passes here.

Every failure is a one-line TraceError naming the file and the field. capture/schema.py's
``from_wire`` methods take their raw entries through a Checker.
"""
from __future__ import annotations

from typing import Any

class TraceError(ValueError):
    """A trace file that cannot be read; the message is one line naming the file and the problem."""


class Checker:
    """Checks wire values of one file; every failure is a one-line TraceError naming file and field.

    Nothing of the file is trusted: each ``from_wire`` takes its raw entry through these checks.
    """

    def __init__(self, path: str, value_tags: dict[str, str]):
        self.path = path
        self.value_tags = value_tags      # the schema's VALUE_TAGS: tags a value may carry

    def need(self, cond: bool, what: str) -> None:
        """Raise a TraceError saying ``what`` unless cond holds."""
        if not cond:
            raise fail_trace(self.path, what)

    def lst(self, v: Any, what: str, n: int | None = None) -> list:
        """v as a list (of exactly n entries when n is given)."""
        self.need(isinstance(v, list), f"{what} must be a list")
        if n is not None:
            self.need(len(v) == n, f"{what} must have {n} entries, has {len(v)}")
        return v

    def int_(self, v: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
        """v as an int (not a bool) with lo <= v < hi."""
        if type(v) is int and (lo is None or v >= lo) and (hi is None or v < hi):  # a valid file
            return v
        self.need(isinstance(v, int) and not isinstance(v, bool), f"{what} must be an integer")
        if lo is not None:
            self.need(v >= lo, f"{what} must be >= {lo}")
        if hi is not None:
            self.need(v < hi, f"{what} out of range (>= {hi})")
        return v

    def str_(self, v: Any, what: str) -> str:
        """v as a str."""
        self.need(isinstance(v, str), f"{what} must be a string")
        return v

    def ints(self, v: Any, what: str) -> list[int]:
        """v as a list of ints."""
        if int_list(v):  # a valid file: no message made per entry
            return v
        for i, x in enumerate(self.lst(v, what)):
            self.int_(x, f"{what}[{i}]")
        return v

    def strs(self, v: Any, what: str, each: str) -> list[str]:
        """v as a list of strs; ``each`` names an entry in the message ({j}: its index)."""
        for j, x in enumerate(self.lst(v, what)):
            self.str_(x, each.format(j=j))
        return v

    def value(self, v: Any, what: str, n_tensors: int | None, depth: int = 0) -> None:
        """A tagged value (one of value_tags); n_tensors None means the signature form of a tensor."""
        self.need(depth < 32, f"{what} nests too deep")
        self.lst(v, what, 2)
        tag, payload = v
        self.need(tag in self.value_tags, f"{what} has unknown value tag {str(tag)[:20]!r}")
        if tag == "T":
            if n_tensors is None:  # signature form: [shape, dtype, stride]
                self.lst(payload, what, 3)
                self.ints(payload[0], what + " shape")
                self.str_(payload[1], what + " dtype")
                self.ints(payload[2], what + " stride")
            else:
                self.int_(payload, what, 0, n_tensors)
        elif tag == "int":
            self.int_(payload, what)
        elif tag == "float":
            self.need(isinstance(payload, float), f"{what} must be a float")
        elif tag == "bool":
            self.need(isinstance(payload, bool), f"{what} must be a bool")
        elif tag == "none":
            self.need(payload is None, f"{what} must be nil")
        elif tag == "list":
            for i, x in enumerate(self.lst(payload, what)):
                self.value(x, f"{what}[{i}]", n_tensors, depth + 1)
        else:
            self.str_(payload, what)


    def values_ok(self, values: list, n_tensors: int | None, depth: int = 0) -> bool:
        """True when every tagged value in values passes value() (same rules, no message made):
        the reader's fast path through a valid file; on False it runs value() for the message."""
        if depth >= 32:
            return False
        for v in values:
            if type(v) is not list or len(v) != 2:
                return False
            tag, payload = v
            if tag == "int" or (tag == "T" and n_tensors is not None):
                if type(payload) is not int or (tag == "T" and not 0 <= payload < n_tensors):
                    return False
            elif tag == "T":
                if not (type(payload) is list and len(payload) == 3 and type(payload[1]) is str
                        and int_list(payload[0]) and int_list(payload[2])):
                    return False
            elif tag == "list":
                if type(payload) is not list or not self.values_ok(payload, n_tensors, depth + 1):
                    return False
            elif not (type(tag) is str and tag in self.value_tags and _scalar_ok(tag, payload)):
                return False
        return True


def int_list(v: Any) -> bool:
    """True when v is a list of ints (bools excluded), as ``Checker.ints`` requires: the readers' fast paths."""
    return type(v) is list and _INT_ONLY.issuperset(map(type, v))


_INT_ONLY = frozenset((int,))


def _scalar_ok(tag: str, payload: Any) -> bool:
    """What value() requires of the payload of a scalar tag."""
    if tag == "float":
        return isinstance(payload, float)
    if tag == "bool":
        return isinstance(payload, bool)
    if tag == "none":
        return payload is None
    return isinstance(payload, str)


def fail_trace(path: str, what: str) -> TraceError:
    """The one-line error for a file that is not a valid trace."""
    return TraceError(f"{path}: not a valid optrace trace: {what}")
