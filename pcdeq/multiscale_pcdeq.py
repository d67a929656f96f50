"""A multiscale pcDEQ: MDEQ's structure (one state per resolution, every resolution fused with
every other) restricted so that the whole equilibrium map is a positive concave mapping.

The state is z = (z_0, ..., z_{n-1}), branch i at resolution 28 / 2^i (channels C_i), and

    g_i(z) = sigma( sum_j F_ij z_j + x_i ),

with F_ii a 3x3 convolution (same padding), F_ij for j < i the composition of i - j stride-2
3x3 convolutions (downsampling), F_ij for j > i a 1x1 convolution followed by nearest
upsampling by 2^(j-i), every kernel entrywise nonnegative (:class:`~pcdeq.layers.
NonnegativeWeightNorm`, projected after every step), and the injection x_i admissible for the
variant (pcDEQ-1: x_i = softplus(u_i, beta=5) > 0, pcDEQ-2: x_i = relu(u_i) >= 0, u_i formed
from the image at resolution i). No normalisation, dropout or residual branch is inside g.

**Why the paper's theorem covers it (Proposition 4.6 extended).** Each F_ij is linear and maps
the nonnegative cone into itself (a product and sum of entrywise-nonnegative convolutions,
zero padding and nearest upsampling, all of which have nonnegative matrices). So the stacked
operator W = [F_ij] is one linear map with a nonnegative matrix, and g(z) = sigma(W z + x) is
exactly the paper's pcDEQ map of Definitions 3.1 / 4.3 on R^D, D = sum_i C_i H_i W_i. More
generally, if h is monotone and concave with respect to the cone order and k is concave, h o k
is concave (h(k(ta + (1-t)b)) >= h(t k(a) + (1-t) k(b)) >= t h(k(a)) + (1-t) h(k(b))), and sums
of monotone concave maps are monotone concave; nonnegative linear maps are both. With sigma
concave and nondecreasing on R+ (Remark 4.1) g is therefore monotone and concave on the cone,
and g(0) = sigma(x) >> 0 (pcDEQ-1: x >> 0 and sigma > 0 on (0, inf); pcDEQ-2: sigma(0) > 0),
so g is a positive concave mapping; Lemma 4.2 / Proposition 4.6 then give a unique fixed point
in the interior of the cone and geometric convergence of the plain fixed-point iteration in
Thompson's metric, whatever ||W||. Every injection branch receives its own admissible x_i
(MDEQ injects into branch 0 only), since pcDEQ-1 needs x >> 0 on every coordinate.

:func:`multiscale_pcdeq_model` builds the classifier: a stem (3x3 conv + BN at 28x28), one
stride-2 conv + BN per lower resolution to form u_i, the equilibrium, then per-branch BN,
global average pooling and a linear head over the concatenated channels.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import check_variant
from .layers import INPUT_MAPS, ACTIVATIONS_, NonnegativeWeightNorm, SolveStats
from .solver import SolverStats, equilibrium_spectral_norm, implicit_fixed_point

# The default widths: 129,242 parameters on 1x28x28 inputs, 10 classes (the spec's reduced
# MDEQ: 131,634).
MS_CHANNELS: tuple[int, ...] = (16, 40, 64)


class MultiscalePcDEQ(SolveStats, nn.Module):
    """z* = sigma(W z* + x) over n resolutions, W = [F_ij] >= 0 (see the module docstring).

    Args:
        channels: C_i per branch, highest resolution first.
        sizes: (H_i, W_i) per branch.
        variant: 1 (ReLU6, tanh, softsign; x = softplus(u, 5)) or 2 (sigmoid; x = relu(u)).
        activation: the activation's name (Lemma 4.2 pairing checked).
        solver, tol, max_iter: the paper's plain fixed-point iteration and its stopping rule.

    The layer's input is the list of pre-injections u_i (one per branch); ``inputs`` maps them
    to the flat x.
    """

    def __init__(self, channels: tuple[int, ...], sizes: list[tuple[int, int]], variant: int,
                 activation: str, *, solver: str = "fixed_point", tol: float = 1e-4,
                 max_iter: int = 200) -> None:
        super().__init__()
        check_variant(variant, activation)
        n = len(channels)
        self.channels, self.sizes, self.variant = tuple(channels), [tuple(s) for s in sizes], variant
        self.activation = activation.lower()
        self.act = ACTIVATIONS_[self.activation]
        self.input_map = INPUT_MAPS[variant]
        self.solver, self.tol, self.max_iter = solver, tol, max_iter
        # weights[i][j]: the kernels of F_ij (a list: F_ij for j < i is i - j strided convs)
        self.weights = nn.ModuleList()
        for i, ci in enumerate(channels):
            row = nn.ModuleList()
            for j, cj in enumerate(channels):
                if j == i:
                    row.append(nn.ModuleList([NonnegativeWeightNorm((ci, ci, 3, 3))]))
                elif j < i:  # i - j stride-2 convs: C_j -> C_j ... -> C_i
                    outs = [cj] * (i - j - 1) + [ci]
                    row.append(nn.ModuleList(NonnegativeWeightNorm((o, cj, 3, 3)) for o in outs))
                else:
                    row.append(nn.ModuleList([NonnegativeWeightNorm((ci, cj, 1, 1))]))
            self.weights.append(row)
        self.last_fwd_stats: SolverStats | None = None
        self._bwd_stats: list[SolverStats] = []

    # ------------------------------------------------------------------ the map
    def kernels(self) -> list[list[list[Tensor]]]:
        """The effective kernels of every F_ij (computed once per call)."""
        return [[[w() for w in ws] for ws in row] for row in self.weights]

    def apply_w(self, K: list[list[list[Tensor]]], z: list[Tensor]) -> list[Tensor]:
        """(W z)_i = sum_j F_ij z_j: a nonnegative linear map of the state."""
        out = []
        for i in range(len(z)):
            acc = None
            for j, zj in enumerate(z):
                if j == i:
                    t = F.conv2d(zj, K[i][j][0], padding=1)
                elif j < i:
                    t = zj
                    for k in K[i][j]:
                        t = F.conv2d(t, k, stride=2, padding=1)
                    t = t[..., :self.sizes[i][0], :self.sizes[i][1]]
                else:
                    t = F.interpolate(F.conv2d(zj, K[i][j][0]), size=self.sizes[i], mode="nearest")
                acc = t if acc is None else acc + t
            out.append(acc)
        return out

    def shapes(self) -> list[tuple[int, int, int]]:
        return [(c, *s) for c, s in zip(self.channels, self.sizes)]

    def to_list(self, v: Tensor) -> list[Tensor]:
        sizes = [math.prod(s) for s in self.shapes()]
        return [p.view(v.shape[0], *s) for p, s in zip(v.split(sizes, dim=1), self.shapes())]

    @staticmethod
    def to_vec(z: list[Tensor]) -> Tensor:
        return torch.cat([zi.flatten(1) for zi in z], dim=1)

    def map(self, x: Tensor, K: list[list[list[Tensor]]] | None = None) -> Callable[[Tensor], Tensor]:
        """g(z) = sigma(W z + x) on flat states (B, D), for the layer input x (B, D); without
        ``K`` the kernels are detached and cast to x's dtype (the claims' float64 map)."""
        if K is None:
            K = [[[k.detach().to(x.dtype) for k in ks] for ks in row] for row in self.kernels()]
        sigma = self.act.fn

        def g(v: Tensor) -> Tensor:
            return sigma(self.to_vec(self.apply_w(K, self.to_list(v))) + x)
        return g

    # ------------------------------------------------------------------ the protocol
    def inputs(self, u: list[Tensor] | Tensor) -> Tensor:
        """The flat layer input x = input_map(u) over the branches."""
        return self.input_map(self.to_vec(u) if isinstance(u, (list, tuple)) else u)

    def effective_weight(self) -> Tensor:
        """Every kernel entry of W, flat (its minimum is the invariant W >= 0)."""
        return torch.cat([k.flatten() for row in self.kernels() for ks in row for k in ks])

    @torch.no_grad()
    def project_(self) -> None:
        for row in self.weights:
            for ws in row:
                for w in ws:
                    w.project_()

    def weight_operator_norm(self) -> float | None:
        return None

    @torch.no_grad()
    def equilibrium_jacobian_norm(self, u: list[Tensor], samples: int = 32) -> float:
        """||J_g(z*)||_2, max over the first ``samples`` of the batch u (power iteration)."""
        x = self.inputs([t[:samples] for t in u])
        return equilibrium_spectral_norm(self.map(x), torch.zeros_like(x), solver=self.solver,
                                         tol=self.tol, max_iter=self.max_iter, lower=0.0)

    def epoch_fields(self, u: list[Tensor]) -> dict[str, float]:
        """``jac_norm``: the l2 Lipschitz constant g realises at z* (no l2 bound is claimed:
        the theorem's contraction is in Thompson's metric)."""
        return {"jac_norm": self.equilibrium_jacobian_norm(u)}

    def forward(self, u: list[Tensor]) -> list[Tensor]:
        x = self.inputs(u)
        g = self.map(x, self.kernels())  # with grad: the kernels join the attaching step's graph
        self._bwd_stats = []
        with torch.no_grad():
            f_z0 = self.act.fn(x) if self.solver == "fixed_point" else None  # g(0) = sigma(x)
        z, self.last_fwd_stats = implicit_fixed_point(
            g, torch.zeros_like(x), solver=self.solver, tol=self.tol, max_iter=self.max_iter,
            backward_stats=self._bwd_stats, f_z0=f_z0, lower=0.0)  # the orthant, as PcDEQ
        return self.to_list(z)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, variant={self.variant}, activation={self.activation}, "
                f"solver={self.solver}, tol={self.tol}, max_iter={self.max_iter}")


class MultiscaleStage(nn.Module):
    """image -> u_0 (3x3 conv + BN), u_i = BN(stride-2 conv(u_{i-1})) -> equilibrium -> per-branch
    BN; ``deq`` is the :class:`MultiscalePcDEQ` (the trainer's DEQ layer)."""

    def __init__(self, in_channels: int, deq: MultiscalePcDEQ) -> None:
        super().__init__()
        C = deq.channels
        self.pre = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, C[0], 3, padding=1), nn.BatchNorm2d(C[0]))]
            + [nn.Sequential(nn.Conv2d(C[i - 1], C[i], 3, stride=2, padding=1), nn.BatchNorm2d(C[i]))
               for i in range(1, len(C))])
        self.deq = deq
        self.bn_post = nn.ModuleList(nn.BatchNorm2d(c) for c in C)

    def forward(self, images: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, sum C_i)
        u, h = [], images
        for pre in self.pre:
            h = pre(h)
            u.append(h)
        z = self.deq(u)
        return torch.cat([bn(zi).mean(dim=(2, 3)) for bn, zi in zip(self.bn_post, z)], dim=1)


def branch_sizes(size: int, n: int) -> list[tuple[int, int]]:
    """(H_i, W_i): a stride-2, pad-1, 3x3 conv maps s to (s + 1) // 2 (28 -> 14 -> 7)."""
    out = [(size, size)]
    for _ in range(n - 1):
        s = (out[-1][0] + 1) // 2
        out.append((s, s))
    return out


def multiscale_pcdeq_model(in_channels: int, size: int, n_classes: int, channels: tuple[int, ...],
                           variant: int, activation: str, **solver_kw) -> tuple[list[nn.Module], nn.Module]:
    """The stages and head of a multiscale pcDEQ classifier (see the module docstring)."""
    deq = MultiscalePcDEQ(channels, branch_sizes(size, len(channels)), variant, activation, **solver_kw)
    return [MultiscaleStage(in_channels, deq)], nn.Linear(sum(channels), n_classes)
