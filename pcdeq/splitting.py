"""Peaceman-Rachford splitting for monDEQ (Winston & Kolter 2020, Alg. 1; their splitting.py):
the forward solve of z = relu(W z + x), the backward solve of the adjoint system, and the
autograd function that joins them (the implicit backward pass of :class:`pcdeq.mondeq.MonDEQ`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .solver import SolverStats

Apply = Callable[[Tensor], Tensor]
# Denominator guard of the relative residual, as in the authors' splitting.py.
_EPS = 1e-6


def _rel_change(new: Tensor, old: Tensor) -> float:
    """||new - old|| / (||new|| + 1e-6) over the whole batch tensor: one host sync."""
    return (torch.linalg.vector_norm(new - old) / (torch.linalg.vector_norm(new) + _EPS)).item()


def peaceman_rachford(x: Tensor, apply_v: Apply, alpha: float, nonlin: Apply, *, tol: float,
                      max_iter: int) -> tuple[Tensor, SolverStats]:
    """Forward Peaceman-Rachford splitting for z = nonlin(W z + x) (the reference's loop).

    Starting from z = u = 0, each iteration is
        u_half = 2 z - u;  z_half = V (u_half + alpha x);  u = 2 z_half - u_half;  z+ = nonlin(u)
    with V = (I + alpha (I - W))^{-1}, until ||z+ - z|| / (||z+|| + 1e-6) <= tol or
    ``max_iter`` iterations. Run it under ``torch.no_grad()`` unless unrolling on purpose.

    Args:
        x: the injection, (batch, n) or (batch, C, H, W).
        apply_v: z -> V z.
        alpha: the PR step used to build V.
        nonlin: the proximal map (relu, or relu with a zeroed border).
        tol, max_iter: stopping rule.

    Returns:
        The last iterate z and its :class:`SolverStats` (iters = PR iterations).
    """
    z = torch.zeros_like(x)
    u = torch.zeros_like(x)
    ax = alpha * x  # loop-invariant
    err, it = float("inf"), 0
    while err > tol and it < max_iter:
        u_half = torch.lerp(u, z, 2.0)  # 2 z - u in one pass
        z_half = apply_v(u_half + ax)
        u = torch.lerp(u_half, z_half, 2.0)  # 2 z_half - u_half
        z_new = nonlin(u)
        err = _rel_change(z_new, z)
        z = z_new
        it += 1
    return z, SolverStats(it, err, err > tol)


def peaceman_rachford_backward(grad: Tensor, active: Tensor, apply_vt: Apply, alpha: float, *,
                               tol: float, max_iter: int) -> tuple[Tensor, SolverStats]:
    """Backward PR (the paper's Alg. 4): the z with g + W^T z = (I - J_f^T)^{-1} g.

    J_f = diag(j) W is the layer's Jacobian at z* (j = relu'(.) in {0, 1}); z solves
    z = diag(j) (g + W^T z), i.e. (I + D - W^T) z = g with z = 0 where j = 0. The reference
    iterates, from z = u = 0,
        u_half = 2 z - u;  z_half = V^T u_half;  u = 2 z_half - u_half;
        z+ = (u + alpha (1 + D) v) / (1 + alpha D),  z+ = v where j = 0,
    with v = j * g and D = (1 - j) / j. For j in {0, 1} this is exactly
    z+ = u + alpha g where j = 1 and 0 where j = 0 (D = 0 there; D = inf is never formed).

    Args:
        grad: g, the gradient reaching the layer output, shape of z.
        active: j as a bool tensor (z_hat > 0; False on a zeroed border).
        apply_vt: z -> V^T z (the same V as the forward).
        alpha: the PR step V was built with.
        tol, max_iter: stopping rule (the forward's).

    Returns:
        The last iterate z (the caller returns g + W^T z) and its :class:`SolverStats`.
    """
    z = torch.zeros_like(grad)
    u = torch.zeros_like(grad)
    ag = alpha * grad
    zero = grad.new_zeros(())
    err, it = float("inf"), 0
    while err > tol and it < max_iter:
        u_half = torch.lerp(u, z, 2.0)  # 2 z - u
        z_half = apply_vt(u_half)
        u = torch.lerp(u_half, z_half, 2.0)  # 2 z_half - u_half
        z_new = torch.where(active, u + ag, zero)
        err = _rel_change(z_new, z)
        z = z_new
        it += 1
    return z, SolverStats(it, err, err > tol)


@dataclass
class _BackwardPlan:
    """What the implicit backward needs from the forward call (no tensors of the graph)."""

    apply_vt: Apply
    multiply_transpose: Apply
    alpha: float
    tol: float
    max_iter: int
    stats: list[SolverStats]


class _ImplicitBackward(torch.autograd.Function):
    """Identity in the forward; the backward maps g to g + W^T z = (I - J_f^T)^{-1} g (PR backward)."""

    @staticmethod
    def forward(ctx, z_hat: Tensor, plan: _BackwardPlan) -> Tensor:  # type: ignore[override]
        ctx.plan = plan
        ctx.active = z_hat > 0  # relu'(.) at z*; 0 where the border was zeroed
        return z_hat.view_as(z_hat)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        p: _BackwardPlan = ctx.plan
        z, stats = peaceman_rachford_backward(grad, ctx.active, p.apply_vt, p.alpha,
                                              tol=p.tol, max_iter=p.max_iter)
        p.stats.append(stats)
        return grad + p.multiply_transpose(z), None


# ------------------------------------------------------------------------------ the layer
