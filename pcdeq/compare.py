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
default (another machine): each quantity at each epoch must agree within a tolerance derived
  from the reference's seed distribution (:func:`measure_tolerances`). Another machine changes
  the floating-point rounding (kernel selection, reduction order), and training may amplify a
  rounding difference as it amplifies a change of seed, so at worst the fresh run is a *new
  draw* of the seed distribution. The difference of two independent draws has standard
  deviation sqrt(2) sigma, so the tolerance is the two-sided prediction bound
  t_{1 - ALPHA/2, dof} * sqrt(2) * s, with s the seeds' sample standard deviation at that epoch:
  the method's own when it has at least MIN_OWN_SEEDS seeds, else pooled over the methods of
  the same dataset, architecture and family group (pcDEQ, monDEQ, DEQ, DEQ-JR, LipDEQ: one
  kind of constraint, one kind of sensitivity), else over the dataset and architecture: the
  first of these with MIN_DOF degrees of freedom (else the one with the most). A
  record with no such pool (one seed, and no other method of its dataset and architecture
  with two) is *not checkable* and reported as such, never given an unbounded tolerance. The
  tolerance is never below the quantity's resolution (one test image; one iteration on one
  batch; 1e-6 relative), so that quantities constant over seeds are not held to equality.
  The learning rate per epoch is a function of the protocol and must be equal; and an
  invariant the reference keeps at every epoch (pcDEQ's min W >= 0, min x >= 0) must hold in
  the fresh record too.

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
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .hparams import parse_method
from .report.paths import arch_key
from .record import COMPARABLE_FIELDS, PLACE_FIELDS
from .report.records import RecordError, Run, find_records, load_run
from .stats import pooled_sd, t_quantile


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
# COMPARABLE_FIELDS, PLACE_FIELDS: pcdeq.record (what makes two records the same run, where it ran)
# Where the run ran: reported side by side when they differ, never a reason to fail.
ENVIRONMENT_FIELDS: tuple[str, ...] = PLACE_FIELDS
# Per-test false-alarm probability of the prediction bound. A record is tested at every epoch
# for six quantities; consecutive epochs are strongly correlated, so 1e-3 per test keeps the
# chance that a faithful rerun of a method as chaotic as a new seed fails anywhere at a few
# percent, while a change of the training itself (lr, schedule, constraint) moves the early
# epochs by many seed standard deviations.
ALPHA = 1e-3
# The most specific pool with 2 degrees of freedom bounds a method. Specificity first: a
# spread pooled with other families' is a wrong variance (an unconstrained DEQ amplifies
# rounding far more than pcDEQ), which no multiplier repairs and which fails faithful reruns,
# while few degrees of freedom only cost power, which t_{1 - ALPHA/2, dof} charges honestly
# (31.6 at 2 dof). At 1 dof it is 637: practically unbounded, so the next wider pool is used.
# (A first version asked for 4 and failed the committed two-machine DEQ-L-Tanh pair by
# pooling it with pcDEQ: tests/data/two_machines.)
MIN_DOF = 2
MIN_OWN_SEEDS = MIN_DOF + 1
# Epoch keys compared exactly: a deterministic function of the protocol.
EXACT_KEYS: tuple[str, ...] = ("lr",)
# Epoch keys whose sign is an invariant of a family (pcDEQ: W >= 0, x >= 0).
INVARIANT_KEYS: tuple[str, ...] = ("min_weight", "min_input")


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
@dataclass(frozen=True)
class Spread:
    """The seed-to-seed spread of one quantity at one epoch, as a tolerance.

    Attributes:
        sd: sample standard deviation (ddof = 1), pooled where ``pool`` says so.
        dof: its degrees of freedom.
        pool: whose seeds: ``"own"`` or ``"<dataset> <arch> <group>"`` /
            ``"<dataset> <arch>"``, with the number of methods.
    """

    sd: float
    dof: int
    pool: str

    def tolerance(self, resolution: float) -> float:
        """t_{1 - ALPHA/2, dof} * sqrt(2) * sd, at least ``resolution``."""
        return max(t_quantile(1 - ALPHA / 2, self.dof) * math.sqrt(2) * self.sd, resolution)


# (dataset, pool key) -> quantity -> epoch -> Spread
SpreadTable = dict[tuple[str, str], dict[str, dict[int, Spread]]]


def resolution(quantity: str, run: Run) -> float:
    """The smallest difference a record can show: one test image of test accuracy, one
    iteration on one batch of a per-batch mean, 1e-6 of a relative quantity (float32 sums)."""
    if quantity == "test_acc":
        return 100.0 / run.data["n_test"]
    if quantity == "test_fwd_iters":
        return 1.0 / math.ceil(run.data["n_test"] / run.hparams["batch_size"])
    if quantity in ("fwd_iters", "bwd_iters"):
        return 1.0 / math.ceil(run.data["n_train"] / run.hparams["batch_size"])
    return 1e-6


def _pools(method: str) -> list[str]:
    """The pool keys of a method, most specific first: own, (arch, group), arch."""
    return [f"own {method}", f"{arch_key(method)} {parse_method(method).group}", arch_key(method)]


def measure_tolerances(reference_root: str | Path) -> SpreadTable:
    """The seed distribution of every quantity at every epoch, per method and pooled.

    For each dataset and each pool of :func:`_pools` (a method's own seeds when it has at
    least :data:`MIN_OWN_SEEDS`; the methods of one architecture and family group; of one
    architecture), each quantity of :data:`QUANTITIES` and each epoch: the pooled sample
    standard deviation over the complete runs of the pool's methods that recorded a finite
    value (:func:`pcdeq.stats.pooled_sd`) and its degrees of freedom. Diverged runs are left out.

    Args:
        reference_root: a results folder (``<dataset>/<method>/seed<S>.json``).

    Returns:
        ``{(dataset, pool): {quantity: {epoch: Spread}}}``; a pool is absent where no method
        in it has two seeds.

    Raises:
        RecordError: the folder is missing or holds a malformed or unfinished record.
        CompareError: no method has two complete seeds, so nothing can be measured.
    """
    runs = [load_run(p) for p in find_records(reference_root)]
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        if r.status == "complete":
            groups.setdefault((r.dataset, r.method), []).append(r)
    members: dict[tuple[str, str], list[list[Run]]] = {}
    for (dataset, method), rs in sorted(groups.items()):
        own, *shared = _pools(method)
        if len(rs) >= MIN_OWN_SEEDS:
            members.setdefault((dataset, own), []).append(rs)
        for key in shared:
            members.setdefault((dataset, key), []).append(rs)
    out: SpreadTable = {}
    for (dataset, key), method_runs in members.items():
        n_methods = sum(len(rs) >= 2 for rs in method_runs)
        label = "own seeds" if key.startswith("own ") else f"{dataset} {key}, {n_methods} methods"
        for q in QUANTITIES:
            n_epochs = max(len(r.epochs) for rs in method_runs for r in rs)
            for e in range(1, n_epochs + 1):
                vals = [[float(r.epochs[e - 1].value(q.name)) for r in rs
                         if len(r.epochs) >= e and r.epochs[e - 1].value(q.name) is not None
                         and math.isfinite(r.epochs[e - 1].value(q.name))] for rs in method_runs]
                if q.relative:  # a relative difference: spread of the log
                    vals = [[math.log(v) for v in vs if v > 0] for vs in vals]
                pooled = pooled_sd(vals)
                if pooled is not None:
                    out.setdefault((dataset, key), {}).setdefault(q.name, {})[e] = Spread(
                        pooled[0], pooled[1], label)
    if not out:
        raise CompareError(
            f"{reference_root}: no method has two complete seeds, so the seed distribution "
            "(the cross-machine tolerances) cannot be measured; use --exact, or measure the "
            "tolerances on another reference with --tolerances-from")
    return out


@dataclass(frozen=True)
class Tolerances:
    """How close a fresh record must be to its reference.

    Attributes:
        exact: every record must be bit-identical (timing excluded); ``measured`` is unused.
        measured: the seed spreads, as returned by :func:`measure_tolerances`.
        source: where the tolerances come from (for the report).
        error: why the tolerances could not be measured (e.g. a reference record is missing or
            unfinished); :func:`compare` still runs, with tolerance 0, so that the report names
            every missing or partial record, and the check counts as bad input (exit 2).
    """

    exact: bool
    measured: SpreadTable = field(default_factory=dict)
    source: str = ""
    error: str = ""

    @classmethod
    def bit_identical(cls) -> Tolerances:
        """The ``--exact`` mode: same machine, every compared number exactly equal."""
        return cls(exact=True, source="exact: every record bit-identical (timing excluded)")

    @classmethod
    def measure(cls, reference_root: str | Path) -> Tolerances:
        """The default (cross-machine) mode: tolerances from the seeds of ``reference_root``.

        Raises:
            RecordError, CompareError: see :func:`measure_tolerances`.
        """
        return cls(exact=False, measured=measure_tolerances(reference_root),
                   source=f"prediction bound for a new draw (alpha {ALPHA:g}) from the seeds "
                          f"of {reference_root}")

    @classmethod
    def try_measure(cls, reference_root: str | Path) -> Tolerances:
        """:meth:`measure`, or, where the reference cannot be measured (missing folder,
        unreadable or unfinished record, no method with two seeds), tolerances with
        ``error`` set (and 0 everywhere), so that the comparison still names every problem."""
        try:
            return cls.measure(reference_root)
        except (CompareError, RecordError) as e:
            return cls(exact=False, source=f"NOT MEASURED on {reference_root}", error=str(e))

    def spread(self, dataset: str, method: str, quantity: str, epoch: int) -> Spread | None:
        """The spread that bounds ``quantity`` of ``method`` at ``epoch``: the most specific
        pool of :func:`_pools` with at least :data:`MIN_DOF` degrees of freedom, else the
        pool with the most, or None (not checkable)."""
        found = [sp for key in _pools(method)
                 if (sp := self.measured.get((dataset, key), {}).get(quantity, {}).get(epoch))]
        for sp in found:
            if sp.dof >= MIN_DOF:
                return sp
        return max(found, key=lambda sp: sp.dof) if found else None

    def checkable(self, dataset: str, method: str) -> bool:
        """Whether any pool bounds this method (False: one seed and no pool)."""
        return self.exact or any((dataset, k) in self.measured for k in _pools(method))


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
        tolerances: per quantity, the tolerance at the epoch of its largest difference.
        exceeded: the quantities beyond tolerance (always empty in the exact mode, where
            ``bit_identical`` decides), the learning rate if it differs, and broken invariants.
        checkable: False where the reference has no seed spread for this method (one seed and
            no pool): nothing but the exact keys and invariants is then checked.
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
    tolerances: dict[str, float | None]
    exceeded: tuple[Exceedance, ...]
    bit_identical: bool
    other_fields: tuple[str, ...]
    checkable: bool = True

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


def _differing_pairs(ref: dict, fresh: dict, fields: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each differing (flattened) key of ``fields`` -> (reference value, fresh value) as JSON."""
    out = {}
    for f in fields:
        a = _flatten(ref.get(f, _ABSENT), f)
        b = _flatten(fresh.get(f, _ABSENT), f)
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k, _ABSENT), b.get(k, _ABSENT)
            if not _same(va, vb):
                out[k] = (_value(va), _value(vb))
    return out


def _differing_keys(ref: dict, fresh: dict, fields: Sequence[str]) -> tuple[str, ...]:
    """``key (reference X, fresh Y)`` for each differing (flattened) key of ``fields``."""
    return tuple(f"{k} (reference {va}, fresh {vb})"
                 for k, (va, vb) in _differing_pairs(ref, fresh, fields).items())


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
    ref_raw, fresh_raw = ref.to_json(), fresh.to_json()
    not_comparable = _differing_keys(ref_raw, fresh_raw, COMPARABLE_FIELDS)
    environment = _differing_keys(ref_raw, fresh_raw, ENVIRONMENT_FIELDS)
    checkable = tolerances.checkable(ref.dataset, ref.method)
    tols: dict[str, float | None] = {q.name: 0.0 if checkable else None for q in QUANTITIES}
    worst: dict[str, Delta | None] = {q.name: None for q in QUANTITIES}
    first: dict[str, int | None] = {q.name: None for q in QUANTITIES}
    exceeded: list[Exceedance] = []
    other: dict[str, int] = {}
    identical = (ref.status == fresh.status and len(ref.epochs) == len(fresh.epochs)
                 and not not_comparable)
    if not not_comparable:
        for q in QUANTITIES:
            beyond: list[int] = []
            worst_excess = None
            for er, ef in zip(_epoch_dicts(ref), _epoch_dicts(fresh)):
                epoch = int(er["epoch"])
                d = difference(q, er.get(q.name), ef.get(q.name))
                if d is None:
                    continue
                if d != 0.0 and first[q.name] is None:
                    first[q.name] = epoch
                tol = _tolerance(tolerances, ref, q, epoch) if checkable else math.inf
                cur = worst[q.name]
                if cur is None or d > cur.diff:
                    worst[q.name] = Delta(q.name, epoch, er.get(q.name), ef.get(q.name), d)
                    tols[q.name] = tol if checkable else None
                if d > tol:
                    beyond.append(epoch)
                    excess = d / tol if tol > 0 else math.inf
                    if worst_excess is None or excess > worst_excess[0]:
                        worst_excess = (excess, Delta(q.name, epoch, er.get(q.name),
                                                      ef.get(q.name), d), tol)
            if beyond and not tolerances.exact:
                exceeded.append(Exceedance(q.name, worst_excess[2], worst_excess[1], tuple(beyond)))
        if not tolerances.exact:
            exceeded += _exact_and_invariants(ref, fresh)
        for er, ef in zip(_epoch_dicts(ref), _epoch_dicts(fresh)):
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
        other_fields=other_fields, checkable=checkable)


def _tolerance(tolerances: Tolerances, ref: Run, q: Quantity, epoch: int) -> float:
    """The tolerance of ``q`` at ``epoch`` on the scale :func:`difference` measures (exact: 0;
    no spread measured for this epoch: the quantity's resolution)."""
    if tolerances.exact:
        return 0.0
    res = resolution(q.name, ref)
    sp = tolerances.spread(ref.dataset, ref.method, q.name, epoch)
    if sp is None:
        return res
    tol = sp.tolerance(0.0)
    # Relative quantities are spread on the log scale: |log a - log b| <= tol is
    # 1 - min/max <= 1 - exp(-tol), the relative difference's scale.
    return max(-math.expm1(-tol), res) if q.relative else max(tol, res)


def _epoch_dicts(run: Run) -> list[dict]:
    """The epochs as the file holds them (absent fields absent): what is compared key by key."""
    return [e.to_json() for e in run.epochs]


def _exact_and_invariants(ref: Run, fresh: Run) -> list[Exceedance]:
    """Epoch keys of :data:`EXACT_KEYS` that differ, and invariants of :data:`INVARIANT_KEYS`
    that the reference keeps (>= 0 at every epoch) but the fresh record breaks."""
    out = []
    pairs = list(zip(_epoch_dicts(ref), _epoch_dicts(fresh)))
    for key in EXACT_KEYS:
        bad = [(er, ef) for er, ef in pairs
               if er.get(key) is not None and not _same(er.get(key), ef.get(key))]
        if bad:
            er, ef = bad[0]
            out.append(Exceedance(key, 0.0, Delta(key, int(er["epoch"]), er.get(key), ef.get(key),
                                                  math.inf), tuple(int(e["epoch"]) for e, _ in bad)))
    for key in INVARIANT_KEYS:
        kept = [er.get(key) for er, _ in pairs]
        if not kept or any(v is None or v < 0 for v in kept):
            continue
        bad = [(er, ef) for er, ef in pairs
               if ef.get(key) is None or ef[key] < 0]
        if bad:
            er, ef = bad[0]
            out.append(Exceedance(f"{key} >= 0", 0.0, Delta(key, int(er["epoch"]), er.get(key),
                                                             ef.get(key), math.inf),
                                  tuple(int(e["epoch"]) for e, _ in bad)))
    return out


def _epochs(epochs: Sequence[int]) -> str:
    """1, 2, 3, 7 -> "1-3, 7"."""
    out, start = [], None
    for i, e in enumerate(epochs):
        if start is None:
            start = e
        if i + 1 == len(epochs) or epochs[i + 1] != e + 1:
            out.append(str(start) if start == e else f"{start}-{e}")
            start = None
    return ", ".join(out)


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
                w = e.worst
                more = (f"; beyond tolerance at epochs {_epochs(e.epochs)}"
                        if len(e.epochs) > 1 else "")
                if e.quantity in EXACT_KEYS:
                    out.append(f"{who}: {e.quantity} differs at epoch {w.epoch} (reference "
                               f"{_value(w.reference)}, fresh {_value(w.fresh)}); it follows "
                               f"from the protocol and must be equal{more}")
                    continue
                if e.quantity.endswith(">= 0"):
                    out.append(f"{who}: invariant {e.quantity} broken at epoch {w.epoch} "
                               f"(reference {_value(w.reference)}, fresh {_value(w.fresh)}); "
                               f"the reference keeps it at every epoch{more}")
                    continue
                unit = next(q.unit for q in QUANTITIES if q.name == e.quantity)
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
                      quantity: str) -> tuple[float | None, str, float | None, bool]:
        """(max |Δ|, where: 'seed S, epoch E', tolerance, within) over the method's seeds."""
        rs = self._of(dataset, method)
        best: tuple[float, RecordComparison, Delta] | None = None
        for r in rs:
            w = r.worst[quantity]
            if w is not None and (best is None or w.diff > best[0]):
                best = (w.diff, r, w)
        if best is None:
            return None, "", 0.0, True
        tol = best[1].tolerances[quantity]
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
        if not all(r.checkable for r in rs):
            lines += ["not checkable: one seed, and no other method of its dataset and "
                      "architecture with two (only the learning rate and invariants checked)", ""]
        lines += ["| quantity | unit | max \\|Δ\\| | at | tolerance there | within |",
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
        """Markdown table of the seed pools the tolerances come from."""
        if self.tolerances.exact:
            return "exact: every compared number must be bit-identical (timing excluded)"
        if not self.tolerances.measured:
            return f"not measured ({self.tolerances.error}); 0 used everywhere"
        return tolerance_table(self.tolerances.measured)

    def not_checkable(self) -> list[str]:
        """The compared records without a seed spread (one seed, no pool)."""
        return [f"{r.dataset} {r.method} seed {r.seed}" for r in self.records
                if r.comparable and not r.checkable]

    def environment_table(self) -> str:
        """Reference and fresh environment side by side, for the keys that differ."""
        rows: dict[str, tuple[str, str]] = {}
        for r in self.records:
            a, b = _raw(r.reference_path), _raw(r.fresh_path)
            for k, (va, vb) in _differing_pairs(a, b, ENVIRONMENT_FIELDS).items():
                rows.setdefault(k, (va, vb))
        if not rows:
            return ""
        lines = ["| where the runs ran | reference | fresh |", "|---|---|---|"]
        lines += [f"| {k} | {va} | {vb} |" for k, (va, vb) in sorted(rows.items())]
        return "\n".join(lines)

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
                 "- differences: test_acc, fwd/bwd/test_fwd_iters absolute (points, "
                 f"iterations); train_loss, sigma_max relative, |a - b| / max(|a|, |b|); "
                 f"timing never compared",
                 "", f"**{verdict}**", ""]
        problems = self.bad_input() + self.failures()
        if problems:
            lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
        versions = sorted({(json.dumps(_raw(r.reference_path).get("torch")),
                            json.dumps(_raw(r.fresh_path).get("torch"))) for r in self.records})
        versions = [(a, b) for a, b in versions if a != b]
        if versions:
            lines += ["**Warning: different torch versions** (their kernels round differently; "
                      "the tolerances still apply): " + "; ".join(
                          f"reference {a}, fresh {b}" for a, b in versions), ""]
        unchecked = self.not_checkable()
        if unchecked and not self.tolerances.exact:
            lines += [f"**Not checkable** ({len(unchecked)} records: one seed, and no other "
                      "method of the same dataset and architecture with two seeds; only the "
                      "learning rate and the invariants were checked): " + ", ".join(unchecked),
                      ""]
        env = self.environment_table()
        if env:
            lines += ["## Environment (informational; the first record pair that differs)", "",
                      env, ""]
        if self.records:
            lines += ["## Max |Δ| per method (over epochs and seeds; * beyond tolerance)", "",
                      self.summary_table(), ""]
        lines += ["## Tolerances", "", self.tolerance_table(), ""]
        if details and self.records:
            lines += ["## Per method", ""]
            lines += [self.method_table(d, m) for d, m in self.methods()]
        return "\n".join(lines).rstrip() + "\n"


def tolerance_table(measured: SpreadTable) -> str:
    """Markdown table of the measured seed pools: per dataset and pool, the degrees of freedom
    and, per quantity, the tolerance at the last epoch measured."""
    head = ["dataset", "pool", "dof"] + [f"{q.name} ({q.unit})" for q in QUANTITIES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (dataset, key) in sorted(measured):
        per_q = measured[(dataset, key)]
        dofs = sorted({sp.dof for eps in per_q.values() for sp in eps.values()})
        cells = [dataset, key, "-".join(map(str, (dofs[0], dofs[-1]) if len(dofs) > 1 else dofs))]
        for q in QUANTITIES:
            eps = per_q.get(q.name)
            if not eps:
                cells.append("n/a")
                continue
            tol = eps[max(eps)].tolerance(0.0)
            cells.append(_fmt(-math.expm1(-tol) if q.relative else tol))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"t_(1-{ALPHA:g}/2, dof) x sqrt(2) x the seeds' sample std at the last epoch "
                  f"(relative quantities: of the log); a method uses the first pool with "
                  f"{MIN_DOF} or more degrees of freedom of: its own seeds, its architecture and "
                  f"family group, its architecture (else the one with the most); never below the "
                  f"quantity's resolution; n/a: never recorded"]
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
            print(f"Cross-machine tolerances from the seeds of {args.reference}\n")
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
