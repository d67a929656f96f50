"""Every activation the project knows, and every fact about it, in one table.

The DEQ layers take the function in three forms (out of place, in place, its VJP); the
theory, the claims and the reports take the facts: the supremum, the Lipschitz constant,
the value at 0 and which pcDEQ variant it belongs to (Lemma 4.2: pcDEQ-1 needs a nonnegative
concave activation with sigma(0) = 0 on R+, pcDEQ-2 a positive concave one). ``relu`` (the
baselines' activation) and ``softplus`` (a theory counter-example) are here too, with the
reason they are outside pcDEQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .errors import ConfigError

# y -> y * sigma'(u), built from the pre-activation u and the output s = sigma(u) of the step
# that attaches z* to the graph; applied once per adjoint iteration.
ActivationVJP = Callable[[Tensor], Tensor]


def _softsign_(u: Tensor, scratch: Tensor | None = None) -> Tensor:
    # F.softsign's ops, in place; the denominator in a buffer the caller keeps across iterations
    return u.div_(torch.abs(u, out=scratch).add_(1) if scratch is not None else u.abs().add_(1))


class _SoftsignStep(torch.autograd.Function):
    """F.softsign whose backward gives autograd's bits in fewer memory passes (first order only).

    Autograd differentiates u / b with b = |u| + 1 as three nodes (div, add, abs: eight passes
    over a conv batch, two of them buffers kept for it); this computes the same operations,
    ``grad / b + (-grad * ((u / b) / b)) * sgn(u)`` (``div_tensor_self_backward``,
    ``div_tensor_other_backward``, ``abs``'s ``sgn``; u / b is the saved output), chunk by chunk
    in cache. Every operation is correctly rounded or exact, so the gradient is bit-identical.
    """

    @staticmethod
    def forward(ctx, u: Tensor) -> Tensor:
        s = F.softsign(u)
        ctx.save_for_backward(u, s)
        return s

    @staticmethod
    @once_differentiable  # chunks are written with out=: no graph through this backward
    def backward(ctx, grad: Tensor) -> Tensor:
        u, s = ctx.saved_tensors
        out = torch.empty_like(u)
        flat = [storage_order(t) for t in (out, u, s, grad)]
        if (u.device.type == "cpu" and all(f is not None for f in flat)
                and grad.stride() == u.stride() == s.stride() == out.stride()):
            o_f, u_f, s_f, g_f = flat
            for a in range(0, u_f.numel(), CHUNK):
                uc, sc, gc = u_f[a:a + CHUNK], s_f[a:a + CHUNK], g_f[a:a + CHUNK]
                b = uc.abs().add_(1)
                t = gc.neg().mul_(sc.div(b)).mul_(uc.sgn())  # autograd's operand order (NaN bits)
                torch.div(gc, b, out=o_f[a:a + CHUNK]).add_(t)
            return out
        b = u.abs() + 1
        return grad / b + (-grad * (s / b)) * u.sgn()


def _softsign_step(u: Tensor) -> Tensor:
    # only where chunking pays (a GPU gains nothing from it: autograd's own nodes there)
    return _SoftsignStep.apply(u) if u.device.type == "cpu" else F.softsign(u)


def _tanh(u: Tensor) -> Tensor:
    # On CPU tanh as 2 sigmoid(2u) - 1: torch.tanh's vector kernel takes 4.0 ms on a 64 x 82 x
    # 28 x 28 conv batch against 0.8 ms for these passes (2 idle AMD EPYC cores), and a tanh SC
    # step runs it 8 times. 2u and 2q are exact and 2q - 1 rounded once (one fused pass), so the
    # value is within 1.8e-7 of torch.tanh (measured); elsewhere torch.tanh, one fast pass.
    if u.device.type != "cpu":
        return torch.tanh(u)
    return torch.add(u.new_full((), -1.0), torch.sigmoid(u * 2), alpha=2)


def _tanh_(u: Tensor, scratch: Tensor | None = None) -> Tensor:
    # _tanh's kernels in place, so the same bits
    if u.device.type != "cpu":
        return u.tanh_()
    return torch.add(u.new_full((), -1.0), u.mul_(2).sigmoid_(), alpha=2, out=u)


def _tanh_derivative(u: Tensor) -> Tensor:
    # tanh'(u) = 4 sigmoid(2u) sigmoid(-2u), accurate to a few ulp everywhere; autograd's
    # 4 q (1 - q) of _tanh (q = sigmoid(2u)) loses digits to 1 - q as q -> 1 (1e-6 at u = 3.6)
    return torch.sigmoid(u * 2).mul_(torch.sigmoid(u * -2)).mul_(4)


class _TanhStep(torch.autograd.Function):
    """_tanh with grad for the step that attaches z* (CPU), its gradient ``grad * tanh'(u)`` with
    the derivative of :func:`_tanh_derivative`: the bits of the layer's VJP (first order only)."""

    @staticmethod
    def forward(ctx, u: Tensor) -> Tensor:
        ctx.save_for_backward(u)
        return _tanh(u)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        (u,) = ctx.saved_tensors
        return grad * _tanh_derivative(u)


def _tanh_step(u: Tensor) -> Tensor:
    return _TanhStep.apply(u) if u.device.type == "cpu" else torch.tanh(u)


def _tanh_vjp(u: Tensor, s: Tensor) -> ActivationVJP:
    if u.device.type != "cpu":
        return lambda y: torch.ops.aten.tanh_backward(y, s)
    d = _tanh_derivative(u)  # once per backward pass
    return lambda y: y * d


def _inplace(fn: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
    return lambda u, scratch=None: fn(u)


def _softsign_vjp(u: Tensor, s: Tensor) -> ActivationVJP:
    d = (u.abs() + 1).pow_(-2)  # softsign'(u) = 1 / (1 + |u|)^2, once per backward pass
    return lambda y: y * d


# Floats per chunk in add_and_apply_ (1 MiB): u's, x's and the scratch's chunks stay in a core's
# L2 cache (1 MiB on this project's machine) while the add and sigma's passes run over them.
CHUNK = 1 << 18


def storage_order(t: Tensor) -> Tensor | None:
    # t as a 1-D view in memory order, for the two layouts the layers produce
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).view(-1)
    return None


@dataclass(frozen=True)
class Activation:
    """An activation: the forms a DEQ layer needs and the facts the theory needs.

    Attributes:
        name: the spelling of method names (``ReLU6``, ``Sigmoid``).
        pretty: the spelling of the theory's text (``tanh``, ``softsign``).
        fn: sigma, out of place (used with grad).
        fn_: sigma in place on a buffer the caller owns (the forward solve, without grad):
            the same kernels as ``fn``, so the same bits, without a fresh buffer per iteration;
            ``fn_(u, scratch)`` may use ``scratch`` (u's shape) for an intermediate result.
            None for an activation no DEQ layer takes.
        vjp: (u, s) -> (y -> y * sigma'(u)). For ReLU6 and sigmoid the kernels autograd runs
            for ``fn`` (same bits as a vector-Jacobian product by autograd); softsign's and
            tanh's have the bits of autograd through ``fn_step``.
        needs_scratch: ``fn_`` uses the scratch buffer (softsign's denominator).
        fn_step: sigma with grad for the step that attaches z* to the graph, where it differs
            from ``fn`` (softsign: the same bits, a backward in fewer passes; tanh on CPU: the
            same value, the accurate derivative of ``vjp``); None: ``fn``. First order only
            (the Jacobian regularizer differentiates ``fn`` twice).
        exact: ``fn_`` is several passes of correctly rounded IEEE operations only (softsign:
            |u|, + 1, division; no libm approximation, whose vector and scalar kernels may
            differ in the last bit), so it gives the same bits however the tensor is split and
            :func:`add_and_apply_` runs it chunk by chunk in cache (ReLU6, one exact pass, gains
            nothing from it: measured, 2.3 ms either way on a conv batch).
        sup: sup of sigma (None: unbounded).
        lipschitz: Lip(sigma): Banach's rate for z -> sigma(Wz + x) is lipschitz * ||W||_2.
        variant: the pcDEQ variant whose theorem covers it (Lemma 4.2), None outside pcDEQ.
        outside: why it is outside pcDEQ (None for pcDEQ's activations).
    """

    name: str
    pretty: str
    fn: Callable[[Tensor], Tensor]
    fn_: Callable[..., Tensor] | None
    vjp: Callable[[Tensor, Tensor], ActivationVJP] | None
    sup: float | None
    lipschitz: float
    variant: int | None
    outside: str | None = None
    needs_scratch: bool = False
    exact: bool = False
    fn_step: Callable[[Tensor], Tensor] | None = None

    @property
    def in_layers(self) -> bool:
        """Whether a DEQ layer can use it (it has the in-place form and the VJP)."""
        return self.fn_ is not None


def add_and_apply_(act: Activation, u: Tensor, x: Tensor, scratch: list[Tensor]) -> Tensor:
    """sigma(u + x) in place on u: the fixed-point map's last step after the operator.

    On CPU, for an ``exact`` activation on a tensor larger than :data:`CHUNK` (a conv layer's
    batch) with x laid out like u, the add and sigma run chunk by chunk, so that each chunk's
    passes (softsign: add, |u|, + 1, division) stream from cache instead of memory: a third
    less time on a 64 x 82 x 28 x 28 batch, the same bits (every operation is elementwise and
    correctly rounded). Otherwise two whole-tensor passes, as before.

    Args:
        act: the layer's activation (``act.fn_`` not None).
        u: the operator's output op(W, z), a fresh tensor the map owns.
        x: the layer input, u's shape.
        scratch: the solve's buffer list (empty at the first call; ``act.needs_scratch`` keeps
            one buffer there for the whole solve).

    Returns:
        u, now sigma(u + x).
    """
    if (act.exact and u.device.type == "cpu" and u.numel() > CHUNK and x.shape == u.shape
            and x.stride() == u.stride()):
        uf, xf = storage_order(u), storage_order(x)
        if uf is not None and xf is not None:
            buf = _scratch(act, scratch, u, chunked=True)
            for a in range(0, uf.numel(), CHUNK):
                c = uf[a:a + CHUNK].add_(xf[a:a + CHUNK])
                act.fn_(c, None if buf is None else buf[:c.numel()])
            return u
    u.add_(x)
    return act.fn_(u, _scratch(act, scratch, u, chunked=False))


def _scratch(act: Activation, scratch: list[Tensor], u: Tensor, *, chunked: bool) -> Tensor | None:
    # the solve's one buffer for act.fn_: a (CHUNK,) one for the chunked path, u's shape and
    # layout otherwise; made anew only if this call needs another one
    if not act.needs_scratch:
        return None
    ok = scratch and scratch[0].dtype == u.dtype and scratch[0].device == u.device and (
        scratch[0].shape == (CHUNK,) if chunked else scratch[0].stride() == u.stride()
        and scratch[0].shape == u.shape)
    if not ok:
        scratch[:] = [u.new_empty(CHUNK) if chunked else torch.empty_like(u)]
    return scratch[0]


ACTIVATIONS_: dict[str, Activation] = {a.name.lower(): a for a in (
    Activation("ReLU6", "ReLU6", F.relu6, _inplace(lambda u: F.relu6(u, inplace=True)),
               lambda u, s: lambda y: torch.ops.aten.hardtanh_backward(y, u, 0.0, 6.0),
               sup=6.0, lipschitz=1.0, variant=1),
    Activation("Tanh", "tanh", _tanh, _tanh_, _tanh_vjp, sup=1.0, lipschitz=1.0, variant=1,
               fn_step=_tanh_step),
    Activation("Softsign", "softsign", F.softsign, _softsign_, _softsign_vjp,
               sup=1.0, lipschitz=1.0, variant=1, needs_scratch=True, exact=True,
               fn_step=_softsign_step),
    Activation("Sigmoid", "sigmoid", torch.sigmoid, _inplace(torch.sigmoid_),
               lambda u, s: lambda y: torch.ops.aten.sigmoid_backward(y, s),
               sup=1.0, lipschitz=0.25, variant=2),
    Activation("ReLU", "ReLU", F.relu, _inplace(torch.relu_),
               lambda u, s: lambda y: torch.ops.aten.threshold_backward(y, s, 0),
               sup=None, lipschitz=1.0, variant=None,
               outside="unbounded, so the asymptotic mapping z -> Wz is not 0"),
    Activation("Softplus", "softplus", F.softplus, None, None, sup=None, lipschitz=1.0,
               variant=None, outside="convex and unbounded, not concave"),
)}

# The paper's four (Tables 1-3 order), then the baselines' ReLU: the activations of method names.
ACTIVATIONS: tuple[str, ...] = tuple(a.name for a in ACTIVATIONS_.values() if a.variant)
ALL_ACTIVATIONS: tuple[str, ...] = tuple(a.name for a in ACTIVATIONS_.values() if a.in_layers)
# What the harness DEQs (DEQ, DEQ-JR, LipDEQ) take: the baselines' ReLU, then the paper's four.
HARNESS_ACTIVATIONS: tuple[str, ...] = ("ReLU",) + ACTIVATIONS
# Name -> sigma, for the activations a DEQ layer can take.
ACTIVATION_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    k: a.fn for k, a in ACTIVATIONS_.items() if a.in_layers}


def activation(name: str) -> Activation:
    """The activation called ``name`` (case-insensitive).

    Raises:
        ConfigError: an activation this table does not hold; the message lists those it does.
    """
    try:
        return ACTIVATIONS_[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS_)}") from None


def lipschitz(name: str) -> float:
    """Lip(sigma) of a known activation, inf for an unknown one (no contraction bound)."""
    a = ACTIVATIONS_.get(name.lower())
    return a.lipschitz if a is not None else math.inf


def check_variant(variant: int, activation: str) -> None:
    """Refuse activation/variant pairings outside the theory (Lemma 4.2).

    Raises:
        ConfigError: pcDEQ-1 with a non nonnegative-concave activation, or pcDEQ-2 with
            anything but sigmoid.
    """
    if variant not in (1, 2):
        raise ConfigError(f"unknown pcDEQ variant {variant}; use 1 or 2")
    a = ACTIVATIONS_.get(activation.lower())
    if a is not None and a.variant == variant:
        return
    if variant == 2:
        raise ConfigError(
            f"pcDEQ-2 needs the sigmoid activation, got {activation!r}: pcDEQ-2 feeds a "
            "nonnegative (possibly zero) input, and Lemma 4.2 then needs a *positive* concave "
            "activation; ReLU6, tanh and softsign are 0 at 0. Use pcDEQ-1 for those.")
    raise ConfigError(
        f"pcDEQ-1 takes ReLU6, Tanh or Softsign, got {activation!r}: Lemma 4.2 needs a "
        "nonnegative concave activation on R+ with sigma(0) = 0 for pcDEQ-1; sigmoid is "
        "positive at 0 and belongs to pcDEQ-2 (pcDEQ-2-<arch>-Sigmoid).")


def pcdeq_activations(variant: int) -> tuple[str, ...]:
    """The activations (method-name spelling) the pcDEQ-``variant`` theorem covers."""
    return tuple(a.name for a in ACTIVATIONS_.values() if a.variant == variant)
