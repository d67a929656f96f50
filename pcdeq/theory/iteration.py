"""Fixed-point iteration from many starts at once (Figure 13, Table 9), of a whole batch to a
tolerance (the claims), and the geometric rate fitted to a residual sequence (all of them and
Figure 15)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..hparams import ConfigError
from .maps import DTYPE, generator


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


def iterate_batch(g: Callable[[Tensor], Tensor], z: Tensor, tol: float, max_iter: int
                  ) -> tuple[Tensor, list[float], bool]:
    """Plain fixed-point iteration of a whole batch (any shape: conv layers are (B, C, H, W)),
    stopping together when ||Z_{k+1} - Z_k||_F / ||Z_{k+1}||_F <= tol (the claims' rule).

    Not :func:`iterate_many`'s rule, which judges each row on its own,
    ||z_{k+1} - z_k|| <= tol * max(1, ||z_{k+1}||), and keeps every iterate: the two stop at
    different steps (on the quick L models 117 vs 128, 39 vs 42, 29 vs 30, 18 vs 19
    iterations), so each keeps its own and the numbers tables/claims.md prints stay those of
    the batch rule.

    Returns:
        (the last iterate, the residual after every step, whether it reached ``tol``); a
        non-finite residual stops it, unconverged.
    """
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


def nonnegative_starts(n: int, count: int, high: float, *, seed: int) -> Tensor:
    """``count`` starts in [0, high)^n: z = 0 (the paper's start) first, then uniform draws.

    Raises:
        ConfigError: count < 1 or high <= 0.
    """
    if int(count) != count or count < 1:
        raise ConfigError(f"the number of starts must be a positive integer, got {count!r}")
    if not high > 0:
        raise ConfigError(f"the start box must have a positive size, got {high!r}")
    rest = high * torch.rand(int(count) - 1, int(n), generator=generator(seed + 104729),
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
