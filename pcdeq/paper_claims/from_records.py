"""C3-C6, C9 (and C10, :mod:`.multiscale`): the claims checked on the run records of a source (σ_max per epoch,
iterations per epoch, final accuracy beside monDEQ, the same runs on another kernel path)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Sequence

from ..hparams import parse_method
from ..report.records import Run
from ..stats import MeanCI, mean_ci, welch_interval
from .claim import THRESHOLDS, UNTESTABLE, Claim, decided, untestable, verdict
from .sources import Source


def _pc_l(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.group == "pcDEQ" and r.arch == "L"]


def claim_sigma_max(src: Source) -> Claim:
    """C3, Figure 4: σ_max(W) > 1 most of the time for tanh / softsign / sigmoid, < 1 for
    ReLU6 throughout (L models)."""
    head = ("σ_max(W) > 1 for tanh, softsign, sigmoid for most of training; < 1 for ReLU6 "
            "throughout (the fixed point stays unique)", "Fig. 4, Sec. 5.4")
    test = (f"per seed, the fraction of epochs with σ_max(W) > 1, every pcDEQ L run (the paper "
            f"speaks of each run's training); holds if every tanh, softsign and sigmoid seed is "
            f"above 1 in more than {THRESHOLDS['sigma_mostly_above']:g} of its epochs (\"most of "
            f"the time\") and every ReLU6 seed in none")
    runs = [r for r in _pc_l(src.runs) if all(e.sigma_max is not None for e in r.epochs)]
    acts = {r.activation for r in runs}
    if not {"ReLU6", "Tanh", "Softsign", "Sigmoid"} <= acts:
        return untestable("C3", *head, test, f"{src.root}/ lacks pcDEQ L records of "
                           f"{', '.join(sorted({'ReLU6', 'Tanh', 'Softsign', 'Sigmoid'} - acts))}"
                           f" ({src.profile} profile)")
    parts, ok, lows, relu = [], True, [], []
    for act in ("ReLU6", "Tanh", "Softsign", "Sigmoid"):
        fr = [sum(e.sigma_max > 1 for e in r.epochs) / len(r.epochs)
              for r in sorted(runs, key=lambda r: r.seed) if r.activation == act]
        good = (all(f == 0 for f in fr) if act == "ReLU6"
                else all(f > THRESHOLDS["sigma_mostly_above"] for f in fr))
        ok = ok and good
        (relu if act == "ReLU6" else lows).extend(fr)
        parts.append(f"{act}: {', '.join(f'{100 * f:.0f}%' for f in fr)} of epochs above 1 "
                     f"(n = {len(fr)} seeds{'' if good else '; fails'})")
    return Claim("C3", *head, test, f"{'; '.join(parts)}. [{src.label(runs)}]", verdict(ok),
                 decisive=f"fewest epochs above 1 of a tanh / softsign / sigmoid seed "
                          f"{100 * min(lows):.0f}% (needs > 50%); most of a ReLU6 seed {100 * max(relu):.0f}% (needs 0%)")


def claim_sigmoid_iters(src: Source) -> Claim:
    """C4, Figure 3: pcDEQ-2 with sigmoid converges in fewer than 8 iterations."""
    head = ("pcDEQ-2 with sigmoid converges in fewer than 8 iterations", "Fig. 3, Sec. 5.3")
    test = ("largest per-epoch mean forward and backward iterations (training batches, and "
            f"forward at test) of every pcDEQ-2 run; holds if < {THRESHOLDS['sigmoid_max_iters']:g}")
    runs = [r for r in src.runs if r.method.startswith("pcDEQ-2")]
    if not runs:
        return untestable("C4", *head, test, f"{src.root}/ has no pcDEQ-2 records")
    keys = ("fwd_iters", "bwd_iters", "test_fwd_iters")
    # The maximum over seeds, epochs and the three counts, with where it occurs.
    worst: dict[str, tuple[float, int, int, str]] = {}
    for r in runs:
        for e in r.epochs:
            for k in keys:
                v = e.value(k)
                if v is not None and (r.method not in worst or v > worst[r.method][0]):
                    worst[r.method] = (v, r.seed, e.epoch, k)
    text = "; ".join(f"{m}: max {v:.2f} (seed {s}, epoch {ep}, {k})"
                     for m, (v, s, ep, k) in worst.items())
    top = max(v[0] for v in worst.values())
    return Claim("C4", *head, test, f"{text}. [{src.label(runs)}]",
                 verdict(top < THRESHOLDS["sigmoid_max_iters"]),
                 decisive=f"max {top:.2f} iterations (needs < {THRESHOLDS['sigmoid_max_iters']:g})")


def windows(run: Run) -> list[tuple[str, int, int]]:
    """The training windows of C5: (name, first epoch, last epoch), each at least 2 epochs.

    The start (epoch 1 -> 10: the transient from W's tiny initialization), the trend at the
    initial learning rate (10 -> the LR decay epoch), and after the decay (-> the last epoch);
    a window the run does not reach is left out, a shorter run ends its windows at its last
    epoch.
    """
    last = len(run.epochs)
    decay = run.hparams.get("lr_decay_epoch", last)
    out = []
    for name, a, b in (("start", 1, 10), ("trend", 10, decay), ("after decay", decay, last)):
        b = min(b, last)
        if b - a >= 1:
            out.append((name, a, b))
    return out


@dataclass(frozen=True)
class Growth:
    """Per-seed growth of the mean forward iterations over one window of one method."""

    method: str
    window: str
    start: int
    end: int
    ratios: tuple[float, ...]  # per seed: iters[end] / iters[start]

    @cached_property
    def _log(self) -> MeanCI:
        # every number of the window is one summary of the log ratios, exponentiated
        return mean_ci([math.log(r) for r in self.ratios])

    @property
    def mean(self) -> float:
        """The geometric mean ratio."""
        return math.exp(self._log.mean)

    @property
    def lo(self) -> float | None:
        """The 95% t interval of the geometric mean ratio (None: one seed)."""
        return None if self._log.lo is None else math.exp(self._log.lo)

    @property
    def hi(self) -> float | None:
        return None if self._log.hi is None else math.exp(self._log.hi)

    def state(self, g: float) -> str:
        """"grows" (the interval above ``g``), "flat" (below it) or "undecided" (it
        straddles ``g``, or one seed gives no interval)."""
        if self.lo is None:
            return "undecided"
        return "grows" if self.lo > g else "flat" if self.hi < g else "undecided"

    def text(self) -> str:
        ci = f" [{self.lo:.2f}, {self.hi:.2f}]" if self.lo is not None else ""
        gsd = f", geometric sd ×{math.exp(self._log.sd):.2f}" if self._log.sd is not None else ""
        return f"{self.window} {self.start}→{self.end} ×{self.mean:.2f}{ci} (n = {self._log.n}{gsd})"


def growth(runs: Sequence[Run]) -> list[Growth]:
    """The :class:`Growth` of every window of one method's runs (same protocol)."""
    out = []
    for name, a, b in windows(runs[0]):
        rs = [r for r in runs if len(r.epochs) >= b]
        ratios = tuple(r.epochs[b - 1].fwd_iters / r.epochs[a - 1].fwd_iters for r in rs)
        if ratios:
            out.append(Growth(runs[0].method, name, a, b, ratios))
    return out


def claim_iterations_flat(src: Source) -> Claim:
    """C5: iterations do not increase during training for pcDEQ, while they do for the
    standard DEQ and monDEQ; judged per training window (:func:`windows`), per seed."""
    head = ("The number of iterations does not increase over training for pcDEQ, unlike the "
            "standard DEQ and monDEQ", "Sec. 5.3 (Fig. 3, 8-10)")
    g = THRESHOLDS["iter_growth"]
    test = (f"per method and training window (start 1→10, trend 10→LR decay, after the decay), "
            f"the ratio of mean forward iterations end / start per seed, geometric mean with 95% "
            f"t interval; a window \"grows\" if the interval lies above {g:g}, is \"flat\" if it "
            f"lies below {g:g}, else (or with one seed: no interval) undecided ({g:g}: one more "
            f"iteration in ten, 10% more time per step, about the step-time spread of `python -m "
            f"pcdeq bench` on this machine; seeds with the same integer counts give a zero-width "
            f"interval: their ratio is exact); holds if every window of every pcDEQ method is flat "
            f"and DEQ and monDEQ of the same architecture each grow in some window; does not hold "
            f"if a pcDEQ window grows or a DEQ / monDEQ is flat in every window; else undecided")
    runs = [r for r in src.runs if r.status == "complete" and len(r.epochs) >= 2]
    short = sorted({r.method for r in src.runs if len(r.epochs) < 2})
    by_m: dict[str, list[Run]] = {}
    for r in runs:
        by_m.setdefault(r.method, []).append(r)
    grow = {m: growth(rs) for m, rs in sorted(by_m.items())}
    pc = {m: gs for m, gs in grow.items() if parse_method(m).is_pcdeq and gs}
    if not pc:
        return untestable("C5", *head, test, f"{src.root}/ has no pcDEQ records of two or more "
                           "epochs")

    def flags(gs: list[Growth]) -> str:
        out = [f"{k}: {', '.join(x.window for x in gs if x.state(g) == k)}"
               for k in ("grows", "undecided") if any(x.state(g) == k for x in gs)]
        return f" ({'; '.join(out)})" if out else ""

    text = "pcDEQ: " + "; ".join(f"{m} {', '.join(x.text() for x in gs)}{flags(gs)}"
                                  for m, gs in pc.items())
    archs = sorted({parse_method(m).arch for m in pc})
    base = {m: gs for m, gs in grow.items() if parse_method(m).family in ("DEQ", "monDEQ")
            and parse_method(m).arch in archs and gs}
    if short:
        text += f" (left out, one epoch: {', '.join(short)})"
    if not base:
        return Claim("C5", *head, test, text + f". [{src.label(runs)}]", UNTESTABLE,
                     f"{src.root}/ has no DEQ / monDEQ records of the pcDEQ runs' architectures")
    base_up = {m: any(x.state(g) == "grows" for x in gs) for m, gs in base.items()}
    base_flat = {m: all(x.state(g) == "flat" for x in gs) for m, gs in base.items()}
    text += "; DEQ / monDEQ: " + "; ".join(
        f"{m} {', '.join(x.text() for x in gs)}"
        + ("" if base_up[m] else " (never grows)" if base_flat[m] else " (undecided)")
        for m, gs in base.items())
    for m in base:
        if parse_method(m).family == "monDEQ":  # what keeps its curve flat: its step schedule
            r = by_m[m][0]
            lrs = [f"{e.lr:g} at epoch {e.epoch}" for e in r.epochs
                   if e.epoch in (1, 10, len(r.epochs)) and e.lr is not None]
            text += f" ({m}'s own step schedule: lr {', '.join(lrs)})"
    windows_pc = [(x, m) for m, gs in pc.items() for x in gs]
    count = {k: sum(x.state(g) == k for x, _ in windows_pc) for k in ("grows", "flat", "undecided")}
    if count["grows"]:  # what refutes it: the window whose growth is surest
        x, m = max(((x, m) for x, m in windows_pc if x.state(g) == "grows"), key=lambda t: t[0].lo)
        top = f"surest growth ×{x.mean:.2f} [{x.lo:.2f}, {x.hi:.2f}] ({m}, {x.window}; lower end > {g:g})"
    elif count["undecided"]:
        top = f"an interval straddles {g:g} or has one seed"
    else:
        x, m = max(windows_pc, key=lambda t: t[0].hi)
        top = f"largest upper end ×{x.hi:.2f} ({m}, {x.window}; needs < {g:g})"
    shown = count["flat"] == len(windows_pc) and all(base_up.values())
    refuted = count["grows"] > 0 or any(base_flat.values())
    return Claim("C5", *head, test, f"{text}. [{src.label(runs)}]", decided(shown, refuted),
                 decisive=f"pcDEQ windows: {count['grows']} grow, {count['flat']} flat, "
                          f"{count['undecided']} undecided of {len(windows_pc)}; {top}; "
                          f"{sum(base_up.values())}/{len(base)} DEQ / monDEQ grow")


def claim_accuracy(src: Source) -> Claim:
    """C6, Tables 1-3: pcDEQ matches or beats monDEQ with fewer parameters (same data here).

    Every pcDEQ method against monDEQ of its architecture, none selected: the 95% Welch
    interval of the difference of mean final test accuracies must lie above
    -THRESHOLDS["acc_margin_points"] (non-inferiority) and the pcDEQ model must have fewer
    parameters. An interval wholly below the margin (or more parameters) refutes it for that
    method; one that straddles it leaves the method undecided.
    """
    from ..paper_results import BASELINES, paper_accuracy
    quoted_mon = {b.model: b.acc for b in BASELINES["mnist"]}
    head = ("pcDEQ matches or beats monDEQ with fewer parameters", "Tables 1-3, Sec. 5.2")
    m = THRESHOLDS["acc_margin_points"]
    test = (f"every pcDEQ method vs monDEQ of the same architecture (L, SC), same data and "
            f"harness: mean final test accuracy difference with its 95% Welch interval; a method "
            f"matches or beats monDEQ if the interval's lower end is above −{m:g} points (the "
            f"paper reports accuracy to 0.1 points) and it has fewer parameters, is worse if the "
            f"upper end is below −{m:g} (or it has more parameters), else undecided; holds if every "
            f"pcDEQ method matches or beats monDEQ, does not hold if one is worse, else (an "
            f"undecided method, or one with too few seeds to compare) undecided")
    parts, states, used, missing, lows, highs, more = [], [], [], [], [], [], []
    for arch in ("L", "SC"):
        mon = [r for r in src.runs if r.method == f"monDEQ-{arch}"]
        pcs = [r for r in src.runs if r.group == "pcDEQ" and r.arch == arch]
        if not mon or not pcs:
            continue
        b = [r.final_acc for r in mon]
        by_m: dict[str, list[Run]] = {}
        for r in pcs:
            by_m.setdefault(r.method, []).append(r)
        for method, rs in sorted(by_m.items()):
            a = [r.final_acc for r in rs]
            w = welch_interval(a, b)
            if w is None:
                missing.append(f"{method} ({_seeds(len(a))}) vs monDEQ-{arch} ({_seeds(len(b))}): "
                               "a Welch interval needs two seeds on each side")
                continue
            d, lo, hi, _ = w
            fewer = rs[0].n_params < mon[0].n_params
            # non-inferiority: the whole interval above -margin; inferiority: the whole below
            state = ("worse" if not fewer or hi < -m else "matches or beats" if lo > -m
                     else "undecided")
            states.append(state)
            more += [] if fewer else [method]
            (highs if hi < -m else lows).append((hi if hi < -m else lo, method))
            used += rs
            q = paper_accuracy("mnist", method)
            parts.append(f"{method} − monDEQ-{arch}: {d:+.2f} points, 95% CI [{lo:+.2f}, "
                         f"{hi:+.2f}] (n = {len(a)} vs {len(b)}, sd {mean_ci(a).sd:.2f} vs "
                         f"{mean_ci(b).sd:.2f}), {rs[0].n_params:,} vs "
                         f"{mon[0].n_params:,} params: {state}"
                         + ("" if fewer else " (more parameters)")
                         + (f" (paper, MNIST, quoted: {q} vs {quoted_mon.get(f'monDEQ-{arch}')})"
                            if q and quoted_mon.get(f"monDEQ-{arch}") else ""))
        used += mon
    if not states:
        why = ("; ".join(missing) if missing else
               f"{src.root}/ lacks monDEQ and pcDEQ records of the same architecture (the "
               "stable-DEQ baselines)")
        return untestable("C6", *head, test, why)
    n = {k: states.count(k) for k in ("matches or beats", "worse", "undecided")}
    text = (f"{n['matches or beats']} of {len(states)} pcDEQ methods match or beat monDEQ, "
            f"{n['worse']} worse, {n['undecided']} undecided: " + "; ".join(parts))
    if missing:
        text += "; not compared: " + "; ".join(missing)
    if highs:  # what refutes it: the method surest to be worse
        hi, worst_m = min(highs)
        top = f"surest shortfall: upper end {hi:+.2f} points ({worst_m}; below −{m:g})"
    elif more:
        top = f"more parameters than monDEQ: {', '.join(more)}"
    else:
        lo, worst_m = min(lows)
        top = f"lowest interval end {lo:+.2f} points ({worst_m}; needs > −{m:g})"
    shown = n["matches or beats"] == len(states) and not missing
    return Claim("C6", *head, test, text + f". [{src.label(used)}]",
                 decided(shown, refuted=n["worse"] > 0),
                 decisive=f"{n['matches or beats']} match, {n['worse']} worse, {n['undecided']} "
                          f"undecided of {len(states)} methods; {top}")


def claim_numerical_stability(src: Source) -> Claim:
    """C9, beyond the paper: the same runs on another kernel path (:mod:`pcdeq.numerics`)."""
    from ..numerics import STABILITY_FRACTION, kernel_path_pairs, path_differences, stability

    head = ("Beyond the paper: a pcDEQ run's result does not depend on floating-point noise "
            "(the kernel path: threads, CPU)", "— (not claimed; the unique fixed point "
            "of Prop. 4.6 suggests it)")
    f = STABILITY_FRACTION
    test = (f"the same run (code, data, seed, hyperparameters) on two kernel paths, "
            f"{src.root}/kernel_paths/<path>/ beside {src.root}/: per epoch |Δ log train loss| "
            f"against the method's seed spread (sample std of the log train loss over its seeds, "
            f"pooled over the epochs); a method is stable if it stays below {f:g} of it at every "
            f"epoch (a table's ± std then moves by < {100 * f:.0f}% of its width whichever path "
            f"ran it); holds if every pcDEQ method is; the other families are shown beside")
    try:
        pairs = kernel_path_pairs(src.root, src.runs)
    except ValueError as e:
        return untestable("C9", *head, test, str(e))
    if not pairs:
        return untestable("C9", *head, test, f"no records in {src.root}/kernel_paths/ (make "
                           f"them with `python workflow/scripts/kernel_paths.py {src.profile} 1`)")
    ms = stability(pairs, src.runs)
    pc = [m for m in ms if parse_method(m.method).is_pcdeq]
    open_ = [m.method for m in pc if m.stable is None]
    if not pc or open_:
        return untestable("C9", *head, test, "pcDEQ methods without two seeds in "
                           f"{src.root}/ (no seed spread): {', '.join(open_) or 'none paired'}")

    def line(m) -> str:
        where = f" (epoch {m.worst_epoch})" if m.worst_epoch else ""
        frac = "—" if m.worst_fraction is None else f"{m.worst_fraction:.2g}"
        acc = "/".join(f"{p.acc_diff():+.1f}" for p in m.pairs)
        first = f", rel. diff > 1e-3 from epoch {m.first_above}" if m.first_above else ""
        return (f"{m.method}: {frac} × seed spread {m.seed_sd:.2g}{where}, largest rel. train-loss diff "
                f"{m.max_relative:.1e}{first}, final acc. diff {acc} points")
    paths = [f"{k} ({v})" for k, v in path_differences(pairs).items()]
    text = (f"kernel paths: {'; '.join(paths)}. pcDEQ: " + "; ".join(line(m) for m in pc)
            + "; others: " + ("; ".join(line(m) for m in ms if m not in pc) or "none paired"))
    worst = max(pc, key=lambda m: m.worst_fraction)
    used = [p.a for p in pairs]
    return Claim("C9", *head, test, f"{text}. [{src.label(used)}]",
                 verdict(all(m.stable for m in pc)),
                 decisive=f"largest pcDEQ difference {worst.worst_fraction:.2g} × seed spread "
                          f"({worst.method}; needs < {f:g})")


def claims_from_records(src: Source) -> list[Claim]:
    """C3-C6 from the run records of one source (the paper's architectures: its claims are
    about its models); C9 (beyond the paper: every family, the multiscale ones included, whose
    kernel-path records sit beside the profile's) and C10 (its multiscale runs) from all of them."""
    from .multiscale import claim_lipschitz_mdeq

    paper = replace(src, runs=[r for r in src.runs if r.arch != "MS"])
    out = [claim_sigma_max(paper), claim_sigmoid_iters(paper), claim_iterations_flat(paper),
           claim_accuracy(paper), claim_numerical_stability(src), claim_lipschitz_mdeq(src)]
    for c in out:
        c.profile = src.profile
    return out


NOT_HERE = [
    Claim("C8", "Accuracy at the paper's scale: MNIST 98.1-99.3%, SVHN 87.3-93.0%, CIFAR-10 "
          "71.0-89.2% (Tables 1-3)", "Tables 1-3", "the paper profile's records",
          "—", UNTESTABLE, "needs real SVHN and CIFAR-10 (not reachable offline here) and the "
          "paper profile's GPU hours (config/paper.yaml)"),
]


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")
