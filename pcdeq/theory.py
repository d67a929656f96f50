"""The theory at work on problems small enough to draw (notebooks ``pcdeq_theory`` and
``linear_deq_dynamics``; Figure 13, Table 9, Figure 14).

Two self-contained studies, both on synthetic problems (random matrices and inputs drawn from
seeded ``torch.Generator`` objects, float64 throughout); nothing here reads a trained model.

**Part 1: why pcDEQ converges** (Prop. 4.6 of the paper). The map g(z) = sigma(W z + x) with
W >= 0 entrywise and an admissible activation / input pairing (Lemma 4.2: pcDEQ-1 = ReLU6,
tanh or softsign with x > 0; pcDEQ-2 = sigmoid with x >= 0) has exactly one fixed point, and
plain fixed-point iteration reaches it geometrically from every z >= 0, whatever ||W||_2 is.
:func:`study_case` runs the iteration from many nonnegative starts at once, counts the distinct
limits, detects cycles and divergence, fits the geometric rate and compares it with the
spectral radius of the Jacobian at the fixed point. :data:`BREAKS` builds the same map with
one hypothesis removed (a sign of W flipped, x = 0, a convex activation), to show what the
hypotheses are for; :func:`theorem_conditions` says which hypothesis a case breaks.

**Part 2: gradient descent on linear and single-index DEQs** (the setting of Dandapanthula &
Ramdas, arXiv 2511.16976). z* = (I - W)^{-1} U x, prediction phi(v^T z*), squared loss. The
prediction is invariant under (I - W, U) -> (c (I - W), c U) and (v, U) -> (c v, U / c), so
gradient flow conserves Q1 = ||U||_F^2 + ||I - W||_F^2 and Q2 = ||v||^2 - ||U||_F^2, and each
gradient-descent step with step size eta changes them by exactly
eta^2 (||grad_W||^2 + ||grad_U||^2) and eta^2 (||grad_v||^2 - ||grad_U||^2). This derivation is
ours (``shared/spec/related.md`` section 4); the paper's own statement is not available.
:func:`gradient_descent` runs several step sizes side by side and records the loss, both
quantities, their predicted drift and sigma_min(I - W).

Heavy imports (matplotlib) happen inside the plotting functions.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .hparams import ConfigError, check_variant
from .layers import ACTIVATION_FNS
from .solver import fixed_point_iter, implicit_fixed_point

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import Table

DTYPE = torch.float64

# =============================================================================== Part 1
# Activations outside pcDEQ, only to show what the theorem's conditions exclude.
EXTRA_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "softplus": F.softplus,
    "relu": F.relu,
}
# Why they are outside (shown in the refusal message).
EXTRA_NOTES: dict[str, str] = {
    "softplus": "convex and unbounded, not concave",
    "relu": "unbounded, so the asymptotic mapping z -> Wz is not 0",
}
# sup of sigma (None: unbounded); starts are drawn in [0, start_scale * bound)^n.
UPPER_BOUND: dict[str, float | None] = {"relu6": 6.0, "tanh": 1.0, "softsign": 1.0,
                                        "sigmoid": 1.0, "softplus": None, "relu": None}
# Lipschitz constant of sigma: Banach's rate for g is LIPSCHITZ[sigma] * ||W||_2.
LIPSCHITZ: dict[str, float] = {"relu6": 1.0, "tanh": 1.0, "softsign": 1.0, "sigmoid": 0.25,
                               "softplus": 1.0, "relu": 1.0}
PRETTY: dict[str, str] = {"relu6": "ReLU6", "tanh": "tanh", "softsign": "softsign",
                          "sigmoid": "sigmoid", "softplus": "softplus", "relu": "ReLU"}


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The elementwise activation called ``name`` (pcDEQ's four, or softplus / relu).

    Args:
        name: case-insensitive activation name.

    Returns:
        The function.

    Raises:
        ConfigError: an activation this module does not know.
    """
    key = name.lower()
    if key in ACTIVATION_FNS:
        return ACTIVATION_FNS[key]
    if key in EXTRA_ACTIVATIONS:
        return EXTRA_ACTIVATIONS[key]
    raise ConfigError(f"unknown activation {name!r}; known: "
                      f"{', '.join([*ACTIVATION_FNS, *EXTRA_ACTIVATIONS])}")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the setting.

    The problems here are tiny (at most 100 x 50 per operation): on a busy machine, torch's
    thread pool makes them tens of times slower, and one thread also keeps the results
    independent of the core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def spectral_norm(W: Tensor) -> float:
    """||W||_2, the largest singular value."""
    return float(torch.linalg.matrix_norm(W, 2))


def spectral_radius(W: Tensor) -> float:
    """rho(W), the largest modulus of an eigenvalue."""
    return float(torch.linalg.eigvals(W).abs().max())


def random_matrix(n: int, norm: float, *, seed: int, low: float = 0.0) -> Tensor:
    """An n x n matrix with i.i.d. entries U[low, 1), scaled to ||W||_2 = ``norm``.

    With ``low >= 0`` the matrix is nonnegative (pcDEQ's W); a negative ``low`` gives some
    negative entries (a case outside the theorem, which :func:`theorem_conditions` reports).

    Args:
        n: size.
        norm: the spectral norm to scale to.
        seed: seed of the generator.
        low: lower end of the entries' range before scaling.

    Returns:
        W (float64).

    Raises:
        ConfigError: n < 1, norm <= 0 or low >= 1.
    """
    if int(n) != n or n < 1:
        raise ConfigError(f"dimension must be a positive integer, got {n!r}")
    if not norm > 0:
        raise ConfigError(f"the spectral norm of W must be > 0, got {norm!r}")
    if not low < 1:
        raise ConfigError(f"w_low must be < 1 (entries are drawn from U[w_low, 1)), got {low!r}")
    W = low + (1 - low) * torch.rand(int(n), int(n), generator=_generator(seed), dtype=DTYPE)
    return W * (norm / spectral_norm(W))


def random_input(n: int, low: float, high: float, *, seed: int) -> Tensor:
    """A layer input x with i.i.d. entries U[low, high).

    Raises:
        ConfigError: high <= low.
    """
    if not high > low:
        raise ConfigError(f"the input range needs x_high > x_low, got [{low!r}, {high!r})")
    return low + (high - low) * torch.rand(int(n), generator=_generator(seed + 7919), dtype=DTYPE)


@dataclass(frozen=True)
class MapCase:
    """One map g(z) = sigma(W z + x) and the pcDEQ variant whose theorem is claimed for it.

    Attributes:
        name: short label (table rows, panel titles).
        W: (n, n) weight.
        x: (n,) layer input.
        activation: the activation's name.
        variant: 1 or 2, the pcDEQ variant whose hypotheses are checked.
        change: for a deliberately broken case, what was changed (empty otherwise).
    """

    name: str
    W: Tensor
    x: Tensor
    activation: str
    variant: int
    change: str = ""

    @property
    def dim(self) -> int:
        return int(self.W.shape[0])

    def __call__(self, z: Tensor) -> Tensor:
        """g(z) for z of shape (..., n)."""
        return activation_fn(self.activation)(z @ self.W.T + self.x)

    def jacobian(self, z: Tensor) -> Tensor:
        """The Jacobian diag(sigma'(W z + x)) W of g at one point z (shape (n,))."""
        s = (self.W @ z + self.x).detach().requires_grad_()
        (ds,) = torch.autograd.grad(activation_fn(self.activation)(s).sum(), s)
        return ds[:, None] * self.W

    @property
    def lipschitz(self) -> float:
        """Banach's constant Lip(sigma) * ||W||_2 (g is a contraction if it is < 1)."""
        return LIPSCHITZ.get(self.activation.lower(), math.inf) * spectral_norm(self.W)


@dataclass(frozen=True)
class Condition:
    """A hypothesis of the theorem that a case violates.

    Attributes:
        short: the hypothesis, as shown in panel titles ("W ≥ 0", "x > 0", ...).
        message: which condition fails, by how much, and why it matters.
    """

    short: str
    message: str


def theorem_conditions(case: MapCase) -> list[Condition]:
    """The hypotheses of Prop. 4.6 (with Lemma 4.2) that ``case`` violates.

    Checked: the activation is one of pcDEQ's and is paired with the right variant
    (:func:`pcdeq.hparams.check_variant`); W >= 0 entrywise; x > 0 (pcDEQ-1) or x >= 0
    (pcDEQ-2).

    Args:
        case: the map.

    Returns:
        The violated conditions; empty when the theorem applies.
    """
    fails = []
    act = case.activation.lower()
    if act not in ACTIVATION_FNS or act in EXTRA_ACTIVATIONS:
        note = EXTRA_NOTES.get(act, "not one of pcDEQ's activations")
        fails.append(Condition(
            "σ concave",
            f"activation condition fails (Lemma 4.2): sigma = {case.activation} is {note}; "
            "pcDEQ needs a nonnegative concave activation with sigma(0) = 0 (pcDEQ-1: ReLU6, "
            "tanh, softsign) or a positive concave one (pcDEQ-2: sigmoid)"))
    else:
        try:
            check_variant(case.variant, case.activation)
        except ConfigError as e:
            fails.append(Condition("variant/activation pairing",
                                   f"activation condition fails (Lemma 4.2): {e}"))
    W, x = case.W, case.x
    if not (torch.isfinite(W).all() and torch.isfinite(x).all()):
        fails.append(Condition("finite W, x", "W or x has non-finite entries"))
    neg = int((W < 0).sum())
    if neg:
        fails.append(Condition(
            "W ≥ 0",
            f"nonnegativity condition fails: W >= 0 entrywise is required, but {neg} of "
            f"{W.numel()} entries are negative (min {float(W.min()):.3g})"))
    xmin = float(x.min())
    if case.variant == 1 and not xmin > 0:
        fails.append(Condition(
            "x > 0",
            f"input condition fails: pcDEQ-1 needs a strictly positive input x > 0, but "
            f"min x = {xmin:.3g} (with sigma(0) = 0, z = 0 can then be a second fixed point)"))
    elif case.variant == 2 and not xmin >= 0:
        fails.append(Condition(
            "x ≥ 0",
            f"input condition fails: pcDEQ-2 needs a nonnegative input x >= 0, but "
            f"min x = {xmin:.3g}"))
    return fails


def theorem_label(case: MapCase) -> str:
    """"pcDEQ-<v> theorem applies" or "OUTSIDE THE THEOREM: <condition> fails"."""
    fails = theorem_conditions(case)
    if not fails:
        return f"pcDEQ-{case.variant} theorem applies"
    return "OUTSIDE THE THEOREM: " + ", ".join(c.short for c in fails) + " fails"


def require_theorem(case: MapCase) -> None:
    """Refuse a case outside the theorem.

    Raises:
        ConfigError: naming every violated condition.
    """
    fails = theorem_conditions(case)
    if fails:
        raise ConfigError(f"{case.name}: outside the pcDEQ theorem: "
                          + "; ".join(c.message for c in fails))


# ----------------------------------------------------------------- the broken cases
@dataclass(frozen=True)
class Break:
    """One hypothesis removed from a pcDEQ-1 tanh map (same W and x otherwise).

    Attributes:
        change: what is changed (labels).
        activation: the activation of the broken map.
        apply: (W, x) -> (W', x').
        expect: what typically goes wrong (documentation only; outcomes are measured).
    """

    change: str
    activation: str
    apply: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    expect: str


def _flip_offdiagonal(W: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    eye = torch.eye(W.shape[0], dtype=W.dtype)
    return W * (2 * eye - 1), x


BREAKS: dict[str, Break] = {
    "flip_offdiagonal": Break("off-diagonal signs of W flipped", "tanh", _flip_offdiagonal,
                              "mutual inhibition: several fixed points, or a cycle"),
    "negate_W": Break("W → −W", "tanh", lambda W, x: (-W, x),
                      "an antitone map: oscillation (2-cycle)"),
    "zero_input": Break("x = 0", "tanh", lambda W, x: (W, torch.zeros_like(x)),
                        "z = 0 becomes a second fixed point (the solver's start!)"),
    "softplus": Break("softplus (convex) instead of tanh", "softplus", lambda W, x: (W, x),
                      "divergence: softplus(t) >= t and rho(W) > 1"),
}


def pcdeq_case(W: Tensor, x: Tensor, variant: int, activation: str) -> MapCase:
    """The pcDEQ map of (variant, activation) on W and x (the hypotheses are not checked
    here; :func:`theorem_conditions` does that).

    Args:
        W, x: weight and input.
        variant: the pcDEQ variant claimed (1 or 2).
        activation: the activation's name.

    Returns:
        The :class:`MapCase`.

    Raises:
        ConfigError: a non-integer variant or an unknown activation.
    """
    if int(variant) != variant:
        raise ConfigError(f"pcDEQ variant must be 1 or 2, got {variant!r}")
    activation_fn(activation)  # unknown names are refused here
    return MapCase(f"{PRETTY.get(activation.lower(), activation)} (pcDEQ-{int(variant)})",
                   W, x, activation.lower(), int(variant))


def broken_case(W: Tensor, x: Tensor, key: str) -> MapCase:
    """The pcDEQ-1 tanh map on (W, x) with one hypothesis removed (see :data:`BREAKS`).

    Args:
        W, x: the pcDEQ map's weight and input.
        key: a key of :data:`BREAKS`.

    Returns:
        The broken :class:`MapCase` (variant 1, so its conditions are checked as pcDEQ-1's).

    Raises:
        ConfigError: an unknown key.
    """
    if key not in BREAKS:
        raise ConfigError(f"unknown broken case {key!r}; known: {', '.join(BREAKS)}")
    b = BREAKS[key]
    Wb, xb = b.apply(W, x)
    name = f"{PRETTY[b.activation]}, {b.change}" if b.activation == "tanh" else b.change
    return MapCase(name, Wb, xb, b.activation, 1, b.change)


def contraction_case(W: Tensor, x: Tensor, norm: float, activation: str = "tanh") -> MapCase:
    """The pcDEQ-1 map with W rescaled to ||W||_2 = ``norm`` (a contraction if Lip(sigma) *
    norm < 1), for the comparison with Banach's bound.

    Args:
        W, x: the pcDEQ map's weight and input.
        norm: the spectral norm to rescale W to.
        activation: a pcDEQ-1 activation.

    Returns:
        The :class:`MapCase`.
    """
    Wc = W * (norm / spectral_norm(W))
    return MapCase(f"{PRETTY[activation]}, σ_max(W) = {norm:g}", Wc, x, activation, 1,
                   f"σ_max(W) = {norm:g}")


# ------------------------------------------------------------ iteration from many starts
@dataclass
class MultiStart:
    """Fixed-point iteration from many starts at once.

    Attributes:
        starts: (S, n) starting points.
        paths: (K + 1, S, n) every iterate (NaN after a start diverged).
        steps: (K, S) ||z_{k+1} - z_k|| per start (NaN after divergence).
        status: per start, "converged", "diverged", "cycle-<p>" or "no convergence".
        limits: (L, n) the distinct limits of the converged starts.
        limit_of: (S,) index into ``limits`` (-1 for a start that did not converge).
    """

    starts: Tensor
    paths: Tensor
    steps: Tensor
    status: list[str]
    limits: Tensor
    limit_of: Tensor

    @property
    def final(self) -> Tensor:
        return self.paths[-1]

    @property
    def n_limits(self) -> int:
        return int(self.limits.shape[0])

    def counts(self) -> dict[str, int]:
        """How many starts ended how ("converged", "diverged", "cycle-2", ...)."""
        out: dict[str, int] = {}
        for s in self.status:
            out[s] = out.get(s, 0) + 1
        return out

    def outcome(self) -> str:
        """In words, e.g. "1 fixed point (100/100 starts)", "2-cycle (100/100 starts)"."""
        S = len(self.status)
        parts = []
        conv = sum(s == "converged" for s in self.status)
        if conv:
            sizes = sorted((int((self.limit_of == i).sum()) for i in range(self.n_limits)),
                           reverse=True)
            word = "fixed point" if self.n_limits == 1 else "fixed points"
            split = "" if self.n_limits == 1 else " = " + " + ".join(map(str, sizes))
            parts.append(f"{self.n_limits} {word} ({conv}/{S} starts{split})")
        for key, n in sorted(self.counts().items()):
            if key == "converged":
                continue
            what = (f"{key.split('-')[1]}-cycle" if key.startswith("cycle-") else key)
            parts.append(f"{what} ({n}/{S} starts)")
        return "; ".join(parts)


def _cluster(points: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """Greedy clustering: (centres (L, n), label per point)."""
    centres: list[Tensor] = []
    labels = torch.full((points.shape[0],), -1, dtype=torch.long)
    for i, p in enumerate(points):
        for j, c in enumerate(centres):
            if float(torch.linalg.vector_norm(p - c)) <= tol * max(1.0, float(c.norm())):
                labels[i] = j
                break
        else:
            labels[i] = len(centres)
            centres.append(p)
    n = points.shape[1] if points.dim() == 2 else 0
    return (torch.stack(centres) if centres else torch.empty(0, n, dtype=points.dtype)), labels


def iterate_many(f: Callable[[Tensor], Tensor], starts: Tensor, *, max_iter: int = 300,
                 tol: float = 1e-12, blowup: float = 1e8, max_period: int = 8,
                 same_limit: float = 1e-6) -> MultiStart:
    """Run z_{k+1} = f(z_k) from every row of ``starts`` and classify where each one goes.

    A start has converged when ||z_{k+1} - z_k|| <= tol * max(1, ||z_{k+1}||); it has
    diverged when ||z|| exceeds ``blowup`` or turns non-finite (it is then frozen as NaN);
    otherwise, after ``max_iter`` steps, it is in a p-cycle if ||z_K - z_{K-p}|| is tiny
    for some p <= max_period. Iteration stops early when every start has converged or
    diverged.

    Args:
        f: the map, applied to a (S, n) batch.
        starts: (S, n) starting points.
        max_iter: most steps.
        tol: relative step size at which a start counts as converged.
        blowup: norm above which a start counts as diverged.
        max_period: longest cycle looked for.
        same_limit: relative distance under which two limits are the same point.

    Returns:
        The :class:`MultiStart` record.
    """
    z = starts.to(DTYPE).clone()
    S = z.shape[0]
    paths, steps = [z.clone()], []
    alive = torch.ones(S, dtype=torch.bool)
    done = torch.zeros(S, dtype=torch.bool)
    nan = torch.full_like(z, math.nan)
    with torch.no_grad():
        for _ in range(max_iter):
            zn = f(z)
            bad = ~torch.isfinite(zn).all(dim=1) | (torch.linalg.vector_norm(zn, dim=1) > blowup)
            alive &= ~bad
            zn = torch.where(alive[:, None], zn, nan)
            step = torch.linalg.vector_norm(zn - z, dim=1)
            done |= alive & (step <= tol * torch.clamp(torch.linalg.vector_norm(zn, dim=1), min=1))
            z = zn
            paths.append(z.clone())
            steps.append(step)
            if bool((done | ~alive).all()):
                break
    P = torch.stack(paths)
    status = []
    for s in range(S):
        if not alive[s]:
            status.append("diverged")
        elif done[s]:
            status.append("converged")
        else:
            zK = P[-1, s]
            scale = max(1.0, float(zK.norm()))
            period = next((p for p in range(2, max_period + 1) if p < P.shape[0] and
                           float(torch.linalg.vector_norm(zK - P[-1 - p, s])) <= 1e-8 * scale),
                          None)
            status.append(f"cycle-{period}" if period else "no convergence")
    conv = torch.tensor([s == "converged" for s in status], dtype=torch.bool)
    limits, labels = _cluster(P[-1][conv], same_limit)
    limit_of = torch.full((S,), -1, dtype=torch.long)
    limit_of[conv] = labels
    return MultiStart(starts, P, torch.stack(steps) if steps else torch.empty(0, S, dtype=DTYPE),
                      status, limits, limit_of)


def nonnegative_starts(n: int, count: int, high: float, *, seed: int) -> Tensor:
    """``count`` starts in [0, high)^n: z = 0 (the paper's start) first, then uniform draws.

    Raises:
        ConfigError: count < 1 or high <= 0.
    """
    if int(count) != count or count < 1:
        raise ConfigError(f"the number of starts must be a positive integer, got {count!r}")
    if not high > 0:
        raise ConfigError(f"the start box must have a positive size, got {high!r}")
    rest = high * torch.rand(int(count) - 1, int(n), generator=_generator(seed + 104729),
                             dtype=DTYPE)
    return torch.cat([torch.zeros(1, int(n), dtype=DTYPE), rest])


# ------------------------------------------------------------------------ rate fitting
@dataclass(frozen=True)
class RateFit:
    """A fit r_k ~ C q^k to a residual sequence.

    Attributes:
        rate: q (0.0 when the iteration landed exactly on the fixed point).
        log_c: log C.
        first, last: the window of indices used (inclusive).
        exact: the residual hit 0 (finite termination), so there is no rate to fit.
    """

    rate: float
    log_c: float
    first: int
    last: int
    exact: bool = False

    def line(self, k: Sequence[int] | Tensor) -> Tensor:
        """C q^k at the given indices (for plotting the fitted line)."""
        kk = torch.as_tensor(k, dtype=DTYPE)
        return torch.exp(self.log_c + kk * math.log(max(self.rate, 1e-300)))


def fit_rate(residuals: Sequence[float] | Tensor, *, floor: float = 1e-13,
             start_below: float = 1e-2) -> RateFit | None:
    """Least-squares fit of log r_k = log C + k log q on the asymptotic part of a sequence.

    The window: from the first residual below ``start_below`` times the largest one (past
    the transient) to the last one above ``floor`` (before rounding noise); when that leaves
    fewer than 3 points, every residual above the floor is used.

    Args:
        residuals: r_0, r_1, ... (e.g. ||z_{k+1} - z_k|| or the loss per step).
        floor: residuals at or below it are rounding noise.
        start_below: where the asymptotic regime is taken to start, relative to max r.

    Returns:
        The fit; ``exact=True`` and rate 0 if the sequence reached exactly 0 while still
        above the floor before; None if fewer than 2 usable points (and no exact zero).
    """
    r = torch.as_tensor(residuals, dtype=DTYPE)
    r = r[torch.isfinite(r)]
    if r.numel() == 0:
        return None
    zero = (r == 0).nonzero()
    if zero.numel():
        z0 = int(zero[0])
        if z0 == 0 or bool((r[:z0] > floor).all()):
            return RateFit(0.0, math.log(float(r[0])) if z0 else 0.0, 0, z0, exact=True)
    above = (r > floor).nonzero().flatten()
    if above.numel() < 2:
        return None
    # Only the first contiguous run above the floor (after that: rounding noise).
    last = int(above[0])
    while last + 1 < r.numel() and r[last + 1] > floor:
        last += 1
    first = int(above[0])
    cut = (r[first:last + 1] <= start_below * float(r[first:last + 1].max())).nonzero()
    if cut.numel() and last - (first + int(cut[0])) >= 2:
        first = first + int(cut[0])
    if last - first < 1:
        return None
    k = torch.arange(first, last + 1, dtype=DTYPE)
    y = torch.log(r[first:last + 1])
    km, ym = k.mean(), y.mean()
    slope = float(((k - km) * (y - ym)).sum() / ((k - km) ** 2).sum())
    return RateFit(math.exp(slope), float(ym - slope * km), first, last)


# --------------------------------------------------------------------- one case, studied
@dataclass
class CaseResult:
    """Everything measured on one map.

    Attributes:
        case: the map.
        fails: the theorem's hypotheses it violates (empty: the theorem applies).
        run: the iteration from many starts (row 0 starts at z = 0).
        fit: geometric rate fitted to ||z_{k+1} - z_k|| from z = 0 (None if it does not
            converge).
        jacobian_rate: rho(J_g(z*)) at the limit reached from z = 0, the predicted
            asymptotic rate (None if that start did not converge).
        solver_iters: iterations of pcdeq's solver (the paper's relative residual, from
            z = 0) to reach ``solver_tol``; None if it hit its ``max_iter``.
        solver_tol: that tolerance.
    """

    case: MapCase
    fails: list[Condition]
    run: MultiStart
    fit: RateFit | None
    jacobian_rate: float | None
    solver_iters: int | None
    solver_tol: float

    @property
    def inside(self) -> bool:
        return not self.fails

    @property
    def label(self) -> str:
        return theorem_label(self.case)

    @property
    def residuals_from_zero(self) -> Tensor:
        return self.run.steps[:, 0]

    def errors(self, z_star: Tensor | None = None) -> Tensor:
        """(K + 1, S) ||z_k - z*|| per start, z* = the limit reached from z = 0."""
        if z_star is None:
            z_star = self.run.final[0]
        return torch.linalg.vector_norm(self.run.paths - z_star, dim=2)


def study_case(case: MapCase, *, n_starts: int = 100, start_scale: float = 1.5, seed: int = 0,
               max_iter: int = 300, solver_tol: float = 1e-4, solver_max_iter: int = 200
               ) -> CaseResult:
    """Iterate one map from ``n_starts`` nonnegative starts and measure what happens.

    Starts: z = 0 and ``n_starts - 1`` uniform draws from [0, start_scale * B)^n, where B is
    sup sigma (6 for ReLU6, 1 for tanh, softsign, sigmoid and for unbounded activations).

    Args:
        case: the map.
        n_starts: number of starts, z = 0 included.
        start_scale: size of the start box relative to sup sigma.
        seed: seed of the starts.
        max_iter: most steps of the multi-start iteration.
        solver_tol, solver_max_iter: stopping rule of pcdeq's solver for the iteration count
            (the paper's: relative residual 1e-4, at most 200 iterations).

    Returns:
        The :class:`CaseResult`.
    """
    bound = UPPER_BOUND.get(case.activation.lower()) or 1.0
    starts = nonnegative_starts(case.dim, n_starts, start_scale * bound, seed=seed)
    with single_thread():
        run = iterate_many(case, starts, max_iter=max_iter)
        fit = fit_rate(run.steps[:, 0]) if run.status[0] == "converged" else None
        jac = (spectral_radius(case.jacobian(run.final[0])) if run.status[0] == "converged"
               else None)
        with torch.no_grad():
            _, stats = fixed_point_iter(case, torch.zeros(1, case.dim, dtype=DTYPE),
                                        tol=solver_tol, max_iter=solver_max_iter)
    return CaseResult(case, theorem_conditions(case), run, fit, jac,
                      None if stats.hit_max_iter else stats.iters, solver_tol)


@dataclass
class GeometryStudy:
    """All cases of Figure 13 / Table 9.

    Attributes:
        settings: the parameters used (for captions).
        pcdeq: dim -> results of the pcDEQ cases asked for.
        broken: dim -> results of the deliberately broken cases.
        contraction: dim -> the contraction case (Banach comparison).
    """

    settings: dict
    pcdeq: dict[int, list[CaseResult]] = field(default_factory=dict)
    broken: dict[int, list[CaseResult]] = field(default_factory=dict)
    contraction: dict[int, CaseResult] = field(default_factory=dict)

    def all_results(self) -> list[tuple[int, CaseResult]]:
        out = []
        for dim in self.pcdeq:
            out += [(dim, r) for r in self.pcdeq[dim]]
            out += [(dim, r) for r in self.broken[dim]]
            out.append((dim, self.contraction[dim]))
        return out


def geometry_study(*, dims: Sequence[int] = (2, 50), w_norm: float = 3.0, w_low: float = 0.0,
                   x_low: float = 0.1, x_high: float = 1.0,
                   pcdeq_cases: Sequence[Sequence] = ((1, "relu6"), (1, "tanh"),
                                                      (1, "softsign"), (2, "sigmoid")),
                   broken_cases: Sequence[str] = tuple(BREAKS), contraction_norm: float = 0.9,
                   n_starts: int = 100, start_scale: float = 1.5, seed: int = 0,
                   max_iter: int = 300) -> GeometryStudy:
    """Run every case of Figure 13 / Table 9, per dimension on one W and one x.

    W: entries U[w_low, 1) scaled to ||W||_2 = w_norm; x: entries U[x_low, x_high). Both are
    drawn per dimension from ``seed``. The pcDEQ cases are (variant, activation) pairs; a
    pairing or a W / x that breaks the theorem is still run, and its result says so (see
    :func:`theorem_conditions`).

    Args:
        dims: the dimensions n of the maps.
        w_norm, w_low: W's spectral norm and the lower end of its entries before scaling.
        x_low, x_high: the range of x's entries.
        pcdeq_cases: (variant, activation) pairs.
        broken_cases: keys of :data:`BREAKS`.
        contraction_norm: ||W||_2 of the Banach comparison (tanh).
        n_starts, start_scale, seed, max_iter: see :func:`study_case`.

    Returns:
        The :class:`GeometryStudy`.

    Raises:
        ConfigError: a malformed parameter (dimension < 1, norm <= 0, unknown activation or
            broken case, empty start set, ...), before anything runs.
    """
    settings = dict(dims=list(dims), w_norm=w_norm, w_low=w_low, x_low=x_low, x_high=x_high,
                    pcdeq_cases=[list(c) for c in pcdeq_cases], broken_cases=list(broken_cases),
                    contraction_norm=contraction_norm, n_starts=n_starts,
                    start_scale=start_scale, seed=seed, max_iter=max_iter)
    if not contraction_norm > 0:
        raise ConfigError(f"contraction_norm must be > 0, got {contraction_norm!r}")
    for c in pcdeq_cases:
        if len(c) != 2:
            raise ConfigError(f"a pcDEQ case is [variant, activation], got {c!r}")
    for key in broken_cases:
        if key not in BREAKS:
            raise ConfigError(f"unknown broken case {key!r}; known: {', '.join(BREAKS)}")
    study = GeometryStudy(settings)
    kw = dict(n_starts=n_starts, start_scale=start_scale, seed=seed, max_iter=max_iter)
    with single_thread():
        for dim in dims:
            W = random_matrix(dim, w_norm, seed=seed, low=w_low)
            x = random_input(dim, x_low, x_high, seed=seed)
            cases = [pcdeq_case(W, x, int(v), str(a)) for v, a in pcdeq_cases]
            study.pcdeq[dim] = [study_case(c, **kw) for c in cases]
            study.broken[dim] = [study_case(broken_case(W, x, key), **kw)
                                 for key in broken_cases]
            study.contraction[dim] = study_case(contraction_case(W, x, contraction_norm), **kw)
    return study


def banach_curves(result: CaseResult, k_max: int | None = None) -> tuple[Tensor, Tensor]:
    """Measured worst-case error ratio and Banach's bound for one case.

    Args:
        result: a converged case.
        k_max: number of steps (default: the length of the run).

    Returns:
        (measured, bound), each of length K + 1: max over starts of
        ||z_k - z*|| / ||z_0 - z*||, and (Lip(sigma) ||W||_2)^k.
    """
    err = result.errors()
    e0 = err[0].clamp(min=1e-300)
    keep = err[0] > 0  # a start at z* itself says nothing
    ratio = (err[:, keep] / e0[keep]).amax(dim=1)
    K = ratio.shape[0] if k_max is None else min(ratio.shape[0], k_max + 1)
    k = torch.arange(K, dtype=DTYPE)
    return ratio[:K], torch.as_tensor(result.case.lipschitz, dtype=DTYPE) ** k


# -------------------------------------------------------------------------- table 9
# Symbols the tables use that pcdeq.report.latex_escape leaves as they are.
_EXTRA_LATEX = {"≥": r"$\geq$", "→": r"$\to$", "−": "-", "·": r"$\cdot$", "ρ": r"$\rho$",
                "η": r"$\eta$", "λ": r"$\lambda$"}


def _table_class():
    """A :class:`pcdeq.report.Table` whose LaTeX also maps the symbols above."""
    from .report import Table

    class TheoryTable(Table):
        def to_latex(self) -> str:
            head, body = super().to_latex().split("\n", 1)
            head = (f"% {self.name}: generated by pcdeq.theory (synthetic illustration, no run "
                    "records); do not edit by hand.")
            for sym, tex in _EXTRA_LATEX.items():
                body = body.replace(sym, tex)
            return head + "\n" + body

    return TheoryTable

def _g(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def limits_text(result: CaseResult) -> str:
    """The 'distinct limits' cell: the count, and what the other starts did."""
    run = result.run
    counts = run.counts()
    extra = [f"{k.replace('cycle-', '')}-cycle" if k.startswith("cycle-") else k
             for k in sorted(counts) if k != "converged"]
    return str(run.n_limits) + (f" ({', '.join(extra)})" if extra else "")


def rate_text(result: CaseResult) -> str:
    if result.fit is None:
        return "—"
    if result.fit.exact and result.fit.last == 0:
        return "— (z = 0 is a fixed point)"
    if result.fit.exact:
        return f"0 (exact after {result.fit.last} steps)"
    return _g(result.fit.rate)


def verdict(result: CaseResult) -> str:
    """One-word outcome computed from the run: 'unique, geometric', '2 fixed points', ..."""
    run = result.run
    counts = run.counts()
    S = len(run.status)
    if counts.get("converged", 0) == S:
        if run.n_limits == 1:
            if result.fit is not None and result.fit.exact:
                return "unique fixed point, reached exactly"
            if result.fit is not None and result.fit.rate < 1:
                return "unique fixed point, geometric"
            return "unique fixed point"
        return f"{run.n_limits} fixed points"
    if counts.get("diverged", 0) == S:
        return "diverges"
    cyc = [k for k in counts if k.startswith("cycle-")]
    if cyc and sum(counts[k] for k in cyc) == S:
        return "oscillates (" + ", ".join(f"{k.split('-')[1]}-cycle" for k in sorted(cyc)) + ")"
    return "mixed: " + run.outcome()


def convergence_table(study: GeometryStudy, profile: str = "quick") -> "Table":
    """Table 9: per case, ||W||_2, Banach's constant, iterations to 1e-4, fitted rate, rate
    predicted by the Jacobian at z*, distinct limits from the starts, outcome.

    Args:
        study: the runs.
        profile: the profile named in the caption (the numbers do not depend on it).

    Returns:
        A :class:`pcdeq.report.Table` named ``table9_convergence``.
    """
    s = study.settings
    header = ["Case", "Theorem", "σ_max(W)", "Lip(σ)·σ_max(W)", "Iterations to 1e-4",
              "Fitted rate", "Rate at z* (Jacobian)", f"Distinct limits ({s['n_starts']} starts)",
              "Outcome"]
    rows: list[list[str]] = []
    for dim in study.pcdeq:
        rows.append([f"**n = {dim}**"] + [""] * (len(header) - 1))
        for r in study.pcdeq[dim] + study.broken[dim] + [study.contraction[dim]]:
            theorem = ("applies" if r.inside else
                       "outside: " + ", ".join(c.short for c in r.fails) + " fails")
            banach = r.case.lipschitz
            rows.append([
                r.case.name, theorem, _g(spectral_norm(r.case.W)),
                _g(banach) + (" (contraction)" if banach < 1 else ""),
                "—" if r.solver_iters is None else str(r.solver_iters),
                rate_text(r), _g(r.jacobian_rate), limits_text(r), verdict(r)])
    notes = [
        "Synthetic illustration of the theory (Prop. 4.6), not trained models: W has i.i.d. "
        f"entries U[{s['w_low']:g}, 1) scaled to σ_max(W) = {s['w_norm']:g}, x has entries "
        f"U[{s['x_low']:g}, {s['x_high']:g}), seed {s['seed']}; the broken cases use the same "
        "W and x with one hypothesis removed.",
        "Iterations to 1e-4: pcdeq's solver from z = 0 with the paper's stopping rule "
        "(relative residual < 1e-4, at most 200 iterations; — = not reached). Fitted rate: "
        "least-squares fit of the step sizes from z = 0 on a log scale (0: the iteration "
        "landed exactly on z*). Rate at z*: spectral radius of the Jacobian of the map at the "
        "limit reached from z = 0. Distinct limits: clusters of the end points of the "
        f"converged starts (z = 0 and {s['n_starts'] - 1} uniform starts in "
        f"[0, {s['start_scale']:g} sup σ)^n, at most {s['max_iter']} steps).",
    ]
    cap = (f"Synthetic illustration of the pcDEQ theorem (random W and x, not trained models); "
           f"the same in every profile ({profile} profile run).")
    title = "Table 9: fixed-point iteration on pcDEQ maps and on maps outside the theorem"
    return _table_class()("table9_convergence", title, cap, header, rows, notes,
                          align="llrrrrrll")


# ------------------------------------------------------------------------- figure 13
_LIMIT_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _draw_paths(ax, r: CaseResult) -> None:
    from matplotlib.collections import LineCollection

    run = r.run
    P = run.paths
    S = P.shape[1]
    segments, colors = [], []
    for s in range(S):
        st = run.status[s]
        if st == "converged":
            color = _LIMIT_COLORS[int(run.limit_of[s]) % len(_LIMIT_COLORS)]
        elif st == "diverged":
            color = "#ff7f0e"
        else:
            color = "0.45"
        path = P[:, s]
        path = path[torch.isfinite(path).all(dim=1)]
        # A converged path is drawn up to where it stops moving visibly.
        segments.append(path[:60].numpy())
        colors.append(color)
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.5, alpha=0.45))
    ax.scatter(run.starts[:, 0], run.starts[:, 1], s=3, c=colors, alpha=0.8, lw=0)
    for i, c in enumerate(run.limits):
        ax.plot(c[0], c[1], "*", color=_LIMIT_COLORS[i % len(_LIMIT_COLORS)], ms=13,
                mec="k", mew=0.8, zorder=5)
    cyc = [s for s in range(S) if run.status[s].startswith("cycle-")]
    if cyc:
        pts = torch.cat([P[-2, cyc], P[-1, cyc]])
        ax.plot(pts[:, 0], pts[:, 1], "D", color="k", ms=5, zorder=5)
    # Axes: the start box and the end points, not the far end of diverging paths.
    bound = (UPPER_BOUND.get(r.case.activation) or 1.0) * 1.5
    fin = P[-1][torch.isfinite(P[-1]).all(dim=1)]
    pts = torch.cat([run.starts, fin, P[1:3].reshape(-1, 2)])
    pts = pts[torch.isfinite(pts).all(dim=1) & (pts.abs() <= 2 * bound).all(dim=1)]
    lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
    pad = 0.06 * (hi - lo).clamp(min=1e-3)
    ax.set_xlim(float(lo[0] - pad[0]), float(hi[0] + pad[0]))
    ax.set_ylim(float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    if "diverged" in run.status:
        ax.text(0.5, 0.04, "paths leave the plot: ||z|| -> inf", transform=ax.transAxes,
                ha="center", fontsize=7, color="#ff7f0e")
    ax.set_xlabel("$z_1$", fontsize=8)
    ax.set_ylabel("$z_2$", fontsize=8)


def _title(r: CaseResult) -> str:
    L = r.case.lipschitz
    banach = (f"Banach applies too: Lip(σ)·σ_max(W) = {L:.3g} < 1" if L < 1 else
              f"no contraction: Lip(σ)·σ_max(W) = {L:.3g}")
    return f"{r.case.name}\n{r.label}\n{verdict(r)}\n({banach})"


def geometry_figure(study: GeometryStudy, profile: str = "quick") -> "Figure":
    """Figure 13: paths in the plane (n = 2) of the pcDEQ cases and of the broken cases, the
    residual per iteration with the fitted rates (n = 2 and the largest n), the broken cases'
    residuals, and the measured error against Banach's bound.

    Args:
        study: the runs (must include n = 2).
        profile: the profile named in the title.

    Returns:
        The matplotlib figure.

    Raises:
        ConfigError: the study has no 2-D map to draw.
    """
    import matplotlib.pyplot as plt

    s = study.settings
    if 2 not in study.pcdeq:
        raise ConfigError("Figure 13 draws the paths of the 2-D map: include 2 in dims")
    hi_dim = max(study.pcdeq)
    ncols = max(4, len(study.pcdeq[2]), len(study.broken[2]))
    fig, axes = plt.subplots(3, ncols, figsize=(3.6 * ncols, 11.8), squeeze=False)
    for row, results in ((0, study.pcdeq[2]), (1, study.broken[2])):
        for j in range(ncols):
            ax = axes[row][j]
            if j >= len(results):
                ax.axis("off")
                continue
            r = results[j]
            _draw_paths(ax, r)
            ax.set_title(_title(r), fontsize=8, color="k" if r.inside else "#b00000")
    # Row 3: residuals.
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def residual_panel(ax, results: list[CaseResult], title: str, fits: bool) -> None:
        for i, r in enumerate(results):
            res = r.residuals_from_zero
            k = torch.arange(1, res.numel() + 1)
            keep = torch.isfinite(res) & (res > 0)
            c = colors[i % len(colors)]
            lab = r.case.name + ("" if r.inside else " [outside]")
            if fits and r.fit is not None and not r.fit.exact:
                lab += f": rate {r.fit.rate:.3g}"
            elif fits and r.fit is not None and r.fit.exact:
                lab += f": exact after {r.fit.last} steps"
            ax.semilogy(k[keep], res[keep], "o-", ms=2.5, lw=1, color=c, label=lab)
            if fits and r.fit is not None and not r.fit.exact:
                kk = torch.arange(r.fit.first, r.fit.last + 1)
                ax.semilogy(kk + 1, r.fit.line(kk), "--", color="k", lw=0.8)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("iteration k (from z = 0)", fontsize=8)
        ax.set_ylabel(r"$\|z_{k} - z_{k-1}\|_2$", fontsize=8)
        ax.legend(fontsize=6, loc="best")
        ax.grid(alpha=0.3)

    residual_panel(axes[2][0], study.pcdeq[2], "pcDEQ cases, n = 2: geometric convergence\n"
                   "(dashed: fitted rate)", True)
    residual_panel(axes[2][1], study.pcdeq[hi_dim], f"pcDEQ cases, n = {hi_dim}\n"
                   "(dashed: fitted rate)", True)
    ax = axes[2][2]
    for i, r in enumerate(study.broken[2] + study.broken[hi_dim]):
        res = r.residuals_from_zero
        k = torch.arange(1, res.numel() + 1)
        keep = torch.isfinite(res) & (res > 0)
        dim = r.case.dim
        ax.semilogy(k[keep], res[keep], "-" if dim == 2 else ":", lw=1.1,
                    color=colors[i % len(study.broken[2]) % len(colors)],
                    label=f"n={dim}: {r.case.change} -> {verdict(r)}")
    ax.set_title("OUTSIDE THE THEOREM: broken cases\n(solid n = 2, dotted n = "
                 f"{hi_dim}; cut at ||z|| > 1e8)", fontsize=8, color="#b00000")
    ax.set_xlabel("iteration k (from z = 0)", fontsize=8)
    ax.set_ylabel(r"$\|z_{k} - z_{k-1}\|_2$", fontsize=8)
    ax.legend(fontsize=5.5, loc="best")
    ax.grid(alpha=0.3)
    # Banach comparison.
    ax = axes[2][3]
    con = study.contraction[2]
    ref = next((r for r in study.pcdeq[2] if r.case.activation == con.case.activation
                and r.inside and r.run.n_limits == 1), None)
    for r, c in ((con, colors[0]), (ref, colors[1])):
        if r is None or r.run.status[0] != "converged":
            continue
        meas, bound = banach_curves(r)
        K = int((meas > 1e-15).sum())
        K = max(K, 2)
        k = torch.arange(K)
        L = r.case.lipschitz
        tag = "contraction" if L < 1 else "no contraction"
        ax.semilogy(k, meas[:K], "o-", ms=2.5, color=c,
                    label=f"measured, σ_max(W) = {spectral_norm(r.case.W):.3g}")
        ax.semilogy(k, bound[:K], "--", color=c,
                    label=f"Banach bound {L:.3g}^k ({tag}" + (")" if L < 1 else ": vacuous)"))
    ax.set_title("Banach's bound vs measured error, n = 2\n"
                 r"max over starts of $\|z_k - z^*\| / \|z_0 - z^*\|$", fontsize=8,
                 color="k" if con.case.lipschitz < 1 else "#b00000")
    if con.case.lipschitz >= 1:
        ax.text(0.5, 0.5, f"OUTSIDE BANACH'S THEOREM:\nLip(σ)·σ_max(W) = "
                f"{con.case.lipschitz:.3g} >= 1", transform=ax.transAxes, ha="center",
                fontsize=7, color="#b00000")
    ax.set_xlabel("iteration k", fontsize=8)
    ax.set_ylabel("relative error", fontsize=8)
    ax.legend(fontsize=6, loc="best")
    ax.grid(alpha=0.3)
    for j in range(4, ncols):
        axes[2][j].axis("off")
    for a in axes.flat:
        a.tick_params(labelsize=7)
    fig.suptitle(_wrap(
        "Figure 13: fixed-point iteration on pcDEQ maps g(z) = σ(Wz + x) -- SYNTHETIC "
        "ILLUSTRATION of the theory (random W and x, not trained models).",
        f"W: entries U[{s['w_low']:g}, 1) scaled to σ_max(W) = {s['w_norm']:g}; x: entries "
        f"U[{s['x_low']:g}, {s['x_high']:g}); n = {', '.join(map(str, s['dims']))}; seed "
        f"{s['seed']}; {s['n_starts']} starts (z = 0 and uniform in [0, "
        f"{s['start_scale']:g} sup σ)^n); contraction: σ_max(W) = {s['contraction_norm']:g}. "
        f"Rows: pcDEQ cases; the same W, x with one hypothesis removed; residuals. "
        f"Profile-independent ({profile} run).", width=190), fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _wrap(first: str, rest: str, width: int) -> str:
    """A figure title: the first line as it is, the rest wrapped at ``width`` characters."""
    import textwrap
    return "\n".join([first, *textwrap.wrap(rest, width=width)])


# =============================================================================== Part 2
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
    g = _generator(seed)
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
    g = _generator(seed + 1)
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


@dataclass
class DynamicsStudy:
    """Figure 14's runs: link -> (problem, init, runs per step size)."""

    settings: dict
    problems: dict[str, Problem] = field(default_factory=dict)
    inits: dict[str, DEQParams] = field(default_factory=dict)
    runs: dict[str, list[GDRun]] = field(default_factory=dict)


def dynamics_study(*, links: Sequence[str] = LINKS, n: int = 200, d: int = 5, k: int = 3,
                   step_sizes: Sequence[float] = (0.01, 0.02, 0.04, 0.08), steps: int = 1500,
                   seed: int = 0, w_scale: float = 0.1, u_scale: float = 0.3,
                   v_scale: float = 1.0) -> DynamicsStudy:
    """Gradient descent on the linear DEQ and the single-index DEQs, every step size.

    The same X, beta and initialization for every link (from ``seed``).

    Args:
        links: the models ("linear", "tanh", "leaky_relu").
        n, d, k: samples, input dimension, DEQ width.
        step_sizes: one run per step size.
        steps: GD steps per run.
        seed: seeds the data and the initialization.
        w_scale, u_scale, v_scale: scales of the initialization (:func:`init_params`).

    Returns:
        The :class:`DynamicsStudy`.

    Raises:
        ConfigError: a malformed parameter (before anything runs).
    """
    for link in links:
        link_fns(link)
    if not step_sizes:
        raise ConfigError("step_sizes is empty")
    for eta in step_sizes:
        if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
            raise ConfigError(f"step sizes must be positive numbers, got {eta!r}")
    study = DynamicsStudy(dict(links=list(links), n=n, d=d, k=k, step_sizes=list(step_sizes),
                               steps=steps, seed=seed, w_scale=w_scale, u_scale=u_scale,
                               v_scale=v_scale))
    p0 = init_params(k, d, seed=seed, w_scale=w_scale, u_scale=u_scale, v_scale=v_scale)
    with single_thread():
        for link in links:
            prob = make_problem(n, d, link, seed=seed)
            study.problems[link] = prob
            study.inits[link] = p0
            study.runs[link] = gradient_descent(prob, p0, step_sizes, steps)
    return study


LINK_TITLES = {"linear": "linear DEQ, ŷ = vᵀz*",
               "tanh": "single-index DEQ, ŷ = tanh(vᵀz*)",
               "leaky_relu": f"single-index DEQ, ŷ = leaky ReLU(vᵀz*), slope {LEAKY_SLOPE:g}"}


def _log_marks(n: int, count: int = 14) -> Tensor:
    """About ``count`` indices in [1, n), spaced evenly on a log scale (marker positions)."""
    if n <= 2:
        return torch.arange(1, max(n, 1))
    idx = torch.unique(torch.logspace(0, math.log10(n - 1), count, dtype=DTYPE).round().long())
    return idx[idx < n]


def dynamics_figure(study: DynamicsStudy, profile: str = "quick") -> "Figure":
    """Figure 14: one row per model (linear, single-index tanh, single-index leaky ReLU);
    columns: loss per step (log), Q1 drift beside its prediction, Q2 drift beside its
    prediction, the final drift against the step size (log-log, slope 1 = "shrinks like
    eta"), and sigma_min(I - W). One colour per step size; runs outside the stable range
    dotted and labelled.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    s = study.settings
    links = list(study.runs)
    fig, axes = plt.subplots(len(links), 5, figsize=(20, 3.4 * len(links) + 1.3), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, link in enumerate(links):
        runs = study.runs[link]
        outside = [r for r in runs if not r.inside]
        col = "#b00000" if outside else "k"
        tag = f"\n{len(outside)} run(s) OUTSIDE THE THEOREM (dotted)" if outside else ""
        ax_loss, ax_q1, ax_q2, ax_eta, ax_sv = axes[i]
        for j, r in enumerate(runs):
            c = colors[j % len(colors)]
            ls = "-" if r.inside else ":"
            t = torch.arange(r.loss.numel())
            lab = f"η = {r.eta:g}" + ("" if r.inside else " OUTSIDE: η ≥ 2/λ_max")
            fit = r.fit()
            if fit is not None and not fit.exact:
                lab += f": rate {fit.rate:.4g}/step"
            if r.diverged_at is not None:
                lab += f", diverged at step {r.diverged_at}"
            keep = torch.isfinite(r.loss) & (r.loss > 0)
            ax_loss.semilogy(t[keep], r.loss[keep], ls, color=c, lw=1.2, label=lab)
            for ax, q, qp in ((ax_q1, r.q1, r.q1_pred), (ax_q2, r.q2, r.q2_pred)):
                d, dp = q - q[0], qp - qp[0]
                keep = torch.isfinite(d)
                keep[0] = False  # log x axis: from step 1
                ax.plot(t[keep], d[keep], ls, color=c, lw=1.4)
                m = _log_marks(int(keep.sum()) + 1)
                m = m[torch.isfinite(dp[m])]
                ax.plot(t[m], dp[m], "x", color=c, ms=4.5, mew=1.1)
            keep = torch.isfinite(r.sigma_min)
            ax_sv.plot(t[keep], r.sigma_min[keep], ls, color=c, lw=1.2)
        # Final drift against eta: measured (markers) and slope-1 reference.
        eta = torch.tensor([r.eta for r in runs], dtype=DTYPE)
        d1 = torch.tensor([r.drift()[0] for r in runs], dtype=DTYPE)
        d2 = torch.tensor([r.drift()[1] for r in runs], dtype=DTYPE)
        for vals, mk, name in ((d1, "o", "$Q_1(T) - Q_1(0)$"),
                               (d2.abs(), "s", "$|Q_2(T) - Q_2(0)|$")):
            ax_eta.loglog(eta, vals, mk + "-", color="k" if mk == "o" else "0.5", ms=5, lw=1,
                          label=name + " measured")
            ref = vals[0] * eta / eta[0]
            ax_eta.loglog(eta, ref, "--", color="k" if mk == "o" else "0.5", lw=0.8,
                          label=name + " ∝ η (slope 1)")
        for j, r in enumerate(runs):
            ax_eta.plot([r.eta], [d1[j]], "o", color=colors[j % len(colors)], ms=5, zorder=5)
        ax_loss.set_title(f"{LINK_TITLES[link]}\nloss per step (log): linear convergence{tag}",
                          fontsize=8, color=col)
        ax_loss.set_ylabel("loss", fontsize=8)
        ax_loss.legend(fontsize=6, loc="lower left")
        ax_q1.set_title(r"drift of $Q_1 = \|U\|_F^2 + \|I - W\|_F^2$" "\n"
                        r"line: measured; x: predicted $\Sigma_t\, \eta^2(\|\nabla_W\|^2 + "
                        r"\|\nabla_U\|^2)$", fontsize=8, color=col)
        ax_q1.set_ylabel(r"$Q_1(t) - Q_1(0)$", fontsize=8)
        ax_q1.set_yscale("log")
        ax_q2.set_title(r"drift of $Q_2 = \|v\|^2 - \|U\|_F^2$" "\n"
                        r"line: measured; x: predicted $\Sigma_t\, \eta^2(\|\nabla_v\|^2 - "
                        r"\|\nabla_U\|^2)$", fontsize=8, color=col)
        ax_q2.set_ylabel(r"$Q_2(t) - Q_2(0)$", fontsize=8)
        for ax in (ax_q1, ax_q2):
            ax.set_xscale("log")
        ax_q1.legend(handles=[Line2D([], [], color="k", lw=1.4, label="measured"),
                              Line2D([], [], color="k", marker="x", lw=0, label="predicted")]
                     + [Line2D([], [], color=colors[j % len(colors)], lw=1.4,
                               label=f"η = {r.eta:g}") for j, r in enumerate(runs)],
                     fontsize=6, loc="upper left")
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
        ax_eta.xaxis.set_major_locator(FixedLocator([float(e) for e in eta]))
        ax_eta.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax_eta.xaxis.set_minor_locator(NullLocator())
        ax_eta.yaxis.set_minor_formatter(NullFormatter())
        ax_eta.set_title("drift after training vs step size\n(shrinks like η; dashed: slope 1)",
                         fontsize=8, color=col)
        ax_eta.set_xlabel("step size η", fontsize=8)
        ax_eta.set_ylabel("drift at the last step", fontsize=8)
        ax_eta.legend(fontsize=6, loc="upper left")
        fin = [r.sigma_min[torch.isfinite(r.sigma_min)] for r in runs]
        lo = min(float(f.min()) for f in fin)
        ax_sv.set_ylim(0, max(1.05, 1.1 * max(float(f.max()) for f in fin)))
        ax_sv.axhline(lo, color="k", lw=0.6, ls="--")
        ax_sv.text(0.98, lo, f"min over runs {lo:.3g}", ha="right", va="bottom", fontsize=7,
                   transform=ax_sv.get_yaxis_transform())
        ax_sv.set_title(r"$\sigma_{\min}(I - W)$ during training" "\n"
                        "well-conditioned: bounded away from 0", fontsize=8, color=col)
        ax_sv.set_ylabel(r"$\sigma_{\min}(I - W)$", fontsize=8)
        for j, ax in enumerate(axes[i]):
            if j != 3:
                ax.set_xlabel("gradient-descent step" + (" (log)" if j in (1, 2) else ""),
                              fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(_wrap(
        "Figure 14: gradient descent on linear and single-index DEQs (the setting of "
        "Dandapanthula & Ramdas 2025) -- SYNTHETIC ILLUSTRATION of the theory, not trained "
        "pcDEQ models.",
        f"z* = (I - W)⁻¹Ux, squared loss, y = φ(βᵀx) with a unit β, x ~ N(0, I), n = {s['n']}, "
        f"d = {s['d']}, k = {s['k']}; W0 ~ {s['w_scale']:g}·N(0, 1), "
        f"U0 ~ {s['u_scale']:g}·N(0, 1), "
        f"v0 ~ {s['v_scale']:g}·N(0, 1); seed {s['seed']}; {s['steps']} full-batch steps per "
        f"run; η in {{{', '.join(f'{e:g}' for e in s['step_sizes'])}}}. The conserved "
        "quantities and their exact per-step increase are our derivation from the model's "
        f"scaling symmetries (not the paper's text). Profile-independent ({profile} run).",
        width=210), fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def outside_runs(study: DynamicsStudy, factors: Sequence[float], steps: int | None = None
                 ) -> dict[str, list[GDRun]]:
    """Runs per model at eta = factor * 2 / lambda_max(Hessian at the initialization) for
    each factor, i.e. outside the stable range when factor >= 1 (their checks say so).

    Args:
        study: the in-range study (its problems and initialization are reused).
        factors: multiples of the stable limit 2 / lambda_max.
        steps: GD steps (default: the study's).

    Returns:
        link -> one run per factor.

    Raises:
        ConfigError: a factor that is not a positive number.
    """
    for f in factors:
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
            raise ConfigError(f"outside_factors must be positive numbers, got {f!r}")
    out = {}
    with single_thread():
        for link, prob in study.problems.items():
            lam = study.runs[link][0].check.sharpness
            out[link] = gradient_descent(prob, study.inits[link], [f * 2 / lam for f in factors],
                                         steps or study.settings["steps"])
    return out


def outside_figure(study: DynamicsStudy, outside: dict[str, list[GDRun]],
                   profile: str = "quick") -> "Figure":
    """Beside Figure 14: the loss and the Q1 drift of each model at step sizes beyond the
    stable range, against the largest in-range step size of the study. Panels with runs
    outside the range are titled "OUTSIDE THE THEOREM".

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    links = list(outside)
    fig, axes = plt.subplots(2, len(links), figsize=(4.8 * len(links), 6.8), squeeze=False)
    reds = ("#b00000", "#ff7f0e", "#9467bd", "#8c564b")
    for j, link in enumerate(links):
        ref = max((r for r in study.runs[link] if r.inside), key=lambda r: r.eta, default=None)
        runs = [(ref, "#1f77b4", "-")] if ref is not None else []
        runs += [(r, reds[i % len(reds)], ":" if not r.inside else "--")
                 for i, r in enumerate(outside[link])]
        for r, c, ls in runs:
            t = torch.arange(r.loss.numel())
            tag = (f" = {r.eta * r.check.sharpness / 2:.3g} x 2/λ_max" +
                   ("" if r.inside else " OUTSIDE"))
            end = f", diverged at step {r.diverged_at}" if r.diverged_at is not None else ""
            keep = torch.isfinite(r.loss) & (r.loss > 0)
            axes[0][j].semilogy(t[keep], r.loss[keep], ls, color=c, lw=1.4,
                                label=f"η = {r.eta:.3g}{tag}{end}")
            d1 = (r.q1 - r.q1[0]).abs()
            keep = torch.isfinite(d1) & (d1 > 0)
            axes[1][j].semilogy(t[keep], d1[keep], ls, color=c, lw=1.4,
                                label=f"η = {r.eta:.3g}: final {abs(r.drift()[0]):.3g}")
        bad = [r for r in outside[link] if not r.inside]
        title = LINK_TITLES[link] + "\n" + (
            f"OUTSIDE THE THEOREM: η ≥ 2/λ_max = {bad[0].check.limit:.3g} "
            f"({len(bad)} run{'s' if len(bad) > 1 else ''}, dotted)" if bad
            else "every run inside the stable range")
        axes[0][j].set_title(title, fontsize=8, color="#b00000" if bad else "k")
        axes[0][j].set_ylabel("loss", fontsize=8)
        axes[1][j].set_title(r"$|Q_1(t) - Q_1(0)|$: how far the parameters leave the sphere",
                             fontsize=8)
        axes[1][j].set_ylabel(r"$|Q_1(t) - Q_1(0)|$", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xlabel("gradient-descent step", fontsize=8)
            ax.legend(fontsize=6.5)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(_wrap("Step sizes beyond the stable range η < 2/λ_max (Hessian at the "
                       "initialization) -- SYNTHETIC ILLUSTRATION, not trained models",
                       "Same data and initialization as Figure 14; blue: its largest step "
                       f"size. Profile-independent ({profile} run).", width=130),
                 fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def run_summary(r: GDRun) -> str:
    """One run in one line (4 significant digits; nothing at rounding-noise level).

    Args:
        r: the run.

    Returns:
        The line: rate, steps to a 1e12-fold loss reduction, drifts, the check of the
        prediction, the range of sigma_min(I - W); for a diverged run only where it stopped.
    """
    fit = r.fit()
    reach = r.steps_to(1e-12 * float(r.loss[0]))
    d1, d2 = r.drift()
    err = r.prediction_error()
    parts = [f"eta = {r.eta:.4g}"]
    if not r.inside:
        parts.append("OUTSIDE THE THEOREM")
    if r.diverged_at is not None:
        # Past this point the numbers are those of an overflow, not worth printing.
        parts.append(f"diverged at step {r.diverged_at} (loss above 1e6 x its initial value, "
                     "or I - W singular): stopped")
        return "; ".join(parts)
    if not r.inside and reach is None:
        # Beyond the stable step size, neither converging nor diverging: the iterates wander
        # chaotically and their digits depend on rounding, which differs between CPUs
        # (oneDNN/MKL kernels), so only what does not is printed.
        parts.append(f"loss not reduced 1e12-fold and no divergence in {len(r.loss) - 1} steps "
                     "(bounded, not converging; its values depend on rounding and are not printed)")
        return "; ".join(parts)
    if fit is not None and not fit.exact:
        parts.append(f"loss rate {fit.rate:.4g}/step")
    parts.append(f"loss/1e12 at step {reach}" if reach is not None else
                 "loss not reduced 1e12-fold")
    parts.append(f"dQ1 = {d1:.4g} (dQ1/eta = {d1 / r.eta:.4g})")
    parts.append(f"dQ2 = {d2:.4g} (dQ2/eta = {d2 / r.eta:.4g})")
    parts.append("Q = Q(0) + sum of predicted steps: "
                 + ("to < 1e-12" if err < 1e-12 else f"only to {err:.1e}"))
    sv = r.sigma_min[torch.isfinite(r.sigma_min)]
    parts.append(f"sigma_min(I - W) in [{float(sv.min()):.4g}, {float(sv.max()):.4g}]")
    return "; ".join(parts)


def dynamics_summary(study: DynamicsStudy) -> str:
    """The numbers behind Figure 14, as text with 4 significant digits (no rounding noise:
    only quantities far above float64's floor are printed).

    Args:
        study: the runs.

    Returns:
        One header line per model and one line per run (see :func:`run_summary`).
    """
    lines = []
    for link, runs in study.runs.items():
        lam = runs[0].check.sharpness
        q1, q2 = (float(q[0]) for q in (runs[0].q1, runs[0].q2))
        lines.append(f"{LINK_TITLES[link]}: initial loss {float(runs[0].loss[0]):.4g}; "
                     f"Q1(0) = {q1:.4g}, Q2(0) = {q2:.4g}; lambda_max(Hessian at init) = "
                     f"{lam:.4g}, stable range eta < {2 / lam:.4g}")
        for r in runs:
            lines.append("  " + run_summary(r))
            if not r.inside:
                lines.append(f"    {r.check.message}")
    return "\n".join(lines)
