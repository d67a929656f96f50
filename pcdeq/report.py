"""Run records -> the paper's tables and figures (used by the notebooks and the workflow).

The notebooks in ``notebooks/`` stay thin: they load run records written by
``python -m pcdeq train`` (format ``pcdeq-run/1``), and call this module to aggregate them
over seeds, render Tables 1-7 as Markdown + LaTeX and draw Figures 2, 3, 4, 8, 9, 10 as
PDF + PNG. This module is also the workflow's *paths module*: the record layout, the
file-safe method names and the artifact names live here and nowhere else.

Honesty rules kept here, so that no notebook can forget them:

* every table and figure carries a caption stating the profile and the data that produced
  it (real or synthetic stand-in, seeds x epochs, how many images were used);
* the paper's numbers and the baselines it quotes come from :mod:`pcdeq.paper_results`
  and are always labelled as quotations;
* a malformed or unfinished record raises :class:`RecordError` naming the file.

Heavy imports (numpy, matplotlib) happen inside the functions that need them, because
Snakemake imports this module while building the DAG.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .hparams import (ACTIVATIONS, PAPER_DATASET_NAMES, ConfigError, dataset_info,
                      hyperparameters, methods_for, parse_method)
from .paper_results import (BASELINES, PAPER, PAPER_DATASET_SIZES, PAPER_PARAMS, SOURCES,
                            paper_accuracy)

RECORD_FORMAT = "pcdeq-run/1"
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

    def wants(self, family: str, method: str) -> bool:
        """Whether the artifact reads runs of ``method`` on ``family``."""
        return any(f == family and arch_key(method) in archs for f, archs in self.needs)

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
             _EVERY, "Table 4: dataset statistics"),
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


# ------------------------------------------------------------------------------- records
class RecordError(ValueError):
    """A run record that is missing, malformed or unfinished; the message names the file."""


_EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "fwd_iters",
               "bwd_iters", "test_fwd_iters")
_EPOCH_NULLABLE = ("sigma_max",)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Run:
    """One validated run record."""

    path: str
    dataset: str
    method: str
    seed: int
    status: str  # "complete" | "diverged"
    data: dict
    hparams: dict
    n_params: int
    epochs: tuple[dict, ...]

    @property
    def family(self) -> str:
        return self.data["family"]

    @property
    def arch(self) -> str:
        return arch_key(self.method)

    @property
    def activation(self) -> str:
        return parse_method(self.method).activation

    @property
    def final_acc(self) -> float:
        return float(self.epochs[-1]["test_acc"])

    @property
    def best_acc(self) -> float:
        return max(float(e["test_acc"]) for e in self.epochs)

    def series(self, key: str) -> list[float | None]:
        """Per-epoch values of ``key`` (None where the record has null)."""
        return [None if e.get(key) is None else float(e[key]) for e in self.epochs]


def load_run(path: str | Path) -> Run:
    """Read and validate one run record.

    Raises:
        RecordError: unreadable, not JSON, wrong format, missing/ill-typed fields, not
            finished (status "running"), or contents that contradict the file's place in
            the ``<dataset>/<method>/seed<S>.json`` layout. The message starts with the path.
    """
    p = Path(path)

    def bad(msg: str) -> RecordError:
        return RecordError(f"{p}: {msg}")

    try:
        text = p.read_text()
    except OSError as e:
        raise bad(f"cannot read run record ({e.strerror or e})") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(rec, dict):
        raise bad("not a run record (expected a JSON object)")
    if rec.get("format") != RECORD_FORMAT:
        raise bad(f"format is {rec.get('format')!r}, expected {RECORD_FORMAT!r}")
    for key, typ in (("status", str), ("dataset", str), ("method", str), ("seed", int),
                     ("data", dict), ("hparams", dict), ("n_params", int), ("epochs", list)):
        if key not in rec:
            raise bad(f"missing field {key!r}")
        if not isinstance(rec[key], typ) or isinstance(rec[key], bool):
            raise bad(f"field {key!r} should be {typ.__name__}, got {type(rec[key]).__name__}")
    if rec["status"] == "running":
        raise bad("the run is not finished (status 'running'); rerun its training job "
                  "(the same command resumes from its checkpoint)")
    if rec["status"] not in ("complete", "diverged"):
        raise bad(f"unknown status {rec['status']!r}")
    try:
        parse_method(rec["method"])
        info = dataset_info(rec["dataset"])
    except ConfigError as e:
        raise bad(str(e)) from None
    for key in ("family", "synthetic", "description", "n_train", "n_test"):
        if key not in rec["data"]:
            raise bad(f"missing field 'data.{key}'")
    if rec["data"]["family"] != info.family:
        raise bad(f"data.family {rec['data']['family']!r} does not match dataset {info.name!r}")
    for key in ("epochs", "lr", "lr_decay_epoch", "weight_decay", "batch_size", "channels"):
        if key not in rec["hparams"]:
            raise bad(f"missing field 'hparams.{key}'")
    if not rec["epochs"] and rec["status"] == "complete":
        raise bad("status 'complete' but no finished epoch ('epochs' is empty)")
    for i, e in enumerate(rec["epochs"]):
        if not isinstance(e, dict):
            raise bad(f"epochs[{i}] is not an object")
        for key in _EPOCH_KEYS:
            if not _is_number(e.get(key)):
                raise bad(f"epochs[{i}].{key} should be a number, got {e.get(key)!r}")
        for key in _EPOCH_NULLABLE:
            if e.get(key) is not None and not _is_number(e[key]):
                raise bad(f"epochs[{i}].{key} should be a number or null, got {e[key]!r}")
        if e["epoch"] != i + 1:
            raise bad(f"epochs[{i}].epoch is {e['epoch']}, expected {i + 1}")
    if rec["status"] == "complete" and len(rec["epochs"]) != rec["hparams"]["epochs"]:
        raise bad(f"status 'complete' but {len(rec['epochs'])} of "
                  f"{rec['hparams']['epochs']} epochs recorded")
    # A record copied to the wrong place would silently pollute a table: check the layout.
    if re.fullmatch(r"seed\d+\.json", p.name):
        where = (p.parent.parent.name, p.parent.name, p.name)
        want = (rec["dataset"], safe_method(rec["method"]), f"seed{rec['seed']}.json")
        if where != want:
            raise bad(f"holds {rec['dataset']}/{safe_method(rec['method'])}/seed{rec['seed']} "
                      f"but lies at {'/'.join(where)}")
    return Run(path=str(p), dataset=rec["dataset"], method=parse_method(rec["method"]).name,
               seed=rec["seed"], status=rec["status"], data=rec["data"],
               hparams=rec["hparams"], n_params=rec["n_params"], epochs=tuple(rec["epochs"]))


def find_records(root: str | Path) -> list[Path]:
    """Every ``<dataset>/<method>/seed<S>.json`` under ``root``, sorted.

    Raises:
        RecordError: ``root`` does not exist.
    """
    r = Path(root)
    if not r.is_dir():
        raise RecordError(f"{r}: no such results folder")
    return sorted(r.glob("*/*/seed*.json"))


def load_runs(source: str | Path | Iterable[str | Path]) -> list[Run]:
    """Load and validate records: a results folder (every record in it) or a list of files."""
    paths = find_records(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
    return [load_run(p) for p in paths]


def select_runs(runs: Iterable[Run], artifact: str) -> list[Run]:
    """The runs an artifact reads (e.g. only the SC models for Figure 2)."""
    a = ARTIFACTS[artifact]
    return [r for r in runs if a.wants(r.family, r.method)]


# --------------------------------------------------------------------------- aggregation
def _order(family: str, method: str) -> tuple[int, str]:
    """Sort key: the paper's row order of Tables 1-3."""
    paper = methods_for(family)
    return (paper.index(method) if method in paper else len(paper), method)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for a single value)."""
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Summary:
    """One method on one dataset, aggregated over its seeds."""

    family: str
    dataset: str
    method: str
    n_params: int
    seeds: tuple[int, ...]  # complete runs
    diverged: tuple[int, ...]  # seeds whose run diverged (excluded from the statistics)
    epochs: int
    final: tuple[float, float | None] | None  # mean, std of the last epoch's test accuracy
    best: tuple[float, float | None] | None  # mean, std of the best epoch's test accuracy


def summarize(runs: Iterable[Run]) -> list[Summary]:
    """Aggregate runs per (dataset, method), in the paper's row order.

    Raises:
        ValueError: one method's runs disagree on #params or epochs (mixed-up results).
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.dataset, r.method), []).append(r)
    out = []
    for (dataset, method), rs in groups.items():
        rs.sort(key=lambda r: r.seed)
        for attr in ("n_params", "family"):
            vals = {getattr(r, attr) for r in rs}
            if len(vals) > 1:
                raise ValueError(f"{dataset} {method}: runs disagree on {attr} ({sorted(vals)}): "
                                 f"{', '.join(r.path for r in rs)}")
        epochs = {r.hparams["epochs"] for r in rs}
        if len(epochs) > 1:
            raise ValueError(f"{dataset} {method}: runs of different lengths {sorted(epochs)}: "
                             f"{', '.join(r.path for r in rs)}")
        ok = [r for r in rs if r.status == "complete"]
        out.append(Summary(
            family=rs[0].family, dataset=dataset, method=method, n_params=rs[0].n_params,
            seeds=tuple(r.seed for r in ok),
            diverged=tuple(r.seed for r in rs if r.status == "diverged"),
            epochs=epochs.pop(),
            final=mean_std([r.final_acc for r in ok]) if ok else None,
            best=mean_std([r.best_acc for r in ok]) if ok else None))
    return sorted(out, key=lambda s: (FAMILIES.index(s.family), s.dataset,
                                      _order(s.family, s.method)))


@dataclass(frozen=True)
class Curve:
    """A per-epoch quantity over seeds: mean and the min-max band."""

    label: str
    epochs: list[int]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    n: int  # number of runs


def curve(runs: Sequence[Run], key: str, label: str) -> Curve | None:
    """Mean and min-max over the complete runs of ``key`` per epoch (None if never recorded)."""
    ok = [r for r in runs if r.status == "complete"]
    series = [r.series(key) for r in ok]
    series = [s for s in series if s and all(v is not None for v in s)]
    if not series:
        return None
    n = min(len(s) for s in series)
    cols = [[s[i] for s in series] for i in range(n)]
    return Curve(label, list(range(1, n + 1)), [statistics.fmean(c) for c in cols],
                 [min(c) for c in cols], [max(c) for c in cols], len(series))


# ------------------------------------------------------------------------------ captions
def _count(n: int) -> str:
    return f"{n:,}"


def data_label(run: Run) -> str:
    """What data a run used: its description and 'real data', or a synthetic warning."""
    if run.data["synthetic"]:
        return (f"SYNTHETIC STAND-IN for {PAPER_DATASET_NAMES[run.family]}, not real data; "
                "checks the pipeline only")
    return f"{run.data['description']}, real data"


def _slash(values: Iterable[Any], fmt=str) -> str:
    return "/".join(fmt(v) for v in sorted(set(values)))


def size_label(runs: Sequence[Run]) -> str:
    """Seeds x epochs and images used per architecture of one dataset's runs,
    e.g. 'L: 2 seeds x 20 epochs, 4,000 train / 1,000 test images'."""
    parts = []
    for arch in _ALL_ARCHS:
        rs = [r for r in runs if r.arch == arch]
        if not rs:
            continue
        per_method: dict[str, set[int]] = {}
        for r in rs:
            per_method.setdefault(r.method, set()).add(r.seed)
        seeds = {len(s) for s in per_method.values()}
        epochs = {r.hparams["epochs"] for r in rs}
        parts.append(f"{arch}: {_slash(seeds)} seed{'' if seeds == {1} else 's'} x "
                     f"{_slash(epochs)} epoch{'' if epochs == {1} else 's'}, "
                     f"{_slash((r.data['n_train'] for r in rs), _count)} train / "
                     f"{_slash((r.data['n_test'] for r in rs), _count)} test images")
    return "; ".join(parts)


def caption(profile: str, runs: Sequence[Run]) -> str:
    """The provenance every artifact carries: the profile and, per dataset, the data (real or
    synthetic stand-in), seeds x epochs and the images used."""
    if not runs:
        return f"{profile} profile: no runs"
    parts = []
    for dataset in sorted({r.dataset for r in runs},
                          key=lambda d: (FAMILIES.index(dataset_info(d).family), d)):
        rs = [r for r in runs if r.dataset == dataset]
        parts.append(f"{dataset} ({data_label(rs[0])}): {size_label(rs)}")
    return f"{profile} profile. " + ". ".join(parts) + "."


# -------------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A rendered table: title, caption (provenance), header, rows of strings, footnotes."""

    name: str
    title: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    align: str = ""  # one l/r per column (Markdown and LaTeX); default: l then r

    def to_markdown(self) -> str:
        lines = [f"**{self.title}.** {self.caption}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in self._align()) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"{n}  " if i < len(self.notes) - 1 else n
                      for i, n in enumerate(self.notes)]
        return "\n".join(lines) + "\n"

    def _align(self) -> str:
        return self.align or ("l" + "r" * (len(self.header) - 1))

    def to_latex(self) -> str:
        align = self._align()
        lines = [
            f"% {self.name}: generated by pcdeq.report from run records; do not edit by hand.",
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{\textbf{{{latex_escape(self.title)}.}} {latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name}}}",
            rf"\begin{{tabular}}{{{align}}}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in self.header) + r" \\",
            r"\midrule",
        ]
        for i, row in enumerate(self.rows):
            if row and row[0].startswith("**") and all(c == "" for c in row[1:]):
                # a section row ("**Baselines quoted by the paper**"): a rule above it,
                # except right under the header's own rule
                lines.append(("" if i == 0 else r"\midrule ") +
                             rf"\multicolumn{{{len(self.header)}}}{{l}}"
                             rf"{{\textit{{{latex_escape(row[0].strip('*'))}}}}} \\")
                continue
            lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
        lines.append(r"\bottomrule")
        lines.append(r"\end{tabular}")
        for n in self.notes:
            lines.append(rf"\par\smallskip\footnotesize {latex_escape(n)}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
          "±": r"$\pm$", "†": r"$^\dagger$", "‡": r"$^\ddagger$", "×": r"$\times$",
          "—": "---", "–": "--", "σ": r"$\sigma$", "≤": r"$\leq$", "<": r"$<$", ">": r"$>$"}


def latex_escape(s: str) -> str:
    """Escape text for LaTeX (also maps the symbols the tables use: ± † ‡ × — σ)."""
    s = s.replace("**", "")  # Markdown bold marks are for the .md rendering only
    return "".join(_LATEX.get(c, c) for c in s)


def _pm(ms: tuple[float, float | None] | None) -> str:
    if ms is None:
        return "—"
    m, s = ms
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"


def accuracy_table(runs: Sequence[Run], family: str, profile: str) -> Table:
    """Table 1 (MNIST), 2 (SVHN) or 3 (CIFAR-10): our accuracy beside the paper's.

    Our columns: mean ± sample std over seeds of the final-epoch and of the best-epoch test
    accuracy, and the exact #params. Quoted columns: the paper's pcDEQ accuracy (5 runs at
    its full protocol) and the baselines the paper quotes, each with its source mark.
    """
    name = ACCURACY_TABLES[family]
    fam_runs = [r for r in runs if r.family == family]
    header = ["Model", "#params", "Final acc. [%] (ours)", "Best acc. [%] (ours)", "Runs",
              "Paper [%] (quoted)"]
    rows: list[list[str]] = [["**pcDEQ (this reproduction)**", "", "", "", "", ""]]
    for s in summarize(fam_runs):
        runs_txt = f"{len(s.seeds)} x {s.epochs} ep"
        if s.diverged:
            runs_txt += f" (+{len(s.diverged)} diverged)"
        quoted = paper_accuracy(family, s.method)
        paper_params = PAPER_PARAMS.get((family, arch_key(s.method)))
        rows.append([s.method, f"{s.n_params:,}" + (f" [{paper_params}]" if paper_params else ""),
                     _pm(s.final), _pm(s.best), runs_txt,
                     "—" if quoted is None else f"{quoted:.1f}"])
    rows.append([f"**Baselines quoted by the paper**", "", "", "", "", ""])
    for b in BASELINES[family]:
        rows.append([b.model + b.mark, b.params, "—", "—", "—", f"{b.acc:.1f}"])
    notes = [
        "Ours: mean ± sample std (ddof=1) over seeds of the test accuracy after the last "
        "epoch (final) and at the best epoch (best; optimistic, shown for comparison only). "
        "#params: exact count of trainable parameters [paper's rounded count].",
        f"Paper [%]: quoted from {PAPER} (mean of 5 runs, full data, paper's epochs), "
        "not produced by this repository.",
    ] + [f"{mark} quoted by the paper from {src}." for mark, src in SOURCES.items()
         if any(b.mark == mark for b in BASELINES[family])]
    if family == "cifar10":
        notes.append("* trained with data augmentation (random crop + horizontal flip).")
    return Table(name, ARTIFACTS[name].title, caption(profile, fam_runs), header, rows, notes,
                 align="lrrrlr")


def dataset_table(runs: Sequence[Run], profile: str, data_root: str = "data") -> Table:
    """Table 4: statistics of the datasets the runs used, computed from the data itself.

    Full split sizes, channels, image size and classes come from
    :func:`pcdeq.data.dataset_stats` on the data on disk; the images actually used per
    architecture come from the records (``data.n_train``/``n_test`` after any limit).
    """
    from .data import dataset_stats

    header = ["Dataset", "Stands for", "Kind", "Train", "Test", "Channels", "Size", "Classes",
              "Used per run (arch: train / test)", "Paper: train / test (quoted)"]
    rows = []
    for dataset in sorted({r.dataset for r in runs},
                          key=lambda d: (FAMILIES.index(dataset_info(d).family), d)):
        info = dataset_info(dataset)
        st = dataset_stats(dataset, root=data_root)
        rs = [r for r in runs if r.dataset == dataset]
        used = []
        for arch in _ALL_ARCHS:
            sizes = sorted({(r.data["n_train"], r.data["n_test"]) for r in rs if r.arch == arch})
            used += [f"{arch}: {_count(a)} / {_count(b)}" for a, b in sizes]
        ptrain, ptest = PAPER_DATASET_SIZES[info.family]
        rows.append([dataset, PAPER_DATASET_NAMES[info.family],
                     "synthetic stand-in (not real data)" if info.synthetic else "real",
                     _count(st["n_train"]), _count(st["n_test"]), str(st["channels"]),
                     f"{st['size']}x{st['size']}", str(st["classes"]), "; ".join(used),
                     f"{_count(ptrain)} / {_count(ptest)}"])
    notes = ["Train / Test / Channels / Size / Classes: computed from the data on disk "
             "(pcdeq.data.dataset_stats). Used per run: images the training runs actually "
             "saw (from their records).",
             f"Paper: the full datasets of {PAPER}, quoted for comparison."]
    return Table("table4_datasets", ARTIFACTS["table4_datasets"].title,
                 caption(profile, list(runs)), header, rows, notes, align="lllrrrrrlr")


def _fmt_float(x: float) -> str:
    return f"{x:g}"


def hparam_table(family: str, experiment: dict | None, profile: str, description: str) -> Table:
    """Tables 5-7: the paper's hyperparameters (from :mod:`pcdeq.hparams`) and, beside them,
    what the given profile changes (epochs, image limits, dataset, seeds) for its methods.

    ``experiment`` is the profile's ``experiments.<family>`` config entry (None: not run).
    """
    name = HPARAM_TABLES[family]
    paper_ds = family  # the paper's dataset of this family (its hyperparameters apply)
    header = ["Method", "Channels", "Epochs", "LR", "LR decay at", "Decay factor",
              "Weight decay", "Batch", f"{profile} profile"]
    rows = []
    for method in methods_for(family):
        hp = hyperparameters(paper_ds, method)
        rows.append([method, ", ".join(map(str, hp.channels)), str(hp.epochs),
                     _fmt_float(hp.lr), str(hp.lr_decay_epoch), _fmt_float(hp.lr_decay_factor),
                     _fmt_float(hp.weight_decay), str(hp.batch_size),
                     _profile_change(experiment, method, hp.epochs, hp.lr_decay_epoch)])
    hp0 = hyperparameters(paper_ds, methods_for(family)[0])
    notes = [f"Paper columns: rendered from pcdeq/hparams.py (the project's single source of "
             f"the paper's Tables 5-7); solver tolerance {hp0.tol:g}, at most {hp0.max_iter} "
             "iterations; AdamW; one LR decay by the factor at the given epoch.",
             f"Last column: what the {profile} profile changes ('paper' = nothing, "
             "'not run' = the profile does not train this method)."]
    if experiment is None:
        data = "not run in this profile"
    else:
        info = dataset_info(experiment["dataset"])
        data = (f"trained on {info.name} ({info.description}"
                f"{'' if info.synthetic else ', real data'}), {experiment['seeds']} "
                f"seed{'s' if experiment['seeds'] != 1 else ''} per method")
    cap = (f"{profile} profile ({description}). The paper's hyperparameters for "
           f"{PAPER_DATASET_NAMES[family]}; this profile: {data}.")
    return Table(name, ARTIFACTS[name].title, cap, header, rows, notes, align="lrrrrrrrl")


def _profile_change(experiment: dict | None, method: str, epochs: int, decay: int) -> str:
    if experiment is None or method not in experiment["methods"]:
        return "not run"
    size = experiment["sizes"].get(arch_key(method))
    if size is None:
        return "not run"
    parts = []
    if size["epochs"] is not None and size["epochs"] != epochs:
        parts.append(f"{size['epochs']} epoch{'s' if size['epochs'] != 1 else ''}" +
                     (" (LR decay not reached)" if size["epochs"] <= decay else ""))
    if size["train_limit"] is not None:
        parts.append(f"first {_count(size['train_limit'])} train")
    if size["test_limit"] is not None:
        parts.append(f"first {_count(size['test_limit'])} test")
    return ", ".join(parts) if parts else "paper"


def make_table(name: str, runs: Sequence[Run] = (), profile: str = "quick", *,
               data_root: str = "data", experiments: dict | None = None,
               description: str = "") -> Table:
    """Render any of Tables 1-7 by its artifact name (``table1_mnist`` ... ``table7_...``).

    Tables 1-4 read ``runs``; Tables 5-7 read the profile's ``experiments`` config entry.
    """
    for family, n in ACCURACY_TABLES.items():
        if n == name:
            return accuracy_table(runs, family, profile)
    for family, n in HPARAM_TABLES.items():
        if n == name:
            exp = None if experiments is None else experiments.get(family)
            return hparam_table(family, exp, profile, description)
    if name == "table4_datasets":
        return dataset_table(runs, profile, data_root)
    raise ValueError(f"unknown table {name!r}; tables: "
                     f"{', '.join(a.name for a in ARTIFACTS.values() if a.kind == 'table')}")


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """Write ``<out_dir>/<name>.md`` and ``.tex``; returns the paths."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    md, tex = artifact_paths("table", table.name, out_dir)
    md.write_text(table.to_markdown())
    tex.write_text(table.to_latex())
    return [md, tex]


# ------------------------------------------------------------------------------- figures
# Fixed colours per activation so every figure reads the same way.
COLORS = {"ReLU6": "#1f77b4", "Tanh": "#ff7f0e", "Softsign": "#2ca02c", "Sigmoid": "#d62728"}
METRICS = {"test_acc": "test accuracy [%]", "fwd_iters": "forward iterations",
           "bwd_iters": "backward iterations", "test_fwd_iters": "test forward iterations",
           "sigma_max": r"$\sigma_{\max}(W)$"}


@dataclass(frozen=True)
class Panel:
    title: str
    runs: tuple[Run, ...]
    metric: str


def _label(method: str) -> str:
    m = parse_method(method)
    return m.activation + (" (pcDEQ-2)" if m.variant == 2 else "")


def _family_title(runs: Sequence[Run], family: str, extra: str = "") -> str:
    ds = sorted({r.dataset for r in runs if r.family == family})
    name = PAPER_DATASET_NAMES[family]
    synthetic = any(r.data["synthetic"] for r in runs if r.family == family)
    where = f"{name}" + (f" [{', '.join(ds)}]" if ds and ds != [family] else "")
    if synthetic:
        where += " SYNTHETIC"
    return where + (f" {extra}" if extra else "")


def _panels(name: str, runs: Sequence[Run]) -> list[list[Panel]]:
    """The grid of panels of one figure (rows of columns)."""
    def pick(family: str, arch: str) -> tuple[Run, ...]:
        return tuple(r for r in runs if r.family == family and r.arch == arch)

    if name == "fig2_sc_accuracy":
        return [[Panel(_family_title(runs, f, "SC"), pick(f, "SC"), "test_acc") for f in FAMILIES]]
    if name == "fig3_sc_iterations":
        return [[Panel(_family_title(runs, f, f"SC, {kind}"), pick(f, "SC"), metric)
                 for f in FAMILIES] for kind, metric in (("forward", "fwd_iters"),
                                                         ("backward", "bwd_iters"))]
    if name == "fig4_sigma_max":
        return [[Panel(_family_title(runs, "mnist", "L"), pick("mnist", "L"), "sigma_max")]]
    rows = {"fig8_mnist_curves": [("mnist", "L"), ("mnist", "MC")],
            "fig9_svhn_curves": [("svhn", "MC")],
            "fig10_cifar10_curves": [("cifar10", "MC"), ("cifar10", "MC*")]}[name]
    return [[Panel(_family_title(runs, f, a), pick(f, a), metric)
             for metric in ("test_acc", "fwd_iters", "bwd_iters")] for f, a in rows]


def make_figure(name: str, runs: Sequence[Run], profile: str):
    """Draw one of Figures 2, 3, 4, 8, 9, 10 from the runs; mean line and min-max band.

    The suptitle states the figure, the profile and the data (real or synthetic).
    """
    import matplotlib.pyplot as plt

    runs = select_runs(runs, name)
    grid = _panels(name, runs)
    nrows, ncols = len(grid), len(grid[0])
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 1.1),
                             squeeze=False)
    for i, row in enumerate(grid):
        for j, panel in enumerate(row):
            ax = axes[i][j]
            _draw_panel(ax, panel)
    handles, labels = [], []
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False,
                   fontsize=8)
    fig.suptitle(f"{ARTIFACTS[name].title}\n{_wrap(caption(profile, runs), 40 * ncols)}",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width=max(width, 60)))


def _draw_panel(ax, panel: Panel) -> None:
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(METRICS[panel.metric], fontsize=8)
    ax.tick_params(labelsize=7)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    drawn = False
    by_method: dict[str, list[Run]] = {}
    for r in panel.runs:
        by_method.setdefault(r.method, []).append(r)
    for method in sorted(by_method, key=lambda m: ACTIVATIONS.index(parse_method(m).activation)):
        c = curve(by_method[method], panel.metric, _label(method))
        if c is None:
            continue
        color = COLORS[parse_method(method).activation]
        ax.plot(c.epochs, c.mean, color=color, lw=1.4, marker="o" if len(c.epochs) < 12 else None,
                ms=3, label=c.label)
        if c.n > 1:
            ax.fill_between(c.epochs, c.lo, c.hi, color=color, alpha=0.2, lw=0)
        drawn = True
    if panel.metric == "sigma_max" and drawn:
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
    if not drawn:
        ax.text(0.5, 0.5, "no runs in this profile", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
    ax.grid(alpha=0.3)


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``<out_dir>/<name>.pdf`` and ``.png`` byte-stably (no dates, no version strings,
    fixed hash salt), so rerunning on the same records reproduces identical files."""
    import matplotlib

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    pdf, png = artifact_paths("figure", name, out_dir)
    with matplotlib.rc_context({"svg.hashsalt": "pcdeq", "pdf.compression": 6}):
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                   "Creator": None})
        fig.savefig(png, dpi=150, metadata={"Software": None})
    return [pdf, png]


def figure_summary(name: str, runs: Sequence[Run]) -> str:
    """The numbers behind a figure's claims in the paper, as text (observed, not asserted)."""
    runs = [r for r in select_runs(runs, name) if r.status == "complete"]
    lines = []
    if name == "fig4_sigma_max":
        lines.append("Paper: ReLU6 keeps sigma_max < 1 for the whole training; tanh, softsign, "
                     "sigmoid exceed 1 most of the time. Observed here (all seeds, all epochs):")
        for method in sorted({r.method for r in runs},
                             key=lambda m: ACTIVATIONS.index(parse_method(m).activation)):
            vals = [v for r in runs if r.method == method for v in r.series("sigma_max")
                    if v is not None]
            if vals:
                below = sum(v < 1 for v in vals) / len(vals)
                lines.append(f"  {method:22s} sigma_max in [{min(vals):.3f}, {max(vals):.3f}], "
                             f"below 1 in {100 * below:.0f}% of epochs")
        return "\n".join(lines)
    metrics = ("test_acc",) if name == "fig2_sc_accuracy" else (
        ("fwd_iters", "bwd_iters") if name == "fig3_sc_iterations" else
        ("test_acc", "fwd_iters", "bwd_iters"))
    if name == "fig3_sc_iterations":
        lines.append("Paper: sigmoid needs fewer than 8 iterations; the counts do not grow "
                     "during training. Observed here (mean over seeds):")
    else:
        lines.append("Mean over seeds, first -> last epoch (max over epochs):")
    for s in summarize(runs):
        rs = [r for r in runs if r.dataset == s.dataset and r.method == s.method]
        parts = []
        for metric in metrics:
            c = curve(rs, metric, s.method)
            if c is not None:
                parts.append(f"{metric} {c.mean[0]:.2f} -> {c.mean[-1]:.2f} "
                             f"(max {max(c.mean):.2f})")
        lines.append(f"  {s.dataset:17s} {s.method:22s} " + "; ".join(parts))
    return "\n".join(lines)
