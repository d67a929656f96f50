"""One run record against its reference: the differences of every quantity at every epoch,
the quantities beyond tolerance, the learning rate and the invariants, and whether the two are
bit-identical (:func:`compare_records`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..record import COMPARABLE_FIELDS
from ..report.records import Run
from .rules import (ABSENT, ENVIRONMENT_FIELDS, EXACT_KEYS, INVARIANT_KEYS, QUANTITIES,
                    QUANTITY_NAMES, difference, format_value, is_timing, same)
from .tolerances import Tolerances


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
        environment_pairs: the same keys -> (reference value, fresh value), as JSON spells
            them (the report's side-by-side table).
        torch: (reference, fresh) torch version as JSON spells it (the report warns when they
            differ).
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
    environment_pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    torch: tuple[str, str] = ("null", "null")

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


def differing_pairs(ref: dict, fresh: dict, fields: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The keys of ``fields`` on which two records differ, nested keys flattened
    (``hparams.lr``).

    Args:
        ref, fresh: the two records' JSON objects.
        fields: the top-level keys to look at.

    Returns:
        Each differing key -> (reference value, fresh value) as JSON spells them
        (:func:`~.rules.format_value`).
    """
    out = {}
    for f in fields:
        a = _flatten(ref.get(f, ABSENT), f)
        b = _flatten(fresh.get(f, ABSENT), f)
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k, ABSENT), b.get(k, ABSENT)
            if not same(va, vb):
                out[k] = (format_value(va), format_value(vb))
    return out


def _as_keys(pairs: dict[str, tuple[str, str]]) -> tuple[str, ...]:
    """``key (reference X, fresh Y)`` for each differing key of :func:`differing_pairs`."""
    return tuple(f"{k} (reference {va}, fresh {vb})" for k, (va, vb) in pairs.items())


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
    not_comparable = _as_keys(differing_pairs(ref_raw, fresh_raw, COMPARABLE_FIELDS))
    environment_pairs = differing_pairs(ref_raw, fresh_raw, ENVIRONMENT_FIELDS)
    environment = _as_keys(environment_pairs)
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
                tol = tolerances.bound(ref, q, epoch) if checkable else math.inf
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
                if not same(er.get(k, ABSENT), ef.get(k, ABSENT)):
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
        other_fields=other_fields, checkable=checkable, environment_pairs=environment_pairs,
        torch=(json.dumps(ref_raw.get("torch")), json.dumps(fresh_raw.get("torch"))))



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
               if er.get(key) is not None and not same(er.get(key), ef.get(key))]
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
