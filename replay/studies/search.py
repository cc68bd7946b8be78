"""The size searches headroom runs: pure algorithms over ``fits(k) -> bool``, no model, no device.

``k`` counts steps of one axis (pixels on the short side / ``step``, or the batch). ``search``
doubles until a failure and then bisects; ``device_search`` starts from the estimate's bound and
spends as few device runs as it can (each is an in-context replay of a whole model).
"""
from __future__ import annotations

from typing import Callable

# Below a failing estimate bound the device first tries bound - 1 and - 2 steps (then - 4, - 8, ...
# with a larger gallop). Each such probe is pure extra when the device's limit is far below: with two,
# no limit costs more than two runs over a plain bisection from the traced size; with three, some do.
GALLOP_PROBES = 2

Fits = Callable[[int], bool]
# k failing on the device -> the largest size below it at which the call failing there fits alone
# (None: no answer, e.g. it fits alone at k too, or the run crashed)
Localize = Callable[[int], "int | None"]


def search(fits: Fits, lo: int, hi: int | None, hi_limit: int, budget: int | None = None,
           prefetch: Callable[[list[int]], None] | None = None) -> tuple[int, int | None, bool]:
    """Largest k in [lo, hi_limit] with fits(k), given fits(lo) and (when hi is not None) not fits(hi):
    doubling while no failure is known, then bisection. At most ``budget`` calls of fits. Returns
    (k, the smallest failing k seen or None, exact: k + 1 is known to fail or k is hi_limit).
    With ``prefetch`` (runs sizes side by side) the interval is cut in three per round instead of two:
    both cut points are announced, then asked (more runs in all, fewer rounds of waiting) while the
    budget left can finish that way; else it bisects."""
    used = 0
    k = lo
    while hi is None:
        nxt = min(k * 2, hi_limit)
        if nxt == k:
            return k, None, True
        if budget is not None and used >= budget:
            return k, None, False
        used += 1
        if fits(nxt):
            k = nxt
        else:
            hi = nxt
    while hi - k > 1:
        if budget is not None and used >= budget:
            return k, hi, False
        if prefetch is not None and hi - k > 2 and (budget is None or budget - used >= _trisect_runs(hi - k)):
            k, hi = _trisect(fits, k, hi, prefetch)
            used += 2
            continue
        used += 1
        mid = (k + hi) // 2
        if fits(mid):
            k = mid
        else:
            hi = mid
    return k, hi, True


def _trisect_runs(width: int) -> int:
    """Runs a search cutting an interval of ``width`` steps in three per round needs to finish (two a
    round); with fewer left, bisection (one a round) still ends exact where trisection would not."""
    rounds = 0
    while width > 1:
        width, rounds = -(-width // 3), rounds + 1
    return 2 * rounds


def _trisect(fits: Fits, k: int, hi: int, prefetch: Callable[[list[int]], None]) -> tuple[int, int]:
    """One round over (k, hi) with two cut points run side by side: the new (k, hi)."""
    a, b = k + (hi - k) // 3, k + 2 * (hi - k) // 3
    b = max(b, a + 1)
    prefetch([a, b])
    fits_b, fits_a = fits(b), fits(a)
    if fits_b:
        return b, hi
    return (a, b) if fits_a else (k, a)


def largest(fits: Fits, lo: int, hi_limit: int) -> tuple[int, int | None]:
    """Largest k in [lo, hi_limit] with fits(k) (fits(lo) assumed); returns (k, smallest failing k or None)."""
    k, hi, _ = search(fits, lo, None, hi_limit)
    return k, hi


# k -> how full of memory its run was (the peak over its calls, or at the failing call what it asked
# for on top of what was held, as a fraction of the bank; > 1 does not fit); None when unknown
Need = Callable[[int], "float | None"]


def largest_guided(fits: Fits, lo: int, hi_limit: int, need: Need, power: int = 1) -> tuple[int, int | None]:
    """``largest`` steered by how full each run was: memory grows about linearly in k ** power (batch:
    1, resolution: 2, the area), so the next k is where the line through the two nearest runs reaches a
    full bank; doubling or bisection when that says nothing new, and a bisection round after any guess
    that did not halve the interval. fits(lo) is assumed; returns (k, the smallest failing k or None)."""
    k, hi = lo, None
    seen: dict[int, float] = {}
    if (r := need(lo)) is not None:
        seen[lo] = r
    halved = True
    while hi is None or hi - k > 1:
        if hi is None and k >= hi_limit:
            return k, None
        top = hi_limit + 1 if hi is None else hi
        g = _line_guess(seen, k, hi, power) if halved else None
        if g is None:
            g = min(k * 2, hi_limit) if hi is None else (k + hi) // 2
            if g == k:
                return k, None
        g = max(k + 1, min(g, top - 1))
        if g <= k:
            return k, hi
        width = (top - k) if hi is not None else None
        if fits(g):
            k = g
        else:
            hi = g
        if (r := need(g)) is not None:
            seen[g] = r
        halved = width is None or hi is None or 2 * (hi - k) <= width
    return k, hi


def _line_guess(seen: dict[int, float], k: int, hi: int | None, power: int) -> int | None:
    """Where need reaches 1 on the line through the largest fitting run and the smallest failing one
    (or, none failed yet, the two largest fitting runs), in k ** power; None without two usable runs."""
    if hi is not None and hi not in seen:   # it failed some other way (no numbers): the line says nothing
        return None
    below = sorted(x for x in seen if x <= k)
    pts = below[-1:] + ([hi] if hi is not None else below[-2:-1])
    if len(pts) < 2:
        return None
    (x0, r0), (x1, r1) = ((p ** power, seen[p]) for p in sorted(pts))
    if r1 <= r0:
        return None
    x = x1 + (1.0 - r1) * (x1 - x0) / (r1 - r0)
    return int(max(x, 1.0) ** (1.0 / power)) if x > 0 else None


class _Counted:
    """fits, counting its calls against a budget."""

    def __init__(self, fits: Fits, budget: int):
        self.fits, self.budget, self.used = fits, budget, 0

    def __call__(self, k: int) -> bool:
        self.used += 1
        return self.fits(k)

    def left(self) -> int:
        return max(0, self.budget - self.used)


def device_search(fits: Fits, lo: int, bound: int | None, hi_limit: int, budget: int,
                  gallop: int = GALLOP_PROBES, prefetch: Callable[[list[int]], None] | None = None,
                  localize: Localize | None = None) -> tuple[int | None, int | None, bool]:
    """Largest k in [lo, hi_limit] with fits(k) (one device run per call), starting from the
    estimate's bound (None: the estimate fails at lo already). Returns (k, the smallest failing k
    seen or None, exact); k is always one fits passed, None when lo itself fails. At most about
    ``budget`` calls: the bound and one above it, and lo when nothing else passed, run regardless.
    ``prefetch(ks)``, when given, is told the gallop steps below a failing bound before they are
    asked one by one, so a caller can run them side by side. ``localize``, when given, is asked
    below a failing bound first (``_localized``)."""
    probe = _Counted(fits, budget)
    if bound is None:
        if not probe(lo):
            return None, lo, True
        return search(probe, lo, None, hi_limit, probe.left(), prefetch)
    if probe(bound):
        if bound >= hi_limit:
            return bound, None, True
        if not probe(bound + 1):
            return bound, bound + 1, True
        return search(probe, bound + 1, None, hi_limit, probe.left(), prefetch)   # the estimate is too cautious
    if localize is not None:
        return _localized(probe, lo, bound, gallop, localize, prefetch)
    if prefetch is not None:
        prefetch(gallop_steps(lo, bound, gallop, probe.left()))
    return _below_failing_bound(probe, lo, bound, hi_limit, gallop, prefetch)


def _localized(probe: _Counted, lo: int, hi: int, gallop: int, localize: Localize,
               prefetch: Callable[[list[int]], None] | None) -> tuple[int | None, int | None, bool]:
    """Below a failing bound ``hi``, each round asks ``localize`` first: where the failing call alone
    stops fitting (runs of one op, seconds, instead of the whole model); the model then runs there
    and one above. Without an answer, the gallop (once), else one bisection round: one run in the
    middle while nothing fits yet (the upper cut point of a round in three would be the costliest run,
    and the next failure is localized again), then two cut points with ``prefetch`` while the budget
    can finish that way. Every answer is a size ``probe`` passed, exact when one above failed."""
    k = lo - 1          # the largest size known to fit; lo - 1: none yet (lo runs only if all else fails)
    galloped = False
    while hi - k > 1 and probe.used < probe.budget:
        cand = localize(hi)
        if cand is not None and k < cand < hi:
            steps = [cand] + ([cand + 1] if cand + 1 < hi else [])
        elif not galloped and gallop and k < lo:
            galloped, steps = True, gallop_steps(lo, hi, gallop, probe.left())
        elif k >= lo and prefetch is not None and hi - k > 2 and probe.left() >= _trisect_runs(hi - k):
            steps = sorted({k + (hi - k) // 3, max(k + (hi - k) // 3 + 1, k + 2 * (hi - k) // 3)})
        else:
            steps = [max(lo, (k + hi) // 2)]
        steps = [s for s in steps if k < s < hi][:max(1, probe.left())]
        if not steps:
            break
        if prefetch is not None and len(steps) > 1:
            prefetch(steps)
        passed = {s: probe(s) for s in steps}
        k = max([k] + [s for s, ok in passed.items() if ok])
        hi = min([hi] + [s for s, ok in passed.items() if not ok and s > k])
    if k >= lo:
        return k, hi, hi == k + 1
    if hi == lo or not probe(lo):   # lo: the traced size, run only when every size above it fails
        return None, lo, True
    return lo, hi, hi == lo + 1


def gallop_steps(lo: int, bound: int, gallop: int, budget: int) -> list[int]:
    """The steps the gallop below a failing bound asks first: bound - 1, - 2, - 4, ... (at most
    ``gallop`` of them, within budget, none below lo)."""
    out, d = [], 1
    for _ in range(min(gallop, budget)):
        k = max(lo, bound - d)
        if out and k >= out[-1] or k >= bound:
            break
        out.append(k)
        d *= 2
    return out


def _below_failing_bound(probe: _Counted, lo: int, bound: int, hi_limit: int, gallop: int,
                         prefetch: Callable[[list[int]], None] | None = None) -> tuple[int | None, int | None, bool]:
    """The device fails at the estimate's bound: gallop down (bound - 1, - 2, - 4, ... steps), then
    bisect between lo and the lowest failure."""
    hi, d = bound, 1
    for _ in range(gallop):
        k = max(lo, bound - d)
        if k >= hi or probe.used >= probe.budget:
            break
        if probe(k):
            return search(probe, k, hi, hi_limit, probe.left(), prefetch)
        hi, d = k, d * 2
    if hi == lo:
        return None, lo, True
    # Bisection between lo and the lowest failure; lo - 1 stands for "nothing passed yet", so lo is
    # run only when every size above it fails (the traced size, not yet run on the device).
    k, hi, exact = search(probe, lo - 1, hi, hi_limit, probe.left(), prefetch)
    if k >= lo:
        return k, hi, exact
    if hi == lo:
        return None, lo, True
    if not probe(lo):   # the budget ran out before anything passed
        return None, lo, True
    return lo, hi, hi == lo + 1
