"""MDEQ, the multiscale deep equilibrium model (Bai, Koltun & Kolter 2020), and the Lipschitz
multiscale DEQ (Sato & Iiduka 2026), as their reference code builds them
(``../shared/spec/multiscale.md`` sections 1-2, file:line citations into locuslab/deq
``MDEQ-Vision/lib/models/mdeq_core.py``, ``mdeq.py`` and iiduka-researches/Lipschitz_mdeq).

The state is one feature map per resolution (branch i = 0..n-1, resolution halving with i);
the equilibrium map f(z; x) is, per branch, a residual block with GroupNorm and variational
dropout into which the input is injected (branch 0 only), then a fusion of all branches (a
plain sum of strided 3x3 convolutions down and 1x1 convolutions + nearest upsampling up), then
a 1x1 convolution with GroupNorm. The solver (Broyden in MDEQ's configs) runs on the
concatenated state; the backward pass is implicit (:func:`pcdeq.solver.implicit_fixed_point`).

:data:`MNIST_MS` is the spec's reduced 1x28x28 configuration (3 branches 28/14/7, channels
[8, 16, 24]: 131,634 parameters); :data:`CIFAR_TINY` is the reference's TINY CIFAR-10 model
(158,890); both counts are checked in the tests. :data:`LIP_MNIST_MS` is the Lipschitz
variant with the reference yaml's values: scaled ReLU 0.4, mean-only GroupNorm with gamma
clipped to [-1, 1], residual alpha 0.5, softmax fusion beta 0.3, and the spectral cap at T = 2,
either as published (one power iteration on the reshaped kernel, lost at the next forward for
the weight-normed convs) or certified (true operator norms, through g): :meth:`MDEQ.project_`,
:meth:`MDEQ.conv_norms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import SolveStats, conv_operator_norm
from .solver import SolverStats, equilibrium_spectral_norm, implicit_fixed_point


@dataclass(frozen=True)
class MDEQConfig:
    """One MDEQ (names as the reference yaml's, lower case).

    Attributes:
        in_channels: image channels.
        channels: C_i per branch, highest resolution first.
        expansion: E, the block's inner width E * C_i.
        groups: G of every GroupNorm in f (the post-fusion GN uses G // 2).
        head_channels: H_i of the classification head's bottlenecks (outputs 4 H_i).
        final_channels: FINAL_CHANSIZE.
        num_classes: classes.
        dropout: variational dropout of the block (one channel mask per forward call).
        wnorm: weight norm on the block convs and the post-fusion 1x1 conv.
        block_gn_affine, fuse_gn_affine, post_gn_affine: GroupNorm affine flags.
        solver, f_thres, b_thres, tol: forward / backward solver and their iteration caps.
        pretrain_steps, num_layers: optimizer steps during which f is unrolled ``num_layers``
            times from z = 0 with ordinary backprop instead of solved.
    """

    in_channels: int = 1
    channels: tuple[int, ...] = (8, 16, 24)
    expansion: int = 5
    groups: int = 4
    head_channels: tuple[int, ...] = (4, 8, 16)
    final_channels: int = 128
    num_classes: int = 10
    dropout: float = 0.25
    wnorm: bool = True
    block_gn_affine: bool = True
    fuse_gn_affine: bool = True
    post_gn_affine: bool = False
    solver: str = "broyden"
    f_thres: int = 18
    b_thres: int = 20
    tol: float = 1e-3
    pretrain_steps: int = 0
    pretrain_epochs: int = 0  # or: the first epochs (the trainer says which epoch it is)
    num_layers: int = 10
    # The Lipschitz multiscale DEQ's changes (spec section 2.1; all off: MDEQ).
    relu_slope: float = 1.0  # ScaledReLU s * relu in f (the stem and stage0 keep slope 1)
    mean_only_gn: bool = False  # GroupNorm without the division by the std (USE_STD_IN_GN false)
    gn_gamma_clip: float = 0.0  # after each step clamp every GN gamma of f to [-c, c] (0: off)
    residual_alpha: float = 0.0  # o <- (1 - a) z + a o before ReLU3 (0: the plain sum)
    fusion_beta: float = 0.0  # y_i = (1 - b) b_i + b sum_j w_ij F_ij(b_j) (0: the plain sum)
    fusion_softmax: bool = True  # w_i. = softmax(-penalty), penalty j - i upwards, 0 downwards
    cap: str = "none"  # spectral cap after each step: "none", "as-published", "certified"
    target_norm: float = 1.0  # T of the cap

    @property
    def branches(self) -> int:
        return len(self.channels)


# The spec's reduced configuration for 1x28x28 inputs, and the reference's CIFAR-10 TINY.
MNIST_MS = MDEQConfig()
CIFAR_TINY = MDEQConfig(in_channels=3, channels=(24, 24), expansion=5, groups=8,
                        head_channels=(8, 16), final_channels=200)
# The Lipschitz multiscale DEQ's CIFAR yaml values (spec section 2.1-2.3) on the reduced model:
# Anderson both ways, no pretraining, dropout 0.3; ``cap`` "as-published" is the reference
# code's construction, "certified" caps the effective weights by their true operator norms.
LIP_MNIST_MS = MDEQConfig(dropout=0.3, solver="anderson", relu_slope=0.4, mean_only_gn=True,
                          gn_gamma_clip=1.0, residual_alpha=0.5, fusion_beta=0.3,
                          cap="as-published", target_norm=2.0)


class ScaledReLU(nn.Module):
    """s * relu(x) (the Lipschitz MDEQ's slope; s = 1: ReLU)."""

    def __init__(self, slope: float = 1.0) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x) if self.slope == 1.0 else self.slope * F.relu(x)


class MeanOnlyGroupNorm(nn.GroupNorm):
    """x minus its group mean, then gamma x + beta: no division by the std (the Lipschitz
    MDEQ's CustomGroupNorm with use_std=False). The centring is an orthogonal projection, so
    its Lipschitz constant is max |gamma| (1 without affine)."""

    def forward(self, x: Tensor) -> Tensor:
        B, C = x.shape[:2]
        g = x.view(B, self.num_groups, -1)
        y = (g - g.mean(dim=2, keepdim=True)).view_as(x)
        if self.affine:
            y = y * self.weight.view(1, C, *([1] * (x.dim() - 2))) + self.bias.view(1, C, *([1] * (x.dim() - 2)))
        return y


def group_norm(groups: int, channels: int, affine: bool, cfg: "MDEQConfig") -> nn.GroupNorm:
    """The GroupNorm of f: standard, or mean-only for the Lipschitz variant."""
    return (MeanOnlyGroupNorm if cfg.mean_only_gn else nn.GroupNorm)(groups, channels, affine=affine)


class WNConv2d(nn.Module):
    """Conv2d with weight norm w = g v / ||v|| per output filter (no bias), its weight computed
    once per forward call by :meth:`reset` (never inside the solver loop), as MDEQ's ``_reset``.
    v keeps PyTorch's default (Kaiming-uniform) initialisation and g = ||v||, so w = v at first
    (the reference's N(0, 0.01) init lands on the derived weight and is overwritten)."""

    def __init__(self, c_in: int, c_out: int, k: int, wnorm: bool = True) -> None:
        super().__init__()
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.v = nn.Parameter(conv.weight.detach().clone())
        self.g = (nn.Parameter(self.v.detach().flatten(1).norm(dim=1).view(-1, 1, 1, 1))
                  if wnorm else None)
        self.padding = k // 2
        self.weight: Tensor | None = None

    def reset(self) -> None:
        v = self.v
        self.weight = v if self.g is None else self.g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, padding=self.padding)


class VariationalDropout2d(nn.Module):
    """One Bernoulli(1 - p) / (1 - p) mask of shape (B, C, 1, 1) per forward call of the model,
    reused by every solver iteration and the backward pass; the identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.mask: Tensor | None = None

    def reset(self, batch: int, channels: int, like: Tensor) -> None:
        """Draw the mask for the next forward call (``like``: device and dtype)."""
        if self.training and self.p > 0:
            keep = torch.bernoulli(torch.full((batch, channels, 1, 1), 1 - self.p,
                                              device=like.device, dtype=like.dtype))
            self.mask = keep / (1 - self.p)
        else:
            self.mask = None

    def forward(self, x: Tensor) -> Tensor:
        return x if self.mask is None else x * self.mask


class Block(nn.Module):
    """The residual block of one branch: b = GN3(relu(GN2(drop(conv2(relu(GN1(conv1 z)))) + x) + z))."""

    def __init__(self, c: int, cfg: MDEQConfig) -> None:
        super().__init__()
        e, g, aff = cfg.expansion * c, cfg.groups, cfg.block_gn_affine
        self.conv1 = WNConv2d(c, e, 3, cfg.wnorm)
        self.gn1 = group_norm(g, e, aff, cfg)
        self.conv2 = WNConv2d(e, c, 3, cfg.wnorm)
        self.drop = VariationalDropout2d(cfg.dropout)
        self.gn2 = group_norm(g, c, aff, cfg)
        self.gn3 = group_norm(g, c, aff, cfg)
        self.relu = ScaledReLU(cfg.relu_slope)
        self.alpha = cfg.residual_alpha

    def forward(self, z: Tensor, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        h = self.relu(self.gn1(self.conv1(z)))
        o = self.gn2(self.drop(self.conv2(h)) + x)  # the injection enters before GN2
        o = (1 - self.alpha) * z + self.alpha * o if self.alpha > 0 else o + z
        return self.gn3(self.relu(o))


def _down(c_in: int, c_out: int, d: int, cfg: MDEQConfig) -> nn.Sequential:
    """F_ij, j < i: d stride-2 3x3 convs; C_j -> C_j with GN + ReLU, the last C_j -> C_i with GN."""
    layers: list[nn.Module] = []
    for k in range(d):
        last = k == d - 1
        out = c_out if last else c_in
        layers += [nn.Conv2d(c_in, out, 3, stride=2, padding=1, bias=False),
                   group_norm(cfg.groups, out, cfg.fuse_gn_affine, cfg)]
        if not last:
            layers.append(ScaledReLU(cfg.relu_slope))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, d: int, cfg: MDEQConfig) -> nn.Sequential:
    """F_ij, j > i: 1x1 conv C_j -> C_i, GN, nearest upsampling by 2^d."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                         group_norm(cfg.groups, c_out, cfg.fuse_gn_affine, cfg),
                         nn.Upsample(scale_factor=2 ** d, mode="nearest"))


def fusion_weights(n: int, softmax: bool = True) -> Tensor:
    """(n, n) w_ij of the Lipschitz MDEQ's convex fusion (0 on the diagonal): softmax over
    j != i of -penalty, penalty j - i for upsampled sources (j > i), 0 for downsampled ones;
    uniform 1 / (n - 1) without softmax. Constants, not parameters."""
    w = torch.zeros(n, n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        pen = torch.tensor([float(j - i) if j > i else 0.0 for j in others])
        w[i, others] = torch.softmax(-pen, 0) if softmax else torch.full((n - 1,), 1 / (n - 1))
    return w


class MultiscaleMap(nn.Module):
    """f(z; x) over the branches: blocks, fusion (a plain sum), post-fusion 1x1 conv + GN."""

    def __init__(self, cfg: MDEQConfig) -> None:
        super().__init__()
        C, n = cfg.channels, cfg.branches
        self.blocks = nn.ModuleList(Block(c, cfg) for c in C)
        self.fuse = nn.ModuleList(
            nn.ModuleList((_down(C[j], C[i], i - j, cfg) if j < i else
                           _up(C[j], C[i], j - i, cfg) if j > i else nn.Identity())
                          for j in range(n)) for i in range(n))
        self.post_conv = nn.ModuleList(WNConv2d(c, c, 1, cfg.wnorm) for c in C)
        self.post_gn = nn.ModuleList(group_norm(cfg.groups // 2, c, cfg.post_gn_affine, cfg)
                                     for c in C)
        self.post_relu = ScaledReLU(cfg.relu_slope)
        self.beta = cfg.fusion_beta
        self.register_buffer("w", fusion_weights(n, cfg.fusion_softmax), persistent=False)

    def wn_convs(self) -> list[WNConv2d]:
        return [m for m in self.modules() if isinstance(m, WNConv2d)]

    def forward(self, z: list[Tensor], x: list[Tensor]) -> list[Tensor]:
        b = [blk(zi, xi) for blk, zi, xi in zip(self.blocks, z, x)]
        n = len(b)
        if self.beta > 0:  # the Lipschitz MDEQ's convex combination
            y = [(1 - self.beta) * b[i] + self.beta * sum(
                float(self.w[i, j]) * self.fuse[i][j](b[j]) for j in range(n) if j != i)
                for i in range(n)]
        else:  # MDEQ: a plain sum
            y = [sum(b[j] if i == j else self.fuse[i][j](b[j]) for j in range(n)) for i in range(n)]
        return [gn(conv(self.post_relu(yi))) for conv, gn, yi in zip(self.post_conv, self.post_gn, y)]


class Bottleneck(nn.Module):
    """The head's incre_i: 1x1 -> 3x3 -> 1x1 (x4) with non-affine BNs, a 1x1 + BN shortcut."""

    def __init__(self, c: int, h: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h, affine=False), nn.ReLU(),
            nn.Conv2d(h, h, 3, padding=1, bias=False), nn.BatchNorm2d(h, affine=False), nn.ReLU(),
            nn.Conv2d(h, 4 * h, 1, bias=False), nn.BatchNorm2d(4 * h, affine=False))
        self.short = (nn.Sequential(nn.Conv2d(c, 4 * h, 1, bias=False), nn.BatchNorm2d(4 * h))
                      if c != 4 * h else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.short(x))


# ------------------------------------------------------------- the Lipschitz constraints
def reshaped_sigma(module: nn.Module, W: Tensor) -> Tensor:
    """The Lipschitz MDEQ's estimate of a conv's norm: one power iteration on the reshaped
    C_out x (C_in k k) kernel with a persistent vector ``u_for_spectral_norm`` on ``module``
    (a random unit vector at first use), sigma = u^T W v (``cls_function.py:48-75``). It is the
    norm of the reshaped matrix from below, not the convolution's operator norm, which a 3x3
    kernel can exceed by up to about 3x (:func:`conv_norm`)."""
    Wm = W.reshape(W.shape[0], -1)
    u = module.u_for_spectral_norm  # registered by MDEQ as zeros: drawn at first use
    if not u.any():  # drawn on the CPU generator: a CUDA run starts from the CPU run's vector
        u.copy_(F.normalize(torch.randn(W.shape[0], dtype=W.dtype, device="cpu"), dim=0))
    v = F.normalize(Wm.t() @ u, dim=0)
    u = F.normalize(Wm @ v, dim=0)
    module.u_for_spectral_norm.copy_(u)
    return u @ (Wm @ v)


def conv_norm(W: Tensor, size: tuple[int, int] | None) -> float:
    """An exact upper bound of the operator norm of a same-padding convolution with kernel W
    on ``size`` maps: the matrix norm for 1x1 kernels; for 3x3 the torus bound of
    :func:`pcdeq.layers.conv_operator_norm` (a stride-2 conv is the stride-1 conv followed by a
    subsampling, a projection, so the same bound holds)."""
    if W.shape[-1] == 1:
        return float(torch.linalg.matrix_norm(W[:, :, 0, 0].double(), ord=2))
    if size is None:
        raise ValueError("a 3x3 convolution's operator norm needs its input size: run a forward first")
    return conv_operator_norm(W.double(), size)


class MDEQ(SolveStats, nn.Module):
    """Stem -> (stage0) -> equilibrium of :class:`MultiscaleMap` -> head -> classifier.

    ``train_step`` (set by the trainer through :meth:`at_step_`: optimizer steps so far)
    decides pretraining: below ``cfg.pretrain_steps``, or within the first
    ``cfg.pretrain_epochs`` epochs (and in eval during that phase), f is unrolled
    ``num_layers`` times. To the trainer the whole model is one DEQ layer
    (:class:`~pcdeq.layers.EquilibriumLayer`): its input is the image.
    """

    activation = "relu"

    def __init__(self, cfg: MDEQConfig = MNIST_MS) -> None:
        super().__init__()
        self.cfg = cfg
        C, Hh = cfg.channels, cfg.head_channels
        c0 = C[0]
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0), nn.ReLU(),
            nn.Conv2d(c0, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0), nn.ReLU())
        # stage0 exists unless the model has at most 2 branches (DOWNSAMPLE_TIMES is 0 here)
        self.stage0 = (nn.Sequential(nn.Conv2d(c0, c0, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU())
                       if cfg.branches > 2 else nn.Identity())
        self.f = MultiscaleMap(cfg)
        self.incre = nn.ModuleList(Bottleneck(c, h) for c, h in zip(C, Hh))
        self.downsamp = nn.ModuleList(
            nn.Sequential(nn.Conv2d(4 * Hh[i], 4 * Hh[i + 1], 3, stride=2, padding=1),
                          nn.BatchNorm2d(4 * Hh[i + 1]), nn.ReLU()) for i in range(len(Hh) - 1))
        self.final = nn.Sequential(nn.Conv2d(4 * Hh[-1], cfg.final_channels, 1),
                                   nn.BatchNorm2d(cfg.final_channels), nn.ReLU())
        self.classifier = nn.Linear(cfg.final_channels, cfg.num_classes)
        self.train_step = -1  # -1: always the solver (the reference's eval outside pretraining)
        self.pretraining_epoch = False  # set by at_step_: an epoch of cfg.pretrain_epochs
        self._sizes: dict[nn.Module, tuple[int, int]] = {}  # conv -> its input's (H, W)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, WNConv2d)):
                m.register_forward_pre_hook(self._record_size)
        self.last_fwd_stats: SolverStats | None = None
        self._bwd_stats: list[SolverStats] = []
        self._init_weights()
        if cfg.cap == "as-published":
            # The cap's power-iteration vectors are state that a checkpoint or weights file
            # carries, so they exist before the first step (zeros: drawn at first use, at the
            # same point of the RNG stream as before they were registered here).
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, WNConv2d)):
                    m.register_buffer("u_for_spectral_norm", torch.zeros(m.v.shape[0] if isinstance(
                        m, WNConv2d) else m.out_channels))

    def _record_size(self, module: nn.Module, args: tuple) -> None:
        self._sizes[module] = tuple(args[0].shape[-2:])

    @torch.no_grad()
    def project_(self) -> None:
        """The Lipschitz MDEQ's constraints, after each optimizer step, in the reference's
        order: the spectral cap of every convolution (``cap``), then the GroupNorm gamma clip.

        * "as-published": every conv's current weight divided by sigma / T where the
          :func:`reshaped_sigma` estimate exceeds T. For the weight-normed convs (the blocks'
          and the post-fusion 1x1) that weight is derived: the next forward recomputes it from
          (g, v) and the cap is lost, as in the reference (spec section 2.4, caveat 2).
        * "certified": the effective weight scaled to true operator norm (:func:`conv_norm`)
          at most T, through g for the weight-normed convs, so that it lasts.
        """
        cfg = self.cfg
        T = cfg.target_norm
        if cfg.cap not in ("none", "as-published", "certified"):
            raise ValueError(f"unknown cap {cfg.cap!r}: none, as-published or certified")
        for m in self.modules():
            if cfg.cap == "none" or not isinstance(m, (nn.Conv2d, WNConv2d)):
                continue
            if isinstance(m, WNConv2d) and (m.weight is None or cfg.cap == "certified"):
                # After an optimizer step m.weight is still the last forward's, derived from
                # the old (g, v): the certified cap must measure the weight the step made.
                # (The reference's cap reads that stale weight; "as-published" keeps it.)
                m.reset()
            W = m.weight
            if cfg.cap == "as-published":
                sigma = reshaped_sigma(m, W)
                if sigma > T:
                    if isinstance(m, WNConv2d):
                        m.weight = W / (sigma / T)  # the derived weight: overwritten at reset
                    else:
                        W.div_(sigma / T)
            else:
                norm = conv_norm(W, self._sizes.get(m))
                if norm > T:
                    if isinstance(m, WNConv2d) and m.g is not None:
                        m.g.mul_(T / norm)
                        m.reset()
                    elif isinstance(m, WNConv2d):
                        m.v.mul_(T / norm)
                        m.reset()
                    else:
                        W.mul_(T / norm)
        if cfg.gn_gamma_clip > 0:
            for m in self.modules():
                if isinstance(m, nn.GroupNorm) and m.weight is not None:
                    m.weight.clamp_(-cfg.gn_gamma_clip, cfg.gn_gamma_clip)

    # ------------------------------------------------------------------ the layer protocol
    def at_step_(self, epoch: int, step: int) -> None:
        """The trainer's step count (pretraining is decided by it, as the reference's)."""
        self.train_step = step
        self.pretraining_epoch = epoch <= self.cfg.pretrain_epochs

    def inputs(self, u: Tensor) -> Tensor:
        """The injection x_0 = stage0(stem(images)) of branch 0."""
        return self.stage0(self.stem(u))

    def effective_weight(self) -> Tensor:
        """Every kernel entry of f's convolutions, flat (as the solver sees them)."""
        self.reset_weights()
        return torch.cat([m.weight.detach().flatten() for m in self.f.modules()
                          if isinstance(m, (nn.Conv2d, WNConv2d))])

    def weight_operator_norm(self) -> float | None:
        return None

    @torch.no_grad()
    def equilibrium_jacobian_norm(self, u: Tensor, samples: int = 32) -> float:
        """||J_f(z*)||_2 (max over the first ``samples`` images of u): the Lipschitz constant
        the map realises at its fixed point, to set beside the bound its construction claims."""
        x0 = self.inputs(u[:samples])
        self.reset_weights()
        func, shapes = self._flat_map(x0)
        return equilibrium_spectral_norm(func, self._zero_state(x0, shapes), solver=self.cfg.solver,
                                         tol=self.cfg.tol, max_iter=self.cfg.f_thres)

    def epoch_fields(self, u: Tensor) -> dict[str, float]:
        """``jac_norm`` (:meth:`equilibrium_jacobian_norm`) and, where the construction has one,
        ``jac_bound`` (:meth:`product_bound`): what f realises beside what it is said to bound."""
        out = {"jac_norm": self.equilibrium_jacobian_norm(u)}
        bound = self.product_bound()
        if bound is not None:
            out["jac_bound"] = bound
        return out

    @torch.no_grad()
    def product_bound(self) -> float | None:
        """The spec's section 2.4 bound on Lip(f) in eval, ||M||_2, from the model's own
        numbers: every conv's true operator norm (:func:`conv_norm`, on the last forward's
        sizes), every GroupNorm's max |gamma| (mean-only GN: the centring is an orthogonal
        projection), the ReLU slope s, alpha, beta, the fusion weights and the upsampling gain
        2^d. None where no such bound exists (MDEQ's std-normalising GroupNorm) or before a
        forward has given the sizes.

        Per branch, L_b = c3 s [(1 - alpha) + alpha c2 T2 s c1 T1] (the plain residual sum:
        1 + ...), and ||dz_i'|| <= s T_post c_post [(1 - beta) L_b,i ||dz_i|| +
        beta sum_j w_ij L_F,ij L_b,j ||dz_j||] (beta = 0: the plain sum, weights 1).
        """
        cfg, f = self.cfg, self.f
        if not cfg.mean_only_gn or any(m not in self._sizes for m in f.wn_convs()):
            return None
        self.reset_weights()

        def T(m: nn.Module) -> float:
            return conv_norm(m.weight, self._sizes.get(m))

        def c(gn: nn.GroupNorm) -> float:
            return float(gn.weight.abs().max()) if gn.affine else 1.0

        s, a, b, n = cfg.relu_slope, cfg.residual_alpha, cfg.fusion_beta, cfg.branches
        L_b = []
        for blk in f.blocks:
            inner = c(blk.gn2) * T(blk.conv2) * s * c(blk.gn1) * T(blk.conv1)
            L_b.append(c(blk.gn3) * s * (((1 - a) + a * inner) if a > 0 else (1 + inner)))
        M = torch.zeros(n, n, dtype=torch.float64, device="cpu")  # a few floats: host-side
        for i in range(n):
            post = s * T(f.post_conv[i]) * c(f.post_gn[i])
            for j in range(n):
                if i == j:
                    M[i, j] = post * ((1 - b) if b > 0 else 1.0) * L_b[j]
                    continue
                L = 1.0
                for m in f.fuse[i][j]:
                    if isinstance(m, nn.Conv2d):
                        L *= T(m)
                    elif isinstance(m, nn.GroupNorm):
                        L *= c(m)
                    elif isinstance(m, ScaledReLU):
                        L *= m.slope
                    elif isinstance(m, nn.Upsample):
                        L *= float(m.scale_factor)  # nearest x 2^d copies each pixel 4^d times
                weight = b * float(f.w[i, j]) if b > 0 else 1.0
                M[i, j] = post * weight * L * L_b[j]
        return float(torch.linalg.matrix_norm(M, ord=2))

    def map(self, x0: Tensor) -> Callable[[Tensor], Tensor]:
        """f on the flat state for the injection x0 (the protocol's fixed-point map; the
        convolution weights as the last reset left them, in their own dtype)."""
        return self._flat_map(x0)[0]

    def reset_weights(self) -> None:
        """Recompute the weight-normed convs' weights from (g, v) (once per call of f's user)."""
        for conv in self.f.wn_convs():
            conv.reset()

    @staticmethod
    def _zero_state(x0: Tensor, shapes: list[tuple[int, ...]]) -> Tensor:
        """z = 0 on the flat state (B, D) of the branches' ``shapes``."""
        return x0.new_zeros(x0.shape[0], sum(math.prod(s) for s in shapes))

    def _flat_map(self, x0: Tensor):
        """f on the flat state (B, D) for the stem output x0, and the branch shapes."""
        shapes = self.shapes(x0)
        x = [x0] + [x0.new_zeros(x0.shape[0], *s) for s in shapes[1:]]  # only branch 0 gets the input

        def func(v: Tensor) -> Tensor:
            return self.to_vec(self.f(self.to_list(v, shapes), x))
        return func, shapes

    def conv_norms(self) -> list[tuple[str, float, float]]:
        """(name, reshaped-kernel sigma, true operator norm bound) of every conv of f, on the
        sizes of the last forward: the numbers behind the spec's finding that the reference's
        cap does not certify a contraction."""
        out = []
        with torch.no_grad():
            for name, m in self.f.named_modules():
                if isinstance(m, (nn.Conv2d, WNConv2d)):
                    if isinstance(m, WNConv2d):
                        m.reset()
                    W = m.weight
                    sv = float(torch.linalg.matrix_norm(W.reshape(W.shape[0], -1).double(), ord=2))
                    out.append((name, sv, conv_norm(W, self._sizes.get(m))))
        return out

    def _init_weights(self) -> None:
        """Every plain Conv2d weight and bias ~ N(0, 0.01), BN weight 1 bias 0 (mdeq.py:159-171);
        the weight-normed convs keep their default init (see :class:`WNConv2d`)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.normal_(m.bias, 0.0, 0.01)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ the state
    def shapes(self, x0: Tensor) -> list[tuple[int, ...]]:
        """(C_i, H_i, W_i) per branch for the stem output x0 (halving, floor, per branch)."""
        h, w = x0.shape[-2:]
        out = []
        for c in self.cfg.channels:
            out.append((c, h, w))
            h, w = h // 2, w // 2
        return out

    @staticmethod
    def to_vec(z: list[Tensor]) -> Tensor:
        """[(B, C_i, H_i, W_i)] -> (B, D), highest resolution first (the solver's state)."""
        return torch.cat([zi.flatten(1) for zi in z], dim=1)

    @staticmethod
    def to_list(v: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
        sizes = [math.prod(s) for s in shapes]
        return [p.view(v.shape[0], *s) for p, s in zip(v.split(sizes, dim=1), shapes)]

    # ------------------------------------------------------------------ forward
    def equilibrium(self, x0: Tensor) -> list[Tensor]:
        """z* of f(.; x) for the stem output x0 (solved, or unrolled while pretraining)."""
        cfg = self.cfg
        self.reset_weights()  # the weight-normed weights, once per call
        func, shapes = self._flat_map(x0)
        B = x0.shape[0]
        for blk in self.f.blocks:
            blk.drop.reset(B, blk.conv2.v.shape[0], x0)
        if 0 <= self.train_step < cfg.pretrain_steps or self.pretraining_epoch:
            z = self._zero_state(x0, shapes)
            for _ in range(cfg.num_layers):
                z = func(z)
            z = self.to_list(z, shapes)
            self.last_fwd_stats = SolverStats(cfg.num_layers, float("nan"), False)
            self._bwd_stats = [SolverStats(0, float("nan"), False)]  # plain backprop, no solve
            return z

        self._bwd_stats = []
        z, self.last_fwd_stats = implicit_fixed_point(
            func, self._zero_state(x0, shapes), solver=cfg.solver,
            tol=cfg.tol, max_iter=cfg.f_thres, backward_stats=self._bwd_stats,
            backward_max_iter=cfg.b_thres)
        return self.to_list(z, shapes)

    def forward(self, images: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, classes)
        z = self.equilibrium(self.stage0(self.stem(images)))
        y = self.incre[0](z[0])
        for i in range(1, len(z)):
            y = self.incre[i](z[i]) + self.downsamp[i - 1](y)
        y = self.final(y)
        return self.classifier(y.mean(dim=(2, 3)))
