"""The paper's method names, datasets and hyperparameters (Appendix B-C, Tables 5-7).

This module is the project's single source of truth for them: the models, the CLI, the
Snakemake workflow and the hyperparameter tables all read from here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

ACTIVATIONS: tuple[str, ...] = ("ReLU6", "Tanh", "Softsign", "Sigmoid")  # the paper's
# ... and ReLU, which the baselines use (monDEQ needs it; DEQ-L-ReLU, LipDEQ-SC/MC take it).
ALL_ACTIVATIONS: tuple[str, ...] = ACTIVATIONS + ("ReLU",)
ARCHITECTURES: tuple[str, ...] = ("L", "SC", "MC")


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and provenance of a dataset the models can be built for.

    ``family`` is the paper dataset whose architecture and hyperparameters apply
    (``mnist5k`` and ``fashion_mnist`` are MNIST-shaped, the synthetic stand-ins
    take the settings of the dataset they stand in for).
    """

    name: str
    family: str  # "mnist" | "svhn" | "cifar10"
    in_channels: int
    size: int  # images are size x size
    n_classes: int
    synthetic: bool
    description: str


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("mnist", "mnist", 1, 28, 10, False, "MNIST (torchvision)"),
        DatasetInfo("mnist5k", "mnist", 1, 28, 10, False,
                    "MNIST 5k subset (shipped; 4,000 train / 1,000 test)"),
        DatasetInfo("fashion_mnist", "mnist", 1, 28, 10, False, "Fashion-MNIST (torchvision)"),
        DatasetInfo("svhn", "svhn", 3, 32, 10, False, "SVHN train/test (torchvision)"),
        DatasetInfo("cifar10", "cifar10", 3, 32, 10, False, "CIFAR-10 (torchvision)"),
        DatasetInfo("synthetic-svhn", "svhn", 3, 32, 10, True,
                    "synthetic stand-in for SVHN (not real data)"),
        DatasetInfo("synthetic-cifar10", "cifar10", 3, 32, 10, True,
                    "synthetic stand-in for CIFAR-10 (not real data)"),
    )
}


# ----------------------------------------------------------------------- method families
# The one place that names each method family: the CLI, the config schema (via
# ``method_pattern``), the models, the tables and the figures all read this registry.
PAPER_REF = "Gabor, Piotrowski & Cavalcante 2024"


@dataclass(frozen=True)
class MethodFamily:
    """A route to a stable DEQ, as one family of method names.

    Attributes:
        name: the family's name as it starts a method name (``pcDEQ-1``, ``monDEQ``, ...).
        group: the row group of Table 8 / the colour of Figures 11-12 (``pcDEQ`` for both variants).
        archs: architectures the family defines.
        activations: activations its names take; empty when the family fixes one
            (``fixed_activation``) and its names carry none (``monDEQ-L``).
        augment: whether the ``*`` (augmented CIFAR-10 MC) models exist.
        summary: one line for ``python -m pcdeq list`` and the table notes.
    """

    name: str
    group: str
    archs: tuple[str, ...]
    activations: tuple[str, ...]
    fixed_activation: str | None
    augment: bool
    summary: str

    def pattern(self) -> str:
        """The family's method names as a human-readable pattern."""
        acts = f"-{{{'|'.join(self.activations)}}}" if self.activations else ""
        return f"{self.name}-{{{'|'.join(self.archs)}}}{acts}" + ("[*]" if self.augment else "")


_HARNESS_ACTS = ("ReLU", "ReLU6", "Tanh", "Softsign", "Sigmoid")
METHOD_FAMILIES: dict[str, MethodFamily] = {f.name: f for f in (
    MethodFamily("pcDEQ-1", "pcDEQ", ARCHITECTURES, ("ReLU6", "Tanh", "Softsign"), None, True,
                 f"the paper: W >= 0, nonnegative concave activation, input x > 0; {PAPER_REF}"),
    MethodFamily("pcDEQ-2", "pcDEQ", ARCHITECTURES, ("Sigmoid",), None, True,
                 f"the paper: W >= 0, sigmoid, input x >= 0; {PAPER_REF}"),
    MethodFamily("monDEQ", "monDEQ", ("L", "SC"), (), "ReLU", False,
                 "monotone W = (1-m)I - A^T A + B - B^T, Peaceman-Rachford forward and backward "
                 "(Winston & Kolter 2020); its own protocol (Adam, batch 128, tol 1e-2)"),
    MethodFamily("DEQ", "DEQ", ARCHITECTURES, _HARNESS_ACTS, None, False,
                 "standard DEQ: the paper's architecture with W free (no constraint, no input "
                 "positivity), the same plain fixed-point solver"),
    MethodFamily("DEQ-JR", "DEQ-JR", ARCHITECTURES, _HARNESS_ACTS, None, False,
                 "standard DEQ + Jacobian regularization gamma * ||J_f(z*)||_F^2 / d, Hutchinson "
                 "estimate, applied with probability p per step (Bai, Koltun & Kolter 2021)"),
    MethodFamily("LipDEQ", "LipDEQ", ARCHITECTURES, _HARNESS_ACTS, None, False,
                 "W rescaled after every step to operator norm ||W||_2 <= c < 1 (a contraction; "
                 "the Lipschitz route of Sato & Iiduka 2026)"),
)}
FAMILY_GROUPS: tuple[str, ...] = ("pcDEQ", "monDEQ", "DEQ", "DEQ-JR", "LipDEQ")


@dataclass(frozen=True)
class Method:
    """A parsed method name, e.g. ``pcDEQ-1-L-ReLU6``, ``pcDEQ-2-MC-Sigmoid*``, ``monDEQ-SC``,
    ``DEQ-JR-L-Tanh``, ``LipDEQ-MC-ReLU``."""

    family: str  # a key of METHOD_FAMILIES
    arch: str  # "L" | "SC" | "MC"
    activation: str  # the layer's activation (monDEQ: ReLU, not part of its name)
    augment: bool  # "*": CIFAR-10 with data augmentation and the wider MC* model

    @property
    def variant(self) -> int | None:
        """1 or 2 for the paper's pcDEQ-1 / pcDEQ-2, None for the other families."""
        return int(self.family[-1]) if self.family.startswith("pcDEQ-") else None

    @property
    def is_pcdeq(self) -> bool:
        return self.variant is not None

    @property
    def group(self) -> str:
        return METHOD_FAMILIES[self.family].group

    @property
    def name(self) -> str:
        act = "" if METHOD_FAMILIES[self.family].fixed_activation else f"-{self.activation}"
        return f"{self.family}-{self.arch}{act}" + ("*" if self.augment else "")


_METHOD_RE = re.compile(r"^(pcdeq-[12]|mondeq|deq-jr|deq|lipdeq)-([a-z]+)(?:-([a-z0-9]+))?(\*?)$", re.I)


class ConfigError(ValueError):
    """A bad dataset, method or hyperparameter, found before any work starts."""


def method_pattern() -> str:
    """A regular expression matching every well-formed method name (config schema, workflow)."""
    alts = []
    for f in METHOD_FAMILIES.values():
        acts = f"-({'|'.join(f.activations)})" if f.activations else ""
        alts.append(f"{f.name}-({'|'.join(f.archs)}){acts}" + (r"\*?" if f.augment else ""))
    return "^(" + "|".join(alts) + ")$"


def valid_method_names() -> str:
    """The valid method names, one pattern per family (for error messages)."""
    return ", ".join(f.pattern() for f in METHOD_FAMILIES.values())
def check_variant(variant: int, activation: str) -> None:
    """Refuse activation/variant pairings outside the theory (Lemma 4.2).

    Raises:
        ConfigError: pcDEQ-1 with a non nonnegative-concave activation, or pcDEQ-2 with
            anything but sigmoid.
    """
    if variant not in (1, 2):
        raise ConfigError(f"unknown pcDEQ variant {variant}; use 1 or 2")
    act = activation.lower()
    if variant == 2 and act != "sigmoid":
        raise ConfigError(
            f"pcDEQ-2 needs the sigmoid activation, got {activation!r}: pcDEQ-2 feeds a "
            "nonnegative (possibly zero) input, and Lemma 4.2 then needs a *positive* concave "
            "activation; ReLU6, tanh and softsign are 0 at 0. Use pcDEQ-1 for those.")
    if variant == 1 and act not in ("relu6", "tanh", "softsign"):
        raise ConfigError(
            f"pcDEQ-1 takes ReLU6, Tanh or Softsign, got {activation!r}: Lemma 4.2 needs a "
            "nonnegative concave activation on R+ with sigma(0) = 0 for pcDEQ-1; sigmoid is "
            "positive at 0 and belongs to pcDEQ-2 (pcDEQ-2-<arch>-Sigmoid).")


def parse_method(name: str) -> Method:
    """Parse a method name of any family, case-insensitively.

    Raises:
        ConfigError: a malformed name, an unknown family, an architecture or activation the
            family does not define (e.g. ``monDEQ-L-Tanh``: monDEQ needs ReLU), or a pcDEQ
            pairing that breaks Lemma 4.2. The message lists the valid names.
    """
    m = _METHOD_RE.match(name.strip())
    if not m:
        raise ConfigError(f"unknown method {name!r}; valid: {valid_method_names()} "
                          "(e.g. pcDEQ-1-L-ReLU6, pcDEQ-2-SC-Sigmoid, monDEQ-L, DEQ-L-Tanh)")
    fam = next(f for f in METHOD_FAMILIES.values() if f.name.lower() == m[1].lower())
    arch, act, star = m[2].upper(), m[3], bool(m[4])
    if arch not in fam.archs:
        raise ConfigError(f"{name!r}: {fam.name} has no {arch} architecture; valid: {fam.pattern()}"
                          + (" (monDEQ-MT, the multi-tier model, is not implemented here)"
                             if fam.name == "monDEQ" and arch == "MT" else ""))
    known = {a.lower(): a for a in ALL_ACTIVATIONS}
    if fam.fixed_activation:
        if act is not None:
            raise ConfigError(
                f"{name!r}: {fam.name} is defined with {fam.fixed_activation} only (its "
                f"nonlinearity is the proximal map of z >= 0, Winston & Kolter 2020, Thm. 1), so "
                f"its names carry no activation; valid: {fam.pattern()}, e.g. {fam.name}-{arch}")
        activation = fam.fixed_activation
    elif act is None:
        raise ConfigError(f"{name!r}: missing the activation; valid: {fam.pattern()}")
    elif act.lower() not in known:
        raise ConfigError(f"{name!r}: unknown activation {act!r}; valid: {fam.pattern()}")
    else:
        activation = known[act.lower()]
        if fam.name.startswith("pcDEQ-"):
            check_variant(int(fam.name[-1]), activation)  # the Lemma 4.2 message
        elif activation not in fam.activations:
            raise ConfigError(f"{name!r}: {fam.name} takes {', '.join(fam.activations)}, got "
                              f"{act!r}; valid: {fam.pattern()}")
    if star and not (fam.augment and arch == "MC"):
        raise ConfigError(f"{name!r}: the '*' (augmented) models exist only for pcDEQ MC on CIFAR-10")
    return Method(fam.name, arch, activation, star)


@dataclass(frozen=True)
class HParams:
    """Everything a training run needs besides dataset, method and seed.

    The fields after ``max_iter`` are the baselines' own settings; ``None`` means the field
    does not apply to the method, and such fields are left out of :meth:`to_dict` (and so
    of run records).
    """

    channels: tuple[int, ...]
    epochs: int
    lr: float
    lr_decay_epoch: int  # first MultiStepLR milestone (epoch index)
    lr_decay_factor: float
    weight_decay: float
    batch_size: int = 64
    tol: float = 1e-4
    max_iter: int = 200
    optimizer: str = "adamw"  # "adamw" (pcDEQ, the harness DEQs) | "adam" (monDEQ)
    lr_decay_every: int | None = None  # decay every k epochs (monDEQ's StepLR); None: once
    input_norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) override
    jr_weight: float | None = None  # DEQ-JR: gamma
    jr_prob: float | None = None  # DEQ-JR: probability p of a regularized step
    lip_bound: float | None = None  # LipDEQ: c, ||W||_2 <= c < 1
    mon_m: float | None = None  # monDEQ: monotonicity, I - W >= m I
    mon_alpha: float | None = None  # monDEQ: initial Peaceman-Rachford step (then tuned)

    def milestones(self) -> list[int]:
        """The epochs after which the learning rate is multiplied by ``lr_decay_factor``."""
        if self.lr_decay_every is None:
            return [self.lr_decay_epoch]
        return list(range(self.lr_decay_epoch, self.epochs, self.lr_decay_every))

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        d["channels"] = list(self.channels)
        if "input_norm" in d:
            d["input_norm"] = [list(t) for t in self.input_norm]
        if self.optimizer == "adamw":  # the paper's setting: records of pcDEQ runs stay as they were
            del d["optimizer"]
        return d


# (dataset family, arch, variant, augment) -> (channels, epochs, lr, decay epoch, weight decay).
# Tables 5-7 of the paper; the decay factor is 0.1 and the batch size 64 everywhere.
_TABLE: dict[tuple[str, str, int, bool], tuple[tuple[int, ...], int, float, int, float]] = {
    ("mnist", "L", 1, False): ((80,), 40, 1e-3, 30, 0.02),
    ("mnist", "L", 2, False): ((80,), 40, 1e-3, 30, 0.02),
    ("mnist", "SC", 1, False): ((82,), 40, 7e-4, 30, 0.02),
    ("mnist", "SC", 2, False): ((82,), 40, 2e-4, 30, 0.02),
    ("mnist", "MC", 1, False): ((12, 24, 48), 40, 5e-4, 30, 0.015),
    ("mnist", "MC", 2, False): ((12, 24, 48), 40, 2e-4, 30, 0.015),
    ("svhn", "SC", 1, False): ((125,), 80, 7e-4, 70, 0.02),
    ("svhn", "SC", 2, False): ((125,), 80, 5e-4, 70, 0.02),
    ("svhn", "MC", 1, False): ((20, 50, 80), 50, 5e-4, 40, 0.015),
    ("svhn", "MC", 2, False): ((20, 50, 80), 50, 2e-4, 40, 0.015),
    ("cifar10", "SC", 1, False): ((125,), 80, 5e-4, 70, 0.02),
    ("cifar10", "SC", 2, False): ((125,), 80, 2e-4, 70, 0.02),
    ("cifar10", "MC", 1, False): ((20, 50, 80), 50, 7e-4, 40, 0.015),
    ("cifar10", "MC", 2, False): ((20, 50, 80), 50, 2e-4, 40, 0.015),
    ("cifar10", "MC", 1, True): ((100, 120, 140), 120, 7e-4, 100, 0.02),
    ("cifar10", "MC", 2, True): ((100, 120, 140), 120, 2e-4, 100, 0.02),
}

PAPER_DATASET_NAMES = {"mnist": "MNIST", "svhn": "SVHN", "cifar10": "CIFAR-10"}


def dataset_info(dataset: str) -> DatasetInfo:
    """Look up a dataset by name (case-insensitive, '-' and '_' interchangeable)."""
    key = dataset.strip().lower().replace("_", "-")
    for name, info in DATASETS.items():
        if name.replace("_", "-") == key:
            return info
    raise ConfigError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def methods_for(family: str) -> list[str]:
    """The paper's methods for a dataset family, in the order of Tables 1-3."""
    out = []
    for (fam, arch, variant, augment) in _TABLE:
        if fam != family:
            continue
        acts = ("Sigmoid",) if variant == 2 else ACTIVATIONS[:3]
        out += [Method(f"pcDEQ-{variant}", arch, a, augment).name for a in acts]
    return out


def paper_methods() -> dict[str, list[str]]:
    """Every (dataset family -> methods) pair of Tables 1-3: 12 + 8 + 12 = 32 methods."""
    return {fam: methods_for(fam) for fam in PAPER_DATASET_NAMES}


# The baselines run side by side with pcDEQ (the names of the stable-DEQ comparison, Table 8).
_BASELINES: tuple[str, ...] = (
    "monDEQ-L", "monDEQ-SC", "DEQ-L-Tanh", "DEQ-L-ReLU", "DEQ-SC-Tanh", "DEQ-MC-Tanh",
    "DEQ-JR-L-Tanh", "DEQ-JR-SC-Tanh", "LipDEQ-L-Tanh", "LipDEQ-SC-ReLU", "LipDEQ-MC-ReLU")


def baseline_methods(family: str) -> list[str]:
    """The stable-DEQ baselines defined for a dataset family (L models only on MNIST)."""
    return [m for m in _BASELINES if family == "mnist" or parse_method(m).arch != "L"]


# monDEQ's own protocol (Winston & Kolter 2020, App. E, Table E1; their train.py / notebook):
# (family, arch) -> (width, lr decay every k epochs). Adam, lr 1e-3, batch 128, 40 epochs,
# tol 1e-2, max_iter 300, m = 1, alpha = 1 then tuned, inputs standardized.
# MNIST SC: 54 channels as in Table E1 and the authors' notebook (79,500 parameters); Table E1's
# 84K is the count for 56 channels.
_MONDEQ: dict[tuple[str, str], tuple[int, int]] = {
    ("mnist", "L"): (87, 10), ("mnist", "SC"): (54, 10),
    ("svhn", "SC"): (81, 25), ("cifar10", "SC"): (81, 25),
}
MNIST_STANDARDIZATION = ((0.1307,), (0.3081,))  # monDEQ's inputs (pcDEQ uses none on MNIST)
# Defaults of the harness baselines (overridable: --jr-weight, --jr-prob, --lip-bound).
# JR: the synthetic-task setting of Bai et al. 2021 (Table 4: p = 0.4, gamma in {0,1,2,4});
# their CIFAR-10 MDEQ used gamma 0.5, p 0.05 over 10^5 steps, too few draws for short runs.
JR_WEIGHT, JR_PROB = 1.0, 0.4
LIP_BOUND = 0.9


def hyperparameters(dataset: str, method: str | Method) -> HParams:
    """The hyperparameters of a (dataset, method) pair: the paper's Tables 5-7 for pcDEQ and
    for the harness DEQs (DEQ, DEQ-JR, LipDEQ take pcDEQ-1's row of the same architecture),
    monDEQ's own protocol for monDEQ.

    Raises:
        ConfigError: if no such model exists (e.g. an L model on SVHN).
    """
    info = dataset_info(dataset)
    m = parse_method(method) if isinstance(method, str) else method
    if m.family == "monDEQ":
        if (info.family, m.arch) not in _MONDEQ:
            raise ConfigError(f"no {m.name} model for {info.name}; valid: "
                              f"{', '.join(baseline_methods(info.family))}")
        width, every = _MONDEQ[(info.family, m.arch)]
        return HParams((width,), 40, 1e-3, every, 0.1, 0.0, batch_size=128, tol=1e-2,
                       max_iter=300, optimizer="adam", lr_decay_every=every,
                       input_norm=MNIST_STANDARDIZATION if info.family == "mnist" else None,
                       mon_m=1.0, mon_alpha=1.0)
    key = (info.family, m.arch, m.variant or 1, m.augment)
    if key not in _TABLE:
        valid = ", ".join(methods_for(info.family) + baseline_methods(info.family))
        raise ConfigError(f"no {m.name} model for {info.name} "
                          f"({PAPER_DATASET_NAMES[info.family]} family); valid: {valid}")
    channels, epochs, lr, decay, wd = _TABLE[key]
    extra = {"DEQ-JR": dict(jr_weight=JR_WEIGHT, jr_prob=JR_PROB),
             "LipDEQ": dict(lip_bound=LIP_BOUND)}.get(m.family, {})
    return HParams(channels, epochs, lr, decay, 0.1, wd, **extra)
