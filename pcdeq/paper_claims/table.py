"""The claims table (``tables/claims.md`` + ``.tex``), opened by a one-line summary per claim
(``tables/claims_summary.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..report.tables import Table
from .claim import Claim
from .sources import Source


ORDER = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10"]


def _short_verdict(c: Claim) -> str:
    return f"**{c.verdict}**" + (f" ({c.decisive})" if c.decisive else "")


def summary_table(claims: Sequence[Claim], sources: Sequence[Source]) -> Table:
    """One line per claim: the claim, its place in the paper, and per profile the verdict with
    the one number it turned on (the opening of ``tables/claims.md``)."""
    profiles = [s.profile for s in sources]
    header = ["#", "Claim", "Paper"] + [f"{p} profile" for p in profiles]
    rows = []
    for key in sorted({c.key for c in claims}, key=lambda k: ORDER.index(k) if k in ORDER else 99):
        cs = [c for c in claims if c.key == key]
        row = [key, cs[0].claim, cs[0].where]
        for p in profiles:
            mine = [c for c in cs if c.profile == p] or [c for c in cs if not c.profile]
            row.append(_short_verdict(mine[0]) if mine else "—")
        rows.append(row)
    return Table("claims_summary", "The paper's claims at a glance",
                 "Per profile, the verdict and the number that decided it (with the threshold "
                 "it needed); the evidence of each claim follows.", header, rows,
                 align="l" * len(header))


@dataclass
class ClaimsTable(Table):
    """The claims table, opened by its :func:`summary_table`."""

    summary: Table | None = None

    def to_markdown(self) -> str:
        head = self.summary.to_markdown() + "\n" if self.summary is not None else ""
        return head + super().to_markdown()

    def to_latex(self) -> str:
        head = self.summary.to_latex() + "\n" if self.summary is not None else ""
        return head + super().to_latex()


def claims_table(claims: Sequence[Claim], sources: Sequence[Source]) -> Table:
    """The claims table (``tables/claims.md`` + ``.tex``): the one-line summary per claim,
    then every claim's evidence, in claim order."""
    order = {c: i for i, c in enumerate(ORDER)}
    claims = sorted(claims, key=lambda c: order.get(c.key, 99))
    header = ["#", "Claim", "Paper", "Test", "Measured (profile, data)", "Verdict"]
    rows = [[c.key, c.claim, c.where, c.test, c.evidence,
             f"**{c.verdict}**" + (f": {c.why}" if c.why else "")] for c in claims]
    srcs = ", ".join(f"{s.profile} ({s.root}/, {len(s.runs)} complete real-data runs)" for s in sources)
    notes = ["Every verdict is computed in notebooks/claims.ipynb from the measured value and "
             "the threshold in the Test column (pcdeq.claims.THRESHOLDS); none is typed.",
             "C1, C2, C7 run on the trained models whose weights are committed beside the "
             "records (reference_weights of each profile); C3-C6 read the run records."]
    return ClaimsTable("claims", "The paper's claims, checked", f"Evidence from: {srcs}.", header,
                       rows, notes, align="lllllll"[:len(header)],
                       summary=summary_table(claims, sources))
