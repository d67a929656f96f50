"""The Markdown report of the reproducibility check: a function of the verdict
(:class:`~.verdict.Comparison`) alone; nothing here decides anything or reads a file."""

from __future__ import annotations

import math

from .rules import QUANTITIES, format_number
from .tolerances import ALPHA, MIN_DOF, SpreadTable
from .verdict import Comparison


def method_table(c: Comparison, dataset: str, method: str) -> str:
    """Markdown table of one method: per quantity, max |Δ| over epochs and seeds, where it
    occurs, the tolerance and whether it is within.

    Args:
        c: the comparison.
        dataset, method: which method.

    Returns:
        A ``### dataset method`` section.
    """
    rs = c.records_of(dataset, method)
    ident = sum(r.bit_identical for r in rs)
    lines = [f"### {dataset} {method}", "",
             f"seeds {', '.join(str(r.seed) for r in rs)}; bit-identical: {ident}/{len(rs)}",
             ""]
    if not c.comparable_records(dataset, method):
        return "\n".join(lines + ["not comparable (see the problems above)", ""])
    if not all(r.checkable for r in rs):
        lines += ["not checkable: one seed, and no other method of its dataset and "
                  "architecture with two (only the learning rate and invariants checked)", ""]
    lines += ["| quantity | unit | max \\|Δ\\| | at | tolerance there | within |",
              "|---|---|---|---|---|---|"]
    for q in QUANTITIES:
        d, where, tol, within = c.method_worst(dataset, method, q.name)
        lines.append(f"| {q.name} | {q.unit} | {format_number(d)} | {where or '-'} | "
                     f"{format_number(tol)} | {'yes' if within else '**NO**'} |")
    return "\n".join(lines + [""])


def summary_table(c: Comparison) -> str:
    """Markdown table, one row per method: max |Δ| of each quantity over epochs and seeds
    (``*`` marks one beyond tolerance), bit-identical seeds, within tolerance.

    Args:
        c: the comparison.

    Returns:
        The table.
    """
    head = ["dataset", "method", "bit-identical"] + [
        f"{q.name} ({'rel.' if q.relative else q.unit})" for q in QUANTITIES] + ["within"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dataset, method in c.methods():
        rs = c.records_of(dataset, method)
        cells = [dataset, method, f"{sum(r.bit_identical for r in rs)}/{len(rs)}"]
        if not c.comparable_records(dataset, method):
            cells += ["not comparable"] * len(QUANTITIES) + ["**NO**"]
        else:
            for q in QUANTITIES:
                worst = c.method_worst(dataset, method, q.name)
                cells.append(format_number(worst.diff) + ("" if worst.within else " *"))
            cells.append("yes" if c.method_ok(dataset, method) else "**NO**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tolerance_table(measured: SpreadTable) -> str:
    """Markdown table of the measured seed pools: per dataset and pool, the degrees of freedom
    and, per quantity, the tolerance at the last epoch measured.

    Args:
        measured: the spreads, as :func:`~.tolerances.measure_tolerances` returns them.

    Returns:
        The table and a line on how the tolerances are made.
    """
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
            cells.append(format_number(-math.expm1(-tol) if q.relative else tol))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"t_(1-{ALPHA:g}/2, dof) x sqrt(2) x the seeds' sample std at the last epoch "
                  f"(relative quantities: of the log); a method uses the first pool with "
                  f"{MIN_DOF} or more degrees of freedom of: its own seeds, its architecture and "
                  f"family group, its architecture (else the one with the most); never below the "
                  f"quantity's resolution; n/a: never recorded"]
    return "\n".join(lines)


def _tolerances_section(c: Comparison) -> str:
    """The seed pools the tolerances come from (or why there are none)."""
    if c.tolerances.exact:
        return "exact: every compared number must be bit-identical (timing excluded)"
    if not c.tolerances.measured:
        return f"not measured ({c.tolerances.error}); 0 used everywhere"
    return tolerance_table(c.tolerances.measured)


def environment_table(c: Comparison) -> str:
    """Reference and fresh environment side by side, for the keys that differ (the first
    record pair that differs in a key gives its values).

    Args:
        c: the comparison.

    Returns:
        The table, or "" when no environment key differs.
    """
    rows: dict[str, tuple[str, str]] = {}
    for r in c.records:
        for k, (va, vb) in r.environment_pairs.items():
            rows.setdefault(k, (va, vb))
    if not rows:
        return ""
    lines = ["| where the runs ran | reference | fresh |", "|---|---|---|"]
    lines += [f"| {k} | {va} | {vb} |" for k, (va, vb) in sorted(rows.items())]
    return "\n".join(lines)


def _headline(c: Comparison) -> str:
    """The verdict in one line, from the exit status."""
    exact = c.tolerances.exact
    return {0: "PASS: " + ("every record bit-identical" if exact
                           else "every difference within tolerance"),
            1: "FAIL: differences beyond tolerance"
               + (" (--exact: not bit-identical)" if exact else ""),
            2: "BAD INPUT: the check is incomplete (missing, partial, unreadable or "
               "not comparable records)"}[c.exit_code]


def report_markdown(c: Comparison, details: bool = True) -> str:
    """The Markdown report: verdict, problems, the summary table, the tolerances and (with
    ``details``) one table per method.

    Args:
        c: the comparison.
        details: add the per-method tables (``--out``); without them, what the command prints.

    Returns:
        The report, ending in one newline.
    """
    exact = c.tolerances.exact
    n_ident = sum(r.bit_identical for r in c.records)
    lines = ["# Reproducibility check", "",
             f"- reference: `{c.reference_root}`, fresh: `{c.fresh_root}`",
             f"- mode: {'--exact' if exact else 'cross-machine'}; "
             f"tolerances: {c.tolerances.source}",
             f"- {len(c.records)} records on both sides, {n_ident} bit-identical; "
             f"{len(c.missing_fresh)} missing fresh, {len(c.missing_reference)} "
             f"missing reference, {len(c.unreadable)} unreadable",
             "- differences: test_acc, fwd/bwd/test_fwd_iters absolute (points, "
             f"iterations); train_loss, sigma_max relative, |a - b| / max(|a|, |b|); "
             f"timing never compared",
             "", f"**{_headline(c)}**", ""]
    problems = c.bad_input() + c.failures()
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    versions = [(a, b) for a, b in sorted({r.torch for r in c.records}) if a != b]
    if versions:
        lines += ["**Warning: different torch versions** (their kernels round differently; "
                  "the tolerances still apply): " + "; ".join(
                      f"reference {a}, fresh {b}" for a, b in versions), ""]
    unchecked = c.not_checkable()
    if unchecked and not exact:
        lines += [f"**Not checkable** ({len(unchecked)} records: one seed, and no other "
                  "method of the same dataset and architecture with two seeds; only the "
                  "learning rate and the invariants were checked): " + ", ".join(unchecked),
                  ""]
    env = environment_table(c)
    if env:
        lines += ["## Environment (informational; the first record pair that differs)", "",
                  env, ""]
    if c.records:
        lines += ["## Max |Δ| per method (over epochs and seeds; * beyond tolerance)", "",
                  summary_table(c), ""]
    lines += ["## Tolerances", "", _tolerances_section(c), ""]
    if details and c.records:
        lines += ["## Per method", ""]
        lines += [method_table(c, d, m) for d, m in c.methods()]
    return "\n".join(lines).rstrip() + "\n"
