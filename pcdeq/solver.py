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
                 max_iter: int, trace: bool = False,
                 f_z0: Tensor | None = None) -> tuple[Tensor, SolverStats]: ...


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


def _sq_norm(t: Tensor) -> Tensor:
    """||t||_F^2 as one BLAS dot product over a dense tensor's memory (any layout): half the
    time of ``vector_norm`` on a conv layer's iterate, and accumulated more accurately."""
    if t.is_complex() or not _dense(t):
        return torch.linalg.vector_norm(t).square()
    flat = t.as_strided((t.numel(),), (1,))
    return torch.dot(flat, flat)


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


def relative_residual(new: Tensor, old: Tensor, scratch: Tensor | None = None) -> float:
    """||new - old||_F / (||new||_F + 1e-5), the norms over the whole (batch) tensor.

    Args:
        new, old: two iterates.
        scratch: a tensor of their shape and layout to hold new - old (saves allocating one
            per call: on the CPU a fresh buffer of a conv layer's size costs more than the
            subtraction).
    """
    diff = torch.sub(new, old, out=scratch) if scratch is not None else new - old
    # One host sync per call.
    return (_sq_norm(diff).sqrt() / (_sq_norm(new).sqrt() + 1e-5)).item()


@register_solver("fixed_point")
def fixed_point_iter(f: Callable[[Tensor], Tensor], z0: Tensor, *, tol: float = 1e-4,
                     max_iter: int = 200, trace: bool = False,
                     f_z0: Tensor | None = None) -> tuple[Tensor, SolverStats]:
    """Plain fixed-point iteration z_{k+1} = f(z_k), as in the paper (no acceleration).

    Stops when ||z_{k+1} - z_k||_F / (||z_{k+1}||_F + 1e-5) < tol, the norm taken over the
    whole (batch) tensor, or after ``max_iter`` evaluations of ``f``.

    Args:
        f: the map; called under whatever grad mode the caller set.
        z0: the starting point (the paper starts the forward solve at 0).
        tol: relative residual to stop at.
        max_iter: most evaluations of ``f``.
        trace: keep every residual in the returned stats (for tests and plots).
        f_z0: f(z0), when the caller knows it without evaluating f (a DEQ layer from z0 = 0:
            sigma(W 0 + x) = sigma(x) exactly). It counts as the first evaluation, so the
            iterates, residuals and stats are those of iterating from z0.

    Returns:
        The last iterate and the :class:`SolverStats` of the solve.
    """
    z = z0
    residuals: list[float] | None = [] if trace else None
    res = float("inf")
    scratch: Tensor | None = None
    for k in range(1, max_iter + 1):
        z_next = f_z0 if k == 1 and f_z0 is not None else f(z)
        if scratch is None and not z_next.requires_grad:
            scratch = torch.empty_like(z_next)
        res = relative_residual(z_next, z, scratch)
        z = z_next
        if residuals is not None:
            residuals.append(res)
        if res < tol:
            return z, SolverStats(k, res, False, residuals)
    return z, SolverStats(max_iter, res, True, residuals)


# z* -> (f(z*) computed with grad, y -> J_f(z*)^T y): how a map attaches its fixed point to
# the graph and what the adjoint iteration applies (see implicit_fixed_point).
Attach = Callable[[Tensor], tuple[Tensor, Callable[[Tensor], Tensor]]]


def autograd_attach(f: Callable[[Tensor], Tensor]) -> Attach:
    """The generic :data:`Attach` of any map: one step with grad, and the vector-Jacobian
    product by autograd through a second application at the attached output."""
    def attach(z: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        z_att = f(z)
        z_in = z_att.detach().requires_grad_()
        f_in = f(z_in)

        def jac_t(y: Tensor) -> Tensor:
            with torch.enable_grad():
                return torch.autograd.grad(f_in, z_in, y, retain_graph=True)[0]
        return z_att, jac_t
    return attach


def implicit_fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, *, solver: str = "fixed_point",
                         tol: float = 1e-4, max_iter: int = 200,
                         backward_stats: list[SolverStats] | None = None,
                         f_z0: Tensor | None = None, attach: Attach | None = None
                         ) -> tuple[Tensor, SolverStats]:
    """Solve z* = f(z*) and make z* differentiable by implicit differentiation.

    The forward solve runs without a graph. If gradients are needed, the map is applied once
    more with grad to attach z* to the parameters (and inputs) of ``f``, and a hook on the
    result replaces the incoming gradient ``grad`` by the solution of the adjoint fixed point
    y = J_f(z*)^T y + grad, found by the same solver from y = grad (Bai et al. 2019).

    Args:
        f: the map z -> g_x(z), closing over the layer input and weights; called without grad
            only, so it may work in place on its own intermediate results.
        z0: starting point of the forward solve.
        solver, tol, max_iter: solver name (see :data:`SOLVERS`) and its stopping rule,
            shared by the forward and the adjoint solve.
        backward_stats: a list to which the stats of the adjoint solve are appended when the
            backward pass runs (it runs after this function has returned).
        f_z0: f(z0) if known without evaluating f (see :func:`fixed_point_iter`).
        attach: the map's own :data:`Attach` (a DEQ layer applies J^T directly, one transposed
            operator per adjoint iteration); default :func:`autograd_attach` of ``f``.

    Returns:
        z* (attached to the graph when grad is enabled) and the forward solve's stats.
    """
    solve = get_solver(solver)
    with torch.no_grad():
        z, stats = solve(f, z0, tol=tol, max_iter=max_iter, f_z0=f_z0)
    if not torch.is_grad_enabled():
        return z, stats

    # One step with grad connects z* to the parameters and the layer input.
    z, jac_t = (attach or autograd_attach(f))(z)

    def backward_hook(grad: Tensor) -> Tensor:
        def vjp(y: Tensor) -> Tensor:
            return jac_t(y).add_(grad)
        y, bstats = solve(vjp, grad, tol=tol, max_iter=max_iter)
        if backward_stats is not None:
            backward_stats.append(bstats)
        return y

    if z.requires_grad:
        z.register_hook(backward_hook)
    return z, stats
