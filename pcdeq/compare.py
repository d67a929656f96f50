"""Reproducibility check: a profile's fresh run records against the committed reference records.

``python -m pcdeq.compare REFERENCE FRESH [--exact] [--out report.md]`` pairs the run records
``<dataset>/<method>/seed<S>.json`` of two results folders (e.g. ``results/quick`` and
``runs/quick``) and compares them epoch by epoch:

* ``test_acc`` (percentage points), ``fwd_iters``, ``bwd_iters``, ``test_fwd_iters``
  (iterations): absolute difference ``|fresh - reference|``;
* ``train_loss`` and ``sigma_max``: relative difference ``|a - b| / max(|a|, |b|)``
  (0 when both are 0; a value recorded on one side only, or NaN on one side only, is an
  infinite difference).

Timing (``seconds``, ``eval_seconds``, any epoch key ending in ``seconds``) is never compared.
A record is *bit-identical* to its reference when it has the same status and number of epochs
and every other epoch field (the six quantities above and the rest: ``train_acc``,
``test_loss``, ``lr``, per-layer iterations, ...) is exactly equal.

Two modes (:class:`Tolerances`):

* ``--exact`` (the same machine): every record must be bit-identical. The project guarantees
  this for a rerun on the same CPU machine (fixed seeds and threads, deterministic kernels).
* default (another machine): each quantity must agree within a tolerance *measured* on the
  reference records by :func:`measure_tolerances`: the largest absolute (or relative, as
  above) difference between two seeds of one method at one epoch, over every method with two or
  more seeds and every epoch, separately per quantity and per architecture (L, SC, MC, MC*).
  Another machine changes the floating-point rounding (kernel selection, reduction order), and
  training amplifies rounding differences as it amplifies a change of seed; a difference
  larger than the seed-to-seed spread is a real discrepancy, not rounding.

Exit status: 0 when everything is within tolerance (bit-identical with ``--exact``), 1 when a
difference exceeds it (the report names dataset, method, seed, epoch and quantity), 2 on bad
input: a missing results folder, no records, a record missing on one side, an unreadable or
unfinished record, records of different lengths (a partial record), or records that are not
comparable (different ``hparams``, ``limits``, ``data`` or ``n_params``; the differing keys are
named), or a reference whose tolerances cannot be measured (then the comparison still runs, so
that every missing or partial record is named). ``--tolerances-from DIR`` measures the
tolerances on another folder; ``python -m pcdeq.compare --measure REFERENCE`` prints them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .hparams import parse_method
from .report.paths import arch_key
from .report.records import RecordError, Run, find_records, load_run


class CompareError(ValueError):
    """Input the check cannot work with at all: a missing folder, no records, no way to measure
    the tolerances. The message says which and what to do."""


# ------------------------------------------------------------------------- quantities
@dataclass(frozen=True)
class Quantity:
    """A per-epoch quantity of a run record that the check compares.

    Attributes:
        name: the epoch key in the record.
        relative: compared by the relative difference ``|a - b| / max(|a|, |b|)``, not the
            absolute one.
        unit: what a difference is measured in (for the report).
    """

    name: str
    relative: bool
    unit: str


QUANTITIES: tuple[Quantity, ...] = (
    Quantity("test_acc", False, "points"),
    Quantity("train_loss", True, "relative"),
    Quantity("fwd_iters", False, "iterations"),
    Quantity("bwd_iters", False, "iterations"),
    Quantity("test_fwd_iters", False, "iterations"),
    Quantity("sigma_max", True, "relative"),
)
QUANTITY_NAMES: tuple[str, ...] = tuple(q.name for q in QUANTITIES)

# Record fields that make two runs the same experiment: if they differ, the records are "not
# comparable" (the report names the differing keys, e.g. ``hparams.lr``).
COMPARABLE_FIELDS: tuple[str, ...] = ("hparams", "limits", "data", "n_params")
# Where the run ran: reported when they differ, never a reason to fail.
ENVIRONMENT_FIELDS: tuple[str, ...] = ("device", "threads", "torch", "python")
# Key of the tolerances measured over every architecture (the fallback of an architecture
# that has no two seeds of one method in the reference).
ALL = "all"


def is_timing(key: str) -> bool:
    """Whether an epoch key is a timing (``seconds``, ``eval_seconds``): never compared."""
    return key.endswith("seconds")


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def difference(quantity: Quantity, a: float | None, b: float | None) -> float | None:
    """The difference of two values of ``quantity`` (absolute, or relative for
    ``quantity.relative``).

    Returns:
        None when neither side recorded a value (null on both sides); ``inf`` when only one
        side did, or only one side is NaN; 0.0 when both are NaN; otherwise ``|a - b|`` or
        ``|a - b| / max(|a|, |b|)`` (0.0 for two zeros).
    """
    if a is None and b is None:
        return None
    if a is None or b is None:
        return math.inf
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    if a == b:  # also two equal infinities
        return 0.0
    d = abs(a - b)
    if quantity.relative:
        d /= max(abs(a), abs(b))
    return d


def _same(a: Any, b: Any) -> bool:
    """Exact equality, NaN equal to NaN, lists elementwise."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if _is_nan(a) and _is_nan(b):
        return True
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


# -------------------------------------------------------------------------- tolerances
def _seed_pairs(runs: Sequence[Run]) -> list[tuple[Run, Run]]:
    """Every pair of two complete runs of one (dataset, method), seeds in ascending order."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        if r.status == "complete":
            groups.setdefault((r.dataset, r.method), []).append(r)
    pairs = []
    for key in sorted(groups):
        rs = sorted(groups[key], key=lambda r: r.seed)
        pairs += list(itertools.combinations(rs, 2))
    return pairs


def measure_tolerances(reference_root: str | Path) -> dict[str, dict[str, float]]:
    """Cross-machine tolerances measured on reference records: the seed-to-seed spread.

    For every (dataset, method) with two or more complete runs (seeds) in ``reference_root``,
    every pair of its seeds and every epoch both recorded, the difference of each quantity of
    :data:`QUANTITIES` is taken exactly as :func:`compare` takes it (absolute for ``test_acc``
    in percentage points and the iteration counts, relative for ``train_loss`` and
    ``sigma_max``); null and non-finite values are skipped. The tolerance of a quantity is
    the maximum of these differences over methods, seed pairs and epochs: per architecture
    (``arch_key``: ``L``, ``SC``, ``MC``, ``MC*``) and, under :data:`ALL`, over every
    architecture. Tolerances are per quantity: each is compared only with its own kind of
    difference. Diverged runs are left out.

    Args:
        reference_root: a results folder (``<dataset>/<method>/seed<S>.json``), e.g.
            ``results/quick``.

    Returns:
        ``{arch: {quantity: tolerance}}`` with the key :data:`ALL` for every architecture
        together. An architecture (or a quantity) is absent where no two seeds of one method
        recorded it.

    Raises:
        RecordError: the folder is missing or holds a malformed or unfinished record.
        CompareError: no method has two complete seeds, so nothing can be measured.
    """
    runs = [load_run(p) for p in find_records(reference_root)]
    pairs = _seed_pairs(runs)
    out: dict[str, dict[str, float]] = {}
    for a, b in pairs:
        for q in QUANTITIES:
            for ea, eb in zip(a.epochs, b.epochs):
                d = difference(q, ea.get(q.name), eb.get(q.name))
                if d is None or not math.isfinite(d):
                    continue
                for key in (arch_key(a.method), ALL):
                    cur = out.setdefault(key, {})
                    cur[q.name] = max(cur.get(q.name, 0.0), d)
    if not out:
        raise CompareError(
            f"{reference_root}: no method has two complete seeds, so the seed-to-seed spread "
            "(the cross-machine tolerances) cannot be measured; use --exact, or measure the "
            "tolerances on another reference with --tolerances-from")
    return out


@dataclass(frozen=True)
class Tolerances:
    """How close a fresh record must be to its reference.

    Attributes:
        exact: every record must be bit-identical (timing excluded); ``measured`` is unused.
        measured: ``{arch: {quantity: tolerance}}`` as returned by :func:`measure_tolerances`.
        source: where the tolerances come from (for the report).
        error: why the tolerances could not be measured (e.g. a reference record is missing or
            unfinished); :func:`compare` still runs, with tolerance 0, so that the report names
            every missing or partial record, and the check counts as bad input (exit 2).
    """

    exact: bool
    measured: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = ""
    error: str = ""

    @classmethod
    def bit_identical(cls) -> Tolerances:
        """The ``--exact`` mode: same machine, every compared number exactly equal."""
        return cls(exact=True, source="exact: every record bit-identical (timing excluded)")

    @classmethod
    def measure(cls, reference_root: str | Path) -> Tolerances:
        """The default (cross-machine) mode: tolerances measured on ``reference_root``.

        Raises:
            RecordError, CompareError: see :func:`measure_tolerances`.
        """
        return cls(exact=False, measured=measure_tolerances(reference_root),
                   source=f"seed-to-seed spread of the records in {reference_root}")

    @classmethod
    def try_measure(cls, reference_root: str | Path) -> Tolerances:
        """:meth:`measure`, or, where the reference cannot be measured (missing folder,
        unreadable or unfinished record, no method with two seeds), tolerances with
        ``error`` set (and 0 everywhere), so that the comparison still names every problem."""
        try:
            return cls.measure(reference_root)
        except (CompareError, RecordError) as e:
            return cls(exact=False, source=f"NOT MEASURED on {reference_root}", error=str(e))

    def lookup(self, method: str, quantity: str) -> tuple[float, str]:
        """The tolerance of ``quantity`` for ``method`` and the key it was measured under.

        The method's architecture key (``MC*``) is tried first, then its architecture
        (``MC``), then :data:`ALL`; a quantity never measured anywhere gets 0 (must be equal).

        Returns:
            (tolerance, key): key is ``"exact"`` in the exact mode, ``"none"`` for the 0 of a
            quantity never measured.
        """
        if self.exact:
            return 0.0, "exact"
        for key in (arch_key(method), parse_method(method).arch, ALL):
            if quantity in self.measured.get(key, {}):
                return self.measured[key][quantity], key
        return 0.0, "none"


# -------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Delta:
    """The difference of one quantity at one epoch of one record."""

    quantity: str
    epoch: int
    reference: float | None
    fresh: float | None
    diff: float  # absolute or relative (see Quantity), inf where one side has no value


@dataclass(frozen=True)
class Exceedance:
    """A quantity of one record beyond its tolerance."""

    quantity: str
    tolerance: float
    worst: Delta
    epochs: tuple[int, ...]  # every epoch beyond the tolerance


@dataclass(frozen=True)
class RecordComparison:
    """One (dataset, method, seed) present on both sides.

    Attributes:
        dataset, method, seed: which run.
        reference_path, fresh_path: the two records.
        reference_epochs, fresh_epochs: how many epochs each recorded.
        reference_status, fresh_status: ``complete`` or ``diverged``.
        not_comparable: the differing keys of :data:`COMPARABLE_FIELDS`, e.g.
            ``("hparams.lr",)``, with both values; empty when comparable. Not comparable
            records are not compared further.
        environment: differing :data:`ENVIRONMENT_FIELDS` (informational).
        worst: per quantity, the largest difference over the common epochs (None where
            neither side recorded the quantity).
        first: per quantity, the first epoch where it differs at all (None: never).
        tolerances: per quantity, the tolerance applied.
        exceeded: the quantities beyond tolerance (always empty in the exact mode, where
            ``bit_identical`` decides).
        bit_identical: same status and epochs, every non-timing epoch field exactly equal.
        other_fields: epoch fields besides :data:`QUANTITIES` that differ, with the first
            epoch they differ at (e.g. ``"train_acc (epoch 3)"``), and ``status`` if it differs.
    """

    dataset: str
    method: str
    seed: int
    reference_path: str
    fresh_path: str
    reference_epochs: int
    fresh_epochs: int
    reference_status: str
    fresh_status: str
    not_comparable: tuple[str, ...]
    environment: tuple[str, ...]
    worst: dict[str, Delta | None]
    first: dict[str, int | None]
    tolerances: dict[str, float]
    exceeded: tuple[Exceedance, ...]
    bit_identical: bool
    other_fields: tuple[str, ...]

    @property
    def partial(self) -> bool:
        """One side recorded fewer epochs than the other."""
        return self.reference_epochs != self.fresh_epochs

    @property
    def comparable(self) -> bool:
        return not self.not_comparable

    def ok(self, exact: bool) -> bool:
        """Within tolerance (bit-identical when ``exact``); a partial or not comparable record
        is never ok."""
        if not self.comparable or self.partial:
            return False
        if exact:
            return self.bit_identical
        return not self.exceeded and self.reference_status == self.fresh_status


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flatten(value[k], f"{prefix}.{k}"))
        return out
    return {prefix: value}


_ABSENT = "<absent>"


def _value(x: Any) -> str:
    """A record value as JSON spells it (null, 0.001, "2.3.0"); ``absent`` for a missing key."""
    return "absent" if x is _ABSENT else json.dumps(x, default=str)


def _differing_keys(ref: dict, fresh: dict, fields: Sequence[str]) -> tuple[str, ...]:
    """``key (reference X, fresh Y)`` for each differing (flattened) key of ``fields``."""
    out = []
    for f in fields:
        a = _flatten(ref.get(f, _ABSENT), f)
        b = _flatten(fresh.get(f, _ABSENT), f)
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k, _ABSENT), b.get(k, _ABSENT)
            if not _same(va, vb):
                out.append(f"{k} (reference {_value(va)}, fresh {_value(vb)})")
    return tuple(out)


def _raw(path: str) -> dict:
    """The record's JSON object (load_run has validated it already)."""
    return json.loads(Path(path).read_text())


def compare_records(ref: Run, fresh: Run, tolerances: Tolerances) -> RecordComparison:
    """Compare two validated records of the same (dataset, method, seed).

    Args:
        ref: the reference record.
        fresh: the fresh record.
        tolerances: the mode and tolerances (:class:`Tolerances`).

    Returns:
        The per-quantity worst differences over the epochs both recorded, the quantities
        beyond tolerance, the bit-identical flag, and what makes the records partial or not
        comparable.
    """
    ref_raw, fresh_raw = _raw(ref.path), _raw(fresh.path)
    not_comparable = _differing_keys(ref_raw, fresh_raw, COMPARABLE_FIELDS)
    environment = _differing_keys(ref_raw, fresh_raw, ENVIRONMENT_FIELDS)
    tols = {q.name: tolerances.lookup(ref.method, q.name)[0] for q in QUANTITIES}
    worst: dict[str, Delta | None] = {q.name: None for q in QUANTITIES}
    first: dict[str, int | None] = {q.name: None for q in QUANTITIES}
    exceeded: list[Exceedance] = []
    other: dict[str, int] = {}
    identical = (ref.status == fresh.status and len(ref.epochs) == len(fresh.epochs)
                 and not not_comparable)
    if not not_comparable:
        for q in QUANTITIES:
            beyond: list[int] = []
            for er, ef in zip(ref.epochs, fresh.epochs):
                d = difference(q, er.get(q.name), ef.get(q.name))
                if d is None:
                    continue
                if d != 0.0 and first[q.name] is None:
                    first[q.name] = int(er["epoch"])
                cur = worst[q.name]
                if cur is None or d > cur.diff:
                    worst[q.name] = Delta(q.name, int(er["epoch"]), er.get(q.name),
                                          ef.get(q.name), d)
                if d > tols[q.name]:
                    beyond.append(int(er["epoch"]))
            if beyond and not tolerances.exact:
                exceeded.append(Exceedance(q.name, tols[q.name], worst[q.name], tuple(beyond)))
        for er, ef in zip(ref.epochs, fresh.epochs):
            for k in sorted(set(er) | set(ef)):
                if is_timing(k) or k in QUANTITY_NAMES:
                    continue
                if not _same(er.get(k, _ABSENT), ef.get(k, _ABSENT)):
                    other.setdefault(k, int(er["epoch"]))
        identical = identical and not other and all(
            w is None or w.diff == 0.0 for w in worst.values())
    other_fields = tuple(f"{k} (epoch {e})" for k, e in sorted(other.items()))
    if ref.status != fresh.status:
        other_fields += (f"status (reference {ref.status}, fresh {fresh.status})",)
    return RecordComparison(
        dataset=ref.dataset, method=ref.method, seed=ref.seed,
        reference_path=ref.path, fresh_path=fresh.path,
        reference_epochs=len(ref.epochs), fresh_epochs=len(fresh.epochs),
        reference_status=ref.status, fresh_status=fresh.status,
        not_comparable=not_comparable, environment=environment, worst=worst, first=first,
        tolerances=tols, exceeded=tuple(exceeded), bit_identical=identical,
        other_fields=other_fields)


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        reference_root, fresh_root: the two folders.
        tolerances: the mode and tolerances used.
        records: every (dataset, method, seed) present and readable on both sides, sorted.
        missing_fresh: reference records without a fresh one (the missing fresh paths).
        missing_reference: fresh records without a reference one (the missing reference
            paths).
        unreadable: malformed or unfinished records (RecordError messages, naming the file).
    """

    reference_root: str
    fresh_root: str
    tolerances: Tolerances
    records: tuple[RecordComparison, ...]
    missing_fresh: tuple[str, ...]
    missing_reference: tuple[str, ...]
    unreadable: tuple[str, ...]

    # ---------------------------------------------------------------- verdict
    def bad_input(self) -> list[str]:
        """Everything that keeps the check from being complete, one message each, naming the
        files: missing and unreadable records, partial records, not comparable records, and
        tolerances that could not be measured."""
        out = ([f"cannot measure the tolerances: {self.tolerances.error}"]
               if self.tolerances.error else [])
        out += [f"missing fresh record: {p} (the reference has "
               f"{Path(self.reference_root, Path(p).relative_to(self.fresh_root))})"
               for p in self.missing_fresh]
        out += [f"missing reference record: {p} (a fresh record exists: "
                f"{Path(self.fresh_root, Path(p).relative_to(self.reference_root))})"
                for p in self.missing_reference]
        out += [f"unreadable record: {m}" for m in self.unreadable]
        for r in self.records:
            if r.partial:
                short, long_ = ((r.reference_path, r.fresh_path)
                                if r.reference_epochs < r.fresh_epochs
                                else (r.fresh_path, r.reference_path))
                n_short, n_long = sorted((r.reference_epochs, r.fresh_epochs))
                s_short, s_long = ((r.reference_status, r.fresh_status)
                                   if r.reference_epochs < r.fresh_epochs
                                   else (r.fresh_status, r.reference_status))
                out.append(f"partial record: {short} has {n_short} epochs ({s_short}), "
                           f"{long_} has {n_long} ({s_long}); only the first {n_short} "
                           "were compared")
            if not r.comparable:
                out.append(f"not comparable: {r.reference_path} and {r.fresh_path} differ in "
                           + "; ".join(r.not_comparable))
        return out

    def failures(self) -> list[str]:
        """One message per record and quantity beyond tolerance (per record not bit-identical
        with ``--exact``), naming dataset, method, seed, epoch and quantity."""
        out = []
        for r in self.records:
            if not r.comparable:
                continue
            who = f"{r.dataset} {r.method} seed {r.seed}"
            if self.tolerances.exact:
                if r.bit_identical:
                    continue
                diffs = [f"{w.quantity} from epoch {r.first[w.quantity]} (largest at epoch "
                         f"{w.epoch}: reference {_value(w.reference)}, fresh {_value(w.fresh)})"
                         for w in r.worst.values() if w is not None and w.diff != 0.0]
                diffs += list(r.other_fields)
                out.append(f"{who}: not bit-identical: " + "; ".join(diffs or ["epoch count"]))
                continue
            for e in r.exceeded:
                unit = next(q.unit for q in QUANTITIES if q.name == e.quantity)
                w = e.worst
                more = (f"; beyond tolerance at epochs {', '.join(map(str, e.epochs))}"
                        if len(e.epochs) > 1 else "")
                out.append(f"{who}: {e.quantity} differs by {_fmt(w.diff)} ({unit}) at epoch "
                           f"{w.epoch} (reference {_value(w.reference)}, fresh "
                           f"{_value(w.fresh)}), tolerance {_fmt(e.tolerance)}{more}")
            if r.reference_status != r.fresh_status:
                out.append(f"{who}: status differs (reference {r.reference_status}, fresh "
                           f"{r.fresh_status})")
        return out

    @property
    def within_tolerance(self) -> bool:
        """Every record present on both sides is within tolerance (bit-identical with
        ``--exact``) and nothing is missing, unreadable, partial or not comparable."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """2 on bad input, else 1 when a difference exceeds tolerance, else 0."""
        if self.bad_input():
            return 2
        return 0 if all(r.ok(self.tolerances.exact) for r in self.records) else 1

    # ---------------------------------------------------------------- tables
    def methods(self) -> list[tuple[str, str]]:
        """(dataset, method) of the compared records, in order."""
        return list(dict.fromkeys((r.dataset, r.method) for r in self.records))

    def _of(self, dataset: str, method: str) -> list[RecordComparison]:
        return [r for r in self.records
                if (r.dataset, r.method) == (dataset, method) and r.comparable]

    def _method_worst(self, dataset: str, method: str,
                      quantity: str) -> tuple[float | None, str, float, bool]:
        """(max |Δ|, where: 'seed S, epoch E', tolerance, within) over the method's seeds."""
        rs = self._of(dataset, method)
        best: tuple[float, RecordComparison, Delta] | None = None
        for r in rs:
            w = r.worst[quantity]
            if w is not None and (best is None or w.diff > best[0]):
                best = (w.diff, r, w)
        tol = self.tolerances.lookup(method, quantity)[0]
        if best is None:
            return None, "", tol, True
        if self.tolerances.exact:
            within = best[0] == 0.0
        else:
            within = not any(e.quantity == quantity for r in rs for e in r.exceeded)
        where = f"seed {best[1].seed}, epoch {best[2].epoch}" if best[0] != 0.0 else ""
        return best[0], where, tol, within

    def method_table(self, dataset: str, method: str) -> str:
        """Markdown table of one method: per quantity, max |Δ| over epochs and seeds, where it
        occurs, the tolerance and whether it is within."""
        rs = [r for r in self.records if (r.dataset, r.method) == (dataset, method)]
        ident = sum(r.bit_identical for r in rs)
        lines = [f"### {dataset} {method}", "",
                 f"seeds {', '.join(str(r.seed) for r in rs)}; bit-identical: {ident}/{len(rs)}",
                 ""]
        if not self._of(dataset, method):
            return "\n".join(lines + ["not comparable (see the problems above)", ""])
        lines += ["| quantity | unit | max \\|Δ\\| | at | tolerance | within |",
                  "|---|---|---|---|---|---|"]
        for q in QUANTITIES:
            d, where, tol, within = self._method_worst(dataset, method, q.name)
            lines.append(f"| {q.name} | {q.unit} | {_fmt(d)} | {where or '-'} | {_fmt(tol)} | "
                         f"{'yes' if within else '**NO**'} |")
        return "\n".join(lines + [""])

    def summary_table(self) -> str:
        """Markdown table, one row per method: max |Δ| of each quantity over epochs and seeds
        (``*`` marks one beyond tolerance), bit-identical seeds, within tolerance."""
        head = ["dataset", "method", "bit-identical"] + [
            f"{q.name} ({'rel.' if q.relative else q.unit})" for q in QUANTITIES] + ["within"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for dataset, method in self.methods():
            rs = [r for r in self.records if (r.dataset, r.method) == (dataset, method)]
            cells = [dataset, method, f"{sum(r.bit_identical for r in rs)}/{len(rs)}"]
            if not self._of(dataset, method):
                cells += ["not comparable"] * len(QUANTITIES) + ["**NO**"]
            else:
                for q in QUANTITIES:
                    d, _, _, within = self._method_worst(dataset, method, q.name)
                    cells.append(_fmt(d) + ("" if within else " *"))
                ok = all(r.ok(self.tolerances.exact) for r in rs)
                cells.append("yes" if ok else "**NO**")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def tolerance_table(self) -> str:
        """Markdown table of the tolerances (architecture x quantity)."""
        if self.tolerances.exact:
            return "exact: every compared number must be bit-identical (timing excluded)"
        if not self.tolerances.measured:
            return f"not measured ({self.tolerances.error}); 0 used everywhere"
        return tolerance_table(self.tolerances.measured)

    def report(self, details: bool = True) -> str:
        """The Markdown report: verdict, problems, the summary table, the tolerances and (with
        ``details``) one table per method."""
        code = self.exit_code
        verdict = {0: "PASS: " + ("every record bit-identical" if self.tolerances.exact
                                  else "every difference within tolerance"),
                   1: "FAIL: differences beyond tolerance"
                      + (" (--exact: not bit-identical)" if self.tolerances.exact else ""),
                   2: "BAD INPUT: the check is incomplete (missing, partial, unreadable or "
                      "not comparable records)"}[code]
        n_ident = sum(r.bit_identical for r in self.records)
        lines = ["# Reproducibility check", "",
                 f"- reference: `{self.reference_root}`, fresh: `{self.fresh_root}`",
                 f"- mode: {'--exact' if self.tolerances.exact else 'cross-machine'}; "
                 f"tolerances: {self.tolerances.source}",
                 f"- {len(self.records)} records on both sides, {n_ident} bit-identical; "
                 f"{len(self.missing_fresh)} missing fresh, {len(self.missing_reference)} "
                 f"missing reference, {len(self.unreadable)} unreadable",
                 f"- differences: test_acc, fwd/bwd/test_fwd_iters absolute (points, "
                 f"iterations); train_loss, sigma_max relative, |a - b| / max(|a|, |b|); "
                 f"timing never compared",
                 "", f"**{verdict}**", ""]
        problems = self.bad_input() + self.failures()
        if problems:
            lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
        env = sorted({e for r in self.records for e in r.environment})
        if env:
            lines += ["Environment differences (informational): " + "; ".join(env), ""]
        if self.records:
            lines += ["## Max |Δ| per method (over epochs and seeds; * beyond tolerance)", "",
                      self.summary_table(), ""]
        lines += ["## Tolerances", "", self.tolerance_table(), ""]
        if details and self.records:
            lines += ["## Per method", ""]
            lines += [self.method_table(d, m) for d, m in self.methods()]
        return "\n".join(lines).rstrip() + "\n"


def tolerance_table(measured: dict[str, dict[str, float]]) -> str:
    """Markdown table of measured tolerances: one row per architecture key (and ``all``)."""
    order = ["L", "SC", "MC", "MC*"]
    keys = sorted((k for k in measured if k != ALL),
                  key=lambda k: (order.index(k) if k in order else len(order), k))
    head = ["architecture"] + [f"{q.name} ({q.unit})" for q in QUANTITIES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys + ([ALL] if ALL in measured else []):
        lines.append("| " + " | ".join([k] + [_fmt(measured[k].get(q.name)) for q in QUANTITIES])
                     + " |")
    lines += ["", "max over methods, seed pairs and epochs of the seed-to-seed difference; an "
                  "architecture without a measurement uses `all`; n/a: never recorded"]
    return "\n".join(lines)


def _records_of(root: Path) -> dict[Path, Path]:
    """Relative path -> path of every record under ``root``.

    Raises:
        CompareError: the folder does not exist or holds no records.
    """
    try:
        found = find_records(root)
    except RecordError as e:
        raise CompareError(str(e)) from None
    if not found:
        raise CompareError(f"{root}: no run records (<dataset>/<method>/seed<S>.json) in it")
    return {p.relative_to(root): p for p in found}


def compare(reference_root: str | Path, fresh_root: str | Path,
            tolerances: Tolerances) -> Comparison:
    """Compare every fresh run record with its reference record.

    Records are paired by their place ``<dataset>/<method>/seed<S>.json`` under each folder.
    For each pair present on both sides: the records must be comparable (same ``hparams``,
    ``limits``, ``data``, ``n_params``) and equally long, and each quantity of
    :data:`QUANTITIES` is compared at every epoch (see :func:`compare_records`).

    Args:
        reference_root: the committed reference records, e.g. ``results/quick``.
        fresh_root: the fresh records, e.g. ``runs/quick``.
        tolerances: :meth:`Tolerances.bit_identical` (same machine) or
            :meth:`Tolerances.measure` (another machine).

    Returns:
        The :class:`Comparison`: per record and method the differences, records missing on
        either side, unreadable records; its ``exit_code`` and ``report()``.

    Raises:
        CompareError: a folder is missing or holds no run records.
    """
    ref_root, fresh_root_p = Path(reference_root), Path(fresh_root)
    ref_recs, fresh_recs = _records_of(ref_root), _records_of(fresh_root_p)
    missing_fresh = tuple(str(fresh_root_p / rel)
                          for rel in sorted(set(ref_recs) - set(fresh_recs)))
    missing_ref = tuple(str(ref_root / rel) for rel in sorted(set(fresh_recs) - set(ref_recs)))
    unreadable: list[str] = []
    out: list[RecordComparison] = []
    for rel in sorted(set(ref_recs) & set(fresh_recs)):
        runs: list[Run] = []
        for side, p in (("reference", ref_recs[rel]), ("fresh", fresh_recs[rel])):
            try:
                runs.append(load_run(p))
            except RecordError as e:
                unreadable.append(f"{side}: {e}")
        if len(runs) == 2:
            out.append(compare_records(runs[0], runs[1], tolerances))
    return Comparison(reference_root=str(ref_root), fresh_root=str(fresh_root_p),
                      tolerances=tolerances, records=tuple(out), missing_fresh=missing_fresh,
                      missing_reference=missing_ref, unreadable=tuple(unreadable))


# --------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pcdeq.compare REFERENCE FRESH [--exact] [--out report.md]
    [--tolerances-from DIR]`` or ``python -m pcdeq.compare --measure REFERENCE``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 within tolerance (bit-identical with ``--exact``), 1 a difference
        beyond tolerance, 2 bad input (the message names the missing or partial records).
    """
    ap = argparse.ArgumentParser(
        prog="python -m pcdeq.compare",
        description="Compare fresh run records with the reference records (reproducibility "
                    "check). Exit 0: within tolerance; 1: a difference beyond tolerance; 2: bad "
                    "input (missing, partial, unreadable or not comparable records).")
    ap.add_argument("reference", help="reference results folder, e.g. results/quick")
    ap.add_argument("fresh", nargs="?", help="fresh results folder, e.g. runs/quick")
    ap.add_argument("--exact", action="store_true",
                    help="same machine: every record must be bit-identical (timing excluded)")
    ap.add_argument("--tolerances-from", metavar="DIR",
                    help="measure the cross-machine tolerances on DIR (default: REFERENCE)")
    ap.add_argument("--out", help="write the full Markdown report (with per-method tables) here")
    ap.add_argument("--measure", action="store_true",
                    help="print the tolerances measured on REFERENCE (seed-to-seed spread) "
                         "and exit")
    args = ap.parse_args(argv)
    try:
        if args.measure:
            if args.fresh is not None:
                ap.error("--measure takes only REFERENCE")
            print(f"Cross-machine tolerances measured on {args.reference} (seed-to-seed spread)\n")
            print(tolerance_table(measure_tolerances(args.reference)))
            return 0
        if args.fresh is None:
            ap.error("FRESH is required (or use --measure REFERENCE)")
        if args.exact and args.tolerances_from:
            ap.error("--exact and --tolerances-from exclude each other")
        tol = (Tolerances.bit_identical() if args.exact
               else Tolerances.try_measure(args.tolerances_from or args.reference))
        result = compare(args.reference, args.fresh, tol)
    except (CompareError, RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.report(details=True))
        print(result.report(details=False), end="")
        print(f"\n(full report with one table per method: {out})")
    else:
        print(result.report(details=True), end="")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
