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
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import (  # noqa: F401 (re-exported)
    ACTIVATION_FNS, ACTIVATIONS_, CHUNK, Activation, add_and_apply_, check_variant, storage_order)
from .errors import ConfigError
from .solver import Attach, SolverStats, implicit_fixed_point

# The baselines' defaults, one home (the families, the layers and the CLI read them).
# LipDEQ: the Lipschitz bound c of ||W||_2 <= c < 1 (--lip-bound).
LIP_BOUND = 0.9
# DEQ-JR: the synthetic-task setting of Bai et al. 2021 (Table 4: p = 0.4, gamma in {0,1,2,4});
# their CIFAR-10 MDEQ used gamma 0.5, p 0.05 over 10^5 steps, too few draws for short runs.
JR_WEIGHT, JR_PROB = 1.0, 0.4


# ------------------------------------------------------------------ operators
@dataclass(frozen=True)
class Operator:
    """How W acts on z, and its transpose (the adjoint iteration's J^T = W^T diag(sigma'))."""

    apply: Callable[[Tensor, Tensor], Tensor]  # (W, z) -> W z
    transpose: Callable[[Tensor, Tensor, Tensor], Tensor]  # (W, y, z) -> W^T y; z: any point

    def __call__(self, W: Tensor, z: Tensor) -> Tensor:
        return self.apply(W, z)


def _linear(W: Tensor, z: Tensor) -> Tensor:
    return F.linear(z, W)


def _linear_t(W: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return y.mm(W)  # what autograd computes for F.linear's input gradient


def _conv3x3(W: Tensor, z: Tensor) -> Tensor:
    return F.conv2d(z, W, padding=1)


def _conv3x3_t(W: Tensor, y: Tensor, z: Tensor) -> Tensor:
    # The kernel autograd runs for the input gradient of _conv3x3 (same bits, same layout).
    return torch.ops.aten.convolution_backward(y, z, W, None, [1, 1], [1, 1], [1, 1], False,
                                               [0, 0], 1, [True, False, False])[0]


LINEAR = Operator(_linear, _linear_t)
CONV3X3 = Operator(_conv3x3, _conv3x3_t)


SOFTPLUS_BETA = 5.0  # the authors' code
SOFTPLUS_THRESHOLD = 20.0  # F.softplus's: beta u above it gives u itself


def _softplus_into(u: Tensor, out: Tensor, e: Tensor, w: Tensor) -> Tensor:
    # softplus(u) = relu(u) + log1p(e) / beta, e = exp(-beta |u|), without torch.log1p: with
    # w = 1 + e rounded, log1p(e) = log(w) - (w - 1 - e) / w to second order in w's rounding
    # error (w - 1 is exact), and e itself where w == 1. Elementwise, into out (e, w: buffers)
    torch.abs(u, out=e).mul_(-SOFTPLUS_BETA).exp_()
    torch.add(e, 1, out=w)
    torch.sub(w, 1, out=out).sub_(e).div_(w)
    w.log_().sub_(out).div_(SOFTPLUS_BETA)
    return torch.clamp_min(u, 0, out=out).add_(w)


class _Softplus(torch.autograd.Function):
    """softplus(u, beta=5) on CPU without torch.log1p, with F.softplus's gradient bits.

    torch.log1p / expm1 take 19.5 ms on a 64 x 82 x 28 x 28 conv batch on this project's
    machine (2 AMD EPYC cores), torch.log 1.5 ms, and F.softplus runs log1p: 21 ms. This
    formula (``_softplus_into``), chunk by chunk in cache like :func:`add_and_apply_`, takes 5 ms.
    Its value is within a few ulp of F.softplus (as accurate against float64: measured), 0
    where F.softplus is 0 (exp underflows), u itself above F.softplus's threshold (e / beta
    underflows there). exp, log and the exact operations give the same bits however the tensor
    is split (tested), so the chunked and whole-tensor paths agree. The backward is
    F.softplus's kernel, so the gradient is autograd's (and differentiable again).
    """

    @staticmethod
    def forward(ctx, u: Tensor) -> Tensor:
        ctx.save_for_backward(u)
        out = torch.empty_like(u)  # u's strides (dense u): the same memory order
        uf = storage_order(u)
        if uf is None or u.numel() <= CHUNK:
            return _softplus_into(u, out, torch.empty_like(u), torch.empty_like(u))
        of = storage_order(out)
        e, w = u.new_empty(CHUNK), u.new_empty(CHUNK)
        for a in range(0, uf.numel(), CHUNK):
            n = min(CHUNK, uf.numel() - a)
            _softplus_into(uf[a:a + n], of[a:a + n], e[:n], w[:n])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (u,) = ctx.saved_tensors
        return torch.ops.aten.softplus_backward(grad, u, SOFTPLUS_BETA, SOFTPLUS_THRESHOLD)


def pcdeq1_input(u: Tensor) -> Tensor:
    """pcDEQ-1 input map: strictly positive x = softplus(u, beta=5)."""
    if u.device.type == "cpu":
        return _Softplus.apply(u)
    return F.softplus(u, beta=SOFTPLUS_BETA, threshold=SOFTPLUS_THRESHOLD)


def pcdeq2_input(u: Tensor) -> Tensor:
    """pcDEQ-2 input map: nonnegative x = relu(u)."""
    return F.relu(u)


INPUT_MAPS: dict[int, Callable[[Tensor], Tensor]] = {1: pcdeq1_input, 2: pcdeq2_input}


class WeightNorm(nn.Module):
    """W = g * v / ||v||_row (weight normalization, dim=0; Salimans & Kingma 2016), unconstrained.

    The standard DEQ's parametrization (Bai et al. use weight norm too), with ordinary
    initialization: v like ``nn.Linear`` / ``nn.Conv2d`` (kaiming-uniform, bound
    1/sqrt(fan_in)), g = ||v||_row so that W = v at the start.

    Args:
        shape: shape of W, e.g. (n, n) or (C, C, 3, 3); rows are ``shape[0]``.
        v: the initial direction (default: the ordinary initialization above).
    """

    def __init__(self, shape: tuple[int, ...], v: Tensor | None = None) -> None:
        super().__init__()
        if v is None:
            fan_in = math.prod(shape[1:])
            v = (torch.rand(shape) * 2 - 1) / math.sqrt(fan_in)
        self.v = nn.Parameter(v)
        self.g = nn.Parameter(self._row_norm(v).detach().clone())

    @staticmethod
    def _row_norm(v: Tensor) -> Tensor:
        return torch.linalg.vector_norm(v.flatten(1), dim=1).view(-1, *([1] * (v.dim() - 1)))

    def forward(self) -> Tensor:
        """The effective W (computed once per layer call, never inside the solver loop)."""
        return self.g * self.v / self._row_norm(self.v)

    def project_(self) -> None:
        """No constraint: W is free (the standard DEQ)."""

    def operator_norm(self) -> float | None:
        """Not computed every epoch: no constraint needs it (a conv layer's norm is an FFT over
        the feature-map torus; the claims compute it from the saved weights)."""
        return None


class NonnegativeWeightNorm(WeightNorm):
    """W = g * v / ||v||_row with v, g >= 0 (pcDEQ's weight).

    Nonnegativity is kept by :meth:`project_`, to be called after every optimizer step.

    Args:
        shape: shape of W, e.g. (n, n) or (C, C, 3, 3); rows are ``shape[0]``.
        init_scale: v ~ Uniform[0, 1) * init_scale / sqrt(shape[0] + shape[1]) (the
            authors' code uses sqrt(1e-4)); g starts at ||v||_row so that W = v.
    """

    def __init__(self, shape: tuple[int, ...], init_scale: float = math.sqrt(1e-4)) -> None:
        super().__init__(shape, torch.rand(shape) * init_scale / math.sqrt(shape[0] + shape[1]))

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


class LipschitzWeight(nn.Module):
    """W with operator norm ||W||_2 <= c < 1, kept by rescaling after every optimizer step.

    With a 1-Lipschitz activation, z -> sigma(op(W, z) + x) is then a c-contraction, and so is
    the adjoint map y -> J^T y + g: Banach gives a unique fixed point and geometric convergence
    of both passes (the contraction route to stable DEQs). The norm is that of the operator
    z -> op(W, z), not of the reshaped kernel (``torch.nn.utils.spectral_norm``'s), and it is
    an upper bound computed exactly, so the bound holds however the spectrum looks:

    * vectors (``conv=False``): the largest singular value of W;
    * 3x3 same-padding convolutions on H x W maps: the zero-padded convolution is a
      compression of the circular convolution on the (H+2) x (W+2) torus (embed with a zero
      border, convolve circularly, read the interior), whose norm the 2-D DFT gives exactly as
      the largest singular value of the C x C kernel symbol over the torus's frequencies.

    Power iteration (``spectral_norm``'s way) approaches the norm from below and stalls where
    the top singular values nearly coincide, as they do for convolutions (measured: 0.9000 vs
    0.8998 on a trained 13x13 layer, the estimate 4e-5 short after 3,000 iterations), which
    would leave W above c.

    Args:
        shape: shape of W, initialized like ``nn.Linear`` / ``nn.Conv2d``, then projected.
        size: (H, W) of the feature maps for a convolution; None for vectors.
        bound: c, 0 < c < 1.
    """

    def __init__(self, shape: tuple[int, ...], size: tuple[int, int] | None = None,
                 bound: float = LIP_BOUND) -> None:
        super().__init__()
        check_lip_bound(bound)
        self.bound, self.size = bound, size
        fan_in = math.prod(shape[1:])
        self.V = nn.Parameter((torch.rand(shape) * 2 - 1) / math.sqrt(fan_in))
        self.project_()

    def forward(self) -> Tensor:
        return self.V

    @torch.no_grad()
    def operator_norm(self) -> float:
        """An exact upper bound of ||W||_2 (exact for vectors; see the class docstring)."""
        W = self.V.detach().float()
        if self.size is None:
            return float(torch.linalg.matrix_norm(W, ord=2))
        return conv_operator_norm(W, self.size)

    @torch.no_grad()
    def project_(self) -> None:
        """Rescale W to ||W||_2 <= c; call after every optimizer step."""
        s = self.operator_norm()
        if s > self.bound:
            self.V.mul_(self.bound / s)


def conv_operator_norm(W: Tensor, size: tuple[int, int]) -> float:
    """An exact upper bound of the norm of z -> conv2d(z, W, padding=1) on ``size`` maps.

    The zero-padded convolution is a compression of the circular one on the (H+2) x (W+2)
    torus, whose norm is the largest singular value of the kernel's symbol over the torus's
    frequencies (see :class:`LipschitzWeight`). Computed in W's dtype.
    """
    h, w = size[0] + 2, size[1] + 2
    k = W.new_zeros(*W.shape[:2], h, w)
    k[:, :, :W.shape[2], :W.shape[3]] = W  # a circular shift of the centred kernel: same norm
    symbol = torch.fft.rfft2(k).permute(2, 3, 0, 1)  # (h, w//2+1, C_out, C_in); the other half is conjugate
    return float(torch.linalg.matrix_norm(symbol, ord=2).max())


def check_lip_bound(c: float) -> None:
    """Refuse a Lipschitz bound that gives no contraction.

    Raises:
        ConfigError: unless 0 < c < 1.
    """
    if not 0 < c < 1:
        raise ConfigError(f"LipDEQ needs a Lipschitz bound 0 < c < 1 for a contraction (Banach), "
                          f"got c = {c}; e.g. --lip-bound {LIP_BOUND} (the default) or 0.5")


def check_jr(weight: float | None, prob: float | None) -> None:
    """Refuse a Jacobian-regularization weight or probability no run can use (None: not set).

    Raises:
        ConfigError: a weight not finite and >= 0 (nan / inf would train, then diverge), or a
            probability outside [0, 1].
    """
    if weight is not None and not 0 <= weight < math.inf:
        raise ConfigError(f"--jr-weight must be a finite number >= 0, got {weight}")
    if prob is not None and not 0 <= prob <= 1:
        raise ConfigError(f"--jr-prob must be in [0, 1], got {prob}")


class JacobianRegularizer(nn.Module):
    """Jacobian regularization (Bai, Koltun & Kolter 2021): gamma * ||J_f(z*)||_F^2 / d.

    Hutchinson's estimate with one Gaussian draw per step, ||eps^T J||^2 / numel(z*) (the
    batch mean of ||J||_F^2 / d), added to the loss with probability ``prob`` per training
    step (the Bernoulli draw uses torch's global generator, which checkpoints save). On the
    other steps the estimate is still computed, without a graph, so that it is recorded
    every epoch.

    Args:
        weight: gamma.
        prob: p, the probability that a training step is regularized.
    """

    def __init__(self, weight: float = JR_WEIGHT, prob: float = JR_PROB) -> None:
        super().__init__()
        check_jr(weight, prob)
        self.weight, self.prob = weight, prob

    @staticmethod
    def estimate(f: Callable[[Tensor], Tensor], z: Tensor, create_graph: bool) -> Tensor:
        """||eps^T J_f(z)||^2 / numel(z), eps ~ N(0, I): unbiased for the batch mean of
        ||J_f||_F^2 / d."""
        z = z.detach().requires_grad_()
        # On the run's device, as the reference's jac_loss_estimate: a z-sized draw on the CPU
        # would cost a host-to-device copy every step, so a CUDA run's probe vectors (not its
        # apply decisions, below) differ from the CPU run's, like another seed's.
        eps = torch.randn_like(z)
        with torch.enable_grad():
            vjp = torch.autograd.grad(f(z), z, eps, create_graph=create_graph)[0]
        return vjp.pow(2).sum() / z.numel()

    def forward(self, f: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor | None, float]:
        """Returns (the loss term or None on an unregularized step, the estimate)."""
        # The draw is on the CPU generator whatever the device or default device (a CUDA
        # run draws the same sequence as a CPU run; the checkpoint saves that generator).
        apply = bool(torch.rand((), device="cpu") < self.prob)
        est = self.estimate(f, z, create_graph=apply)
        return (self.weight * est if apply else None), float(est.detach())

    def extra_repr(self) -> str:
        return f"weight={self.weight}, prob={self.prob}"


class SolveStats:
    """What the trainer and the benchmark read from every DEQ layer, whatever its solver:
    ``last_fwd_stats`` (set by each call) and the backward solves' stats, appended to
    ``_bwd_stats`` while the backward pass runs (reset by each call).

    With the other members of :class:`EquilibriumLayer` defaulted here, a layer of any family
    (:class:`DEQLayer`, :class:`~pcdeq.mondeq.MonDEQ`) answers the trainer's questions without
    the trainer probing for attributes.
    """

    last_fwd_stats: SolverStats | None
    _bwd_stats: list[SolverStats]
    tunes_alpha: ClassVar[bool] = False  # monDEQ tunes its Peaceman-Rachford step in training
    aux_loss: Tensor | None = None  # the extra loss term of the last training call
    last_jac_fro2: float | None = None  # the Jacobian regularizer's estimate of the last call

    @property
    def regularized(self) -> bool:
        """Whether training adds the layer's ``aux_loss`` (and records ``last_jac_fro2``)."""
        return False

    def at_step_(self, epoch: int, step: int) -> None:
        """Told before each training step which epoch (from 1) and optimizer step (from 0) it
        is; MDEQ's pretraining depends on it. Nothing for the other layers."""

    def epoch_fields(self, u: Any) -> dict[str, float]:
        """The layer's own record fields, measured once per epoch on the first test batch's
        layer input u (the multiscale families: ``jac_norm``, ``jac_bound``); none here."""
        return {}

    @property
    def last_bwd_stats(self) -> SolverStats | None:
        """Stats of the last backward solve since the last call (None before it)."""
        return self._bwd_stats[-1] if self._bwd_stats else None

    @property
    def last_fwd_iters(self) -> int | None:
        """Forward iterations of the last call."""
        return self.last_fwd_stats.iters if self.last_fwd_stats else None

    @property
    def last_bwd_iters(self) -> int | None:
        """Backward iterations of the last backward pass."""
        return self.last_bwd_stats.iters if self.last_bwd_stats else None


@runtime_checkable
class EquilibriumLayer(Protocol):
    """What the trainer, the benchmark and the claims code may ask of a DEQ layer of any
    method family (a layer is a :class:`SolveStats` plus these).

    Attributes:
        activation: the activation's table key (:data:`pcdeq.activations.ACTIVATIONS_`).
        tunes_alpha: the trainer calls ``tune_alpha_(run)`` where monDEQ's train.py does.
        aux_loss: the extra loss term of the last training call, or None.
        last_jac_fro2: the Jacobian regularizer's estimate of the last call, or None.
        last_fwd_stats, last_bwd_stats: the solves' :class:`~pcdeq.solver.SolverStats`.
    """

    activation: str
    tunes_alpha: bool
    aux_loss: Tensor | None
    last_jac_fro2: float | None

    @property
    def regularized(self) -> bool: ...
    @property
    def last_fwd_stats(self) -> SolverStats | None: ...
    @property
    def last_bwd_stats(self) -> SolverStats | None: ...

    def project_(self) -> None:
        """Apply the weight constraint (after every optimizer step)."""

    def effective_weight(self) -> Tensor | nn.Module:
        """W as the solver sees it (a dense matrix, a kernel, or an operator module)."""

    def inputs(self, u: Tensor) -> Tensor:
        """The layer input x formed from the preceding pre-activation u."""

    def weight_operator_norm(self) -> float | None:
        """||W||_2 where the weight computes it anyway (its constraint needs it), else None."""

    def map(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """The fixed-point map z -> g(z) for the layer input x, detached, in x's dtype."""

    def at_step_(self, epoch: int, step: int) -> None:
        """Told before each training step which epoch and optimizer step it is."""

    def epoch_fields(self, u: Any) -> dict[str, float]:
        """The layer's own record fields, measured on the first test batch's input u."""


class DEQLayer(SolveStats, nn.Module):
    """z* = sigma(op(W, z*) + x) with x = input_map(u), solved by a named solver.

    Args:
        weight: a module whose call returns W, with ``project_()`` (the constraint, applied
            after every optimizer step) and ``operator_norm()`` (||W||_2 or None), as
            :class:`WeightNorm`.
        op: how W acts on z and its transpose (:data:`LINEAR` or :data:`CONV3X3`, a 3x3
            same-padding convolution).
        activation: key of :data:`ACTIVATION_FNS`.
        input_map: maps the preceding pre-activation u to the layer input x.
        solver, tol, max_iter: the fixed-point solver and its stopping rule.
        regularizer: an extra loss term computed at z* in training, e.g.
            :class:`JacobianRegularizer`; its value is left in ``aux_loss`` for the trainer.

    After each call, ``last_fwd_stats`` holds the forward solve's :class:`SolverStats`, and
    after each backward pass ``last_bwd_stats`` holds the adjoint solve's.
    """

    orthant = False  # keep an accelerated solver's iterates in z >= 0 (pcDEQ: True)

    def __init__(self, weight: nn.Module, op: Operator, activation: str,
                 input_map: Callable[[Tensor], Tensor] | None = None, *,
                 solver: str = "fixed_point", tol: float = 1e-4, max_iter: int = 200,
                 regularizer: nn.Module | None = None) -> None:
        super().__init__()
        if activation.lower() not in ACTIVATION_FNS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATION_FNS)}")
        self.weight = weight
        self.op = op
        self.activation = activation.lower()
        self.act = ACTIVATIONS_[self.activation]
        self.sigma = self.act.fn
        self.input_map = input_map if input_map is not None else _identity
        self.solver, self.tol, self.max_iter = solver, tol, max_iter
        self.regularizer = regularizer
        self.last_fwd_stats: SolverStats | None = None
        self._bwd_stats: list[SolverStats] = []

    def effective_weight(self) -> Tensor:
        return self.weight()

    def project_(self) -> None:
        """Apply the weight constraint (call after every optimizer step)."""
        self.weight.project_()

    def weight_operator_norm(self) -> float | None:
        return self.weight.operator_norm()

    @property
    def regularized(self) -> bool:
        return self.regularizer is not None

    def inputs(self, u: Tensor) -> Tensor:
        """The layer input x = input_map(u)."""
        return self.input_map(u)

    def map(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """g(z) = sigma(op(W, z) + x) out of place, W detached and in x's dtype: the layer's
        fixed-point map as the claims and the theory checks iterate it (e.g. in float64)."""
        W, op, sigma = self.effective_weight().detach().to(x.dtype), self.op, self.act.fn
        return lambda z: sigma(op(W, z) + x)

    def maps(self, x: Tensor, W: Tensor) -> tuple[Callable[[Tensor], Tensor], Attach]:
        """The layer's fixed-point map g(z) = sigma(op(W, z) + x), in the two forms the solver
        needs.

        Returns:
            ``g`` for the solve without grad (in place on its own buffers: one fresh tensor
            per iteration, the operator's output), and its :data:`~pcdeq.solver.Attach`: one
            step with grad at z*, and y -> J_g(z*)^T y = op^T(W, sigma'(u*) * y) applied
            directly, the Jacobian taken at z* itself.
        """
        op, act = self.op, self.act
        scratch: list[Tensor] = []  # one intermediate buffer for the whole solve, if needed

        def g(z: Tensor) -> Tensor:
            return add_and_apply_(act, op(W, z), x, scratch)

        def attach(z: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
            u = op(W, z).add_(x)  # in place on the operator's fresh output (autograd allows it)
            s = (act.fn_step or act.fn)(u)
            d_act = act.vjp(u.detach(), s.detach())
            W_, z_ = W.detach(), z.detach()
            return s, lambda y: op.transpose(W_, d_act(y), z_)

        return g, attach

    def forward(self, u: Tensor) -> Tensor:
        x = self.input_map(u)
        W = self.weight()
        g, attach = self.maps(x, W)
        self._bwd_stats = []
        # From z0 = 0 the first iterate is sigma(op(W, 0) + x) = sigma(x) exactly: no operator
        # call (the fixed-point solver counts it as the first evaluation).
        with torch.no_grad():  # an iterate of the solve: no graph (attach makes the one needed)
            f_z0 = self.act.fn(x) if self.solver == "fixed_point" else None
        z0 = torch.zeros_like(x) if f_z0 is None else x.new_zeros(()).expand_as(x)  # no buffer needed
        z, self.last_fwd_stats = implicit_fixed_point(
            g, z0, solver=self.solver, tol=self.tol, max_iter=self.max_iter,
            backward_stats=self._bwd_stats, f_z0=f_z0, attach=attach,
            lower=0.0 if self.orthant else None)
        self.aux_loss = None
        if self.regularizer is not None and self.training and torch.is_grad_enabled():
            op, sigma = self.op, self.sigma
            self.aux_loss, self.last_jac_fro2 = self.regularizer(lambda v: sigma(op(W, v) + x), z)
        return z

    def extra_repr(self) -> str:
        return f"activation={self.activation}, solver={self.solver}, tol={self.tol}, max_iter={self.max_iter}"


def _identity(u: Tensor) -> Tensor:
    return u


class PcDEQ(DEQLayer):
    """A pcDEQ layer: nonnegative weight-normalized W and a variant-admissible input.

    Args:
        shape: shape of W.
        op: how W acts on z.
        variant: 1 (ReLU6, tanh or softsign; x = softplus(u, beta=5)) or 2 (sigmoid; x = relu(u)).
        activation: the activation's name; pairings outside Lemma 4.2 raise ``ConfigError``.
        **solver_kw: ``solver``, ``tol``, ``max_iter``.
    """

    def __init__(self, shape: tuple[int, ...], op: Operator,
                 variant: int, activation: str, **solver_kw) -> None:
        check_variant(variant, activation)
        super().__init__(NonnegativeWeightNorm(shape), op, activation, INPUT_MAPS[variant], **solver_kw)
        self.variant = variant

    # The theorem is about the nonnegative orthant: an accelerated solver (Anderson's mixing
    # weights may be negative, Broyden's steps any sign) is kept in it (pcdeq.solver: lower).
    orthant = True


class PcDEQLinear(PcDEQ):
    """pcDEQ layer on vectors: z* = sigma(W z* + x), W in R^{n x n}_+.  (B, n) -> (B, n)."""

    def __init__(self, features: int, variant: int = 1, activation: str = "relu6", **solver_kw) -> None:
        super().__init__((features, features), LINEAR, variant, activation, **solver_kw)


class PcDEQConv2d(PcDEQ):
    """pcDEQ layer on feature maps, W a nonnegative 3x3 convolution.  (B, C, H, W) -> same."""

    def __init__(self, channels: int, variant: int = 1, activation: str = "relu6", **solver_kw) -> None:
        super().__init__((channels, channels, 3, 3), CONV3X3, variant, activation, **solver_kw)


class DEQLinear(DEQLayer):
    """Standard (unconstrained) DEQ layer on vectors: z* = sigma(W z* + x), W free,
    weight-normalized with ordinary init, x = u (no positivity). (B, n) -> (B, n).

    Nothing guarantees a unique fixed point or convergence: the harness's "standard DEQ".
    Pass ``regularizer=JacobianRegularizer(...)`` for the Jacobian-regularized DEQ.
    """

    def __init__(self, features: int, activation: str = "tanh", **kw) -> None:
        super().__init__(WeightNorm((features, features)), LINEAR, activation, **kw)


class DEQConv2d(DEQLayer):
    """Standard DEQ layer on feature maps, W a free 3x3 convolution. (B, C, H, W) -> same."""

    def __init__(self, channels: int, activation: str = "tanh", **kw) -> None:
        super().__init__(WeightNorm((channels, channels, 3, 3)), CONV3X3, activation, **kw)


class LipDEQLinear(DEQLayer):
    """Lipschitz-constrained DEQ layer on vectors: ||W||_2 <= c < 1 (see :class:`LipschitzWeight`);
    call ``project_()`` after every optimizer step. (B, n) -> (B, n)."""

    def __init__(self, features: int, activation: str = "tanh", bound: float = LIP_BOUND, **kw) -> None:
        super().__init__(LipschitzWeight((features, features), None, bound),
                         LINEAR, activation, **kw)


class LipDEQConv2d(DEQLayer):
    """Lipschitz-constrained DEQ layer on (C, H, W) feature maps: the 3x3 convolution's operator
    norm on H x W maps is kept <= c < 1. (B, C, H, W) -> same.

    Args:
        channels: C.
        size: (H, W) of the feature maps, on which the operator norm is computed.
    """

    def __init__(self, channels: int, size: tuple[int, int], activation: str = "relu",
                 bound: float = LIP_BOUND, **kw) -> None:
        super().__init__(LipschitzWeight((channels, channels, 3, 3), tuple(size), bound),
                         CONV3X3, activation, **kw)
