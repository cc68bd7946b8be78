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


# The records' own fast paths (TensorMeta/OpCall from_wire, the scope table): a valid entry is read
# with no message made, and every entry the full checks refuse is still refused with its one line.
from capture.schema import OpCall, OpInfo, TensorMeta, _check_scopes  # noqa: E402

TENSOR = [[2, 3], 0, None, 0, 7, 1, "w"]
TENSOR_BAD = [(0, [2, True]), (0, None), (1, 2), (1, True), (1, -1), (2, [3]), (2, [3, True]), (3, -1), (3, 1.0),
              (4, -2), (5, 5), (5, None), (6, 3)]
OPS = [OpInfo(name="aten.add.Tensor", arg_names=["self", "other"], return_count=1, schema="")]
CALL = [0, [["T", 0], ["int", 1]], [["T", 1]], 0]
CALL_BAD = [(0, 1), (0, True), (1, [["T", 0]]), (1, [["T", 0], ["int", 1.5]]), (2, None), (2, [["T", 9]]),
            (3, 2), (3, True)]


def _mutated(entry: list, at: int, value) -> list:
    out = list(entry)
    out[at] = value
    return out


def test_a_valid_tensor_entry_reads_back_with_its_contiguous_stride_filled_in():
    meta = TensorMeta.from_wire(TENSOR, Checker("t.msgpack", VALUE_TAGS), 0, ["float32", "int64"])
    assert meta == TensorMeta(shape=[2, 3], dtype="float32", stride=[3, 1], storage_offset=0, storage_id=7,
                              kind="param", name="w")


@pytest.mark.parametrize("raw", [_mutated(TENSOR, at, v) for at, v in TENSOR_BAD] + [TENSOR[:6], "x"])
def test_a_bad_tensor_entry_is_refused_in_one_line_naming_it(raw):
    with pytest.raises(TraceError, match=r"^t\.msgpack: not a valid optrace trace: tensors\[0\][^\n]*$"):
        TensorMeta.from_wire(raw, Checker("t.msgpack", VALUE_TAGS), 0, ["float32", "int64"])


def test_a_valid_call_entry_reads_back():
    call = OpCall.from_wire(CALL, Checker("t.msgpack", VALUE_TAGS), 3, OPS, 2, 1)
    assert (call.index, call.op, call.args, call.outputs, call.scope, call.signature) == (3, 0, CALL[1], CALL[2], 0, -1)


@pytest.mark.parametrize("raw", [_mutated(CALL, at, v) for at, v in CALL_BAD] + [CALL[:3]])
def test_a_bad_call_entry_is_refused_in_one_line_naming_it(raw):
    with pytest.raises(TraceError, match=r"^t\.msgpack: not a valid optrace trace: calls\[3\][^\n]*$"):
        OpCall.from_wire(raw, Checker("t.msgpack", VALUE_TAGS), 3, OPS, 2, 1)


@pytest.mark.parametrize("scopes", [[[0, 3]], [[3]], [[-1]], [[True]], [3], "x"])
def test_a_bad_scope_table_is_refused_in_one_line(scopes):
    with pytest.raises(TraceError, match=r"^t\.msgpack: not a valid optrace trace: scopes[^\n]*$"):
        _check_scopes(scopes, Checker("t.msgpack", VALUE_TAGS), 3)


def test_reading_a_bad_trace_leaves_the_cyclic_gc_on_as_it_was(tmp_path):
    import gc

    from capture.schema import read_trace
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x93\x01\x02")          # msgpack, not a trace
    assert gc.isenabled()
    with pytest.raises(TraceError, match="bad.msgpack: not a valid optrace trace"):
        read_trace(str(bad))
    assert gc.isenabled()
