"""The paper's method names, datasets and hyperparameters (Appendix B-C, Tables 5-7).

This module is the project's single source of truth for them: the models, the CLI, the
Snakemake workflow and the hyperparameter tables all read from here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

ACTIVATIONS: tuple[str, ...] = ("ReLU6", "Tanh", "Softsign", "Sigmoid")
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


@dataclass(frozen=True)
class Method:
    """A parsed method name ``pcDEQ-{1|2}-{L|SC|MC}-{activation}[*]``."""

    variant: int  # 1: nonnegative concave activation, positive input; 2: sigmoid, nonnegative input
    arch: str  # "L" | "SC" | "MC"
    activation: str  # one of ACTIVATIONS
    augment: bool  # "*": CIFAR-10 with data augmentation and the wider MC* model

    @property
    def name(self) -> str:
        return f"pcDEQ-{self.variant}-{self.arch}-{self.activation}" + ("*" if self.augment else "")


_METHOD_RE = re.compile(r"^pcdeq-([12])-(l|sc|mc)-(relu6|tanh|softsign|sigmoid)(\*?)$", re.I)


class ConfigError(ValueError):
    """A bad dataset, method or hyperparameter, found before any work starts."""


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
    """Parse a method name, case-insensitively.

    Raises:
        ConfigError: if the name is malformed or pairs a variant with an activation that
            breaks Lemma 4.2.
    """
    m = _METHOD_RE.match(name.strip())
    if not m:
        raise ConfigError(
            f"unknown method {name!r}; expected pcDEQ-{{1|2}}-{{L|SC|MC}}-"
            f"{{{'|'.join(ACTIVATIONS)}}}[*], e.g. pcDEQ-1-L-ReLU6 or pcDEQ-2-SC-Sigmoid")
    variant, arch, act, star = int(m[1]), m[2].upper(), m[3].lower(), bool(m[4])
    activation = next(a for a in ACTIVATIONS if a.lower() == act)
    check_variant(variant, activation)
    if star and arch != "MC":
        raise ConfigError(f"{name!r}: the '*' (augmented) models exist only for MC on CIFAR-10")
    return Method(variant, arch, activation, star)


@dataclass(frozen=True)
class HParams:
    """Everything a training run needs besides dataset, method and seed."""

    channels: tuple[int, ...]
    epochs: int
    lr: float
    lr_decay_epoch: int  # MultiStepLR milestone (epoch index)
    lr_decay_factor: float
    weight_decay: float
    batch_size: int = 64
    tol: float = 1e-4
    max_iter: int = 200

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
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
        out += [Method(variant, arch, a, augment).name for a in acts]
    return out


def paper_methods() -> dict[str, list[str]]:
    """Every (dataset family -> methods) pair of Tables 1-3: 12 + 8 + 12 = 32 methods."""
    return {fam: methods_for(fam) for fam in PAPER_DATASET_NAMES}


def hyperparameters(dataset: str, method: str | Method) -> HParams:
    """The paper's hyperparameters for a (dataset, method) pair.

    Raises:
        ConfigError: if the paper has no such model (e.g. an L model on SVHN).
    """
    info = dataset_info(dataset)
    m = parse_method(method) if isinstance(method, str) else method
    key = (info.family, m.arch, m.variant, m.augment)
    if key not in _TABLE:
        valid = ", ".join(methods_for(info.family))
        raise ConfigError(f"the paper has no {m.name} model for {info.name} "
                          f"({PAPER_DATASET_NAMES[info.family]} family); valid: {valid}")
    channels, epochs, lr, decay, wd = _TABLE[key]
    return HParams(channels, epochs, lr, decay, 0.1, wd)
