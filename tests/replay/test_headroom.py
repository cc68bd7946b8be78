"""Headroom: bisection over re-traced input sizes agrees with direct replays just below and above."""
import json

from replay.headroom import (
    _size,
    headroom,
    headroom_rows,
    largest,
    load_headroom_rows,
    probe_estimate,
    render_headroom,
    search,
    write_headroom,
)


def test_doubling_then_bisection_finds_the_last_size_that_fits():
    seen = []

    def fits(k):
        seen.append(k)
        return k <= 37
    assert largest(fits, 1, 1000) == (37, 38)
    assert largest(lambda k: True, 1, 20) == (20, None)
    assert len(seen) < 15


def test_bisection_between_known_bounds_stops_at_its_probe_budget_and_says_so():
    assert search(lambda k: k <= 37, 20, 392, 1000) == (37, 38, True)
    calls = []
    k, hi, exact = search(lambda k: calls.append(k) or k <= 37, 20, 392, 1000, budget=3)
    assert len(calls) == 3 and not exact and k <= 37 < hi


def test_yolov8s_headroom_on_the_estimate_matches_direct_replays_below_and_above(tmp_path):
    from capture.registry import load_registry, lookup
    result = headroom("yolov8s", step=2048, confirm=False, max_batch=4, folder=str(tmp_path), op_probes=1)
    res = result["resolution"]
    entry = lookup(load_registry(), "yolov8s")
    k = res["height"] // 2048
    below = probe_estimate(entry, 1, *_size(entry, k, 2048), str(tmp_path / "direct"))
    above = probe_estimate(entry, 1, *_size(entry, k + 1, 2048), str(tmp_path / "direct"))
    assert below.fits and not above.fits
    assert res["above"]["first_failure"] == above.first_failure
    assert result["batch"]["batch"] == 4 and result["batch"]["above"] is None   # the search limit fits
    text = render_headroom(result)
    assert f"batch 1, {res['height']} x {res['width']}" in text and "alone it fits up to" in text


def test_stored_headroom_is_found_for_the_same_device_memory_and_models_only(tmp_path):
    result = {"model": "m", "device": "n150", "memory": "dram", "step": 32, "confirm": True,
              "resolution": {"batch": 1, "height": 288, "width": 288, "confirmed": "mock", "exact": True,
                             "above": {"first_failure": "call 0 conv cb_overflow"},
                             "estimate": {"batch": 1, "height": 672, "width": 672}, "why": "no CBs"},
              "batch": None}
    path = write_headroom(result, str(tmp_path))
    with open(path) as f:
        assert json.load(f)["model"] == "m"
    assert path.endswith("headroom_n150_dram_m.json")
    [row] = load_headroom_rows(str(tmp_path), "n150", "dram", {"m"})
    assert (row.height, row.confirmed, row.estimate_bound, row.why) == (288, "mock", "batch 1, 672 x 672", "no CBs")
    assert load_headroom_rows(str(tmp_path), "p150", "dram", {"m"}) == []
    assert load_headroom_rows(str(tmp_path), "n150", "dram", {"other"}) == []
    assert headroom_rows(result) == [row]
