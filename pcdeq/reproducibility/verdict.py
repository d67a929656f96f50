"""Every record of two results folders compared, and the verdict as data (:class:`Comparison`):
what is missing or not comparable, what exceeds its tolerance, the exit status. The Markdown
report is a function of it (:mod:`.render`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

from ..report.records import RecordError, Run, find_records, load_run
from .record_check import Delta, RecordComparison, compare_records
from .rules import EXACT_KEYS, QUANTITIES, CompareError, format_number, format_value
from .tolerances import Tolerances


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


class MethodWorst(NamedTuple):
    """The largest difference of one quantity over a method's seeds and epochs.

    Attributes:
        diff: max |Δ| (absolute or relative, see :class:`~.rules.Quantity`); None where no
            seed recorded the quantity.
        where: ``"seed S, epoch E"`` of it ("" when it is 0 or None).
        tolerance: the tolerance at that epoch (None: not checkable).
        within: no seed beyond tolerance (with ``--exact``: the largest difference is 0).
    """

    diff: float | None
    where: str
    tolerance: float | None
    within: bool


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
                         f"{w.epoch}: reference {format_value(w.reference)}, fresh "
                         f"{format_value(w.fresh)})"
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
                               f"{format_value(w.reference)}, fresh {format_value(w.fresh)}); "
                               f"it follows from the protocol and must be equal{more}")
                    continue
                if e.quantity.endswith(">= 0"):
                    out.append(f"{who}: invariant {e.quantity} broken at epoch {w.epoch} "
                               f"(reference {format_value(w.reference)}, fresh "
                               f"{format_value(w.fresh)}); the reference keeps it at every "
                               f"epoch{more}")
                    continue
                unit = next(q.unit for q in QUANTITIES if q.name == e.quantity)
                out.append(f"{who}: {e.quantity} differs by {format_number(w.diff)} ({unit}) at "
                           f"epoch {w.epoch} (reference {format_value(w.reference)}, fresh "
                           f"{format_value(w.fresh)}), tolerance "
                           f"{format_number(e.tolerance)}{more}")
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

    # ------------------------------------------------------------- per method
    def methods(self) -> list[tuple[str, str]]:
        """(dataset, method) of the compared records, in order."""
        return list(dict.fromkeys((r.dataset, r.method) for r in self.records))

    def records_of(self, dataset: str, method: str) -> list[RecordComparison]:
        """The compared records (every seed) of one method."""
        return [r for r in self.records if (r.dataset, r.method) == (dataset, method)]

    def comparable_records(self, dataset: str, method: str) -> list[RecordComparison]:
        """The records of one method that are comparable (the others are not compared)."""
        return [r for r in self.records_of(dataset, method) if r.comparable]

    def method_worst(self, dataset: str, method: str, quantity: str) -> MethodWorst:
        """The largest difference of ``quantity`` over the method's comparable seeds and epochs.

        Args:
            dataset, method: which method.
            quantity: a name of :data:`~.rules.QUANTITIES`.

        Returns:
            Its :class:`MethodWorst`: (None, "", 0.0, True) where no seed recorded the
            quantity.
        """
        rs = self.comparable_records(dataset, method)
        best: tuple[float, RecordComparison, Delta] | None = None
        for r in rs:
            w = r.worst[quantity]
            if w is not None and (best is None or w.diff > best[0]):
                best = (w.diff, r, w)
        if best is None:
            return MethodWorst(None, "", 0.0, True)
        tol = best[1].tolerances[quantity]
        if self.tolerances.exact:
            within = best[0] == 0.0
        else:
            within = not any(e.quantity == quantity for r in rs for e in r.exceeded)
        where = f"seed {best[1].seed}, epoch {best[2].epoch}" if best[0] != 0.0 else ""
        return MethodWorst(best[0], where, tol, within)

    def method_ok(self, dataset: str, method: str) -> bool:
        """Every seed of the method within tolerance (bit-identical with ``--exact``)."""
        return all(r.ok(self.tolerances.exact) for r in self.records_of(dataset, method))

    def not_checkable(self) -> list[str]:
        """The compared records without a seed spread (one seed, no pool)."""
        return [f"{r.dataset} {r.method} seed {r.seed}" for r in self.records
                if r.comparable and not r.checkable]


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
        either side, unreadable records, and its ``exit_code``; the Markdown report of it is
        :func:`~.render.report_markdown`.

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
