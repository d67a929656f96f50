"""C3-C6, C9 (and C10, :mod:`.multiscale`): the claims checked on the run records of a source (σ_max per epoch,
iterations per epoch, final accuracy beside monDEQ, the same runs on another kernel path)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Sequence

from ..hparams import parse_method
from ..report.records import Run
from ..stats import summarize, welch_interval
from .claim import THRESHOLDS, UNTESTABLE, Claim, untestable, verdict
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
    lo: float | None  # 95% t interval of the geometric mean ratio (None: one seed)
    hi: float | None

    @property
    def mean(self) -> float:
        return math.exp(statistics.fmean(math.log(r) for r in self.ratios))

    def text(self) -> str:
        ci = f" [{self.lo:.2f}, {self.hi:.2f}]" if self.lo is not None else ""
        return (f"{self.window} {self.start}→{self.end} ×{self.mean:.2f}{ci} "
                f"(n = {len(self.ratios)})")


def growth(runs: Sequence[Run]) -> list[Growth]:
    """The :class:`Growth` of every window of one method's runs (same protocol)."""
    out = []
    for name, a, b in windows(runs[0]):
        rs = [r for r in runs if len(r.epochs) >= b]
        ratios = tuple(r.epochs[b - 1].fwd_iters / r.epochs[a - 1].fwd_iters for r in rs)
        if not ratios:
            continue
        lo = hi = None
        if len(ratios) >= 2:
            s = summarize([math.log(x) for x in ratios])
            lo, hi = math.exp(s.lo), math.exp(s.hi)
        out.append(Growth(runs[0].method, name, a, b, ratios, lo, hi))
    return out


def claim_iterations_flat(src: Source) -> Claim:
    """C5: iterations do not increase during training for pcDEQ, while they do for the
    standard DEQ and monDEQ; judged per training window (:func:`windows`), per seed."""
    head = ("The number of iterations does not increase over training for pcDEQ, unlike the "
            "standard DEQ and monDEQ", "Sec. 5.3 (Fig. 3, 8-10)")
    g = THRESHOLDS["iter_growth"]
    test = (f"per method and training window (start 1→10, trend 10→LR decay, after the decay), "
            f"the ratio of mean forward iterations end / start per seed, geometric mean with 95% "
            f"t interval; \"grows\" if the interval lies above {g:g}, \"does not grow\" if it "
            f"lies below {g:g} ({g:g}: one more iteration in ten, 10% more time per step, about "
            f"the step-time spread of `python -m pcdeq bench` on this machine; one seed: its own "
            f"ratio); holds if no pcDEQ method grows in any window and DEQ and monDEQ of the same "
            f"architecture each grow in some window")
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

    def grows(x: Growth) -> bool:
        return (x.lo if x.lo is not None else x.mean) > g

    def flat(x: Growth) -> bool:
        return (x.hi if x.hi is not None else x.mean) < g

    pc_ok = {m: all(flat(x) for x in gs) for m, gs in pc.items()}

    def flags(gs: list[Growth]) -> str:
        up = [x.window for x in gs if grows(x)]
        open_ = [x.window for x in gs if not grows(x) and not flat(x)]
        out = ([f"grows: {', '.join(up)}"] if up else []) + (
            [f"undecided: {', '.join(open_)}"] if open_ else [])
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
    base_ok = {m: any(grows(x) for x in gs) for m, gs in base.items()}
    text += "; DEQ / monDEQ: " + "; ".join(f"{m} {', '.join(x.text() for x in gs)}"
                                            + ("" if base_ok[m] else " (never grows)")
                                            for m, gs in base.items())
    for m in base:
        if parse_method(m).family == "monDEQ":  # what keeps its curve flat: its step schedule
            r = by_m[m][0]
            lrs = [f"{e.lr:g} at epoch {e.epoch}" for e in r.epochs
                   if e.epoch in (1, 10, len(r.epochs)) and e.lr is not None]
            text += f" ({m}'s own step schedule: lr {', '.join(lrs)})"
    ok = all(pc_ok.values()) and all(base_ok.values())
    top = max(((x.hi if x.hi is not None else x.mean), m, x.window)
              for m, gs in pc.items() for x in gs)
    n_up = sum(base_ok.values())
    return Claim("C5", *head, test, f"{text}. [{src.label(runs)}]", verdict(ok),
                 decisive=f"largest pcDEQ growth bound ×{top[0]:.2f} ({top[1]}, {top[2]}; "
                          f"needs < {g:g}); {n_up}/{len(base)} DEQ / monDEQ grow")


def claim_accuracy(src: Source) -> Claim:
    """C6, Tables 1-3: pcDEQ matches or beats monDEQ with fewer parameters (same data here).

    Every pcDEQ method against monDEQ of its architecture, none selected: the 95% Welch
    interval of the difference of mean final test accuracies must lie above
    -THRESHOLDS["acc_margin_points"] (non-inferiority) and the pcDEQ model must have fewer
    parameters.
    """
    from ..paper_results import BASELINES, paper_accuracy
    quoted_mon = {b.model: b.acc for b in BASELINES["mnist"]}
    head = ("pcDEQ matches or beats monDEQ with fewer parameters", "Tables 1-3, Sec. 5.2")
    m = THRESHOLDS["acc_margin_points"]
    test = (f"every pcDEQ method vs monDEQ of the same architecture (L, SC), same data and "
            f"harness: mean final test accuracy difference with its 95% Welch interval; a method "
            f"matches or beats monDEQ if the interval's lower end is above −{m:g} points (the "
            f"paper reports accuracy to 0.1 points) and it has fewer parameters; holds if every "
            f"method does")
    parts, oks, used, missing, lows = [], [], [], [], []
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
            lows.append((lo, method))
            fewer = rs[0].n_params < mon[0].n_params
            ok = lo > -m and fewer  # non-inferiority: the whole interval above -margin
            oks.append(ok)
            used += rs
            q = paper_accuracy("mnist", method)
            parts.append(f"{method} − monDEQ-{arch}: {d:+.2f} points, 95% CI [{lo:+.2f}, "
                         f"{hi:+.2f}] (n = {len(a)} vs {len(b)}), {rs[0].n_params:,} vs "
                         f"{mon[0].n_params:,} params: {'matches or beats' if ok else 'does not'}"
                         + (f" (paper, MNIST, quoted: {q} vs {quoted_mon.get(f'monDEQ-{arch}')})"
                            if q and quoted_mon.get(f"monDEQ-{arch}") else ""))
        used += mon
    if not oks:
        why = ("; ".join(missing) if missing else
               f"{src.root}/ lacks monDEQ and pcDEQ records of the same architecture (the "
               "stable-DEQ baselines)")
        return untestable("C6", *head, test, why)
    n_ok = sum(oks)
    text = f"{n_ok} of {len(oks)} pcDEQ methods match or beat monDEQ: " + "; ".join(parts)
    if missing:
        text += "; not compared: " + "; ".join(missing)
    lo, worst_m = min(lows)
    return Claim("C6", *head, test, text + f". [{src.label(used)}]", verdict(all(oks)),
                 decisive=f"{n_ok}/{len(oks)} methods; lowest interval end {lo:+.2f} points "
                          f"({worst_m}; needs > −{m:g})")


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
