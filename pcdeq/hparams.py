"""The datasets, the hyperparameter record and the paper's hyperparameters (Tables 5-7).

The method families and their names live in :mod:`pcdeq.families` (each family's own
settings in its module); their public names stay importable from here, as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .activations import ACTIVATIONS, ALL_ACTIVATIONS, check_variant  # noqa: F401 (re-exported)
from .errors import ConfigError  # noqa: F401 (re-exported)

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


PAPER_REF = "Gabor, Piotrowski & Cavalcante 2024"


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
    schedule: str | None = None  # "cosine": per iteration to 1e-6 (MDEQ); None: MultiStepLR per epoch
    pretrain_epochs: int | None = None  # MDEQ: epochs with f unrolled instead of solved
    backward_max_iter: int | None = None  # the adjoint solve's cap where it differs (MDEQ: B_THRES)

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
PAPER_TABLE: dict[tuple[str, str, int, bool], tuple[tuple[int, ...], int, float, int, float]] = {
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


# Names whose home is pcdeq.families, importable from here as before (resolved on first use:
# the families import this module).
_FAMILY_NAMES = frozenset({
    "METHOD_FAMILIES", "FAMILY_GROUPS", "MethodFamily", "Method", "parse_method", "method_pattern",
    "valid_method_names", "hyperparameters", "baseline_methods", "methods_for", "paper_methods",
    "JR_WEIGHT", "JR_PROB", "LIP_BOUND", "MNIST_STANDARDIZATION"})


def __getattr__(name: str):
    if name in _FAMILY_NAMES:
        from . import families
        return getattr(families, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
