"""Fixed-point solvers and the implicit backward pass (paper Section 5).

Solvers are registered by name and share one signature (torchdeq style): ``fixed_point`` (the
paper's plain iteration), ``anderson`` and ``broyden`` (MDEQ's and the Lipschitz multiscale
DEQ's, with their reference code's stopping rules and lowest-residual return)::

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
        iters: the solver's count, as its reference reports it: evaluations of the map up to
            the returned iterate (fixed_point, anderson), or Broyden steps (broyden: its
            evaluations less the first, f(z0), as MDEQ counts ``nstep``).
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
                 max_iter: int, trace: bool = False, f_z0: Tensor | None = None,
                 lower: float | None = None) -> tuple[Tensor, SolverStats]: ...


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
                     f_z0: Tensor | None = None, lower: float | None = None
                     ) -> tuple[Tensor, SolverStats]:
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
        lower: unused: every iterate is a value of ``f`` (for a pcDEQ map, nonnegative
            already); accepted so that every solver takes the same keywords.

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


def batch_rows(t: Tensor) -> Tensor:
    """(B, ...) -> (B, D): one row per batch sample (a copy where t is not contiguous)."""
    return t.reshape(t.shape[0], -1)


@register_solver("anderson")
def anderson(f: Callable[[Tensor], Tensor], z0: Tensor, *, tol: float = 1e-3,
             max_iter: int = 50, trace: bool = False, f_z0: Tensor | None = None,
             lower: float | None = None, m: int = 6, lam: float = 1e-4, beta: float = 1.0
             ) -> tuple[Tensor, SolverStats]:
    """Anderson acceleration (type II) as the MDEQ and Lipschitz-MDEQ code run it.

    Per batch sample, the next iterate mixes the last ``m`` evaluations with the weights
    alpha that minimise ||sum_i alpha_i G_i||, sum alpha = 1, G_i = f(X_i) - X_i (solved as the
    bordered system [[0, 1^T], [1, G G^T + lam I]] [., alpha] = [1, 0]); X_1 = f(X_0). The
    residual ||f(X) - X||_F / (||f(X)||_F + 1e-5) is taken over the whole batch tensor, as in
    :func:`fixed_point_iter` and the reference (``lib/solvers.py`` of locuslab/mdeq and
    iiduka-researches/Lipschitz_mdeq): the first two evaluations are not tested, the solve
    stops when the residual is below ``tol``, and the **lowest-residual iterate** is returned.

    Args:
        f, z0, tol, max_iter, trace, f_z0: as :func:`fixed_point_iter` (``max_iter``: the
            reference's threshold; it evaluates f at most ``max_iter`` times).
        lower: keep every iterate >= lower (a pcDEQ layer: 0, the nonnegative orthant the
            theorem is about; the weights alpha may be negative): a sample whose mix has an
            entry below it takes the plain step f(X_prev) instead (a safeguard; for a pcDEQ map
            f >= 0, so the step is feasible, and the history keeps it).
        m: history size (reference: 6); lam: Tikhonov term (1e-4); beta: mixing (1.0).

    Returns:
        The lowest-residual iterate and the :class:`SolverStats` (``iters``: evaluations of f
        up to that iterate; ``residual``: its residual; ``hit_max_iter``: never below tol).
    """
    B = z0.shape[0]
    x0 = batch_rows(z0)
    D = x0.shape[1]
    X = x0.new_zeros(B, m, D)
    F = x0.new_zeros(B, m, D)
    X[:, 0] = x0
    F[:, 0] = batch_rows(f_z0 if f_z0 is not None else f(z0))
    X[:, 1] = F[:, 0]
    F[:, 1] = batch_rows(f(X[:, 1].reshape(z0.shape)))
    H = x0.new_zeros(B, m + 1, m + 1)
    H[:, 0, 1:] = H[:, 1:, 0] = 1
    rhs = x0.new_zeros(B, m + 1, 1)
    rhs[:, 0] = 1
    residuals: list[float] | None = [] if trace else None
    best, best_k, best_x = float("inf"), 2, X[:, 1].clone()
    for k in range(2, max_iter):
        n = min(k, m)
        G = F[:, :n] - X[:, :n]
        H[:, 1:n + 1, 1:n + 1] = torch.bmm(G, G.transpose(1, 2)) + lam * torch.eye(
            n, dtype=x0.dtype, device=x0.device)[None]
        alpha = torch.linalg.solve(H[:, :n + 1, :n + 1], rhs[:, :n + 1])[:, 1:n + 1, 0]  # (B, n)
        i = k % m
        X[:, i] = beta * (alpha[:, None] @ F[:, :n])[:, 0] + (1 - beta) * (alpha[:, None] @ X[:, :n])[:, 0]
        if lower is not None:  # a mix below the bound: take the plain step f(X_prev) instead
            out = (X[:, i] < lower).any(dim=1, keepdim=True)
            X[:, i] = torch.where(out, F[:, (k - 1) % m], X[:, i])
        F[:, i] = batch_rows(f(X[:, i].reshape(z0.shape)))
        res = relative_residual(F[:, i], X[:, i])
        if residuals is not None:
            residuals.append(res)
        if res < best:
            best, best_k, best_x = res, k + 1, X[:, i].clone()
        if res < tol:
            return best_x.reshape(z0.shape), SolverStats(best_k, best, False, residuals)
    return best_x.reshape(z0.shape), SolverStats(best_k, best, True, residuals)


@register_solver("broyden")
def broyden(f: Callable[[Tensor], Tensor], z0: Tensor, *, tol: float = 1e-3,
            max_iter: int = 50, trace: bool = False, f_z0: Tensor | None = None,
            lower: float | None = None) -> tuple[Tensor, SolverStats]:
    """Broyden's "good" method on g(z) = f(z) - z as MDEQ runs it (no line search, step 1).

    Each batch sample keeps its own inverse-Jacobian estimate -I + sum_j u_j v_j^T, one rank-1
    update per step; the first step is z_1 = z_0 + g(z_0) = f(z_0). The residual
    ||g(z)||_F / (||f(z)||_F + 1e-9) is over the whole batch tensor (the reference's "rel"
    mode). It stops below ``tol``; or below 3 tol after more than 30 steps with little
    progress (max / min of the last 30 residuals < 1.3); or, a protective break, when the
    residual exceeds 1e3 times the first one. It returns the **lowest-residual iterate**.

    Args:
        f, z0, tol, max_iter, trace, f_z0: as :func:`fixed_point_iter` (``max_iter``: steps
            after the first evaluation, the reference's threshold).
        lower: keep every iterate >= lower (see :func:`anderson`: a sample whose step would
            leave takes the plain step to f(x)); the secant update uses the step taken.

    Returns:
        The lowest-residual iterate and its :class:`SolverStats` (``iters``: the step at which
        it was reached; ``hit_max_iter``: the solve did not reach ``tol``).
    """
    B = z0.shape[0]
    x = batch_rows(z0).clone()
    fx = batch_rows(f_z0 if f_z0 is not None else f(z0))
    gx = fx - x
    D = x.shape[1]
    # The columns u_j and rows v_j^T, grown as steps are taken (doubling): B x D x max_iter at
    # once would be 3.3 GB each for an MNIST SC batch at the paper's max_iter of 200.
    cap = min(max_iter, 32)
    Us = x.new_zeros(B, D, cap)
    VTs = x.new_zeros(B, cap, D)

    def matvec(n: int, v: Tensor) -> Tensor:  # (-I + U V^T) v, per sample
        if n == 0:
            return -v
        return -v + torch.einsum("bdn,bn->bd", Us[:, :, :n], torch.einsum("bnd,bd->bn", VTs[:, :n], v))

    def rmatvec(n: int, v: Tensor) -> Tensor:  # v^T (-I + U V^T), per sample
        if n == 0:
            return -v
        return -v + torch.einsum("bn,bnd->bd", torch.einsum("bd,bdn->bn", v, Us[:, :, :n]), VTs[:, :n])

    update = gx.clone()  # -(-I) g(z0)
    residuals: list[float] = []
    best, best_k, best_x = float("inf"), 0, x
    for n in range(1, max_iter + 1):
        if lower is None:
            x, dx = x + update, update
        else:  # a step below the bound: the plain step to f(x) instead (see anderson)
            x_new = x + update
            out = (x_new < lower).any(dim=1, keepdim=True)
            x_new = torch.where(out, fx, x_new)
            x, dx = x_new, x_new - x
        fx = batch_rows(f(x.reshape(z0.shape)))
        gx_new = fx - x
        dg = gx_new - gx
        gx = gx_new
        res = float(torch.linalg.vector_norm(gx) / (torch.linalg.vector_norm(fx) + 1e-9))
        residuals.append(res)
        if res < best:
            best, best_k, best_x = res, n, x.clone()
        recent = residuals[-30:]
        if (res < tol or (res < 3 * tol and n > 30 and max(recent) / min(recent) < 1.3)
                or res > residuals[0] * 1e3 or n == max_iter):
            break
        if n > Us.shape[2]:
            grow = min(Us.shape[2], max_iter - Us.shape[2])
            Us = torch.cat([Us, Us.new_zeros(B, D, grow)], dim=2)
            VTs = torch.cat([VTs, VTs.new_zeros(B, grow, D)], dim=1)
        vT = rmatvec(n - 1, dx)
        u = (dx - matvec(n - 1, dg)) / torch.einsum("bd,bd->b", vT, dg)[:, None]
        VTs[:, n - 1] = torch.where(torch.isnan(vT), 0.0, vT)  # the reference zeroes NaNs only
        Us[:, :, n - 1] = torch.where(torch.isnan(u), 0.0, u)
        update = -matvec(n, gx)
    return best_x.reshape(z0.shape), SolverStats(best_k, best, best >= tol,
                                                 residuals if trace else None)


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


def jacobian_spectral_norm(f: Callable[[Tensor], Tensor], z: Tensor, iters: int = 30,
                           seed: int = 0) -> Tensor:
    """||J_f(z)||_2 per sample, by power iteration on J^T J with forward- and reverse-mode
    products (``torch.func.jvp`` / ``vjp``): the Lipschitz constant the map actually realises
    at z (for z = z*, the local contraction factor of the fixed-point iteration).

    Args:
        f: a map on (B, D) states acting on each sample separately (J is block diagonal).
        z: (B, D) the point, e.g. the fixed point.
        iters: power iterations (an estimate from below that rises with ``iters``).
        seed: the start vector's generator seed (the estimate is reproducible).

    Returns:
        (B,) the estimates.
    """
    z = z.detach()
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(z.shape, generator=g, dtype=z.dtype, device="cpu").to(z.device)
    v = v / v.flatten(1).norm(dim=1).view(-1, *([1] * (z.dim() - 1)))
    _, vjp_fn = torch.func.vjp(f, z)
    sigma = z.new_zeros(z.shape[0])
    for _ in range(iters):
        _, jv = torch.func.jvp(f, (z,), (v,))
        sigma = jv.flatten(1).norm(dim=1)
        (w,) = vjp_fn(jv)
        v = w / w.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (z.dim() - 1)))
    return sigma


def equilibrium_spectral_norm(f: Callable[[Tensor], Tensor], z0: Tensor, *, solver: str,
                              tol: float, max_iter: int, lower: float | None = None) -> float:
    """||J_f(z*)||_2 at the fixed point z* that ``solver`` finds from ``z0``, the largest over
    the batch: the Lipschitz constant an equilibrium map realises where it is used (the
    multiscale families record it every epoch as ``jac_norm``).

    Args:
        f: the map on (B, D) states (each sample separately).
        z0: the solve's start; solver, tol, max_iter, lower: as :func:`implicit_fixed_point`.
    """
    with torch.no_grad():
        z, _ = get_solver(solver)(f, z0, tol=tol, max_iter=max_iter, f_z0=None, lower=lower)
    with torch.enable_grad():
        return float(jacobian_spectral_norm(f, z).max().detach())


def implicit_fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, *, solver: str = "fixed_point",
                         tol: float = 1e-4, max_iter: int = 200,
                         backward_stats: list[SolverStats] | None = None,
                         f_z0: Tensor | None = None, attach: Attach | None = None,
                         backward_max_iter: int | None = None,
                         lower: float | None = None) -> tuple[Tensor, SolverStats]:
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
        backward_max_iter: the adjoint solve's cap (default ``max_iter``; MDEQ: B_THRES).
        lower: the forward solve's lower bound on the iterates (see :func:`anderson`; the
            adjoint variable has no sign).

    Returns:
        z* (attached to the graph when grad is enabled) and the forward solve's stats.
    """
    solve = get_solver(solver)
    with torch.no_grad():
        z, stats = solve(f, z0, tol=tol, max_iter=max_iter, f_z0=f_z0, lower=lower)
    if not torch.is_grad_enabled():
        return z, stats

    # One step with grad connects z* to the parameters and the layer input.
    z, jac_t = (attach or autograd_attach(f))(z)

    def backward_hook(grad: Tensor) -> Tensor:
        def vjp(y: Tensor) -> Tensor:
            return jac_t(y).add_(grad)
        y, bstats = solve(vjp, grad, tol=tol,
                          max_iter=max_iter if backward_max_iter is None else backward_max_iter)
        if backward_stats is not None:
            backward_stats.append(bstats)
        return y

    if z.requires_grad:
        z.register_hook(backward_hook)
    return z, stats
