"""The fixed points of a trained model's DEQ layers, measured (C1, C2, C7): each layer's map
g(z) = σ(W z + x) on a batch of test images, the limits of its plain iteration from many
nonnegative starts, the geometric rate of its residual trace, and the invariants W ≥ 0, x ≥ 0
and the activation pairing of Lemma 4.2."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..activations import pcdeq_activations
from ..data import Preprocess, load_dataset
from ..files import atomic_torch_save
from ..hparams import dataset_info, hyperparameters
from ..layers import ACTIVATION_FNS, EquilibriumLayer
from ..models import DEQClassifier, capturing_inputs
from ..theory import fit_rate, iterate_batch
from .claim import THRESHOLDS

# What the records' activations must satisfy in Lemma 4.2 (from the one activation table).
PAIRINGS = {v: tuple(a.lower() for a in pcdeq_activations(v)) for v in (1, 2)}


@dataclass
class LayerProblem:
    """One DEQ layer of a trained model with its input on a batch: g(z) = σ(W z + x)."""

    name: str
    layer: EquilibriumLayer
    x: Tensor  # the layer input (after the input map), float64

    def g(self) -> Callable[[Tensor], Tensor]:
        return self.layer.map(self.x)  # the layer's own map, in x's float64


@torch.no_grad()
def layer_problems(model: DEQClassifier, images: Tensor) -> list[LayerProblem]:
    """Every DEQ layer's input on a batch of preprocessed ``images`` (model in eval mode)."""
    model.eval()
    with capturing_inputs(model) as captured:
        model(images)
    return [LayerProblem(f"layer {i + 1}", l, l.inputs(captured[l]).double())
            for i, l in enumerate(model.deq_layers())]


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
            atomic_torch_save(stored, cache[dataset])
    pre = Preprocess(dataset_info(dataset).family, "cpu", hyperparameters(dataset, method).input_norm)
    return pre(cache[dataset][:n])


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
    z0, _, ok0 = iterate_batch(g, torch.zeros_like(p.x), tol, max_iter)
    high = 2.0 * max(1.0, float(z0.abs().max()))
    gen = torch.Generator().manual_seed(seed)
    worst, conv = 0.0 if ok0 else math.inf, int(ok0)
    for _ in range(n_starts):
        start = high * torch.rand(p.x.shape, generator=gen, dtype=torch.float64)
        z, _, ok = iterate_batch(g, start, tol, max_iter)
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
    _, res, ok = iterate_batch(p.g(), torch.zeros_like(p.x), THRESHOLDS["solve_tol"] / 10, max_iter)
    fit = fit_rate(res, floor=floor)
    rate = math.nan if fit is None else fit.rate
    # two orders of magnitude into the decay, past the start-up transient from z = 0; ρ is a
    # maximum, so a later cut could only lower it
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
    # 1e-9: far above float64 rounding of the second differences (~1e-15), far below those of
    # a convex function at this step (h^2 sigma'' = 2.5e-5 sigma'')
    concave = bool((s >= 0).all()) and bool(((s[2:] - 2 * s[1:-1] + s[:-2]) <= 1e-9).all())
    variant = getattr(layers[0], "variant", None)
    pairing = variant is not None and act in PAIRINGS.get(variant, ())
    return Invariants(m.name, variant, act, min_w, min_x, pairing, concave, float(s[0]) > 0)
