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

from . import beyond_contraction as bc
from .data import DatasetMissing, Preprocess, load_dataset
from .hparams import dataset_info, hyperparameters, parse_method
from .layers import ACTIVATION_FNS, DEQLayer
from .models import DEQClassifier
from .report.records import Run, caption, load_runs
from .report.tables import Table
from .stats import summarize, t_quantile
from .theory import fit_rate

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable here"

# The thresholds every verdict is computed with (the notebook prints them).
THRESHOLDS: dict[str, float] = {
    "same_fixed_point": 1e-6,  # largest ∞-norm distance between limits from different starts
    "solve_tol": 1e-11,  # relative step at which a start counts as converged (float64)
    "geometric_max_ratio": 1.0,  # every step shrinks the residual: r_{k+1} / r_k < 1
    "sigma_mostly_above": 0.5,  # "most of the time": more than half of the epochs above 1
    "sigmoid_max_iters": 8.0,  # Figure 3: fewer than 8 iterations
    # A window's iterations "grow" when end / start > 1.1 for sure (95% interval above), "do
    # not grow" when surely below: one more iteration in ten, ~10% more time per step.
    "iter_growth": 1.1,
    # "matches": the 95% Welch interval of (pcDEQ - monDEQ) mean accuracy lies above -0.1
    # points, the precision at which the paper's Tables 1-3 report accuracy (one decimal).
    "acc_margin_points": 0.1,
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
    decisive: str = ""  # the one number the verdict turned on, with its threshold
    profile: str = ""  # the evidence's profile ("" : none, e.g. C8)


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
    scaled: "bc.Study | None" = None  # W scaled beyond contraction, with controls (Figure 15)


def test_images(dataset: str, method: str, data_root: str, n: int, cache: dict,
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
                   images_conv: int = 2, n_starts: int = 20,
                   scaled: bc.Settings | None = None) -> ModelEvidence:
    """Run :func:`uniqueness`, :func:`convergence_rate` and :func:`invariants` on every
    weights file of ``source`` (L models on ``images_l`` test images, conv models on
    ``images_conv``: the iteration runs on the whole batch, 21 times, in float64), and the
    scaled study of Figure 15 (:func:`pcdeq.beyond_contraction.study`; ``scaled``: its
    settings, default those of Figure 15 with ``n_starts``) on the same files."""
    from .train import load_trained

    ev = ModelEvidence(source)
    cache: dict = {}
    used: list[Path] = []
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
            x = test_images(ds, m.name, data_root, n, cache, source.root)
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
        used.append(path)
    if used:
        ev.scaled = bc.study(used, bc.test_inputs(source.root, data_root),
                             scaled or bc.Settings(n_starts=n_starts), provenance=source.label())
    return ev


def format_distance(x: float) -> str:
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
    scales = ", ".join(f"{x:g}" for x in bc.Settings().scales)
    t1 = (f"limits from z = 0 and 20 random starts in [0, 2 max(1, max z*)), float64, "
          f"solved to rel. step {THRESHOLDS['solve_tol']:g}; and the same with W scaled by "
          f"s ∈ {{{scales}}} (W stays ≥ 0, the theorem still applies, Banach mostly does not), "
          f"beside negative controls outside the theorem (the unconstrained DEQ scaled alike; "
          f"tanh with x = 0); holds if every pcDEQ start converges, the largest ∞-norm distance "
          f"≤ {THRESHOLDS['same_fixed_point']:g}, every scaled pcDEQ case has one limit, and "
          f"every control is flagged (several limits or a start that does not converge) at some s")
    t2 = ("residual trace r_k of the iteration from z = 0 (float64): asymptotic rate q (fit "
          "r_k ≈ C q^k) and worst one-step ratio ρ = max r_{k+1}/r_k once r_k < 1% of its maximum; "
          f"holds if every layer converges with ρ < {THRESHOLDS['geometric_max_ratio']:g}")
    t7 = ("min W ≥ 0; min x > 0 (pcDEQ-1) or ≥ 0 (pcDEQ-2); σ nonnegative concave on [0, 10]; "
          "on the trained models and, from the records, at every epoch of training")
    for ev in evs:
        first = len(out)
        src = ev.source
        pc_u = [u for u in ev.uniqueness if parse_method(u.method).is_pcdeq]
        if not pc_u:
            why = (f"no pcDEQ weights in {src.root}/ (the {src.profile} profile's "
                   "reference_weights; run its `all` and `reference` targets)")
            if ev.missing:
                why += "; " + "; ".join(ev.missing)
            out += [_untestable("C1", *c1, t1, why), _untestable("C2", *c2, t2, why),
                    _untestable("C7", *c7, t7, why)]
            for c in out[first:]:
                c.profile = src.profile
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
        text = "; ".join(f"{m}: {format_distance(d)}" for m, d in per_method.items())
        if contrast:
            cd = max(u.max_distance for u in contrast)
            cc = sum(u.converged for u in contrast), sum(u.starts for u in contrast)
            text += (f". For contrast, {contrast[0].method} (no theorem): {format_distance(cd)}, "
                     f"{cc[0]}/{cc[1]} starts converged")
        sc = ev.scaled
        if sc is None or not sc.controls():
            out.append(Claim("C1", *c1, t1, f"largest distance per model: {text}. [{prov}]",
                             UNTESTABLE, f"no negative control in {src.root}/: the test needs the "
                             "weights of DEQ-L-Tanh or of a pcDEQ-1 tanh model (reference_weights)"))
        else:
            scaled_ok, _ = bc.verdict(sc)
            text += f"; scaled W (Figure 15): {bc.brief(sc)}"
            n_pc = sum(len(x.measures) for x in sc.pcdeq())
            n_u = sum(m.unique for x in sc.pcdeq() for m in x.measures)
            n_f = sum(x.flagged for x in sc.controls())
            out.append(Claim("C1", *c1, t1, f"largest distance per model: {text}. [{prov}]",
                             verdict(all_conv and worst <= THRESHOLDS["same_fixed_point"]
                                     and scaled_ok),
                             decisive=f"max distance {format_distance(worst)} (needs ≤ 1e-6); {n_u}/{n_pc} scaled "
                                      f"cases unique; {n_f}/{len(sc.controls())} controls flagged"))
        # C2
        pc_r = [r for r in ev.rates if parse_method(r.method).is_pcdeq]
        ok = all(r.converged and r.worst_ratio < THRESHOLDS["geometric_max_ratio"] for r in pc_r)
        by_m: dict[str, list[Rate]] = {}
        for r in pc_r:
            by_m.setdefault(r.method, []).append(r)
        text = "; ".join(f"{m}: q = " + "/".join(f"{r.rate:.2f}" for r in rs)
                         + f", ρ = {max(r.worst_ratio for r in rs):.2f} "
                         f"({'/'.join(str(r.iters) for r in rs)} it.)" for m, rs in by_m.items())
        out.append(Claim("C2", *c2, t2, f"{text} (MC: one rate per layer). [{prov}]", verdict(ok),
                         decisive=f"worst ρ = {max(r.worst_ratio for r in pc_r):.2f} (needs < 1)"))
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
        during, bad_runs = training_invariants(src.runs)
        text += "; " + during
        out.append(Claim("C7", *c7, t7, f"{len(pc_i)} models: {text}. [{prov}]",
                         verdict(not bad and not bad_runs),
                         decisive=f"min W = {min(i.min_w for i in pc_i):.3g} (needs ≥ 0); "
                                  f"{len(bad) + len(bad_runs)} violations"))
        for c in out[first:]:
            c.profile = src.profile
    return out


def training_invariants(runs: Sequence[Run]) -> tuple[str, list[str]]:
    """C7 over the whole of training: the per-epoch ``min_weight`` / ``min_input`` of every
    pcDEQ record (first test batch), W >= 0 and x > 0 (pcDEQ-1) / x >= 0 (pcDEQ-2) at every
    epoch.

    Returns:
        The evidence text, and the runs ("method seed S epoch E") that break an invariant.
    """
    pc = [r for r in runs if r.group == "pcDEQ"]
    have = [r for r in pc if all(e.min_weight is not None and e.min_input is not None
                                 for e in r.epochs)]
    if not have:
        return ("during training: not recorded (records made before per-epoch min W / min x were "
                "recorded)"), []
    bad = []
    for r in have:
        v = parse_method(r.method).variant
        for e in r.epochs:
            if e.min_weight < 0 or (e.min_input <= 0 if v == 1 else e.min_input < 0):
                bad.append(f"{r.method} seed {r.seed} epoch {e.epoch}")
                break
    w = min(e.min_weight for r in have for e in r.epochs)
    x1 = [e.min_input for r in have if parse_method(r.method).variant == 1 for e in r.epochs]
    x2 = [e.min_input for r in have if parse_method(r.method).variant == 2 for e in r.epochs]
    text = (f"during training, every epoch of {len(have)} of {len(pc)} pcDEQ runs: min W = {w:.3g}"
            + (f", min x (pcDEQ-1) = {min(x1):.3g}" if x1 else "")
            + (f", min x (pcDEQ-2) = {min(x2):.3g}" if x2 else "")
            + (f"; broken by {', '.join(bad)}" if bad else ""))
    return text, bad


# --------------------------------------------------------------------- run records
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
        return _untestable("C3", *head, test, f"{src.root}/ lacks pcDEQ L records of "
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
        return _untestable("C4", *head, test, f"{src.root}/ has no pcDEQ-2 records")
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
        return _untestable("C5", *head, test, f"{src.root}/ has no pcDEQ records of two or more "
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


def welch_interval(a: Sequence[float], b: Sequence[float],
                   level: float = 0.95) -> tuple[float, float, float, float] | None:
    """mean(a) - mean(b) with its Welch (unequal variances) t interval.

    Returns:
        (difference, low, high, Welch-Satterthwaite dof), or None with fewer than 2 values on
        a side. Zero spread on both sides gives a zero-width interval (dof inf).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    d = statistics.fmean(a) - statistics.fmean(b)
    se2 = va + vb
    if se2 == 0:
        return d, d, d, math.inf
    dof = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = t_quantile(0.5 + level / 2, dof) * math.sqrt(se2)
    return d, d - h, d + h, dof


def claim_accuracy(src: Source) -> Claim:
    """C6, Tables 1-3: pcDEQ matches or beats monDEQ with fewer parameters (same data here).

    Every pcDEQ method against monDEQ of its architecture, none selected: the 95% Welch
    interval of the difference of mean final test accuracies must lie above
    -THRESHOLDS["acc_margin_points"] (non-inferiority) and the pcDEQ model must have fewer
    parameters.
    """
    from .paper_results import BASELINES, paper_accuracy
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
                missing.append(f"{method} ({len(a)} seeds) vs monDEQ-{arch} ({len(b)} seeds): "
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
        return _untestable("C6", *head, test, why)
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
    from .numerics import STABILITY_FRACTION, kernel_path_pairs, stability

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
        return _untestable("C9", *head, test, str(e))
    if not pairs:
        return _untestable("C9", *head, test, f"no records in {src.root}/kernel_paths/ (make "
                           f"them with `python workflow/scripts/kernel_paths.py {src.profile} 1`)")
    ms = stability(pairs, src.runs)
    pc = [m for m in ms if parse_method(m.method).is_pcdeq]
    open_ = [m.method for m in pc if m.stable is None]
    if not pc or open_:
        return _untestable("C9", *head, test, "pcDEQ methods without two seeds in "
                           f"{src.root}/ (no seed spread): {', '.join(open_) or 'none paired'}")

    def line(m) -> str:
        where = f" (epoch {m.worst_epoch})" if m.worst_epoch else ""
        frac = "—" if m.worst_fraction is None else f"{m.worst_fraction:.2g}"
        acc = "/".join(f"{p.acc_diff():+.1f}" for p in m.pairs)
        first = f", rel. diff > 1e-3 from epoch {m.first_above}" if m.first_above else ""
        return (f"{m.method}: {frac} × seed spread {m.seed_sd:.2g}{where}, largest rel. train-loss diff "
                f"{m.max_relative:.1e}{first}, final acc. diff {acc} points")
    paths = sorted({f"{p.path} ({p.difference})" for p in pairs})
    text = (f"kernel paths: {'; '.join(paths)}. pcDEQ: " + "; ".join(line(m) for m in pc)
            + "; others: " + ("; ".join(line(m) for m in ms if m not in pc) or "none paired"))
    worst = max(pc, key=lambda m: m.worst_fraction)
    used = [p.a for p in pairs]
    return Claim("C9", *head, test, f"{text}. [{src.label(used)}]",
                 verdict(all(m.stable for m in pc)),
                 decisive=f"largest pcDEQ difference {worst.worst_fraction:.2g} × seed spread "
                          f"({worst.method}; needs < {f:g})")


def claims_from_records(src: Source) -> list[Claim]:
    """C3-C6 and C9 from the run records of one source."""
    out = [claim_sigma_max(src), claim_sigmoid_iters(src), claim_iterations_flat(src),
           claim_accuracy(src), claim_numerical_stability(src)]
    for c in out:
        c.profile = src.profile
    return out


NOT_HERE = [
    Claim("C8", "Accuracy at the paper's scale: MNIST 98.1-99.3%, SVHN 87.3-93.0%, CIFAR-10 "
          "71.0-89.2% (Tables 1-3)", "Tables 1-3", "the paper profile's records",
          "—", UNTESTABLE, "needs real SVHN and CIFAR-10 (not reachable offline here) and the "
          "paper profile's GPU hours (config/paper.yaml)"),
]


ORDER = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]


def _short_verdict(c: Claim) -> str:
    return f"**{c.verdict}**" + (f" ({c.decisive})" if c.decisive else "")


def summary_table(claims: Sequence[Claim], sources: Sequence[Source]) -> Table:
    """One line per claim: the claim, its place in the paper, and per profile the verdict with
    the one number it turned on (the opening of ``tables/claims.md``)."""
    profiles = [s.profile for s in sources]
    header = ["#", "Claim", "Paper"] + [f"{p} profile" for p in profiles]
    rows = []
    for key in sorted({c.key for c in claims}, key=lambda k: ORDER.index(k) if k in ORDER else 99):
        cs = [c for c in claims if c.key == key]
        row = [key, cs[0].claim, cs[0].where]
        for p in profiles:
            mine = [c for c in cs if c.profile == p] or [c for c in cs if not c.profile]
            row.append(_short_verdict(mine[0]) if mine else "—")
        rows.append(row)
    return Table("claims_summary", "The paper's claims at a glance",
                 "Per profile, the verdict and the number that decided it (with the threshold "
                 "it needed); the evidence of each claim follows.", header, rows,
                 align="l" * len(header))


@dataclass
class ClaimsTable(Table):
    """The claims table, opened by its :func:`summary_table`."""

    summary: Table | None = None

    def to_markdown(self) -> str:
        head = self.summary.to_markdown() + "\n" if self.summary is not None else ""
        return head + super().to_markdown()

    def to_latex(self) -> str:
        head = self.summary.to_latex() + "\n" if self.summary is not None else ""
        return head + super().to_latex()


def claims_table(claims: Sequence[Claim], sources: Sequence[Source]) -> Table:
    """The claims table (``tables/claims.md`` + ``.tex``): the one-line summary per claim,
    then every claim's evidence, in claim order."""
    order = {c: i for i, c in enumerate(ORDER)}
    claims = sorted(claims, key=lambda c: order.get(c.key, 99))
    header = ["#", "Claim", "Paper", "Test", "Measured (profile, data)", "Verdict"]
    rows = [[c.key, c.claim, c.where, c.test, c.evidence,
             f"**{c.verdict}**" + (f": {c.why}" if c.why else "")] for c in claims]
    srcs = ", ".join(f"{s.profile} ({s.root}/, {len(s.runs)} complete real-data runs)" for s in sources)
    notes = ["Every verdict is computed in notebooks/claims.ipynb from the measured value and "
             "the threshold in the Test column (pcdeq.claims.THRESHOLDS); none is typed.",
             "C1, C2, C7 run on the trained models whose weights are committed beside the "
             "records (reference_weights of each profile); C3-C6 read the run records."]
    return ClaimsTable("claims", "The paper's claims, checked", f"Evidence from: {srcs}.", header,
                       rows, notes, align="lllllll"[:len(header)],
                       summary=summary_table(claims, sources))
