"""The trace reader's fast path (Checker.values_ok) accepts exactly what its full checks accept."""
import pytest

from capture.schema import VALUE_TAGS
from capture.wirecheck import Checker, TraceError

GOOD = [["int", 3], ["T", 0], ["T", 4], ["float", 1.5], ["bool", True], ["none", None], ["str", "x"],
        ["dtype", "float32"], ["list", [["int", 1], ["list", [["T", 1]]]]], ["list", []]]
BAD = [["int", True], ["int", 1.0], ["T", 5], ["T", -1], ["T", True], ["float", 1], ["bool", 0],
       ["none", 0], ["str", 3], ["dtype", None], ["nope", 1], ["list", [["int", "1"]]], ["list", 3],
       ["int"], "int", ["int", 1, 2], ["list", [["T", 9]]]]
SIG_GOOD = [["T", [[1, 2], "float32", [2, 1]]], ["list", [["T", [[], "int64", []]]]]]
SIG_BAD = [["T", [[1, 2], "float32"]], ["T", [[1, True], "float32", [2, 1]]], ["T", [[1], 3, [1]]], ["T", 0]]


def _full_check_passes(value, n_tensors) -> bool:
    try:
        Checker("t.msgpack", VALUE_TAGS).value(value, "v", n_tensors)
        return True
    except TraceError:
        return False


@pytest.mark.parametrize("value,n_tensors", [(v, 5) for v in GOOD + BAD] + [(v, None) for v in SIG_GOOD + SIG_BAD])
def test_fast_check_of_a_trace_value_agrees_with_the_full_check(value, n_tensors):
    assert Checker("t.msgpack", VALUE_TAGS).values_ok([value], n_tensors) == _full_check_passes(value, n_tensors)


def test_fast_check_refuses_values_nested_too_deep():
    v = ["int", 1]
    for _ in range(40):
        v = ["list", [v]]
    assert not _full_check_passes(v, 5)
    assert not Checker("t.msgpack", VALUE_TAGS).values_ok([v], 5)
