"""The artifact registry: every table and figure of the paper (and beyond it), each named once.

An :class:`Artifact` entry holds all that is known about one artifact: its name (the file stem;
its prefix, ``fig4``, is the Snakemake target), its kind (which fixes the suffixes and the
folder), the notebook that renders it, its title and report section, and what it reads (the
runs, the profile's config, or nothing but synthetic problems). A :class:`Notebook` entry holds
how the workflow runs a notebook: the parameters it passes, the code the artifacts are rendered
by (a change there redoes them) and the resources of the job.

Everything else follows from the two registries, so that a name is written in one place only:
the rendering rules of the workflow (:data:`RENDER_RULES`, generated in
``workflow/rules/artifacts.smk``), the named targets (``workflow/rules/targets.smk``), the
sections of ``snakemake --report``, the files of ``snakemake all``, and the names the notebooks
and :mod:`pcdeq.theory` write their files under (:data:`GEOMETRY_FIGURE`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..hparams import FAMILY_GROUPS, parse_method
from .paths import ALL_ARCHS, FAMILIES, PAPER_ARCHS, arch_key

# ------------------------------------------------------------------------------- files
# Tables are written as Markdown + LaTeX, figures as PDF + PNG (in this order).
SUFFIXES: dict[str, tuple[str, str]] = {"table": (".md", ".tex"), "figure": (".pdf", ".png")}
# The file of each kind that `snakemake --report` shows.
REPORTED_SUFFIX: dict[str, str] = {"table": ".md", "figure": ".png"}


def artifact_paths(kind: str, name: str, out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<name><suffix>`` for each suffix of ``kind``."""
    return [Path(out_dir) / f"{name}{suffix}" for suffix in SUFFIXES[kind]]


# ------------------------------------------------------------------- report sections
# The categories of `snakemake --report`: the paper's sections, in this order.
SECTION_EXPERIMENTS = "1. Experiments (Sec. 5: Tables 1-3, Figures 2-4; App. D: Figures 8-10)"
SECTION_DATA = "2. Data and hyperparameters (App. C: Tables 4-7)"
SECTION_STABLE_DEQS = "3. Beyond the paper: the other stable DEQs (Tables 8, 10; Figures 11-12, 16)"
SECTION_THEORY = "4. Theory on synthetic problems (Figures 13-14, Table 9)"
SECTION_CLAIMS = "5. The paper's claims, checked"
SECTIONS: tuple[str, ...] = (SECTION_EXPERIMENTS, SECTION_DATA, SECTION_STABLE_DEQS, SECTION_THEORY,
                             SECTION_CLAIMS)


# ------------------------------------------------------------------------- notebooks
# Code globs (relative to the repository root) that artifacts are rendered by.
REPORT_CODE: tuple[str, ...] = ("pcdeq/report/*.py", "pcdeq/paper_results.py")
THEORY_CODE: tuple[str, ...] = ("pcdeq/theory/*.py", "pcdeq/solver.py", "pcdeq/layers.py",
                                "pcdeq/activations.py", "pcdeq/hparams.py")
# The parameters of the notebooks that render one artifact of the profile's runs per execution.
RECORD_PARAMS: tuple[str, ...] = ("profile", "results_dir", "records", "which", "out_dir")


@dataclass(frozen=True)
class Notebook:
    """A parameterized notebook as the workflow runs it (Papermill, one job per execution)."""

    path: str
    params: tuple[str, ...]  # the parameters the workflow passes (values: workflow/common.smk)
    code: tuple[str, ...] = REPORT_CODE  # globs of the code its artifacts are rendered by
    # A notebook that takes `which` renders one artifact per job, in the rule named after the
    # artifact's kind ("table", "figure"); any other renders all its artifacts in one job, in
    # the rule named here.
    rule: str | None = None
    mem_mb: int = 2000
    runtime: int = 10  # minutes

    @property
    def each(self) -> bool:
        """Whether a job renders one artifact (the one named by `which`) or all of them."""
        return "which" in self.params

    def code_files(self, root: str | Path) -> list[str]:
        """The files matched by :attr:`code` under ``root``, relative to it, without repeats."""
        return code_files(self.code, root)


def code_files(globs: tuple[str, ...], root: str | Path) -> list[str]:
    """The files matched by ``globs`` under ``root``, relative to it, without repeats."""
    files = [p.relative_to(root).as_posix() for g in globs for p in sorted(Path(root).glob(g))]
    return list(dict.fromkeys(files))


ACCURACY_NOTEBOOK = Notebook("notebooks/accuracy_tables.ipynb", RECORD_PARAMS)
DATASET_NOTEBOOK = Notebook("notebooks/dataset_table.ipynb", RECORD_PARAMS + ("data_root",))
# Tables 5-7 print the hyperparameters (pcdeq/hparams.py: the paper's; each family's own in
# pcdeq/families/) beside the profile's sizes.
HPARAM_NOTEBOOK = Notebook("notebooks/hparam_tables.ipynb",
                           ("profile", "which", "out_dir", "experiments", "description"),
                           code=REPORT_CODE + ("pcdeq/hparams.py", "pcdeq/families/*.py"))
FIGURES_NOTEBOOK = Notebook("notebooks/figures.ipynb", RECORD_PARAMS)
STABLE_DEQS_NOTEBOOK = Notebook("notebooks/stable_deqs.ipynb", RECORD_PARAMS)
MULTISCALE_NOTEBOOK = Notebook("notebooks/multiscale.ipynb", RECORD_PARAMS)
GEOMETRY_NOTEBOOK = Notebook("notebooks/pcdeq_theory.ipynb", ("profile", "out_dir", "tables_dir"),
                             code=THEORY_CODE + REPORT_CODE, rule="theory_geometry", runtime=5)
DYNAMICS_NOTEBOOK = Notebook("notebooks/linear_deq_dynamics.ipynb", ("profile", "out_dir"),
                             code=THEORY_CODE + REPORT_CODE, rule="theory_dynamics", runtime=5)
# The measurements of the trained models (C1, C2, C7, Figure 15's study) are computed once per
# profile by the rule model_evidence (`python -m pcdeq evidence`, this code), written beside the
# weights (paths.EVIDENCE_FILE); the claims and Figure 15 notebooks only read them.
EVIDENCE_CODE: tuple[str, ...] = ("pcdeq/cli.py", "pcdeq/paper_claims/from_models.py",
                                  "pcdeq/paper_claims/fixed_points.py", "pcdeq/paper_claims/sources.py",
                                  "pcdeq/beyond_contraction.py", "pcdeq/numerics.py",
                                  # the models rebuilt from the weights, their test images
                                  "pcdeq/train.py", "pcdeq/models.py", "pcdeq/multiscale_pcdeq.py",
                                  "pcdeq/data.py") + THEORY_CODE
CLAIMS_NOTEBOOK = Notebook("notebooks/claims.ipynb", ("sources", "out_dir"),
                           code=REPORT_CODE + ("pcdeq/claims.py", "pcdeq/paper_claims/*.py",
                                               "pcdeq/beyond_contraction.py"),
                           rule="claims_table", runtime=5)
BEYOND_NOTEBOOK = Notebook(
    "notebooks/beyond_contraction.ipynb", ("profile", "weights_dir", "weights", "out_dir"),
    code=REPORT_CODE + ("pcdeq/beyond_contraction.py", "pcdeq/claims.py", "pcdeq/paper_claims/*.py"),
    rule="beyond_contraction", runtime=5)
NOTEBOOKS: dict[str, Notebook] = {n.path: n for n in (
    ACCURACY_NOTEBOOK, DATASET_NOTEBOOK, HPARAM_NOTEBOOK, FIGURES_NOTEBOOK, STABLE_DEQS_NOTEBOOK,
    MULTISCALE_NOTEBOOK, GEOMETRY_NOTEBOOK, DYNAMICS_NOTEBOOK, CLAIMS_NOTEBOOK, BEYOND_NOTEBOOK)}


# ------------------------------------------------------------------------- artifacts
@dataclass(frozen=True)
class Artifact:
    """One table or figure, named after it in the paper (``table1_mnist``, ``fig4_sigma_max``).

    What it reads decides which training jobs the workflow runs for it and whether a profile
    makes it at all (``workflow/common.smk``, ``in_profile``).
    """

    name: str  # file stem
    kind: str  # "table" | "figure"
    notebook: Notebook
    title: str
    section: str  # one of SECTIONS
    # The run records it reads: (family, arch keys) of the runs of the method groups below.
    needs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    groups: tuple[str, ...] = ("pcDEQ",)
    weights: bool = False  # also the seed-0 weights of the profile's `reference_weights` models
    family: str | None = None  # the family a per-family table is about (Tables 1-3, 5-7)
    synthetic: bool = False  # synthetic problems, no runs (left out by `theory: false`)
    provenance: str | None = None  # its report label where that is not its runs' caption
    extra_stems: tuple[str, ...] = ()  # more files of its kind the notebook writes with it
    target_also: tuple[str, ...] = ()  # artifacts its named target makes too

    @property
    def short(self) -> str:
        """Its short paper name, the Snakemake target: ``fig4``, ``table1``, ``claims``."""
        return self.name.split("_")[0]

    def wants(self, family: str, method: str) -> bool:
        """Whether the artifact reads run records of ``method`` on ``family``."""
        return (parse_method(method).group in self.groups
                and any(f == family and arch_key(method) in archs for f, archs in self.needs))

    def paths(self, out_dir: str | Path) -> list[Path]:
        """The files it is written to: ``<out_dir>/<stem>`` + each suffix of its kind."""
        return [p for stem in (self.name, *self.extra_stems)
                for p in artifact_paths(self.kind, stem, out_dir)]

    @property
    def rule(self) -> str:
        """The name of the Snakemake rule that renders it."""
        return self.notebook.rule or self.kind


_EVERY = tuple((f, ALL_ARCHS) for f in FAMILIES)
_PAPER_EVERY = tuple((f, PAPER_ARCHS) for f in FAMILIES)  # the multiscale models aside
_MULTISCALE = tuple((f, ("MS",)) for f in FAMILIES)
_RANDOM_MAPS = "synthetic: random W >= 0 and x, no training runs"

# The theory notebooks, Figure 15 and the claims write their files under these names.
GEOMETRY_FIGURE = Artifact(
    "fig13_fixed_point_geometry", "figure", GEOMETRY_NOTEBOOK,
    "Figure 13: fixed-point geometry (synthetic maps)", SECTION_THEORY, synthetic=True,
    provenance=_RANDOM_MAPS)
CONVERGENCE_TABLE = Artifact(
    "table9_convergence", "table", GEOMETRY_NOTEBOOK,
    "Table 9: fixed-point iteration on pcDEQ maps and on maps outside the theorem",
    SECTION_THEORY, synthetic=True, provenance=_RANDOM_MAPS)
DYNAMICS_FIGURE = Artifact(
    "fig14_linear_deq_dynamics", "figure", DYNAMICS_NOTEBOOK,
    "Figure 14: gradient descent on linear DEQs", SECTION_THEORY, synthetic=True,
    provenance="synthetic: Gaussian data, no training runs")
BEYOND_FIGURE = Artifact(
    "fig15_beyond_contraction", "figure", BEYOND_NOTEBOOK,
    "Figure 15: the theorem beyond contraction", SECTION_CLAIMS, weights=True,
    provenance="this profile's trained pcDEQ and DEQ models")
# Its evidence: every run of the profile, the weights, and the other profiles' committed
# results (workflow/common.smk, claims_sources).
CLAIMS_TABLE = Artifact(
    "claims", "table", CLAIMS_NOTEBOOK, "The paper's claims, checked", SECTION_CLAIMS,
    _EVERY, FAMILY_GROUPS, weights=True,
    provenance="this profile's runs beside the committed results of the other profiles "
               "(named in the table)",
    extra_stems=("claims_summary",), target_also=(BEYOND_FIGURE.name,))

ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("table1_mnist", "table", ACCURACY_NOTEBOOK,
             "Table 1: MNIST test accuracy", SECTION_EXPERIMENTS, (("mnist", PAPER_ARCHS),),
             family="mnist"),
    Artifact("table2_svhn", "table", ACCURACY_NOTEBOOK,
             "Table 2: SVHN test accuracy", SECTION_EXPERIMENTS, (("svhn", PAPER_ARCHS),),
             family="svhn"),
    Artifact("table3_cifar10", "table", ACCURACY_NOTEBOOK,
             "Table 3: CIFAR-10 test accuracy", SECTION_EXPERIMENTS, (("cifar10", PAPER_ARCHS),),
             family="cifar10"),
    Artifact("table4_datasets", "table", DATASET_NOTEBOOK,
             "Table 4: dataset statistics", SECTION_DATA, _EVERY, FAMILY_GROUPS),
    Artifact("table5_mnist_hparams", "table", HPARAM_NOTEBOOK,
             "Table 5: MNIST hyperparameters", SECTION_DATA, family="mnist"),
    Artifact("table6_svhn_hparams", "table", HPARAM_NOTEBOOK,
             "Table 6: SVHN hyperparameters", SECTION_DATA, family="svhn"),
    Artifact("table7_cifar10_hparams", "table", HPARAM_NOTEBOOK,
             "Table 7: CIFAR-10 hyperparameters", SECTION_DATA, family="cifar10"),
    Artifact("fig2_sc_accuracy", "figure", FIGURES_NOTEBOOK,
             "Figure 2: test accuracy per epoch, SC models", SECTION_EXPERIMENTS,
             tuple((f, ("SC",)) for f in FAMILIES)),
    Artifact("fig3_sc_iterations", "figure", FIGURES_NOTEBOOK,
             "Figure 3: forward / backward fixed-point iterations per epoch, SC models",
             SECTION_EXPERIMENTS, tuple((f, ("SC",)) for f in FAMILIES)),
    Artifact("fig4_sigma_max", "figure", FIGURES_NOTEBOOK,
             "Figure 4: largest singular value of W per epoch, MNIST L models", SECTION_EXPERIMENTS,
             (("mnist", ("L",)),)),
    Artifact("fig8_mnist_curves", "figure", FIGURES_NOTEBOOK,
             "Figure 8: MNIST L and MC models per epoch", SECTION_EXPERIMENTS,
             (("mnist", ("L", "MC")),)),
    Artifact("fig9_svhn_curves", "figure", FIGURES_NOTEBOOK,
             "Figure 9: SVHN MC models per epoch", SECTION_EXPERIMENTS, (("svhn", ("MC",)),)),
    Artifact("fig10_cifar10_curves", "figure", FIGURES_NOTEBOOK,
             "Figure 10: CIFAR-10 MC models, without and with augmentation, per epoch",
             SECTION_EXPERIMENTS, (("cifar10", ("MC", "MC*")),)),
    # Beyond the paper: the other routes to stable DEQs in the same harness (pcDEQ beside them).
    Artifact("table8_stable_deqs", "table", STABLE_DEQS_NOTEBOOK,
             "Table 8: stable DEQs side by side", SECTION_STABLE_DEQS, _PAPER_EVERY, FAMILY_GROUPS),
    Artifact("fig11_stable_deq_iterations", "figure", STABLE_DEQS_NOTEBOOK,
             "Figure 11: fixed-point iterations and test accuracy per epoch, every stable-DEQ "
             "family", SECTION_STABLE_DEQS, _PAPER_EVERY, FAMILY_GROUPS),
    Artifact("fig12_stable_deq_sigma_max", "figure", STABLE_DEQS_NOTEBOOK,
             "Figure 12: largest singular value of W per epoch, L models of every family",
             SECTION_STABLE_DEQS, tuple((f, ("L",)) for f in FAMILIES), FAMILY_GROUPS),
    # Beyond the paper: the multiscale equilibrium models (MDEQ, the Lipschitz MDEQ, the
    # multiscale pcDEQ), the same harness again.
    Artifact("table10_multiscale", "table", MULTISCALE_NOTEBOOK,
             "Table 10: multiscale equilibrium models side by side", SECTION_STABLE_DEQS,
             _MULTISCALE, FAMILY_GROUPS),
    Artifact("fig16_multiscale", "figure", MULTISCALE_NOTEBOOK,
             "Figure 16: accuracy, fixed-point iterations and the realised Lipschitz constant "
             "per epoch, multiscale models", SECTION_STABLE_DEQS, _MULTISCALE, FAMILY_GROUPS),
    GEOMETRY_FIGURE, CONVERGENCE_TABLE, DYNAMICS_FIGURE,
    CLAIMS_TABLE, BEYOND_FIGURE,
)}

ACCURACY_TABLES: dict[str, str] = {a.family: a.name for a in ARTIFACTS.values()
                                   if a.notebook is ACCURACY_NOTEBOOK}
HPARAM_TABLES: dict[str, str] = {a.family: a.name for a in ARTIFACTS.values()
                                 if a.notebook is HPARAM_NOTEBOOK}


# ----------------------------------------------------------------------- render rules
@dataclass(frozen=True)
class RenderRule:
    """A Snakemake rule that renders artifacts with Papermill: one job per artifact (``each``:
    a ``{name}`` wildcard, for the notebooks that take `which`) or one job for all of them."""

    name: str
    artifacts: tuple[Artifact, ...]

    @property
    def each(self) -> bool:
        return self.artifacts[0].notebook.each

    @property
    def doc(self) -> str:
        """The rule's docstring (``snakemake --list-rules``)."""
        notebooks = ", ".join(dict.fromkeys(a.notebook.path for a in self.artifacts))
        if self.each:
            return (f"{', '.join(a.short for a in self.artifacts)}, one job per artifact "
                    f"({notebooks}).")
        return f"{'; '.join(a.title for a in self.artifacts)} ({notebooks}, one job)."


def _render_rules() -> dict[str, RenderRule]:
    """The artifacts grouped by the rule that renders them.

    Raises:
        ValueError: a rule whose jobs could not be written as one rule: one job per artifact
            over artifacts of several kinds or with extra files, or one job over several
            notebooks.
    """
    rules: dict[str, list[Artifact]] = {}
    for a in ARTIFACTS.values():
        rules.setdefault(a.rule, []).append(a)
    for name, arts in rules.items():
        if arts[0].notebook.each:
            bad = (len({a.kind for a in arts}) > 1 or any(a.extra_stems for a in arts)
                   or not all(a.notebook.each for a in arts))
        else:
            bad = len({a.notebook for a in arts}) > 1
        if bad:
            raise ValueError(f"rule {name!r} cannot render {', '.join(a.name for a in arts)}")
    return {name: RenderRule(name, tuple(arts)) for name, arts in rules.items()}


RENDER_RULES: dict[str, RenderRule] = _render_rules()


# ---------------------------------------------------------------- used by the notebooks
def artifacts_of(notebook: str) -> list[str]:
    """Names of the artifacts a notebook renders (``notebooks/figures.ipynb`` -> fig*)."""
    return [a.name for a in ARTIFACTS.values() if Path(a.notebook.path).name == Path(notebook).name]


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
