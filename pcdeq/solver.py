"""Fixed-point solvers and the implicit backward pass (paper Section 5).

Solvers are registered by name and share one signature (torchdeq style)::

    z, stats = solver(f, z0, tol=1e-4, max_iter=200)

They never print; what happened is returned as :class:`SolverStats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor


@dataclass
class SolverStats:
    """What one solve did.

    Attributes:
        iters: number of evaluations of the map.
        residual: last relative residual ||z_{k+1} - z_k|| / (||z_{k+1}|| + 1e-5).
        hit_max_iter: True if the solve stopped at ``max_iter`` without reaching ``tol``.
        residuals: the relative residual after every evaluation (only if asked for).
    """

    iters: int
    residual: float
    hit_max_iter: bool
    residuals: list[float] | None = None


class Solver(Protocol):
    def __call__(self, f: Callable[[Tensor], Tensor], z0: Tensor, *, tol: float,
                 max_iter: int, trace: bool = False) -> tuple[Tensor, SolverStats]: ...


SOLVERS: dict[str, Solver] = {}


def register_solver(name: str) -> Callable[[Solver], Solver]:
    """Decorator adding a solver to :data:`SOLVERS` under ``name``."""
    def deco(fn: Solver) -> Solver:
        SOLVERS[name] = fn
        return fn
    return deco


def get_solver(name: str) -> Solver:
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; registered: {', '.join(SOLVERS)}") from None


@register_solver("fixed_point")
def fixed_point_iter(f: Callable[[Tensor], Tensor], z0: Tensor, *, tol: float = 1e-4,
                     max_iter: int = 200, trace: bool = False) -> tuple[Tensor, SolverStats]:
    """Plain fixed-point iteration z_{k+1} = f(z_k), as in the paper (no acceleration).

    Stops when ||z_{k+1} - z_k||_F / (||z_{k+1}||_F + 1e-5) < tol, the norm taken over the
    whole (batch) tensor, or after ``max_iter`` evaluations of ``f``.

    Args:
        f: the map; called under whatever grad mode the caller set.
        z0: the starting point (the paper starts the forward solve at 0).
        tol: relative residual to stop at.
        max_iter: most evaluations of ``f``.
        trace: keep every residual in the returned stats (for tests and plots).

    Returns:
        The last iterate and the :class:`SolverStats` of the solve.
    """
    z = z0
    residuals: list[float] | None = [] if trace else None
    res = float("inf")
    for k in range(1, max_iter + 1):
        z_next = f(z)
        # One fused reduction and a single host sync per iteration.
        res = (torch.linalg.vector_norm(z_next - z) / (torch.linalg.vector_norm(z_next) + 1e-5)).item()
        z = z_next
        if residuals is not None:
            residuals.append(res)
        if res < tol:
            return z, SolverStats(k, res, False, residuals)
    return z, SolverStats(max_iter, res, True, residuals)


def implicit_fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, *, solver: str = "fixed_point",
                         tol: float = 1e-4, max_iter: int = 200,
                         backward_stats: list[SolverStats] | None = None
                         ) -> tuple[Tensor, SolverStats]:
    """Solve z* = f(z*) and make z* differentiable by implicit differentiation.

    The forward solve runs without a graph. If gradients are needed, ``f`` is applied once
    more with grad to attach z* to the parameters (and inputs) of ``f``, and a hook on the
    result replaces the incoming gradient ``grad`` by the solution of the adjoint fixed point
    y = J_f(z*)^T y + grad, found by the same solver from y = grad (Bai et al. 2019).

    Args:
        f: the map z -> g_x(z), closing over the layer input and weights.
        z0: starting point of the forward solve.
        solver, tol, max_iter: solver name (see :data:`SOLVERS`) and its stopping rule,
            shared by the forward and the adjoint solve.
        backward_stats: a list to which the stats of the adjoint solve are appended when the
            backward pass runs (it runs after this function has returned).

    Returns:
        z* (attached to the graph when grad is enabled) and the forward solve's stats.
    """
    solve = get_solver(solver)
    with torch.no_grad():
        z, stats = solve(f, z0, tol=tol, max_iter=max_iter)
    if not torch.is_grad_enabled():
        return z, stats

    z = f(z)  # one step with grad: connects z* to the parameters and the layer input
    z_in = z.detach().requires_grad_()
    f_in = f(z_in)  # its Jacobian at z* drives the adjoint iteration

    def adjoint(grad: Tensor) -> Tensor:
        def vjp(y: Tensor) -> Tensor:
            return torch.autograd.grad(f_in, z_in, y, retain_graph=True)[0] + grad
        with torch.enable_grad():
            y, bstats = solve(vjp, grad, tol=tol, max_iter=max_iter)
        if backward_stats is not None:
            backward_stats.append(bstats)
        return y

    if z.requires_grad:
        z.register_hook(adjoint)
    return z, stats
