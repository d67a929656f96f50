"""What the reproducibility check compares and how: the per-epoch quantities, the difference of
two values, the epoch keys compared exactly or as invariants, and how values are written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..record import PLACE_FIELDS


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


def same(a: Any, b: Any) -> bool:
    """Exact equality, NaN equal to NaN, lists elementwise (a bool never equals a number).

    Args:
        a, b: two record values (JSON types, or :data:`ABSENT`).

    Returns:
        Whether the two are the same value.
    """
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if _is_nan(a) and _is_nan(b):
        return True
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


# ------------------------------------------------------------------------ writing values
# A key one record has and the other lacks (distinct from a recorded null).
ABSENT = "<absent>"


def format_value(x: Any) -> str:
    """A record value as JSON spells it (null, 0.001, "2.3.0"); ``absent`` for a missing key.

    Args:
        x: a record value, or :data:`ABSENT`.

    Returns:
        Its spelling in the report.
    """
    return "absent" if x is ABSENT else json.dumps(x, default=str)


def format_number(x: float | None) -> str:
    """A difference or a tolerance, to three significant digits.

    Args:
        x: the number; None where there is none.

    Returns:
        ``n/a`` for None, ``0``, ``inf``, else ``f"{x:.3g}"``.
    """
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"
