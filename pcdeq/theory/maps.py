"""Maps g(z) = sigma(W z + x) small enough to draw: activations, random W and x, the
theorem's hypotheses (Prop. 4.6, Lemma 4.2) and the cases that break one of them."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations import ACTIVATIONS_, activation, check_variant
from ..errors import ConfigError


DTYPE = torch.float64

# Views of the one activation table (pcdeq.activations), keyed by lower-case name.
# The activations outside pcDEQ, with why (shown in the refusal message).
EXTRA_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    k: a.fn for k, a in ACTIVATIONS_.items() if a.variant is None}
EXTRA_NOTES: dict[str, str] = {k: a.outside for k, a in ACTIVATIONS_.items() if a.outside}
# sup of sigma (None: unbounded); starts are drawn in [0, start_scale * bound)^n.
UPPER_BOUND: dict[str, float | None] = {k: a.sup for k, a in ACTIVATIONS_.items()}
# Lipschitz constant of sigma: Banach's rate for g is LIPSCHITZ[sigma] * ||W||_2.
LIPSCHITZ: dict[str, float] = {k: a.lipschitz for k, a in ACTIVATIONS_.items()}
PRETTY: dict[str, str] = {k: a.pretty for k, a in ACTIVATIONS_.items()}


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The elementwise activation called ``name`` (pcDEQ's four, or softplus / relu).

    Args:
        name: case-insensitive activation name.

    Returns:
        The function.

    Raises:
        ConfigError: an activation this module does not know.
    """
    return activation(name).fn


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the setting.

    The problems here are tiny (at most 100 x 50 per operation): on a busy machine, torch's
    thread pool makes them tens of times slower, and one thread also keeps the results
    independent of the core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def spectral_norm(W: Tensor) -> float:
    """||W||_2, the largest singular value."""
    return float(torch.linalg.matrix_norm(W, 2))


def spectral_radius(W: Tensor) -> float:
    """rho(W), the largest modulus of an eigenvalue."""
    return float(torch.linalg.eigvals(W).abs().max())


def random_matrix(n: int, norm: float, *, seed: int, low: float = 0.0) -> Tensor:
    """An n x n matrix with i.i.d. entries U[low, 1), scaled to ||W||_2 = ``norm``.

    With ``low >= 0`` the matrix is nonnegative (pcDEQ's W); a negative ``low`` gives some
    negative entries (a case outside the theorem, which :func:`theorem_conditions` reports).

    Args:
        n: size.
        norm: the spectral norm to scale to.
        seed: seed of the generator.
        low: lower end of the entries' range before scaling.

    Returns:
        W (float64).

    Raises:
        ConfigError: n < 1, norm <= 0 or low >= 1.
    """
    if int(n) != n or n < 1:
        raise ConfigError(f"dimension must be a positive integer, got {n!r}")
    if not norm > 0:
        raise ConfigError(f"the spectral norm of W must be > 0, got {norm!r}")
    if not low < 1:
        raise ConfigError(f"w_low must be < 1 (entries are drawn from U[w_low, 1)), got {low!r}")
    W = low + (1 - low) * torch.rand(int(n), int(n), generator=generator(seed), dtype=DTYPE)
    return W * (norm / spectral_norm(W))


def random_input(n: int, low: float, high: float, *, seed: int) -> Tensor:
    """A layer input x with i.i.d. entries U[low, high).

    Raises:
        ConfigError: high <= low.
    """
    if not high > low:
        raise ConfigError(f"the input range needs x_high > x_low, got [{low!r}, {high!r})")
    return low + (high - low) * torch.rand(int(n), generator=generator(seed + 7919), dtype=DTYPE)


@dataclass(frozen=True)
class MapCase:
    """One map g(z) = sigma(W z + x) and the pcDEQ variant whose theorem is claimed for it.

    Attributes:
        name: short label (table rows, panel titles).
        W: (n, n) weight.
        x: (n,) layer input.
        activation: the activation's name.
        variant: 1 or 2, the pcDEQ variant whose hypotheses are checked.
        change: for a deliberately broken case, what was changed (empty otherwise).
    """

    name: str
    W: Tensor
    x: Tensor
    activation: str
    variant: int
    change: str = ""

    @property
    def dim(self) -> int:
        return int(self.W.shape[0])

    def __call__(self, z: Tensor) -> Tensor:
        """g(z) for z of shape (..., n)."""
        return activation_fn(self.activation)(z @ self.W.T + self.x)

    def jacobian(self, z: Tensor) -> Tensor:
        """The Jacobian diag(sigma'(W z + x)) W of g at one point z (shape (n,))."""
        s = (self.W @ z + self.x).detach().requires_grad_()
        (ds,) = torch.autograd.grad(activation_fn(self.activation)(s).sum(), s)
        return ds[:, None] * self.W

    @property
    def lipschitz(self) -> float:
        """Banach's constant Lip(sigma) * ||W||_2 (g is a contraction if it is < 1)."""
        return LIPSCHITZ.get(self.activation.lower(), math.inf) * spectral_norm(self.W)


@dataclass(frozen=True)
class Condition:
    """A hypothesis of the theorem that a case violates.

    Attributes:
        short: the hypothesis, as shown in panel titles ("W ≥ 0", "x > 0", ...).
        message: which condition fails, by how much, and why it matters.
    """

    short: str
    message: str


def theorem_conditions(case: MapCase) -> list[Condition]:
    """The hypotheses of Prop. 4.6 (with Lemma 4.2) that ``case`` violates.

    Checked: the activation is one of pcDEQ's and is paired with the right variant
    (:func:`pcdeq.hparams.check_variant`); W >= 0 entrywise; x > 0 (pcDEQ-1) or x >= 0
    (pcDEQ-2).

    Args:
        case: the map.

    Returns:
        The violated conditions; empty when the theorem applies.
    """
    fails = []
    act = case.activation.lower()
    if act not in ACTIVATIONS_ or ACTIVATIONS_[act].variant is None:
        note = EXTRA_NOTES.get(act, "not one of pcDEQ's activations")
        fails.append(Condition(
            "σ concave",
            f"activation condition fails (Lemma 4.2): sigma = {case.activation} is {note}; "
            "pcDEQ needs a nonnegative concave activation with sigma(0) = 0 (pcDEQ-1: ReLU6, "
            "tanh, softsign) or a positive concave one (pcDEQ-2: sigmoid)"))
    else:
        try:
            check_variant(case.variant, case.activation)
        except ConfigError as e:
            fails.append(Condition("variant/activation pairing",
                                   f"activation condition fails (Lemma 4.2): {e}"))
    W, x = case.W, case.x
    if not (torch.isfinite(W).all() and torch.isfinite(x).all()):
        fails.append(Condition("finite W, x", "W or x has non-finite entries"))
    neg = int((W < 0).sum())
    if neg:
        fails.append(Condition(
            "W ≥ 0",
            f"nonnegativity condition fails: W >= 0 entrywise is required, but {neg} of "
            f"{W.numel()} entries are negative (min {float(W.min()):.3g})"))
    xmin = float(x.min())
    if case.variant == 1 and not xmin > 0:
        fails.append(Condition(
            "x > 0",
            f"input condition fails: pcDEQ-1 needs a strictly positive input x > 0, but "
            f"min x = {xmin:.3g} (with sigma(0) = 0, z = 0 can then be a second fixed point)"))
    elif case.variant == 2 and not xmin >= 0:
        fails.append(Condition(
            "x ≥ 0",
            f"input condition fails: pcDEQ-2 needs a nonnegative input x >= 0, but "
            f"min x = {xmin:.3g}"))
    return fails


def theorem_label(case: MapCase) -> str:
    """"pcDEQ-<v> theorem applies" or "OUTSIDE THE THEOREM: <condition> fails"."""
    fails = theorem_conditions(case)
    if not fails:
        return f"pcDEQ-{case.variant} theorem applies"
    return "OUTSIDE THE THEOREM: " + ", ".join(c.short for c in fails) + " fails"


def require_theorem(case: MapCase) -> None:
    """Refuse a case outside the theorem.

    Raises:
        ConfigError: naming every violated condition.
    """
    fails = theorem_conditions(case)
    if fails:
        raise ConfigError(f"{case.name}: outside the pcDEQ theorem: "
                          + "; ".join(c.message for c in fails))


# ----------------------------------------------------------------- the broken cases
@dataclass(frozen=True)
class Break:
    """One hypothesis removed from a pcDEQ-1 tanh map (same W and x otherwise).

    Attributes:
        change: what is changed (labels).
        activation: the activation of the broken map.
        apply: (W, x) -> (W', x').
        expect: what typically goes wrong (documentation only; outcomes are measured).
    """

    change: str
    activation: str
    apply: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    expect: str


def _flip_offdiagonal(W: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    eye = torch.eye(W.shape[0], dtype=W.dtype)
    return W * (2 * eye - 1), x


BREAKS: dict[str, Break] = {
    "flip_offdiagonal": Break("off-diagonal signs of W flipped", "tanh", _flip_offdiagonal,
                              "mutual inhibition: several fixed points, or a cycle"),
    "negate_W": Break("W → −W", "tanh", lambda W, x: (-W, x),
                      "an antitone map: oscillation (2-cycle)"),
    "zero_input": Break("x = 0", "tanh", lambda W, x: (W, torch.zeros_like(x)),
                        "z = 0 becomes a second fixed point (the solver's start!)"),
    "softplus": Break("softplus (convex) instead of tanh", "softplus", lambda W, x: (W, x),
                      "divergence: softplus(t) >= t and rho(W) > 1"),
}


def pcdeq_case(W: Tensor, x: Tensor, variant: int, activation: str) -> MapCase:
    """The pcDEQ map of (variant, activation) on W and x (the hypotheses are not checked
    here; :func:`theorem_conditions` does that).

    Args:
        W, x: weight and input.
        variant: the pcDEQ variant claimed (1 or 2).
        activation: the activation's name.

    Returns:
        The :class:`MapCase`.

    Raises:
        ConfigError: a non-integer variant or an unknown activation.
    """
    if int(variant) != variant:
        raise ConfigError(f"pcDEQ variant must be 1 or 2, got {variant!r}")
    activation_fn(activation)  # unknown names are refused here
    return MapCase(f"{PRETTY.get(activation.lower(), activation)} (pcDEQ-{int(variant)})",
                   W, x, activation.lower(), int(variant))


def broken_case(W: Tensor, x: Tensor, key: str) -> MapCase:
    """The pcDEQ-1 tanh map on (W, x) with one hypothesis removed (see :data:`BREAKS`).

    Args:
        W, x: the pcDEQ map's weight and input.
        key: a key of :data:`BREAKS`.

    Returns:
        The broken :class:`MapCase` (variant 1, so its conditions are checked as pcDEQ-1's).

    Raises:
        ConfigError: an unknown key.
    """
    if key not in BREAKS:
        raise ConfigError(f"unknown broken case {key!r}; known: {', '.join(BREAKS)}")
    b = BREAKS[key]
    Wb, xb = b.apply(W, x)
    name = f"{PRETTY[b.activation]}, {b.change}" if b.activation == "tanh" else b.change
    return MapCase(name, Wb, xb, b.activation, 1, b.change)


def contraction_case(W: Tensor, x: Tensor, norm: float, activation: str = "tanh") -> MapCase:
    """The pcDEQ-1 map with W rescaled to ||W||_2 = ``norm`` (a contraction if Lip(sigma) *
    norm < 1), for the comparison with Banach's bound.

    Args:
        W, x: the pcDEQ map's weight and input.
        norm: the spectral norm to rescale W to.
        activation: a pcDEQ-1 activation.

    Returns:
        The :class:`MapCase`.
    """
    Wc = W * (norm / spectral_norm(W))
    return MapCase(f"{PRETTY[activation]}, σ_max(W) = {norm:g}", Wc, x, activation, 1,
                   f"σ_max(W) = {norm:g}")
