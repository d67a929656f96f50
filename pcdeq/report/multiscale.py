"""Table 10 and Figure 16: the multiscale equilibrium models side by side (MDEQ, the Lipschitz
MDEQ as published and certified, the multiscale pcDEQ), and the comparison with MDEQ that the
Lipschitz MDEQ's own claim (C10 of the claims table) is judged on.

Every number is read from the run records: ``seconds`` (training time of an epoch),
``fwd_iters`` / ``bwd_iters``, ``jac_norm`` (‖J_f(z*)‖₂ on the first test batch, the Lipschitz
constant the equilibrium map actually has at its fixed point) and ``jac_bound`` (the product
bound of the weights' true norms, LipMDEQ only).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

from ..hparams import ALL_ACTIVATIONS, FAMILY_GROUPS, dataset_info, parse_method
from ..stats import welch_interval
from .paths import FAMILIES
from .records import Run

REFERENCE = "MDEQ-MS"  # the model the others are compared with (speed-up, accuracy gap)


@dataclass(frozen=True)
class MultiscaleSummary:
    """One multiscale method on one dataset, over its complete runs (seeds)."""

    dataset: str
    method: str
    n_params: int
    runs: tuple[Run, ...]  # complete runs, by seed
    diverged: tuple[int, ...]  # seeds whose run diverged (left out of every number)
    epochs: int

    def _last(self, key: str) -> list[float]:
        """The last recorded value of ``key``, per seed (seeds without one left out)."""
        out = []
        for r in self.runs:
            vals = [v for v in r.series(key) if v is not None]
            if vals:
                out.append(vals[-1])
        return out

    @property
    def accs(self) -> list[float]:
        """Final test accuracy per seed."""
        return [r.final_acc for r in self.runs]

    @property
    def seconds(self) -> list[float]:
        """Training seconds of a seed's median epoch (:meth:`RunRecord.median`, as Table 8's),
        per seed (evaluation not included)."""
        return [v for r in self.runs if (v := r.median("seconds")) is not None]

    @property
    def jac_last(self) -> list[float]:
        """‖J_f(z*)‖₂ of the last epoch, per seed."""
        return self._last("jac_norm")

    @property
    def bound_last(self) -> list[float]:
        """The certified product bound of the last epoch, per seed (LipMDEQ)."""
        return self._last("jac_bound")

    def jac_values(self) -> list[float]:
        """‖J_f(z*)‖₂ of every recorded epoch of every seed."""
        return [v for r in self.runs for v in r.series("jac_norm") if v is not None]

    def bound_values(self) -> list[float]:
        """The certified product bound of every recorded epoch of every seed (LipMDEQ)."""
        return [v for r in self.runs for v in r.series("jac_bound") if v is not None]


# Row order: MDEQ (the reference), the Lipschitz MDEQ, then the multiscale pcDEQ.
GROUP_ORDER: tuple[str, ...] = ("MDEQ", "LipMDEQ", "pcDEQ")


def _order(s: MultiscaleSummary) -> tuple:
    m = parse_method(s.method)
    group = GROUP_ORDER.index(m.group) if m.group in GROUP_ORDER else len(GROUP_ORDER)
    return (FAMILIES.index(dataset_info(s.dataset).family), s.dataset, group,
            FAMILY_GROUPS.index(m.group), m.family, ALL_ACTIVATIONS.index(m.activation))


def multiscale_summaries(runs: Sequence[Run]) -> list[MultiscaleSummary]:
    """The multiscale (arch ``MS``) runs per (dataset, method): MDEQ, LipMDEQ, then pcDEQ."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        if r.arch == "MS":
            groups.setdefault((r.dataset, r.method), []).append(r)
    out = []
    for (dataset, method), rs in groups.items():
        rs.sort(key=lambda r: r.seed)
        ok = tuple(r for r in rs if r.status == "complete")
        out.append(MultiscaleSummary(dataset, method, rs[0].n_params, ok,
                                     tuple(r.seed for r in rs if r.status == "diverged"),
                                     rs[0].hparams["epochs"]))
    return sorted(out, key=_order)


@dataclass(frozen=True)
class VersusReference:
    """A multiscale method beside MDEQ on the same data.

    Attributes:
        speedup: MDEQ's training seconds per epoch (mean over seeds of each seed's median
            epoch) / this method's (> 1: faster).
        acc_diff: mean final accuracy, this method − MDEQ [points].
        acc_low, acc_high: its 95% Welch interval (None with fewer than 2 seeds a side).
        n, n_ref: seeds of each side.
    """

    speedup: float | None
    acc_diff: float
    acc_low: float | None
    acc_high: float | None
    n: int
    n_ref: int


def versus_reference(s: MultiscaleSummary, ref: MultiscaleSummary) -> VersusReference | None:
    """``s`` beside MDEQ (``ref``) on the same dataset; None when either has no complete run."""
    if not s.runs or not ref.runs:
        return None
    sec, sec_ref = s.seconds, ref.seconds
    speedup = (statistics.fmean(sec_ref) / statistics.fmean(sec)
               if sec and sec_ref and statistics.fmean(sec) > 0 else None)
    w = welch_interval(s.accs, ref.accs)
    diff = statistics.fmean(s.accs) - statistics.fmean(ref.accs)
    return VersusReference(speedup, diff, None if w is None else w[1],
                           None if w is None else w[2], len(s.accs), len(ref.accs))


def reference_of(s: MultiscaleSummary, summaries: Sequence[MultiscaleSummary]
                 ) -> MultiscaleSummary | None:
    """MDEQ's summary on ``s``'s dataset, if it was trained there."""
    return next((x for x in summaries if x.dataset == s.dataset and x.method == REFERENCE), None)
