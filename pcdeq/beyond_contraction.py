"""The theorem where Banach's theorem says nothing (Figure 15, and claim C1's test).

Proposition 4.6 promises a unique fixed point and geometric convergence of z_{k+1} = g(z_k),
g(z) = σ(W z + x), *whatever ||W||*: the proof runs in Thompson's metric on the positive cone,

    d_T(u, v) = max_i |log u_i - log v_i|,

in which a positive concave monotone map does not expand (u <= λ v implies g(u) <= λ g(v) for
λ >= 1, since σ is concave with σ(0) >= 0 and x >= 0) and, with g(0) >> 0, contracts. The ℓ2
route (Banach) needs Lip(σ) ||W||_2 < 1 instead. On the trained models of Section 5.4 that ℓ2
bound is below 1 for ReLU6, softsign and sigmoid, so only a model with the bound above 1
tests the theorem. This module makes such models from every trained pcDEQ by scaling W by
s in {1, 2, 5, 10, 100} (W stays nonnegative: the theorem still applies) and measures, in
float64 on the layer inputs of real test images (and on the same inputs times ε, which keeps
σ out of saturation so that the Jacobian's ℓ2 norm is large):

* how many distinct limits the iteration reaches from z = 0 and from random nonnegative
  starts, iterations to the paper's tolerance 1e-4 and the fitted geometric rate;
* ||J(z*)||_2 (the local ℓ2 Lipschitz constant), the spectral radius ρ(J(z*)) and the
  global bound Lip(σ) s ||W||_2;
* the largest one-step ratio d(g(u), g(v)) / d(u, v) in ℓ2 and in Thompson's metric, for the
  pair along J(z*)'s top singular vector (the worst ℓ2 direction: random pairs never find it)
  and along every trajectory.

Negative controls run through the same code: the unconstrained DEQ (mixed-sign W) scaled the
same way, and tanh with x = 0 (outside the theorem: g(0) = 0, so z = 0 is a fixed point and,
once ρ(s W) > 1, a positive one appears). :func:`verdict` holds only if every pcDEQ map has
one limit reached from every start and every control is flagged somewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from .layers import ACTIVATION_FNS, CONV3X3, LINEAR, conv_operator_norm
from .solver import batch_rows
from .theory import LIPSCHITZ, fit_rate

DTYPE = torch.float64


@dataclass(frozen=True)
class Settings:
    """What the study runs (the notebook's parameters; the claims table uses the defaults).

    Attributes:
        scales: the factors s of W (s = 1: the trained model).
        n_starts: random nonnegative starts besides z = 0, uniform in [0, 2 max(1, max z*)).
        images_l: test images for L models (each image a separate map).
        images_conv: test images for conv models.
        small_input: ε of the small-input case x -> ε x (0: left out).
        tol: the paper's solver tolerance: iterations are counted to it.
        solve_tol: relative step at which a start counts as converged (float64).
        same_limit: relative ∞-norm distance under which two limits are one.
        max_iter: most iterations per start.
        power_iters: power-iteration steps for ||J||_2 and ρ(J) of conv layers.
        seed: of the random starts and pairs.
    """

    scales: tuple[float, ...] = (1, 2, 5, 10, 100)
    n_starts: int = 20
    images_l: int = 16
    images_conv: int = 1
    small_input: float = 0.01
    tol: float = 1e-4
    solve_tol: float = 1e-11
    same_limit: float = 1e-6
    max_iter: int = 3000
    power_iters: int = 100
    seed: int = 0


# ------------------------------------------------------------------------------ the map
@dataclass(frozen=True)
class ScaledMap:
    """g(z) = σ(s op(W, z) + x) in float64; the rows of x are separate maps (one per image).

    Attributes:
        model: e.g. "pcDEQ-1-L-Tanh seed0 layer 1" (a control: "DEQ-L-Tanh ...").
        inputs: "test" (layer inputs of real test images), "small" (ε times those), "x = 0".
        W: the trained weight, float64 (L: (n, n); conv: (C, C, 3, 3)).
        x: (B, n) or (B, C, H, W).
        activation: key of ``ACTIVATION_FNS``.
        s: the scale of W.
        positive: W >= 0 and g(0) >> 0 (Thompson's metric applies; the theorem's hypotheses
            for pcDEQ).
    """

    model: str
    inputs: str
    W: Tensor
    x: Tensor
    activation: str
    s: float = 1.0
    positive: bool = True

    @property
    def conv(self) -> bool:
        return self.W.dim() == 4

    def op(self, v: Tensor) -> Tensor:
        """s W v, by the layer's own operator (its 3x3 convolution or dense product)."""
        return self.s * (CONV3X3 if self.conv else LINEAR)(self.W, v)

    def __call__(self, z: Tensor) -> Tensor:
        return ACTIVATION_FNS[self.activation](self.op(z) + _tile(self.x, z))

    def derivative(self, z: Tensor) -> Tensor:
        """σ'(s W z + x), elementwise (J(z) = diag(σ') s W)."""
        u = (self.op(z) + _tile(self.x, z)).requires_grad_()
        with torch.enable_grad():
            (d,) = torch.autograd.grad(ACTIVATION_FNS[self.activation](u).sum(), u)
        return d

    def l2_bound(self) -> float:
        """Lip(σ) s ||W||_2 (conv: the zero-padded operator's norm, an exact upper bound)."""
        norm = (conv_operator_norm(self.W, tuple(self.x.shape[-2:])) if self.conv
                else float(torch.linalg.matrix_norm(self.W, ord=2)))
        return LIPSCHITZ[self.activation] * self.s * norm

    def scaled(self, s: float) -> "ScaledMap":
        return replace(self, s=float(s))


def _tile(x: Tensor, z: Tensor) -> Tensor:
    """x repeated over the starts stacked in z's batch dimension (S * B rows)."""
    return x if z.shape[0] == x.shape[0] else x.repeat(z.shape[0] // x.shape[0], *([1] * (x.dim() - 1)))


# ------------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class Measure:
    """One map at one scale.

    Attributes:
        s: the scale of W.
        l2_bound: Lip(σ) s ||W||_2; Banach applies where it is < 1.
        iters: iterations from z = 0 to the paper's tol (relative step of the batch);
            None if not reached within max_iter.
        rate: fitted geometric rate q of the residual from z = 0 (None: no fit).
        starts: starts per image (z = 0 and the random ones).
        converged: starts (over all images) that reached solve_tol.
        max_limits: the largest number of distinct limits of one image.
        jac_l2: ||J(z*)||_2, the largest over the images.
        jac_rho: ρ(J(z*)), the largest over the images.
        pair_l2, pair_thompson: one-step ratios of the pair z* ± δ v, v the top right singular
            vector of J(z*) (the worst ℓ2 direction).
        traj_l2, traj_thompson: the largest one-step ratio along every trajectory.
        rand_l2, rand_thompson: the largest one-step ratio over random pairs of starts.
        thompson: whether Thompson's metric is defined (iterates in the positive cone).
    """

    s: float
    l2_bound: float
    iters: int | None
    rate: float | None
    starts: int
    images: int
    converged: int
    max_limits: int
    jac_l2: float
    jac_rho: float
    pair_l2: float
    pair_thompson: float
    traj_l2: float
    traj_thompson: float
    rand_l2: float
    rand_thompson: float
    thompson: bool

    @property
    def unique(self) -> bool:
        """Every start converged, to one limit per image."""
        return self.converged == self.starts * self.images and self.max_limits == 1


def thompson(u: Tensor, v: Tensor) -> Tensor:
    """d_T(u, v) = max_i |log u_i - log v_i| per row (inf where a coordinate is <= 0)."""
    return (torch.log(batch_rows(u)) - torch.log(batch_rows(v))).abs().amax(dim=1)


def _l2(u: Tensor, v: Tensor) -> Tensor:
    return torch.linalg.vector_norm(batch_rows(u - v), dim=1)


def _solve(g: ScaledMap, z: Tensor, st: Settings, *, thompson_ok: bool
           ) -> tuple[Tensor, list[float], Tensor, int | None, float, float]:
    """Iterate a stack of starts (rows: start-major, image-minor).

    Returns:
        (last iterate, batch residual trace, converged flag per row, iterations to st.tol
        of the batch residual, largest ℓ2 one-step ratio along the trajectories, largest
        Thompson one-step ratio along them). Ratios are taken from the second step on (the
        first iterate g(z_0) is already in the positive cone) while a row's step is above
        1e-9 of its norm (below that, rounding decides the ratio).
    """
    res: list[float] = []
    done = torch.zeros(z.shape[0], dtype=torch.bool)
    to_tol = None
    worst_l2 = worst_t = 0.0
    prev_l2 = prev_t = prev_live = None
    zn = g(z)
    for k in range(st.max_iter):
        z, zn = zn, g(zn)
        step = _l2(zn, z)
        norm = torch.linalg.vector_norm(batch_rows(zn), dim=1)
        r = float(torch.linalg.vector_norm(zn - z) / max(float(torch.linalg.vector_norm(zn)), 1e-300))
        res.append(r)
        if to_tol is None and r <= st.tol:
            to_tol = k + 2  # g(z0) and this step
        live = step > 1e-9 * norm.clamp(min=1e-300)
        if prev_l2 is not None:
            ok = live & prev_live
            if ok.any():
                worst_l2 = max(worst_l2, float((step[ok] / prev_l2[ok]).max()))
        if thompson_ok:
            t = thompson(zn, z)
            if prev_t is not None:
                ok = live & prev_live & (prev_t > 0)
                if ok.any():
                    worst_t = max(worst_t, float((t[ok] / prev_t[ok]).max()))
            prev_t = t
        prev_l2, prev_live = step, live
        done = step <= st.solve_tol * norm.clamp(min=1.0)
        if not math.isfinite(r) or bool(done.all()):
            break
    return zn, res, done, to_tol, worst_l2, (worst_t if thompson_ok else math.nan)


def _limits(z: Tensor, done: Tensor, images: int, same: float) -> int:
    """The largest number of distinct limits of one image among its converged starts."""
    rows = batch_rows(z)
    zs = rows.view(-1, images, rows.shape[1])  # (starts, images, n)
    ok = done.view(-1, images)
    most = 0
    for b in range(images):
        centres: list[Tensor] = []
        for p in zs[ok[:, b], b]:
            if not any(float((p - c).abs().max()) <= same * max(1.0, float(c.abs().max()))
                       for c in centres):
                centres.append(p)
        most = max(most, len(centres))
    return most


def _jacobian_norms(g: ScaledMap, z: Tensor, st: Settings) -> tuple[float, float, Tensor]:
    """(||J(z*)||_2, ρ(J(z*)), top right singular vector) at z* (largest over the images).

    L: exact, from the dense Jacobians diag(σ'(u_b)) s W; conv: power iteration on J^T J
    (``st.power_iters`` steps) for the norm and Gelfand's ||J^k v||^(1/k) for ρ.
    """
    d = g.derivative(z)
    if not g.conv:
        J = d[:, :, None] * (g.s * g.W)[None]  # (B, n, n)
        U, S, Vh = torch.linalg.svd(J)
        b = int(S[:, 0].argmax())
        v = torch.zeros_like(z)
        v[b] = Vh[b, 0]
        rho = float(torch.linalg.eigvals(J).abs().amax())
        return float(S[b, 0]), rho, v
    def jv(v: Tensor) -> Tensor:
        return d * g.op(v)

    def jtv(y: Tensor) -> Tensor:  # (s W)^T (d ⊙ y): the transposed convolution
        return g.s * torch.nn.functional.conv_transpose2d(d * y, g.W, padding=1)

    gen = torch.Generator().manual_seed(st.seed)
    v = torch.rand(z.shape, generator=gen, dtype=DTYPE)
    v /= v.norm()
    for _ in range(st.power_iters):
        w = jtv(jv(v))
        v = w / w.norm()
    norm = float(jv(v).norm())
    w = torch.rand(z.shape, generator=gen, dtype=DTYPE)
    w /= w.norm()
    logs = 0.0
    for _ in range(st.power_iters):
        w = jv(w)
        n = float(w.norm())
        if n == 0:
            return norm, 0.0, v
        logs += math.log(n)
        w /= n
    return norm, math.exp(logs / st.power_iters), v


def _pair_ratios(g: ScaledMap, z: Tensor, v: Tensor) -> tuple[float, float]:
    """ℓ2 and Thompson one-step ratios of the pair z* ± δ v (δ keeps both points positive)."""
    pos = float(z.min()) > 0
    big = v.abs() > 0
    delta = 1e-3 * float(z.abs().max())
    if pos and big.any():
        delta = min(delta, 0.5 * float((z[big] / v[big].abs()).min()))
    u, w = z + delta * v, z - delta * v
    rows = _l2(u, w) > 0
    if not rows.any():  # z* = 0 (the x = 0 control) or v = 0: no pair
        return math.nan, math.nan
    l2 = float((_l2(g(u), g(w))[rows] / _l2(u, w)[rows]).max())
    if not (pos and g.positive):
        return l2, math.nan
    return l2, float((thompson(g(u), g(w))[rows] / thompson(u, w)[rows]).max())


def measure(g: ScaledMap, st: Settings = Settings()) -> Measure:
    """Everything of :class:`Measure` for one map (its scale ``g.s``)."""
    with torch.no_grad():
        B = g.x.shape[0]
        z0, res, done0, to_tol, _, _ = _solve(g, torch.zeros_like(g.x), st, thompson_ok=False)
        high = 2.0 * max(1.0, float(z0.abs().max()))
        gen = torch.Generator().manual_seed(st.seed)
        starts = high * torch.rand((st.n_starts * B, *g.x.shape[1:]), generator=gen, dtype=DTYPE)
        z, _, done, _, tl2, tt = _solve(g, starts, st, thompson_ok=g.positive)
        half = starts.shape[0] // 2 // B * B  # pairs (start i, start i + half), same image
        u, w = starts[:half], starts[half:2 * half]
        rl2 = float((_l2(g(u), g(w)) / _l2(u, w)).max()) if half else math.nan
        rt = (float((thompson(g(u), g(w)) / thompson(u, w)).max())
              if half and g.positive else math.nan)
    fit = fit_rate(res, floor=1e-13)
    jl2, rho, v = _jacobian_norms(g, z0, st)
    with torch.no_grad():
        pl2, pt = _pair_ratios(g, z0, v)
    allz = torch.cat([z0, z])
    alld = torch.cat([done0, done])
    return Measure(g.s, g.l2_bound(), to_tol, None if fit is None else fit.rate, st.n_starts + 1,
                   B, int(alld.sum()), _limits(allz, alld, B, st.same_limit), jl2, rho, pl2, pt,
                   tl2, tt, rl2, rt, g.positive)


# ---------------------------------------------------------------------------- the study
@dataclass
class Series:
    """One map (model, layer, inputs) over the scales."""

    model: str
    inputs: str
    activation: str
    control: str  # "" for a pcDEQ map; else why it is a control
    measures: list[Measure] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Some scale has several limits or a start that did not converge."""
        return any(not m.unique for m in self.measures)


@dataclass
class Study:
    settings: Settings
    series: list[Series]
    provenance: str

    def pcdeq(self) -> list[Series]:
        return [s for s in self.series if not s.control]

    def controls(self) -> list[Series]:
        return [s for s in self.series if s.control]


def maps_of_model(path: str | Path, images: Tensor, st: Settings) -> list[ScaledMap]:
    """The DEQ layers of a trained model as :class:`ScaledMap` s at s = 1, on the layer
    inputs of ``images`` (preprocessed) and on ε times them."""
    from .claims import layer_problems
    from .train import load_trained

    model = load_trained(path)
    name = f"{model.spec.method.name} {Path(path).stem}"
    out = []
    for p in layer_problems(model, images):
        W = p.layer.effective_weight().detach().to(DTYPE)
        positive = bool(W.min() >= 0) and getattr(p.layer, "variant", None) is not None
        label = name if len(model.deq_layers()) == 1 else f"{name} {p.name}"
        out.append(ScaledMap(label, "test", W, p.x, p.layer.activation, 1.0, positive))
        if st.small_input:
            out.append(ScaledMap(label, f"small (ε = {st.small_input:g})", W,
                                 st.small_input * p.x, p.layer.activation, 1.0, positive))
    return out


def run_series(base: ScaledMap, st: Settings, control: str = "") -> Series:
    return Series(base.model, base.inputs, base.activation, control,
                  [measure(base.scaled(s), st) for s in st.scales])


def study(weights: Sequence[str | Path], images: Callable[[str | Path, int], Tensor],
          st: Settings = Settings(), provenance: str = "") -> Study:
    """Every pcDEQ model of ``weights``, scaled; DEQ models of ``weights`` as controls, and the
    x = 0 control on the first pcDEQ-1 tanh model.

    Args:
        weights: weights files (pcDEQ and DEQ of the paper's architectures; others are skipped).
        images: (weights file, n) -> n preprocessed test images for that model.
        st: the settings.
        provenance: profile and data, printed in captions.
    """
    from .hparams import dataset_info
    from .train import load_trained

    series: list[Series] = []
    zero_done = False
    for path in weights:
        spec = load_trained(path).spec
        m = spec.method
        # monDEQ, LipDEQ: other maps; the multiscale models: one W over three resolutions,
        # checked by C1 / C2 instead; a synthetic stand-in is no evidence
        if (not (m.is_pcdeq or m.family == "DEQ") or m.arch == "MS"
                or dataset_info(spec.dataset).synthetic):
            continue
        n = st.images_l if m.arch == "L" else st.images_conv
        for g in maps_of_model(path, images(path, n), st):
            control = "" if m.is_pcdeq else "unconstrained W (mixed signs): outside the theorem"
            series.append(run_series(g, st, control))
            if m.is_pcdeq and g.activation == "tanh" and g.inputs == "test" and not zero_done:
                zero = ScaledMap(g.model, "x = 0", g.W, torch.zeros_like(g.x), "tanh", 1.0, False)
                series.append(run_series(zero, st, "x = 0: g(0) = 0, outside the theorem"))
                zero_done = True
    return Study(st, series, provenance)


def test_inputs(root: str | Path, data_root: str = "data") -> Callable[[str | Path, int], Tensor]:
    """The ``images`` argument of :func:`study`: the first n test images of a model's data set,
    preprocessed for it, from ``<root>/claims_inputs/`` (committed beside the weights) or the
    installed data set (see :func:`pcdeq.claims.test_images`)."""
    from .claims import test_images
    from .train import load_trained

    cache: dict = {}

    def images(path: str | Path, n: int) -> Tensor:
        spec = load_trained(path).spec
        return test_images(spec.dataset, spec.method.name, data_root, n, cache, Path(root))
    return images


def verdict(st: Study) -> tuple[bool, str]:
    """The decision rule of C1's scaled test, stated before any number is seen: holds iff
    every pcDEQ map at every scale reaches one limit from every start, and every control is
    flagged (several limits or a start that does not converge) at some scale.

    Returns:
        (holds, the reason in words).
    """
    pc, ctl = st.pcdeq(), st.controls()
    if not pc or not ctl:
        return False, "needs pcDEQ maps and negative controls"
    bad = [f"{s.model} ({s.inputs}) s = {m.s:g}" for s in pc for m in s.measures if not m.unique]
    missed = [f"{s.model} ({s.inputs})" for s in ctl if not s.flagged]
    parts = []
    if bad:
        parts.append("pcDEQ maps without a unique limit: " + ", ".join(bad))
    if missed:
        parts.append("controls not flagged: " + ", ".join(missed))
    return not bad and not missed, "; ".join(parts) or "every pcDEQ map unique, every control flagged"


# ------------------------------------------------------------------------------ reading
def worst_l2(m: Measure) -> float:
    """The largest measured ℓ2 one-step ratio (worst direction, trajectories, random pairs)."""
    return max(x for x in (m.pair_l2, m.traj_l2, m.rand_l2) if not math.isnan(x))


def worst_thompson(m: Measure) -> float:
    """The largest measured Thompson one-step ratio (NaN outside the positive cone)."""
    xs = [x for x in (m.pair_thompson, m.traj_thompson, m.rand_thompson) if not math.isnan(x)]
    return max(xs) if xs else math.nan


def beyond_banach(st: Study) -> list[tuple[Series, Measure]]:
    """pcDEQ maps and scales where the ℓ2 ratio measured exceeds 1 (no ℓ2 contraction there)
    while the Thompson ratio stays below 1."""
    return [(s, m) for s in st.pcdeq() for m in s.measures
            if worst_l2(m) > 1 and worst_thompson(m) < 1]


def summary(st: Study) -> list[str]:
    """The study in a few lines of text, every number computed from it."""
    pc, ctl = st.pcdeq(), st.controls()
    n_pc = sum(len(s.measures) for s in pc)
    uniq = sum(m.unique for s in pc for m in s.measures)
    no_banach = sum(m.l2_bound >= 1 for s in pc for m in s.measures)
    out = [f"pcDEQ: {uniq} of {n_pc} (map, scale) cases reach one limit from all "
           f"{st.settings.n_starts + 1} starts per image; in {no_banach} of them Lip(σ)·s·‖W‖₂ ≥ 1 "
           "(Banach gives nothing)."]
    bb = beyond_banach(st)
    if bb:
        lo = min(worst_l2(m) for _, m in bb)
        hi = max(worst_l2(m) for _, m in bb)
        th = max(worst_thompson(m) for _, m in bb)
        out.append(f"In {len(bb)} cases the measured ℓ2 ratio is above 1 ({lo:.3f}-{hi:.3f}: no "
                   f"ℓ2 contraction) while the Thompson ratio stays ≤ {th:.3f}: "
                   + ", ".join(f"{s.model} ({s.inputs}) s = {m.s:g}" for s, m in bb) + ".")
    else:
        out.append("No case shows an ℓ2 ratio above 1: every measured pair contracts in ℓ2 too.")
    th_all = [worst_thompson(m) for s in pc for m in s.measures if m.thompson]
    if th_all:
        out.append(f"Largest Thompson ratio over every pcDEQ case: {max(th_all):.3f}.")
    for s in ctl:
        flags = [f"s = {m.s:g}: {m.max_limits} limits, {m.converged}/{m.starts * m.images} starts "
                 "converged" for m in s.measures if not m.unique]
        out.append(f"Control {s.model} ({s.inputs}; {s.control}): "
                   + ("; ".join(flags) if flags else "never flagged") + ".")
    ok, why = verdict(st)
    out.append(f"Verdict: {'holds' if ok else 'does not hold'} ({why}).")
    return out


def brief(st: Study) -> str:
    """:func:`summary` in one sentence (the claims table's evidence)."""
    pc = st.pcdeq()
    n_pc = sum(len(s.measures) for s in pc)
    uniq = sum(m.unique for s in pc for m in s.measures)
    no_banach = sum(m.l2_bound >= 1 for s in pc for m in s.measures)
    bb = beyond_banach(st)
    th = [worst_thompson(m) for s in pc for m in s.measures if m.thompson]
    text = (f"{uniq}/{n_pc} pcDEQ (map, s) cases with one limit, Lip(σ)·s·‖W‖₂ ≥ 1 in "
            f"{no_banach}; measured ℓ2 ratio > 1 with Thompson ratio < 1 in {len(bb)}"
            + (f" (ℓ2 up to {max(worst_l2(m) for _, m in bb):.3f})" if bb else "")
            + (f"; largest Thompson ratio {max(th):.3f}" if th else ""))
    ctl = []
    for c in st.controls():
        at = [f"{m.s:g}" for m in c.measures if not m.unique]
        ctl.append(f"{c.model} ({c.inputs}): " + (f"flagged at s = {', '.join(at)}" if at
                                                   else "never flagged"))
    return text + "; controls: " + "; ".join(ctl)


def figure(st: Study, profile: str = "quick"):
    """Figure 15: iterations and distinct limits against s for pcDEQ and the controls, the
    worst ℓ2 against the worst Thompson one-step ratio of every pcDEQ case, and the fitted rate.

    Returns:
        The matplotlib figure.
    """
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(1, 4, figsize=(19, 5.4))
    colors = {"relu6": "#1f77b4", "tanh": "#d62728", "softsign": "#2ca02c", "sigmoid": "#9467bd"}
    cap = st.settings.max_iter
    for s in st.series:
        xs = [m.s for m in s.measures]
        if s.control:
            c, ls = ("k", "--" if s.inputs != "x = 0" else "-.")
        else:
            c, ls = colors.get(s.activation, "gray"), ("-" if s.inputs == "test" else ":")
        its = [m.iters if m.iters is not None else cap for m in s.measures]
        ax[0].plot(xs, its, ls, color=c, marker="o", ms=3, lw=1)
        for x, m in zip(xs, s.measures):
            if m.iters is None:
                ax[0].plot([x], [cap], "x", color=c, ms=8)
        ax[1].plot(xs, [m.max_limits for m in s.measures], ls, color=c, marker="o", ms=3, lw=1)
        ax[3].plot(xs, [m.rate if m.rate is not None else math.nan for m in s.measures], ls,
                   color=c, marker="o", ms=3, lw=1)
        if not s.control:
            ax[2].scatter([worst_l2(m) for m in s.measures],
                          [worst_thompson(m) for m in s.measures], color=c, s=14,
                          marker="o" if s.inputs == "test" else "^")
    for a in (ax[0], ax[1], ax[3]):
        a.set_xscale("log")
        a.set_xlabel("scale s of W")
    ax[0].set_yscale("log")
    ax[0].set_ylabel(f"iterations from z = 0 to tol {st.settings.tol:g} (x: not in {cap})")
    ax[0].set_title("(a) forward iterations")
    ax[1].set_ylabel(f"distinct limits (most of one image; {st.settings.n_starts + 1} starts)")
    ax[1].set_title("(b) distinct limits")
    ax[3].set_ylabel("fitted rate q of the residual from z = 0")
    ax[3].axhline(1, color="gray", lw=0.8)
    ax[3].set_title("(d) geometric rate")
    hi = max([1.2] + [worst_l2(m) * 1.05 for s in st.pcdeq() for m in s.measures])
    ax[2].axvspan(1, hi, ymax=1 / 1.05, color="#ffe9b3", zorder=0)
    ax[2].text(1.0, 0.02, " no ℓ2 contraction,\n Thompson contracts", fontsize=7, va="bottom")
    ax[2].axvline(1, color="gray", lw=0.8)
    ax[2].axhline(1, color="gray", lw=0.8)
    ax[2].set_xlim(0, hi)
    ax[2].set_ylim(0, 1.05)
    ax[2].set_xlabel("largest ℓ2 one-step ratio ‖g(u) − g(v)‖ / ‖u − v‖")
    ax[2].set_ylabel("largest Thompson ratio d_T(g(u), g(v)) / d_T(u, v)")
    ax[2].set_title("(c) every pcDEQ case: ℓ2 vs Thompson")
    handles = [Line2D([], [], color=c, lw=2, label=k) for k, c in colors.items()
               if any(s.activation == k and not s.control for s in st.series)]
    handles += [Line2D([], [], color="k", ls="-", label="layer inputs of test images (o in c)"),
                Line2D([], [], color="k", ls=":", label=f"× ε = {st.settings.small_input:g} (^ in c)")]
    handles += [Line2D([], [], color="k", ls="--" if c.inputs != "x = 0" else "-.",
                       label=f"control: {c.model} ({c.inputs})") for c in st.controls()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8,
               frameon=False)
    ok, _ = verdict(st)
    title = (f"Figure 15: the theorem beyond contraction, W scaled by s, float64; C1's scaled "
             f"test {'holds' if ok else 'does not hold'}. "
             + (st.provenance or f"{profile} profile: no trained pcDEQ weights"))
    fig.suptitle("\n".join(textwrap.wrap(title, 200)), fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return fig
