"""The sum of a decode step's time over many contexts, exactly, with few evaluations.

A generation of n tokens runs n − 1 decode steps whose context grows by one each step. In the roofline the step
time is piecewise affine in the context: every op's FLOPs and bytes are affine in it, an op's time is the max of
its compute and memory times (a kink where they cross) and a sliding window clips the cache (another kink). So
the sum is computed exactly, piece by piece: on an interval [lo, hi] where the step time is affine, the sum over
its integer contexts is (hi − lo + 1) · (f(lo) + f(hi)) / 2 (an arithmetic series). An interval counts as affine
when f at its three quarter points equals the chord to ``rtol``; otherwise it is halved; short intervals are
summed term by term. A kink hides from this test only if further kinks inside the same quarter undo its slope
change exactly and bring f back onto the chord (a "tent"), which takes an exact coincidence of parameters; the
result then equals the term-by-term sum to ``rtol`` (tests/test_accuracy_recipe.py compares both). Cost: about
5 evaluations per kink per halving level (tens instead of thousands for 2,048 steps).
"""

from __future__ import annotations

DIRECT_BELOW = 16  # intervals of fewer integers than this are summed term by term
RTOL = 1e-9  # a quarter point within RTOL of the chord counts as on it


def sum_piecewise_affine(f, lo: int, hi: int, *, rtol: float = RTOL) -> float:
    """Σ_{s=lo}^{hi} f(s) for f piecewise affine in integer s (0 when hi < lo); f is called O(kinks · log) times."""
    if hi < lo:
        return 0.0
    cache: dict[int, float] = {}

    def at(s: int) -> float:
        if s not in cache:
            cache[s] = float(f(s))
        return cache[s]

    total = 0.0
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        n = b - a + 1
        if n < DIRECT_BELOW:
            total += sum(at(s) for s in range(a, b + 1))
            continue
        fa, fb = at(a), at(b)
        quarters = (a + (b - a) // 4, a + (b - a) // 2, a + 3 * (b - a) // 4)
        scale = max(abs(fa), abs(fb))
        if all(abs(at(q) - (fa + (fb - fa) * (q - a) / (b - a))) <= rtol * scale for q in quarters):
            total += n * (fa + fb) / 2
        else:
            mid = (a + b) // 2
            stack += [(a, mid), (mid + 1, b)]
    return total
