"""C10, beyond the paper: the Lipschitz multiscale DEQ's own claim, checked on the run records
of Table 10 (:mod:`pcdeq.report.multiscale`).

Sato & Iiduka (AISTATS 2026, abstract): the forward and backward fixed-point iterations
provably converge "by hyperparameter adjustment", with "up to a 4.75x speed-up ... on CIFAR-10
at the cost of a minor drop in accuracy" over MDEQ. Three parts, each with its rule:

* the guarantee, as published: a contraction certificate is a Lipschitz constant below 1, so
  the realised ‖J_f(z*)‖₂ of ``LipMDEQ-MS`` must be < 1 at every recorded epoch of every seed;
* the speed-up: MDEQ's training seconds per epoch over LipMDEQ's must exceed 1 (the claim's
  direction; "up to 4.75x" is its largest case, not a threshold); a seed's seconds per epoch
  are its median epoch, which one paused epoch on a shared core does not move;
* the minor accuracy cost: the 95% Welch interval of LipMDEQ − MDEQ final accuracy must lie
  above −THRESHOLDS["minor_drop_points"] (two or more seeds a side); wholly below it refutes
  the claim, an interval that straddles it leaves it undecided. A cost is judged only
  against an MDEQ that has learned: below THRESHOLDS["learned_over_chance"] x chance accuracy
  (e.g. 20% for ten classes) the claim is not testable (too few steps: the quick profile).
"""

from __future__ import annotations

import statistics

from ..hparams import dataset_info
from ..report.multiscale import REFERENCE, multiscale_summaries, reference_of, versus_reference
from ..stats import mean_ci
from .claim import THRESHOLDS, UNTESTABLE, Claim, decided, untestable
from .sources import Source

PUBLISHED, CERTIFIED = "LipMDEQ-MS", "LipMDEQ-cert-MS"

HEAD = ("Beyond the paper, the Lipschitz multiscale DEQ's claim: its forward and backward "
        "iterations provably converge, with a speed-up over MDEQ at the cost of a minor drop "
        "in accuracy", "Sato & Iiduka 2026, abstract (arXiv 2602.03297)")


def test_text() -> str:
    m = THRESHOLDS["minor_drop_points"]
    return (f"{PUBLISHED} (the cap as published) beside {REFERENCE} on the same data: "
            f"(a) guarantee: the realised ‖J_f(z*)‖₂ (first test batch) < 1 at every epoch of "
            f"every seed; (b) speed-up: {REFERENCE}'s training s / epoch (each seed's median "
            f"epoch, mean over seeds) over {PUBLISHED}'s > 1; "
            f"(c) minor cost: the 95% Welch interval of the final-accuracy difference above "
            f"−{m:g} points (the claim gives no number; {m:g} point: a practical margin, ten "
            f"times the precision the pcDEQ paper reports accuracy to; below −{m:g} if its upper "
            f"end is); holds if (a)-(c) all do, does not hold if (a) or (b) fails or the "
            f"interval lies below −{m:g}, else undecided; not testable while {REFERENCE} is below "
            f"{THRESHOLDS['learned_over_chance']:g} x chance accuracy (not learned). "
            f"{CERTIFIED} (the cap on the true norms) is shown beside")


def claim_lipschitz_mdeq(src: Source) -> Claim:
    """C10 from the multiscale runs of one source (see the module docstring for the rule)."""
    test = test_text()
    sums = multiscale_summaries(src.runs)
    pub = next((s for s in sums if s.method == PUBLISHED and s.runs), None)
    ref = None if pub is None else reference_of(pub, sums)
    if pub is None or ref is None or not ref.runs:
        return untestable("C10", *HEAD, test,
                          f"{src.root}/ lacks complete {PUBLISHED} and {REFERENCE} runs on the "
                          f"same data (the multiscale models of Table 10)")
    vs = versus_reference(pub, ref)
    jac = pub.jac_values()
    if vs is None or vs.speedup is None or not jac:
        return untestable("C10", *HEAD, test, f"{PUBLISHED} records without seconds or jac_norm")
    m = THRESHOLDS["minor_drop_points"]
    above = sum(v >= 1 for v in jac)
    ok_a, ok_b = above == 0, vs.speedup > 1
    ci = (f"95% CI [{vs.acc_low:+.2f}, {vs.acc_high:+.2f}]" if vs.acc_low is not None
          else "no interval")
    parts = [f"(a) ‖J_f(z*)‖₂ of {PUBLISHED} in [{min(jac):.3g}, {max(jac):.3g}], ≥ 1 in "
             f"{above}/{len(jac)} epochs: {'certified' if ok_a else 'not a contraction'}",
             f"(b) speed-up ×{vs.speedup:.2f} over {REFERENCE} (training s / epoch, each seed's "
             f"median: {' / '.join(f'{s:.0f}' for s in ref.seconds)} against "
             f"{' / '.join(f'{s:.0f}' for s in pub.seconds)})",
             f"(c) accuracy {vs.acc_diff:+.2f} points, {ci} (n = {vs.n} vs {vs.n_ref}"
             + (f", sd {mean_ci(pub.accs).sd:.2f} vs {mean_ci(ref.accs).sd:.2f}"
                if vs.n >= 2 and vs.n_ref >= 2 else "")
             + f"; {REFERENCE} {statistics.fmean(ref.accs):.1f}%)"]
    bound = pub.bound_values()
    if bound:
        parts.append(f"its true-norm product bound reaches {max(bound):.3g}")
    cert = next((s for s in sums if s.method == CERTIFIED and s.dataset == pub.dataset
                 and s.runs), None)
    if cert is not None:
        cj, cb = cert.jac_values(), cert.bound_values()
        cvs = versus_reference(cert, ref)
        beside = [f"‖J‖₂ ≤ {max(cj):.3g}"] if cj else []
        beside += [f"bound ≤ {max(cb):.3g}"] if cb else []
        if cvs is not None and cvs.speedup is not None:
            beside.append(f"speed-up ×{cvs.speedup:.2f}, accuracy {cvs.acc_diff:+.2f} points")
        parts.append(f"{CERTIFIED}: {', '.join(beside) or 'no measurements'}")
    used = list(pub.runs) + list(ref.runs) + (list(cert.runs) if cert is not None else [])
    where = f"[{src.label(used)}]"

    # (c) needs an interval and an MDEQ that has learned: else the claim is not testable here,
    # and the measured parts are shown all the same.
    chance = 100.0 / dataset_info(ref.dataset).n_classes
    learned = THRESHOLDS["learned_over_chance"] * chance
    why = None
    if vs.acc_low is None:
        why = (f"{PUBLISHED} ({vs.n} seeds) vs {REFERENCE} ({vs.n_ref} seeds): a Welch interval "
               "needs two seeds on each side")
    elif statistics.fmean(ref.accs) < learned:
        train = statistics.fmean(r.epochs[-1].train_acc for r in ref.runs)
        # Training accuracy above the bar with test accuracy below it: the model learns, but
        # its eval-mode network (BatchNorm running statistics) has not caught up yet.
        seen = (f"its training accuracy reached {train:.1f}% but its eval-mode network has not "
                f"caught up (BatchNorm running statistics)" if train >= learned
                else f"its training accuracy {train:.1f}%: it has not learned")
        why = (f"{REFERENCE} ended at {statistics.fmean(ref.accs):.1f}% test accuracy (< "
               f"{learned:g}%, {THRESHOLDS['learned_over_chance']:g} x chance); {seen}, so no "
               f"accuracy cost can be judged; train longer (the fashion profile)")
    if why is not None:
        return Claim("C10", *HEAD, test, "; ".join(parts) + f". {where}", UNTESTABLE, why)
    ok_c, below_c = vs.acc_low > -m, vs.acc_high < -m
    failed = [k for k, bad in (("a", not ok_a), ("b", not ok_b), ("c", below_c)) if bad]
    decisive = (f"max ‖J‖₂ {max(jac):.3g} (needs < 1); speed-up ×{vs.speedup:.2f} (needs > 1); "
                f"Δ acc. interval [{vs.acc_low:+.2f}, {vs.acc_high:+.2f}] "
                f"({'above' if ok_c else 'below' if below_c else 'straddles'} −{m:g}: needs above)")
    text = "; ".join(parts) + (f"; fails on ({', '.join(failed)})" if failed else
                               "" if ok_c else "; (c) undecided: the interval straddles "
                               f"−{m:g}")
    return Claim("C10", *HEAD, test, f"{text}. {where}",
                 decided(ok_a and ok_b and ok_c, refuted=bool(failed)), decisive=decisive)
