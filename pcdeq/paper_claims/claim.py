"""A row of the claims table (:class:`Claim`), its four verdicts and the thresholds every
verdict is computed with."""

from __future__ import annotations

from dataclasses import dataclass

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable here"
# A claim judged by 95% intervals against a threshold (C5, C6, C10) has a third outcome: an
# interval that straddles the threshold neither shows nor refutes it (more seeds decide).
UNDECIDED = "undecided"

# The thresholds every verdict is computed with (the notebook prints them).
THRESHOLDS: dict[str, float] = {
    # Largest ∞-norm distance between limits from different starts that counts as one fixed
    # point: far above what the solve leaves (a relative step of 1e-11 at a rate q <= 0.7
    # leaves ~1e-11 q / (1 - q) < 1e-10 relative error) and far below the separation of
    # distinct fixed points the negative controls show (>= 0.9: tests/test_claims.py).
    "same_fixed_point": 1e-6,
    # Relative step at which a start counts as converged: ~5e4 x float64's machine epsilon,
    # so rounding never stalls a converging iteration above it, and small enough that a
    # limit's error (tol q / (1 - q)) is far below same_fixed_point.
    "solve_tol": 1e-11,
    "geometric_max_ratio": 1.0,  # every step shrinks the residual: r_{k+1} / r_k < 1
    "sigma_mostly_above": 0.5,  # "most of the time": more than half of the epochs above 1
    "sigmoid_max_iters": 8.0,  # Figure 3: fewer than 8 iterations
    # A window's iterations "grow" when end / start > 1.1 for sure (95% interval above), "do
    # not grow" when surely below: one more iteration in ten, ~10% more time per step.
    "iter_growth": 1.1,
    # "matches": the 95% Welch interval of (pcDEQ - monDEQ) mean accuracy lies above -0.1
    # points, the precision at which the paper's Tables 1-3 report accuracy (one decimal).
    "acc_margin_points": 0.1,
    # C10, the Lipschitz MDEQ's "minor drop in accuracy" (no number given): 1 point, ten times
    # the precision of the paper's accuracy tables, a practical margin.
    "minor_drop_points": 1.0,
    # ... judged only against an MDEQ above twice chance accuracy: a model that has not
    # learned (too few steps) has no accuracy to lose.
    "learned_over_chance": 2.0,
}


@dataclass
class Claim:
    """One row of the claims table."""

    key: str  # short id, e.g. "C1"
    claim: str  # the paper's statement
    where: str  # its place in the paper
    test: str  # what is measured and the threshold
    evidence: str  # measured values, with profile and data
    verdict: str  # HOLDS / FAILS / UNDECIDED / UNTESTABLE
    why: str = ""  # for UNTESTABLE: what is missing
    decisive: str = ""  # the one number the verdict turned on, with its threshold
    profile: str = ""  # the evidence's profile ("" : none, e.g. C8)


def verdict(ok: bool) -> str:
    """:data:`HOLDS` if ``ok``, else :data:`FAILS`."""
    return HOLDS if ok else FAILS


def decided(shown: bool, refuted: bool) -> str:
    """The verdict of a claim judged by intervals: :data:`FAILS` if the measurements refute
    it (an interval wholly on the wrong side of its threshold), else :data:`HOLDS` if they
    show it (every interval wholly on the right side), else :data:`UNDECIDED`."""
    return FAILS if refuted else HOLDS if shown else UNDECIDED


def untestable(key: str, claim: str, where: str, test: str, why: str) -> Claim:
    """The row of a claim whose evidence is missing here.

    Args:
        key, claim, where, test: as in :class:`Claim`.
        why: what is missing (and how to make it).

    Returns:
        A :data:`UNTESTABLE` claim with no evidence.
    """
    return Claim(key, claim, where, test, "—", UNTESTABLE, why)
