"""Remedies on the estimate: the ladder, folding size-1 dims, the cheapest working configuration."""
from capture.schema import Signature, contiguous_stride
from replay.studies.remedies import choose, find_remedies, fold_trailing_ones, ladder
from replay.results import ReplayResult
from replay.run.runner import RunSettings, UniqueSignature


def T(shape):
    return ["T", [list(shape), "float32", contiguous_stride(shape)]]


def ints(xs):
    return ["list", [["int", d] for d in xs]]


VIEW5D = Signature("view5d", "aten.view.default", [T([160, 100, 512]), ints([160, 100, 512, 1, 1])],
                   [T([160, 100, 512, 1, 1])], 1, [0])


def test_fold_drops_trailing_ones_of_a_view_and_size_one_dims_of_a_permute():
    folded = fold_trailing_ones(VIEW5D, ["self", "size"])
    assert folded.args[1] == ints([160, 100, 512]) and folded.outputs[0][1][0] == [160, 100, 512]
    perm = Signature("p", "aten.permute.default", [T([8, 64, 1, 1]), ints([1, 0, 2, 3])], [T([64, 8, 1, 1])], 1, [0])
    folded = fold_trailing_ones(perm, ["self", "dims"])
    assert folded.args[0][1][0] == [8, 64] and folded.args[1] == ints([1, 0]) and folded.outputs[0][1][0] == [64, 8]
    assert fold_trailing_ones(Signature("r", "aten.relu.default", [T([4, 1])], [T([4, 1])], 1, [0]), ["self"]) is None


def test_ladder_tries_dram_first_when_in_l1_and_no_row_major_for_block_floats():
    names = [v.name for v in ladder(VIEW5D, ["self", "size"], "bfloat16", "TILE", "l1")]
    assert names[0] == "memory=DRAM" and "layout=ROW_MAJOR" in names and "dtype=bfloat8_b" in names
    assert "fold trailing 1s: [160, 100, 512], memory=DRAM" in names
    assert "layout=ROW_MAJOR" not in [v.name for v in ladder(VIEW5D, ["self", "size"], "bfloat8_b", "TILE", "dram")]


def test_the_estimate_finds_the_fold_remedy_for_the_160x100x512x1x1_reshape():
    failing = {"view5d": ReplayResult(signature_id="view5d", op=VIEW5D.op, status="oom_dram", backend="estimate",
                                        device="n150", mock=False)}
    found = find_remedies([UniqueSignature(VIEW5D, ["self", "size"], ["m"])], failing, RunSettings(backend="estimate"))
    assert found["view5d"]["remedy"] == "fold trailing 1s: [160, 100, 512]"


def test_choose_takes_the_fewest_bytes_and_says_none_when_nothing_passes():
    from replay.studies.remedies import Variant
    from replay.results import TensorFootprint
    v1, v2 = (Variant(n, "bfloat16", "TILE", "dram", VIEW5D, []) for n in ("a", "b"))
    big, small = (TensorFootprint([1], "bfloat16", "TILE", "DRAM", 2, [32, 32], n) for n in (4096, 2048))
    r1 = ReplayResult(signature_id="s", op="op", status="pass", backend="ttnn", device="n150", mock=True, outputs=[big])
    r2 = ReplayResult(signature_id="s", op="op", status="pass", backend="ttnn", device="n150", mock=True, outputs=[small])
    assert choose([(v1, r1), (v2, r2)])["remedy"] == "b"
    fail = ReplayResult(signature_id="s", op="op", status="oom_dram", backend="ttnn", device="n150", mock=True)
    assert choose([(v1, fail)]) == {"remedy": "none", "bytes_needed": None, "tried": [["a", "oom_dram"]]}
