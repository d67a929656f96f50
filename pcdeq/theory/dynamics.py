"""Part 2 of the theory notebooks, compute: gradient descent on linear and single-index DEQs
(Figure 14; the setting of Dandapanthula & Ramdas, arXiv 2511.16976)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..hparams import ConfigError
from ..solver import implicit_fixed_point
from .maps import DTYPE, generator, single_thread, spectral_radius
from .iteration import RateFit, fit_rate


LEAKY_SLOPE = 0.1
LINKS: tuple[str, ...] = ("linear", "tanh", "leaky_relu")


def link_fns(link: str) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """phi and phi' of a single-index link ("linear": the linear DEQ).

    Raises:
        ConfigError: an unknown link.
    """
    if link == "linear":
        return (lambda s: s), (lambda s: torch.ones_like(s))
    if link == "tanh":
        return torch.tanh, (lambda s: 1 - torch.tanh(s) ** 2)
    if link == "leaky_relu":
        return ((lambda s: F.leaky_relu(s, LEAKY_SLOPE)),
                (lambda s: torch.where(s > 0, torch.ones_like(s),
                                       torch.full_like(s, LEAKY_SLOPE))))
    raise ConfigError(f"unknown link {link!r}; known: {', '.join(LINKS)}")


@dataclass(frozen=True)
class Problem:
    """Data of a (single-index) regression task y = phi(beta^T x).

    Attributes:
        X: (n, d) inputs, i.i.d. N(0, 1).
        y: (n,) targets.
        beta: (d,) the true direction (unit norm).
        link: "linear", "tanh" or "leaky_relu".
    """

    X: Tensor
    y: Tensor
    beta: Tensor
    link: str


def make_problem(n: int, d: int, link: str = "linear", *, seed: int = 0) -> Problem:
    """n samples x ~ N(0, I_d), y = phi(beta^T x) with a random unit beta.

    Raises:
        ConfigError: n < 1, d < 1 or an unknown link.
    """
    for name, val in (("n", n), ("d", d)):
        if int(val) != val or val < 1:
            raise ConfigError(f"{name} must be a positive integer, got {val!r}")
    phi, _ = link_fns(link)
    g = generator(seed)
    X = torch.randn(int(n), int(d), generator=g, dtype=DTYPE)
    beta = torch.randn(int(d), generator=g, dtype=DTYPE)
    beta = beta / beta.norm()
    return Problem(X, phi(X @ beta), beta, link)


@dataclass(frozen=True)
class DEQParams:
    """Parameters of a linear DEQ z = W z + U x with readout v (optionally batched: a
    leading dimension indexes independent copies, e.g. one per step size).

    Attributes:
        W: (..., k, k).
        U: (..., k, d).
        v: (..., k).
    """

    W: Tensor
    U: Tensor
    v: Tensor

    def repeat(self, copies: int) -> "DEQParams":
        return DEQParams(self.W.expand(copies, *self.W.shape).clone(),
                         self.U.expand(copies, *self.U.shape).clone(),
                         self.v.expand(copies, *self.v.shape).clone())


def init_params(k: int, d: int, *, seed: int = 0, w_scale: float = 0.1, u_scale: float = 0.3,
                v_scale: float = 1.0) -> DEQParams:
    """W ~ w_scale N(0, 1), U ~ u_scale N(0, 1), v ~ v_scale N(0, 1) (related.md, section 4).

    Raises:
        ConfigError: k < 1, or I - W numerically singular (sigma_min < 1e-8).
    """
    if int(k) != k or k < 1:
        raise ConfigError(f"k (the DEQ's width) must be a positive integer, got {k!r}")
    g = generator(seed + 1)
    W = w_scale * torch.randn(int(k), int(k), generator=g, dtype=DTYPE)
    U = u_scale * torch.randn(int(k), int(d), generator=g, dtype=DTYPE)
    v = v_scale * torch.randn(int(k), generator=g, dtype=DTYPE)
    smin = float(torch.linalg.svdvals(torch.eye(int(k), dtype=DTYPE) - W).min())
    if not smin > 1e-8:
        raise ConfigError(f"invertibility condition fails: sigma_min(I - W0) = {smin:.3g}, "
                          "so z* = (I - W)^-1 U x is undefined; lower w_scale")
    return DEQParams(W, U, v)


def equilibrium(p: DEQParams, X: Tensor) -> Tensor:
    """z* = (I - W)^{-1} U x for every row of X, in closed form.

    Args:
        p: the parameters (optionally batched).
        X: (n, d) inputs.

    Returns:
        (..., k, n): column i is z* of sample i.
    """
    k = p.W.shape[-1]
    A = torch.eye(k, dtype=p.W.dtype) - p.W
    return torch.linalg.solve(A, p.U @ X.T)


def loss(p: DEQParams, prob: Problem) -> Tensor:
    """The squared loss (1 / 2n) sum_i (phi(v^T z*_i) - y_i)^2.

    Args:
        p: the parameters (optionally batched).
        prob: the data and link.

    Returns:
        The loss, one per leading index of ``p``.
    """
    phi, _ = link_fns(prob.link)
    s = (p.v.unsqueeze(-2) @ equilibrium(p, prob.X)).squeeze(-2)
    return 0.5 * ((phi(s) - prob.y) ** 2).mean(dim=-1)


@dataclass(frozen=True)
class Grads:
    """Closed-form gradients and the loss at the same point (batched like the params)."""

    W: Tensor
    U: Tensor
    v: Tensor
    loss: Tensor


def closed_form_grads(p: DEQParams, prob: Problem) -> Grads:
    """Gradients of :func:`loss` in closed form.

    With M = (I - W)^{-1}, Z* = M U X^T, s = v^T Z*, r = phi(s) - y and
    delta = r * phi'(s) / n: grad_v = Z* delta, and with a = M^T v delta^T,
    grad_U = a X and grad_W = a Z*^T.

    Args:
        p: the parameters (optionally batched).
        prob: the data and link.

    Returns:
        The :class:`Grads`.
    """
    phi, dphi = link_fns(prob.link)
    k = p.W.shape[-1]
    n = prob.X.shape[0]
    A = torch.eye(k, dtype=p.W.dtype) - p.W
    Z = torch.linalg.solve(A, p.U @ prob.X.T)  # (..., k, n)
    s = (p.v.unsqueeze(-2) @ Z).squeeze(-2)  # (..., n)
    r = phi(s) - prob.y
    delta = r * dphi(s) / n
    gv = (Z @ delta.unsqueeze(-1)).squeeze(-1)
    Mtv = torch.linalg.solve(A.transpose(-1, -2), p.v.unsqueeze(-1))  # (..., k, 1)
    a = Mtv @ delta.unsqueeze(-2)  # (..., k, n)
    return Grads(a @ Z.transpose(-1, -2), a @ prob.X, gv, 0.5 * (r ** 2).mean(dim=-1))


def conserved(p: DEQParams) -> tuple[Tensor, Tensor]:
    """The quantities that gradient flow conserves.

    Args:
        p: the parameters (optionally batched).

    Returns:
        Q1 = ||U||_F^2 + ||I - W||_F^2 and Q2 = ||v||^2 - ||U||_F^2.
    """
    k = p.W.shape[-1]
    A = torch.eye(k, dtype=p.W.dtype) - p.W
    u2 = (p.U ** 2).sum(dim=(-2, -1))
    return u2 + (A ** 2).sum(dim=(-2, -1)), (p.v ** 2).sum(dim=-1) - u2


def gd_step(p: DEQParams, g: Grads, eta: float | Tensor) -> DEQParams:
    """One gradient-descent step.

    Args:
        p: the parameters.
        g: the gradients at p.
        eta: the step size, a scalar or one per leading index of p.

    Returns:
        theta - eta grad.
    """
    e = torch.as_tensor(eta, dtype=DTYPE)
    return DEQParams(p.W - e[..., None, None] * g.W, p.U - e[..., None, None] * g.U,
                     p.v - e[..., None] * g.v)


def predicted_increments(g: Grads, eta: float | Tensor) -> tuple[Tensor, Tensor]:
    """The exact per-step changes of (Q1, Q2) that the derivation predicts for one GD step.

    Args:
        g: the gradients at the current parameters.
        eta: the step size (scalar or per leading index).

    Returns:
        eta^2 (||grad_W||^2 + ||grad_U||^2) and eta^2 (||grad_v||^2 - ||grad_U||^2).
    """
    e = torch.as_tensor(eta, dtype=DTYPE)
    gu = (g.U ** 2).sum(dim=(-2, -1))
    return (e ** 2 * ((g.W ** 2).sum(dim=(-2, -1)) + gu),
            e ** 2 * ((g.v ** 2).sum(dim=-1) - gu))


def flat(p: DEQParams) -> Tensor:
    return torch.cat([p.W.flatten(), p.U.flatten(), p.v.flatten()])


def unflat(theta: Tensor, k: int, d: int) -> DEQParams:
    return DEQParams(theta[:k * k].view(k, k), theta[k * k:k * k + k * d].view(k, d),
                     theta[k * k + k * d:])


def sharpness(p: DEQParams, prob: Problem) -> float:
    """The largest eigenvalue of the Hessian of the loss (the full Hessian is small).

    Args:
        p: the parameters (unbatched).
        prob: the data and link.

    Returns:
        lambda_max of the Hessian at p.
    """
    k, d = p.U.shape
    with single_thread():
        H = torch.autograd.functional.hessian(lambda t: loss(unflat(t, k, d), prob), flat(p))
        return float(torch.linalg.eigvalsh(H).max())


@dataclass(frozen=True)
class StepCheck:
    """The step-size condition for one eta: GD is locally stable when
    eta * lambda_max(Hessian at the start) < 2 (the classical condition; the paper's own
    "small enough step size" is not available).

    Attributes:
        eta: the step size.
        sharpness: lambda_max of the Hessian at the initialization.
        message: empty when the condition holds, else which condition fails.
    """

    eta: float
    sharpness: float
    message: str

    @property
    def ok(self) -> bool:
        return not self.message

    @property
    def limit(self) -> float:
        return 2.0 / self.sharpness


def check_step_sizes(p0: DEQParams, prob: Problem, step_sizes: Sequence[float]
                     ) -> list[StepCheck]:
    """Check each step size against the stable range eta < 2 / lambda_max(Hessian at p0).

    Returns:
        One :class:`StepCheck` per step size; a step size outside the range is reported in
        its ``message``, not refused (the run is labelled instead).

    Raises:
        ConfigError: a step size that is not a positive number.
    """
    lam = sharpness(p0, prob)
    out = []
    for eta in step_sizes:
        if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
            raise ConfigError(f"step sizes must be positive numbers, got {eta!r}")
        msg = ""
        if not eta * lam < 2:
            msg = (f"step-size condition fails: eta = {eta:g} is beyond the stable range "
                   f"eta < 2 / lambda_max = {2 / lam:.4g} (lambda_max of the Hessian at "
                   f"the initialization = {lam:.4g}; eta * lambda_max = {eta * lam:.3g} >= 2)")
        out.append(StepCheck(float(eta), lam, msg))
    return out


@dataclass
class GDRun:
    """One gradient-descent run (per step; index 0 = the initialization).

    Attributes:
        eta: the step size.
        check: its step-size check.
        loss: (T + 1,) loss.
        q1, q2: (T + 1,) the conserved quantities.
        q1_pred, q2_pred: (T + 1,) Q(0) + the sum of the predicted per-step increments.
        sigma_min, sigma_max: (T + 1,) extreme singular values of I - W.
        diverged_at: the step at which the run was stopped as diverged (None: it was not);
            the series are NaN after it.
        final: the parameters at the end (or at divergence).
    """

    eta: float
    check: StepCheck
    loss: Tensor
    q1: Tensor
    q2: Tensor
    q1_pred: Tensor
    q2_pred: Tensor
    sigma_min: Tensor
    sigma_max: Tensor
    diverged_at: int | None
    final: DEQParams

    @property
    def inside(self) -> bool:
        return self.check.ok

    def fit(self, floor: float = 1e-22) -> RateFit | None:
        """Linear (geometric) rate of the loss per step, fitted above ``floor``."""
        return fit_rate(self.loss, floor=floor, start_below=1e-1)

    def steps_to(self, level: float) -> int | None:
        """First step with loss <= level (None: never)."""
        hit = (self.loss <= level).nonzero()
        return int(hit[0]) if hit.numel() else None

    def drift(self) -> tuple[float, float]:
        """Q1(T) - Q1(0) and Q2(T) - Q2(0) (at divergence: up to it)."""
        i = self._last()
        return float(self.q1[i] - self.q1[0]), float(self.q2[i] - self.q2[0])

    def prediction_error(self) -> float:
        """max_t |Q(t) - Q_pred(t)| / max(1, |Q(t)|) over both quantities (rounding only, if
        the derivation holds)."""
        i = self._last() + 1
        errs = [((q[:i] - qp[:i]).abs() / q[:i].abs().clamp(min=1)).max()
                for q, qp in ((self.q1, self.q1_pred), (self.q2, self.q2_pred))]
        return float(max(errs))

    def _last(self) -> int:
        return (self.diverged_at if self.diverged_at is not None else self.loss.numel()) - 1


def gradient_descent(prob: Problem, p0: DEQParams, step_sizes: Sequence[float], steps: int,
                     *, blowup: float = 1e6) -> list[GDRun]:
    """Full-batch gradient descent from p0, one run per step size, run side by side.

    A run is stopped as diverged when its loss turns non-finite or exceeds ``blowup`` times
    the initial loss, or when I - W becomes singular (sigma_min < 1e-12).

    Args:
        prob: the data.
        p0: the initialization (unbatched).
        step_sizes: the step sizes (checked by :func:`check_step_sizes`).
        steps: number of GD steps.
        blowup: divergence threshold relative to the initial loss.

    Returns:
        One :class:`GDRun` per step size.

    Raises:
        ConfigError: steps < 1 or a step size that is not a positive number.
    """
    if int(steps) != steps or steps < 1:
        raise ConfigError(f"the number of GD steps must be a positive integer, got {steps!r}")
    with single_thread():
        return _gradient_descent(prob, p0, step_sizes, int(steps), blowup)


def _gradient_descent(prob: Problem, p0: DEQParams, step_sizes: Sequence[float], steps: int,
                      blowup: float) -> list[GDRun]:
    checks = check_step_sizes(p0, prob, step_sizes)
    S, T = len(step_sizes), int(steps)
    eta = torch.tensor([float(e) for e in step_sizes], dtype=DTYPE)
    p = p0.repeat(S)
    k = p0.W.shape[-1]
    eye = torch.eye(k, dtype=DTYPE)
    L = torch.full((T + 1, S), math.nan, dtype=DTYPE)
    q1, q2, q1p, q2p, smin, smax = (torch.full_like(L, math.nan) for _ in range(6))
    alive = torch.ones(S, dtype=torch.bool)
    died = [None] * S
    acc1 = torch.zeros(S, dtype=DTYPE)
    acc2 = torch.zeros(S, dtype=DTYPE)
    Q10, Q20 = conserved(p)
    final = [None] * S
    for t in range(T + 1):
        g = closed_form_grads(p, prob)
        sv = torch.linalg.svdvals(eye - p.W)
        Q1, Q2 = conserved(p)
        if t == 0:
            bad = alive & ~torch.isfinite(g.loss)
        else:
            bad = alive & (~torch.isfinite(g.loss) | (g.loss > blowup * L[0])
                           | (sv[:, -1] < 1e-12))
        for s in bad.nonzero().flatten().tolist():
            died[s] = t
            final[s] = DEQParams(p.W[s].clone(), p.U[s].clone(), p.v[s].clone())
        alive &= ~bad
        m = alive
        L[t, m], q1[t, m], q2[t, m] = g.loss[m], Q1[m], Q2[m]
        q1p[t, m], q2p[t, m] = (Q10 + acc1)[m], (Q20 + acc2)[m]
        smin[t, m], smax[t, m] = sv[m, -1], sv[m, 0]
        if t == T or not bool(alive.any()):
            break
        d1, d2 = predicted_increments(g, eta)
        acc1, acc2 = acc1 + d1, acc2 + d2
        e = torch.where(alive, eta, torch.zeros_like(eta))  # a stopped run stays put
        p = gd_step(p, g, e)
    runs = []
    for s in range(S):
        fin = final[s] or DEQParams(p.W[s].clone(), p.U[s].clone(), p.v[s].clone())
        runs.append(GDRun(float(eta[s]), checks[s], L[:, s], q1[:, s], q2[:, s], q1p[:, s],
                          q2p[:, s], smin[:, s], smax[:, s], died[s], fin))
    return runs


def solver_equilibrium(p: DEQParams, X: Tensor, *, tol: float = 1e-13, max_iter: int = 2000
                       ) -> Tensor:
    """z* by pcdeq's solver: fixed-point iteration z <- W z + U x with the implicit backward
    pass of :func:`pcdeq.solver.implicit_fixed_point`.

    Args:
        p: the parameters (unbatched); W and U may require grad.
        X: (n, d) inputs.
        tol, max_iter: the solver's stopping rule (forward and adjoint).

    Returns:
        (n, k): row i is z* of sample i, differentiable w.r.t. W and U.

    Raises:
        ConfigError: rho(W) >= 1, where the iteration does not converge.
    """
    rho = spectral_radius(p.W.detach())
    if not rho < 1:
        raise ConfigError(f"fixed-point iteration needs rho(W) < 1, got {rho:.3g}; use the "
                          "closed form (equilibrium) instead")
    W, U = p.W, p.U
    ux = X @ U.T

    def f(z: Tensor) -> Tensor:
        return z @ W.T + ux

    z, _ = implicit_fixed_point(f, torch.zeros_like(ux), tol=tol, max_iter=max_iter)
    return z


def solver_grads(p: DEQParams, prob: Problem, *, tol: float = 1e-13) -> Grads:
    """Gradients by autograd through pcdeq's solver (implicit differentiation), for checking
    :func:`closed_form_grads`.

    Args:
        p: the parameters (unbatched).
        prob: the data and link.
        tol: the solver's tolerance.

    Returns:
        The :class:`Grads` (and the loss) computed through the solver.
    """
    phi, _ = link_fns(prob.link)
    W = p.W.detach().clone().requires_grad_()
    U = p.U.detach().clone().requires_grad_()
    v = p.v.detach().clone().requires_grad_()
    with single_thread():
        z = solver_equilibrium(DEQParams(W, U, v), prob.X, tol=tol)
        L = 0.5 * ((phi(z @ v) - prob.y) ** 2).mean()
        gW, gU, gv = torch.autograd.grad(L, (W, U, v))
    return Grads(gW, gU, gv, L.detach())


@dataclass(frozen=True)
class DynamicsSettings:
    """The parameters of Figure 14 (their defaults, written once). The same X, beta and
    initialization for every link (from ``seed``).

    Attributes:
        links: the models ("linear", "tanh", "leaky_relu").
        n, d, k: samples, input dimension, DEQ width.
        step_sizes: one run per step size.
        steps: GD steps per run.
        seed: seeds the data and the initialization.
        w_scale, u_scale, v_scale: scales of the initialization (:func:`init_params`).

    Raises:
        ConfigError: an unknown link, no step size or a step size that is not a positive
            number, when the settings are made.
    """

    links: tuple[str, ...] = LINKS
    n: int = 200
    d: int = 5
    k: int = 3
    step_sizes: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08)
    steps: int = 1500
    seed: int = 0
    w_scale: float = 0.1
    u_scale: float = 0.3
    v_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", tuple(self.links))
        object.__setattr__(self, "step_sizes", tuple(self.step_sizes))
        for link in self.links:
            link_fns(link)
        if not self.step_sizes:
            raise ConfigError("step_sizes is empty")
        for eta in self.step_sizes:
            if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
                raise ConfigError(f"step sizes must be positive numbers, got {eta!r}")


@dataclass
class DynamicsStudy:
    """Figure 14's runs: link -> (problem, init, runs per step size)."""

    settings: DynamicsSettings
    problems: dict[str, Problem] = field(default_factory=dict)
    inits: dict[str, DEQParams] = field(default_factory=dict)
    runs: dict[str, list[GDRun]] = field(default_factory=dict)


def dynamics_study(settings: DynamicsSettings | None = None, /, **overrides) -> DynamicsStudy:
    """Gradient descent on the linear DEQ and the single-index DEQs, every step size.

    Args:
        settings: the :class:`DynamicsSettings` (default: its defaults).
        **overrides: fields of :class:`DynamicsSettings` to change, e.g. ``steps=300``.

    Returns:
        The :class:`DynamicsStudy`.

    Raises:
        ConfigError: a malformed parameter (before anything runs).
    """
    st = replace(settings or DynamicsSettings(), **overrides)
    study = DynamicsStudy(st)
    p0 = init_params(st.k, st.d, seed=st.seed, w_scale=st.w_scale, u_scale=st.u_scale,
                     v_scale=st.v_scale)
    with single_thread():
        for link in st.links:
            prob = make_problem(st.n, st.d, link, seed=st.seed)
            study.problems[link] = prob
            study.inits[link] = p0
            study.runs[link] = gradient_descent(prob, p0, list(st.step_sizes), st.steps)
    return study
