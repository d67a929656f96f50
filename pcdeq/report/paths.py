"""Where things live: the run-record layout, file-safe method names and the artifacts registry.

The workflow (``workflow/common.smk``), the notebooks and the training CLI all take their paths
from here, so they can never disagree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..hparams import FAMILY_GROUPS, PAPER_DATASET_NAMES, parse_method
from ..record import RECORD_FORMAT  # re-exported: the report's readers name it

FAMILIES: tuple[str, ...] = tuple(PAPER_DATASET_NAMES)  # mnist, svhn, cifar10

# --------------------------------------------------------------------------------- paths
# Layout of run records: <root>/<dataset>/<safe method>/seed<S>.json, where <root> is
# runs/<profile> for fresh workflow runs and results/<profile> for the committed reference.
AUG_SUFFIX = "-aug"  # file-safe spelling of the "*" (augmented) in a method name
RUNS_ROOT = "runs"  # fresh runs of the workflow (git-ignored)
REFERENCE_ROOT = "results"  # committed reference records (results/quick)
LOGS_ROOT = "logs"


def safe_method(method: str) -> str:
    """File-safe spelling of a method name: ``pcDEQ-1-MC-ReLU6*`` -> ``pcDEQ-1-MC-ReLU6-aug``.

    "*" is a glob character in shells and Snakemake, so it never appears in a path.
    """
    return method[:-1] + AUG_SUFFIX if method.endswith("*") else method


def method_from_safe(safe: str) -> str:
    """Inverse of :func:`safe_method`."""
    return safe[: -len(AUG_SUFFIX)] + "*" if safe.endswith(AUG_SUFFIX) else safe


def record_path(root: str | Path, dataset: str, method: str, seed: int) -> Path:
    """Where the run record of (dataset, method, seed) lives under ``root``."""
    return Path(root) / dataset / safe_method(method) / f"seed{seed}.json"


def arch_key(method: str) -> str:
    """The size/parameter key of a method: ``L``, ``SC``, ``MC`` or ``MC*`` (augmented MC)."""
    m = parse_method(method)
    return m.arch + ("*" if m.augment else "")


# ----------------------------------------------------------------------------- artifacts
@dataclass(frozen=True)
class Artifact:
    """One table or figure of the paper, named after it (``table1_mnist``, ``fig4_sigma_max``)."""

    name: str  # file stem of the artifact
    kind: str  # "table" | "figure"
    notebook: str  # the notebook that renders it
    needs: tuple[tuple[str, tuple[str, ...]], ...]  # (family, arch keys) of the runs it reads
    title: str
    groups: tuple[str, ...] = ("pcDEQ",)  # method groups it reads (the paper's artifacts: pcDEQ)

    def wants(self, family: str, method: str) -> bool:
        """Whether the artifact reads runs of ``method`` on ``family``."""
        return (parse_method(method).group in self.groups
                and any(f == family and arch_key(method) in archs for f, archs in self.needs))

    def paths(self, out_dir: str | Path) -> list[Path]:
        """The files it is written to: ``<out_dir>/<name>`` + each suffix of its kind."""
        return artifact_paths(self.kind, self.name, out_dir)


# Tables are written as Markdown + LaTeX, figures as PDF + PNG (in this order).
SUFFIXES: dict[str, tuple[str, str]] = {"table": (".md", ".tex"), "figure": (".pdf", ".png")}


def artifact_paths(kind: str, name: str, out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<name><suffix>`` for each suffix of ``kind``."""
    return [Path(out_dir) / f"{name}{suffix}" for suffix in SUFFIXES[kind]]


_ALL_ARCHS = ("L", "SC", "MC", "MC*")
_EVERY = tuple((f, _ALL_ARCHS) for f in FAMILIES)

ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("table1_mnist", "table", "notebooks/accuracy_tables.ipynb",
             (("mnist", _ALL_ARCHS),), "Table 1: MNIST test accuracy"),
    Artifact("table2_svhn", "table", "notebooks/accuracy_tables.ipynb",
             (("svhn", _ALL_ARCHS),), "Table 2: SVHN test accuracy"),
    Artifact("table3_cifar10", "table", "notebooks/accuracy_tables.ipynb",
             (("cifar10", _ALL_ARCHS),), "Table 3: CIFAR-10 test accuracy"),
    Artifact("table4_datasets", "table", "notebooks/dataset_table.ipynb",
             _EVERY, "Table 4: dataset statistics", FAMILY_GROUPS),
    Artifact("table5_mnist_hparams", "table", "notebooks/hparam_tables.ipynb",
             (), "Table 5: MNIST hyperparameters"),
    Artifact("table6_svhn_hparams", "table", "notebooks/hparam_tables.ipynb",
             (), "Table 6: SVHN hyperparameters"),
    Artifact("table7_cifar10_hparams", "table", "notebooks/hparam_tables.ipynb",
             (), "Table 7: CIFAR-10 hyperparameters"),
    Artifact("fig2_sc_accuracy", "figure", "notebooks/figures.ipynb",
             tuple((f, ("SC",)) for f in FAMILIES),
             "Figure 2: test accuracy per epoch, SC models"),
    Artifact("fig3_sc_iterations", "figure", "notebooks/figures.ipynb",
             tuple((f, ("SC",)) for f in FAMILIES),
             "Figure 3: forward / backward fixed-point iterations per epoch, SC models"),
    Artifact("fig4_sigma_max", "figure", "notebooks/figures.ipynb",
             (("mnist", ("L",)),),
             "Figure 4: largest singular value of W per epoch, MNIST L models"),
    Artifact("fig8_mnist_curves", "figure", "notebooks/figures.ipynb",
             (("mnist", ("L", "MC")),),
             "Figure 8: MNIST L and MC models per epoch"),
    Artifact("fig9_svhn_curves", "figure", "notebooks/figures.ipynb",
             (("svhn", ("MC",)),),
             "Figure 9: SVHN MC models per epoch"),
    Artifact("fig10_cifar10_curves", "figure", "notebooks/figures.ipynb",
             (("cifar10", ("MC", "MC*")),),
             "Figure 10: CIFAR-10 MC models, without and with augmentation, per epoch"),
    # Beyond the paper: the other routes to stable DEQs in the same harness (pcDEQ beside them).
    Artifact("table8_stable_deqs", "table", "notebooks/stable_deqs.ipynb", _EVERY,
             "Table 8: stable DEQs side by side", FAMILY_GROUPS),
    Artifact("fig11_stable_deq_iterations", "figure", "notebooks/stable_deqs.ipynb", _EVERY,
             "Figure 11: fixed-point iterations and test accuracy per epoch, every stable-DEQ family",
             FAMILY_GROUPS),
    Artifact("fig12_stable_deq_sigma_max", "figure", "notebooks/stable_deqs.ipynb",
             tuple((f, ("L",)) for f in FAMILIES),
             "Figure 12: largest singular value of W per epoch, L models of every family", FAMILY_GROUPS),
)}

ACCURACY_TABLES = {"mnist": "table1_mnist", "svhn": "table2_svhn", "cifar10": "table3_cifar10"}
HPARAM_TABLES = {"mnist": "table5_mnist_hparams", "svhn": "table6_svhn_hparams",
                 "cifar10": "table7_cifar10_hparams"}


def artifacts_of(notebook: str) -> list[str]:
    """Names of the artifacts a notebook renders (``notebooks/figures.ipynb`` -> fig*)."""
    return [a.name for a in ARTIFACTS.values() if Path(a.notebook).name == Path(notebook).name]


def select(notebook: str, which: str | Sequence[str]) -> list[str]:
    """Resolve a notebook's ``which`` parameter ("all", a name, or a list of names).

    Raises:
        ValueError: a name the notebook does not render.
    """
    own = artifacts_of(notebook)
    if which == "all":
        return own
    names = [which] if isinstance(which, str) else list(which)
    bad = [n for n in names if n not in own]
    if bad:
        raise ValueError(f"{Path(notebook).name} renders {', '.join(own)}; got {', '.join(bad)}")
    return names


