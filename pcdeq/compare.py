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

The code, by seam, is the package :mod:`pcdeq.reproducibility` (rules, tolerances, one record's
check, the verdict, its Markdown report, the command line); every public name is importable
from here.
"""


from __future__ import annotations

import sys

from .reproducibility.cli import main
from .reproducibility.record_check import Delta, Exceedance, RecordComparison, compare_records
from .reproducibility.render import (environment_table, method_table, report_markdown,
                                     summary_table, tolerance_table)
from .reproducibility.rules import (ENVIRONMENT_FIELDS, EXACT_KEYS, INVARIANT_KEYS, QUANTITIES,
                                    QUANTITY_NAMES, CompareError, Quantity, difference,
                                    is_timing)
from .reproducibility.tolerances import (ALPHA, MIN_DOF, MIN_OWN_SEEDS, Spread, SpreadTable,
                                         Tolerances, measure_tolerances, resolution)
from .reproducibility.verdict import Comparison, MethodWorst, compare

__all__ = ["ALPHA", "ENVIRONMENT_FIELDS", "EXACT_KEYS", "INVARIANT_KEYS", "MIN_DOF",
           "MIN_OWN_SEEDS", "QUANTITIES", "QUANTITY_NAMES", "CompareError", "Comparison", "Delta",
           "Exceedance", "MethodWorst", "Quantity", "RecordComparison", "Spread", "SpreadTable",
           "Tolerances", "compare", "compare_records", "difference", "environment_table",
           "is_timing", "main", "measure_tolerances", "method_table", "report_markdown",
           "resolution", "summary_table", "tolerance_table"]

if __name__ == "__main__":
    sys.exit(main())
