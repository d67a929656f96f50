"""Numbers quoted from the paper (Gabor, Piotrowski & Cavalcante, ICML 2024).

Everything here is a *quotation*, printed beside the project's own results and always
labelled as such; nothing in this module is ever computed or passed off as ours:

* the baselines of Tables 1-3, which the paper itself quotes from Dupont et al. (2019) (†)
  and Winston & Kolter (2020) (‡); ``*`` marks training with data augmentation;
* the paper's own pcDEQ accuracies (Tables 1-3, mean of 5 runs) and rounded #params;
* the dataset sizes of Table 4.

Source of every value: ``shared/spec/paper.md`` sections 3 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER: str = ("Gabor, Piotrowski & Cavalcante (2024), Positive Concave Deep Equilibrium "
              "Models, ICML")

# mark -> the publication a quoted baseline comes from (as in the paper's tables).
SOURCES: dict[str, str] = {
    "†": "Dupont, Doucet & Teh (2019), Augmented Neural ODEs, NeurIPS",
    "‡": "Winston & Kolter (2020), Monotone operator equilibrium networks, NeurIPS",
}


@dataclass(frozen=True)
class Baseline:
    """A baseline row of Tables 1-3 as the paper quotes it."""

    model: str  # as printed in the paper; "*" = trained with data augmentation
    params: str  # rounded, as printed ("84K", "1M")
    acc: float  # test accuracy [%]
    mark: str  # key of SOURCES

    @property
    def source(self) -> str:
        return SOURCES[self.mark]


BASELINES: dict[str, tuple[Baseline, ...]] = {
    "mnist": (
        Baseline("NODE", "84K", 96.4, "†"),
        Baseline("ANODE", "84K", 98.2, "†"),
        Baseline("monDEQ-L", "84K", 98.1, "‡"),
        Baseline("monDEQ-SC", "84K", 99.1, "‡"),
        Baseline("monDEQ-MT", "81K", 99.0, "‡"),
    ),
    "svhn": (
        Baseline("NODE", "172K", 81.0, "†"),
        Baseline("ANODE", "172K", 83.5, "†"),
        Baseline("monDEQ-SC", "172K", 88.7, "‡"),
        Baseline("monDEQ-MT", "170K", 92.4, "‡"),
    ),
    "cifar10": (
        Baseline("NODE", "172K", 53.7, "†"),
        Baseline("NODE*", "1M", 59.9, "‡"),
        Baseline("ANODE", "172K", 60.6, "†"),
        Baseline("ANODE*", "1M", 73.4, "‡"),
        Baseline("monDEQ-SC", "172K", 74.0, "‡"),
        Baseline("monDEQ-SC*", "854K", 82.0, "‡"),
        Baseline("monDEQ-MT", "170K", 72.0, "‡"),
        Baseline("monDEQ-MT*", "1M", 89.0, "‡"),
    ),
}


def _four(family: str, arch: str, accs: tuple[float, float, float, float],
          star: str = "") -> dict[tuple[str, str], float]:
    """(family, method) -> accuracy for the ReLU6, Tanh, Softsign (pcDEQ-1), Sigmoid (pcDEQ-2) row."""
    names = (f"pcDEQ-1-{arch}-ReLU6{star}", f"pcDEQ-1-{arch}-Tanh{star}",
             f"pcDEQ-1-{arch}-Softsign{star}", f"pcDEQ-2-{arch}-Sigmoid{star}")
    return {(family, n): a for n, a in zip(names, accs)}


# The paper's own pcDEQ test accuracies [%], mean over 5 runs (Tables 1-3).
PAPER_ACCURACY: dict[tuple[str, str], float] = {
    **_four("mnist", "L", (98.1, 98.2, 98.1, 98.1)),
    **_four("mnist", "SC", (99.2, 99.2, 99.1, 98.9)),
    **_four("mnist", "MC", (99.3, 99.2, 99.2, 98.7)),
    **_four("svhn", "SC", (88.0, 88.1, 88.4, 87.3)),
    **_four("svhn", "MC", (93.0, 92.3, 92.3, 91.5)),
    **_four("cifar10", "SC", (76.3, 76.6, 76.4, 75.5)),
    **_four("cifar10", "MC", (78.2, 76.5, 77.1, 71.0)),
    **_four("cifar10", "MC", (89.2, 88.5, 89.0, 85.6), star="*"),
}

# The paper's rounded #params per (family, architecture); "MC*" is the augmented CIFAR model.
PAPER_PARAMS: dict[tuple[str, str], str] = {
    ("mnist", "L"): "70K", ("mnist", "SC"): "69K", ("mnist", "MC"): "41K",
    ("svhn", "SC"): "165K", ("svhn", "MC"): "131K",
    ("cifar10", "SC"): "165K", ("cifar10", "MC"): "131K", ("cifar10", "MC*"): "661K",
}

# Table 4: (train, test) images of the datasets the paper uses.
PAPER_DATASET_SIZES: dict[str, tuple[int, int]] = {
    "mnist": (60_000, 10_000),
    "svhn": (73_257, 26_032),
    "cifar10": (50_000, 10_000),
}


def paper_accuracy(family: str, method: str) -> float | None:
    """The paper's mean test accuracy for a method, or None if the paper has none."""
    return PAPER_ACCURACY.get((family, method))
