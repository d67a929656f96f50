"""C1 (uniqueness), C2 (geometric convergence) and C7 (invariants): the claims checked on the
trained models of a source (:func:`model_evidence`, then :func:`claims_from_models`)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .. import beyond_contraction as bc
from ..data import DatasetMissing
from ..errors import ConfigError
from ..hparams import dataset_info, parse_method
from ..report.paths import EVIDENCE_FILE, REFERENCE_ROOT
from ..report.records import Run
from .claim import THRESHOLDS, UNTESTABLE, Claim, untestable, verdict
from .fixed_points import (Invariants, Rate, Uniqueness, convergence_rate, invariants,
                           layer_problems, test_images, uniqueness)
from .sources import Source


@dataclass
class ModelEvidence:
    """Every weight-based measurement of one source."""

    source: Source
    models: list[str] = field(default_factory=list)  # "method seedK"
    uniqueness: list[Uniqueness] = field(default_factory=list)
    rates: list[Rate] = field(default_factory=list)
    invariants: list[Invariants] = field(default_factory=list)
    images: dict[str, set[int]] = field(default_factory=dict)  # dataset -> test images used
    missing: list[str] = field(default_factory=list)  # why some weights could not be used
    scaled: "bc.Study | None" = None  # W scaled beyond contraction, with controls (Figure 15)
    weights: dict[str, str] = field(default_factory=dict)  # file -> sha256, as measured
    settings: dict[str, int] = field(default_factory=dict)  # model_evidence's images / starts
    inputs: dict[str, str] = field(default_factory=dict)  # the test images' files -> sha256


N_STARTS = 20  # random starts per layer beside z = 0 (the claims' default)


def model_evidence(source: Source, *, data_root: str = "data", images_l: int = 64,
                   images_conv: int = 2, n_starts: int = N_STARTS,
                   scaled: bc.Settings | None = None) -> ModelEvidence:
    """Run :func:`uniqueness`, :func:`convergence_rate` and :func:`invariants` on every
    weights file of ``source`` (L models on ``images_l`` test images, conv models on
    ``images_conv``: the iteration runs on the whole batch, 21 times, in float64), and the
    scaled study of Figure 15 (:func:`pcdeq.beyond_contraction.study`; ``scaled``: its
    settings, default those of Figure 15 with ``n_starts``) on the same files."""
    from ..train import load_trained

    # fingerprinted before measuring: a file replaced meanwhile makes the evidence stale
    ev = ModelEvidence(source, weights=weight_fingerprints(source),
                       settings={"images_l": images_l, "images_conv": images_conv, "n_starts": n_starts})
    cache: dict = {}
    used: list[Path] = []
    for path in source.weights():
        model = load_trained(path)
        m = model.spec.method
        if m.family == "monDEQ":  # its own splitting solver, not g(z) = σ(Wz + x)
            continue
        if m.arch == "MS" and not m.is_pcdeq:  # GroupNorm, dropout, Broyden / Anderson: their
            continue  # own evidence is the per-epoch jac_norm / jac_bound of their records
        if dataset_info(model.spec.dataset).synthetic:  # a stand-in is no evidence
            continue
        ds = model.spec.dataset
        n = images_l if m.arch == "L" else images_conv
        try:
            x = test_images(ds, m.name, data_root, n, cache, source.root)
        except DatasetMissing as e:
            ev.missing.append(f"{m.name}: {e}")
            continue
        ev.images.setdefault(ds, set()).add(n)
        ev.models.append(f"{m.name} {path.stem}")
        problems = layer_problems(model, x)
        ev.invariants.append(invariants(model, problems))
        for p in problems:
            ev.uniqueness.append(uniqueness(p, m.name, n_starts=n_starts))
            ev.rates.append(convergence_rate(p, m.name))
        used.append(path)  # the scaled study passes over what it does not scale (MS)
    # empty where no model is studied (the claims then say "not testable"; Figure 15 is empty)
    ev.scaled = bc.study(used, bc.test_inputs(source.root, data_root),
                         scaled or bc.Settings(n_starts=n_starts), provenance=source.weights_label())
    # after measuring: a missing images file is written by the first model that reads it
    ev.inputs = input_fingerprints(source)
    return ev


# ------------------------------------------------------------ the evidence as data
# The measurements take minutes (Figure 15's scaled study above all), so the workflow makes
# them once per profile (rule model_evidence: `python -m pcdeq evidence`) and writes them
# beside the weights (EVIDENCE_FILE); the claims table and Figure 15 only read them.
EVIDENCE_FORMAT = 2  # 2: with the fingerprints of the test images ("inputs")


class EvidenceMissing(ConfigError):
    """No evidence file for a source's weights, or one computed from other weights."""


def remeasure_hint(source: Source) -> str:
    """The commands that (re)measure ``source``: directly, and by the workflow's rule (which
    the workflow's own refusal of a missing evidence file names too)."""
    root, profile = source.root, source.profile
    listed = ("" if source.weight_files is None
              else " --weights " + " ".join(str(p) for p in source.weights()))
    committed = root.parts[:1] == (REFERENCE_ROOT,)
    rule = (f"snakemake --cores 1 --forcerun model_evidence {root / EVIDENCE_FILE} --configfile "
            f"config/{profile}.yaml" + (" --config runs_from=committed" if committed else ""))
    return (f"compute it: `python -m pcdeq evidence --profile {profile} --dir {root}{listed}` "
            f"(or the workflow's rule: `{rule}`)")


def _fingerprints(root: Path, files: Sequence[Path]) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def weight_fingerprints(source: Source) -> dict[str, str]:
    """sha256 of every weight file of ``source``, by its path relative to the source's root."""
    return _fingerprints(source.root, source.weights())


def input_fingerprints(source: Source) -> dict[str, str]:
    """sha256 of the test images the measurements iterate on (``claims_inputs/*.pt`` beside
    the weights, see :func:`~pcdeq.paper_claims.fixed_points.test_images`): other images give
    other limits and rates, so they are as much the evidence's input as the weights."""
    return _fingerprints(source.root, sorted((source.root / "claims_inputs").glob("*.pt")))


def _changed(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """The files added, removed or changed between two fingerprint maps."""
    return sorted(set(now) ^ set(then) | {k for k in set(now) & set(then) if now[k] != then[k]})


def evidence_to_json(ev: ModelEvidence) -> dict:
    """``ev`` as plain JSON data, with the fingerprints of the weights it was measured on."""
    return {"format": EVIDENCE_FORMAT, "profile": ev.source.profile,
            "weights": ev.weights, "inputs": ev.inputs, "settings": ev.settings,
            "models": ev.models,
            "uniqueness": [asdict(u) for u in ev.uniqueness],
            "rates": [asdict(r) for r in ev.rates],
            "invariants": [asdict(i) for i in ev.invariants],
            "images": {d: sorted(n) for d, n in ev.images.items()},
            "missing": ev.missing,
            "scaled": None if ev.scaled is None else asdict(ev.scaled)}


def _study(d: dict, provenance: str) -> bc.Study:
    st = bc.Settings(**{**d["settings"], "scales": tuple(d["settings"]["scales"])})
    series = [bc.Series(**{**s, "measures": [bc.Measure(**m) for m in s["measures"]]})
              for s in d["series"]]
    return bc.Study(st, series, provenance)


def save_evidence(ev: ModelEvidence, path: str | Path) -> None:
    """Write ``ev`` to ``path`` atomically (a reader never sees half a file)."""
    from ..files import atomic_write_json
    atomic_write_json(Path(path), evidence_to_json(ev))


def load_evidence(source: Source, path: str | Path | None = None) -> ModelEvidence:
    """The evidence of ``source`` as :func:`save_evidence` wrote it (default
    ``<root>/model_evidence.json``), checked against the weights the source holds now.

    Raises:
        EvidenceMissing: no such file while the source has weights, or a file measured on
            other weights (a weight file added, removed or retrained since) or other test
            images; the message names the files and the command that recomputes it.
    """
    path = Path(path) if path is not None else source.root / EVIDENCE_FILE
    if not path.is_file():
        if not source.weights():  # nothing to measure: the claims say "not testable"
            return ModelEvidence(source, scaled=bc.Study(bc.Settings(), [], source.label()))
        raise EvidenceMissing(f"no model evidence {path} for the {len(source.weights())} weight "
                              f"files in {source.root}/: " + remeasure_hint(source))
    d = json.loads(path.read_text())
    if d.get("format") != EVIDENCE_FORMAT:
        raise EvidenceMissing(f"{path} has format {d.get('format')!r}, this code reads "
                              f"{EVIDENCE_FORMAT}: " + remeasure_hint(source))
    for key, kind, now in (("weights", "weights", weight_fingerprints(source)),
                           ("inputs", "test images", input_fingerprints(source))):
        changed = _changed(d[key], now)
        if changed:
            raise EvidenceMissing(f"{path} was measured on other {kind} than {source.root}/ "
                                  f"holds now (added, removed or changed: {', '.join(changed)}): "
                                  "re" + remeasure_hint(source))
    return ModelEvidence(source, list(d["models"]),
                         [Uniqueness(**u) for u in d["uniqueness"]],
                         [Rate(**r) for r in d["rates"]],
                         [Invariants(**i) for i in d["invariants"]],
                         {k: set(v) for k, v in d["images"].items()}, list(d["missing"]),
                         # the caption names the studied runs as they are now
                         None if d["scaled"] is None else _study(d["scaled"], source.weights_label()),
                         dict(d["weights"]), dict(d["settings"]), dict(d["inputs"]))


def format_distance(x: float) -> str:
    """A distance; below 1e-12 only the bound is printed (the last digits of float64
    rounding differ between CPUs, the bound does not)."""
    if x == math.inf:
        return "∞ (a start did not converge)"
    return "< 1e-12" if x < 1e-12 else f"{x:.1e}"


def claims_from_models(evs: Sequence[ModelEvidence]) -> list[Claim]:
    """C1 (uniqueness), C2 (geometric convergence), C7 (invariants), one row per source."""
    out = []
    c1 = ("The fixed point exists, is unique and is reached from any nonnegative start",
          "Prop. 4.6 (with Lemma 4.2)")
    c2 = ("Plain fixed-point iteration converges geometrically", "Prop. 4.6, Sec. 5")
    c7 = ("W ≥ 0, x > 0 (pcDEQ-1) / x ≥ 0 (pcDEQ-2), activation pairing of Lemma 4.2",
          "Def. 4.3, Lemma 4.2")
    scales = ", ".join(f"{x:g}" for x in bc.Settings().scales)

    def t1(n_starts: int) -> str:
        return (f"limits from z = 0 and {n_starts} random starts in [0, 2 max(1, max z*)), float64, "
                f"solved to rel. step {THRESHOLDS['solve_tol']:g}; and the same with W scaled by "
                f"s ∈ {{{scales}}} (W stays ≥ 0, the theorem still applies, Banach mostly does not), "
                f"beside negative controls outside the theorem (the unconstrained DEQ scaled alike; "
                f"tanh with x = 0); holds if every pcDEQ start converges, the largest ∞-norm distance "
                f"≤ {THRESHOLDS['same_fixed_point']:g}, every scaled pcDEQ case has one limit, and "
                f"every control is flagged (several limits or a start that does not converge) at some s")
    t2 = ("residual trace r_k of the iteration from z = 0 (float64): asymptotic rate q (fit "
          "r_k ≈ C q^k) and worst one-step ratio ρ = max r_{k+1}/r_k once r_k < 1% of its maximum; "
          f"holds if every layer converges with ρ < {THRESHOLDS['geometric_max_ratio']:g}")
    t7 = ("min W ≥ 0; min x > 0 (pcDEQ-1) or ≥ 0 (pcDEQ-2); σ nonnegative concave on [0, 10]; "
          "on the trained models and, from the records that carry per-epoch min W / min x "
          "(the evidence says how many of the pcDEQ runs do), at every epoch of training")
    for ev in evs:
        first = len(out)
        src = ev.source
        test1 = t1(ev.settings.get("n_starts", N_STARTS))
        pc_u = [u for u in ev.uniqueness if parse_method(u.method).is_pcdeq]
        if not pc_u:
            why = (f"no pcDEQ weights in {src.root}/ (the {src.profile} profile's "
                   "reference_weights; run its `all` and `reference` targets)")
            if ev.missing:
                why += "; " + "; ".join(ev.missing)
            out += [untestable("C1", *c1, test1, why), untestable("C2", *c2, t2, why),
                    untestable("C7", *c7, t7, why)]
            for c in out[first:]:
                c.profile = src.profile
            continue
        used = [r for r in src.runs if any(m.split()[0] == r.method and m.split()[1] == f"seed{r.seed}"
                                           for m in ev.models)]
        prov = src.label(used) + "; fixed points on the first " + ", ".join(
            f"{'/'.join(map(str, sorted(n)))} {d} test images (L/conv)" for d, n in ev.images.items())
        # C1
        per_method: dict[str, float] = {}
        all_conv = True
        for u in pc_u:
            per_method[u.method] = max(per_method.get(u.method, 0.0), u.max_distance)
            all_conv &= u.converged == u.starts
        worst = max(per_method.values())
        contrast = [u for u in ev.uniqueness if not parse_method(u.method).is_pcdeq]
        text = "; ".join(f"{m}: {format_distance(d)}" for m, d in per_method.items())
        if contrast:
            cd = max(u.max_distance for u in contrast)
            cc = sum(u.converged for u in contrast), sum(u.starts for u in contrast)
            text += (f". For contrast, {contrast[0].method} (no theorem): {format_distance(cd)}, "
                     f"{cc[0]}/{cc[1]} starts converged")
        sc = ev.scaled
        if sc is None or not sc.controls():
            out.append(Claim("C1", *c1, test1, f"largest distance per model: {text}. [{prov}]",
                             UNTESTABLE, f"no negative control in {src.root}/: the test needs the "
                             "weights of DEQ-L-Tanh or of a pcDEQ-1 tanh model (reference_weights)"))
        else:
            scaled_ok, _ = bc.verdict(sc)
            text += f"; scaled W (Figure 15): {bc.brief(sc)}"
            n_pc = sum(len(x.measures) for x in sc.pcdeq())
            n_u = sum(m.unique for x in sc.pcdeq() for m in x.measures)
            n_f = sum(x.flagged for x in sc.controls())
            out.append(Claim("C1", *c1, test1, f"largest distance per model: {text}. [{prov}]",
                             verdict(all_conv and worst <= THRESHOLDS["same_fixed_point"]
                                     and scaled_ok),
                             decisive=f"max distance {format_distance(worst)} (needs ≤ 1e-6); {n_u}/{n_pc} scaled "
                                      f"cases unique; {n_f}/{len(sc.controls())} controls flagged"))
        # C2
        pc_r = [r for r in ev.rates if parse_method(r.method).is_pcdeq]
        ok = all(r.converged and r.worst_ratio < THRESHOLDS["geometric_max_ratio"] for r in pc_r)
        by_m: dict[str, list[Rate]] = {}
        for r in pc_r:
            by_m.setdefault(r.method, []).append(r)
        text = "; ".join(f"{m}: q = " + "/".join(f"{r.rate:.2f}" for r in rs)
                         + f", ρ = {max(r.worst_ratio for r in rs):.2f} "
                         f"({'/'.join(str(r.iters) for r in rs)} it.)" for m, rs in by_m.items())
        out.append(Claim("C2", *c2, t2, f"{text} (MC: one rate per layer). [{prov}]", verdict(ok),
                         decisive=f"worst ρ = {max(r.worst_ratio for r in pc_r):.2f} (needs < 1)"))
        # C7
        pc_i = [i for i in ev.invariants if i.variant is not None]
        bad = []
        for i in pc_i:
            x_ok = i.min_x > 0 if i.variant == 1 else i.min_x >= 0
            if not (i.min_w >= 0 and x_ok and i.pairing_ok and i.concave_ok
                    and (i.variant == 1 or i.positive_at_0)):
                bad.append(i.method)
        text = (f"min W = {min(i.min_w for i in pc_i):.3g}; min x (pcDEQ-1) = "
                + (f"{min(i.min_x for i in pc_i if i.variant == 1):.3g}"
                   if any(i.variant == 1 for i in pc_i) else "—")
                + "; min x (pcDEQ-2) = "
                + (f"{min(i.min_x for i in pc_i if i.variant == 2):.3g}"
                   if any(i.variant == 2 for i in pc_i) else "—")
                + f"; pairings: {', '.join(sorted({f'pcDEQ-{i.variant} {i.activation}' for i in pc_i}))}"
                + (f"; violated by {', '.join(bad)}" if bad else ""))
        during, bad_runs = training_invariants(src.runs)
        text += "; " + during
        out.append(Claim("C7", *c7, t7, f"{len(pc_i)} models: {text}. [{prov}]",
                         verdict(not bad and not bad_runs),
                         decisive=f"min W = {min(i.min_w for i in pc_i):.3g} (needs ≥ 0); "
                                  f"{len(bad) + len(bad_runs)} violations"))
        for c in out[first:]:
            c.profile = src.profile
    return out


def training_invariants(runs: Sequence[Run]) -> tuple[str, list[str]]:
    """C7 over the whole of training: the per-epoch ``min_weight`` / ``min_input`` of every
    pcDEQ record (first test batch), W >= 0 and x > 0 (pcDEQ-1) / x >= 0 (pcDEQ-2) at every
    epoch.

    Returns:
        The evidence text, and the runs ("method seed S epoch E") that break an invariant.
    """
    pc = [r for r in runs if r.group == "pcDEQ"]
    have = [r for r in pc if all(e.min_weight is not None and e.min_input is not None
                                 for e in r.epochs)]
    if not have:
        return ("during training: not recorded (records made before per-epoch min W / min x were "
                "recorded)"), []
    bad = []
    for r in have:
        v = parse_method(r.method).variant
        for e in r.epochs:
            if e.min_weight < 0 or (e.min_input <= 0 if v == 1 else e.min_input < 0):
                bad.append(f"{r.method} seed {r.seed} epoch {e.epoch}")
                break
    w = min(e.min_weight for r in have for e in r.epochs)
    x1 = [e.min_input for r in have if parse_method(r.method).variant == 1 for e in r.epochs]
    x2 = [e.min_input for r in have if parse_method(r.method).variant == 2 for e in r.epochs]
    text = (f"during training, every epoch of {len(have)} of {len(pc)} pcDEQ runs: min W = {w:.3g}"
            + (f", min x (pcDEQ-1) = {min(x1):.3g}" if x1 else "")
            + (f", min x (pcDEQ-2) = {min(x2):.3g}" if x2 else "")
            + (f"; broken by {', '.join(bad)}" if bad else ""))
    return text, bad
