"""Headroom: bisection over re-traced input sizes agrees with direct replays just below and above."""
import json

from replay.report.headroom import headroom_rows, load_headroom_rows, render_headroom
from replay.studies.headroom import _size, headroom, probe_estimate
from replay.studies.headroom_result import HeadroomResult, write_headroom
from replay.studies.search import device_search, gallop_steps, largest, search


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
    found = headroom("yolov8s", step=2048, confirm=False, max_batch=4, folder=str(tmp_path), op_probes=1)
    result = found.to_json()
    res = result["resolution"]
    entry = lookup(load_registry(), "yolov8s")
    k = res["height"] // 2048
    below = probe_estimate(entry, 1, *_size(entry, k, 2048), str(tmp_path / "direct"))
    above = probe_estimate(entry, 1, *_size(entry, k + 1, 2048), str(tmp_path / "direct"))
    assert below.fits and not above.fits
    assert res["above"]["first_failure"] == above.first_failure
    assert result["batch"]["batch"] == 4 and result["batch"]["above"] is None   # the search limit fits
    text = render_headroom(found)
    assert f"batch 1, {res['height']} x {res['width']}" in text and "alone it fits up to" in text


def test_stored_headroom_is_found_for_the_same_device_memory_and_models_only(tmp_path):
    result = {"model": "m", "device": "n150", "memory": "dram", "step": 32, "confirm": True,
              "resolution": {"batch": 1, "height": 288, "width": 288, "confirmed": "mock", "exact": True,
                             "above": {"first_failure": "call 0 conv cb_overflow"},
                             "estimate": {"batch": 1, "height": 672, "width": 672}, "why": "no CBs"},
              "batch": None}
    path = write_headroom(HeadroomResult.from_json(result), str(tmp_path))
    with open(path) as f:
        assert json.load(f)["model"] == "m"
    assert path.endswith("headroom_n150_dram_m.json")
    [row] = load_headroom_rows(str(tmp_path), "n150", "dram", {"m"})
    assert (row.height, row.confirmed, row.estimate_bound, row.why) == (288, "mock", "batch 1, 672 x 672", "no CBs")
    assert load_headroom_rows(str(tmp_path), "p150", "dram", {"m"}) == []
    assert load_headroom_rows(str(tmp_path), "n150", "dram", {"other"}) == []
    assert headroom_rows(HeadroomResult.from_json(result)) == [row]


def _old_device_bisection(fits, lo, bound, hi_limit):
    """The device search before galloping: the bound, then the traced size, then bisection between."""
    if fits(bound):
        return None
    assert fits(lo)
    return search(fits, lo, bound, hi_limit)


def _counting(limit):
    calls = []

    def fits(k):
        calls.append(k)
        return k <= limit
    return fits, calls


def test_device_failing_just_below_the_estimate_bound_is_found_in_a_few_device_runs():
    # swin_t batch on the mock n150: the estimate's bound is 252, the device passes 250 and fails 251
    fits, calls = _counting(250)
    assert device_search(fits, 1, 252, 1024, budget=12) == (250, 251, True)
    assert calls == [252, 251, 250] and len(calls) <= 4
    fits, calls = _counting(248)   # a longer gallop reaches further below the bound
    assert device_search(fits, 1, 252, 1024, budget=12, gallop=3) == (248, 249, True) and len(calls) == 5


def test_gallop_steps_below_a_failing_bound_are_announced_for_running_side_by_side():
    fits, calls = _counting(250)
    told = []
    assert device_search(fits, 1, 252, 1024, budget=12, prefetch=told.append) == (250, 251, True)
    assert told == [[251, 250]] and calls == [252, 251, 250]   # announced before they are asked
    assert gallop_steps(1, 2, 2, 12) == [1] and gallop_steps(5, 5, 2, 12) == [] and gallop_steps(1, 252, 2, 1) == [251]
    fits, calls = _counting(252)   # the bound fits and one above fails: nothing to gallop, nothing announced
    told.clear()
    device_search(fits, 1, 252, 1024, budget=12, prefetch=told.append)
    assert told == []


def test_device_search_with_side_by_side_runs_finds_the_same_limit_in_fewer_rounds():
    for lo, bound in ((1, 389), (20, 392), (1, 1024)):
        for limit in list(range(lo, bound, 7)) + [bound - 1, bound - 3]:
            fits, calls = _counting(limit)
            alone = device_search(fits, lo, bound, 4096, budget=100)
            rounds = []
            fits, calls = _counting(limit)
            both = device_search(fits, lo, bound, 4096, budget=100, prefetch=rounds.append)
            assert both == alone == (limit, limit + 1, True), (lo, bound, limit)
            asked_alone = len(calls)
            # a round is one batch of side-by-side runs or one run on its own
            assert len(rounds) + sum(1 for k in calls if not any(k in r for r in rounds)) <= asked_alone + 1
    assert search(lambda k: k <= 17, 1, 100, 4096, prefetch=lambda ks: None) == (17, 18, True)
    # yolov8s batch on the mock n150: bound 389 fails, and so do 388 and 387; 12 runs in all still end exact
    for limit in (78, 5, 300):
        fits, calls = _counting(limit)
        assert device_search(fits, 1, 389, 1024, budget=12, prefetch=lambda ks: None) == (limit, limit + 1, True)


def test_device_limit_far_below_the_estimate_bound_costs_at_most_two_runs_more_than_plain_bisection():
    for lo, bound in ((1, 252), (1, 389), (7, 392), (1, 1024)):
        for limit in range(lo, bound):
            old_fits, old_calls = _counting(limit)
            k, hi, _ = _old_device_bisection(old_fits, lo, bound, 4096)
            for localize in (None, lambda k: None):   # and when localizing finds nothing to bisect alone
                fits, calls = _counting(limit)
                assert device_search(fits, lo, bound, 4096, budget=100, localize=localize) == (k, hi, True) \
                    == (limit, limit + 1, True)
                assert len(calls) <= len(old_calls) + 2, (lo, bound, limit, calls, old_calls)
                assert len(set(calls)) == len(calls)


def test_device_search_answers_a_size_the_device_passed_even_when_its_budget_runs_out():
    for limit in (1, 5, 100, 250):
        fits, calls = _counting(limit)
        k, hi, exact = device_search(fits, 1, 252, 1024, budget=4)
        assert k in calls and k <= limit < hi and exact == (hi == k + 1)
        assert len(calls) <= 5
    fits, calls = _counting(0)   # the traced size itself fails on the device
    assert device_search(fits, 1, 252, 1024, budget=12)[0] is None and calls[-1] == 1


def test_device_search_goes_upward_when_the_estimate_is_too_cautious_or_failed_at_the_traced_size():
    fits, calls = _counting(37)
    assert device_search(fits, 1, 37, 1024, budget=12) == (37, 38, True) and calls == [37, 38]
    fits, calls = _counting(100)
    assert device_search(fits, 1, 37, 1024, budget=12) == (100, 101, True)
    assert device_search(_counting(20)[0], 1, None, 1024, budget=12) == (20, 21, True)
    assert device_search(_counting(2000)[0], 1, 1024, 1024, budget=12) == (1024, None, True)


def test_a_failure_localized_by_its_op_alone_is_confirmed_in_two_model_runs():
    # yolov8s batch on the mock n150: the estimate's bound is 389, the device fails there; the call that
    # fails (max_pool2d in model.9.m) fits alone up to 120, and the whole model does too
    fits, calls = _counting(120)
    told = []
    found = device_search(fits, 1, 389, 1024, budget=12, prefetch=told.append,
                          localize=lambda k: 120 if k > 120 else None)
    assert found == (120, 121, True) and calls == [389, 120, 121] and told == [[120, 121]]


def test_a_wrong_or_missing_localization_still_ends_at_the_devices_own_limit():
    for limit in (1, 7, 60, 100, 250, 387):
        for guess in (None, 5, 120, 300, 388):
            fits, calls = _counting(limit)
            found = device_search(fits, 1, 389, 1024, budget=40, prefetch=lambda ks: None,
                                  localize=lambda k, g=guess: g if g is not None and g < k else None)
            assert found == (limit, limit + 1, True), (limit, guess, calls)
            assert len(set(calls)) == len(calls)
    for limit in range(1, 389):   # no answer from localize after a crash at the bound: exact within 12 runs
        fits, calls = _counting(limit)
        found = device_search(fits, 1, 389, 1024, budget=12, gallop=0, prefetch=lambda ks: None,
                              localize=lambda k: None)
        assert found == (limit, limit + 1, True) and len(calls) <= 12, (limit, calls)
    fits, calls = _counting(0)   # the traced size itself fails
    assert device_search(fits, 1, 389, 1024, budget=12, localize=lambda k: None)[0] is None and calls[-1] == 1
    fits, calls = _counting(250)   # no localization: the gallop below the bound, as without localize
    assert device_search(fits, 1, 252, 1024, budget=12, prefetch=lambda ks: None,
                         localize=lambda k: None) == (250, 251, True) and calls == [252, 251, 250]


def test_a_model_built_once_traces_every_size_as_a_fresh_build_does(tmp_path):
    from capture.registry import load_registry, lookup
    from replay.studies.headroom import ModelBuilds, trace_at
    entry, builds = lookup(load_registry(), "yolov8s"), ModelBuilds()
    for size in ((2, 640, 640), (1, 128, 128)):   # ultralytics' Detect keeps anchors per input shape
        once = trace_at(entry, *size, str(tmp_path / "once"), builds)
        fresh = trace_at(entry, *size, str(tmp_path / "fresh"))
        assert [c.signature for c in once.calls] == [c.signature for c in fresh.calls]
    assert len(builds.built) == 1


def test_the_estimate_steered_by_how_full_memory_was_finds_the_same_size_in_fewer_runs():
    import random

    from replay.studies.search import largest_guided
    for power in (1, 2):   # batch: memory linear in k; resolution: in k ** 2
        for limit in (1, 5, 120, 250, 389, 700):
            def need(k, limit=limit):
                return 0.02 + 0.98 * k ** power / (limit + 0.5) ** power
            fits, calls = _counting(limit)
            assert largest_guided(fits, 1, 1024, need, power) == largest(_counting(limit)[0], 1, 1024)
            assert len(calls) <= 5, (power, limit, calls)
    for limit in range(1, 300, 3):   # numbers that say nothing, or none: still the same size
        rnd = random.Random(limit)
        for need in (lambda k: rnd.random() * 2, lambda k: None):
            fits, calls = _counting(limit)
            assert largest_guided(fits, 1, 1024, need) == (limit, limit + 1)
            assert len(calls) <= 30   # misleading numbers: at most about twice the plain search (11-18)
    assert largest_guided(lambda k: True, 1, 20, lambda k: 0.01 * k) == (20, None)   # everything fits
    assert largest_guided(lambda k: True, 3, 3, lambda k: None) == (3, None)
