"""Monotone operator equilibrium networks (monDEQ; Winston & Kolter, NeurIPS 2020), a baseline.

The layer is z* = relu(W z* + x) with x = U input + b formed by the model, and

    W = (1 - m) I - A^T A + B - B^T      =>   I - W >= m I  (strongly monotone),

so the fixed point exists, is unique, and operator splitting finds it for any step alpha > 0
(Theorem 1 of the paper: z* is the zero of (I - W) z - x + N_{z >= 0}(z)). We implement what
the authors' code trains with (their ``splitting.py``): Peaceman-Rachford (PR) forward and
backward iterations built on V = (I + alpha (I - W))^{-1}, computed once per forward call and
applied at every iteration, and their alpha tuning (``train.run_tune_alpha``).

Two operators (``mon.py``):

- :class:`MonotoneLinear`: raw n x n matrices A, B (their ``MONSingleFc``); V is a dense inverse.
- :class:`MonotoneConv2d`: A, B are 3x3 *circular* convolutions on an (H, W) torus, weight
  normalised as in their ``MONSingleConv`` (A / ||A||_F, g A^T A, h B / ||B||_F). The DFT
  diagonalises circular convolutions into one C x C matrix per frequency, so V is a batch of
  C x C inverses, applied by rfft2 -> per-frequency matmul -> irfft2 (their code used
  ``torch.rfft``, removed from PyTorch; this is a rewrite on ``torch.fft``).

Each operator has ``multiply`` / ``multiply_transpose`` (W z, W^T z; for the conv: circular
convolutions), ``dense``, ``inverse_op(alpha)`` (V, V^T) and ``solver_ops(alpha)``, the four maps
one layer call needs, built once per call (for the conv, W z is then also applied spectrally,
from the same per-frequency matrices as V: the same operator at about half the CPU cost).

:class:`MonDEQ` exposes the interface the trainer reads from every DEQ layer
(``last_fwd_stats``, ``last_bwd_stats``, ``last_fwd_iters``, ``last_bwd_iters``,
``project_()``, ``effective_weight()``), so its iterations enter the same records.

FFT convention (checked against :meth:`MonotoneConv2d.multiply` in the tests): ``F.conv2d`` on
a circularly padded map is a cross-correlation, (A z)[o, i, j] = sum_{c,p,q} K[o, c, p, q]
z[c, i + p - 1, j + q - 1] (indices mod H, W). It equals the circular *convolution* of z with
the H x W image k[o, c] that holds K[o, c, p, q] at ((1 - p) mod H, (1 - q) mod W), i.e. the
flipped kernel zero-padded to H x W and rolled by (-1, -1). With torch's unnormalised forward
DFT (e^{-2 pi i k n / N}), fft2(A z)[o](w) = sum_c fft2(k[o, c])(w) fft2(z[c])(w), so the
per-frequency matrix is A(w)[o, c] = fft2(k[o, c])(w), and the adjoint A^T is A(w)^H.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import SolveStats
from .solver import SolverStats
from .splitting import (_BackwardPlan, _ImplicitBackward, peaceman_rachford,  # noqa: F401
                        peaceman_rachford_backward)

Apply = Callable[[Tensor], Tensor]


class SolverOps(NamedTuple):
    """The four linear maps one monDEQ call uses, built once per call by ``solver_ops``.

    Attributes:
        multiply: z -> W z, differentiable w.r.t. the operator's parameters (the one
            application with grad at z*).
        multiply_transpose: z -> W^T z (the backward's last step; no graph).
        inverse: z -> V z, V = (I + alpha (I - W))^{-1} (the forward PR; no graph).
        inverse_transpose: z -> V^T z (the backward PR; no graph).
    """

    multiply: Apply
    multiply_transpose: Apply
    inverse: Apply
    inverse_transpose: Apply


# ------------------------------------------------------------------------------ operators
class MonotoneLinear(nn.Module):
    """W = (1 - m) I - A^T A + B - B^T on vectors (the reference's ``MONSingleFc``).

    A and B are raw ``nn.Linear(n, n, bias=False)`` weights with PyTorch's default init (no
    weight normalisation, as in the reference). I - W = m I + A^T A + (skew), so its symmetric
    part is >= m I for any A, B.

    Args:
        n: the width of z.
        m: the monotonicity parameter (the paper uses m = 1).
    """

    def __init__(self, n: int, m: float = 1.0) -> None:
        super().__init__()
        self.n, self.m = n, m
        self.A = nn.Linear(n, n, bias=False)
        self.B = nn.Linear(n, n, bias=False)

    def multiply(self, z: Tensor) -> Tensor:
        """W z for a batch of row vectors.

        Args:
            z: (batch, n).

        Returns:
            (batch, n), row b = W z[b].
        """
        A, B = self.A.weight, self.B.weight
        # Row-vector form: (W z)^T = z^T W^T = (1-m) z^T - z^T A^T A + z^T B^T - z^T B.
        return (1 - self.m) * z - F.linear(F.linear(z, A), A.T) + F.linear(z, B) - F.linear(z, B.T)

    def multiply_transpose(self, z: Tensor) -> Tensor:
        """W^T z for a batch of row vectors: (batch, n) -> (batch, n)."""
        A, B = self.A.weight, self.B.weight
        return (1 - self.m) * z - F.linear(F.linear(z, A), A.T) - F.linear(z, B) + F.linear(z, B.T)

    def dense(self, dtype: torch.dtype | None = None) -> Tensor:
        """The n x n matrix W (differentiable), optionally computed in ``dtype``."""
        A, B = self.A.weight, self.B.weight
        if dtype is not None:
            A, B = A.to(dtype), B.to(dtype)
        eye = torch.eye(self.n, dtype=A.dtype, device=A.device)
        return (1 - self.m) * eye - A.T @ A + B - B.T

    def inverse_op(self, alpha: float) -> tuple[Apply, Apply]:
        """V = (I + alpha (I - W))^{-1} and V^T as two maps on (batch, n).

        The inverse is formed once here (dense, O(n^3); n is ~100) and only applied by the
        returned closures; it is differentiable when grad is enabled (tests unroll through it).

        Args:
            alpha: the PR step, > 0.

        Returns:
            (apply, apply_transpose): z -> V z and z -> V^T z, row-wise on (batch, n).
        """
        W = self.dense()
        eye = torch.eye(self.n, dtype=W.dtype, device=W.device)
        V = torch.linalg.inv((1 + alpha) * eye - alpha * W)  # (n, n)
        Vt = V.T.contiguous()
        return (lambda z: F.linear(z, V)), (lambda z: F.linear(z, Vt))

    def solver_ops(self, alpha: float) -> SolverOps:
        """W, W^T (as :meth:`multiply`, :meth:`multiply_transpose`) and V, V^T (no graph)."""
        with torch.no_grad():
            inv, inv_t = self.inverse_op(alpha)
        return SolverOps(self.multiply, self.multiply_transpose, inv, inv_t)

    @torch.no_grad()
    def operator_norm(self) -> float:
        """||W||_2 (largest singular value), in float64."""
        return float(torch.linalg.matrix_norm(self.dense(torch.float64), ord=2))

    def extra_repr(self) -> str:
        return f"n={self.n}, m={self.m}"


def _circular_conv(z: Tensor, K: Tensor) -> Tensor:
    """3x3 convolution (cross-correlation, like ``F.conv2d``) on the torus.

    Args:
        z: (batch, C_in, H, W).
        K: (C_out, C_in, 3, 3).

    Returns:
        (batch, C_out, H, W).
    """
    return F.conv2d(F.pad(z, (1, 1, 1, 1), mode="circular"), K)


def _adjoint_kernel(K: Tensor) -> Tensor:
    """The kernel of the adjoint of a circular 3x3 convolution: in/out swapped, flipped.

    (A^T y)[c, a, b] = sum_{o,p,q} K[o, c, p, q] y[o, a - p + 1, b - q + 1], which is the
    circular cross-correlation with K'[c, o, p, q] = K[o, c, 2 - p, 2 - q].
    """
    return K.transpose(0, 1).flip(2, 3)


class MonotoneConv2d(nn.Module):
    """W z = (1 - m) z - g Ah^T Ah z + Bh z - Bh^T z with 3x3 circular convolutions on an H x W torus.

    Ah = A / ||A||_F and Bh = h B / ||B||_F (the reference's ``MONSingleConv`` weight
    normalisation; g, h learned scalars starting at 1). I - W >= m I holds for g >= 0; like
    the reference, nothing constrains g (only a negative g could break monotonicity).

    Args:
        channels: C.
        size: (H, W) of the torus (the model zero-pads the image by 1 first: 28 -> 30).
        m: the monotonicity parameter.
    """

    def __init__(self, channels: int, size: tuple[int, int], m: float = 1.0) -> None:
        super().__init__()
        H, W = size
        if H < 3 or W < 3:
            raise ValueError(f"the torus must be at least 3 x 3 for a 3x3 kernel, got {size}")
        self.channels, self.size, self.m = channels, (int(H), int(W)), m
        self.A = nn.Conv2d(channels, channels, 3, bias=False)
        self.B = nn.Conv2d(channels, channels, 3, bias=False)
        self.g = nn.Parameter(torch.tensor(1.0))
        self.h = nn.Parameter(torch.tensor(1.0))

    def _kernels(self, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The normalised kernels Ah, Bh (C, C, 3, 3) and the gain g, optionally cast."""
        A, B, g, h = self.A.weight, self.B.weight, self.g, self.h
        if dtype is not None:
            A, B, g, h = A.to(dtype), B.to(dtype), g.to(dtype), h.to(dtype)
        return A / torch.linalg.vector_norm(A), h * B / torch.linalg.vector_norm(B), g

    def _apply_w(self, z: Tensor, sign: float, dtype: torch.dtype | None = None) -> Tensor:
        """W z (sign = +1) or W^T z (sign = -1); they differ only in the sign of the skew part.

        (Not named ``_apply``: that is nn.Module's, used by ``.to()``.)
        """
        A, B, g = self._kernels(dtype)
        C = self.channels
        S = B - _adjoint_kernel(B)  # the skew part Bh - Bh^T as one 3x3 kernel
        # One convolution gives Ah z and S z together: (batch, 2C, H, W).
        Az, Sz = _circular_conv(z, torch.cat([A, S])).split(C, dim=1)
        return (1 - self.m) * z - g * _circular_conv(Az, _adjoint_kernel(A)) + sign * Sz

    def multiply(self, z: Tensor) -> Tensor:
        """W z: (batch, C, H, W) -> (batch, C, H, W)."""
        return self._apply_w(z, 1.0)

    def multiply_transpose(self, z: Tensor) -> Tensor:
        """W^T z: (batch, C, H, W) -> (batch, C, H, W)."""
        return self._apply_w(z, -1.0)

    def dense(self, dtype: torch.dtype | None = None) -> Tensor:
        """The full (C H W) x (C H W) matrix of W on z flattened in (C, H, W) order.

        For tests on tiny tori only (it is built by applying W to every basis vector).

        Args:
            dtype: compute in this dtype (default: the parameters').
        """
        C, (H, W) = self.channels, self.size
        n = C * H * W
        dtype = dtype or self.A.weight.dtype
        eye = torch.eye(n, dtype=dtype, device=self.A.weight.device).view(n, C, H, W)
        return self._apply_w(eye, 1.0, dtype).reshape(n, n).T  # column k = W e_k

    def _kernel_fft(self, K: Tensor) -> Tensor:
        """Per-frequency matrices of a circular 3x3 convolution over the half spectrum.

        Args:
            K: (C_out, C_in, 3, 3).

        Returns:
            (H * (W // 2 + 1), C_out, C_in) complex: entry f is the matrix A(w_f) with
            rfft2(A z)(w_f) = A(w_f) rfft2(z)(w_f) (see the module docstring).
        """
        H, W = self.size
        # Flipped kernel, zero-padded to H x W, then rolled so that its centre sits at (0, 0).
        k = torch.roll(F.pad(K.flip(2, 3), (0, W - 3, 0, H - 3)), shifts=(-1, -1), dims=(2, 3))
        Kf = torch.fft.rfft2(k)  # (C_out, C_in, H, W//2+1)
        return Kf.permute(2, 3, 0, 1).reshape(-1, K.shape[0], K.shape[1])

    def frequency_matrices(self, dtype: torch.dtype | None = None) -> Tensor:
        """W(w) = (1 - m) I - g Ah(w)^H Ah(w) + Bh(w) - Bh(w)^H per frequency of the half spectrum.

        Args:
            dtype: compute in this real dtype (default: the parameters'); differentiable.

        Returns:
            (H * (W // 2 + 1), C, C) complex.
        """
        A, B, g = self._kernels(dtype)
        Af, Bf = self._kernel_fft(A), self._kernel_fft(B)
        eye = torch.eye(self.channels, dtype=Af.dtype, device=Af.device)
        # Materialise the conjugate transposes: batched complex GEMMs on strided views are slow.
        AhA = Af.mH.contiguous() @ Af
        return (1 - self.m) * eye - g * AhA + Bf - Bf.mH

    def _spectral_apply(self, R: Tensor) -> Apply:
        """z -> irfft2(rfft2(z)(w) @ R(w)) per frequency, R the real form of a row-vector matrix.

        Args:
            R: (F, 2C, 2C) real, from :func:`_real_block` of the per-frequency matrix that
                multiplies a frequency's C channels as a row vector ((M z)^T = z^T M^T: pass
                the real block of M^T).

        Returns:
            The map on (batch, C, H, W) real tensors. One real batched GEMM
            (F, N, 2C) @ (F, 2C, 2C) per call: torch's complex bmm on CPU loops over the batch
            with a copy per frequency and measured ~2x slower here.
        """
        C, (H, W) = self.channels, self.size
        Wf = W // 2 + 1
        Fq = H * Wf

        def apply(z: Tensor) -> Tensor:
            N = z.shape[0]
            Z = torch.fft.rfft2(z).permute(2, 3, 0, 1).contiguous()  # (H, Wf, N, C)
            Y = torch.bmm(torch.view_as_real(Z).reshape(Fq, N, 2 * C), R)  # (F, N, 2C)
            Y = torch.view_as_complex(Y.view(H, Wf, N, C, 2)).permute(2, 3, 0, 1)  # (N, C, H, Wf)
            return torch.fft.irfft2(Y, s=(H, W))  # (N, C, H, W), real
        return apply

    def _inverse_from(self, Mw: Tensor, alpha: float) -> tuple[Apply, Apply]:
        """V and V^T from the per-frequency W(w): one batched inverse of (F, C, C)."""
        eye = torch.eye(self.channels, dtype=Mw.dtype, device=Mw.device)
        Vw = torch.linalg.inv((1 + alpha) * eye - alpha * Mw)  # (F, C, C)
        # Row-vector form: (V z)^T = z^T V^T and (V^H z)^T = z^T conj(V).
        return (self._spectral_apply(_real_block(Vw.transpose(1, 2))),
                self._spectral_apply(_real_block(Vw.conj())))

    def inverse_op(self, alpha: float) -> tuple[Apply, Apply]:
        """V = (I + alpha (I - W))^{-1} and V^T as two maps on (batch, C, H, W).

        The per-frequency C x C matrices (1 + alpha) I - alpha W(w) are inverted here, once,
        in one batched ``torch.linalg.inv`` over the H (W//2 + 1) frequencies of the real
        half spectrum; the closures only do rfft2 -> batched matmul -> irfft2. Correct for
        real inputs: W(-w) = conj(W(w)), so the product spectrum stays Hermitian and irfft2
        (which drops the imaginary parts at the self-conjugate frequencies) loses nothing.
        Differentiable when grad is enabled.

        Args:
            alpha: the PR step, > 0.

        Returns:
            (apply, apply_transpose): z -> V z and z -> V^T z; V^T's matrices are V(w)^H.
        """
        return self._inverse_from(self.frequency_matrices(), alpha)

    def solver_ops(self, alpha: float) -> SolverOps:
        """W, W^T, V, V^T all from one computation of the per-frequency W(w).

        ``multiply`` here is the spectral form of W (rfft2 -> per-frequency matmul -> irfft2,
        differentiable through W(w) to A, B, g, h), not the convolutions of :meth:`multiply`:
        the same operator (to float rounding, checked in the tests), about 2x cheaper on CPU
        for the application with grad and its backward, and it reuses W(w), which V needs
        anyway. V, V^T and W^T carry no graph.
        """
        Mw = self.frequency_matrices()  # (F, C, C); a graph to the parameters if grad is on
        with torch.no_grad():
            Md = Mw.detach()
            inv, inv_t = self._inverse_from(Md, alpha)
            mul_t = self._spectral_apply(_real_block(Md.conj()))
        mul = self._spectral_apply(_real_block(Mw.transpose(1, 2)))
        return SolverOps(mul, mul_t, inv, inv_t)

    @torch.no_grad()
    def operator_norm(self) -> float:
        """||W||_2 on the torus: the largest singular value over all frequencies (float64).

        The unitary DFT block-diagonalises W, and the conjugate frequencies missing from the
        half spectrum have the same singular values, so the half spectrum suffices.
        """
        return float(torch.linalg.svdvals(self.frequency_matrices(torch.float64)).max())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, m={self.m}"


Operator = MonotoneLinear | MonotoneConv2d


def _real_block(R: Tensor) -> Tensor:
    """The real form of complex matrices acting on rows stored as interleaved (re, im) pairs.

    Args:
        R: (F, C, K) complex.

    Returns:
        (F, 2C, 2K) real R2 with view_as_real(z @ R) == view_as_real(z) @ R2 for rows z of
        length C flattened to 2C: blocks [[Re, Im], [-Im, Re]] per entry (differentiable).
    """
    F_, C, K = R.shape
    Rr, Ri = R.real, R.imag
    return torch.stack([torch.stack([Rr, Ri], -1), torch.stack([-Ri, Rr], -1)], dim=2).reshape(F_, 2 * C, 2 * K)


class MonDEQ(SolveStats, nn.Module):
    """monDEQ layer z* = relu(W z* + x), W monotone, solved by Peaceman-Rachford.

    Args:
        operator: a :class:`MonotoneLinear` (x: (batch, n)) or :class:`MonotoneConv2d`
            (x: (batch, C, H, W)); registered as ``operator`` (alias ``weight``, the name the
            trainer reads on :class:`~pcdeq.layers.DEQLayer`).
        alpha: initial PR step; a float64 buffer (saved in the state dict, so a resumed run
            keeps the tuned value). Note that ``module.float()`` casts it like any buffer
            (harmless: tuned values are alpha / 2^k).
        tol, max_iter: stopping rule of the forward and backward solves (paper: 1e-2, 300).
        border: zero this many pixels on each side after the relu (the reference's
            ``MONBorderReLU``, which emulates zero padding on the torus; 1 for the conv model).

    After each call ``last_fwd_stats`` holds the forward solve's :class:`SolverStats`; the
    backward pass appends its solve's stats to the list behind ``last_bwd_stats`` (reset by
    every call).
    """

    activation = "relu"
    tunes_alpha = True  # the trainer calls tune_alpha_ where the reference's train.py does

    def __init__(self, operator: Operator, *, alpha: float = 1.0, tol: float = 1e-2,
                 max_iter: int = 300, border: int = 0) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"monDEQ's PR step alpha must be > 0, got {alpha}")
        if not tol > 0 or max_iter < 1:
            raise ValueError(f"need tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
        if border < 0 or (border and not isinstance(operator, MonotoneConv2d)):
            raise ValueError(f"border must be >= 0 and needs a convolutional operator, got {border}")
        if border and 2 * border >= min(operator.size):
            raise ValueError(f"border {border} leaves nothing of a {operator.size} torus")
        self.operator = operator
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))
        self.tol, self.max_iter, self.border = tol, max_iter, border
        self.last_fwd_stats: SolverStats | None = None
        self._bwd_stats: list[SolverStats] = []

    @property
    def weight(self) -> Operator:
        """The operator (DEQLayer's name for the weight module)."""
        return self.operator

    def project_(self) -> None:
        """No-op: W is monotone by construction (for the conv operator: while g >= 0)."""

    def weight_operator_norm(self) -> float:
        return self.operator.operator_norm()

    @torch.no_grad()
    def map(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """z -> border-relu(W z + x), W in x's dtype: the map whose fixed point the splitting
        finds (the claims' view of the layer; training solves it by Peaceman-Rachford)."""
        mask = self._border_mask(x)
        if isinstance(self.operator, MonotoneLinear):
            W = self.operator.dense(x.dtype)
            return lambda z: self._nonlin(F.linear(z, W) + x, mask)
        op = self.operator
        return lambda z: self._nonlin(op._apply_w(z, 1.0, x.dtype) + x, mask)

    def effective_weight(self) -> Tensor | MonotoneConv2d:
        """Dense W (n x n) for :class:`MonotoneLinear`; for :class:`MonotoneConv2d`, the
        operator itself (its dense matrix is (C H W)^2; use ``.multiply`` or
        ``.operator_norm()``). Either way ``self.op(self.effective_weight(), z)`` is W z."""
        if isinstance(self.operator, MonotoneLinear):
            return self.operator.dense()
        return self.operator

    def inputs(self, u: Tensor) -> Tensor:
        """The layer input: the model already formed x = U input + b."""
        return u

    @staticmethod
    def op(W: Tensor | MonotoneConv2d, z: Tensor) -> Tensor:
        """W z for what :meth:`effective_weight` returns (the DEQLayer ``op`` signature)."""
        return F.linear(z, W) if isinstance(W, Tensor) else W.multiply(z)

    def sigma(self, u: Tensor) -> Tensor:
        """relu, then the border zeroed (the proximal map of the layer)."""
        return self._nonlin(u, self._border_mask(u))

    # ---- the solve
    def _border_mask(self, x: Tensor) -> Tensor | None:
        """(H, W) mask of ones with a zeroed border of ``border`` pixels, or None."""
        if not self.border:
            return None
        b = self.border
        mask = x.new_zeros(x.shape[-2:])
        mask[b:-b, b:-b] = 1
        return mask

    @staticmethod
    def _nonlin(u: Tensor, mask: Tensor | None) -> Tensor:
        z = F.relu(u)
        return z if mask is None else z * mask

    def _check(self, x: Tensor) -> None:
        op = self.operator
        want = (op.n,) if isinstance(op, MonotoneLinear) else (op.channels, *op.size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"MonDEQ expects inputs of shape (batch, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        """z* = relu_border(W z* + x), differentiable by the implicit PR backward.

        Args:
            x: the injection U input + b, (batch, n) or (batch, C, H, W).

        Returns:
            z*, the same shape as x: relu_border(W z_k + x) of the last PR iterate z_k, as
            the reference implementation returns it; with grad enabled wrapped so that its
            backward solves the adjoint system.
        """
        self._check(x)
        alpha = float(self.alpha)  # one sync per call, not per iteration
        mask = self._border_mask(x)
        self._bwd_stats = []  # a new list: a pending backward of an older call keeps its own

        def nonlin(u: Tensor) -> Tensor:
            return self._nonlin(u, mask)

        # V (and the spectral W for the conv) once per call, applied at every iteration.
        ops = self.operator.solver_ops(alpha)
        with torch.no_grad():
            z, self.last_fwd_stats = peaceman_rachford(x, ops.inverse, alpha, nonlin,
                                                       tol=self.tol, max_iter=self.max_iter)
        # One more application of the map, as the reference returns (splitting.py applies
        # relu(W z + U x + b) after the loop, in evaluation too); with grad it attaches z* to
        # A, B, g, h and x.
        z_hat = nonlin(ops.multiply(z) + x)
        if not torch.is_grad_enabled():
            return z_hat
        plan = _BackwardPlan(ops.inverse_transpose, ops.multiply_transpose, alpha, self.tol,
                             self.max_iter, self._bwd_stats)
        return _ImplicitBackward.apply(z_hat, plan)

    @torch.no_grad()
    def tune_alpha_(self, run: Callable[[], None], max_alpha: float = 1.0) -> float:
        """Tune the PR step as the reference's ``train.run_tune_alpha``.

        alpha = max_alpha, count forward iterations; while alpha > 1e-4 and the count did not
        increase, halve alpha and count again; then keep 2 alpha (the last value whose count
        did not increase), unless the count there was ``max_iter`` (nothing converged): then
        the original alpha stays.

        The trial forwards must not enter the training statistics: call this before the
        training step's forward (the trainer does, at batch 30 and mid-epoch). The layer's
        ``last_fwd_stats`` / ``last_bwd_stats`` are restored afterwards.

        Args:
            run: performs one no-grad forward of the model (through this layer) on the
                current batch.
            max_alpha: the first (largest) alpha tried.

        Returns:
            The new alpha (also stored in the ``alpha`` buffer).
        """
        saved = (self.last_fwd_stats, self._bwd_stats)
        orig = float(self.alpha)

        def iters_at(a: float) -> int:
            self.alpha.fill_(a)
            run()
            assert self.last_fwd_stats is not None, "run() must call this layer"
            return self.last_fwd_stats.iters

        alpha = float(max_alpha)
        iters = iters_n = iters_at(alpha)
        while alpha > 1e-4 and iters_n <= iters:
            alpha /= 2
            iters, iters_n = iters_n, iters_at(alpha)
        new = orig if iters == self.max_iter else 2 * alpha
        self.alpha.fill_(new)
        self.last_fwd_stats, self._bwd_stats = saved
        return new

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}, tol={self.tol}, max_iter={self.max_iter}, border={self.border}"
