"""``python -m pcdeq.compare``: the reproducibility check on the command line (see
:mod:`pcdeq.compare`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..files import atomic_write_text
from ..report.records import RecordError
from .render import report_markdown, tolerance_table
from .rules import CompareError
from .tolerances import Tolerances, measure_tolerances
from .verdict import compare


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
        atomic_write_text(out, report_markdown(result, details=True))
        print(report_markdown(result, details=False), end="")
        print(f"\n(full report with one table per method: {out})")
    else:
        print(report_markdown(result, details=True), end="")
    return result.exit_code
