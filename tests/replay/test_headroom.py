"""Headroom: bisection over re-traced input sizes agrees with direct replays just below and above."""
from replay.headroom import _size, headroom, largest, probe_estimate, render_headroom


def test_doubling_then_bisection_finds_the_last_size_that_fits():
    seen = []

    def fits(k):
        seen.append(k)
        return k <= 37
    assert largest(fits, 1, 1000) == (37, 38)
    assert largest(lambda k: True, 1, 20) == (20, None)
    assert len(seen) < 15


def test_yolov8s_headroom_on_the_estimate_matches_direct_replays_below_and_above(tmp_path):
    from capture.registry import load_registry, lookup
    result = headroom("yolov8s", step=2048, confirm=False, max_batch=4, folder=str(tmp_path))
    res = result["resolution"]
    entry = lookup(load_registry(), "yolov8s")
    k = res["height"] // 2048
    below = probe_estimate(entry, 1, *_size(entry, k, 2048), str(tmp_path / "direct"))
    above = probe_estimate(entry, 1, *_size(entry, k + 1, 2048), str(tmp_path / "direct"))
    assert below.fits and not above.fits
    assert res["above"]["first_failure"] == above.first_failure
    assert result["batch"]["batch"] == 4 and result["batch"]["above"] is None   # the search limit fits
    text = render_headroom(result)
    assert f"batch 1, {res['height']} x {res['width']}" in text and "; fits at [" in text
