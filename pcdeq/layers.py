"""DEQ layers: z* = sigma(W z* + x), with pcDEQ's nonnegative W (Definitions 3.1, 4.3).

A layer is three separate choices, so other routes to stable DEQs are a few lines each:

- the weight parametrization and its constraint (:class:`NonnegativeWeightNorm` for pcDEQ),
- the activation sigma and the map that makes the layer input x admissible,
- the solver (by name, see :mod:`pcdeq.solver`).

:class:`PcDEQLinear` and :class:`PcDEQConv2d` are the paper's layers; both take the
pre-activation u of the preceding layer and form the input themselves (pcDEQ-1:
x = softplus(u, beta=5) > 0; pcDEQ-2: x = relu(u) >= 0), so the theory's input condition
holds by construction.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .hparams import check_variant
from .solver import SolverStats, implicit_fixed_point

ACTIVATION_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu6": F.relu6,
    "tanh": torch.tanh,
    "softsign": F.softsign,
    "sigmoid": torch.sigmoid,
}

SOFTPLUS_BETA = 5.0  # the authors' code


def pcdeq1_input(u: Tensor) -> Tensor:
    """pcDEQ-1 input map: strictly positive x = softplus(u, beta=5)."""
    return F.softplus(u, beta=SOFTPLUS_BETA)


def pcdeq2_input(u: Tensor) -> Tensor:
    """pcDEQ-2 input map: nonnegative x = relu(u)."""
    return F.relu(u)


INPUT_MAPS: dict[int, Callable[[Tensor], Tensor]] = {1: pcdeq1_input, 2: pcdeq2_input}


class NonnegativeWeightNorm(nn.Module):
    """W = g * v / ||v||_row with v, g >= 0 (weight normalization, dim=0).

    Nonnegativity is kept by :meth:`project_`, to be called after every optimizer step.

    Args:
        shape: shape of W, e.g. (n, n) or (C, C, 3, 3); rows are ``shape[0]``.
        init_scale: v ~ Uniform[0, 1) * init_scale / sqrt(shape[0] + shape[1]) (the
            authors' code uses sqrt(1e-4)); g starts at ||v||_row so that W = v.
    """

    def __init__(self, shape: tuple[int, ...], init_scale: float = math.sqrt(1e-4)) -> None:
        super().__init__()
        v = torch.rand(shape) * init_scale / math.sqrt(shape[0] + shape[1])
        self.v = nn.Parameter(v)
        self.g = nn.Parameter(self._row_norm(v).detach().clone())

    @staticmethod
    def _row_norm(v: Tensor) -> Tensor:
        return torch.linalg.vector_norm(v.flatten(1), dim=1).view(-1, *([1] * (v.dim() - 1)))

    def forward(self) -> Tensor:
        """The effective W (computed once per layer call, never inside the solver loop)."""
        return self.g * self.v / self._row_norm(self.v)

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp v and g at 0 (both: clamping only v would let W go negative).

        A row of v that the clamp leaves all zero would make W undefined (0/0); it is reset
        to a uniform direction with gain 0, so W's row stays 0 and can regrow through g.
        """
        self.v.clamp_(min=0)
        self.g.clamp_(min=0)
        dead = self.v.flatten(1).amax(dim=1) == 0
        if dead.any():
            self.v[dead] = 1.0
            self.g[dead] = 0.0


class DEQLayer(nn.Module):
    """z* = sigma(op(W, z*) + x) with x = input_map(u), solved by a named solver.

    Args:
        weight: a module whose call returns W and that may define ``project_()``.
        op: how W acts on z (``F.linear`` or a 3x3 same-padding convolution).
        activation: key of :data:`ACTIVATION_FNS`.
        input_map: maps the preceding pre-activation u to the layer input x.
        solver, tol, max_iter: the fixed-point solver and its stopping rule.

    After each call, ``last_fwd_stats`` holds the forward solve's :class:`SolverStats`, and
    after each backward pass ``last_bwd_stats`` holds the adjoint solve's.
    """

    def __init__(self, weight: nn.Module, op: Callable[[Tensor, Tensor], Tensor], activation: str,
                 input_map: Callable[[Tensor], Tensor] | None = None, *,
                 solver: str = "fixed_point", tol: float = 1e-4, max_iter: int = 200) -> None:
        super().__init__()
        if activation.lower() not in ACTIVATION_FNS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATION_FNS)}")
        self.weight = weight
        self.op = op
        self.activation = activation.lower()
        self.sigma = ACTIVATION_FNS[self.activation]
        self.input_map = input_map if input_map is not None else _identity
        self.solver, self.tol, self.max_iter = solver, tol, max_iter
        self.last_fwd_stats: SolverStats | None = None
        self._bwd_stats: list[SolverStats] = []

    @property
    def last_bwd_stats(self) -> SolverStats | None:
        return self._bwd_stats[-1] if self._bwd_stats else None

    @property
    def last_fwd_iters(self) -> int | None:
        """Forward iterations of the last call."""
        return self.last_fwd_stats.iters if self.last_fwd_stats else None

    @property
    def last_bwd_iters(self) -> int | None:
        """Backward (adjoint) iterations of the last backward pass."""
        return self.last_bwd_stats.iters if self.last_bwd_stats else None

    def effective_weight(self) -> Tensor:
        return self.weight()

    def project_(self) -> None:
        """Apply the weight constraint (call after every optimizer step)."""
        if hasattr(self.weight, "project_"):
            self.weight.project_()

    def inputs(self, u: Tensor) -> Tensor:
        """The layer input x = input_map(u)."""
        return self.input_map(u)

    def forward(self, u: Tensor) -> Tensor:
        x = self.input_map(u)
        W = self.weight()
        op, sigma = self.op, self.sigma

        def g(z: Tensor) -> Tensor:
            return sigma(op(W, z) + x)

        self._bwd_stats = []
        z, self.last_fwd_stats = implicit_fixed_point(
            g, torch.zeros_like(x), solver=self.solver, tol=self.tol, max_iter=self.max_iter,
            backward_stats=self._bwd_stats)
        return z

    def extra_repr(self) -> str:
        return f"activation={self.activation}, solver={self.solver}, tol={self.tol}, max_iter={self.max_iter}"


def _identity(u: Tensor) -> Tensor:
    return u


def _linear(W: Tensor, z: Tensor) -> Tensor:
    return F.linear(z, W)


def _conv3x3(W: Tensor, z: Tensor) -> Tensor:
    return F.conv2d(z, W, padding=1)


class PcDEQ(DEQLayer):
    """A pcDEQ layer: nonnegative weight-normalized W and a variant-admissible input.

    Args:
        shape: shape of W.
        op: how W acts on z.
        variant: 1 (ReLU6, tanh or softsign; x = softplus(u, beta=5)) or 2 (sigmoid; x = relu(u)).
        activation: the activation's name; pairings outside Lemma 4.2 raise ``ConfigError``.
        **solver_kw: ``solver``, ``tol``, ``max_iter``.
    """

    def __init__(self, shape: tuple[int, ...], op: Callable[[Tensor, Tensor], Tensor],
                 variant: int, activation: str, **solver_kw) -> None:
        check_variant(variant, activation)
        super().__init__(NonnegativeWeightNorm(shape), op, activation, INPUT_MAPS[variant], **solver_kw)
        self.variant = variant


class PcDEQLinear(PcDEQ):
    """pcDEQ layer on vectors: z* = sigma(W z* + x), W in R^{n x n}_+.  (B, n) -> (B, n)."""

    def __init__(self, features: int, variant: int = 1, activation: str = "relu6", **solver_kw) -> None:
        super().__init__((features, features), _linear, variant, activation, **solver_kw)


class PcDEQConv2d(PcDEQ):
    """pcDEQ layer on feature maps, W a nonnegative 3x3 convolution.  (B, C, H, W) -> same."""

    def __init__(self, channels: int, variant: int = 1, activation: str = "relu6", **solver_kw) -> None:
        super().__init__((channels, channels, 3, 3), _conv3x3, variant, activation, **solver_kw)
