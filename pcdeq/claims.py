"""The paper's claims, each checked against a measured number (``notebooks/claims.ipynb``).

Two kinds of evidence:

* trained models (the ``reference_weights`` of a profile, ``results/<profile>/.../seed0.pt``):
  :func:`uniqueness` runs the fixed-point iteration of every DEQ layer from 0 and from random
  nonnegative starts, :func:`convergence_rate` fits the geometric rate of the residual trace,
  :func:`invariants` measures min W, min x and the activation's shape;
* run records (``results/<profile>/``): σ_max(W) per epoch (Figure 4), iterations per epoch
  (Figure 3, "iterations do not increase"), accuracy beside monDEQ (Tables 1-3).

Every verdict is computed by :func:`verdict` from a measured value and a threshold stated in
:data:`THRESHOLDS`; evidence that is missing gives "not testable here" with what is missing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from .data import DatasetMissing, Preprocess, load_dataset
from .hparams import dataset_info, hyperparameters, parse_method
from .layers import ACTIVATION_FNS, DEQLayer
from .models import DEQClassifier
from .report.records import Run, caption, load_runs
from .report.tables import Table
from .theory import fit_rate

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable here"

# The thresholds every verdict is computed with (the notebook prints them).
THRESHOLDS: dict[str, float] = {
    "same_fixed_point": 1e-6,  # largest ∞-norm distance between limits from different starts
    "solve_tol": 1e-11,  # relative step at which a start counts as converged (float64)
    "geometric_max_ratio": 1.0,  # every step shrinks the residual: r_{k+1} / r_k < 1
    "sigma_mostly_above": 0.5,  # "most of the time": more than half of the epochs above 1
    "sigmoid_max_iters": 8.0,  # Figure 3: fewer than 8 iterations
    "iter_growth": 1.25,  # last / first epoch mean iterations above this = "increases"
    "acc_margin_std": 1.0,  # "matches": within one pooled std of monDEQ's mean (or above)
}

# What the records' activations must satisfy in Lemma 4.2: (variant, activation) pairs.
PAIRINGS = {1: ("relu6", "tanh", "softsign"), 2: ("sigmoid",)}


@dataclass
class Claim:
    """One row of the claims table."""

    key: str  # short id, e.g. "C1"
    claim: str  # the paper's statement
    where: str  # its place in the paper
    test: str  # what is measured and the threshold
    evidence: str  # measured values, with profile and data
    verdict: str  # HOLDS / FAILS / UNTESTABLE
    why: str = ""  # for UNTESTABLE: what is missing


def verdict(ok: bool) -> str:
    return HOLDS if ok else FAILS


# ------------------------------------------------------------------ evidence sources
@dataclass
class Source:
    """A profile's committed (or fresh) results: run records and the weights beside them."""

    profile: str
    root: Path
    runs: list[Run] = field(default_factory=list)
    weight_files: list[Path] | None = None  # None: every seed*.pt under root

    @classmethod
    def load(cls, profile: str, root: str | Path, weights: Sequence[str] | None = None) -> "Source":
        root = Path(root)
        runs = load_runs(root) if root.is_dir() and any(root.rglob("*.json")) else []
        # Synthetic stand-ins check the pipeline; they are no evidence for or against a claim.
        return cls(profile, root, [r for r in runs if r.status == "complete"
                                   and not r.data["synthetic"]],
                   None if weights is None else [Path(w) for w in weights])

    def weights(self) -> list[Path]:
        if self.weight_files is not None:
            return [p for p in self.weight_files if p.exists()]
        # <dataset>/<method>/seed<S>.pt, the layout of the records (not superseded/, in_progress/)
        return sorted(self.root.glob("*/*/seed*.pt")) if self.root.is_dir() else []

    def label(self, runs: Sequence[Run] | None = None) -> str:
        """Provenance of evidence drawn from ``runs`` (default: all of the source)."""
        return caption(self.profile, list(self.runs if runs is None else runs)).rstrip(".")


def load_sources(specs: Sequence[dict]) -> list[Source]:
    """``[{"profile": "quick", "dir": "results/quick"}, ...]`` -> sources (missing dirs: empty);
    an entry's optional "weights" lists the weight files to check (default: all under dir)."""
    return [Source.load(s["profile"], s["dir"], s.get("weights")) for s in specs]


# ------------------------------------------------------------ fixed points of a model
@dataclass
class LayerProblem:
    """One DEQ layer of a trained model with its input on a batch: g(z) = σ(W z + x)."""

    name: str
    layer: DEQLayer
    x: Tensor  # the layer input (after the input map), float64

    def g(self) -> Callable[[Tensor], Tensor]:
        W = self.layer.effective_weight().detach().double()
        op, sigma, x = self.layer.op, self.layer.sigma, self.x

        def g(z: Tensor) -> Tensor:
            return sigma(op(W, z) + x)
        return g


@torch.no_grad()
def layer_problems(model: DEQClassifier, images: Tensor) -> list[LayerProblem]:
    """Every DEQ layer's input on a batch of preprocessed ``images`` (model in eval mode)."""
    model.eval()
    captured: list[Tensor] = []
    hooks = [l.register_forward_hook(lambda mod, args, out: captured.append(args[0]))
             for l in model.deq_layers()]
    try:
        model(images)
    finally:
        for h in hooks:
            h.remove()
    return [LayerProblem(f"layer {i + 1}", l, l.inputs(u).double())
            for i, (l, u) in enumerate(zip(model.deq_layers(), captured))]


def _iterate(g: Callable[[Tensor], Tensor], z: Tensor, tol: float, max_iter: int
             ) -> tuple[Tensor, list[float], bool]:
    """Plain fixed-point iteration; residuals ||z_{k+1} - z_k|| / ||z_{k+1}|| of the batch."""
    res = []
    for _ in range(max_iter):
        zn = g(z)
        r = float(torch.linalg.vector_norm(zn - z) / max(float(torch.linalg.vector_norm(zn)), 1e-300))
        res.append(r)
        z = zn
        if not math.isfinite(r):
            return z, res, False
        if r <= tol:
            return z, res, True
    return z, res, False


@dataclass
class Uniqueness:
    method: str
    layer: str
    starts: int
    converged: int
    max_distance: float  # ∞-norm, largest over starts and batch entries, vs the limit from 0
    start_high: float


@torch.no_grad()
def uniqueness(p: LayerProblem, method: str, n_starts: int = 20, seed: int = 0,
               max_iter: int = 3000) -> Uniqueness:
    """Limits of the plain iteration from z = 0 and from ``n_starts`` uniform nonnegative
    starts in [0, 2 max(1, max z*)) for the whole batch; the largest ∞-norm distance to the
    limit from 0."""
    g, tol = p.g(), THRESHOLDS["solve_tol"]
    z0, _, ok0 = _iterate(g, torch.zeros_like(p.x), tol, max_iter)
    high = 2.0 * max(1.0, float(z0.abs().max()))
    gen = torch.Generator().manual_seed(seed)
    worst, conv = 0.0 if ok0 else math.inf, int(ok0)
    for _ in range(n_starts):
        start = high * torch.rand(p.x.shape, generator=gen, dtype=torch.float64)
        z, _, ok = _iterate(g, start, tol, max_iter)
        conv += int(ok)
        d = float((z - z0).abs().max())
        worst = max(worst, d if math.isfinite(d) else math.inf)
    return Uniqueness(method, p.name, n_starts + 1, conv, worst, high)


@dataclass
class Rate:
    method: str
    layer: str
    rate: float  # q of the least-squares fit r_k ≈ C q^k on the asymptotic part of the trace
    worst_ratio: float  # max r_{k+1} / r_k over the asymptotic part (as the fit's window)
    iters: int  # iterations to the solve tolerance
    converged: bool


@torch.no_grad()
def convergence_rate(p: LayerProblem, method: str, max_iter: int = 3000,
                     floor: float = 1e-13) -> Rate:
    """Residual trace r_k = ||z_{k+1} - z_k|| / ||z_{k+1}|| of z_{k+1} = g(z_k) from z = 0
    (float64): its asymptotic rate q and its worst one-step ratio ρ from the point where
    the residual is below 1% of its largest value (past the transient) down to the rounding
    floor. ρ < 1 means r_k ≤ r_s ρ^(k-s) from there on: geometric convergence, measured."""
    _, res, ok = _iterate(p.g(), torch.zeros_like(p.x), THRESHOLDS["solve_tol"] / 10, max_iter)
    fit = fit_rate(res, floor=floor)
    rate = math.nan if fit is None else fit.rate
    start = next((i for i, r in enumerate(res) if r <= 1e-2 * max(res)), 0)
    tail = [r for r in res[start:] if r > floor]
    ratios = [b / a for a, b in zip(tail, tail[1:])]
    return Rate(method, p.name, rate, max(ratios) if ratios else 0.0, len(res), ok)


@dataclass
class Invariants:
    method: str
    variant: int | None  # 1 / 2 for pcDEQ, None otherwise
    activation: str
    min_w: float  # smallest entry of W over all DEQ layers
    min_x: float  # smallest layer input over the batch and all layers
    pairing_ok: bool  # (variant, activation) allowed by Lemma 4.2
    concave_ok: bool  # σ nonnegative and concave on [0, 10] (second differences <= 1e-9)
    positive_at_0: bool  # σ(0) > 0 (pcDEQ-2 needs a positive σ)


@torch.no_grad()
def invariants(model: DEQClassifier, problems: Sequence[LayerProblem]) -> Invariants:
    m = model.spec.method
    layers = model.deq_layers()
    act = layers[0].activation
    min_w = min(float(l.effective_weight().min()) for l in layers)
    min_x = min(float(p.x.min()) for p in problems)
    t = torch.linspace(0, 10, 2001, dtype=torch.float64)
    s = ACTIVATION_FNS[act](t)
    concave = bool((s >= 0).all()) and bool(((s[2:] - 2 * s[1:-1] + s[:-2]) <= 1e-9).all())
    variant = getattr(layers[0], "variant", None)
    pairing = variant is not None and act in PAIRINGS.get(variant, ())
    return Invariants(m.name, variant, act, min_w, min_x, pairing, concave, float(s[0]) > 0)


# ----------------------------------------------------------------- trained models
@dataclass
class ModelEvidence:
    """Every weight-based measurement of one source."""

    source: Source
    models: list[str] = field(default_factory=list)  # "method seedK"
    uniqueness: list[Uniqueness] = field(default_factory=list)
    rates: list[Rate] = field(default_factory=list)
    invariants: list[Invariants] = field(default_factory=list)
    images: dict[str, set[int]] = field(default_factory=dict)  # dataset -> test images used
    missing: list[str] = field(default_factory=list)  # why some weights could not be used


def _test_images(dataset: str, method: str, data_root: str, n: int, cache: dict,
                 root: Path) -> Tensor:
    """The first ``n`` test images, preprocessed for ``method``. They are read from
    ``<root>/claims_inputs/<dataset>.pt`` (64 uint8 images, committed beside the weights, so
    the checks run where the data set is not installed), written there from the data set
    when that file is missing."""
    if dataset not in cache:
        stored = root / "claims_inputs" / f"{dataset}.pt"
        if stored.exists():
            cache[dataset] = torch.load(stored, weights_only=True)
        else:
            cache[dataset] = load_dataset(dataset, data_root, test_limit=64).test.images.clone()
            stored.parent.mkdir(parents=True, exist_ok=True)
            torch.save(cache[dataset], stored)
    pre = Preprocess(dataset_info(dataset).family, "cpu", hyperparameters(dataset, method).input_norm)
    return pre(cache[dataset][:n])


def model_evidence(source: Source, *, data_root: str = "data", images_l: int = 64,
                   images_conv: int = 2, n_starts: int = 20) -> ModelEvidence:
    """Run :func:`uniqueness`, :func:`convergence_rate` and :func:`invariants` on every
    weights file of ``source`` (L models on ``images_l`` test images, conv models on
    ``images_conv``: the iteration runs on the whole batch, 21 times, in float64)."""
    from .train import load_trained

    ev = ModelEvidence(source)
    cache: dict = {}
    for path in source.weights():
        model = load_trained(path)
        m = model.spec.method
        if m.family == "monDEQ":  # its own splitting solver, not g(z) = σ(Wz + x)
            continue
        if dataset_info(model.spec.dataset).synthetic:  # a stand-in is no evidence
            continue
        ds = model.spec.dataset
        n = images_l if m.arch == "L" else images_conv
        try:
            x = _test_images(ds, m.name, data_root, n, cache, source.root)
        except DatasetMissing as e:
            ev.missing.append(f"{m.name}: {e}")
            continue
        ev.images.setdefault(ds, set()).add(n)
        ev.models.append(f"{m.name} {path.stem}")
        problems = layer_problems(model, x)
        ev.invariants.append(invariants(model, problems))
        for p in problems:
            ev.uniqueness.append(uniqueness(p, m.name, n_starts=n_starts))
            ev.rates.append(convergence_rate(p, m.name))
    return ev


def _fmt(x: float) -> str:
    """A distance; below 1e-12 only the bound is printed (the last digits of float64
    rounding differ between CPUs, the bound does not)."""
    if x == math.inf:
        return "∞ (a start did not converge)"
    return "< 1e-12" if x < 1e-12 else f"{x:.1e}"


def _untestable(key: str, claim: str, where: str, test: str, why: str) -> Claim:
    return Claim(key, claim, where, test, "—", UNTESTABLE, why)


def claims_from_models(evs: Sequence[ModelEvidence]) -> list[Claim]:
    """C1 (uniqueness), C2 (geometric convergence), C7 (invariants), one row per source."""
    out = []
    c1 = ("The fixed point exists, is unique and is reached from any nonnegative start",
          "Prop. 4.6 (with Lemma 4.2)")
    c2 = ("Plain fixed-point iteration converges geometrically", "Prop. 4.6, Sec. 5")
    c7 = ("W ≥ 0, x > 0 (pcDEQ-1) / x ≥ 0 (pcDEQ-2), activation pairing of Lemma 4.2",
          "Def. 4.3, Lemma 4.2")
    t1 = (f"limits from z = 0 and 20 random starts in [0, 2 max(1, max z*)), float64, "
          f"solved to rel. step {THRESHOLDS['solve_tol']:g}; holds if every start converges "
          f"and the largest ∞-norm distance ≤ {THRESHOLDS['same_fixed_point']:g}")
    t2 = ("residual trace r_k of the iteration from z = 0 (float64): asymptotic rate q (fit "
          "r_k ≈ C q^k) and worst one-step ratio ρ = max r_{k+1}/r_k once r_k < 1% of its maximum; "
          f"holds if every layer converges with ρ < {THRESHOLDS['geometric_max_ratio']:g}")
    t7 = "min W ≥ 0; min x > 0 (pcDEQ-1) or ≥ 0 (pcDEQ-2); σ nonnegative concave on [0, 10]"
    for ev in evs:
        src = ev.source
        pc_u = [u for u in ev.uniqueness if parse_method(u.method).is_pcdeq]
        if not pc_u:
            why = (f"no pcDEQ weights in {src.root}/ (the {src.profile} profile's "
                   "reference_weights; run its `all` and `reference` targets)")
            if ev.missing:
                why += "; " + "; ".join(ev.missing)
            out += [_untestable("C1", *c1, t1, why), _untestable("C2", *c2, t2, why),
                    _untestable("C7", *c7, t7, why)]
            continue
        used = [r for r in src.runs if any(m.split()[0] == r.method and m.split()[1] == f"seed{r.seed}"
                                           for m in ev.models)]
        prov = src.label(used) + "; fixed points on the first " + ", ".join(
            f"{'/'.join(map(str, sorted(n)))} {d} test images (L/conv)" for d, n in ev.images.items())
        # C1
        per_method: dict[str, float] = {}
        all_conv = True
        for u in pc_u:
            per_method[u.method] = max(per_method.get(u.method, 0.0), u.max_distance)
            all_conv &= u.converged == u.starts
        worst = max(per_method.values())
        contrast = [u for u in ev.uniqueness if not parse_method(u.method).is_pcdeq]
        text = "; ".join(f"{m}: {_fmt(d)}" for m, d in per_method.items())
        if contrast:
            cd = max(u.max_distance for u in contrast)
            cc = sum(u.converged for u in contrast), sum(u.starts for u in contrast)
            text += (f". For contrast, {contrast[0].method} (no theorem): {_fmt(cd)}, "
                     f"{cc[0]}/{cc[1]} starts converged")
        out.append(Claim("C1", *c1, t1, f"largest distance per model: {text}. [{prov}]",
                         verdict(all_conv and worst <= THRESHOLDS["same_fixed_point"])))
        # C2
        pc_r = [r for r in ev.rates if parse_method(r.method).is_pcdeq]
        ok = all(r.converged and r.worst_ratio < THRESHOLDS["geometric_max_ratio"] for r in pc_r)
        by_m: dict[str, list[Rate]] = {}
        for r in pc_r:
            by_m.setdefault(r.method, []).append(r)
        text = "; ".join(f"{m}: q = " + "/".join(f"{r.rate:.2f}" for r in rs)
                         + f", ρ = {max(r.worst_ratio for r in rs):.2f} "
                         f"({'/'.join(str(r.iters) for r in rs)} it.)" for m, rs in by_m.items())
        out.append(Claim("C2", *c2, t2, f"{text} (MC: one rate per layer). [{prov}]", verdict(ok)))
        # C7
        pc_i = [i for i in ev.invariants if i.variant is not None]
        bad = []
        for i in pc_i:
            x_ok = i.min_x > 0 if i.variant == 1 else i.min_x >= 0
            if not (i.min_w >= 0 and x_ok and i.pairing_ok and i.concave_ok
                    and (i.variant == 1 or i.positive_at_0)):
                bad.append(i.method)
        text = (f"min W = {min(i.min_w for i in pc_i):.3g}; min x (pcDEQ-1) = "
                + (f"{min(i.min_x for i in pc_i if i.variant == 1):.3g}"
                   if any(i.variant == 1 for i in pc_i) else "—")
                + "; min x (pcDEQ-2) = "
                + (f"{min(i.min_x for i in pc_i if i.variant == 2):.3g}"
                   if any(i.variant == 2 for i in pc_i) else "—")
                + f"; pairings: {', '.join(sorted({f'pcDEQ-{i.variant} {i.activation}' for i in pc_i}))}"
                + (f"; violated by {', '.join(bad)}" if bad else ""))
        out.append(Claim("C7", *c7, t7, f"{len(pc_i)} models: {text}. [{prov}]", verdict(not bad)))
    return out


# --------------------------------------------------------------------- run records
def _pc_l(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.group == "pcDEQ" and r.arch == "L"]


def claim_sigma_max(src: Source) -> Claim:
    """C3, Figure 4: σ_max(W) > 1 most of the time for tanh / softsign / sigmoid, < 1 for
    ReLU6 throughout (L models)."""
    head = ("σ_max(W) > 1 for tanh, softsign, sigmoid for most of training; < 1 for ReLU6 "
            "throughout (the fixed point stays unique)", "Fig. 4, Sec. 5.4")
    test = (f"fraction of (seed, epoch) with σ_max(W) > 1 per L method; holds if > "
            f"{THRESHOLDS['sigma_mostly_above']} for tanh, softsign, sigmoid and 0 for ReLU6")
    runs = [r for r in _pc_l(src.runs) if all(e.get("sigma_max") is not None for e in r.epochs)]
    acts = {r.activation for r in runs}
    if not {"ReLU6", "Tanh", "Softsign", "Sigmoid"} <= acts:
        return _untestable("C3", *head, test, f"{src.root}/ lacks pcDEQ L records of "
                           f"{', '.join(sorted({'ReLU6', 'Tanh', 'Softsign', 'Sigmoid'} - acts))}"
                           f" ({src.profile} profile)")
    frac = {}
    for act in ("ReLU6", "Tanh", "Softsign", "Sigmoid"):
        vals = [e["sigma_max"] for r in runs if r.activation == act for e in r.epochs]
        frac[act] = sum(v > 1 for v in vals) / len(vals)
    ok = frac["ReLU6"] == 0 and all(frac[a] > THRESHOLDS["sigma_mostly_above"]
                                    for a in ("Tanh", "Softsign", "Sigmoid"))
    text = "; ".join(f"{a}: {100 * f:.0f}% of epochs above 1" for a, f in frac.items())
    return Claim("C3", *head, test, f"{text}. [{src.label(runs)}]", verdict(ok))


def claim_sigmoid_iters(src: Source) -> Claim:
    """C4, Figure 3: pcDEQ-2 with sigmoid converges in fewer than 8 iterations."""
    head = ("pcDEQ-2 with sigmoid converges in fewer than 8 iterations", "Fig. 3, Sec. 5.3")
    test = ("largest per-epoch mean forward and backward iterations (training batches, and "
            f"forward at test) of every pcDEQ-2 run; holds if < {THRESHOLDS['sigmoid_max_iters']:g}")
    runs = [r for r in src.runs if r.method.startswith("pcDEQ-2")]
    if not runs:
        return _untestable("C4", *head, test, f"{src.root}/ has no pcDEQ-2 records")
    keys = ("fwd_iters", "bwd_iters", "test_fwd_iters")
    # The maximum over seeds, epochs and the three counts, with where it occurs.
    worst: dict[str, tuple[float, int, int, str]] = {}
    for r in runs:
        for e in r.epochs:
            for k in keys:
                if e.get(k) is not None and (r.method not in worst or e[k] > worst[r.method][0]):
                    worst[r.method] = (e[k], r.seed, e["epoch"], k)
    text = "; ".join(f"{m}: max {v:.2f} (seed {s}, epoch {ep}, {k})"
                     for m, (v, s, ep, k) in worst.items())
    return Claim("C4", *head, test, f"{text}. [{src.label(runs)}]",
                 verdict(max(v[0] for v in worst.values()) < THRESHOLDS["sigmoid_max_iters"]))


def _growth(runs: Sequence[Run]) -> float:
    first = statistics.fmean(r.epochs[0]["fwd_iters"] for r in runs)
    last = statistics.fmean(r.epochs[-1]["fwd_iters"] for r in runs)
    return last / first


def claim_iterations_flat(src: Source) -> Claim:
    """C5: iterations do not increase during training for pcDEQ, while they do for the
    standard DEQ and monDEQ."""
    head = ("The number of iterations does not increase over training for pcDEQ, unlike the "
            "standard DEQ and monDEQ", "Sec. 5.3 (Fig. 3, 8-10)")
    g = THRESHOLDS["iter_growth"]
    test = (f"last / first epoch mean forward iterations per method (mean over seeds; runs of "
            f"one epoch show no trend and are left out); holds if every pcDEQ ratio ≤ {g} and "
            f"DEQ, monDEQ ratios > {g}")
    # A run of one epoch has last = first: its ratio of 1 would be no evidence of anything.
    runs = [r for r in src.runs if len(r.epochs) >= 2]
    short = sorted({r.method for r in src.runs if len(r.epochs) < 2})
    pc = [r for r in runs if r.group == "pcDEQ"]
    if not pc:
        return _untestable("C5", *head, test, f"{src.root}/ has no pcDEQ records of two or more "
                           "epochs")
    methods = sorted({r.method for r in runs})
    ratio = {m: _growth([r for r in runs if r.method == m]) for m in methods}
    pc_r = {m: v for m, v in ratio.items() if parse_method(m).is_pcdeq}
    base = {m: v for m, v in ratio.items() if parse_method(m).family in ("DEQ", "monDEQ")}
    other = {m: v for m, v in ratio.items() if m not in pc_r and m not in base}
    # One number per family and architecture (the runs of all its methods pooled) first,
    # then every method's own ratio.
    fam: dict[str, list[Run]] = {}
    for r in runs:
        fam.setdefault(f"{parse_method(r.method).family} {r.arch}", []).append(r)
    text = ("per family: " + ", ".join(f"{k} {_growth(rs):.2f}" for k, rs in sorted(fam.items()))
            + "; pcDEQ: " + ", ".join(f"{m} {v:.2f}" for m, v in pc_r.items()))
    if short:
        text += f" (left out, one epoch: {', '.join(short)})"
    if not base:
        return Claim("C5", *head, test, text + f". [{src.label(pc)}]", UNTESTABLE,
                     f"{src.root}/ has no DEQ / monDEQ records (the stable-DEQ baselines)")
    text += "; DEQ / monDEQ: " + ", ".join(f"{m} {v:.2f}" for m, v in base.items())
    if other:  # the other stable DEQs: shown, not part of the paper's claim
        text += "; not in the claim: " + ", ".join(f"{m} {v:.2f}" for m, v in other.items())
    ok = all(v <= g for v in pc_r.values()) and all(v > g for v in base.values())
    used = runs
    return Claim("C5", *head, test, f"{text}. [{src.label(used)}]", verdict(ok))


def claim_accuracy(src: Source) -> Claim:
    """C6, Tables 1-3: pcDEQ matches or beats monDEQ with fewer parameters (same data here)."""
    from .paper_results import BASELINES, paper_accuracy
    quoted_mon = {b.model: b.acc for b in BASELINES["mnist"]}
    head = ("pcDEQ matches or beats monDEQ with fewer parameters", "Tables 1-3")
    k = THRESHOLDS["acc_margin_std"]
    test = (f"best pcDEQ method's mean final test accuracy vs monDEQ of the same architecture "
            f"(L, SC), same data and harness; holds if ≥ monDEQ mean − {k:g} pooled std and "
            f"fewer parameters")
    parts, oks, used = [], [], []
    for arch in ("L", "SC"):
        mon = [r for r in src.runs if r.method == f"monDEQ-{arch}"]
        pcs = [r for r in src.runs if r.group == "pcDEQ" and r.arch == arch]
        if not mon or not pcs:
            continue
        by_m: dict[str, list[Run]] = {}
        for r in pcs:
            by_m.setdefault(r.method, []).append(r)
        best = max(by_m, key=lambda m: statistics.fmean(r.final_acc for r in by_m[m]))
        a = [r.final_acc for r in by_m[best]]
        b = [r.final_acc for r in mon]
        sd = math.sqrt((statistics.pvariance(a) + statistics.pvariance(b)) / 2)
        ok = (statistics.fmean(a) >= statistics.fmean(b) - k * sd
              and by_m[best][0].n_params < mon[0].n_params)
        oks.append(ok)
        used += by_m[best] + mon
        q_pc, q_mon = paper_accuracy("mnist", best), quoted_mon.get(f"monDEQ-{arch}")
        parts.append(f"{arch}: {best} {statistics.fmean(a):.2f}% ({by_m[best][0].n_params:,} "
                     f"params) vs monDEQ-{arch} {statistics.fmean(b):.2f}% ({mon[0].n_params:,}), "
                     f"pooled std {sd:.2f}"
                     + (f"; paper (MNIST, quoted): {q_pc} vs {q_mon}" if q_pc and q_mon else ""))
    if not oks:
        return _untestable("C6", *head, test, f"{src.root}/ lacks monDEQ and pcDEQ records of "
                           "the same architecture (the stable-DEQ baselines)")
    return Claim("C6", *head, test, "; ".join(parts) + f". [{src.label(used)}]",
                 verdict(all(oks)))


def claims_from_records(src: Source) -> list[Claim]:
    return [claim_sigma_max(src), claim_sigmoid_iters(src), claim_iterations_flat(src),
            claim_accuracy(src)]


NOT_HERE = [
    Claim("C8", "Accuracy at the paper's scale: MNIST 98.1-99.3%, SVHN 87.3-93.0%, CIFAR-10 "
          "71.0-89.2% (Tables 1-3)", "Tables 1-3", "the paper profile's records",
          "—", UNTESTABLE, "needs real SVHN and CIFAR-10 (not reachable offline here) and the "
          "paper profile's GPU hours (config/paper.yaml)"),
]


def claims_table(claims: Sequence[Claim], sources: Sequence[Source]) -> Table:
    """The claims table (``tables/claims.md`` + ``.tex``), in claim order."""
    order = {c: i for i, c in enumerate(["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"])}
    claims = sorted(claims, key=lambda c: order.get(c.key, 99))
    header = ["#", "Claim", "Paper", "Test", "Measured (profile, data)", "Verdict"]
    rows = [[c.key, c.claim, c.where, c.test, c.evidence,
             f"**{c.verdict}**" + (f": {c.why}" if c.why else "")] for c in claims]
    srcs = ", ".join(f"{s.profile} ({s.root}/, {len(s.runs)} complete real-data runs)" for s in sources)
    notes = ["Every verdict is computed in notebooks/claims.ipynb from the measured value and "
             "the threshold in the Test column (pcdeq.claims.THRESHOLDS); none is typed.",
             "C1, C2, C7 run on the trained models whose weights are committed beside the "
             "records (reference_weights of each profile); C3-C6 read the run records."]
    return Table("claims", "The paper's claims, checked", f"Evidence from: {srcs}.", header,
                 rows, notes, align="lllllll"[:len(header)])
