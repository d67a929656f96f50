"""Where a claim's evidence comes from: a profile's run records and the weights beside them
(:class:`Source`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..report.records import Run, caption, load_runs


@dataclass
class Source:
    """A profile's committed (or fresh) results: run records and the weights beside them."""

    profile: str
    root: Path
    runs: list[Run] = field(default_factory=list)
    weight_files: list[Path] | None = None  # None: every seed*.pt under root

    @classmethod
    def load(cls, profile: str, root: str | Path, weights: Sequence[str] | None = None) -> "Source":
        root = Path(root)
        runs = load_runs(root) if root.is_dir() and any(root.rglob("*.json")) else []
        # Synthetic stand-ins check the pipeline; they are no evidence for or against a claim.
        return cls(profile, root, [r for r in runs if r.status == "complete"
                                   and not r.data["synthetic"]],
                   None if weights is None else [Path(w) for w in weights])

    def weights(self) -> list[Path]:
        """The weight files, in path order whoever listed them (the workflow lists them in the
        config's order): the same files give the same tables and figures, byte for byte."""
        if self.weight_files is not None:
            return sorted(p for p in self.weight_files if p.exists())
        # <dataset>/<method>/seed<S>.pt, the layout of the records (not superseded/, in_progress/)
        return sorted(self.root.glob("*/*/seed*.pt")) if self.root.is_dir() else []

    def weight_runs(self) -> list[Run]:
        """The runs whose final weights :meth:`weights` lists (the record beside each file)."""
        want = {p.with_suffix(".json").resolve() for p in self.weights()}
        return [r for r in self.runs if Path(r.path).resolve() in want]

    def weights_label(self) -> str:
        """Provenance of what the weights' measurements (model evidence, Figure 15) studied:
        those runs only, so that it never depends on which other runs exist yet (a fresh
        `all` measures the seed-0 weights before the seed-1 runs have finished)."""
        runs = self.weight_runs()
        return self.label(runs) if runs else ""

    def label(self, runs: Sequence[Run] | None = None) -> str:
        """Provenance of evidence drawn from ``runs`` (default: all of the source)."""
        return caption(self.profile, list(self.runs if runs is None else runs)).rstrip(".")


def load_sources(specs: Sequence[dict]) -> list[Source]:
    """``[{"profile": "quick", "dir": "results/quick"}, ...]`` -> sources (missing dirs: empty);
    an entry's optional "weights" lists the weight files to check (default: all under dir)."""
    return [Source.load(s["profile"], s["dir"], s.get("weights")) for s in specs]
