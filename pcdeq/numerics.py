"""C9, beyond the paper: is a training run's result decided by floating-point noise?

The same run (same code, data, seed, hyperparameters) on two kernel paths, e.g. 1 and 2 torch
threads, or two CPUs, sums in another order, so its first epoch differs in the last digits. A
method whose training damps such differences reproduces its result on any machine within the
last digits; one that amplifies them, like a change of seed, reproduces it only up to its seed
spread. pcDEQ's map is a contraction in Thompson's metric with a unique fixed point, so the
forward pass cannot jump between fixed points as the unconstrained DEQ's can; whether training
as a whole damps the differences is measured here.

Pairs come from ``<root>/kernel_paths/<path name>/<dataset>/<method>/seed<S>.json`` beside the
profile's records ``<root>/<dataset>/<method>/seed<S>.json`` (the same run on the profile's own
kernel path). The decision rule, stated before the numbers: for each method, the kernel-path
difference of the log train loss, |log a_e - log b_e|, must stay below ``STABILITY_FRACTION``
x the method's seed spread at every epoch e. The seed spread is the pooled sample std of the
log train loss over the method's seeds, pooled over the epochs (``pcdeq.stats.pooled_sd``: with
2 seeds a single epoch's std is one difference, often near 0 by chance; pooled over 20 epochs it
has 20 nominal degrees of freedom, fewer effective ones since the epochs of the same two runs
are correlated: the rule uses it as a scale, not for an interval). The log because the loss falls by orders of magnitude over training
and seeds differ by a factor, not by an offset. With the rule met, a ± std of a table is the
same whichever kernel path ran it, to within 10% of its width; a method beyond it is one whose
result the kernel path changes like a change of seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .record import COMPARABLE_FIELDS
from .report.records import Run, load_runs
from .stats import pooled_sd

STABILITY_FRACTION = 0.1  # of the seed spread: a table's ± std moves by < 10% of its width


@dataclass(frozen=True)
class PathPair:
    """One run on the profile's kernel path (``a``) and on another (``b``)."""

    a: Run
    b: Run
    path: str  # the other path's folder name, e.g. "threads1" (what differs: path_differences)

    def log_diffs(self) -> list[float]:
        """|log train loss a - log train loss b| per epoch."""
        return [abs(math.log(x.train_loss) - math.log(y.train_loss))
                for x, y in zip(self.a.epochs, self.b.epochs)]

    def loss_diffs(self) -> list[float]:
        """|train loss a - b| per epoch."""
        return [abs(x.train_loss - y.train_loss) for x, y in zip(self.a.epochs, self.b.epochs)]

    def relative(self) -> list[float]:
        """|train loss a - b| / |train loss a| per epoch."""
        return [d / abs(x.train_loss) if x.train_loss else d
                for d, x in zip(self.loss_diffs(), self.a.epochs)]

    def acc_diff(self) -> float:
        """Final test accuracy a - b, in points."""
        return self.a.final_acc - self.b.final_acc


def _environment(run: Run) -> dict:
    """The record's environment (records before it was recorded: their threads, device, torch)."""
    return run.environment or {"threads": run.threads, "device": run.device, "torch": run.torch}


def kernel_path_pairs(root: str | Path, runs: Sequence[Run]) -> list[PathPair]:
    """Every record under ``<root>/kernel_paths/*/`` matched with the same run in ``runs``.

    Raises:
        ValueError: a record there has no twin in ``runs``, or its twin is another run
            (hyperparameters, data or parameter count differ): its place is wrong.
    """
    base = Path(root) / "kernel_paths"
    if not base.is_dir():
        return []
    by_key = {(r.dataset, r.method, r.seed): r for r in runs}
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        for b in load_runs(folder):
            if b.data["synthetic"]:  # stand-ins are no evidence (``runs`` holds none)
                continue
            a = by_key.get((b.dataset, b.method, b.seed))
            if a is None:
                raise ValueError(f"{b.path}: no record of {b.method} seed {b.seed} in {root}/ to "
                                 "compare it with; a kernel-path record needs its twin there")
            diff = [k for k in COMPARABLE_FIELDS if getattr(a, k) != getattr(b, k)]
            if diff or len(a.epochs) != len(b.epochs):
                raise ValueError(f"{b.path}: not the same run as {a.path} (differ: "
                                 f"{', '.join(diff) or 'number of epochs'})")
            out.append(PathPair(a, b, folder.name))
    return out


def path_differences(pairs: Sequence[PathPair]) -> dict[str, str]:
    """Per kernel path, what differs between the records' environments, e.g. "threads 2 vs 1",
    merged over its pairs (the references may come from several machines of one kind: their
    values joined by "/")."""
    out: dict[str, str] = {}
    for path in sorted({p.path for p in pairs}):
        ps = [p for p in pairs if p.path == path]
        envs = [(_environment(p.a), _environment(p.b)) for p in ps]
        keys = sorted({k for ea, eb in envs for k in set(ea) | set(eb) if ea.get(k) != eb.get(k)})
        parts = []
        for k in keys:
            left = "/".join(sorted({str(ea.get(k)) for ea, _ in envs}))
            right = "/".join(sorted({str(eb.get(k)) for _, eb in envs}))
            parts.append(f"{k} {left} vs {right}")
        out[path] = ", ".join(parts) or "no recorded difference"
    return out


@dataclass(frozen=True)
class MethodStability:
    """Every pair of one method, against its seed spread."""

    method: str
    pairs: tuple[PathPair, ...]
    max_relative: float  # largest relative train-loss difference over pairs and epochs
    seed_sd: float | None  # pooled seed std of the log train loss (None: < 2 seeds)
    worst_fraction: float | None  # largest |Δ log loss| / seed_sd over epochs and pairs
    worst_epoch: int | None  # where it occurs
    first_above: int | None  # first epoch where the relative difference exceeds 1e-3

    @property
    def stable(self) -> bool | None:
        """The decision rule (None: the method has fewer than 2 seeds, no spread)."""
        return None if self.worst_fraction is None else self.worst_fraction < STABILITY_FRACTION


def stability(pairs: Sequence[PathPair], runs: Sequence[Run]) -> list[MethodStability]:
    """One :class:`MethodStability` per method of ``pairs``; the seed spread comes from the
    method's records in ``runs`` (the profile's own kernel path)."""
    out = []
    for method in sorted({p.a.method for p in pairs}):
        ps = tuple(p for p in pairs if p.a.method == method)
        seeds = [r for r in runs if r.method == method and r.dataset == ps[0].a.dataset]
        n = min(len(r.epochs) for r in seeds)
        pooled = pooled_sd([[math.log(r.epochs[e].train_loss) for r in seeds] for e in range(n)])
        sd = pooled[0] if pooled else None
        worst, where = None, None
        if sd is not None:
            for p in ps:
                for e, d in enumerate(p.log_diffs()):
                    f = d / sd if sd > 0 else (0.0 if d == 0 else math.inf)
                    if worst is None or f > worst:
                        worst, where = f, e + 1
        rel = [x for p in ps for x in p.relative()]
        first = min((i + 1 for p in ps for i, x in enumerate(p.relative()) if x > 1e-3), default=None)
        out.append(MethodStability(method, ps, max(rel), sd, worst, where, first))
    return out
