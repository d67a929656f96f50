"""Run records: their schema and validation, aggregation over seeds, and the captions that
state every artifact's provenance (profile, data, seeds x epochs, images used)."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..hparams import PAPER_DATASET_NAMES, ConfigError, dataset_info, methods_for, parse_method
from ..record import RecordError, RunRecord
from ..stats import mean_ci
from .artifacts import ARTIFACTS
from .paths import ALL_ARCHS, FAMILIES, arch_key, safe_method

# ------------------------------------------------------------------------------- records
# The record itself is defined in pcdeq.record; the report reads it through RunRecord.
Run = RunRecord


def load_run(path: str | Path) -> Run:
    """Read and validate one finished run record (:meth:`pcdeq.record.RunRecord.load`), and
    check that it lies where its contents say (``<dataset>/<method>/seed<S>.json``).

    Raises:
        RecordError: unreadable, not JSON, wrong format, missing/ill-typed fields, not
            finished (status "running"), or contents that contradict the file's place in
            the layout. The message starts with the path.
    """
    p = Path(path)
    run = RunRecord.load(p)
    # A record copied to the wrong place would silently pollute a table: check the layout.
    if re.fullmatch(r"seed\d+\.json", p.name):
        where = (p.parent.parent.name, p.parent.name, p.name)
        want = (run.dataset, safe_method(run.method), f"seed{run.seed}.json")
        if where != want:
            raise RecordError(f"{p}: holds {run.dataset}/{safe_method(run.method)}/seed{run.seed} "
                              f"but lies at {'/'.join(where)}")
    return run


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
    """Mean and sample standard deviation (ddof=1; None for a single value): the table's
    "mean ± std" columns, from :func:`pcdeq.stats.mean_ci` as every other number over seeds."""
    m = mean_ci(values)
    return m.mean, m.sd


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
def format_count(n: int) -> str:
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
    for arch in ALL_ARCHS:
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
                     f"{_slash((r.data['n_train'] for r in rs), format_count)} train / "
                     f"{_slash((r.data['n_test'] for r in rs), format_count)} test images")
    return "; ".join(parts)


def artifact_title(name: str, runs: Sequence[Run]) -> str:
    """The artifact's paper title, naming the data it was made from where that is not the
    paper's: 'Table 1: MNIST test accuracy' becomes 'Table 1: Fashion-MNIST test accuracy'
    when its runs are Fashion-MNIST ones (the fashion profile), so that no reader takes them
    for MNIST results."""
    title = ARTIFACTS[name].title
    mnist = {r.dataset for r in runs if r.family == "mnist"}
    if mnist and mnist <= {"fashion_mnist"}:
        title = re.sub(r"\bMNIST\b", "Fashion-MNIST", title)
    return title


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


