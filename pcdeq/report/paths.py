"""Where things live: the run-record layout and file-safe method names (the artifacts, their
names and files: :mod:`.artifacts`).

The workflow (``workflow/common.smk``), the notebooks and the training CLI all take their paths
from here, so they can never disagree on them.
"""

from __future__ import annotations

from pathlib import Path

from ..hparams import PAPER_DATASET_NAMES, parse_method
from ..record import RECORD_FORMAT  # re-exported: the report's readers name it

FAMILIES: tuple[str, ...] = tuple(PAPER_DATASET_NAMES)  # mnist, svhn, cifar10

# --------------------------------------------------------------------------------- paths
# Layout of run records: <root>/<dataset>/<safe method>/seed<S>.json, where <root> is
# runs/<profile> for fresh workflow runs and results/<profile> for the committed reference.
AUG_SUFFIX = "-aug"  # file-safe spelling of the "*" (augmented) in a method name
RUNS_ROOT = "runs"  # fresh runs of the workflow (git-ignored)
REFERENCE_ROOT = "results"  # committed reference records (results/quick)
LOGS_ROOT = "logs"
# The measurements of a results folder's trained models (claims C1, C2, C7 and Figure 15), beside
# its weights: <root>/model_evidence.json (``python -m pcdeq evidence``, rule model_evidence).
EVIDENCE_FILE = "model_evidence.json"


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


# The architecture keys: the paper's, in its order (Tables 1-3 and 8, Figures 2-4 and 8-12),
# then the multiscale models beyond the paper (Table 10, Figure 16).
PAPER_ARCHS: tuple[str, ...] = ("L", "SC", "MC", "MC*")
ALL_ARCHS: tuple[str, ...] = PAPER_ARCHS + ("MS",)


def arch_key(method: str) -> str:
    """The size/parameter key of a method: ``L``, ``SC``, ``MC``, ``MC*`` (augmented MC) or
    ``MS`` (multiscale)."""
    return parse_method(method).arch_key
