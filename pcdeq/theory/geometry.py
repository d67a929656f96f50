"""Part 1 of the theory notebooks, compute: the geometry of pcDEQ's fixed-point iteration
(Figure 13, Table 9) on the maps of :mod:`pcdeq.theory.maps`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ..hparams import ConfigError
from ..solver import fixed_point_iter
from .maps import (BREAKS, Condition, DTYPE, MapCase, UPPER_BOUND, broken_case, contraction_case,
                   pcdeq_case, random_input, random_matrix, single_thread, spectral_radius,
                   theorem_conditions, theorem_label)
from .iteration import MultiStart, RateFit, fit_rate, iterate_many, nonnegative_starts


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


@dataclass(frozen=True)
class GeometrySettings:
    """The parameters of Figure 13 / Table 9 (their defaults, written once).

    Attributes:
        dims: the dimensions n of the maps.
        w_norm, w_low: W's spectral norm and the lower end of its entries before scaling.
        x_low, x_high: the range of x's entries.
        pcdeq_cases: (variant, activation) pairs.
        broken_cases: keys of :data:`BREAKS`.
        contraction_norm: ||W||_2 of the Banach comparison (tanh).
        n_starts, start_scale, seed, max_iter: see :func:`study_case`.

    Raises:
        ConfigError: a malformed parameter (a pcDEQ case that is not a pair, an unknown broken
            case, a contraction norm <= 0), when the settings are made.
    """

    dims: tuple[int, ...] = (2, 50)
    w_norm: float = 3.0
    w_low: float = 0.0
    x_low: float = 0.1
    x_high: float = 1.0
    pcdeq_cases: tuple[tuple, ...] = ((1, "relu6"), (1, "tanh"), (1, "softsign"), (2, "sigmoid"))
    broken_cases: tuple[str, ...] = tuple(BREAKS)
    contraction_norm: float = 0.9
    n_starts: int = 100
    start_scale: float = 1.5
    seed: int = 0
    max_iter: int = 300

    def __post_init__(self) -> None:
        # Sequences from a notebook or YAML arrive as lists: stored as tuples.
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "broken_cases", tuple(self.broken_cases))
        for c in self.pcdeq_cases:
            if len(c) != 2:
                raise ConfigError(f"a pcDEQ case is [variant, activation], got {c!r}")
        object.__setattr__(self, "pcdeq_cases", tuple(tuple(c) for c in self.pcdeq_cases))
        if not self.contraction_norm > 0:
            raise ConfigError(f"contraction_norm must be > 0, got {self.contraction_norm!r}")
        for key in self.broken_cases:
            if key not in BREAKS:
                raise ConfigError(f"unknown broken case {key!r}; known: {', '.join(BREAKS)}")


@dataclass
class GeometryStudy:
    """All cases of Figure 13 / Table 9.

    Attributes:
        settings: the parameters used (for captions).
        pcdeq: dim -> results of the pcDEQ cases asked for.
        broken: dim -> results of the deliberately broken cases.
        contraction: dim -> the contraction case (Banach comparison).
    """

    settings: GeometrySettings
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


def geometry_study(settings: GeometrySettings | None = None, /, **overrides) -> GeometryStudy:
    """Run every case of Figure 13 / Table 9, per dimension on one W and one x.

    W: entries U[w_low, 1) scaled to ||W||_2 = w_norm; x: entries U[x_low, x_high). Both are
    drawn per dimension from ``seed``. The pcDEQ cases are (variant, activation) pairs; a
    pairing or a W / x that breaks the theorem is still run, and its result says so (see
    :func:`theorem_conditions`).

    Args:
        settings: the :class:`GeometrySettings` (default: its defaults).
        **overrides: fields of :class:`GeometrySettings` to change, e.g. ``dims=[2]``.

    Returns:
        The :class:`GeometryStudy`.

    Raises:
        ConfigError: a malformed parameter (dimension < 1, norm <= 0, unknown activation or
            broken case, empty start set, ...), before anything runs.
    """
    st = replace(settings or GeometrySettings(), **overrides)
    study = GeometryStudy(st)
    kw = dict(n_starts=st.n_starts, start_scale=st.start_scale, seed=st.seed, max_iter=st.max_iter)
    with single_thread():
        for dim in st.dims:
            W = random_matrix(dim, st.w_norm, seed=st.seed, low=st.w_low)
            x = random_input(dim, st.x_low, st.x_high, seed=st.seed)
            cases = [pcdeq_case(W, x, int(v), str(a)) for v, a in st.pcdeq_cases]
            study.pcdeq[dim] = [study_case(c, **kw) for c in cases]
            study.broken[dim] = [study_case(broken_case(W, x, key), **kw)
                                 for key in st.broken_cases]
            study.contraction[dim] = study_case(contraction_case(W, x, st.contraction_norm), **kw)
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
